-- Refund events for one gateway payment are applied one at a time.
--
-- A refund effect takes row locks in an order that depends on what it finds: a refund settle
-- already knows is locked before its order, a refund made at the gateway locks the order first
-- and then inserts the refund row (whose unique key makes a concurrent insert wait for it). Two
-- different events for the same payment (Stripe's charge.refunded listing a refund and that
-- refund's refund.updated; Razorpay's refund.created and refund.processed) could therefore
-- deadlock, and Postgres answered one of them with an error (a 500 that the gateway retries). A
-- transaction-scoped advisory lock per gateway payment, taken before any row lock, serializes
-- them; events for other payments are not affected. The lock class is 1399157590, next to
-- ingest_webhook's event-id (1399157588) and body-key (1399157589) classes; the key is the
-- payment's hash (a collision only makes two payments' refund events wait for each other).
create or replace function settle.apply_webhook_effect(
  p_gateway text, p_kind text, p_gateway_order_id text, p_gateway_payment_id text,
  p_amount bigint, p_currency text, p_failure_code text, p_failure_reason text, p_effect jsonb
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  if p_effect is not null then
    if p_effect ->> 'action' in ('refund', 'refunds') then
      perform pg_advisory_xact_lock(1399157590, hashtext(p_gateway || '/refunds-of/' || coalesce(
        p_gateway_payment_id, p_effect ->> 'gateway_payment_id', p_gateway_order_id,
        p_effect ->> 'gateway_order_id', p_effect ->> 'gateway_refund_id', '')));
    end if;
    case p_effect ->> 'action'
      when 'refund' then
        return settle.apply_refund_event(p_gateway, p_effect);
      when 'refunds' then
        return settle.apply_refund_list(p_gateway, p_effect);
      when 'fetch_card', 'fetch_refunds' then
        return jsonb_build_object('outcome', 'failed', 'detail',
          coalesce(p_effect ->> 'detail', 'waiting for a read from the gateway'));
      else
        return settle.apply_payment_method_event(p_effect);
    end case;
  elsif p_kind is null or p_kind not in ('authorized', 'captured', 'failed') or p_gateway_order_id is null then
    return jsonb_build_object('outcome', 'ignored');
  end if;
  return settle.apply_payment(p_gateway, p_kind, p_gateway_order_id, p_gateway_payment_id,
    p_amount, p_currency, p_failure_code, p_failure_reason);
end
$$;

revoke execute on function settle.apply_webhook_effect(text, text, text, text, bigint, text, text,
  text, jsonb) from public, anon, authenticated;
