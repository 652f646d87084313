-- Subscriptions: a paid plan order grants one period (start, extend from the period's end,
-- restart after a lapse), never twice for one order; accounts.plan/is_pro follow the
-- subscription; lapse_subscriptions, cancel_subscription (who may), refunds taking a period
-- back, and what users may read or write.
--
-- now() is fixed for the whole transaction, so "from now" and "from the period's end" are
-- compared as exact timestamps.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(121);

-- A created plan order at the plan's price, with its Razorpay order id already set (as the
-- create-order function leaves it). Run as the database owner.
create function pg_temp.plan_order(p_account uuid, p_uid uuid, p_plan text, p_gateway_order_id text)
returns uuid language sql security definer as $$
  insert into public.orders (account_id, created_by, gateway, purpose, plan_id, amount, currency, gateway_order_id)
  select p_account, p_uid, 'razorpay', 'plan', p.id, p.amount, p.currency, p_gateway_order_id
  from public.plans p where p.id = p_plan
  returning id
$$;
-- Captures the order's payment (pay_<gateway order id>) for its exact amount; the outcome.
create function pg_temp.pay(p_gateway_order_id text) returns text
language sql security definer as $$
  select settle.apply_payment('razorpay', 'captured', o.gateway_order_id, 'pay_' || o.gateway_order_id,
    o.amount, o.currency) ->> 'outcome'
  from public.orders o where o.gateway = 'razorpay' and o.gateway_order_id = p_gateway_order_id
$$;
create function pg_temp.sub_status(p_account uuid) returns text
language sql stable security definer as $$
  select status from public.subscriptions where account_id = p_account
$$;
create function pg_temp.sub_end(p_account uuid) returns timestamptz
language sql stable security definer as $$
  select current_period_end from public.subscriptions where account_id = p_account
$$;
create function pg_temp.entitlement(p_account uuid) returns table (plan text, is_pro boolean, ends_at timestamptz)
language sql stable security definer as $$
  select plan, is_pro, entitlement_ends_at from public.accounts where id = p_account
$$;
create function pg_temp.periods(p_account uuid) returns int
language sql stable security definer as $$
  select count(*)::int from public.subscription_periods where account_id = p_account
$$;
-- Active subscriptions outside this test's accounts that a lapse at p_now would also end (none
-- on a fresh database), so lapse counts stay exact on a database with other data.
create function pg_temp.others_due(p_now timestamptz) returns int
language sql stable security definer as $$
  select count(*)::int from public.subscriptions s
  join public.accounts a on a.id = s.account_id
  where s.status = 'active' and s.current_period_end <= p_now
    and a.id <> '00000000-0000-4000-8000-0000000006f1'
    and not exists (select 1 from auth.users u
                    where u.id = a.personal_owner_id and u.email like 'subs-%@example.test')
$$;

-- Section - fixture
-- a: owns a personal account and the team; c: plain member of the team; b: alone.
-- d, e, f, g: one subscription story each, on their personal accounts.
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000006a1', 'subs-a@example.test'),
  ('00000000-0000-4000-8000-0000000006b1', 'subs-b@example.test'),
  ('00000000-0000-4000-8000-0000000006c1', 'subs-c@example.test'),
  ('00000000-0000-4000-8000-0000000006d1', 'subs-d@example.test'),
  ('00000000-0000-4000-8000-0000000006e1', 'subs-e@example.test'),
  ('00000000-0000-4000-8000-000000000601', 'subs-f@example.test'),
  ('00000000-0000-4000-8000-000000000602', 'subs-g@example.test');
insert into public.accounts (id, name) values ('00000000-0000-4000-8000-0000000006f1', 'Subs team');
insert into public.account_members (account_id, user_id, role) values
  ('00000000-0000-4000-8000-0000000006f1', '00000000-0000-4000-8000-0000000006a1', 'owner'),
  ('00000000-0000-4000-8000-0000000006f1', '00000000-0000-4000-8000-0000000006c1', 'member');
insert into public.plans (id, name, amount, currency, billing_interval, interval_count) values
  ('subs_3days', 'Subs three days', 500, 'INR', 'day', 3);

-- Section - the first purchase starts an active subscription
select is(pg_temp.sub_status(tests.personal('00000000-0000-4000-8000-0000000006a1')), null,
  'before buying a plan the account has no subscription');
select results_eq(
  $$select * from pg_temp.entitlement(tests.personal('00000000-0000-4000-8000-0000000006a1'))$$,
  $$values (null::text, false, null::timestamptz)$$,
  'before buying a plan the account is not pro');

select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-0000000006a1'),
  '00000000-0000-4000-8000-0000000006a1', 'pro_monthly', 'order_S_A1'), null, 'a monthly plan order');
select is(pg_temp.sub_status(tests.personal('00000000-0000-4000-8000-0000000006a1')), null,
  'an unpaid plan order grants nothing');
select is(pg_temp.pay('order_S_A1'), 'applied', 'the monthly plan order is paid');
select results_eq(
  $$select plan_id, status, current_period_start, current_period_end, cancel_at_period_end, canceled_at
    from public.subscriptions where account_id = tests.personal('00000000-0000-4000-8000-0000000006a1')$$,
  $$values ('pro_monthly'::text, 'active'::text, now(), now() + interval '1 month', false, null::timestamptz)$$,
  'the first purchase creates an active subscription for one month from now');
select results_eq(
  $$select * from pg_temp.entitlement(tests.personal('00000000-0000-4000-8000-0000000006a1'))$$,
  $$values ('pro_monthly'::text, true, now() + interval '1 month')$$,
  'the account is pro on the monthly plan until the period ends');
select results_eq(
  $$select p.period_start, p.period_end, p.revoked_at, p.plan_id
    from public.subscription_periods p join public.orders o on o.id = p.order_id
    where o.gateway_order_id = 'order_S_A1'$$,
  $$values (now(), now() + interval '1 month', null::timestamptz, 'pro_monthly'::text)$$,
  'the order''s period is recorded');

-- Section - a second purchase extends from the end of the current period
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-0000000006a1'),
  '00000000-0000-4000-8000-0000000006a1', 'pro_yearly', 'order_S_A2'), null, 'a yearly plan order');
select is(pg_temp.pay('order_S_A2'), 'applied', 'the yearly plan order is paid');
select results_eq(
  $$select plan_id, status, current_period_start, current_period_end
    from public.subscriptions where account_id = tests.personal('00000000-0000-4000-8000-0000000006a1')$$,
  $$values ('pro_yearly'::text, 'active'::text, now(), now() + interval '1 month' + interval '1 year')$$,
  'the yearly purchase extends from the end of the monthly period, not from now');
select results_eq(
  $$select p.period_start, p.period_end from public.subscription_periods p
    join public.orders o on o.id = p.order_id where o.gateway_order_id = 'order_S_A2'$$,
  $$values (now() + interval '1 month', now() + interval '1 month' + interval '1 year')$$,
  'the second period starts where the first ends');
select results_eq(
  $$select * from pg_temp.entitlement(tests.personal('00000000-0000-4000-8000-0000000006a1'))$$,
  $$values ('pro_yearly'::text, true, now() + interval '1 month' + interval '1 year')$$,
  'the account''s plan and entitlement end follow the extension');

-- Section - the same payment applied again never extends twice
select is(pg_temp.pay('order_S_A2'), 'no_effect', 'the same capture applied again has no effect');
select is(pg_temp.sub_end(tests.personal('00000000-0000-4000-8000-0000000006a1')),
  now() + interval '1 month' + interval '1 year', 'the repeated capture does not extend the period');
select is(pg_temp.periods(tests.personal('00000000-0000-4000-8000-0000000006a1')), 2,
  'the repeated capture grants no second period');
do $$ begin perform settle.grant_subscription_period(
  (select id from public.orders where gateway_order_id = 'order_S_A2')); end $$;
select is(pg_temp.sub_end(tests.personal('00000000-0000-4000-8000-0000000006a1')),
  now() + interval '1 month' + interval '1 year', 'granting an order''s period a second time changes nothing');

select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-0000000006a1'),
  '00000000-0000-4000-8000-0000000006a1', 'pro_monthly', 'order_S_A3'), null, 'a third plan order');
select results_eq(
  $$select r ->> 'duplicate', r ->> 'outcome'
    from settle.ingest_webhook(row('razorpay', 'evt_S_A3', 'payment.captured', 'captured', 'order_S_A3',
      'pay_order_S_A3', 29900, 'INR', now(), '{}', null, null, null, null)::settle.incoming_event) r$$,
  $$values ('false'::text, 'applied'::text)$$,
  'a payment.captured webhook pays the third order');
select results_eq(
  $$select r ->> 'duplicate', r ->> 'outcome'
    from settle.ingest_webhook(row('razorpay', 'evt_S_A3', 'payment.captured', 'captured', 'order_S_A3',
      'pay_order_S_A3', 29900, 'INR', now(), '{}', null, null, null, null)::settle.incoming_event) r$$,
  $$values ('true'::text, 'duplicate'::text)$$,
  'the same event delivered again is a duplicate');
select is(
  settle.ingest_webhook(row('razorpay', 'evt_S_A3_late', 'order.paid', 'captured', 'order_S_A3',
    'pay_order_S_A3', 29900, 'INR', now(), '{}', null, null, null, null)::settle.incoming_event) ->> 'outcome',
  'no_effect', 'another event for the same capture (order.paid after payment.captured) has no effect');
select is(pg_temp.sub_end(tests.personal('00000000-0000-4000-8000-0000000006a1')),
  now() + interval '1 month' + interval '1 year' + interval '1 month',
  'the webhook extended the subscription by exactly one month, once');
select is(pg_temp.periods(tests.personal('00000000-0000-4000-8000-0000000006a1')), 3,
  'three paid plan orders, three periods');

-- Section - other purchases grant nothing
insert into public.orders (account_id, created_by, gateway, purpose, amount, currency, gateway_order_id)
values (tests.personal('00000000-0000-4000-8000-0000000006b1'), '00000000-0000-4000-8000-0000000006b1',
  'razorpay', 'wallet_topup', 1000, 'INR', 'order_S_B1');
select is(pg_temp.pay('order_S_B1'), 'applied', 'b pays a wallet top-up');
select is(pg_temp.sub_status(tests.personal('00000000-0000-4000-8000-0000000006b1')), null,
  'a top-up creates no subscription');
select is((select is_pro from public.accounts
           where id = tests.personal('00000000-0000-4000-8000-0000000006b1')), false,
  'a top-up does not make the account pro');

-- Section - lapsing: an ended period becomes past_due
select isnt(pg_temp.plan_order('00000000-0000-4000-8000-0000000006f1', '00000000-0000-4000-8000-0000000006c1',
  'subs_3days', 'order_S_T1'), null, 'the team member orders the three-day plan for the team');
select is(pg_temp.pay('order_S_T1'), 'applied', 'the team''s plan order is paid');
select results_eq(
  $$select plan_id, status, current_period_start, current_period_end
    from public.subscriptions where account_id = '00000000-0000-4000-8000-0000000006f1'$$,
  $$values ('subs_3days'::text, 'active'::text, now(), now() + interval '3 days')$$,
  'a day-interval plan runs interval_count days');

select is(settle.lapse_subscriptions(now() + interval '3 days' - interval '1 second'),
  pg_temp.others_due(now() + interval '3 days' - interval '1 second'),
  'lapse before the period ends lapses none of ours');
select is(pg_temp.sub_status('00000000-0000-4000-8000-0000000006f1'), 'active',
  'the team''s subscription is still active a second before its end');
select is(settle.lapse_subscriptions(now() + interval '3 days'),
  1 + pg_temp.others_due(now() + interval '3 days'),
  'lapse at the period''s end lapses the team''s subscription (a''s runs for a year more)');
select results_eq(
  $$select status, canceled_at, current_period_end from public.subscriptions
    where account_id = '00000000-0000-4000-8000-0000000006f1'$$,
  $$values ('past_due'::text, null::timestamptz, now() + interval '3 days')$$,
  'an ended period without cancellation is past_due');
select results_eq(
  $$select * from pg_temp.entitlement('00000000-0000-4000-8000-0000000006f1')$$,
  $$values (null::text, false, null::timestamptz)$$,
  'a past_due account is not pro and has no plan');
select is(pg_temp.sub_status(tests.personal('00000000-0000-4000-8000-0000000006a1')), 'active',
  'the lapse left a''s subscription active');

-- Section - buying again after a lapse restarts from now
-- d's period ended a week ago and the lapse job ran.
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-0000000006d1'),
  '00000000-0000-4000-8000-0000000006d1', 'subs_3days', 'order_S_D1'), null, 'd orders the three-day plan');
select is(pg_temp.pay('order_S_D1'), 'applied', 'd''s first order is paid');
update public.subscriptions
set current_period_start = now() - interval '10 days', current_period_end = now() - interval '7 days'
where account_id = tests.personal('00000000-0000-4000-8000-0000000006d1');
select is(settle.lapse_subscriptions(now()), 1 + pg_temp.others_due(now()), 'the lapse job ends d''s period');
select is(pg_temp.sub_status(tests.personal('00000000-0000-4000-8000-0000000006d1')), 'past_due',
  'd is past_due');
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-0000000006d1'),
  '00000000-0000-4000-8000-0000000006d1', 'pro_monthly', 'order_S_D2'), null, 'd orders the monthly plan');
select is(pg_temp.pay('order_S_D2'), 'applied', 'd''s second order is paid');
select results_eq(
  $$select plan_id, status, current_period_start, current_period_end
    from public.subscriptions where account_id = tests.personal('00000000-0000-4000-8000-0000000006d1')$$,
  $$values ('pro_monthly'::text, 'active'::text, now(), now() + interval '1 month')$$,
  'buying after a lapse restarts the subscription from now, not from the old period''s end');
select results_eq(
  $$select * from pg_temp.entitlement(tests.personal('00000000-0000-4000-8000-0000000006d1'))$$,
  $$values ('pro_monthly'::text, true, now() + interval '1 month')$$,
  'd is pro again');
select is((select count(*)::int from public.subscriptions
           where account_id = tests.personal('00000000-0000-4000-8000-0000000006d1')), 1,
  'still one subscription per account');

-- An active subscription whose period ended before the lapse job ran also restarts from now.
update public.subscriptions
set current_period_start = now() - interval '40 days', current_period_end = now() - interval '10 days'
where account_id = tests.personal('00000000-0000-4000-8000-0000000006d1');
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-0000000006d1'),
  '00000000-0000-4000-8000-0000000006d1', 'pro_monthly', 'order_S_D3'), null, 'd orders again');
select is(pg_temp.pay('order_S_D3'), 'applied', 'd''s third order is paid');
select results_eq(
  $$select status, current_period_start, current_period_end
    from public.subscriptions where account_id = tests.personal('00000000-0000-4000-8000-0000000006d1')$$,
  $$values ('active'::text, now(), now() + interval '1 month')$$,
  'an ended (not yet lapsed) period is not extended from the past: the new one starts now');

-- Section - cancelling
-- Who may: an owner, or the service role; a plain member is forbidden, others see nothing.
select tests.login('00000000-0000-4000-8000-0000000006c1');
select throws_ok(
  $$select settle.cancel_subscription('00000000-0000-4000-8000-0000000006f1', true)$$,
  'ST403', null, 'a plain member of the team cannot cancel its subscription');
select tests.login('00000000-0000-4000-8000-0000000006b1');
select throws_ok(
  $$select settle.cancel_subscription('00000000-0000-4000-8000-0000000006f1', true)$$,
  'ST404', null, 'a non-member cancelling the team''s subscription gets not found');
select throws_ok(
  format($$select settle.cancel_subscription(%L, false)$$, tests.personal('00000000-0000-4000-8000-0000000006a1')),
  'ST404', null, 'another user cannot cancel a''s subscription: not found');
select throws_ok(
  format($$select settle.cancel_subscription(%L, true)$$, tests.personal('00000000-0000-4000-8000-0000000006b1')),
  'ST404', null, 'cancelling an account without a subscription is not found');
select tests.login(null);
select throws_ok(
  format($$select settle.cancel_subscription(%L, false)$$, tests.personal('00000000-0000-4000-8000-0000000006a1')),
  'ST401', null, 'an authenticated caller without a user is unauthorized');
select tests.login_anon();
select throws_ok(
  format($$select settle.cancel_subscription(%L, false)$$, tests.personal('00000000-0000-4000-8000-0000000006a1')),
  '42501', null, 'anon cannot call cancel_subscription');
select tests.logout();
select is(pg_temp.sub_status(tests.personal('00000000-0000-4000-8000-0000000006a1')), 'active',
  'the refused cancellations changed nothing');

-- Cancel at period end: still entitled until the end, then the lapse cancels it.
select tests.login('00000000-0000-4000-8000-0000000006d1');
select results_eq(
  format($$select r ->> 'status', (r ->> 'cancel_at_period_end')::boolean
    from settle.cancel_subscription(%L, true) r$$, tests.personal('00000000-0000-4000-8000-0000000006d1')),
  $$values ('active'::text, true)$$,
  'the owner cancels at period end: still active, flagged');
select tests.logout();
select results_eq(
  $$select * from pg_temp.entitlement(tests.personal('00000000-0000-4000-8000-0000000006d1'))$$,
  $$values ('pro_monthly'::text, true, now() + interval '1 month')$$,
  'cancelled at period end, the account stays pro until the period ends');
select is(settle.lapse_subscriptions(now() + interval '1 month'),
  1 + pg_temp.others_due(now() + interval '1 month'), 'the lapse at the period''s end ends d''s subscription');
select results_eq(
  $$select status, canceled_at from public.subscriptions
    where account_id = tests.personal('00000000-0000-4000-8000-0000000006d1')$$,
  $$values ('canceled'::text, now() + interval '1 month')$$,
  'a subscription cancelled at period end lapses to canceled, not past_due');
select results_eq(
  $$select * from pg_temp.entitlement(tests.personal('00000000-0000-4000-8000-0000000006d1'))$$,
  $$values (null::text, false, null::timestamptz)$$,
  'the canceled account is no longer pro');
select tests.login('00000000-0000-4000-8000-0000000006d1');
select throws_ok(
  format($$select settle.cancel_subscription(%L, false)$$, tests.personal('00000000-0000-4000-8000-0000000006d1')),
  'ST409', null, 'a canceled subscription cannot be cancelled again');

-- Immediate cancel by the owner.
select tests.login('00000000-0000-4000-8000-0000000006a1');
select results_eq(
  format($$select r ->> 'status', (r ->> 'current_period_end')::timestamptz
    from settle.cancel_subscription(%L, false) r$$, tests.personal('00000000-0000-4000-8000-0000000006a1')),
  $$values ('canceled'::text, now())$$,
  'the owner cancels at once: canceled, the period cut to now');
select tests.logout();
select results_eq(
  $$select * from pg_temp.entitlement(tests.personal('00000000-0000-4000-8000-0000000006a1'))$$,
  $$values (null::text, false, null::timestamptz)$$,
  'after an immediate cancel the account is not pro');

-- The service role (the server, no user) may cancel any account's subscription.
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000602'),
  '00000000-0000-4000-8000-000000000602', 'pro_monthly', 'order_S_G1'), null, 'g orders the monthly plan');
select is(pg_temp.pay('order_S_G1'), 'applied', 'g''s order is paid');
select tests.login_service();
select is(
  settle.cancel_subscription(tests.personal('00000000-0000-4000-8000-000000000602'), false) ->> 'status',
  'canceled', 'the service role cancels g''s subscription');
select tests.logout();

-- Section - a full refund takes the period back
-- e: one period; refunding it ends the subscription.
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-0000000006e1'),
  '00000000-0000-4000-8000-0000000006e1', 'pro_monthly', 'order_S_E1'), null, 'e orders the monthly plan');
select is(pg_temp.pay('order_S_E1'), 'applied', 'e''s order is paid');
select is(
  settle.create_refund((select id from public.orders where gateway_order_id = 'order_S_E1'), 10000,
    'partial', null, null) -> 'refund' ->> 'status',
  'pending', 'a partial refund of e''s plan order is counted');
select results_eq(
  $$select status, current_period_end from public.subscriptions
    where account_id = tests.personal('00000000-0000-4000-8000-0000000006e1')$$,
  $$values ('active'::text, now() + interval '1 month')$$,
  'a partial refund leaves the subscription as it was');
select is(
  settle.create_refund((select id from public.orders where gateway_order_id = 'order_S_E1'), null,
    'the rest', null, null) -> 'refund' ->> 'amount',
  '19900', 'the rest of e''s plan order is refunded');
select results_eq(
  $$select status, current_period_end, canceled_at from public.subscriptions
    where account_id = tests.personal('00000000-0000-4000-8000-0000000006e1')$$,
  $$values ('canceled'::text, now(), now())$$,
  'the fully refunded only period ends the subscription now');
select isnt((select revoked_at from public.subscription_periods p join public.orders o on o.id = p.order_id
             where o.gateway_order_id = 'order_S_E1'), null, 'the refunded order''s period is revoked');
select results_eq(
  $$select * from pg_temp.entitlement(tests.personal('00000000-0000-4000-8000-0000000006e1'))$$,
  $$values (null::text, false, null::timestamptz)$$,
  'the refunded account is no longer pro');

-- f: two periods; refunding the second gives back exactly its month.
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000601'),
  '00000000-0000-4000-8000-000000000601', 'pro_monthly', 'order_S_F1'), null, 'f orders a month');
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000601'),
  '00000000-0000-4000-8000-000000000601', 'pro_yearly', 'order_S_F2'), null, 'f orders a year');
select is(pg_temp.pay('order_S_F1') || ',' || pg_temp.pay('order_S_F2'), 'applied,applied', 'both are paid');
do $$ begin perform settle.create_refund((select id from public.orders where gateway_order_id = 'order_S_F2'),
  null, 'changed my mind', null, null); end $$;
select results_eq(
  $$select status, current_period_end from public.subscriptions
    where account_id = tests.personal('00000000-0000-4000-8000-000000000601')$$,
  $$values ('active'::text, now() + interval '1 month')$$,
  'refunding the yearly extension takes back its year; the paid month remains');
select results_eq(
  $$select * from pg_temp.entitlement(tests.personal('00000000-0000-4000-8000-000000000601'))$$,
  $$values ('pro_yearly'::text, true, now() + interval '1 month')$$,
  'f stays pro until the end of the month it still paid for');

-- Section - refunding an older period never shortens a newer one
-- i: two months, the first 20 days in; an operator refunds the first in full. Only its 10 or so
-- days left come off: the second month keeps its full length and now starts now.
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-000000000604', 'subs-i@example.test'),
  ('00000000-0000-4000-8000-000000000605', 'subs-j@example.test'),
  ('00000000-0000-4000-8000-000000000606', 'subs-k@example.test');
-- The SQLSTATE and contract code (HINT) a statement raises, or 'ok'.
create function pg_temp.error_of(p_sql text) returns text language plpgsql as $$
declare
  v_state text;
  v_hint text;
begin
  execute p_sql;
  return 'ok';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_hint = pg_exception_hint;
  return v_state || ' ' || coalesce(nullif(v_hint, ''), '-');
end
$$;
-- Moves an account's periods and subscription p_ago into the past (time passing).
create function pg_temp.age(p_account uuid, p_ago interval) returns void
language sql security definer as $$
  update public.subscription_periods set period_start = period_start - p_ago, period_end = period_end - p_ago
  where account_id = p_account;
  update public.subscriptions set current_period_start = current_period_start - p_ago,
    current_period_end = current_period_end - p_ago
  where account_id = p_account;
  update public.orders set paid_at = paid_at - p_ago where account_id = p_account;
$$;
create function pg_temp.period_of(p_gateway_order_id text) returns public.subscription_periods
language sql stable security definer as $$
  select p.* from public.subscription_periods p join public.orders o on o.id = p.order_id
  where o.gateway_order_id = p_gateway_order_id
$$;
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000604'),
  '00000000-0000-4000-8000-000000000604', 'pro_monthly', 'order_S_I1'), null, 'i orders a month');
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000604'),
  '00000000-0000-4000-8000-000000000604', 'pro_monthly', 'order_S_I2'), null, 'i orders the next month');
select is(pg_temp.pay('order_S_I1') || ',' || pg_temp.pay('order_S_I2'), 'applied,applied', 'both are paid');
select pg_temp.age(tests.personal('00000000-0000-4000-8000-000000000604'), interval '20 days');
create temporary table i_before as
  select (pg_temp.period_of('order_S_I1')).period_end as first_end,
         (pg_temp.period_of('order_S_I2')).period_end as second_end,
         (pg_temp.period_of('order_S_I2')).period_end - (pg_temp.period_of('order_S_I2')).period_start as second_len;
do $$ begin perform settle.create_refund((select id from public.orders where gateway_order_id = 'order_S_I1'),
  null, 'operator', null, null); end $$;
select results_eq(
  $$select status, current_period_end from public.subscriptions
    where account_id = tests.personal('00000000-0000-4000-8000-000000000604')$$,
  $$select 'active'::text, second_end - (first_end - now()) from i_before$$,
  'only the first month''s remaining days come off the end');
select results_eq(
  $$select (pg_temp.period_of('order_S_I2')).period_start, (pg_temp.period_of('order_S_I2')).period_end
      - (pg_temp.period_of('order_S_I2')).period_start$$,
  $$select now(), second_len from i_before$$,
  'the second month starts now and keeps its full length');
select is(
  (settle.transition_refund((select r.id from public.refunds r join public.orders o on o.id = r.order_id
    where o.gateway_order_id = 'order_S_I1'), 'failed', 'the bank refused the refund')).status,
  'failed', 'i''s refund then fails at the gateway');
select results_eq(
  $$select status, current_period_end from public.subscriptions
    where account_id = tests.personal('00000000-0000-4000-8000-000000000604')$$,
  $$select 'active'::text, second_end from i_before$$,
  'the failure gives back exactly what the revocation took, not a whole new month');

-- j: the first month ran out 10 days ago, the second is current: refunding the first takes
-- nothing (its time was used), the second month is untouched.
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000605'),
  '00000000-0000-4000-8000-000000000605', 'pro_monthly', 'order_S_J1'), null, 'j orders a month');
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000605'),
  '00000000-0000-4000-8000-000000000605', 'pro_monthly', 'order_S_J2'), null, 'j orders the next month');
select is(pg_temp.pay('order_S_J1') || ',' || pg_temp.pay('order_S_J2'), 'applied,applied', 'both are paid');
select pg_temp.age(tests.personal('00000000-0000-4000-8000-000000000605'),
  (select current_period_end - now() from public.subscriptions
   where account_id = tests.personal('00000000-0000-4000-8000-000000000605')) - interval '1 month' + interval '10 days');
create temporary table j_before as
  select current_period_end from public.subscriptions
  where account_id = tests.personal('00000000-0000-4000-8000-000000000605');
select ok((pg_temp.period_of('order_S_J1')).period_end < now(), 'j''s first month has run out');
do $$ begin perform settle.create_refund((select id from public.orders where gateway_order_id = 'order_S_J1'),
  null, 'operator', null, null); end $$;
select results_eq(
  $$select status, current_period_end from public.subscriptions
    where account_id = tests.personal('00000000-0000-4000-8000-000000000605')$$,
  $$select 'active'::text, current_period_end from j_before$$,
  'refunding the used-up first month leaves the second month whole');

-- Section - the refund policy for plans
-- k: a month, 10 days in. The buyer may refund the unused share, floor(price * unused /
-- length); a partial refund takes ceil(length * amount / price) off the period.
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000606'),
  '00000000-0000-4000-8000-000000000606', 'pro_monthly', 'order_S_K1'), null, 'k orders a month');
select is(pg_temp.pay('order_S_K1'), 'applied', 'k''s order is paid');
select pg_temp.age(tests.personal('00000000-0000-4000-8000-000000000606'), interval '10 days');
create temporary table k_before as
  select p.period_end, settle.interval_us(p.period_start, p.period_end) as len_us,
    div(29900::numeric * settle.interval_us(now(), p.period_end), settle.interval_us(p.period_start, p.period_end))::bigint
      as allowance
  from pg_temp.period_of('order_S_K1') p;
alter table k_before add column cut text, add column rest text;
update k_before set cut = settle.us_interval(div(len_us::numeric * 10000 + 29899, 29900)::bigint)::text,
  rest = div(29900::numeric * (settle.interval_us(now(), period_end) - div(len_us::numeric * 10000 + 29899, 29900)),
    len_us)::text;
grant select on k_before to authenticated;
select ok((select allowance between 19000 and 20500 from k_before), 'about two thirds of the month are unused');
select tests.login('00000000-0000-4000-8000-000000000606');
select is(
  pg_temp.error_of(format($$select settle.request_refund(%L, %s, 'all', null, null)$$,
    (select id from public.orders where gateway_order_id = 'order_S_K1'), 29900)),
  'ST409 refund_not_allowed', 'the buyer cannot refund the used third');
select is(
  pg_temp.error_of(format($$select settle.request_refund(%L, %s, 'just over', null, null)$$,
    (select id from public.orders where gateway_order_id = 'order_S_K1'), (select allowance + 1 from k_before))),
  'ST409 refund_not_allowed', 'one minor unit over the unused share is refused');
select is(
  settle.request_refund((select id from public.orders where gateway_order_id = 'order_S_K1'), 10000,
    'part', null, null) -> 'refund' ->> 'period_cut',
  (select cut from k_before),
  'a partial refund of 10000 records the time it took: ceil(length * 10000 / 29900)');
select tests.logout();
select results_eq(
  $$select status, current_period_end from public.subscriptions
    where account_id = tests.personal('00000000-0000-4000-8000-000000000606')$$,
  $$select 'active'::text, period_end - settle.us_interval(div(len_us::numeric * 10000 + 29899, 29900)::bigint)
    from k_before$$,
  'the subscription ends that much earlier, in the same transaction');
select tests.login('00000000-0000-4000-8000-000000000606');
select is(
  settle.request_refund((select id from public.orders where gateway_order_id = 'order_S_K1'), null,
    'the rest', null, null) -> 'refund' ->> 'amount',
  (select rest from k_before),
  'no amount: the buyer gets what is still unused, computed on the period as bought');
select is(
  pg_temp.error_of(format($$select settle.request_refund(%L, 100, 'more', null, null)$$,
    (select id from public.orders where gateway_order_id = 'order_S_K1'))),
  'ST409 refund_not_allowed', 'nothing unused is left to refund');
select tests.logout();
select is(
  (settle.create_refund((select id from public.orders where gateway_order_id = 'order_S_K1'), null,
    'operator', null, null) -> 'refund' ->> 'status'),
  'pending', 'an operator refunds the rest');
select results_eq(
  $$select o.status, s.status from public.orders o join public.subscriptions s on s.account_id = o.account_id
    where o.gateway_order_id = 'order_S_K1'$$,
  $$values ('refunded'::text, 'canceled'::text)$$,
  'fully refunded: the entitlement ends in the same transaction');
-- The window: 14 days after payment by default.
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000606'),
  '00000000-0000-4000-8000-000000000606', 'pro_monthly', 'order_S_K2'), null, 'k buys again');
select is(pg_temp.pay('order_S_K2'), 'applied', 'paid');
update public.orders set paid_at = now() - interval '15 days' where gateway_order_id = 'order_S_K2';
select tests.login('00000000-0000-4000-8000-000000000606');
select is(
  pg_temp.error_of(format($$select settle.request_refund(%L, 100, 'late', null, null)$$,
    (select id from public.orders where gateway_order_id = 'order_S_K2'))),
  'ST409 refund_not_allowed', 'after the 14-day window the buyer may not refund any of it');
select tests.logout();

-- Section - users read their own subscriptions only, and write none
select tests.login('00000000-0000-4000-8000-0000000006a1');
select bag_eq('select account_id from public.subscriptions',
  array[tests.personal('00000000-0000-4000-8000-0000000006a1'), '00000000-0000-4000-8000-0000000006f1'::uuid],
  'a reads the subscriptions of their personal account and the team, no one else''s');
select is((select count(*)::int from public.subscription_periods), 4,
  'a reads their three periods and the team''s one');
select tests.login('00000000-0000-4000-8000-0000000006c1');
select bag_eq('select account_id from public.subscriptions', array['00000000-0000-4000-8000-0000000006f1'::uuid],
  'a plain team member reads the team''s subscription');
select tests.login('00000000-0000-4000-8000-0000000006b1');
select is((select count(*)::int from public.subscriptions), 0, 'b reads no subscription (b has none)');
select is((select count(*)::int from public.subscription_periods), 0, 'b reads no one else''s periods');

select tests.login('00000000-0000-4000-8000-0000000006a1');
select throws_ok(
  format($$insert into public.subscriptions (account_id, plan_id, status, current_period_start, current_period_end)
    values (%L, 'pro_yearly', 'active', now(), now() + interval '10 years')$$,
    tests.personal('00000000-0000-4000-8000-0000000006b1')),
  '42501', null, 'a user cannot insert a subscription');
select throws_ok(
  $$update public.subscriptions set status = 'active', current_period_end = now() + interval '10 years'$$,
  '42501', null, 'a user cannot update their subscription');
select throws_ok(
  $$insert into public.subscription_periods (subscription_id, account_id, order_id, plan_id, period_start, period_end)
    select id, account_id, gen_random_uuid(), plan_id, now(), now() + interval '1 year' from public.subscriptions$$,
  '42501', null, 'a user cannot insert a subscription period');
select throws_ok($$update public.accounts set is_pro = true, plan = 'pro_yearly'$$, '42501', null,
  'a user cannot make their account pro directly');
select throws_ok($$select settle.lapse_subscriptions(now(), 10)$$, '42501', null,
  'a user cannot run the lapse job');
select tests.logout();

-- Section - defects found in review, fixed
-- A full refund that fails puts the order back to paid (the money stays with us), and the
-- period it revoked comes back: the customer paid, so they are entitled.
insert into auth.users (id, email) values ('00000000-0000-4000-8000-000000000603', 'subs-h@example.test');
select isnt(pg_temp.plan_order(tests.personal('00000000-0000-4000-8000-000000000603'),
  '00000000-0000-4000-8000-000000000603', 'pro_monthly', 'order_S_H1'), null, 'h orders the monthly plan');
select is(pg_temp.pay('order_S_H1'), 'applied', 'h''s order is paid');
select is(
  (settle.transition_refund(
    (settle.create_refund((select id from public.orders where gateway_order_id = 'order_S_H1'), null,
      'refund', null, null) -> 'refund' ->> 'id')::uuid,
    'failed', 'the bank refused the refund')).status,
  'failed', 'h''s full refund is counted and then fails');
select is((select status from public.orders where gateway_order_id = 'order_S_H1'), 'paid',
  'the failed refund puts the order back to paid');
select results_eq(
  $$select status, current_period_end from public.subscriptions
    where account_id = tests.personal('00000000-0000-4000-8000-000000000603')$$,
  $$values ('active'::text, now() + interval '1 month')$$,
  'a failed full refund restores the subscription the order paid for');
select is((select is_pro from public.accounts where id = tests.personal('00000000-0000-4000-8000-000000000603')),
  true, 'a failed full refund makes the account pro again');

-- cancel_subscription once treated "no user" as the service role whenever the JWT carried no
-- role; the session's role decides now, so the authenticated role with no claims gets 401
-- (as create_order answers, see 03-orders).
select tests.login(null);
select set_config('request.jwt.claims', '', true) as no_claims;
select throws_ok(
  format($$select settle.cancel_subscription(%L, false)$$, tests.personal('00000000-0000-4000-8000-000000000601')),
  'ST401', null, 'the authenticated role without claims cannot cancel another account''s subscription');
select tests.logout();

select * from finish();
rollback;
