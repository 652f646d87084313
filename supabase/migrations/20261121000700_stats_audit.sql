-- Payment statistics for analysts and the ledger audit.

-- Section - payment_stats
-- Analysts get a role that reads the statistics and nothing of the tables behind them.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'payment_analyst') then
    create role payment_analyst nologin;
  end if;
end
$$;
grant usage on schema settle to payment_analyst;

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

-- The aggregation, reading orders with its owner's rights and filtering rows by the caller
-- before grouping. Not exposed by the API (schema settle); public.payment_stats is the name
-- analysts and the SPA use.
create view settle.payment_stats_visible with (security_barrier = true) as
select
  (o.created_at at time zone 'UTC')::date as day,
  o.gateway,
  o.currency,
  count(*) as orders_created,
  count(*) filter (where o.status in ('paid', 'partially_refunded', 'refunded')) as orders_paid,
  count(*) filter (where o.status = 'failed') as orders_failed,
  count(*) filter (where o.status = 'expired') as orders_expired,
  round(
    (count(*) filter (where o.status in ('paid', 'partially_refunded', 'refunded')))::numeric
    / nullif(count(*) filter (where o.status in ('paid', 'partially_refunded', 'refunded', 'failed', 'expired')), 0),
    4) as success_rate,
  coalesce(sum(o.amount) filter (where o.status in ('paid', 'partially_refunded', 'refunded')), 0)::bigint as gross,
  coalesce(sum(o.amount_refunded), 0)::bigint as refunded,
  (coalesce(sum(o.amount) filter (where o.status in ('paid', 'partially_refunded', 'refunded')), 0)
    - coalesce(sum(o.amount_refunded), 0))::bigint as net,
  round(avg(o.amount) filter (where o.status in ('paid', 'partially_refunded', 'refunded')))::bigint
    as average_paid_amount
from public.orders o
where settle.can_read_payment_stats(o.account_id)
group by 1, 2, 3;

create view public.payment_stats with (security_invoker = true) as
select day, gateway, currency, orders_created, orders_paid, orders_failed, orders_expired,
  success_rate, gross, refunded, net, average_paid_amount
from settle.payment_stats_visible;
comment on view public.payment_stats is 'Per UTC day of order creation, gateway and currency: orders created, paid (incl. refunded later), failed, expired; success_rate = paid / (paid + failed + expired), orders still in flight excluded; gross = paid amounts, refunded = amounts counted as refunded (pending or processed refunds), net = gross - refunded, average_paid_amount rounded to the minor unit. Amounts in minor units of currency. Signed-in users see their accounts; payment_analyst sees all.';

revoke all on settle.payment_stats_visible, public.payment_stats from public, anon, authenticated;
grant select on settle.payment_stats_visible, public.payment_stats
  to authenticated, payment_analyst, service_role;
grant execute on function settle.can_read_payment_stats(uuid), settle.is_member(uuid)
  to authenticated, payment_analyst, service_role;

-- Section - ledger audit
-- Every violated invariant, one row each; no rows means healthy. Read-only, so safe to run any
-- time (it scans the ledger: schedule it off-peak on large databases).
create function settle.ledger_audit()
returns table (invariant text, subject text, detail text)
language sql stable security definer set search_path = ''
as $$
  -- Double entry: each transaction's entries sum to zero in every currency.
  select 'unbalanced_transaction', e.transaction_id::text,
    format('%s entries sum to %s', e.currency, sum(e.amount))
  from public.ledger_entries e
  group by e.transaction_id, e.currency
  having sum(e.amount) <> 0
  union all
  select 'short_transaction', t.id::text, format('%s entries', count(e.id))
  from public.ledger_transactions t left join public.ledger_entries e on e.transaction_id = t.id
  group by t.id
  having count(e.id) < 2
  union all
  -- A wallet's balance is the sum of its entries.
  select 'wallet_balance_drift', w.id::text,
    format('balance %s, entries sum to %s', w.balance, coalesce(s.total, 0))
  from public.wallets w
  left join (select wallet_id, sum(amount) as total from public.ledger_entries
             where wallet_id is not null group by wallet_id) s on s.wallet_id = w.id
  where w.balance <> coalesce(s.total, 0)
  union all
  select 'negative_balance', w.id::text, format('balance %s %s', w.balance, w.currency)
  from public.wallets w where w.balance < 0
  union all
  -- A paid order is credited exactly once, for its amount; an unpaid one never.
  select case when o.status in ('paid', 'partially_refunded', 'refunded')
              then 'paid_order_not_credited_once' else 'unpaid_order_credited' end,
    o.id::text,
    format('status %s, %s payment postings crediting %s of %s %s', o.status, count(distinct t.id),
      coalesce(sum(e.amount) filter (where e.amount > 0), 0), o.amount, o.currency)
  from public.orders o
  left join public.ledger_transactions t on t.idempotency_key = 'order_paid:' || o.id
  left join public.ledger_entries e on e.transaction_id = t.id
  group by o.id
  having (o.status in ('paid', 'partially_refunded', 'refunded')
          and (count(distinct t.id) <> 1 or coalesce(sum(e.amount) filter (where e.amount > 0), 0) <> o.amount))
      or (o.status not in ('paid', 'partially_refunded', 'refunded') and count(distinct t.id) > 0)
  union all
  -- Refunds never exceed the payment, and the order, its refunds and the ledger agree.
  select 'refunds_exceed_payment', o.id::text,
    format('refunded %s (refund rows %s, ledger %s) of %s %s', o.amount_refunded,
      coalesce(r.counted, 0), coalesce(l.net, 0), o.amount, o.currency)
  from public.orders o
  left join (select order_id, sum(amount) filter (where status <> 'failed') as counted
             from public.refunds group by order_id) r on r.order_id = o.id
  left join (select t.order_id,
               sum(e.amount) filter (where e.amount > 0 and t.idempotency_key like 'refund:%')
               - coalesce(sum(e.amount) filter (where e.amount > 0 and t.idempotency_key like 'refund\_reversed:%'), 0)
               as net
             from public.ledger_transactions t join public.ledger_entries e on e.transaction_id = t.id
             where t.kind = 'refund' group by t.order_id) l on l.order_id = o.id
  where o.amount_refunded > o.amount
     or coalesce(r.counted, 0) > o.amount
     or coalesce(l.net, 0) > o.amount
     or coalesce(r.counted, 0) <> o.amount_refunded
     or coalesce(l.net, 0) <> o.amount_refunded
$$;
comment on function settle.ledger_audit() is 'Returns every violated ledger invariant (empty = healthy): unbalanced or short transactions, wallet balance drift, negative balances, paid orders not credited exactly once (or unpaid ones credited), refunds exceeding payments or disagreeing with the ledger.';

revoke execute on function settle.ledger_audit() from public;
grant execute on function settle.ledger_audit() to service_role, payment_analyst;
