-- The gateway audit (shared/services/gateway_audit.ts, POST /gateway-audit): what the
-- gateways' own lists say against settle's orders, refunds, payouts and ledger (the payout
-- gateways' lists, RazorpayX GET /v1/payouts and Stripe GET /v1/transfers, against
-- public.payouts: shared/services/gateway_audit_payouts.ts). Every difference is stored once per
-- (kind, gateway, gateway object), for operators only.

-- Section - discrepancies
create table public.gateway_discrepancies (
  id bigint generated always as identity primary key,
  kind text not null check (kind in (
    'missing_in_settle',        -- captured at the gateway, settle's order not paid (or absent)
    'not_captured_at_gateway',  -- settle paid, the gateway payment not captured / refunded / absent
    'amount_mismatch',          -- captured amount differs from the paid order's amount
    'currency_mismatch',        -- captured currency differs from the paid order's currency
    'credit_count',             -- a paid order not credited exactly once for its amount (or an unpaid one credited)
    'refund_missing_in_settle', -- gateway refund processed, no processed settle refund with its id
    'refund_not_at_gateway',    -- settle counts a processed refund the gateway lacks or failed
    'refund_amount_mismatch',   -- both processed, amounts (or currencies) differ
    'payout_missing_in_settle', -- the gateway paid out; settle has no such payout, or returned it
    'payout_status_mismatch',   -- settle counts a processed payout the gateway lacks, failed or reversed
    'payout_amount_mismatch'    -- both paid out, different amounts (net of reversals) or currencies
  )),
  gateway text not null check (gateway in ('razorpay', 'stripe', 'paypal', 'razorpayx')),
  -- Payment kinds: the gateway order id (Razorpay order_…, Stripe pi_…); refund kinds: the
  -- gateway refund id; payout kinds: the gateway payout id (RazorpayX pout_…, Stripe tr_…);
  -- where the gateway has no id for it, settle's own id.
  gateway_object_id text not null check (length(gateway_object_id) between 1 and 255),
  order_id uuid references public.orders (id),
  refund_id uuid references public.refunds (id),
  gateway_order_id text,
  gateway_payment_id text,
  gateway_refund_id text,
  settle_amount bigint,
  gateway_amount bigint,
  settle_currency text,
  gateway_currency text,
  settle_status text,
  gateway_status text,
  detail text check (length(detail) <= 2000),
  first_seen timestamptz not null default now(),
  last_seen timestamptz not null default now(),
  times_seen integer not null default 1,
  reopened_count integer not null default 0,
  resolved_at timestamptz,
  resolution text check (length(resolution) between 1 and 1000),
  payout_id uuid references public.payouts (id),
  unique (kind, gateway, gateway_object_id),
  check ((resolved_at is null) = (resolution is null))
);
alter table public.gateway_discrepancies enable row level security;
create index gateway_discrepancies_open_idx on public.gateway_discrepancies (first_seen)
  where resolved_at is null;
comment on table public.gateway_discrepancies is 'Differences the gateway audit found between a gateway''s own records and settle (one row per kind, gateway and gateway object; amounts in minor units). Operators only.';
comment on column public.gateway_discrepancies.payout_id is 'Payout kinds: settle''s payout (null when the gateway''s payout is not settle''s). gateway_object_id is then the gateway payout id (RazorpayX pout_…, Stripe tr_…).';

-- What operators look at: the open ones, oldest first.
create view public.gateway_discrepancies_open with (security_invoker = true) as
select id, kind, gateway, gateway_object_id, order_id, refund_id, gateway_payment_id,
  gateway_refund_id, settle_amount, gateway_amount, settle_currency, gateway_currency,
  settle_status, gateway_status, detail, first_seen, last_seen, times_seen, reopened_count,
  payout_id
from public.gateway_discrepancies
where resolved_at is null
order by first_seen, id;
comment on view public.gateway_discrepancies_open is 'Open gateway audit discrepancies, oldest first (README, Operations). Resolve one with settle.resolve_gateway_discrepancy(id, note).';

-- One audit run per row: the default window of the next run starts from the last one.
create table settle.gateway_audit_runs (
  id bigint generated always as identity primary key,
  window_from timestamptz not null,
  window_to timestamptz not null,
  summary jsonb not null,
  -- A default run (no window, no account filter): the next default run starts from it.
  scheduled boolean not null default false,
  finished_at timestamptz not null default now(),
  check (window_from <= window_to)
);
create index gateway_audit_runs_finished_idx on settle.gateway_audit_runs (finished_at desc);

-- What an audit reads settle by besides the keys that are indexed already: paid, processed
-- and paid out in the window (orders by the payment a gateway refund names use
-- orders_gateway_payment_unique_idx, orders file). Without them each run scans orders (300k
-- orders: 10 s a run; with them 0.4 s).
create index orders_paid_at_idx on public.orders (paid_at) where paid_at is not null;
create index refunds_processed_at_idx on public.refunds (processed_at)
  where status = 'processed';
create index payouts_processed_at_idx on public.payouts (gateway, processed_at)
  where status = 'processed';

-- Stores one detection: new rows are inserted; a known one gets last_seen, times_seen and the
-- amounts of this sighting; a resolved one that is detected again is reopened. Returns true
-- when the discrepancy is new or reopened (what the run reports as "new"). Concurrent runs
-- detecting the same thing meet on the unique key: exactly one of them inserts it. p_fields may
-- carry order_id, refund_id and payout_id (the settle objects it is about) and the compared
-- values.
create function settle.record_gateway_discrepancy(
  p_kind text, p_gateway text, p_object_id text, p_fields jsonb
) returns boolean
language plpgsql security definer set search_path = ''
as $$
declare
  v_id bigint;
  v_reopen boolean;
  f jsonb := coalesce(p_fields, '{}'::jsonb);
begin
  insert into public.gateway_discrepancies (kind, gateway, gateway_object_id, order_id, refund_id,
    payout_id, gateway_order_id, gateway_payment_id, gateway_refund_id, settle_amount,
    gateway_amount, settle_currency, gateway_currency, settle_status, gateway_status, detail)
  values (p_kind, p_gateway, p_object_id, (f->>'order_id')::uuid, (f->>'refund_id')::uuid,
    (f->>'payout_id')::uuid, f->>'gateway_order_id', f->>'gateway_payment_id',
    f->>'gateway_refund_id', (f->>'settle_amount')::bigint, (f->>'gateway_amount')::bigint,
    f->>'settle_currency', f->>'gateway_currency', f->>'settle_status', f->>'gateway_status',
    left(f->>'detail', 2000))
  on conflict (kind, gateway, gateway_object_id) do nothing
  returning id into v_id;
  if v_id is not null then
    return true;
  end if;
  select resolved_at is not null into v_reopen from public.gateway_discrepancies
  where kind = p_kind and gateway = p_gateway and gateway_object_id = p_object_id for update;
  update public.gateway_discrepancies set
    last_seen = now(), times_seen = times_seen + 1,
    reopened_count = reopened_count + v_reopen::int,
    resolved_at = null, resolution = null,
    order_id = coalesce((f->>'order_id')::uuid, order_id),
    refund_id = coalesce((f->>'refund_id')::uuid, refund_id),
    payout_id = coalesce((f->>'payout_id')::uuid, payout_id),
    gateway_payment_id = coalesce(f->>'gateway_payment_id', gateway_payment_id),
    settle_amount = (f->>'settle_amount')::bigint, gateway_amount = (f->>'gateway_amount')::bigint,
    settle_currency = f->>'settle_currency', gateway_currency = f->>'gateway_currency',
    settle_status = f->>'settle_status', gateway_status = f->>'gateway_status',
    detail = left(f->>'detail', 2000)
  where kind = p_kind and gateway = p_gateway and gateway_object_id = p_object_id;
  return v_reopen;
end
$$;

-- An operator closes a discrepancy with a note saying what was done. It stays closed unless
-- a later audit detects it again (then it is reopened and counted as new).
create function settle.resolve_gateway_discrepancy(p_id bigint, p_resolution text)
returns public.gateway_discrepancies
language plpgsql security definer set search_path = ''
as $$
declare
  v public.gateway_discrepancies;
begin
  if p_resolution is null or length(btrim(p_resolution)) = 0 or length(p_resolution) > 1000 then
    perform settle.fail(400, 'invalid_request', 'a resolution note of 1 to 1000 characters is required');
  end if;
  select * into v from public.gateway_discrepancies where id = p_id for update;
  if not found then
    perform settle.fail(404, 'not_found', format('no gateway discrepancy %s', p_id));
  end if;
  if v.resolved_at is not null then
    perform settle.fail(409, 'conflict', format('gateway discrepancy %s is already resolved', p_id));
  end if;
  update public.gateway_discrepancies set resolved_at = now(), resolution = p_resolution
  where id = p_id returning * into v;
  return v;
end
$$;

-- Section - privileges: operators (service role, SQL editor) only.
revoke execute on all functions in schema settle from public;
revoke all on public.gateway_discrepancies, public.gateway_discrepancies_open
  from anon, authenticated;
revoke all on settle.gateway_audit_runs from public;
grant execute on function settle.record_gateway_discrepancy(text, text, text, jsonb),
  settle.resolve_gateway_discrepancy(bigint, text) to service_role;
