-- payment_stats: who sees which rows and the exact figures; the payment_analyst role reads
-- the statistics and nothing behind them. ledger_audit(): empty on healthy books, and each
-- deliberate corruption (made here with triggers or constraints out of the way, all rolled
-- back at the end) reported under the right invariant and subject.
--
-- The orders are dated 2001-02-03/04 and priced in BHD (Razorpay) and KWD (Stripe), so the
-- analyst's figures are exact even on a database holding other orders.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(35);

create function pg_temp.login_as(p_role text) returns void language plpgsql as $$
begin
  perform set_config('role', p_role, true);
  perform set_config('request.jwt.claims', '', true);
end
$$;
-- A created top-up order on a user's personal account, created at p_at; returns its id.
create function pg_temp.new_order(p_uid uuid, p_gateway text, p_currency text, p_amount bigint,
  p_gateway_order_id text, p_at timestamptz) returns uuid
language sql security definer as $$
  insert into public.orders (account_id, created_by, gateway, purpose, amount, currency, gateway_order_id, created_at)
  select a.id, p_uid, p_gateway, 'wallet_topup', p_amount, p_currency, p_gateway_order_id, p_at
  from public.accounts a where a.personal_owner_id = p_uid
  returning id
$$;
create function pg_temp.oid(p_gateway_order_id text) returns uuid
language sql stable security definer as $$
  select id from public.orders where gateway_order_id = p_gateway_order_id
$$;
create function pg_temp.wallet(p_uid uuid, p_currency text) returns uuid
language sql stable security definer as $$
  select w.id from public.wallets w join public.accounts a on a.id = w.account_id
  where a.personal_owner_id = p_uid and w.currency = p_currency
$$;

-- Section - fixture
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000009a1', 'stats-a@example.test'),
  ('00000000-0000-4000-8000-0000000009b1', 'stats-b@example.test');

do $$
declare
  a uuid := '00000000-0000-4000-8000-0000000009a1';
  b uuid := '00000000-0000-4000-8000-0000000009b1';
  d timestamptz := '2001-02-03 10:00:00+00';
begin
  -- a, 2001-02-03, Razorpay BHD: paid 10001; paid 30000 with 5000 refunded; failed 20000;
  -- created 7000 (in flight).
  perform pg_temp.new_order(a, 'razorpay', 'BHD', 10001, 'order_ST_A1', d);
  perform pg_temp.new_order(a, 'razorpay', 'BHD', 30000, 'order_ST_A2', d);
  perform pg_temp.new_order(a, 'razorpay', 'BHD', 20000, 'order_ST_A3', d);
  perform pg_temp.new_order(a, 'razorpay', 'BHD', 7000, 'order_ST_A4', d);
  perform settle.apply_payment('razorpay', 'captured', 'order_ST_A1', 'pay_ST_A1', 10001, 'BHD');
  perform settle.apply_payment('razorpay', 'captured', 'order_ST_A2', 'pay_ST_A2', 30000, 'BHD');
  perform settle.apply_payment('razorpay', 'failed', 'order_ST_A3', 'pay_ST_A3', null, null, 'X', 'declined');
  perform settle.create_refund(pg_temp.oid('order_ST_A2'), 5000, 'partial', null, null);
  -- b, 2001-02-03, Razorpay BHD: paid 4000 fully refunded; expired 9999; paid 1000 at 23:30 UTC.
  perform pg_temp.new_order(b, 'razorpay', 'BHD', 4000, 'order_ST_B1', d);
  perform pg_temp.new_order(b, 'razorpay', 'BHD', 9999, 'order_ST_B2', d);
  perform pg_temp.new_order(b, 'razorpay', 'BHD', 1000, 'order_ST_B4', '2001-02-03 23:30:00+00');
  perform settle.apply_payment('razorpay', 'captured', 'order_ST_B1', 'pay_ST_B1', 4000, 'BHD');
  perform settle.apply_payment('razorpay', 'captured', 'order_ST_B4', 'pay_ST_B4', 1000, 'BHD');
  update public.orders set status = 'expired' where gateway_order_id = 'order_ST_B2';
  perform settle.create_refund(pg_temp.oid('order_ST_B1'), null, 'all', null, null);
  -- b, 2001-02-03, Stripe KWD: paid 12345.
  perform pg_temp.new_order(b, 'stripe', 'KWD', 12345, 'pi_ST_B3', d);
  perform settle.apply_payment('stripe', 'captured', 'pi_ST_B3', 'ch_ST_B3', 12345, 'KWD');
  -- b, 2001-02-04 00:30 UTC, Razorpay BHD: paid 2000.
  perform pg_temp.new_order(b, 'razorpay', 'BHD', 2000, 'order_ST_B5', '2001-02-04 00:30:00+00');
  perform settle.apply_payment('razorpay', 'captured', 'order_ST_B5', 'pay_ST_B5', 2000, 'BHD');
end
$$;
-- Days are UTC days whatever the session's time zone (23:30 UTC is already the 4th in India).
set local timezone = 'Asia/Kolkata';

select is((select count(*)::int from public.orders where gateway_order_id like any (array['order\_ST\_%', 'pi\_ST\_%'])),
  9, 'the fixture has nine orders');

-- Section - payment_stats: a signed-in user sees their accounts' figures only
select tests.login('00000000-0000-4000-8000-0000000009a1');
select results_eq(
  $$select day, gateway, currency, orders_created, orders_paid, orders_failed, orders_expired, success_rate,
      gross, refunded, net, average_paid_amount
    from public.payment_stats order by day, gateway, currency$$,
  $$values ('2001-02-03'::date, 'razorpay'::text, 'BHD'::text, 4::bigint, 2::bigint, 1::bigint, 0::bigint,
      0.6667::numeric, 40001::bigint, 5000::bigint, 35001::bigint, 20001::bigint)$$,
  'a sees one row, their own: 4 created, 2 paid, 1 failed (in flight excluded from the rate), exact amounts');
select results_eq(
  $$select day, gateway, currency, orders_created, gross from settle.payment_stats_visible order by 1, 2, 3$$,
  $$values ('2001-02-03'::date, 'razorpay'::text, 'BHD'::text, 4::bigint, 40001::bigint)$$,
  'the settle view behind it filters the same way when read directly');
select tests.login('00000000-0000-4000-8000-0000000009b1');
select results_eq(
  $$select day, gateway, currency, orders_created, orders_paid, orders_failed, orders_expired, success_rate,
      gross, refunded, net, average_paid_amount
    from public.payment_stats order by day, gateway, currency$$,
  $$values
    ('2001-02-03'::date, 'razorpay'::text, 'BHD'::text, 3::bigint, 2::bigint, 0::bigint, 1::bigint,
      0.6667::numeric, 5000::bigint, 4000::bigint, 1000::bigint, 2500::bigint),
    ('2001-02-03'::date, 'stripe'::text, 'KWD'::text, 1::bigint, 1::bigint, 0::bigint, 0::bigint,
      1.0000::numeric, 12345::bigint, 0::bigint, 12345::bigint, 12345::bigint),
    ('2001-02-04'::date, 'razorpay'::text, 'BHD'::text, 1::bigint, 1::bigint, 0::bigint, 0::bigint,
      1.0000::numeric, 2000::bigint, 0::bigint, 2000::bigint, 2000::bigint)$$,
  'b sees only b''s rows: a refunded order still counts as paid, days are UTC days');
select is((select count(*)::int from public.payment_stats where orders_failed > 0), 0,
  'b sees nothing of a''s failed order');

-- Section - payment_analyst sees every account's figures
select pg_temp.login_as('payment_analyst');
select results_eq(
  $$select day, gateway, currency, orders_created, orders_paid, orders_failed, orders_expired, success_rate,
      gross, refunded, net, average_paid_amount
    from public.payment_stats where day between '2001-02-03' and '2001-02-04' order by day, gateway, currency$$,
  $$values
    ('2001-02-03'::date, 'razorpay'::text, 'BHD'::text, 7::bigint, 4::bigint, 1::bigint, 1::bigint,
      0.6667::numeric, 45001::bigint, 9000::bigint, 36001::bigint, 11250::bigint),
    ('2001-02-03'::date, 'stripe'::text, 'KWD'::text, 1::bigint, 1::bigint, 0::bigint, 0::bigint,
      1.0000::numeric, 12345::bigint, 0::bigint, 12345::bigint, 12345::bigint),
    ('2001-02-04'::date, 'razorpay'::text, 'BHD'::text, 1::bigint, 1::bigint, 0::bigint, 0::bigint,
      1.0000::numeric, 2000::bigint, 0::bigint, 2000::bigint, 2000::bigint)$$,
  'the analyst sees a''s and b''s orders together, with exact gross/refunded/net/rate/average');
select throws_ok('select * from public.orders', '42501', null, 'the analyst cannot read orders');
select throws_ok('select * from public.refunds', '42501', null, 'the analyst cannot read refunds');
select throws_ok('select * from public.ledger_entries', '42501', null, 'the analyst cannot read ledger entries');
select throws_ok('select * from public.ledger_transactions', '42501', null,
  'the analyst cannot read ledger transactions');
select throws_ok('select * from public.wallets', '42501', null, 'the analyst cannot read wallets');
select throws_ok('select * from public.accounts', '42501', null, 'the analyst cannot read accounts');
select throws_ok($$select settle.apply_payment('razorpay', 'captured', 'order_ST_A4', 'pay_x', null, null)$$,
  '42501', null, 'the analyst cannot call apply_payment');
select throws_ok($$select settle.create_refund(gen_random_uuid(), 1, 'x', null, null)$$,
  '42501', null, 'the analyst cannot call create_refund');
select throws_ok($$select settle.lapse_subscriptions()$$, '42501', null, 'the analyst cannot run the lapse job');
select tests.logout();
select is(
  array(select format('%s on %s', p.priv, c.relname) from pg_class c
        cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p (priv)
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
          and has_table_privilege('payment_analyst', c.oid, p.priv)
        order by 1),
  '{}'::text[],
  'payment_analyst holds no privilege on any public table');
select set_eq(
  $$select p.oid::regprocedure::text from pg_proc p
    where p.pronamespace = 'settle'::regnamespace and has_function_privilege('payment_analyst', p.oid, 'EXECUTE')$$,
  array['settle.can_read_payment_stats(uuid)', 'settle.is_member(uuid)', 'settle.ledger_audit()'],
  'payment_analyst may execute only the statistics filter, is_member and ledger_audit');

-- The service role (the server) sees every account too.
select pg_temp.login_as('service_role');
select results_eq(
  $$select day, gateway, currency, orders_created, gross, refunded
    from public.payment_stats where day between '2001-02-03' and '2001-02-04' order by day, gateway, currency$$,
  $$values ('2001-02-03'::date, 'razorpay'::text, 'BHD'::text, 7::bigint, 45001::bigint, 9000::bigint),
           ('2001-02-03'::date, 'stripe'::text, 'KWD'::text, 1::bigint, 12345::bigint, 0::bigint),
           ('2001-02-04'::date, 'razorpay'::text, 'BHD'::text, 1::bigint, 2000::bigint, 0::bigint)$$,
  'the service role sees every account''s figures');

-- Section - anon sees nothing
select tests.login_anon();
select throws_ok('select * from public.payment_stats', '42501', null, 'anon: payment_stats is permission denied');
select throws_ok('select * from settle.payment_stats_visible', '42501', null,
  'anon: the settle view is permission denied');
select tests.login('00000000-0000-4000-8000-0000000009a1');
select throws_ok('select * from settle.ledger_audit()', '42501', null, 'a signed-in user cannot run the ledger audit');
select tests.logout();

-- Section - ledger_audit: healthy books report nothing
select is_empty('select * from settle.ledger_audit()',
  'ledger_audit is empty on healthy data (payments, a partial and a full refund included)');

-- Section - ledger_audit: deliberate corruption, each found under its invariant
-- 1. An entry added to a balanced transaction behind the ledger's back.
-- 2. A transaction with no entries.
-- 3. a's BHD wallet balance moved without a ledger entry.
-- 4. b's KWD wallet negative (its check constraint dropped for the test).
-- 5. An order marked paid without its ledger posting.
-- 6. An unpaid order credited by an order_paid posting.
-- 7. Refund rows for more than b's Stripe payment.
-- 8. a's first order claiming a refunded amount no refund or ledger entry backs.
select isnt(settle.post_transaction('adjustment', 'stats:unbalanced', null, 'test', jsonb_build_array(
    jsonb_build_object('system_account', 'revenue:product', 'currency', 'BHD', 'amount', 500),
    jsonb_build_object('system_account', 'gateway:razorpay', 'currency', 'BHD', 'amount', -500))),
  null, 'a balanced adjustment, to corrupt');
insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'stats:short');
select isnt(pg_temp.new_order('00000000-0000-4000-8000-0000000009a1', 'razorpay', 'BHD', 500, 'order_ST_A5',
  '2001-02-03 12:00:00+00'), null, 'an order to mark paid behind the ledger''s back');
select isnt(settle.post_transaction('topup', 'order_paid:' || pg_temp.oid('order_ST_A4'), pg_temp.oid('order_ST_A4'),
    'forged', jsonb_build_array(
    jsonb_build_object('system_account', 'revenue:product', 'currency', 'BHD', 'amount', 7000),
    jsonb_build_object('system_account', 'gateway:razorpay', 'currency', 'BHD', 'amount', -7000))),
  null, 'an order_paid posting for the created order A4');

alter table public.wallets drop constraint wallets_balance_check;
set local session_replication_role = replica;
insert into public.ledger_entries (transaction_id, system_account, currency, amount)
select id, 'revenue:product', 'BHD', 7 from public.ledger_transactions where idempotency_key = 'stats:unbalanced';
update public.wallets set balance = balance + 100
where id = pg_temp.wallet('00000000-0000-4000-8000-0000000009a1', 'BHD');
update public.wallets set balance = -1 where id = pg_temp.wallet('00000000-0000-4000-8000-0000000009b1', 'KWD');
update public.orders set status = 'paid', paid_at = now(), gateway_payment_id = 'pay_ST_A5'
where gateway_order_id = 'order_ST_A5';
insert into public.refunds (order_id, account_id, gateway, gateway_refund_id, gateway_payment_id, amount, currency,
  status, source)
select id, account_id, gateway, 're_ST_B3', gateway_payment_id, 20000, currency, 'processed', 'gateway'
from public.orders where gateway_order_id = 'pi_ST_B3';
update public.orders set status = 'partially_refunded', amount_refunded = 1 where gateway_order_id = 'order_ST_A1';
set local session_replication_role = origin;

select set_eq(
  'select invariant, subject from settle.ledger_audit()',
  format($$values
    ('unbalanced_transaction', %L), ('short_transaction', %L),
    ('wallet_balance_drift', %L), ('wallet_balance_drift', %L), ('negative_balance', %L),
    ('paid_order_not_credited_once', %L), ('unpaid_order_credited', %L),
    ('refunds_exceed_payment', %L), ('refunds_exceed_payment', %L),
    ('payment_stats_drift', '2001-02-03 razorpay BHD')$$,
    (select id from public.ledger_transactions where idempotency_key = 'stats:unbalanced'),
    (select id from public.ledger_transactions where idempotency_key = 'stats:short'),
    pg_temp.wallet('00000000-0000-4000-8000-0000000009a1', 'BHD'),
    pg_temp.wallet('00000000-0000-4000-8000-0000000009b1', 'KWD'),
    pg_temp.wallet('00000000-0000-4000-8000-0000000009b1', 'KWD'),
    pg_temp.oid('order_ST_A5'), pg_temp.oid('order_ST_A4'),
    pg_temp.oid('pi_ST_B3'), pg_temp.oid('order_ST_A1')),
  'ledger_audit reports each corruption once, under its invariant and subject, and nothing else');
select is(
  (select detail from settle.ledger_audit() where invariant = 'unbalanced_transaction'),
  'BHD entries sum to 7', 'the unbalanced transaction''s detail gives the currency and the sum');
select is(
  (select detail from settle.ledger_audit() where invariant = 'short_transaction'),
  '0 entries', 'the short transaction''s detail gives its entry count');
select is(
  (select detail from settle.ledger_audit()
   where invariant = 'wallet_balance_drift' and subject = pg_temp.wallet('00000000-0000-4000-8000-0000000009a1', 'BHD')::text),
  'balance 35101, entries sum to 35001', 'the drift''s detail gives the balance and the entries'' sum');
select is(
  (select detail from settle.ledger_audit() where invariant = 'negative_balance'),
  'balance -1 KWD', 'the negative balance''s detail');
select is(
  (select detail from settle.ledger_audit() where invariant = 'paid_order_not_credited_once'),
  'status paid, 0 payment postings crediting 0 of 500 BHD', 'the uncredited paid order''s detail');
select is(
  (select detail from settle.ledger_audit() where invariant = 'unpaid_order_credited'),
  'status created, 1 payment postings crediting 7000 of 7000 BHD', 'the credited unpaid order''s detail');
select is(
  (select detail from settle.ledger_audit() where subject = pg_temp.oid('pi_ST_B3')::text),
  'refunded 0 (refund rows 20000, ledger 0) of 12345 KWD', 'refund rows beyond the payment, in the detail');
select is(
  (select detail from settle.ledger_audit() where subject = pg_temp.oid('order_ST_A1')::text),
  'refunded 1 (refund rows 0, ledger 0) of 10001 BHD', 'an unbacked refunded amount, in the detail');

select pg_temp.login_as('payment_analyst');
-- Ten: corruptions 5 and 8 changed orders behind the triggers, so payment_stats' rollups
-- (20261201001300_payment_stats.sql) no longer match that day's orders.
select is((select count(*)::int from settle.ledger_audit()), 10, 'the analyst runs the audit and sees the same ten rows');
select tests.logout();

select * from finish();
rollback;
