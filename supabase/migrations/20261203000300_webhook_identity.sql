-- Webhooks that are signed but wrong, and Stripe events settle used to drop (issue 10,
-- sections 4 and 7):
--  * public.webhook_events.body_key: a second identity taken from what the body says, for
--    gateways whose event id is not signed (Razorpay's x-razorpay-event-id). Unique per gateway,
--    so a signed body replayed under fresh event ids is stored once.
--  * settle.ingest_webhook takes the body key (and locks on it as well as on the event id).
--  * settle.apply_webhook_effect also dispatches a list of refunds (Stripe charge.refunded) and
--    effects still waiting for a read from the gateway (stored 'failed', retried by reconcile).
--  * settle.apply_payment_method_event: a customer settle does not know is 'ignored' (not
--    settle's object); payment_method.updated updates the stored card.
--  * settle.pending_webhook_reads / settle.complete_webhook_read: reconcile's retry of events
--    whose effect needs a gateway read first (the SQL retry cannot call the gateway).

-- Section - the body's own identity
alter table public.webhook_events add column body_key text
  check (body_key is null or length(body_key) between 1 and 255);
create unique index webhook_events_body_key_idx on public.webhook_events (gateway, body_key)
  where body_key is not null;
comment on column public.webhook_events.body_key is 'What the body says happened (Razorpay: a digest of the event name and its entities'' ids and statuses), unique per gateway: a signed body replayed under a fresh unsigned event id is a duplicate.';

-- Section - ingestion
drop function settle.ingest_webhook(text, text, text, text, text, text, bigint, text, timestamptz,
  text, text, text, jsonb);

-- Stored once per event id and once per body key, applied in the same transaction; an effect
-- that raises is rolled back alone and the event stored 'failed' for reconcile to retry.
create function settle.ingest_webhook(
  p_gateway text, p_event_id text, p_event_type text, p_kind text,
  p_gateway_order_id text, p_gateway_payment_id text, p_amount bigint, p_currency text,
  p_occurred_at timestamptz, p_raw_body text,
  p_failure_code text default null, p_failure_reason text default null,
  p_effect jsonb default null, p_body_key text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_result jsonb;
begin
  -- 1399157588 is settle's advisory lock class ('SETL') for event ids, 1399157589 the class for
  -- body keys; the event id's lock is always taken first, so two deliveries never wait on each
  -- other in opposite orders (a hash collision only makes two events wait for each other).
  perform pg_advisory_xact_lock(1399157588, hashtext(p_gateway || '/' || p_event_id));
  if p_body_key is not null then
    perform pg_advisory_xact_lock(1399157589, hashtext(p_gateway || '/' || p_body_key));
  end if;
  if exists (select 1 from public.webhook_events where gateway = p_gateway and event_id = p_event_id)
     or (p_body_key is not null and exists (select 1 from public.webhook_events
         where gateway = p_gateway and body_key = p_body_key)) then
    return jsonb_build_object('duplicate', true, 'outcome', 'duplicate');
  end if;

  begin
    v_result := settle.apply_webhook_effect(p_gateway, p_kind, p_gateway_order_id,
      p_gateway_payment_id, p_amount, p_currency, p_failure_code, p_failure_reason, p_effect);
  exception when others then
    v_result := jsonb_build_object('outcome', 'failed', 'detail', left(sqlerrm, 1000));
  end;

  insert into public.webhook_events (gateway, event_id, event_type, gateway_order_id,
    gateway_payment_id, amount, currency, raw_body, occurred_at, outcome, order_id, detail,
    processed_at, kind, failure_code, failure_reason, effect, body_key)
  values (p_gateway, p_event_id, p_event_type, p_gateway_order_id, p_gateway_payment_id,
    p_amount, upper(p_currency), p_raw_body, p_occurred_at, v_result ->> 'outcome',
    (v_result ->> 'order_id')::uuid, v_result ->> 'detail', now(), p_kind,
    left(p_failure_code, 200), left(p_failure_reason, 1000), p_effect, p_body_key);
  return v_result || jsonb_build_object('duplicate', false);
end
$$;

-- Section - dispatch
-- Effect actions: refund (one refund), refunds (a charge's list), attached/updated/detached/
-- default/ignore (saved cards), fetch_card/fetch_refunds (a gateway read is still owed: the
-- event stays 'failed' with the read's error until reconcile completes it).
create or replace function settle.apply_webhook_effect(
  p_gateway text, p_kind text, p_gateway_order_id text, p_gateway_payment_id text,
  p_amount bigint, p_currency text, p_failure_code text, p_failure_reason text, p_effect jsonb
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  if p_effect is not null then
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

-- Section - payment method effects
-- {"action": "attached"|"updated"|"detached"|"default"|"ignore", "customer", "payment_method",
-- "brand", "last4", "exp_month", "exp_year", "detail"}. A customer settle does not know is not
-- settle's object: 'ignored', never an error (Stripe would retry it for days).
create or replace function settle.apply_payment_method_event(p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_account uuid;
  v_action text := p_effect ->> 'action';
  v_pm text := p_effect ->> 'payment_method';
begin
  if v_action = 'detached' then
    return jsonb_build_object('outcome',
      case when settle.remove_payment_method(v_pm) then 'applied' else 'no_effect' end);
  elsif v_action = 'ignore' then
    return jsonb_build_object('outcome', 'ignored', 'detail', p_effect ->> 'detail');
  end if;
  if v_pm is null then
    return jsonb_build_object('outcome', 'ignored', 'detail', 'event names no payment method');
  end if;
  select account_id into v_account from public.gateway_customers
  where gateway = 'stripe' and customer_id = p_effect ->> 'customer';
  if v_account is null then
    return jsonb_build_object('outcome', 'ignored', 'detail', 'a customer settle does not know');
  end if;
  if v_action = 'attached' then
    -- A card already saved for another account is recorded, never moved (and never an error
    -- that would lose the event).
    if exists (select 1 from public.payment_methods
               where gateway = 'stripe' and gateway_payment_method_id = v_pm and account_id <> v_account) then
      return jsonb_build_object('outcome', 'mismatch',
        'detail', format('payment method %s belongs to another account', v_pm));
    end if;
    perform settle.upsert_payment_method(v_account, v_pm, p_effect ->> 'brand', p_effect ->> 'last4',
      (p_effect ->> 'exp_month')::int, (p_effect ->> 'exp_year')::int);
    return jsonb_build_object('outcome', 'applied');
  elsif v_action = 'updated' then
    return settle.update_payment_method_card(v_account, p_effect);
  elsif v_action = 'default' then
    return jsonb_build_object('outcome',
      case when settle.set_default_payment_method(v_pm, v_account) then 'applied' else 'no_effect' end);
  end if;
  return jsonb_build_object('outcome', 'ignored');
end
$$;

-- payment_method.updated (new expiry, a reissued card's last4): updates the card stored for the
-- customer's account, only where something changed. A card not stored (never attached, or
-- detached since) is not created: the event is a change, not an attachment.
create function settle.update_payment_method_card(p_account_id uuid, p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_pm text := p_effect ->> 'payment_method';
  v_owner uuid;
  v_changed boolean;
begin
  select account_id into v_owner from public.payment_methods
  where gateway = 'stripe' and gateway_payment_method_id = v_pm;
  if v_owner is null then
    return jsonb_build_object('outcome', 'no_effect', 'detail', format('no stored card %s', v_pm));
  elsif v_owner <> p_account_id then
    return jsonb_build_object('outcome', 'mismatch',
      'detail', format('payment method %s belongs to another account', v_pm));
  end if;
  update public.payment_methods
  set brand = p_effect ->> 'brand', last4 = p_effect ->> 'last4',
      exp_month = (p_effect ->> 'exp_month')::int, exp_year = (p_effect ->> 'exp_year')::int
  where gateway = 'stripe' and gateway_payment_method_id = v_pm and account_id = p_account_id
    and (brand, last4, exp_month, exp_year) is distinct from (p_effect ->> 'brand',
      p_effect ->> 'last4', (p_effect ->> 'exp_month')::int, (p_effect ->> 'exp_year')::int)
  returning true into v_changed;
  return jsonb_build_object('outcome', case when v_changed then 'applied' else 'no_effect' end);
end
$$;

-- Section - events waiting for a gateway read
-- Stored events whose effect still needs a read from the gateway (a card's details, a charge's
-- refunds) that failed transiently: due on the same backoff as settle.retry_failed_webhooks.
-- Read without locks: the caller reads the gateway outside any transaction, then completes
-- each event with settle.complete_webhook_read, which locks and re-checks it.
create function settle.pending_webhook_reads(
  p_limit integer, p_retry_seconds integer, p_max_attempts integer default 10
) returns table (id bigint, gateway text, effect jsonb)
language sql stable security definer set search_path = ''
as $$
  select e.id, e.gateway, e.effect from public.webhook_events e
  where e.outcome = 'failed' and e.effect ->> 'action' in ('fetch_card', 'fetch_refunds')
    and e.attempts < p_max_attempts
    and coalesce(e.processed_at, e.received_at) <= now() - make_interval(
      secs => p_retry_seconds * power(2, least(greatest(e.attempts - 1, 0), 6)))
  order by e.received_at
  limit least(greatest(p_limit, 1), 1000)
$$;

-- Applies the effect the read produced (or the read's effect again, with its new error) to a
-- stored event still waiting for it; anything else is left alone ('skipped').
create function settle.complete_webhook_read(p_id bigint, p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_event public.webhook_events;
  v_result jsonb;
begin
  select * into v_event from public.webhook_events where id = p_id for update;
  if v_event.id is null or v_event.outcome <> 'failed'
     or v_event.effect ->> 'action' not in ('fetch_card', 'fetch_refunds') then
    return jsonb_build_object('outcome', 'skipped');
  end if;
  begin
    v_result := settle.apply_webhook_effect(v_event.gateway, v_event.kind,
      v_event.gateway_order_id, v_event.gateway_payment_id, v_event.amount, v_event.currency,
      v_event.failure_code, v_event.failure_reason, p_effect);
  exception when others then
    v_result := jsonb_build_object('outcome', 'failed', 'detail', left(sqlerrm, 1000));
  end;
  update public.webhook_events
  set effect = p_effect, outcome = v_result ->> 'outcome', detail = v_result ->> 'detail',
      order_id = coalesce((v_result ->> 'order_id')::uuid, order_id),
      attempts = attempts + 1, processed_at = now()
  where id = p_id;
  return v_result;
end
$$;

-- Section - privileges
revoke execute on function
  settle.ingest_webhook(text, text, text, text, text, text, bigint, text, timestamptz, text, text,
    text, jsonb, text),
  settle.apply_webhook_effect(text, text, text, text, bigint, text, text, text, jsonb),
  settle.apply_refund_list(text, jsonb),
  settle.apply_payment_method_event(jsonb),
  settle.update_payment_method_card(uuid, jsonb),
  settle.pending_webhook_reads(integer, integer, integer),
  settle.complete_webhook_read(bigint, jsonb)
  from public, anon, authenticated;
grant execute on function
  settle.ingest_webhook(text, text, text, text, text, text, bigint, text, timestamptz, text, text,
    text, jsonb, text),
  settle.apply_webhook_effect(text, text, text, text, bigint, text, text, text, jsonb),
  settle.apply_refund_list(text, jsonb),
  settle.apply_payment_method_event(jsonb),
  settle.update_payment_method_card(uuid, jsonb),
  settle.pending_webhook_reads(integer, integer, integer),
  settle.complete_webhook_read(bigint, jsonb)
  to service_role;
