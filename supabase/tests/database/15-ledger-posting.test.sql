-- Ledger posting without a trigger chain (20261201000500_ledger.sql): one statement-level trigger
-- per INSERT on ledger_entries moves each wallet once, refuses an unbalanced statement, checks
-- the references the dropped foreign keys checked, and repays a dispute shortfall only when one
-- is owed. Also: the history those foreign keys protected, and the order event built inline.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(28);

create function pg_temp.wallet(p_uid uuid, p_currency text default 'INR') returns uuid
language sql stable as $$
  select w.id from public.wallets w join public.accounts a on a.id = w.account_id
  where a.personal_owner_id = p_uid and w.currency = p_currency
$$;
create function pg_temp.leg(p_uid uuid, p_amount bigint) returns jsonb
language sql stable as $$
  select jsonb_build_object('wallet_id', pg_temp.wallet(p_uid), 'currency', 'INR', 'amount', p_amount)
$$;
create function pg_temp.house(p_amount bigint, p_account text default 'gateway:razorpay') returns jsonb
language sql immutable as $$
  select jsonb_build_object('system_account', p_account, 'currency', 'INR', 'amount', p_amount)
$$;
-- Every wallet equals the sum of its entries (the audit's wallet invariant, for these users).
create function pg_temp.drift() returns int
language sql stable as $$
  select count(*)::int from public.wallets w
  where w.account_id in (select id from public.accounts where personal_owner_id::text like '00000000-0000-4000-8000-00000000015%')
    and w.balance <> coalesce((select sum(e.amount) from public.ledger_entries e where e.wallet_id = w.id), 0)
$$;

-- Section - fixture
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000001a1', 'posting-a@example.test'),
  ('00000000-0000-4000-8000-0000000001b1', 'posting-b@example.test'),
  ('00000000-0000-4000-8000-0000000001c1', 'posting-c@example.test');
select settle.post_transaction('topup', 'posting:fund-a', null, 'fund a',
  jsonb_build_array(pg_temp.leg('00000000-0000-4000-8000-0000000001a1', 5000), pg_temp.house(-5000)));

-- Section - multi-wallet postings move every wallet once, by the sum of its legs
select isnt(settle.post_transaction('adjustment', 'posting:split', null, 'a pays b and c',
  jsonb_build_array(pg_temp.leg('00000000-0000-4000-8000-0000000001a1', -1500),
    pg_temp.leg('00000000-0000-4000-8000-0000000001b1', 1000),
    pg_temp.leg('00000000-0000-4000-8000-0000000001c1', 400),
    pg_temp.house(100, 'revenue:fees'))), null, 'a posting with three wallet legs and a house leg posts');
select results_eq(
  $$select tests.balance('00000000-0000-4000-8000-0000000001a1'), tests.balance('00000000-0000-4000-8000-0000000001b1'),
           tests.balance('00000000-0000-4000-8000-0000000001c1')$$,
  $$values (3500::bigint, 1000::bigint, 400::bigint)$$, 'each wallet moved by its own leg');
select isnt(settle.post_transaction('adjustment', 'posting:same-wallet', null, 'two legs on one wallet',
  jsonb_build_array(pg_temp.leg('00000000-0000-4000-8000-0000000001b1', 700),
    pg_temp.leg('00000000-0000-4000-8000-0000000001b1', -200), pg_temp.house(-500))),
  null, 'two legs on one wallet in one posting');
select is(tests.balance('00000000-0000-4000-8000-0000000001b1'), 1500::bigint, 'the wallet moved by the sum of both legs');
select is(pg_temp.drift(), 0, 'every wallet equals the sum of its entries after multi-wallet postings');
select is(
  (select count(*)::int from public.ledger_entries e join public.ledger_transactions t on t.id = e.transaction_id
   where t.idempotency_key = 'posting:split' and e.account_id is not null
     and e.account_id <> (select w.account_id from public.wallets w where w.id = e.wallet_id)),
  0, 'each wallet leg carries its wallet''s account');

-- Section - unbalanced postings are refused, whoever writes them, at the statement
select throws_ok(
  $$select settle.post_transaction('adjustment', 'posting:unbalanced', null, 'sums to 1',
      jsonb_build_array(pg_temp.leg('00000000-0000-4000-8000-0000000001a1', 101), pg_temp.house(-100)))$$,
  'ST400', null, 'post_transaction refuses entries that do not sum to zero');
select is(tests.balance('00000000-0000-4000-8000-0000000001a1'), 3500::bigint, 'and the wallet did not move');
select is((select count(*)::int from public.ledger_transactions where idempotency_key = 'posting:unbalanced'), 0,
  'and no transaction row is left');
select throws_ok(
  $sql$do $t$
    declare v_tx uuid;
    begin
      insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'posting:two-statements')
      returning id into v_tx;
      insert into public.ledger_entries (transaction_id, system_account, currency, amount)
      values (v_tx, 'revenue:plan', 'INR', 50);
      insert into public.ledger_entries (transaction_id, system_account, currency, amount)
      values (v_tx, 'gateway:razorpay', 'INR', -50);
    end
  $t$$sql$,
  'ST400', null, 'a transaction must be balanced within each insert statement (two halves are refused)');
select lives_ok(
  $sql$do $t$
    declare v_tx uuid;
    begin
      insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'posting:raw-balanced')
      returning id into v_tx;
      insert into public.ledger_entries (transaction_id, system_account, currency, amount)
      values (v_tx, 'revenue:plan', 'INR', 50), (v_tx, 'gateway:razorpay', 'INR', -50);
    end
  $t$$sql$, 'a raw insert of a balanced transaction in one statement is accepted');
select throws_ok(
  $sql$do $t$
    declare v_a uuid; v_b uuid;
    begin
      insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'posting:pair-a') returning id into v_a;
      insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'posting:pair-b') returning id into v_b;
      insert into public.ledger_entries (transaction_id, system_account, currency, amount)
      values (v_a, 'revenue:plan', 'INR', 50), (v_b, 'gateway:razorpay', 'INR', -50);
    end
  $t$$sql$,
  'ST400', null, 'each transaction balances on its own, not the statement as a whole');

-- Section - the references the dropped foreign keys checked
select throws_ok(
  $$insert into public.ledger_entries (transaction_id, system_account, currency, amount)
    select t.id, l.account, 'INR', l.amount from (select gen_random_uuid() as id) t,
      (values ('revenue:plan', 5), ('gateway:razorpay', -5)) as l(account, amount)$$,
  '23503', null, 'entries naming no ledger transaction are refused');
select throws_ok(
  $sql$do $t$
    declare v_tx uuid;
    begin
      insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'posting:no-currency') returning id into v_tx;
      insert into public.ledger_entries (transaction_id, system_account, currency, amount)
      values (v_tx, 'revenue:plan', 'XXX', 5), (v_tx, 'gateway:razorpay', 'XXX', -5);
    end
  $t$$sql$,
  '23503', null, 'entries in a currency settle does not know are refused');
select throws_ok(
  $sql$do $t$
    declare v_tx uuid;
    begin
      insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'posting:no-wallet') returning id into v_tx;
      insert into public.ledger_entries (transaction_id, wallet_id, account_id, currency, amount)
      values (v_tx, gen_random_uuid(), tests.personal('00000000-0000-4000-8000-0000000001a1'), 'INR', 5);
      insert into public.ledger_entries (transaction_id, system_account, currency, amount)
      values (v_tx, 'gateway:razorpay', 'INR', -5);
    end
  $t$$sql$,
  '23503', 'ledger entry names a wallet that does not exist', 'an entry naming no wallet is refused');
select throws_ok(
  $$select settle.post_transaction('purchase', 'posting:overdraw-b', null, 'b overdraws',
      jsonb_build_array(pg_temp.leg('00000000-0000-4000-8000-0000000001b1', -1501), pg_temp.house(1501, 'revenue:product')))$$,
  'ST409', 'insufficient wallet balance', 'a wallet is never taken below zero');
select throws_ok(
  $$select settle.post_transaction('purchase', 'posting:overdraw-one-of-two', null, 'c overdraws, a does not',
      jsonb_build_array(pg_temp.leg('00000000-0000-4000-8000-0000000001a1', -100),
        pg_temp.leg('00000000-0000-4000-8000-0000000001c1', -401), pg_temp.house(501, 'revenue:product')))$$,
  'ST409', 'insufficient wallet balance', 'one overdrawn wallet refuses the whole posting');
select is(tests.balance('00000000-0000-4000-8000-0000000001a1'), 3500::bigint,
  'and the other wallet of that posting did not move');

-- Section - history the dropped foreign keys protected
select throws_ok(
  format($$delete from public.wallets where id = %L$$, pg_temp.wallet('00000000-0000-4000-8000-0000000001c1')),
  '23503', null, 'a wallet with ledger entries cannot be deleted');
select throws_ok($$delete from auth.users where id = '00000000-0000-4000-8000-0000000001c1'$$,
  '23503', null, 'nor its user (the account''s cascade reaches the wallet)');
select throws_ok($$update public.currencies set code = 'INX' where code = 'INR'$$,
  null, null, 'a currency the ledger uses cannot be renamed');
select throws_ok($$delete from public.currencies where code = 'INR'$$,
  null, null, 'nor deleted');
select throws_ok('truncate public.wallets cascade', 'ST400', null, 'wallets cannot be truncated under the ledger');
select throws_ok(
  format($$update public.wallets set id = gen_random_uuid() where id = %L$$, pg_temp.wallet('00000000-0000-4000-8000-0000000001c1')),
  'ST400', null, 'a wallet''s id is fixed (entries name it)');

-- Section - the shortfall cover is tested first and costs nothing when nothing is owed
select is(
  (select count(*)::int from public.ledger_transactions where kind = 'dispute_withdrawal'
   and idempotency_key like 'dispute_cover:%'), 0, 'no shortfall owed: credits post no cover transaction');

-- Section - the order event, built inline, is the payload outbox_order_payload describes
insert into public.orders (id, account_id, created_by, gateway, purpose, amount, currency, gateway_order_id)
values ('00000000-0000-4000-8000-0000000001f1', tests.personal('00000000-0000-4000-8000-0000000001a1'),
  '00000000-0000-4000-8000-0000000001a1', 'razorpay', 'wallet_topup', 2500, 'INR', 'order_Posting00001');
update public.orders set status = 'paid', paid_at = now(), gateway_payment_id = 'pay_Posting000001'
where id = '00000000-0000-4000-8000-0000000001f1';
select is(
  (select e.payload from public.outbox_events e where e.subject_id = '00000000-0000-4000-8000-0000000001f1'
   and e.type = 'order.paid'),
  (select settle.outbox_order_payload(o, 'created') from public.orders o where o.id = '00000000-0000-4000-8000-0000000001f1'),
  'the order.paid payload equals settle.outbox_order_payload of the order');
select is(tests.balance('00000000-0000-4000-8000-0000000001a1'), 6000::bigint, 'and the paid top-up credited the wallet');
select is(pg_temp.drift(), 0, 'every wallet still equals the sum of its entries');

select * from finish();
rollback;
