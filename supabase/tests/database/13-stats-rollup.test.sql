-- payment_stats from rollups (20261201001300_payment_stats.sql): after inserts, payments,
-- failures, expiries, refunds and deletes, before and after compaction, what payment_stats
-- shows equals the aggregate over the orders themselves, for the analyst and for a member.
-- Orders are dated 2001-03-05/06 and priced in BHD and KWD so other rows do not interfere.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(16);

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
-- The figures payment_stats must show for the fixture's days, straight from the orders.
create function pg_temp.from_orders(p_account uuid default null) returns table (
  day date, gateway text, currency text, orders_created bigint, orders_paid bigint,
  orders_failed bigint, orders_expired bigint, success_rate numeric, gross bigint,
  refunded bigint, net bigint, average_paid_amount bigint)
language sql stable security definer as $$
  select (o.created_at at time zone 'UTC')::date, o.gateway, o.currency, count(*),
    count(*) filter (where o.status in ('paid', 'partially_refunded', 'refunded')),
    count(*) filter (where o.status = 'failed'), count(*) filter (where o.status = 'expired'),
    round((count(*) filter (where o.status in ('paid', 'partially_refunded', 'refunded')))::numeric
      / nullif(count(*) filter (where o.status in ('paid', 'partially_refunded', 'refunded', 'failed', 'expired')), 0), 4),
    coalesce(sum(o.amount) filter (where o.status in ('paid', 'partially_refunded', 'refunded')), 0)::bigint,
    coalesce(sum(o.amount_refunded), 0)::bigint,
    (coalesce(sum(o.amount) filter (where o.status in ('paid', 'partially_refunded', 'refunded')), 0)
      - coalesce(sum(o.amount_refunded), 0))::bigint,
    round(avg(o.amount) filter (where o.status in ('paid', 'partially_refunded', 'refunded')))::bigint
  from public.orders o
  where o.created_at >= '2001-03-05' and o.created_at < '2001-03-07'
    and (p_account is null or o.account_id = p_account)
  group by 1, 2, 3
$$;
create function pg_temp.account(p_uid uuid) returns uuid language sql stable security definer as $$
  select id from public.accounts where personal_owner_id = p_uid
$$;
create function pg_temp.as_role(p_role text, p_uid uuid default null) returns void
language plpgsql as $$
begin
  perform set_config('role', p_role, true);
  perform set_config('request.jwt.claims',
    case when p_uid is null then '' else json_build_object('sub', p_uid, 'role', p_role)::text end, true);
end
$$;
create function pg_temp.shown() returns setof public.payment_stats language sql as $$
  select * from public.payment_stats where day between '2001-03-05' and '2001-03-06'
$$;

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000013a1', 'rollup-a@example.test'),
  ('00000000-0000-4000-8000-0000000013b1', 'rollup-b@example.test');

do $$
declare
  a uuid := '00000000-0000-4000-8000-0000000013a1';
  b uuid := '00000000-0000-4000-8000-0000000013b1';
  d timestamptz := '2001-03-05 10:00:00+00';
begin
  perform pg_temp.new_order(a, 'razorpay', 'BHD', 10001, 'order_RU_A1', d);
  perform pg_temp.new_order(a, 'razorpay', 'BHD', 30000, 'order_RU_A2', d);
  perform pg_temp.new_order(a, 'razorpay', 'BHD', 20000, 'order_RU_A3', d);
  perform pg_temp.new_order(a, 'razorpay', 'BHD', 7000, 'order_RU_A4', '2001-03-05 23:59:59+00');
  perform pg_temp.new_order(b, 'razorpay', 'BHD', 4000, 'order_RU_B1', d);
  perform pg_temp.new_order(b, 'stripe', 'KWD', 12345, 'pi_RU_B2', '2001-03-06 00:00:00+00');
  perform pg_temp.new_order(b, 'razorpay', 'BHD', 999, 'order_RU_B3', d);
  perform settle.apply_payment('razorpay', 'captured', 'order_RU_A1', 'pay_RU_A1', 10001, 'BHD');
  perform settle.apply_payment('razorpay', 'captured', 'order_RU_A2', 'pay_RU_A2', 30000, 'BHD');
  perform settle.apply_payment('razorpay', 'failed', 'order_RU_A3', 'pay_RU_A3', null, null, 'X', 'declined');
  perform settle.apply_payment('razorpay', 'captured', 'order_RU_B1', 'pay_RU_B1', 4000, 'BHD');
  perform settle.apply_payment('stripe', 'captured', 'pi_RU_B2', 'ch_RU_B2', 12345, 'KWD');
end
$$;

select cmp_ok((select count(*)::int from settle.payment_stats_deltas
               where day between '2001-03-05' and '2001-03-06'), '>=', 12,
  'every insert and status change left a delta row');
select pg_temp.as_role('payment_analyst');
select set_eq('select * from pg_temp.shown()', 'select * from pg_temp.from_orders()',
  'analyst: payment_stats equals the orders'' aggregate before any compaction');
reset role;

select cmp_ok(settle.compact_payment_stats(), '>', 0, 'compaction folds the deltas');
select is((select count(*)::int from settle.payment_stats_deltas), 0, 'no delta is left behind');
select pg_temp.as_role('payment_analyst');
select set_eq('select * from pg_temp.shown()', 'select * from pg_temp.from_orders()',
  'analyst: still equal after compaction (from the rollups alone)');
reset role;

-- Changes after compaction: a refund, an expiry, a late capture of a failed order, a delete.
select isnt(settle.create_refund(pg_temp.oid('order_RU_A2'), 5000, 'partial', null, null), null,
  'a partial refund');
select isnt(settle.create_refund(pg_temp.oid('order_RU_B1'), null, 'all', null, null), null,
  'a full refund');
update public.orders set status = 'expired' where gateway_order_id = 'order_RU_A4';
select is((settle.apply_payment('razorpay', 'captured', 'order_RU_A3', 'pay_RU_A3b', 20000, 'BHD')) ->> 'outcome',
  'applied', 'a failed order captured later');
delete from public.orders where gateway_order_id = 'order_RU_B3';
select pg_temp.as_role('payment_analyst');
select set_eq('select * from pg_temp.shown()', 'select * from pg_temp.from_orders()',
  'analyst: equal with rollups plus new deltas (refunds, expiry, late capture, delete)');
reset role;
select pg_temp.as_role('service_role');
select set_eq('select * from pg_temp.shown()', 'select * from pg_temp.from_orders()',
  'service role: the same figures');
reset role;

-- A member sees only their account's groups, exactly.
select pg_temp.as_role('authenticated', '00000000-0000-4000-8000-0000000013a1');
select set_eq('select * from pg_temp.shown()',
  $$select * from pg_temp.from_orders(pg_temp.account('00000000-0000-4000-8000-0000000013a1'))$$,
  'member a: exactly a''s figures, before compaction');
reset role;
select settle.compact_payment_stats(3);
select settle.compact_payment_stats();
select pg_temp.as_role('authenticated', '00000000-0000-4000-8000-0000000013b1');
select set_eq('select * from pg_temp.shown()',
  $$select * from pg_temp.from_orders(pg_temp.account('00000000-0000-4000-8000-0000000013b1'))$$,
  'member b: exactly b''s figures, after compaction in small batches');
reset role;

select is_empty('select * from settle.ledger_audit_stats()', 'the stats audit finds no drift');

-- Nobody but the views' owner reads the rollups; only the service role compacts.
select pg_temp.as_role('authenticated', '00000000-0000-4000-8000-0000000013a1');
select throws_ok('select * from settle.payment_stats_daily', '42501', null,
  'a user cannot read the daily rollup');
select throws_ok('select settle.compact_payment_stats()', '42501', null,
  'a user cannot compact');
reset role;
select pg_temp.as_role('payment_analyst');
select throws_ok('select * from settle.payment_stats_account_daily', '42501', null,
  'the analyst cannot read per-account rollups');
reset role;

select * from finish();
rollback;
