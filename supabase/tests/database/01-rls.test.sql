-- Row level security and privileges: who can read and write which public table.
--
-- Users, accounts and rows are made here with fixed ids inside the test's transaction, which
-- is rolled back at the end: nothing depends on the seed or on another test file.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(73);

-- Section - fixture
-- a: owns a personal account and the team account; c: member of the team only; b: alone.
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000001a1', 'rls-a@example.test'),
  ('00000000-0000-4000-8000-0000000001b1', 'rls-b@example.test'),
  ('00000000-0000-4000-8000-0000000001c1', 'rls-c@example.test');
insert into public.accounts (id, name) values ('00000000-0000-4000-8000-0000000001f1', 'RLS team');
insert into public.account_members (account_id, user_id, role) values
  ('00000000-0000-4000-8000-0000000001f1', '00000000-0000-4000-8000-0000000001a1', 'owner'),
  ('00000000-0000-4000-8000-0000000001f1', '00000000-0000-4000-8000-0000000001c1', 'member');
do $$ begin perform settle.ensure_wallet('00000000-0000-4000-8000-0000000001f1', 'USD'); end $$;

insert into public.plans (id, name, amount, currency, billing_interval, active) values
  ('rls_plan', 'RLS plan', 1000, 'INR', 'month', true),
  ('rls_plan_off', 'RLS retired plan', 1000, 'INR', 'month', false);
insert into public.products (id, name, amount, currency, active) values
  ('rls_product', 'RLS product', 500, 'INR', true),
  ('rls_product_off', 'RLS retired product', 500, 'INR', false);

insert into public.orders (account_id, created_by, gateway, purpose, plan_id, amount, currency) values
  (tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001a1',
   'razorpay', 'wallet_topup', null, 1000, 'INR'),
  (tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001a1',
   'razorpay', 'plan', 'rls_plan', 1000, 'INR'),
  ('00000000-0000-4000-8000-0000000001f1', '00000000-0000-4000-8000-0000000001c1',
   'stripe', 'wallet_topup', null, 500, 'USD'),
  (tests.personal('00000000-0000-4000-8000-0000000001b1'), '00000000-0000-4000-8000-0000000001b1',
   'razorpay', 'wallet_topup', null, 2000, 'INR');

do $$
begin
  perform settle.post_transaction('topup', 'rls:topup-a', null, null, jsonb_build_array(
    jsonb_build_object('wallet_id', settle.ensure_wallet(tests.personal('00000000-0000-4000-8000-0000000001a1'), 'INR'),
      'currency', 'INR', 'amount', 1000),
    jsonb_build_object('system_account', 'gateway:razorpay', 'currency', 'INR', 'amount', -1000)));
  perform settle.post_transaction('topup', 'rls:topup-team', null, null, jsonb_build_array(
    jsonb_build_object('wallet_id', settle.ensure_wallet('00000000-0000-4000-8000-0000000001f1', 'USD'),
      'currency', 'USD', 'amount', 500),
    jsonb_build_object('system_account', 'gateway:stripe', 'currency', 'USD', 'amount', -500)));
  perform settle.post_transaction('topup', 'rls:topup-b', null, null, jsonb_build_array(
    jsonb_build_object('wallet_id', settle.ensure_wallet(tests.personal('00000000-0000-4000-8000-0000000001b1'), 'INR'),
      'currency', 'INR', 'amount', 2000),
    jsonb_build_object('system_account', 'gateway:razorpay', 'currency', 'INR', 'amount', -2000)));
  -- Only house accounts: no user may see it.
  perform settle.post_transaction('purchase', 'rls:house-only', null, null, jsonb_build_array(
    jsonb_build_object('system_account', 'revenue:plan', 'currency', 'INR', 'amount', 100),
    jsonb_build_object('system_account', 'gateway:razorpay', 'currency', 'INR', 'amount', -100)));
end
$$;

insert into public.webhook_events (gateway, event_id, event_type, raw_body)
values ('razorpay', 'evt_rls_1', 'payment.captured', '{}');

-- Section - RLS is on everywhere
select ok(
  (select count(*) from pg_class c
   where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')) >= 10,
  'public has the expected tables (the RLS check below is not vacuous)'
);
select is(
  array(select c.relname::text from pg_class c
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
          and not c.relrowsecurity order by 1),
  '{}'::text[],
  'every table in schema public has row level security enabled'
);

-- Section - table privileges (every public table, so new tables are covered too)
select is(
  array(select format('%s %s on %s', r.rolname, p.priv, c.relname)
        from pg_class c
        cross join (values ('anon'), ('authenticated')) r (rolname)
        cross join unnest(array['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p (priv)
        where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
          and has_table_privilege(r.rolname, c.oid, p.priv)
        order by 1),
  '{}'::text[],
  'anon and authenticated hold no write privilege on any public table');
select set_eq(
  $$select c.relname::text from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
      and has_table_privilege('anon', c.oid, 'SELECT')$$,
  array['currencies', 'plans', 'products'],
  'anon can select from the catalog tables only');
select set_eq(
  $$select c.relname::text from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
      and has_table_privilege('authenticated', c.oid, 'SELECT')$$,
  array['currencies', 'plans', 'products', 'accounts', 'account_members', 'wallets', 'orders',
        'ledger_entries', 'ledger_transactions', 'payment_methods', 'refunds', 'subscriptions',
        'subscription_periods', 'wallet_charges', 'wallet_charge_refunds',
        -- marketplace escrow: engagements (members of either side, RLS) and the split policy
        'engagements', 'escrow_policies',
        'payout_policies', 'payout_accounts', 'payouts', 'disputes'],
  'authenticated can select the member tables only (not webhook_events, gateway_customers, the outbox or rate limits)');
-- New settle functions are executable by PUBLIC unless a migration revokes it (the schema's
-- default-privilege revoke does not apply): this allowlist catches one that forgot.
select set_eq(
  $$select p.oid::regprocedure::text from pg_proc p
    where p.pronamespace = 'settle'::regnamespace
      and (has_function_privilege('authenticated', p.oid, 'execute')
           or has_function_privilege('anon', p.oid, 'execute'))$$,
  array['settle.is_member(uuid)', 'settle.has_role_on_account(uuid,text)',
        'settle.create_order(text,text,text,text,bigint,text,uuid,text,text)',
        -- with the request's claim on the gateway call (create-order's one statement)
        'settle.create_order(text,text,text,text,bigint,text,uuid,text,text,uuid,integer)',
        'settle.cancel_subscription(uuid,boolean)',
        'settle.request_refund(uuid,bigint,text,text,text)',
        'settle.can_read_payment_stats(uuid)',
        'settle.pay_order_from_wallet(text,text,text,uuid,text,text)',
        -- marketplace escrow, as the payer or payee (auth.uid() decides what each may do)
        'settle.create_engagement(uuid,uuid,bigint,text,text,text,integer,text,text)',
        'settle.create_escrow_order(text,uuid,uuid,text,text)',
        'settle.complete_engagement(uuid,integer)', 'settle.dispute_engagement(uuid,text)',
        'settle.cancel_engagement(uuid)', 'settle.engagement_json(engagements)',
        'settle.request_payout(uuid,bigint,text,text,text)',
        'settle.disable_payout_account(uuid)'],
  'users may execute exactly the settle functions meant for them');

-- Section - a member reads exactly their accounts' rows (a: personal + team)
select tests.login('00000000-0000-4000-8000-0000000001a1');
select bag_eq('select id from public.accounts',
  array[tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001f1'::uuid],
  'owner: accounts are their personal and team account');
select bag_eq('select account_id, user_id from public.account_members',
  format($$values (%L::uuid, %L::uuid), (%L::uuid, %L::uuid), (%L::uuid, %L::uuid)$$,
    tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001a1',
    '00000000-0000-4000-8000-0000000001f1', '00000000-0000-4000-8000-0000000001a1',
    '00000000-0000-4000-8000-0000000001f1', '00000000-0000-4000-8000-0000000001c1'),
  'owner: memberships of their accounts, including the other team member');
select bag_eq('select account_id from public.wallets',
  array[tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001f1'::uuid],
  'owner: wallets of their accounts');
select bag_eq('select account_id from public.orders',
  array[tests.personal('00000000-0000-4000-8000-0000000001a1'), tests.personal('00000000-0000-4000-8000-0000000001a1'),
        '00000000-0000-4000-8000-0000000001f1'::uuid],
  'owner: orders of their accounts, including one another member created');
select bag_eq('select account_id from public.ledger_entries',
  array[tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001f1'::uuid],
  'owner: only their wallets'' ledger entries (house-account legs stay hidden)');
select bag_eq('select idempotency_key from public.ledger_transactions',
  array['rls:topup-a', 'rls:topup-team'],
  'owner: only ledger transactions touching their accounts');

-- c is a plain member of the team account (and owns its own personal account).
select tests.login('00000000-0000-4000-8000-0000000001c1');
select bag_eq('select id from public.accounts',
  array[tests.personal('00000000-0000-4000-8000-0000000001c1'), '00000000-0000-4000-8000-0000000001f1'::uuid],
  'member: their personal account and the team, not the owner''s personal account');
select bag_eq('select account_id, user_id from public.account_members',
  format($$values (%L::uuid, %L::uuid), (%L::uuid, %L::uuid), (%L::uuid, %L::uuid)$$,
    tests.personal('00000000-0000-4000-8000-0000000001c1'), '00000000-0000-4000-8000-0000000001c1',
    '00000000-0000-4000-8000-0000000001f1', '00000000-0000-4000-8000-0000000001a1',
    '00000000-0000-4000-8000-0000000001f1', '00000000-0000-4000-8000-0000000001c1'),
  'member: memberships of their accounts only');
select bag_eq('select account_id from public.wallets',
  array[tests.personal('00000000-0000-4000-8000-0000000001c1'), '00000000-0000-4000-8000-0000000001f1'::uuid],
  'member: wallets of their accounts only');
select bag_eq('select account_id from public.orders', array['00000000-0000-4000-8000-0000000001f1'::uuid],
  'member: the team''s orders only');
select bag_eq('select account_id from public.ledger_entries', array['00000000-0000-4000-8000-0000000001f1'::uuid],
  'member: the team wallet''s ledger entries only');
select bag_eq('select idempotency_key from public.ledger_transactions', array['rls:topup-team'],
  'member: the team''s ledger transactions only');

-- Section - a non-member reads none of another account's rows
select tests.login('00000000-0000-4000-8000-0000000001b1');
select bag_eq('select id from public.accounts',
  array[tests.personal('00000000-0000-4000-8000-0000000001b1')], 'non-member: only their own account');
select bag_eq('select account_id, user_id from public.account_members',
  format($$values (%L::uuid, %L::uuid)$$,
    tests.personal('00000000-0000-4000-8000-0000000001b1'), '00000000-0000-4000-8000-0000000001b1'),
  'non-member: only their own membership');
select bag_eq('select account_id from public.wallets',
  array[tests.personal('00000000-0000-4000-8000-0000000001b1')], 'non-member: only their own wallet');
select bag_eq('select account_id from public.orders',
  array[tests.personal('00000000-0000-4000-8000-0000000001b1')], 'non-member: only their own order');
select bag_eq('select account_id from public.ledger_entries',
  array[tests.personal('00000000-0000-4000-8000-0000000001b1')], 'non-member: only their own ledger entry');
select bag_eq('select idempotency_key from public.ledger_transactions', array['rls:topup-b'],
  'non-member: only their own ledger transaction');

select is((select count(*)::int from public.accounts
           where id in (tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001f1')),
  0, 'non-member sees none of a''s accounts, even asking by id');
select is((select count(*)::int from public.account_members
           where user_id in ('00000000-0000-4000-8000-0000000001a1', '00000000-0000-4000-8000-0000000001c1')),
  0, 'non-member sees none of a''s or c''s memberships');
select is((select count(*)::int from public.wallets
           where account_id in (tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001f1')),
  0, 'non-member sees none of a''s wallets');
select is((select count(*)::int from public.orders
           where account_id in (tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001f1')),
  0, 'non-member sees none of a''s orders');
select is((select count(*)::int from public.ledger_entries
           where account_id in (tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001f1')
              or account_id is null),
  0, 'non-member sees none of a''s ledger entries nor any house-account leg');
select is((select count(*)::int from public.ledger_transactions
           where idempotency_key in ('rls:topup-a', 'rls:topup-team', 'rls:house-only')),
  0, 'non-member sees none of a''s ledger transactions nor house-only ones');
select is(settle.is_member(tests.personal('00000000-0000-4000-8000-0000000001a1')), false,
  'settle.is_member is false for an account the caller does not belong to');

-- Section - anon reads no account data (no grants at all: permission denied, not zero rows)
select tests.login_anon();
select throws_ok('select * from public.accounts', '42501', null, 'anon: accounts are permission denied');
select throws_ok('select * from public.account_members', '42501', null, 'anon: account_members are permission denied');
select throws_ok('select * from public.wallets', '42501', null, 'anon: wallets are permission denied');
select throws_ok('select * from public.orders', '42501', null, 'anon: orders are permission denied');
select throws_ok('select * from public.ledger_entries', '42501', null, 'anon: ledger_entries are permission denied');
select throws_ok('select * from public.ledger_transactions', '42501', null, 'anon: ledger_transactions are permission denied');
select throws_ok('select * from public.webhook_events', '42501', null, 'anon: webhook_events are permission denied');

-- Section - the catalog is public, active rows only
select ok((select count(*) from public.currencies where code in ('INR', 'USD', 'JPY', 'KWD')) = 4,
  'anon reads currencies');
select set_eq($$select id from public.plans where id like 'rls\_%'$$, array['rls_plan'],
  'anon reads active plans and not retired ones');
select set_eq($$select id from public.products where id like 'rls\_%'$$, array['rls_product'],
  'anon reads active products and not retired ones');
select throws_ok($$insert into public.currencies (code, exponent, topup_min, topup_max) values ('XTS', 2, 1, 2)$$,
  '42501', null, 'anon cannot add a currency');
select throws_ok($$update public.plans set amount = 1 where id = 'rls_plan'$$, '42501', null, 'anon cannot reprice a plan');
select throws_ok($$select settle.create_order('razorpay', 'plan', 'rls_plan', null, null, null, null, null, null)$$,
  '42501', null, 'anon cannot reach settle functions');

select tests.login('00000000-0000-4000-8000-0000000001a1');
select set_eq($$select id from public.plans where id like 'rls\_%'$$, array['rls_plan'],
  'authenticated reads active plans and not retired ones');
select set_eq($$select id from public.products where id like 'rls\_%'$$, array['rls_product'],
  'authenticated reads active products and not retired ones');
select throws_ok($$update public.products set amount = 1 where id = 'rls_product'$$, '42501', null,
  'authenticated cannot reprice a product');

-- Section - webhook events are never user-readable
select throws_ok('select * from public.webhook_events', '42501', null, 'authenticated: webhook_events are permission denied');

-- Section - authenticated writes nothing directly (only SELECT is granted)
select throws_ok(format($$insert into public.orders (account_id, created_by, gateway, purpose, amount, currency)
  values (%L, %L, 'razorpay', 'wallet_topup', 1000, 'INR')$$,
  tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001a1'),
  '42501', null, 'authenticated cannot insert an order, even for their own account');
select throws_ok($$update public.orders set status = 'paid', paid_at = now()$$, '42501', null,
  'authenticated cannot update orders');
select throws_ok('delete from public.orders', '42501', null, 'authenticated cannot delete orders');
select throws_ok(format($$insert into public.wallets (account_id, currency) values (%L, 'EUR')$$,
  tests.personal('00000000-0000-4000-8000-0000000001a1')),
  '42501', null, 'authenticated cannot insert a wallet');
select throws_ok('update public.wallets set balance = balance + 100000', '42501', null,
  'authenticated cannot update wallet balances');
select throws_ok('delete from public.wallets', '42501', null, 'authenticated cannot delete wallets');
select throws_ok($$insert into public.ledger_transactions (kind, idempotency_key) values ('adjustment', 'rls:forged')$$,
  '42501', null, 'authenticated cannot insert a ledger transaction');
select throws_ok($$update public.ledger_transactions set description = 'x'$$, '42501', null,
  'authenticated cannot update ledger transactions');
select throws_ok('delete from public.ledger_transactions', '42501', null, 'authenticated cannot delete ledger transactions');
select throws_ok(format($$insert into public.ledger_entries (transaction_id, system_account, currency, amount)
  values (%L, 'revenue:plan', 'INR', 1)$$, gen_random_uuid()),
  '42501', null, 'authenticated cannot insert a ledger entry');
select throws_ok('update public.ledger_entries set amount = amount * 2', '42501', null,
  'authenticated cannot update ledger entries');
select throws_ok('delete from public.ledger_entries', '42501', null, 'authenticated cannot delete ledger entries');
select throws_ok($$update public.accounts set name = 'renamed'$$, '42501', null, 'authenticated cannot update accounts');

select tests.login('00000000-0000-4000-8000-0000000001b1');
select throws_ok(format($$insert into public.account_members (account_id, user_id, role) values (%L, %L, 'owner')$$,
  tests.personal('00000000-0000-4000-8000-0000000001a1'), '00000000-0000-4000-8000-0000000001b1'),
  '42501', null, 'a user cannot add themselves to someone else''s account');
select throws_ok(format($$insert into public.accounts (name, personal_owner_id) values ('mine', %L)$$,
  '00000000-0000-4000-8000-0000000001b1'), '42501', null, 'authenticated cannot create accounts directly');

-- Section - internal functions are not callable by users
select throws_ok($$select settle.apply_payment('razorpay', 'captured', 'order_x', 'pay_x', null, null)$$,
  '42501', null, 'authenticated cannot call settle.apply_payment');
select throws_ok($$select settle.post_transaction('adjustment', 'rls:forged', null, null, '[]')$$,
  '42501', null, 'authenticated cannot call settle.post_transaction');
select throws_ok($$select settle.ingest_webhook(row('razorpay', 'evt_forged', 'payment.captured', 'captured',
  'order_x', 'pay_x', 1, 'INR', now(), '{}', null, null, null, null)::settle.incoming_event)$$,
  '42501', null, 'authenticated cannot call settle.ingest_webhook');
select throws_ok(format($$select settle.ensure_wallet(%L, 'EUR')$$,
  tests.personal('00000000-0000-4000-8000-0000000001b1')),
  '42501', null, 'authenticated cannot call settle.ensure_wallet');
select throws_ok('select * from settle.order_transitions', '42501', null,
  'authenticated cannot read settle.order_transitions');
select tests.logout();

-- Section - every new user gets a personal account, an owner membership and an INR wallet
insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000001d1', 'rls-d@example.test');
select results_eq(
  $$select name from public.accounts where personal_owner_id = '00000000-0000-4000-8000-0000000001d1'$$,
  array['rls-d@example.test'],
  'a new user gets exactly one personal account, named after their email');
select results_eq(
  $$select account_id, role from public.account_members where user_id = '00000000-0000-4000-8000-0000000001d1'$$,
  format($$values (%L::uuid, 'owner'::text)$$, tests.personal('00000000-0000-4000-8000-0000000001d1')),
  'a new user is the owner of their personal account and a member of nothing else');
select results_eq(
  format($$select currency, balance from public.wallets where account_id = %L$$,
    tests.personal('00000000-0000-4000-8000-0000000001d1')),
  $$values ('INR'::text, 0::bigint)$$,
  'a new user has exactly one wallet: INR with balance 0');
insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000001e1', null);
select results_eq(
  $$select name from public.accounts where personal_owner_id = '00000000-0000-4000-8000-0000000001e1'$$,
  array['Personal account'],
  'a new user without an email still gets a personal account');

select tests.login('00000000-0000-4000-8000-0000000001d1');
select results_eq('select currency, balance from public.wallets', $$values ('INR'::text, 0::bigint)$$,
  'the new user reads their own wallet through RLS');
select tests.logout();

select * from finish();
rollback;
