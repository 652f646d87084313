-- Refunds made at the gateway: refund webhooks converge with settle's own refunds by identity
-- only (the gateway refund id, or the settle_refund_id settle sent in notes/metadata), never by
-- amount. Anything else is a refund made outside settle (a dashboard, the gateway's API) and
-- becomes its own refund row (origin 'gateway') with its ledger posting. When it does not fit
-- the order yet (settle's own request the gateway has not answered, or a refund whose failure is
-- not delivered yet, fills it; or the order is not paid yet), it is held (gateway_refund_holds)
-- and applied the moment one of them fails or the order is paid; one that can never fit stays
-- held as a mismatch for an operator.

-- Section - holds
create table public.gateway_refund_holds (
  gateway text not null check (gateway in ('razorpay', 'stripe', 'paypal')),
  gateway_refund_id text not null check (length(gateway_refund_id) between 1 and 255),
  order_id uuid not null references public.orders (id),
  amount bigint,
  currency text,
  status text not null check (status in ('pending', 'processed', 'failed')),
  reason text not null check (reason in ('awaiting_room', 'exceeds_payment', 'currency_mismatch',
    'order_not_refundable', 'invalid_amount', 'failed_uncounted', 'payment_mismatch')),
  detail text,
  effect jsonb not null,
  refund_id uuid references public.refunds (id),
  resolved_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- Generated from the stored effect, so every writer of holds fills it (the effect is the
  -- event's).
  gateway_payment_id text generated always as (effect ->> 'gateway_payment_id') stored,
  primary key (gateway, gateway_refund_id),
  check ((resolved_at is null) or (refund_id is not null or status = 'failed'))
);
alter table public.gateway_refund_holds enable row level security;
comment on table public.gateway_refund_holds is 'Refunds the gateway made that settle has not counted: awaiting_room (refunds settle counts fill the order, so one of them is failing: settle''s own unanswered request, or a failure not delivered yet; applied when one fails), or a mismatch an operator must look at. resolved_at is set when it is counted (refund_id) or failed at the gateway; failed_uncounted remembers a refund whose failure arrived before it was counted, so its older created/processed events never count it.';
comment on column public.gateway_refund_holds.gateway_payment_id is 'The gateway payment the held refund refunds (from its event): for a payment_mismatch hold, a payment settle never counted for the order.';
create index gateway_refund_holds_open_idx on public.gateway_refund_holds (order_id)
  where resolved_at is null;

-- Holds a gateway refund settle cannot count (yet), or updates the hold with a later state
-- (failed is final; processed is never set back to pending). Returns the webhook outcome.
create function settle.hold_gateway_refund(
  p_gateway text, p_order public.orders, p_effect jsonb, p_reason text, p_detail text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_status text := p_effect ->> 'status';
begin
  insert into public.gateway_refund_holds (gateway, gateway_refund_id, order_id, amount, currency,
    status, reason, detail, effect)
  values (p_gateway, p_effect ->> 'gateway_refund_id', p_order.id, (p_effect ->> 'amount')::bigint,
    upper(p_effect ->> 'currency'), v_status, p_reason, left(p_detail, 1000), p_effect)
  on conflict (gateway, gateway_refund_id) do update
  set status = case when gateway_refund_holds.status = 'failed' then 'failed'
                    when gateway_refund_holds.status = 'processed' and excluded.status = 'pending'
                      then 'processed'
                    else excluded.status end,
      reason = excluded.reason, detail = excluded.detail,
      effect = case when gateway_refund_holds.status = 'failed'
                      or (gateway_refund_holds.status = 'processed' and excluded.status = 'pending')
                    then gateway_refund_holds.effect else excluded.effect end,
      updated_at = now()
  where gateway_refund_holds.resolved_at is null;
  return jsonb_build_object(
    'outcome', case when p_reason = 'awaiting_room' then 'applied' else 'mismatch' end,
    'held', p_reason, 'order_id', p_order.id, 'detail', p_detail);
end
$$;

-- Section - refunds the gateway made
-- A refund the gateway made that is not one of settle's: counted as its own row (origin
-- gateway) when it fits the order, else held. A refund of a payment other than the one settle
-- counted for a paid order (the payer paid an order twice and settle kept the other payment) is
-- held as 'payment_mismatch': that money never reached the order, so it is not taken from the
-- order; an operator returns or reconciles it. Runs under the order's lock.
create function settle.apply_gateway_origin_refund(p_gateway text, p_order public.orders, p_effect jsonb)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id text := p_effect ->> 'gateway_refund_id';
  v_amount bigint := (p_effect ->> 'amount')::bigint;
  v_status text := p_effect ->> 'status';
  v_currency text := upper(p_effect ->> 'currency');
  v_payment text := p_effect ->> 'gateway_payment_id';
  v_refund public.refunds;
  v_detail text;
begin
  -- Events are not ordered: a failure that arrives before the refund was counted is remembered
  -- (resolved at once), so its older created/processed events never count it afterwards.
  if v_status = 'failed' then
    insert into public.gateway_refund_holds (gateway, gateway_refund_id, order_id, amount, currency,
      status, reason, detail, effect, resolved_at)
    values (p_gateway, v_id, p_order.id, v_amount, v_currency, 'failed', 'failed_uncounted',
      'failed at the gateway before settle counted it', p_effect, now())
    on conflict (gateway, gateway_refund_id) do update
    set status = 'failed', resolved_at = coalesce(gateway_refund_holds.resolved_at, now()), updated_at = now();
    return jsonb_build_object('outcome', 'no_effect', 'order_id', p_order.id,
      'detail', 'a failed refund settle never counted');
  elsif exists (select 1 from public.gateway_refund_holds where gateway = p_gateway
                and gateway_refund_id = v_id and status = 'failed') then
    return jsonb_build_object('outcome', 'no_effect', 'order_id', p_order.id,
      'detail', 'an older state of a refund that failed at the gateway');
  end if;
  v_detail := format('gateway refund %s of %s %s on order %s (%s, %s of %s refunded)', v_id,
    v_amount, v_currency, p_order.id, p_order.status, p_order.amount_refunded, p_order.amount);
  if v_currency is distinct from p_order.currency then
    return settle.hold_gateway_refund(p_gateway, p_order, p_effect, 'currency_mismatch', v_detail);
  elsif v_amount is null or v_amount <= 0 then
    return settle.hold_gateway_refund(p_gateway, p_order, p_effect, 'invalid_amount', v_detail);
  elsif p_order.status not in ('paid', 'partially_refunded', 'refunded') then
    return settle.hold_gateway_refund(p_gateway, p_order, p_effect, 'order_not_refundable', v_detail);
  elsif v_payment is not null and v_payment is distinct from p_order.gateway_payment_id then
    return settle.hold_gateway_refund(p_gateway, p_order, p_effect, 'payment_mismatch', format(
      'gateway refund %s of %s %s refunds payment %s; order %s was paid by %s, the payment settle counts',
      v_id, v_amount, v_currency, v_payment, p_order.id, p_order.gateway_payment_id));
  end if;
  if v_amount > p_order.amount - p_order.amount_refunded then
    -- The gateway never refunds more than it captured, so what fills the order now will give
    -- way: settle's own request the gateway has not answered (it will be refused), or a refund
    -- whose failure has not arrived yet. Held until then; only more than the whole payment
    -- can never fit.
    return settle.hold_gateway_refund(p_gateway, p_order, p_effect,
      case when v_amount <= p_order.amount then 'awaiting_room' else 'exceeds_payment' end, v_detail);
  end if;
  v_refund := settle.insert_refund(p_order, v_amount, v_status, 'gateway', 'refunded at the gateway',
    v_id, null, null, null);
  update public.gateway_refund_holds set refund_id = v_refund.id, resolved_at = now(), updated_at = now()
  where gateway = p_gateway and gateway_refund_id = v_id and resolved_at is null;
  return jsonb_build_object('outcome', 'applied', 'order_id', p_order.id, 'refund_id', v_refund.id);
end
$$;

-- Held gateway refunds of an order, tried again (oldest first) once it has room: when a settle
-- refund of it fails, and when it becomes paid (settle.order_effects, orders file: events are not
-- ordered, and a refund webhook can come before the capture, a dropped or late
-- payment.captured, a verify never called; it is held as 'order_not_refundable' until then).
create function settle.apply_held_gateway_refunds(p_order_id uuid) returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  v_hold public.gateway_refund_holds;
  v_order public.orders;
  v_applied integer := 0;
begin
  for v_hold in
    select * from public.gateway_refund_holds
    where order_id = p_order_id and resolved_at is null
    order by created_at, gateway_refund_id
  loop
    select * into v_order from public.orders where id = p_order_id for update;
    if (settle.apply_gateway_origin_refund(v_hold.gateway, v_order, v_hold.effect)
        ->> 'refund_id') is not null then
      v_applied := v_applied + 1;
    end if;
  end loop;
  return v_applied;
end
$$;

-- Section - refund webhooks
-- Refund webhooks (Razorpay refund.*, Stripe refund.* and the effects of charge.refunded, PayPal
-- PAYMENT.CAPTURE.REFUNDED). Converges with the API path by identity only: the event finds
-- settle's refund by its gateway refund id, else by the settle_refund_id settle sent in
-- notes/metadata; anything else is a refund made at the gateway (apply_gateway_origin_refund).
-- An event for a refund settle knows is applied only if it names the refund's amount, currency
-- and gateway payment (each where the event carries it); otherwise it is a 'mismatch' stored on
-- the webhook event for an operator: the refund is not linked or moved.
-- p_effect: {action: refund, gateway_refund_id, gateway_payment_id, gateway_order_id, amount,
-- currency, status pending|processed|failed, settle_refund_id, failure_reason}. Over 70 lines: the
-- lookups by identity, in this order and under these locks, are one decision.
create function settle.apply_refund_event(p_gateway text, p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
  v_order public.orders;
  v_gateway_refund_id text := p_effect ->> 'gateway_refund_id';
  v_status text := p_effect ->> 'status';
  v_amount bigint := (p_effect ->> 'amount')::bigint;
  v_currency text := upper(p_effect ->> 'currency');
  v_payment text := p_effect ->> 'gateway_payment_id';
  v_settle_id uuid;
  v_before text;
begin
  if v_gateway_refund_id is null or v_status is null
     or v_status not in ('pending', 'processed', 'failed') then
    return jsonb_build_object('outcome', 'ignored');
  end if;
  begin
    v_settle_id := (p_effect ->> 'settle_refund_id')::uuid;
  exception when invalid_text_representation then
    v_settle_id := null;
  end;

  select * into v_refund from public.refunds
  where gateway = p_gateway and gateway_refund_id = v_gateway_refund_id for update;
  if v_refund.id is null and v_settle_id is not null then
    select * into v_refund from public.refunds
    where id = v_settle_id and gateway = p_gateway and gateway_refund_id is null for update;
  end if;

  if v_refund.id is null then
    -- Not one of ours: find the order by the payment it refunds.
    select * into v_order from public.orders
    where gateway = p_gateway and (
      gateway_payment_id = p_effect ->> 'gateway_payment_id'
      or (p_effect ->> 'gateway_order_id' is not null and gateway_order_id = p_effect ->> 'gateway_order_id'))
    order by (gateway_payment_id = p_effect ->> 'gateway_payment_id') desc nulls last
    limit 1
    for update;
    if v_order.id is null then
      return jsonb_build_object('outcome', 'unknown_order');
    end if;
    -- Under the order lock: a concurrent delivery may have counted it meanwhile.
    select * into v_refund from public.refunds
    where gateway = p_gateway and gateway_refund_id = v_gateway_refund_id for update;
    if v_refund.id is null then
      return settle.apply_gateway_origin_refund(p_gateway, v_order, p_effect);
    end if;
  end if;

  if (v_amount is not null and v_amount <> v_refund.amount)
     or (v_currency is not null and v_currency <> v_refund.currency)
     or (v_payment is not null and v_payment <> v_refund.gateway_payment_id) then
    return jsonb_build_object('outcome', 'mismatch', 'order_id', v_refund.order_id,
      'detail', format('gateway refund %s is %s %s of payment %s; settle counted refund %s: %s %s of payment %s',
        v_gateway_refund_id, v_amount, v_currency, v_payment, v_refund.id, v_refund.amount,
        v_refund.currency, v_refund.gateway_payment_id));
  end if;
  if v_refund.gateway_refund_id is null then
    update public.refunds set gateway_refund_id = v_gateway_refund_id where id = v_refund.id
    returning * into v_refund;
  end if;
  -- A processed event arriving after failed is an older state delivered late (events are not
  -- ordered; Stripe fails a succeeded refund): failed is final, the transition is a no-op.
  v_before := v_refund.status;
  v_refund := settle.transition_refund(v_refund.id, v_status, p_effect ->> 'failure_reason');
  return jsonb_build_object(
    'outcome', case when v_refund.status = v_before then 'no_effect' else 'applied' end,
    'order_id', v_refund.order_id, 'refund_id', v_refund.id, 'status', v_refund.status);
end
$$;

-- A charge's refunds (Stripe charge.refunded), each through settle.apply_refund_event: the same
-- refund id arriving by refund.* as well converges on one refund row. The outcome is 'applied'
-- if any refund changed something, else the most telling of the others.
create function settle.apply_refund_list(p_gateway text, p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_item jsonb;
  v_one jsonb;
  v_outcomes text[] := '{}';
  v_order uuid;
  v_details text[] := '{}';
begin
  if jsonb_typeof(p_effect -> 'refunds') is distinct from 'array' then
    return jsonb_build_object('outcome', 'ignored', 'detail', 'no refund list');
  end if;
  for v_item in select value from jsonb_array_elements(p_effect -> 'refunds') loop
    v_one := settle.apply_refund_event(p_gateway, v_item);
    v_outcomes := v_outcomes || (v_one ->> 'outcome');
    v_order := coalesce(v_order, (v_one ->> 'order_id')::uuid);
    if v_one ->> 'detail' is not null then
      v_details := v_details || (v_one ->> 'detail');
    end if;
  end loop;
  return jsonb_strip_nulls(jsonb_build_object(
    'outcome', case
      when 'applied' = any(v_outcomes) then 'applied'
      when 'mismatch' = any(v_outcomes) then 'mismatch'
      when 'no_effect' = any(v_outcomes) then 'no_effect'
      when 'unknown_order' = any(v_outcomes) then 'unknown_order'
      when cardinality(v_outcomes) = 0 then coalesce(p_effect ->> 'outcome', 'no_effect')
      else 'ignored' end,
    'order_id', v_order,
    'detail', coalesce(nullif(array_to_string(v_details, '; '), ''), p_effect ->> 'detail')));
end
$$;

-- Section - operators: what the platform is owed and what settle could not count
create view public.refund_exceptions with (security_barrier) as
  select 'wallet_shortfall'::text as kind, r.order_id, r.account_id, r.gateway,
    r.gateway_refund_id, r.shortfall as amount, r.currency, r.status,
    format('gateway refund of %s; the wallet covered %s, receivable:refund_shortfall advanced %s',
      r.amount, r.amount - r.shortfall, r.shortfall) as detail, r.created_at
  from public.refunds r where r.shortfall > 0 and r.status <> 'failed'
  union all
  select 'held_' || h.reason, h.order_id, o.account_id, h.gateway, h.gateway_refund_id, h.amount,
    h.currency, h.status, h.detail, h.created_at
  from public.gateway_refund_holds h join public.orders o on o.id = h.order_id
  where h.resolved_at is null;
comment on view public.refund_exceptions is 'For operators (service role): gateway refunds a wallet could not cover (the shortfall the platform is owed, in receivable:refund_shortfall) and gateway refunds settle has not counted (held: awaiting_room until settle''s own unanswered request fails, or a mismatch to resolve by hand).';

-- Section - privileges
-- Operators only (service role; analysts read the exceptions).
revoke execute on all functions in schema settle from public;
revoke all on public.gateway_refund_holds, public.refund_exceptions from anon, authenticated;
grant select on public.refund_exceptions to payment_analyst;
grant execute on function settle.apply_refund_event(text, jsonb),
  settle.apply_refund_list(text, jsonb), settle.apply_held_gateway_refunds(uuid)
  to service_role;
