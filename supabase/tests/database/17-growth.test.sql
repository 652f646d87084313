-- Growth (20261208000500_growth.sql): version 7 UUIDs as the ids of the rows a payment writes,
-- and payment_stats with its pending deltas summed inside each branch, exact whether the deltas
-- are folded or not. Needs 00-helpers (run first by pg_prove's file order).
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(13);

-- The Unix milliseconds a version 7 UUID starts with.
create function pg_temp.v7_ms(p uuid) returns bigint language sql as $$
  select ('x' || left(replace(p::text, '-', ''), 12))::bit(48)::bigint
$$;

-- Section - settle.uuid_v7
select is((select count(distinct settle.uuid_v7())::int from generate_series(1, 1000)), 1000,
  '1000 ids in one statement are distinct');
select is((select count(*)::int from (select settle.uuid_v7() as u from generate_series(1, 200)) x
           where substr(u::text, 15, 1) = '7' and substr(u::text, 20, 1) in ('8', '9', 'a', 'b')),
  200, 'every id has version 7 and the RFC variant');
select ok(abs(pg_temp.v7_ms(settle.uuid_v7())
              - (extract(epoch from clock_timestamp()) * 1000)::bigint) < 1000,
  'an id starts with the clock''s Unix milliseconds');
create temporary table t_ids (n int, id uuid);
insert into t_ids values (1, settle.uuid_v7());
select from pg_sleep(0.003); -- the clock moves on: the next id is made in a later millisecond
insert into t_ids values (2, settle.uuid_v7());
select ok((select id from t_ids where n = 1) < (select id from t_ids where n = 2),
  'an id made in a later millisecond sorts after an earlier one');
select is((select count(*)::int from pg_roles r
           where r.rolname in ('anon', 'authenticated', 'service_role', 'payment_analyst')
             and has_function_privilege(r.rolname, 'settle.uuid_v7()', 'EXECUTE')),
  0, 'only settle''s own functions make ids: no API role may call uuid_v7');

-- Section - the tables' defaults
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000017a1', 'growth-a@example.test'),
  ('00000000-0000-4000-8000-0000000017b1', 'growth-b@example.test');
create function pg_temp.new_order(p_uid uuid, p_ref text, p_amount bigint, p_at timestamptz)
returns uuid language sql security definer as $$
  insert into public.orders (account_id, created_by, gateway, purpose, amount, currency,
    gateway_order_id, created_at)
  values (tests.personal(p_uid), p_uid, 'razorpay', 'wallet_topup', p_amount, 'INR', p_ref, p_at)
  returning id
$$;
create function pg_temp.pay(p_ref text) returns text language sql security definer as $$
  select settle.apply_payment('razorpay', 'captured', o.gateway_order_id, 'pay_' || p_ref,
    o.amount, o.currency) ->> 'outcome'
  from public.orders o where o.gateway = 'razorpay' and o.gateway_order_id = p_ref
$$;
select from pg_temp.new_order('00000000-0000-4000-8000-0000000017a1', 'order_G_A1', 1000, '2002-03-04 10:00Z');
select is(pg_temp.pay('order_G_A1'), 'applied', 'a payment');
select is((select substr(id::text, 15, 1) from public.orders where gateway_order_id = 'order_G_A1'),
  '7', 'a new order''s id is a version 7 UUID');
select is((select string_agg(distinct substr(t.id::text, 15, 1), ',') from public.ledger_transactions t
           join public.orders o on o.id = t.order_id where o.gateway_order_id = 'order_G_A1'),
  '7', 'its ledger transaction''s id too');
select is((select string_agg(distinct substr(e.id::text, 15, 1), ',') from public.outbox_events e
           join public.orders o on o.id = e.subject_id where o.gateway_order_id = 'order_G_A1'),
  '7', 'and its outbox event''s');

-- Section - payment_stats, deltas summed per branch
-- a: three paid orders and one still created on 2002-03-04, one paid on 03-05; b: one paid on
-- 03-04. Part of it folded into the rollups, the rest still pending deltas.
select from pg_temp.new_order('00000000-0000-4000-8000-0000000017a1', 'order_G_A2', 2000, '2002-03-04 11:00Z');
select from pg_temp.new_order('00000000-0000-4000-8000-0000000017a1', 'order_G_A3', 3000, '2002-03-04 12:00Z');
select from pg_temp.new_order('00000000-0000-4000-8000-0000000017a1', 'order_G_A4', 4000, '2002-03-04 13:00Z');
select from pg_temp.new_order('00000000-0000-4000-8000-0000000017a1', 'order_G_A5', 5000, '2002-03-05 09:00Z');
select from pg_temp.new_order('00000000-0000-4000-8000-0000000017b1', 'order_G_B1', 7000, '2002-03-04 09:00Z');
select from pg_temp.pay('order_G_A2');
select from settle.compact_payment_stats();
select pg_temp.pay('order_G_A3') || pg_temp.pay('order_G_A5') || pg_temp.pay('order_G_B1');

select tests.login('00000000-0000-4000-8000-0000000017a1');
select results_eq(
  $$select day, orders_created, orders_paid, gross from public.payment_stats
    where day between '2002-03-04' and '2002-03-05' order by day$$,
  $$values ('2002-03-04'::date, 4::bigint, 3::bigint, 6000::bigint),
           ('2002-03-05'::date, 1::bigint, 1::bigint, 5000::bigint)$$,
  'a user sees their figures: rollup and pending deltas, each day once');
select tests.logout();
set local role payment_analyst;
select results_eq(
  $$select day, orders_created, orders_paid, gross from public.payment_stats
    where day between '2002-03-04' and '2002-03-05' order by day$$,
  $$values ('2002-03-04'::date, 5::bigint, 4::bigint, 13000::bigint),
           ('2002-03-05'::date, 1::bigint, 1::bigint, 5000::bigint)$$,
  'the analyst sees every account''s, each day once');
reset role;
select is((select count(*)::int from settle.ledger_audit_stats()), 0,
  'the rollups plus the pending deltas equal the orders');
select from settle.compact_payment_stats();
set local role payment_analyst;
select results_eq(
  $$select day, orders_created, orders_paid, gross from public.payment_stats
    where day between '2002-03-04' and '2002-03-05' order by day$$,
  $$values ('2002-03-04'::date, 5::bigint, 4::bigint, 13000::bigint),
           ('2002-03-05'::date, 1::bigint, 1::bigint, 5000::bigint)$$,
  'the same figures once everything is folded');
reset role;

select * from finish();
rollback;
