-- The ledger audit: every violated invariant of the ledger, one row each; no rows means healthy.
-- Read-only, so safe to run any time (it scans the ledger: schedule it off-peak on large
-- databases). settle.ledger_audit() checks the ledger itself, orders, refunds, the refund
-- receivable and gateway refund holds, then every area's own check function, found by name: an
-- area (wallet holds, escrow, disputes, payouts, payment_stats) adds its invariants by creating
-- `settle.ledger_audit_<area>()` returning (invariant, subject, detail) in its own file, and
-- never redefines ledger_audit (with several areas written in parallel, whole copies of one
-- function drop each other's branches).

-- Section - the areas
create function settle.ledger_audit_areas()
returns table (invariant text, subject text, detail text)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_fn text;
begin
  for v_fn in
    select p.proname from pg_catalog.pg_proc p
    where p.pronamespace = 'settle'::regnamespace and p.proname like 'ledger\_audit\_%'
      and p.proname <> 'ledger_audit_areas' and p.pronargs = 0 and p.proretset
    order by p.proname
  loop
    return query execute format('select invariant, subject, detail from settle.%I()', v_fn);
  end loop;
end
$$;
comment on function settle.ledger_audit_areas() is 'Every settle.ledger_audit_<area>() function''s rows, in name order: the areas'' invariants for ledger_audit().';

-- Section - ledger_audit
-- Longer than 70 lines because it is one query: a union of independent checks, each commented,
-- so it reads top to bottom as the list of invariants. (Its body is byte for byte the one the
-- history left, which the v0.1.0 re-base's proof compares: "wallet holds (0700)" there names the
-- wallet_spending file by its number before the re-base.)
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
  union all
  -- refund identity: the platform receivable holds exactly the shortfalls of counted gateway
  -- refunds, per currency (entries are negative: owed to the platform).
  select 'receivable_drift', c.currency,
    format('receivable:refund_shortfall %s, open shortfalls %s', coalesce(le.total, 0), coalesce(rf.total, 0))
  from (select currency from public.ledger_entries where system_account = 'receivable:refund_shortfall'
        union select currency from public.refunds where shortfall > 0) c
  left join (select currency, -sum(amount) as total from public.ledger_entries
             where system_account = 'receivable:refund_shortfall' group by currency) le
    on le.currency = c.currency
  left join (select currency, sum(shortfall) as total from public.refunds
             where status <> 'failed' group by currency) rf on rf.currency = c.currency
  where coalesce(le.total, 0) <> coalesce(rf.total, 0)
  union all
  -- refund identity: a refund the gateway made that settle has not counted.
  select 'gateway_refund_uncounted', h.gateway || ':' || h.gateway_refund_id,
    format('%s (%s, held since %s): %s', h.reason, h.status, h.created_at, h.detail)
  from public.gateway_refund_holds h
  where h.resolved_at is null
  union all
  -- The areas: wallet holds (0700), escrow, disputes, payouts, … (settle.ledger_audit_<area>).
  select * from settle.ledger_audit_areas()
$$;
comment on function settle.ledger_audit() is 'Returns every violated ledger invariant (empty = healthy): unbalanced or short transactions, wallet balance drift, negative balances, paid orders not credited exactly once (or unpaid ones credited), refunds exceeding payments or disagreeing with the ledger, the refund receivable disagreeing with the open shortfalls, gateway refunds not counted, and every area''s own invariants (settle.ledger_audit_<area>(): held accounts and wallet charges, escrow accounts and splits, disputes, payouts in flight).';

-- Section - privileges
revoke execute on all functions in schema settle from public;
grant execute on function settle.ledger_audit() to payment_analyst, service_role;
