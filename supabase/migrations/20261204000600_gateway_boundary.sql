-- The gateway boundary, hardened (the previous session's review findings):
--  * A gateway refund of a payment settle never counted (the payer paid an order twice and settle
--    kept the other payment) is held as 'payment_mismatch', linked to the payment it refunds
--    (gateway_refund_holds.gateway_payment_id), never debited from the kept payment.
--  * A refund webhook for a refund settle knows is applied only if its amount, currency and
--    gateway payment are the refund's; anything else is a 'mismatch' that changes nothing.
--  * settle.record_refund_result takes the per-payment advisory lock refund webhooks take
--    (class 1399157590, migration 20261203001000) before any row lock, so a refund's API answer
--    and a refund webhook of the same payment are applied one at a time and cannot deadlock.
--  * settle.retry_failed_webhooks leaves events owed a gateway read to their read path
--    (settle.pending_webhook_reads / settle.complete_webhook_read).
--  * A gateway order call whose outcome is unknown (a timeout) keeps its claim until the lease
--    ends, so no second request asks the gateway while the first call may still make the order.
--  * One gateway payment pays at most one order: a unique index, behind a clear 409.

-- Section - held refunds: the payment a held refund refunds
alter table public.gateway_refund_holds drop constraint gateway_refund_holds_reason_check;
alter table public.gateway_refund_holds add constraint gateway_refund_holds_reason_check
  check (reason in ('awaiting_room', 'exceeds_payment', 'currency_mismatch', 'order_not_refundable',
    'invalid_amount', 'failed_uncounted', 'payment_mismatch'));
-- Generated from the stored effect, so every writer of holds fills it (the effect is the event's).
alter table public.gateway_refund_holds add column gateway_payment_id text
  generated always as (effect ->> 'gateway_payment_id') stored;
comment on column public.gateway_refund_holds.gateway_payment_id is 'The gateway payment the held refund refunds (from its event): for a payment_mismatch hold, a payment settle never counted for the order.';

-- Section - refunds made at the gateway
-- Extends the definition in 20261203000200_refund_identity.sql: a refund of a payment other than
-- the one settle counted for a paid order is held as 'payment_mismatch' (that money never reached
-- the order, so it is not taken from the order; an operator returns or reconciles it).
create or replace function settle.apply_gateway_origin_refund(p_gateway text, p_order public.orders, p_effect jsonb)
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

-- Section - refund webhooks
-- Extends the definition in 20261203000200_refund_identity.sql: an event for a refund settle
-- knows (by gateway refund id or settle_refund_id) is applied only if it names the refund's
-- amount, currency and gateway payment (each where the event carries it). Otherwise it is a
-- 'mismatch' stored on the webhook event for an operator: the refund is not linked or moved.
create or replace function settle.apply_refund_event(p_gateway text, p_effect jsonb) returns jsonb
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

-- Section - the API's answer to a refund request
-- Extends the definition in 20261203000200_refund_identity.sql: first the per-payment advisory
-- lock settle.apply_webhook_effect takes for refund events (class 1399157590, the same key:
-- gateway || '/refunds-of/' || the payment), before any row lock. Without it the answer (refund
-- row, then order) and a webhook listing a dashboard refund before this one (order, then refund
-- row) locked in opposite orders and one of them died of a deadlock.
create or replace function settle.record_refund_result(
  p_refund_id uuid, p_gateway_refund_id text, p_status text, p_failure_reason text default null,
  p_gateway_error text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
begin
  -- gateway and gateway_payment_id never change (guard_refund_update): safe to read unlocked.
  select * into v_refund from public.refunds where id = p_refund_id;
  if v_refund.id is null then
    perform settle.fail(404, 'not_found', 'refund not found');
  end if;
  perform pg_advisory_xact_lock(1399157590,
    hashtext(v_refund.gateway || '/refunds-of/' || v_refund.gateway_payment_id));
  select * into v_refund from public.refunds where id = p_refund_id for update;
  update public.refunds
  set gateway_refund_id = coalesce(gateway_refund_id, p_gateway_refund_id),
      gateway_attempts = gateway_attempts + 1,
      last_gateway_error = left(p_gateway_error, 500)
  where id = p_refund_id returning * into v_refund;
  if p_status = 'failed' and p_gateway_refund_id is null and v_refund.gateway_refund_id is not null then
    return to_jsonb(v_refund);
  end if;
  if p_status is not null then
    v_refund := settle.transition_refund(p_refund_id, p_status, p_failure_reason);
  end if;
  return to_jsonb(v_refund);
end
$$;

-- Section - failed webhook events
-- Extends the definition in 20261121000800_reconcile.sql: events whose effect still owes a
-- gateway read (fetch_card, fetch_refunds) are not taken: the SQL retry cannot read the gateway,
-- so re-applying them only burned their attempts and pushed back their read
-- (reconcile's retryOwedReads through settle.pending_webhook_reads / complete_webhook_read).
create or replace function settle.retry_failed_webhooks(
  p_limit integer, p_retry_seconds integer, p_max_attempts integer default 10
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_event public.webhook_events;
  v_result jsonb;
  v_retried integer := 0;
  v_failed integer := 0;
begin
  if p_limit is null or p_limit not between 1 and 1000 then
    perform settle.fail(400, 'invalid_request', 'limit must be between 1 and 1000');
  end if;
  if p_retry_seconds is null or p_retry_seconds < 0 or p_max_attempts is null or p_max_attempts < 1 then
    perform settle.fail(400, 'invalid_request', 'the retry delay and attempts must be positive');
  end if;
  -- The batch is the oldest due events; it is applied in (gateway, gateway order) order, so two
  -- retriers that lock the same orders lock them in the same order and never deadlock.
  for v_event in
    with batch as (
      select * from public.webhook_events e
      where e.outcome = 'failed' and e.attempts < p_max_attempts
        and coalesce(e.effect ->> 'action', '') not in ('fetch_card', 'fetch_refunds')
        and coalesce(e.processed_at, e.received_at) <= now() - make_interval(
          secs => p_retry_seconds * power(2, least(greatest(e.attempts - 1, 0), 6)))
      order by e.received_at
      limit p_limit
      for update skip locked
    )
    select * from batch b order by b.gateway, b.gateway_order_id nulls last, b.received_at, b.id
  loop
    begin
      v_result := settle.apply_webhook_effect(v_event.gateway, v_event.kind,
        v_event.gateway_order_id, v_event.gateway_payment_id, v_event.amount, v_event.currency,
        v_event.failure_code, v_event.failure_reason, v_event.effect);
    exception when others then
      v_result := jsonb_build_object('outcome', 'failed', 'detail', left(sqlerrm, 1000));
    end;
    update public.webhook_events
    set outcome = v_result ->> 'outcome',
        detail = v_result ->> 'detail',
        order_id = coalesce((v_result ->> 'order_id')::uuid, order_id),
        attempts = attempts + 1,
        processed_at = now()
    where id = v_event.id;
    v_retried := v_retried + 1;
    if v_result ->> 'outcome' = 'failed' then
      v_failed := v_failed + 1;
    end if;
  end loop;
  return jsonb_build_object('retried', v_retried, 'resolved', v_retried - v_failed, 'failed', v_failed);
end
$$;

-- Section - the claim on an order's gateway call
-- Extends the definition in 20261203000400_gateway_claim.sql with p_outcome_unknown: a call that
-- failed without the gateway saying no (a timeout, a dropped connection, a 5xx) may still make
-- the gateway order, so its claim is kept until gateway_claimed_until (only the error is noted):
-- meanwhile no other request asks the gateway, and the one that takes the claim over afterwards
-- looks the order up first (Razorpay receipt, Stripe idempotency key). A refusal frees the claim
-- at once, as before. Null counts as unknown.
create function settle.record_gateway_order(
  p_order_id uuid, p_claim uuid, p_gateway_order_id text, p_error text, p_outcome_unknown boolean
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
begin
  if p_order_id is null or p_claim is null then
    perform settle.fail(400, 'invalid_request', 'an order id and a claim id are required');
  end if;
  if p_gateway_order_id is not null then
    update public.orders
    set gateway_order_id = p_gateway_order_id, last_gateway_error = null,
        gateway_claim_id = null, gateway_claimed_until = null
    where id = p_order_id and status = 'created' and gateway_order_id is null
    returning * into v_order;
  elsif coalesce(p_outcome_unknown, true) then
    update public.orders
    set last_gateway_error = left(coalesce(p_error, 'gateway call failed'), 500)
    where id = p_order_id and gateway_claim_id = p_claim
    returning * into v_order;
  else
    update public.orders
    set last_gateway_error = left(coalesce(p_error, 'gateway call failed'), 500),
        gateway_claim_id = null, gateway_claimed_until = null
    where id = p_order_id and gateway_claim_id = p_claim
    returning * into v_order;
  end if;
  if found then
    return jsonb_build_object('recorded', true, 'order', to_jsonb(v_order));
  end if;
  select * into v_order from public.orders where id = p_order_id;
  if not found then
    perform settle.fail(404, 'not_found', 'order not found');
  end if;
  return jsonb_build_object('recorded', false, 'order', to_jsonb(v_order));
end
$$;

-- The four-argument form (20261203000400) stays for its callers: a failure it records is a
-- refusal (known outcome), which frees the claim.
create or replace function settle.record_gateway_order(
  p_order_id uuid, p_claim uuid, p_gateway_order_id text, p_error text
) returns jsonb
language sql security definer set search_path = ''
as $$ select settle.record_gateway_order(p_order_id, p_claim, p_gateway_order_id, p_error, false) $$;

-- Section - one gateway payment, one order
-- No path writes one payment id on two orders: apply_payment takes the id the gateway reports for
-- the order's own gateway order (a Razorpay payment belongs to one order, a Stripe charge to one
-- intent) and wallet orders get 'wallet_' || their own id. A clear 409 first (verify answers it;
-- a webhook whose effect raises is stored 'failed' for an operator), the unique index last.
create function settle.guard_order_payment_identity() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_other uuid;
begin
  select id into v_other from public.orders
  where gateway = new.gateway and gateway_payment_id = new.gateway_payment_id and id <> new.id;
  if v_other is not null then
    perform settle.fail(409, 'payment_mismatch', format(
      'payment %s already pays order %s; it cannot pay order %s', new.gateway_payment_id, v_other,
      new.id));
  end if;
  return new;
end
$$;
create trigger orders_guard_payment_identity before update of gateway_payment_id on public.orders
  for each row when (new.gateway_payment_id is not null
    and new.gateway_payment_id is distinct from old.gateway_payment_id)
  execute function settle.guard_order_payment_identity();

do $$
declare
  v_dupes integer;
begin
  select count(*) into v_dupes from (select 1 from public.orders where gateway_payment_id is not null
    group by gateway, gateway_payment_id having count(*) > 1) d;
  if v_dupes > 0 then
    raise exception '% gateway payments are recorded on more than one order', v_dupes
      using hint = 'select gateway, gateway_payment_id, array_agg(id) from public.orders where gateway_payment_id is not null group by 1, 2 having count(*) > 1';
  end if;
end
$$;
create unique index orders_gateway_payment_unique_idx on public.orders (gateway, gateway_payment_id)
  where gateway_payment_id is not null;
-- The unique index serves every lookup the plain one (20261203000500) did.
drop index if exists public.orders_gateway_payment_id_idx;

-- Section - privileges
revoke execute on function
  settle.apply_gateway_origin_refund(text, public.orders, jsonb),
  settle.apply_refund_event(text, jsonb),
  settle.record_refund_result(uuid, text, text, text, text),
  settle.retry_failed_webhooks(integer, integer, integer),
  settle.record_gateway_order(uuid, uuid, text, text, boolean),
  settle.record_gateway_order(uuid, uuid, text, text),
  settle.guard_order_payment_identity()
  from public, anon, authenticated;
grant execute on function
  settle.retry_failed_webhooks(integer, integer, integer),
  settle.record_gateway_order(uuid, uuid, text, text, boolean),
  settle.record_gateway_order(uuid, uuid, text, text)
  to service_role;
