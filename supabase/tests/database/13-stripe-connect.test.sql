-- Stripe Connect payout accounts (20261201002100_payouts.sql): onboarding until payouts are enabled and the
-- transfers capability is active, states ordered by when they were read, deauthorization final,
-- INR refused at Stripe; a transfer processed on send and reversed once.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(16);

insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000000c1', 'connect@test.local');
create function pg_temp.acct() returns uuid language sql stable as $$
  select tests.personal('00000000-0000-4000-8000-0000000000c1')
$$;
create function pg_temp.pa_status() returns text language sql stable security definer as $$
  select status from public.payout_accounts where id = '00000000-0000-4000-8000-0000000000c2'
$$;
create function pg_temp.usd() returns bigint language sql stable security definer as $$
  select balance from public.wallets where account_id = pg_temp.acct() and currency = 'USD'
$$;
create function pg_temp.event(p_effect jsonb) returns text language sql as $$
  select settle.apply_payout_account_event(
    p_effect || '{"gateway_account_id": "acct_Connect000001"}', null) ->> 'outcome'
$$;
select settle.post_transaction('escrow_settlement', 'sc:earn', null, 'earnings', jsonb_build_array(
  jsonb_build_object('wallet_id', settle.ensure_wallet(pg_temp.acct(), 'USD'), 'currency', 'USD', 'amount', 10000),
  jsonb_build_object('system_account', 'test:earnings', 'currency', 'USD', 'amount', -10000)));

select tests.login_service();
select is(settle.create_payout_account('00000000-0000-4000-8000-0000000000c2', pg_temp.acct(),
  '00000000-0000-4000-8000-0000000000c1', 'stripe', 'stripe_account', 'Stripe account •••0001', null,
  null, null, 'acct_Connect000001') ->> 'status', 'onboarding', 'a Stripe account starts onboarding');
select tests.logout();
select throws_ok($$update public.payout_accounts set status = 'pending'
  where id = '00000000-0000-4000-8000-0000000000c2'$$, '23514', null, 'pending is no longer a payout account status');
select tests.login_service();

select is(pg_temp.event('{"payouts_enabled": true, "transfers": "pending", "observed_at": "2026-12-04T10:00:01Z"}'),
  'no_effect', 'payouts enabled without the transfers capability: still onboarding');
select is(pg_temp.event('{"payouts_enabled": true, "transfers": "active", "observed_at": "2026-12-04T10:00:03Z"}'),
  'applied', 'payouts enabled and transfers active');
select is(pg_temp.pa_status(), 'active', 'the account is active');
select is(pg_temp.event('{"payouts_enabled": false, "transfers": "active", "observed_at": "2026-12-04T10:00:02Z"}'),
  'no_effect', 'a state read earlier, applied late, changes nothing');
select is(pg_temp.pa_status(), 'active', 'still active');

select tests.login('00000000-0000-4000-8000-0000000000c1');
select throws_ok($$select settle.request_payout('00000000-0000-4000-8000-0000000000c2', 1000, 'INR', 'sc1', 'h')$$,
  'ST400', null, 'Stripe does not pay out INR');
select lives_ok($$select settle.request_payout('00000000-0000-4000-8000-0000000000c2', 4000, 'USD', 'sc2', 'h')$$,
  'a USD payout to the active account');
select is(pg_temp.usd(), 6000::bigint, 'the amount left the wallet');
select tests.login_service();
select is(settle.apply_payout_status((select id from public.payouts where idempotency_key = 'sc2'),
  'processed', 'created', null) #>> '{payout,status}', 'processed', 'the transfer made: processed');
select is(settle.apply_payout_event('stripe', jsonb_build_object('gateway_payout_id', 'tr_Unknown',
  'settle_payout_id', (select id from public.payouts where idempotency_key = 'sc2'), 'status', 'reversed',
  'amount', 4000, 'currency', 'USD')) ->> 'outcome', 'applied', 'transfer.reversed found by the payout id');
select is(settle.apply_payout_event('stripe', jsonb_build_object('gateway_payout_id', 'tr_Unknown',
  'status', 'reversed', 'amount', 4000, 'currency', 'USD')) ->> 'outcome', 'no_effect', 'its redelivery moves nothing');
select is(pg_temp.usd(), 10000::bigint, 'the reversal returned the amount once');

select is(pg_temp.event('{"deauthorized": true}'), 'applied', 'a deauthorization disables the account');
select is(pg_temp.event('{"payouts_enabled": true, "transfers": "active", "observed_at": "2030-01-01T00:00:00Z"}'),
  'no_effect', 'a disabled account stays disabled');

select * from finish();
rollback;
