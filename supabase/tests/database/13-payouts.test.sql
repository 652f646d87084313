-- Payouts: the request's ledger move and refusals, exactly-once status moves in any order (with
-- their money), the audit of in-flight accounts, payout webhooks stored once, who may call and
-- read what, and payout accounts holding only masked details.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(43);

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000000a1', 'payee-a@test.local'),
  ('00000000-0000-4000-8000-0000000000b1', 'payee-b@test.local');
create function pg_temp.acct() returns uuid language sql stable as $$
  select tests.personal('00000000-0000-4000-8000-0000000000a1')
$$;
create function pg_temp.bal() returns bigint language sql stable as $$
  select tests.balance('00000000-0000-4000-8000-0000000000a1')
$$;
create function pg_temp.house(p_account text) returns bigint language sql stable security definer as $$
  select coalesce(sum(amount), 0)::bigint from public.ledger_entries
  where system_account = p_account and currency = 'INR'
$$;
create function pg_temp.status(p_id uuid) returns text language sql stable security definer as $$
  select status from public.payouts where id = p_id
$$;
create function pg_temp.pay(p_amount bigint, p_key text) returns uuid language sql as $$
  select (settle.request_payout('00000000-0000-4000-8000-0000000000f1', p_amount, 'INR', p_key,
    'h:' || p_amount) #>> '{payout,id}')::uuid
$$;
-- Earnings: an escrow settlement credits the payee's wallet.
select settle.post_transaction('escrow_settlement', 'po:earn', null, 'earnings', jsonb_build_array(
  jsonb_build_object('wallet_id', settle.ensure_wallet(pg_temp.acct(), 'INR'), 'currency', 'INR', 'amount', 50000),
  jsonb_build_object('system_account', 'test:earnings', 'currency', 'INR', 'amount', -50000)));
-- A top-up balance beside it, which the default policy does not pay out.
select settle.post_transaction('topup', 'po:topup', null, 'top-up', jsonb_build_array(
  jsonb_build_object('wallet_id', settle.ensure_wallet(pg_temp.acct(), 'INR'), 'currency', 'INR', 'amount', 20000),
  jsonb_build_object('system_account', 'gateway:razorpay', 'currency', 'INR', 'amount', -20000)));

-- Section - payout accounts hold ids and a masked form only
select tests.login_service();
select is(settle.create_payout_account('00000000-0000-4000-8000-0000000000f1', pg_temp.acct(),
  '00000000-0000-4000-8000-0000000000a1', 'razorpayx', 'bank_account', '•••• 6789', '6789', null,
  'cont_Test000000001', 'fa_Test0000000001') ->> 'status', 'active', 'a RazorpayX account is active at once');
select is(settle.create_payout_account('00000000-0000-4000-8000-0000000000f2', pg_temp.acct(),
  '00000000-0000-4000-8000-0000000000a1', 'stripe', 'stripe_account', 'Stripe account', null, null,
  null, 'acct_Test00000001') ->> 'status', 'onboarding', 'a Stripe account waits for onboarding');
select tests.logout();
select throws_ok($$insert into public.payout_accounts (account_id, gateway, type, display, last4,
    gateway_contact_id, gateway_account_id, status)
  values (pg_temp.acct(), 'razorpayx', 'bank_account', 'x', '123456789012', 'c', 'f', 'active')$$,
  '23514', null, 'a full account number does not fit the last4 column');
select is((select count(*)::int from information_schema.columns
  where table_schema = 'public' and table_name = 'payout_accounts'
    and column_name ~ '(account_number|ifsc|vpa_address|^vpa$)'), 0,
  'payout_accounts has no column for an account number, IFSC or full VPA');

-- Section - requesting
select tests.login('00000000-0000-4000-8000-0000000000a1');
select throws_ok($$select pg_temp.pay(60000, 'k0')$$, 'ST409', null,
  'earnings only by default: more than the 50000 earned is insufficient_funds');
select throws_ok($$select pg_temp.pay(99, 'k0')$$, 'ST400', null, 'below the policy minimum is refused');
select throws_ok($$select settle.request_payout('00000000-0000-4000-8000-0000000000f1', 1000, 'USD', 'k0', 'h')$$,
  'ST400', 'razorpayx pays out INR only', 'razorpayx pays INR only');
select throws_ok($$select settle.request_payout('00000000-0000-4000-8000-0000000000f1', 1000, 'XYZ', 'k0', 'h')$$,
  'ST400', null, 'an unknown currency is refused');
select throws_ok($$select settle.request_payout('00000000-0000-4000-8000-0000000000f2', 1000, 'USD', 'k0', 'h')$$,
  'ST409', null, 'a Stripe account still onboarding cannot be paid into');
select is(pg_temp.bal(), 70000::bigint, 'refusals moved nothing');
create temp table ids (name text primary key, id uuid);
grant all on ids to public;
insert into ids values ('p1', pg_temp.pay(10000, 'k1'));
select is(pg_temp.status((select id from ids where name = 'p1')), 'pending', 'a payout starts pending');
select is(pg_temp.bal(), 60000::bigint, 'the amount leaves the wallet at once');
select is(pg_temp.house('payouts_in_flight:razorpayx'), 10000::bigint, 'and sits in flight');
select is(pg_temp.pay(10000, 'k1'), (select id from ids where name = 'p1'), 'the same key replays');
select throws_ok($$select pg_temp.pay(10001, 'k1')$$, 'ST409', null, 'other terms under the key are a conflict');
select is(pg_temp.bal(), 60000::bigint, 'a replay moves nothing');

select tests.login('00000000-0000-4000-8000-0000000000b1');
select throws_ok($$select pg_temp.pay(100, 'kb')$$, 'ST404', null,
  'another user cannot pay out through someone else''s payout account');
select is((select count(*)::int from public.payouts), 0, 'nor read their payouts');
select is((select count(*)::int from public.payout_accounts), 0, 'nor their payout accounts');
select tests.login_anon();
select throws_ok('select * from public.payouts', '42501', null, 'anon reads no payouts');
select throws_ok($$select pg_temp.pay(100, 'ka')$$, '42501', null, 'anon cannot request one');
select tests.login('00000000-0000-4000-8000-0000000000a1');
select is((select count(*)::int from public.payouts), 1, 'the owner reads their payout');
select throws_ok($$select settle.apply_payout_status((select id from ids where name = 'p1'), 'failed', null, null)$$,
  '42501', null, 'a user cannot move a payout');

-- Section - exactly once, in any order
select tests.login_service();
select is(settle.record_payout_sent((select id from ids where name = 'p1'), 'pout_Test000000001', 'processing', null)
  ->> 'outcome', 'applied', 'the gateway id is recorded');
select is(pg_temp.status((select id from ids where name = 'p1')), 'pending', 'the send answer moves no status');
select is(settle.apply_payout_event('razorpayx', jsonb_build_object('gateway_payout_id', 'pout_Test000000001',
  'status', 'processed', 'amount', 10000, 'currency', 'INR')) ->> 'outcome', 'applied', 'processed applies');
select is(settle.apply_payout_event('razorpayx', jsonb_build_object('gateway_payout_id', 'pout_Test000000001',
  'status', 'processing', 'amount', 10000, 'currency', 'INR')) ->> 'outcome', 'no_effect',
  'a late processing event changes nothing');
select is(settle.apply_payout_event('razorpayx', jsonb_build_object('gateway_payout_id', 'pout_Test000000001',
  'status', 'processed', 'amount', 10000, 'currency', 'INR')) ->> 'outcome', 'no_effect', 'processed twice moves once');
select is(pg_temp.house('payouts_in_flight:razorpayx'), 0::bigint, 'processed empties in-flight');
select is(pg_temp.house('gateway:razorpayx'), 10000::bigint, 'into the gateway clearing account');
select is(settle.apply_payout_event('razorpayx', jsonb_build_object('gateway_payout_id', 'pout_Test000000001',
  'status', 'reversed', 'amount', 10000, 'currency', 'INR')) ->> 'outcome', 'applied', 'a reversal after processed applies');
select is(settle.apply_payout_event('razorpayx', jsonb_build_object('gateway_payout_id', 'pout_Test000000001',
  'status', 'failed', 'amount', 10000, 'currency', 'INR')) ->> 'outcome', 'no_effect', 'failed after reversed changes nothing');
select is(pg_temp.bal(), 70000::bigint, 'processed then reversed returns the money once');
select is(pg_temp.house('gateway:razorpayx'), 0::bigint, 'out of clearing');

-- A second payout whose events come in reverse: failed first, then processing and processed.
select tests.login('00000000-0000-4000-8000-0000000000a1');
insert into ids values ('p2', pg_temp.pay(5000, 'k2'));
select tests.login_service();
select is(settle.apply_payout_event('razorpayx', jsonb_build_object('settle_payout_id', (select id from ids where name = 'p2'),
  'gateway_payout_id', 'pout_Test000000002', 'status', 'failed', 'amount', 5000, 'currency', 'INR')) ->> 'outcome',
  'applied', 'failed before the send was recorded finds the payout by settle''s id');
select is(settle.apply_payout_event('razorpayx', jsonb_build_object('gateway_payout_id', 'pout_Test000000002',
  'status', 'processed', 'amount', 5000, 'currency', 'INR')) ->> 'outcome', 'no_effect', 'a late processed does not resurrect it');
select is(pg_temp.bal(), 70000::bigint, 'failed returned it once');
select is(settle.apply_payout_event('razorpayx', jsonb_build_object('gateway_payout_id', 'pout_Other0000001',
  'status', 'failed', 'amount', 5000, 'currency', 'INR')) ->> 'outcome', 'ignored', 'an unknown payout is ignored');
select is(settle.apply_payout_event('razorpayx', jsonb_build_object('gateway_payout_id', 'pout_Test000000002',
  'status', 'reversed', 'amount', 4000, 'currency', 'INR')) ->> 'outcome', 'mismatch', 'another amount is a mismatch');

-- Webhooks are stored once per event id.
select is(settle.ingest_payout_webhook('razorpayx', 'evt_po_1', 'payout.processed', now(), '{}', 'b1',
  jsonb_build_object('action', 'payout', 'gateway_payout_id', 'pout_Test000000002', 'status', 'processed',
    'amount', 5000, 'currency', 'INR')) ->> 'duplicate', 'false', 'a payout webhook is stored');
select is(settle.ingest_payout_webhook('razorpayx', 'evt_po_1', 'payout.processed', now(), '{}', 'b1',
  '{"action": "payout"}') ->> 'duplicate', 'true', 'its redelivery is a duplicate');

-- Section - the audit
select is_empty('select * from settle.ledger_audit()', 'the ledger audit is clean');
select tests.logout();
set local session_replication_role = replica;
update public.payouts set status = 'pending', returned_at = null, failure_reason = null
where id = (select id from ids where name = 'p2');
set local session_replication_role = origin;
select set_eq($$select invariant from settle.ledger_audit()$$,
  array['payouts_in_flight_drift', 'payout_not_posted'],
  'a payout marked unfinished without money in flight is found twice');

select * from finish();
rollback;
