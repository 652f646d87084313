-- Count only captured money. A checkout signature proves an authorization, not a capture, so
-- settle.apply_payment no longer takes a null amount as "proven by the signature": a capture
-- must carry the gateway's own amount and currency, which must be the order's. An
-- authorization reported for other terms is flagged the same way (it is never captured).

-- Section - applying payments
create or replace function settle.apply_payment(
  p_gateway text, p_kind text, p_gateway_order_id text, p_gateway_payment_id text,
  p_amount bigint, p_currency text, p_failure_code text default null, p_failure_reason text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
  v_terms_differ boolean;
begin
  select * into v_order from public.orders
  where gateway = p_gateway and gateway_order_id = p_gateway_order_id
  for update;
  if not found then
    return jsonb_build_object('outcome', 'unknown_order');
  end if;
  v_terms_differ := (p_amount is not null and p_amount <> v_order.amount)
    or (p_currency is not null and upper(p_currency) <> v_order.currency);

  if p_kind = 'captured' then
    if v_order.status in ('paid', 'partially_refunded', 'refunded') then
      -- Another payment captured for an order already paid is money to return: flag it.
      if p_gateway_payment_id is not null and v_order.gateway_payment_id is not null
         and p_gateway_payment_id <> v_order.gateway_payment_id then
        return jsonb_build_object('outcome', 'mismatch', 'order_id', v_order.id, 'status', v_order.status,
          'detail', format('payment %s was captured for order %s, already paid by %s',
            p_gateway_payment_id, v_order.id, v_order.gateway_payment_id));
      end if;
      return jsonb_build_object('outcome', 'no_effect', 'order_id', v_order.id, 'status', v_order.status);
    end if;
    if p_amount is null or p_currency is null then
      return jsonb_build_object('outcome', 'mismatch', 'order_id', v_order.id, 'status', v_order.status,
        'detail', 'a capture must carry the amount and currency the gateway captured');
    end if;
    if v_terms_differ then
      return jsonb_build_object('outcome', 'mismatch', 'order_id', v_order.id, 'status', v_order.status,
        'detail', format('gateway reported %s %s, order is %s %s',
          p_amount, upper(p_currency), v_order.amount, v_order.currency));
    end if;
    update public.orders
    set status = 'paid', paid_at = now(),
        gateway_payment_id = coalesce(p_gateway_payment_id, gateway_payment_id),
        failure_code = null, failure_reason = null
    where id = v_order.id
    returning * into v_order;
    return jsonb_build_object('outcome', 'applied', 'order_id', v_order.id, 'status', v_order.status);

  elsif p_kind = 'authorized' then
    if v_order.status <> 'created' then
      return jsonb_build_object('outcome', 'no_effect', 'order_id', v_order.id, 'status', v_order.status);
    end if;
    if v_terms_differ then
      return jsonb_build_object('outcome', 'mismatch', 'order_id', v_order.id, 'status', v_order.status,
        'detail', format('gateway authorized %s %s, order is %s %s',
          p_amount, upper(p_currency), v_order.amount, v_order.currency));
    end if;
    update public.orders set status = 'authorized',
        gateway_payment_id = coalesce(p_gateway_payment_id, gateway_payment_id)
    where id = v_order.id returning * into v_order;
    return jsonb_build_object('outcome', 'applied', 'order_id', v_order.id, 'status', v_order.status);

  elsif p_kind = 'failed' then
    -- A failure never undoes a payment, and a late failure after paid changes nothing.
    if v_order.status not in ('created', 'authorized') then
      return jsonb_build_object('outcome', 'no_effect', 'order_id', v_order.id, 'status', v_order.status);
    end if;
    update public.orders set status = 'failed',
        failure_code = left(p_failure_code, 200), failure_reason = left(p_failure_reason, 1000)
    where id = v_order.id returning * into v_order;
    return jsonb_build_object('outcome', 'applied', 'order_id', v_order.id, 'status', v_order.status);
  end if;

  perform settle.fail(400, 'invalid_request', 'unknown payment event kind ' || coalesce(p_kind, 'null'));
end
$$;

-- create or replace keeps the grants, but say it again: only the service role applies payments.
revoke execute on function settle.apply_payment(text, text, text, text, bigint, text, text, text)
  from public, anon, authenticated;
grant execute on function settle.apply_payment(text, text, text, text, bigint, text, text, text)
  to service_role;
