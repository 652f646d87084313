-- payment_stats: per-day payment figures for analysts and for signed-in users (their own
-- accounts), kept exact by the database from rollups (issue 16, growth: an aggregate over every
-- order took seconds past 10^6 orders):
--  * every insert, status or refund change (and delete) of an order appends one delta row
--    (settle.payment_stats_deltas): insert-only, so concurrent payments never wait on a shared
--    counter row;
--  * settle.compact_payment_stats() folds deltas into two rollups, per account and day
--    (settle.payment_stats_account_daily) and per day (settle.payment_stats_daily), deleting the
--    deltas it folded in the same transaction (SKIP LOCKED: compactors never double-count);
--    pg_cron runs it every minute where available (schedule file);
--  * payment_stats reads rollup + the deltas not yet folded: exact at every snapshot, whether or
--    not compaction ever runs (it only keeps the delta table short);
--  * settle.payment_stats_from_orders is the aggregate straight over orders, kept for audit:
--    settle.ledger_audit_stats() reports any day where the two disagree.
-- wallet_spending_stats, escrow_stats, dispute_stats and payout_stats (their files) follow the
-- same pattern: rows filtered by settle.can_read_payment_stats, then aggregated with the owner's
-- rights, exposed as a security_invoker view in public.

-- Section - who sees what
-- Whether the current role may see an account's figures: analysts and the service role see
-- every account, a signed-in user their own. Not security definer on purpose: current_user is
-- the role running the query.
create function settle.can_read_payment_stats(p_account_id uuid) returns boolean
language plpgsql stable set search_path = ''
as $$
begin
  return current_user = 'service_role'
    or pg_has_role(current_user, 'payment_analyst', 'usage')
    or settle.is_member(p_account_id);
end
$$;

-- Section - rollup tables
create table settle.payment_stats_deltas (
  id bigint generated always as identity primary key,
  account_id uuid not null,
  day date not null,
  gateway text not null,
  currency text not null,
  orders_created integer not null,
  orders_paid integer not null,
  orders_failed integer not null,
  orders_expired integer not null,
  gross bigint not null,
  refunded bigint not null
);
-- No index beyond the key: every order change inserts here, and the table holds only the
-- changes since the last compaction (about a minute's), which a query reads in full.

create table settle.payment_stats_account_daily (
  account_id uuid not null,
  day date not null,
  gateway text not null,
  currency text not null,
  orders_created bigint not null,
  orders_paid bigint not null,
  orders_failed bigint not null,
  orders_expired bigint not null,
  gross bigint not null,
  refunded bigint not null,
  primary key (account_id, day, gateway, currency)
);

create table settle.payment_stats_daily (
  day date not null,
  gateway text not null,
  currency text not null,
  orders_created bigint not null,
  orders_paid bigint not null,
  orders_failed bigint not null,
  orders_expired bigint not null,
  gross bigint not null,
  refunded bigint not null,
  primary key (day, gateway, currency)
);
alter table settle.payment_stats_deltas enable row level security;
alter table settle.payment_stats_account_daily enable row level security;
alter table settle.payment_stats_daily enable row level security;

-- Section - deltas, written by the order's own statement
-- What one order contributes to its (account, UTC day of creation, gateway, currency) group;
-- day, gateway, currency and account never change after creation (guard_order_update). Inserts
-- and deletes come through here; a status or refund change's delta is written by
-- settle.order_effects (orders file), the one trigger of an order's update.
create function settle.payment_stats_delta() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.orders := coalesce(new, old);
  n int := case when tg_op = 'DELETE' then 0 else 1 end;
  o int := case when tg_op = 'INSERT' then 0 else 1 end;
  v_new_paid boolean := tg_op <> 'DELETE' and new.status in ('paid', 'partially_refunded', 'refunded');
  v_old_paid boolean := tg_op <> 'INSERT' and old.status in ('paid', 'partially_refunded', 'refunded');
begin
  insert into settle.payment_stats_deltas (account_id, day, gateway, currency, orders_created,
    orders_paid, orders_failed, orders_expired, gross, refunded)
  values (v_row.account_id, (v_row.created_at at time zone 'UTC')::date, v_row.gateway,
    v_row.currency, n - o,
    v_new_paid::int - v_old_paid::int,
    (n = 1 and new.status = 'failed')::int - (o = 1 and old.status = 'failed')::int,
    (n = 1 and new.status = 'expired')::int - (o = 1 and old.status = 'expired')::int,
    case when v_new_paid then new.amount else 0 end - case when v_old_paid then old.amount else 0 end,
    case when n = 1 then new.amount_refunded else 0 end - case when o = 1 then old.amount_refunded else 0 end);
  return null;
end
$$;
create trigger orders_payment_stats_insert after insert on public.orders
  for each row execute function settle.payment_stats_delta();
create trigger orders_payment_stats_delete after delete on public.orders
  for each row execute function settle.payment_stats_delta();

create function settle.payment_stats_truncate() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  truncate settle.payment_stats_deltas, settle.payment_stats_account_daily, settle.payment_stats_daily;
  return null;
end
$$;
create trigger orders_payment_stats_truncate after truncate on public.orders
  for each statement execute function settle.payment_stats_truncate();

-- Section - compaction
-- Folds up to p_limit of the oldest deltas into both rollups and deletes them, in one
-- transaction; returns how many it folded. Deltas another compactor holds are skipped.
create function settle.compact_payment_stats(p_limit integer default 50000) returns integer
language sql security definer set search_path = ''
as $$
  with moved as (
    delete from settle.payment_stats_deltas d
    where d.id in (select id from settle.payment_stats_deltas order by id
                   limit greatest(p_limit, 1) for update skip locked)
    returning d.*
  ),
  folded as (
    select account_id, day, gateway, currency, sum(orders_created) as orders_created,
      sum(orders_paid) as orders_paid, sum(orders_failed) as orders_failed,
      sum(orders_expired) as orders_expired, sum(gross) as gross, sum(refunded) as refunded
    from moved group by 1, 2, 3, 4
  ),
  -- In key order, so two compactors updating the same rows never deadlock.
  per_account as (
    insert into settle.payment_stats_account_daily as r
    select * from folded order by 1, 2, 3, 4
    on conflict (account_id, day, gateway, currency) do update set
      orders_created = r.orders_created + excluded.orders_created,
      orders_paid = r.orders_paid + excluded.orders_paid,
      orders_failed = r.orders_failed + excluded.orders_failed,
      orders_expired = r.orders_expired + excluded.orders_expired,
      gross = r.gross + excluded.gross,
      refunded = r.refunded + excluded.refunded
    returning 1
  ),
  per_day as (
    insert into settle.payment_stats_daily as r
    select day, gateway, currency, sum(orders_created), sum(orders_paid), sum(orders_failed),
      sum(orders_expired), sum(gross), sum(refunded)
    from folded group by 1, 2, 3 order by 1, 2, 3
    on conflict (day, gateway, currency) do update set
      orders_created = r.orders_created + excluded.orders_created,
      orders_paid = r.orders_paid + excluded.orders_paid,
      orders_failed = r.orders_failed + excluded.orders_failed,
      orders_expired = r.orders_expired + excluded.orders_expired,
      gross = r.gross + excluded.gross,
      refunded = r.refunded + excluded.refunded
    returning 1
  )
  select ((select count(*) from per_account) + 0 * (select count(*) from per_day))::integer
$$;
comment on function settle.compact_payment_stats(integer) is 'Folds up to p_limit payment_stats deltas into the rollups (deleting them); returns the number of (account, day, gateway, currency) groups folded. payment_stats is exact with or without it.';

-- Section - the views
-- The aggregate straight from the orders (payment_stats' figures without the caller's filter):
-- the reference the rollups must equal, for the audit and the tests. Owner-only (no grants).
create view settle.payment_stats_from_orders as
select
  (o.created_at at time zone 'UTC')::date as day,
  o.gateway,
  o.currency,
  count(*) as orders_created,
  count(*) filter (where o.status in ('paid', 'partially_refunded', 'refunded')) as orders_paid,
  count(*) filter (where o.status = 'failed') as orders_failed,
  count(*) filter (where o.status = 'expired') as orders_expired,
  coalesce(sum(o.amount) filter (where o.status in ('paid', 'partially_refunded', 'refunded')), 0)::bigint as gross,
  coalesce(sum(o.amount_refunded), 0)::bigint as refunded
from public.orders o
group by 1, 2, 3;

-- The caller's groups: everything for analysts and the service role (the daily rollup; the
-- caller sees every account when can_read_payment_stats(null) holds: is_member(null) never does), the
-- accounts they are members of for signed-in users (the per-account rollup, reached through
-- account_members by auth.uid(), the same test as settle.is_member), each plus the deltas not
-- yet folded.
create view settle.payment_stats_groups with (security_barrier = true) as
select day, gateway, currency, orders_created, orders_paid, orders_failed, orders_expired,
  gross, refunded
from settle.payment_stats_daily
where settle.can_read_payment_stats(null)
union all
select day, gateway, currency, orders_created, orders_paid, orders_failed, orders_expired,
  gross, refunded
from settle.payment_stats_deltas
where settle.can_read_payment_stats(null)
union all
select r.day, r.gateway, r.currency, r.orders_created, r.orders_paid, r.orders_failed,
  r.orders_expired, r.gross, r.refunded
from settle.payment_stats_account_daily r
where not settle.can_read_payment_stats(null)
  and r.account_id in (select m.account_id from public.account_members m where m.user_id = auth.uid())
union all
select d.day, d.gateway, d.currency, d.orders_created, d.orders_paid, d.orders_failed,
  d.orders_expired, d.gross, d.refunded
from settle.payment_stats_deltas d
where not settle.can_read_payment_stats(null)
  and d.account_id in (select m.account_id from public.account_members m where m.user_id = auth.uid());

-- The aggregation, summed from the caller's rollup groups with the view owner's rights. Not
-- exposed by the API (schema settle); public.payment_stats is the name analysts and the SPA use.
create view settle.payment_stats_visible with (security_barrier = true) as
select
  g.day,
  g.gateway,
  g.currency,
  sum(g.orders_created)::bigint as orders_created,
  sum(g.orders_paid)::bigint as orders_paid,
  sum(g.orders_failed)::bigint as orders_failed,
  sum(g.orders_expired)::bigint as orders_expired,
  round(sum(g.orders_paid)::numeric
    / nullif(sum(g.orders_paid) + sum(g.orders_failed) + sum(g.orders_expired), 0), 4) as success_rate,
  sum(g.gross)::bigint as gross,
  sum(g.refunded)::bigint as refunded,
  (sum(g.gross) - sum(g.refunded))::bigint as net,
  round(sum(g.gross)::numeric / nullif(sum(g.orders_paid), 0))::bigint as average_paid_amount
from settle.payment_stats_groups g
group by 1, 2, 3
having sum(g.orders_created) > 0;

create view public.payment_stats with (security_invoker = true) as
select day, gateway, currency, orders_created, orders_paid, orders_failed, orders_expired,
  success_rate, gross, refunded, net, average_paid_amount
from settle.payment_stats_visible;
comment on view public.payment_stats is 'Per UTC day of order creation, gateway and currency: orders created, paid (incl. refunded later), failed, expired; success_rate = paid / (paid + failed + expired), orders still in flight excluded; gross = paid amounts, refunded = amounts counted as refunded (pending or processed refunds), net = gross - refunded, average_paid_amount rounded to the minor unit. Amounts in minor units of currency. Signed-in users see their accounts; payment_analyst sees all.';

-- Section - audit
-- Every (day, gateway, currency) where the rollups plus pending deltas disagree with the orders.
create function settle.ledger_audit_stats()
returns table (invariant text, subject text, detail text)
language sql stable security definer set search_path = ''
as $$
  with r as (
    select day, gateway, currency, sum(orders_created) as c, sum(orders_paid) as p,
      sum(orders_failed) as f, sum(orders_expired) as e, sum(gross) as g, sum(refunded) as rf
    from (select day, gateway, currency, orders_created, orders_paid, orders_failed,
                 orders_expired, gross, refunded from settle.payment_stats_daily
          union all
          select day, gateway, currency, orders_created, orders_paid, orders_failed,
                 orders_expired, gross, refunded from settle.payment_stats_deltas) x
    group by 1, 2, 3
  ),
  acct as (
    select day, gateway, currency, sum(orders_created) as c, sum(orders_paid) as p,
      sum(orders_failed) as f, sum(orders_expired) as e, sum(gross) as g, sum(refunded) as rf
    from (select day, gateway, currency, orders_created, orders_paid, orders_failed,
                 orders_expired, gross, refunded from settle.payment_stats_account_daily
          union all
          select day, gateway, currency, orders_created, orders_paid, orders_failed,
                 orders_expired, gross, refunded from settle.payment_stats_deltas) x
    group by 1, 2, 3
  ),
  o as (select * from settle.payment_stats_from_orders)
  select 'payment_stats_drift', coalesce(o.day, r.day)::text || ' ' || coalesce(o.gateway, r.gateway)
      || ' ' || coalesce(o.currency, r.currency),
    format('orders: %s created, %s paid, %s failed, %s expired, gross %s, refunded %s; rollup: %s, %s, %s, %s, %s, %s',
      o.orders_created, o.orders_paid, o.orders_failed, o.orders_expired, o.gross, o.refunded,
      r.c, r.p, r.f, r.e, r.g, r.rf)
  from o full join r on r.day = o.day and r.gateway = o.gateway and r.currency = o.currency
  where (coalesce(o.orders_created, 0), coalesce(o.orders_paid, 0), coalesce(o.orders_failed, 0),
         coalesce(o.orders_expired, 0), coalesce(o.gross, 0), coalesce(o.refunded, 0))
     is distinct from (coalesce(r.c, 0), coalesce(r.p, 0), coalesce(r.f, 0), coalesce(r.e, 0),
         coalesce(r.g, 0), coalesce(r.rf, 0))
  union all
  select 'payment_stats_account_drift', coalesce(a.day, r.day)::text || ' '
      || coalesce(a.gateway, r.gateway) || ' ' || coalesce(a.currency, r.currency),
    'the per-account rollup and the daily rollup disagree'
  from acct a full join r on r.day = a.day and r.gateway = a.gateway and r.currency = a.currency
  where (coalesce(a.c, 0), coalesce(a.p, 0), coalesce(a.f, 0), coalesce(a.e, 0),
         coalesce(a.g, 0), coalesce(a.rf, 0))
     is distinct from (coalesce(r.c, 0), coalesce(r.p, 0), coalesce(r.f, 0), coalesce(r.e, 0),
         coalesce(r.g, 0), coalesce(r.rf, 0))
$$;

-- Section - privileges
-- The rollups are read through the views only; the view owner reads them.
revoke execute on all functions in schema settle from public;
revoke all on public.payment_stats from anon, authenticated;
grant select on settle.payment_stats_visible, public.payment_stats
  to authenticated, payment_analyst, service_role;
grant execute on function settle.can_read_payment_stats(uuid)
  to authenticated, payment_analyst, service_role;
grant execute on function settle.compact_payment_stats(integer), settle.ledger_audit_stats()
  to service_role;
