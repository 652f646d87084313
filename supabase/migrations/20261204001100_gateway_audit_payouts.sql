-- The gateway audit compares payouts too (issue 14, last line): the payout gateways' own lists
-- (RazorpayX GET /v1/payouts, Stripe GET /v1/transfers) against public.payouts
-- (shared/services/gateway_audit_payouts.ts). Three kinds, a payout_id link, and
-- settle.record_gateway_discrepancy storing it.

-- Section - kinds: the whole list of 20261203000500_gateway_audit.sql plus the payout kinds.
alter table public.gateway_discrepancies drop constraint gateway_discrepancies_kind_check;
alter table public.gateway_discrepancies add constraint gateway_discrepancies_kind_check
  check (kind in (
    'missing_in_settle', 'not_captured_at_gateway', 'amount_mismatch', 'currency_mismatch',
    'credit_count', 'refund_missing_in_settle', 'refund_not_at_gateway', 'refund_amount_mismatch',
    'payout_missing_in_settle', -- the gateway paid out; settle has no such payout, or returned it
    'payout_status_mismatch',   -- settle counts a processed payout the gateway lacks, failed or reversed
    'payout_amount_mismatch'    -- both paid out, different amounts (net of reversals) or currencies
  ));

-- Section - the payout a payout kind is about (null for the others and for unknown payouts).
alter table public.gateway_discrepancies
  add column payout_id uuid references public.payouts (id);
comment on column public.gateway_discrepancies.payout_id is 'Payout kinds: settle''s payout (null when the gateway''s payout is not settle''s). gateway_object_id is then the gateway payout id (RazorpayX pout_…, Stripe tr_…).';

-- settle.record_gateway_discrepancy as defined in 20261203000500_gateway_audit.sql, extended:
-- p_fields may carry "payout_id", stored like order_id and refund_id.
create or replace function settle.record_gateway_discrepancy(
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

-- The open view as defined in 20261203000500_gateway_audit.sql, with payout_id appended.
create or replace view public.gateway_discrepancies_open with (security_invoker = true) as
select id, kind, gateway, gateway_object_id, order_id, refund_id, gateway_payment_id,
  gateway_refund_id, settle_amount, gateway_amount, settle_currency, gateway_currency,
  settle_status, gateway_status, detail, first_seen, last_seen, times_seen, reopened_count,
  payout_id
from public.gateway_discrepancies
where resolved_at is null
order by first_seen, id;

-- What the audit reads settle's payouts by besides their keys: processed in the window.
create index if not exists payouts_processed_at_idx on public.payouts (gateway, processed_at)
  where status = 'processed';

-- Section - privileges: as 20261203000500_gateway_audit.sql (create or replace keeps the
-- grants; restated so this migration alone says who may call it).
revoke execute on function settle.record_gateway_discrepancy(text, text, text, jsonb)
  from public, anon, authenticated;
grant execute on function settle.record_gateway_discrepancy(text, text, text, jsonb)
  to service_role;
revoke all on public.gateway_discrepancies_open from public, anon, authenticated;
grant select on public.gateway_discrepancies_open to service_role;
