-- The helpers 20261208000100_shared_prologues.sql made of blocks the concern files had copied:
-- settle.caller_account (the account a signed-in user acts for), settle.order_replay (an order's
-- idempotent replay) and settle.lock_payout (a payout, locked). Their errors (settle.fail's
-- SQLSTATE ST<status> and message), their answers, and that no API role may call them.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(26);

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-00000000d0a1', 'helpers-owner@test.local'),
  ('00000000-0000-4000-8000-00000000d0a2', 'helpers-member@test.local'),
  ('00000000-0000-4000-8000-00000000d0a3', 'helpers-stranger@test.local');
insert into public.accounts (id, name) values ('00000000-0000-4000-8000-00000000d0c1', 'helpers team');
insert into public.account_members (account_id, user_id, role) values
  ('00000000-0000-4000-8000-00000000d0c1', '00000000-0000-4000-8000-00000000d0a1', 'owner'),
  ('00000000-0000-4000-8000-00000000d0c1', '00000000-0000-4000-8000-00000000d0a2', 'member');

-- A user's claims while staying the owner role: the helpers are not executable by the API roles,
-- and the functions that call them run as their owner with the caller's claims.
create function pg_temp.claims(p_uid uuid) returns void language sql as $$
  select set_config('request.jwt.claims', case when p_uid is null then ''
    else jsonb_build_object('sub', p_uid, 'role', 'authenticated')::text end, true)
$$;

-- Section - settle.caller_account
select pg_temp.claims(null);
select throws_ok($$select settle.caller_account(null, 'only owners')$$, 'ST401',
  'a signed-in user is required', 'no user: 401 before anything is read');
select throws_ok($$select settle.caller_account('00000000-0000-4000-8000-00000000d0c1', null)$$,
  'ST401', 'a signed-in user is required', 'no user: 401 with an account too');

select pg_temp.claims('00000000-0000-4000-8000-00000000d0a1');
select is(settle.caller_account(null, 'only owners'),
  tests.personal('00000000-0000-4000-8000-00000000d0a1'),
  'no account given: the caller''s personal account (its owner passes the owner check)');
select is(settle.caller_account(null, null), tests.personal('00000000-0000-4000-8000-00000000d0a1'),
  'no account given, members allowed: the personal account');
select is(settle.caller_account('00000000-0000-4000-8000-00000000d0c1', 'only owners'),
  '00000000-0000-4000-8000-00000000d0c1'::uuid, 'an owner of a team account gets it');
select throws_ok(format($$select settle.caller_account(%L, null)$$,
    tests.personal('00000000-0000-4000-8000-00000000d0a3')),
  'ST404', 'account not found', 'another user''s personal account is not found');
select throws_ok(format($$select settle.caller_account(%L, 'only owners')$$,
    tests.personal('00000000-0000-4000-8000-00000000d0a3')),
  'ST404', 'account not found', 'not found comes before forbidden for a non-member');
select throws_ok($$select settle.caller_account('00000000-0000-4000-8000-00000000dfff', null)$$,
  'ST404', 'account not found', 'an unknown account id is not found');

select pg_temp.claims('00000000-0000-4000-8000-00000000d0a2');
select throws_ok($$select settle.caller_account('00000000-0000-4000-8000-00000000d0c1',
    'only an owner of the account can pay from it')$$,
  'ST403', 'only an owner of the account can pay from it',
  'a member who is not an owner: 403 with the caller''s message');
select throws_ok($$select settle.caller_account('00000000-0000-4000-8000-00000000d0c1', 'another message')$$,
  'ST403', 'another message', 'the 403 says what the caller asked it to');
select is(settle.caller_account('00000000-0000-4000-8000-00000000d0c1', null),
  '00000000-0000-4000-8000-00000000d0c1'::uuid, 'without an owner message any member gets the account');

-- The three callers answer as before: create_order (members), pay_order_from_wallet and
-- create_engagement (owners), as the signed-in member of the team account.
select tests.login('00000000-0000-4000-8000-00000000d0a2');
select is(settle.create_order('razorpay', 'wallet_topup', null, null, 10000, 'INR',
    '00000000-0000-4000-8000-00000000d0c1', null, null) #>> '{order,account_id}',
  '00000000-0000-4000-8000-00000000d0c1', 'create_order: a member orders for the team account');
select throws_ok($$select settle.pay_order_from_wallet('plan', 'pro_monthly', null,
    '00000000-0000-4000-8000-00000000d0c1', null, null)$$,
  'ST403', 'only an owner of the account can pay from its wallet',
  'pay_order_from_wallet: a member is forbidden, with its message');
select throws_ok(format($$select settle.create_engagement('00000000-0000-4000-8000-00000000d0c1', %L,
    1000, 'INR', 'a job', null, 24, null, null)$$, tests.personal('00000000-0000-4000-8000-00000000d0a3')),
  'ST403', 'only an owner of the account can pay from it',
  'create_engagement: a member is forbidden, with its message');
select tests.login('00000000-0000-4000-8000-00000000d0a3');
select throws_ok($$select settle.create_order('razorpay', 'wallet_topup', null, null, 10000, 'INR',
    '00000000-0000-4000-8000-00000000d0c1', null, null)$$,
  'ST404', 'account not found', 'create_order: a stranger''s order for the team account is not found');
select tests.logout();

-- Section - settle.order_replay
create temp table helper_order as
select jsonb_populate_record(null::public.orders, to_jsonb(o) || '{"request_hash": "h:1"}') as o
from public.orders o where o.account_id = '00000000-0000-4000-8000-00000000d0c1';
select is(settle.order_replay((select o from helper_order), 'h:1'),
  jsonb_build_object('order', (select to_jsonb(o) from helper_order), 'replayed', true),
  'the same request: the order as it is, replayed');
select throws_ok($$select settle.order_replay((select o from helper_order), 'h:2')$$, 'ST409',
  'this Idempotency-Key was used with a different request', 'another request under the key: 409');
select throws_ok($$select settle.order_replay((select o from helper_order), null)$$, 'ST409',
  'this Idempotency-Key was used with a different request', 'no request hash against a stored one: 409');

-- Section - settle.lock_payout
select settle.post_transaction('escrow_settlement', 'helpers:earn', null, 'earnings', jsonb_build_array(
  jsonb_build_object('wallet_id', settle.ensure_wallet(tests.personal('00000000-0000-4000-8000-00000000d0a1'), 'INR'),
    'currency', 'INR', 'amount', 50000),
  jsonb_build_object('system_account', 'test:earnings', 'currency', 'INR', 'amount', -50000)));
select tests.login_service();
select settle.create_payout_account('00000000-0000-4000-8000-00000000d0f1',
  tests.personal('00000000-0000-4000-8000-00000000d0a1'), '00000000-0000-4000-8000-00000000d0a1',
  'razorpayx', 'bank_account', '•••• 6789', '6789', null, 'cont_Helpers00001', 'fa_Helpers0000001');
select tests.logout();
create function pg_temp.request_payout() returns uuid language plpgsql as $$
declare
  v uuid;
begin
  perform tests.login('00000000-0000-4000-8000-00000000d0a1');
  v := (settle.request_payout('00000000-0000-4000-8000-00000000d0f1', 20000, 'INR', 'helpers:p1', 'h')
    #>> '{payout,id}')::uuid;
  perform tests.logout();
  return v;
end
$$;
create temp table helper_payout as select pg_temp.request_payout() as id;
select is((settle.lock_payout((select id from helper_payout))).amount, 20000::bigint,
  'a payout: its row');
select is((settle.lock_payout((select id from helper_payout))).status, 'pending',
  'a payout: as it is now');
select throws_ok($$select settle.lock_payout('00000000-0000-4000-8000-00000000dfff')$$, 'ST404',
  'payout not found', 'an unknown payout: 404');
select throws_ok($$select settle.lock_payout(null)$$, 'ST404', 'payout not found', 'no payout id: 404');

-- Section - who may call them
select tests.login('00000000-0000-4000-8000-00000000d0a1');
select throws_ok($$select settle.caller_account(null, null)$$, '42501', null,
  'a signed-in user cannot call caller_account directly');
select throws_ok($$select settle.lock_payout('00000000-0000-4000-8000-00000000dfff')$$, '42501', null,
  'nor lock_payout');
select tests.login_service();
select throws_ok($$select settle.lock_payout('00000000-0000-4000-8000-00000000dfff')$$, '42501', null,
  'the service role cannot call lock_payout either (the payout functions call it)');
select tests.logout();
select is((select count(*)::int from pg_proc where pronamespace = 'settle'::regnamespace
           and proname = 'wallet_order_replay'), 0, 'the old name is gone: one replay function for orders');

select * from finish();
rollback;
