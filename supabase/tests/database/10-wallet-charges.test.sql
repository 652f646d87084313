-- Wallet charges and holds: the SQL functions' answers and errors, the hold's single
-- resolution, the sweep, refunds of charges, wallet-paid orders, who may call and read what,
-- and the audit of held accounts.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(34);

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-00000000c1a1', 'charge-a@test.local'),
  ('00000000-0000-4000-8000-00000000c1b1', 'charge-b@test.local');
create function pg_temp.acct() returns uuid language sql stable as $$
  select tests.personal('00000000-0000-4000-8000-00000000c1a1')
$$;
create function pg_temp.held() returns bigint language sql stable security definer as $$
  select coalesce(sum(amount), 0)::bigint from public.ledger_entries
  where system_account = settle.held_account(pg_temp.acct()) and currency = 'INR'
$$;
create function pg_temp.charge_id(p_key text) returns uuid language sql stable security definer as $$
  select id from public.wallet_charges where idempotency_key = p_key
$$;
select settle.post_transaction('topup', 'wc:fund', null, 'fund', jsonb_build_array(
  jsonb_build_object('wallet_id', settle.ensure_wallet(pg_temp.acct(), 'INR'), 'currency', 'INR', 'amount', 10000),
  jsonb_build_object('system_account', 'gateway:razorpay', 'currency', 'INR', 'amount', -10000)));

-- Section - who may call
select tests.login('00000000-0000-4000-8000-00000000c1a1');
select throws_ok(format($$select settle.charge_wallet(%L, 100, 'INR', 'wc:user')$$, pg_temp.acct()),
  '42501', null, 'a signed-in user cannot charge, not even their own wallet');
select throws_ok($$select settle.expire_wallet_holds()$$, '42501', null, 'nor run the sweep');
select tests.login_anon();
select throws_ok(format($$select settle.charge_wallet(%L, 100, 'INR', 'wc:anon')$$, pg_temp.acct()),
  '42501', null, 'anon cannot charge');
select throws_ok('select * from public.wallet_charges', '42501', null, 'anon cannot read charges');

-- Section - charges
select tests.login_service();
select is(settle.charge_wallet(pg_temp.acct(), 2500, 'INR', 'wc:c1', p_reference => 'r1') #>> '{charge,status}',
  'captured', 'a charge is captured at once');
select is(tests.balance('00000000-0000-4000-8000-00000000c1a1'), 7500::bigint, 'the wallet is debited');
select is((settle.charge_wallet(pg_temp.acct(), 2500, 'INR', 'wc:c1', p_reference => 'r1') ->> 'replayed')::boolean,
  true, 'the same key and terms replay');
select throws_ok(format($$select settle.charge_wallet(%L, 2500, 'INR', 'wc:c1')$$, pg_temp.acct()),
  'ST409', 'this Idempotency-Key was used with a different request', 'other terms under the key are refused');
select throws_ok(format($$select settle.charge_wallet(%L, 7501, 'INR', 'wc:c2')$$, pg_temp.acct()),
  'ST409', null, 'more than the balance is refused');
select throws_ok(format($$select settle.charge_wallet(%L, 0, 'INR', 'wc:c3')$$, pg_temp.acct()),
  'ST400', null, 'zero is refused');
select throws_ok(format($$select settle.charge_wallet(%L, 10000001, 'INR', 'wc:c4')$$, pg_temp.acct()),
  'ST400', null, 'over the currency''s bound is refused');
select throws_ok(format($$select settle.charge_wallet(%L, 100, 'EUR', 'wc:c5')$$, pg_temp.acct()),
  'ST409', 'the account has no EUR wallet', 'a currency without a wallet is refused');
select throws_ok(format($$select settle.charge_wallet(%L, 100, 'INR', null)$$, pg_temp.acct()),
  'ST400', null, 'a key is required');
select is((select count(*)::int from public.wallet_charges where account_id = pg_temp.acct()), 1,
  'refused charges wrote nothing');

-- Section - holds
select is(settle.charge_wallet(pg_temp.acct(), 3000, 'INR', 'wc:h1', false) #>> '{charge,status}',
  'held', 'a hold is held');
select is(tests.balance('00000000-0000-4000-8000-00000000c1a1'), 4500::bigint, 'held money is not spendable');
select is(pg_temp.held(), 3000::bigint, 'it sits on the account''s held account');
select throws_ok(format($$select settle.capture_wallet_charge(%L, 3001)$$, pg_temp.charge_id('wc:h1')),
  'ST409', null, 'a capture over the hold is refused');
select is(settle.capture_wallet_charge(pg_temp.charge_id('wc:h1'), 1000) #>> '{charge,amount_captured}',
  '1000', 'a partial capture');
select is(array[tests.balance('00000000-0000-4000-8000-00000000c1a1'), pg_temp.held()], array[6500, 0]::bigint[],
  'the rest is back in the wallet and nothing is held');
select throws_ok(format($$select settle.void_wallet_charge(%L)$$, pg_temp.charge_id('wc:h1')),
  'ST409', format('wallet charge %s is captured, not held', pg_temp.charge_id('wc:h1')),
  'a captured hold cannot be voided');
select settle.charge_wallet(pg_temp.acct(), 500, 'INR', 'wc:h2', false, 60);
select settle.charge_wallet(pg_temp.acct(), 700, 'INR', 'wc:h3', false);
select is(settle.expire_wallet_holds(now() + interval '61 seconds'), 1,
  'the sweep releases the hold that is due, not the other');
select is((select status || '/' || release_reason from public.wallet_charges where idempotency_key = 'wc:h2'),
  'released/expired', 'released as expired');
select throws_ok(format($$select settle.capture_wallet_charge(%L)$$, pg_temp.charge_id('wc:h2')),
  'ST409', null, 'an expired hold cannot be captured');
select is(settle.void_wallet_charge(pg_temp.charge_id('wc:h3')) #>> '{charge,release_reason}', 'voided',
  'a void releases');
select is(array[tests.balance('00000000-0000-4000-8000-00000000c1a1'), pg_temp.held()], array[6500, 0]::bigint[], 'both came back');

-- Section - refunds of charges
select is(settle.refund_wallet_charge(pg_temp.charge_id('wc:h1'), 600) #>> '{charge,amount_refunded}', '600',
  'a partial refund');
select throws_ok(format($$select settle.refund_wallet_charge(%L, 401)$$, pg_temp.charge_id('wc:h1')),
  'ST409', null, 'a refund beyond what was captured is refused');
select throws_ok(format($$select settle.refund_wallet_charge(%L)$$, pg_temp.charge_id('wc:h3')),
  'ST409', null, 'a released hold cannot be refunded');

-- Section - who may read
select tests.login('00000000-0000-4000-8000-00000000c1a1');
select is((select count(*)::int from public.wallet_charges), 4, 'a member reads their charges');
select is((select count(*)::int from public.wallet_charge_refunds), 1, 'and their refunds');
select tests.login('00000000-0000-4000-8000-00000000c1b1');
select is((select count(*)::int from public.wallet_charges where account_id = pg_temp.acct()), 0,
  'a member of another account reads none');

-- Section - the audit
select tests.logout();
select is_empty('select * from settle.ledger_audit()', 'the ledger audits clean');
select settle.post_transaction('adjustment', 'wc:forged', null, 'forged', jsonb_build_array(
  jsonb_build_object('wallet_id', settle.ensure_wallet(pg_temp.acct(), 'INR'), 'currency', 'INR', 'amount', -1),
  jsonb_build_object('system_account', settle.held_account(pg_temp.acct()), 'currency', 'INR', 'amount', 1)));
select results_eq($$select invariant from settle.ledger_audit()$$, array['held_account_drift'],
  'money on a held account without a hold is found');

select * from finish();
rollback;
