-- Webhooks: every verified gateway event stored once (by its event id and by what its body says)
-- and its effect applied in the same transaction; an effect that raises is rolled back alone and
-- the event kept 'failed' for reconciliation to retry. The effects themselves live with what
-- they change (orders, payment methods, refunds, disputes); settle.apply_webhook_effect is the
-- one dispatch between them. Payout gateways' events have their own entry point
-- (settle.ingest_payout_webhook, payouts file) into the same table.

-- Section - events
-- (Check lists as '{a,b,...}'::text[] constants: cheaper per statement, as on orders.)
create table public.webhook_events (
  id bigint generated always as identity primary key,
  -- razorpayx and stripe_connect: the payout gateways' events (payouts file).
  gateway text not null check (gateway = any (
    '{razorpay,stripe,paypal,razorpayx,stripe_connect}'::text[])),
  event_id text not null check (length(event_id) between 1 and 255),
  event_type text not null check (length(event_type) between 1 and 255),
  gateway_order_id text,
  gateway_payment_id text,
  amount bigint,
  currency text,
  order_id uuid references public.orders (id),
  raw_body text not null,
  outcome text not null default 'received' check (outcome = any (
    '{received,applied,no_effect,ignored,unknown_order,mismatch,failed}'::text[])),
  detail text,
  occurred_at timestamptz,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  -- The normalized event, kept so a failed one can be applied again.
  kind text,
  failure_code text,
  failure_reason text,
  effect jsonb,
  attempts integer not null default 1,
  body_key text check (body_key is null or length(body_key) between 1 and 255),
  unique (gateway, event_id)
);
alter table public.webhook_events enable row level security;
comment on table public.webhook_events is 'Every verified webhook, raw body kept for audit and replay. Never readable by users (no policies).';
comment on column public.webhook_events.effect is 'The normalized non-payment effect (payment methods, refunds), kept so a failed event can be retried.';
comment on column public.webhook_events.body_key is 'What the body says happened (Razorpay: a digest of the event name and its entities'' ids and statuses), unique per gateway: a signed body replayed under a fresh unsigned event id is a duplicate.';
create index webhook_events_order_id_idx on public.webhook_events (order_id);
create index webhook_events_failed_idx on public.webhook_events (received_at) where outcome = 'failed';
-- A second identity taken from what the body says, for gateways whose event id is not signed
-- (Razorpay's x-razorpay-event-id): a signed body replayed under fresh event ids is stored once.
create unique index webhook_events_body_key_idx on public.webhook_events (gateway, body_key)
  where body_key is not null;

-- Stripe sends pretty-printed events of 2-4 KB, past the 2 KB TOAST threshold, so every stored
-- raw body is compressed. lz4 does it in about a third of pglz's CPU time (12 against 28-40 µs
-- for a 2.3 KB payment_intent.succeeded, measured on 20,000 rows; bench/README.md) for about the
-- same size. Servers built without lz4 keep pglz.
do $$
begin
  alter table public.webhook_events alter column raw_body set compression lz4;
exception when feature_not_supported then
  raise notice 'lz4 is not available on this server: webhook_events.raw_body stays pglz';
end
$$;

-- Section - ingestion
-- A verified event as the webhook service hands it over: one typed record, not 14 positional
-- parameters.
create type settle.incoming_event as (
  gateway text,
  event_id text,
  event_type text,
  kind text,
  gateway_order_id text,
  gateway_payment_id text,
  amount bigint,
  currency text,
  occurred_at timestamptz,
  raw_body text,
  failure_code text,
  failure_reason text,
  effect jsonb,
  body_key text
);
comment on type settle.incoming_event is
  'A verified gateway event as the webhook service hands it to settle.ingest_webhook: the '
  'normalized fields, the raw body as received, and any non-payment effect.';

-- Stores a verified event once per (gateway, event id) and once per body key, and applies it in
-- the same transaction; a duplicate returns {"duplicate": true} and stores nothing. Concurrent
-- deliveries of one event queue on transaction-scoped advisory locks: 1399157588 ('SETL') keyed
-- by the event id, 1399157589 by the body key, the event id's always first (so two deliveries
-- never wait on each other in opposite orders; a hash collision only makes two events wait for
-- each other); the next one sees the first's committed row and answers duplicate. Taking the
-- lock first lets the row be written once, outcome included. The unique keys stay as the last
-- line of defence: if one ever fired, the whole transaction (effect included) would roll back.
--
-- The common case, a capture of a pending top-up or product order with the order's own terms,
-- pays the order and stores the event in one statement, without a subtransaction: by design
-- nothing on that path raises (the conditions that could are in the UPDATE's WHERE); if it does
-- anyway, the call fails and the webhook service repeats it with p_fast false. Every other event
-- runs its effect (settle.apply_webhook_effect) in a subtransaction: an effect that raises is
-- rolled back alone and the event is stored 'failed' with the error, so the gateway gets its 200
-- and reconciliation retries the stored event. Over 70 lines: the fast path and the general
-- path share the duplicate check and must stay in one transaction.
create function settle.ingest_webhook(p_event settle.incoming_event, p_fast boolean default true)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  e settle.incoming_event := p_event;
  v_order_id uuid;
  v_result jsonb;
begin
  perform pg_advisory_xact_lock(1399157588, hashtext(e.gateway || '/' || e.event_id));
  if e.body_key is not null then
    perform pg_advisory_xact_lock(1399157589, hashtext(e.gateway || '/' || e.body_key));
  end if;
  if exists (select 1 from public.webhook_events where gateway = e.gateway and event_id = e.event_id)
     or (e.body_key is not null and exists (select 1 from public.webhook_events
         where gateway = e.gateway and body_key = e.body_key)) then
    return jsonb_build_object('duplicate', true, 'outcome', 'duplicate');
  end if;

  -- The common case, with no subtransaction: a capture of a pending top-up or product order for
  -- its own amount and currency, whose payment id pays no other order and which has no held
  -- refunds. Its effects (order_effects: the posting, the stats delta; the outbox) do not raise
  -- by design; if they do anyway, the whole call fails and the caller repeats it with p_fast false.
  -- One statement pays the order and stores the event; the order's AFTER triggers run at its
  -- end, so the wallet's row lock (taken by the posting) is held only from there to the commit.
  -- Anything else, or an order this misses, takes the general path below.
  if p_fast and e.effect is null and e.kind = 'captured' and e.gateway_order_id is not null then
    with paid as (
      update public.orders o
      set status = 'paid', paid_at = now(),
          gateway_payment_id = coalesce(e.gateway_payment_id, o.gateway_payment_id),
          failure_code = null, failure_reason = null
      where o.gateway = e.gateway and o.gateway_order_id = e.gateway_order_id
        and o.status in ('created', 'authorized') and o.purpose in ('wallet_topup', 'product')
        and o.amount = e.amount and o.currency = upper(e.currency)
        and (e.gateway_payment_id is null or e.gateway_payment_id = o.gateway_payment_id
             or not exists (select 1 from public.orders x
                            where x.gateway = e.gateway and x.gateway_payment_id = e.gateway_payment_id))
        and not exists (select 1 from public.gateway_refund_holds h
                        where h.order_id = o.id and h.resolved_at is null)
      returning o.id
    )
    insert into public.webhook_events (gateway, event_id, event_type, gateway_order_id,
      gateway_payment_id, amount, currency, raw_body, occurred_at, outcome, order_id,
      processed_at, kind, failure_code, failure_reason, body_key)
    select e.gateway, e.event_id, e.event_type, e.gateway_order_id, e.gateway_payment_id,
      e.amount, upper(e.currency), e.raw_body, e.occurred_at, 'applied', paid.id, now(), e.kind,
      left(e.failure_code, 200), left(e.failure_reason, 1000), e.body_key
    from paid
    returning order_id into v_order_id;
    if v_order_id is not null then
      return jsonb_build_object('outcome', 'applied', 'order_id', v_order_id, 'status', 'paid',
        'duplicate', false);
    end if;
  end if;

  begin
    v_result := settle.apply_webhook_effect(e.gateway, e.kind, e.gateway_order_id,
      e.gateway_payment_id, e.amount, e.currency, e.failure_code, e.failure_reason, e.effect);
  exception when others then
    v_result := jsonb_build_object('outcome', 'failed', 'detail', left(sqlerrm, 1000));
  end;

  insert into public.webhook_events (gateway, event_id, event_type, gateway_order_id,
    gateway_payment_id, amount, currency, raw_body, occurred_at, outcome, order_id, detail,
    processed_at, kind, failure_code, failure_reason, effect, body_key)
  values (e.gateway, e.event_id, e.event_type, e.gateway_order_id, e.gateway_payment_id,
    e.amount, upper(e.currency), e.raw_body, e.occurred_at, v_result ->> 'outcome',
    (v_result ->> 'order_id')::uuid, v_result ->> 'detail', now(), e.kind,
    left(e.failure_code, 200), left(e.failure_reason, 1000), e.effect, e.body_key);
  return v_result || jsonb_build_object('duplicate', false);
end
$$;

-- Section - dispatch
-- The dispatch from a normalized event to the SQL that applies it; shared by ingestion and by
-- reconciliation's retry of failed events. Effect actions: refund (one refund), refunds (a
-- charge's list), dispute (settle.apply_dispute_event), attached/updated/detached/default/ignore
-- (saved cards), fetch_card/fetch_refunds (a gateway read is still owed: the event stays
-- 'failed' with the read's error until reconcile completes it); no effect: a payment
-- (settle.apply_payment).
--
-- Refund events for one gateway payment are applied one at a time. A refund effect takes row
-- locks in an order that depends on what it finds: a refund settle already knows is locked
-- before its order, a refund made at the gateway locks the order first and then inserts the
-- refund row (whose unique key makes a concurrent insert wait for it). Two different events for
-- the same payment (Stripe's charge.refunded listing a refund and that refund's refund.updated;
-- Razorpay's refund.created and refund.processed) could therefore deadlock. A transaction-scoped
-- advisory lock per gateway payment, taken before any row lock, serializes them; events for
-- other payments are not affected. The lock class is 1399157590, next to ingest_webhook's
-- event-id (1399157588) and body-key (1399157589) classes; the key is the payment's hash (a
-- collision only makes two payments' refund events wait for each other). Dispute events need no
-- advisory lock of their own: they lock the order row first, as payments and refunds do.
create function settle.apply_webhook_effect(
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
      when 'dispute' then
        return settle.apply_dispute_event(p_gateway, p_effect);
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

-- Section - events waiting for a gateway read
-- Stored events whose effect still needs a read from the gateway (a card's details, a charge's
-- refunds) that failed transiently: due on the same backoff as settle.retry_failed_webhooks
-- (reconcile file), which leaves them to this path. Read without locks: the caller reads the
-- gateway outside any transaction, then completes each event with settle.complete_webhook_read,
-- which locks and re-checks it.
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
-- Users never see webhook events: RLS on, no policies, no grants.
revoke execute on all functions in schema settle from public;
revoke all on public.webhook_events from anon, authenticated;
grant execute on function
  settle.ingest_webhook(settle.incoming_event, boolean),
  settle.apply_webhook_effect(text, text, text, text, bigint, text, text, text, jsonb),
  settle.pending_webhook_reads(integer, integer, integer),
  settle.complete_webhook_read(bigint, jsonb)
  to service_role;
