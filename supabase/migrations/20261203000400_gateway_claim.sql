-- A slow gateway must not stall everyone: create-order no longer holds the order's row lock (and
-- a pooled connection) across the gateway's HTTP call. Instead it claims the call on the order in
-- one short statement, calls the gateway with nothing held, and records the answer in another
-- short statement guarded by the order's state. Concurrent requests for one order see the live
-- claim and wait for its answer (short reads, no lock); a claim whose request died runs out after
-- its lease and is taken over by the next request, whose call looks the gateway order up first
-- (Razorpay: by receipt; Stripe: the same idempotency key), so an order never gets a second one.

-- Section - the claim on orders
alter table public.orders
  add column gateway_claim_id uuid,
  add column gateway_claimed_until timestamptz;
comment on column public.orders.gateway_claim_id is 'The request now asking the gateway for this order''s gateway order; null when none is.';
comment on column public.orders.gateway_claimed_until is 'When that request''s claim runs out (the gateway call''s longest time plus a margin): after it, another request may ask the gateway again.';

-- Claims the gateway call for an order still created and without a gateway order, unless another
-- live claim holds it. One statement: concurrent claims queue on the row only for its duration,
-- and the loser re-reads the claimed row and is refused. gateway_attempts counts the call now,
-- so the caller learns whether an earlier call (finished, failed or lost) may have created the
-- gateway order already. The answer carries the order as it is either way.
create function settle.claim_gateway_order(p_order_id uuid, p_claim uuid, p_lease_ms integer)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
begin
  if p_order_id is null or p_claim is null then
    perform settle.fail(400, 'invalid_request', 'an order id and a claim id are required');
  end if;
  if p_lease_ms is null or p_lease_ms not between 1 and 600000 then
    perform settle.fail(400, 'invalid_request', 'the lease must be between 1 ms and 10 minutes');
  end if;
  update public.orders o
  set gateway_claim_id = p_claim,
      gateway_claimed_until = clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0),
      gateway_attempts = o.gateway_attempts + 1
  where o.id = p_order_id and o.status = 'created' and o.gateway_order_id is null
    and (o.gateway_claimed_until is null or o.gateway_claimed_until <= clock_timestamp())
  returning * into v_order;
  if found then
    return jsonb_build_object('claimed', true, 'order', to_jsonb(v_order));
  end if;
  select * into v_order from public.orders where id = p_order_id;
  if not found then
    perform settle.fail(404, 'not_found', 'order not found');
  end if;
  return jsonb_build_object('claimed', false, 'order', to_jsonb(v_order));
end
$$;

-- Records a claimed call's answer. A gateway order id is recorded only while the order is still
-- created and has none (the first answer wins; the guard trigger keeps it set once), and ends any
-- claim. A failure (p_gateway_order_id null) is noted and frees the claim at once for a retry,
-- but only while this request still holds it. The answer carries the order as it is now.
create function settle.record_gateway_order(
  p_order_id uuid, p_claim uuid, p_gateway_order_id text, p_error text
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

-- Section - privileges
-- The server calls these after create_order (as the user) has made or replayed the order.
revoke execute on function settle.claim_gateway_order(uuid, uuid, integer),
  settle.record_gateway_order(uuid, uuid, text, text)
  from public, anon, authenticated;
grant execute on function settle.claim_gateway_order(uuid, uuid, integer),
  settle.record_gateway_order(uuid, uuid, text, text)
  to service_role;
