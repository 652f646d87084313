-- One SQL function per webhook event, and no trigger chain on orders (issue 16; issue 17 finding 2):
--  * settle.ingest_webhook takes one typed record, settle.incoming_event, instead of 14
--    positional parameters (the old signature is dropped);
--  * the common case, a capture of a pending top-up or product order with the order's own terms,
--    pays the order and stores the event in one statement, without a subtransaction: by design
--    nothing on that path raises (the conditions that could are in the UPDATE's WHERE); if it
--    does anyway, the call fails and the webhook service repeats it with p_fast false. Every
--    other event runs its effect in a subtransaction as before, and an effect that raises is
--    still stored as 'failed';
--  * the AFTER UPDATE triggers of public.orders that a payment fired one by one (the ledger
--    posting, the payment_stats delta, subscription effects, held gateway refunds) are one
--    trigger, settle.order_effects(), so every writer of an order's status still gets every
--    effect, from one plpgsql call; the outbox trigger (settle.outbox_order_event) stays its own;
--  * the payment-identity guard is part of settle.guard_order_update (one BEFORE UPDATE trigger);
--  * webhook_events.raw_body is compressed with lz4 where the server has it (pglz otherwise).

-- Section - the incoming event
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

-- Section - raw body storage
-- A 2.2 KB Stripe body is over the TOAST threshold, so it is compressed inline; lz4 costs less
-- CPU than pglz for about the same size (bench/README.md). Servers built without lz4 keep pglz.
do $$
begin
  alter table public.webhook_events alter column raw_body set compression lz4;
exception when feature_not_supported then
  raise notice 'lz4 is not available on this server: webhook_events.raw_body stays pglz';
end
$$;

-- Section - guards before an order update
-- guard_order_update as in 20261121000400_orders.sql, plus the payment-identity check that was
-- its own trigger (settle.guard_order_payment_identity, 20261204000600_gateway_boundary.sql).
-- security definer: the identity check reads every account's orders.
create or replace function settle.guard_order_update() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  v_other uuid;
begin
  if new.account_id <> old.account_id or new.created_by <> old.created_by
     or new.gateway <> old.gateway or new.purpose <> old.purpose
     or new.plan_id is distinct from old.plan_id or new.product_id is distinct from old.product_id
     or new.amount <> old.amount or new.currency <> old.currency
     or new.idempotency_key is distinct from old.idempotency_key
     or new.request_hash is distinct from old.request_hash
     or new.created_at <> old.created_at then
    perform settle.fail(400, 'invalid_request', 'an order''s terms cannot change after it is created');
  end if;
  if old.gateway_order_id is not null and new.gateway_order_id is distinct from old.gateway_order_id then
    perform settle.fail(409, 'conflict', 'an order''s gateway order id is set once');
  end if;
  if new.gateway_payment_id is distinct from old.gateway_payment_id then
    -- The payment that was captured is the one refunds go to: fixed once the order is paid.
    if old.status in ('paid', 'partially_refunded', 'refunded') then
      perform settle.fail(409, 'conflict', 'a paid order''s gateway payment id cannot change');
    end if;
    if new.gateway_payment_id is not null then
      select id into v_other from public.orders
      where gateway = new.gateway and gateway_payment_id = new.gateway_payment_id and id <> new.id;
      if v_other is not null then
        perform settle.fail(409, 'payment_mismatch', format(
          'payment %s already pays order %s; it cannot pay order %s', new.gateway_payment_id,
          v_other, new.id));
      end if;
    end if;
  end if;
  if new.status <> old.status and not exists (
    select 1 from settle.order_transitions t
    where t.from_status = old.status and t.to_status = new.status
  ) then
    perform settle.fail(409, 'invalid_transition',
      format('order %s cannot move from %s to %s', old.id, old.status, new.status));
  end if;
  new.updated_at := now();
  return new;
end
$$;

drop trigger orders_guard_payment_identity on public.orders;
drop function settle.guard_order_payment_identity();

-- Section - effects after an order update
-- The ledger posting of a paid order, as the trigger function of 20261204000100_engagements.sql
-- did (escrow funds its engagement; a wallet purchase debits the wallet; a gateway payment
-- credits the wallet or revenue against the gateway's clearing account); now called with the
-- order by settle.order_effects.
drop trigger orders_post_payment on public.orders;
drop function settle.post_order_payment();
create function settle.post_order_payment(p_order public.orders) returns void
language plpgsql security definer set search_path = '' as $$
declare
  v_clearing text := 'gateway:' || p_order.gateway;
begin
  if p_order.purpose = 'escrow' then
    perform settle.fund_engagement(p_order);
    return;
  end if;
  if p_order.gateway = 'wallet' then
    if p_order.purpose = 'wallet_topup' then
      perform settle.fail(400, 'invalid_request', 'a wallet cannot top itself up');
    end if;
    perform settle.post_transaction('purchase', 'order_paid:' || p_order.id, p_order.id,
      p_order.purpose || ' purchase from the wallet',
      jsonb_build_array(
        jsonb_build_object('wallet_id', settle.ensure_wallet(p_order.account_id, p_order.currency),
          'currency', p_order.currency, 'amount', -p_order.amount),
        jsonb_build_object('system_account', 'revenue:' || p_order.purpose,
          'currency', p_order.currency, 'amount', p_order.amount)));
  elsif p_order.purpose = 'wallet_topup' then
    perform settle.post_transaction('topup', 'order_paid:' || p_order.id, p_order.id,
      'wallet top-up via ' || p_order.gateway,
      jsonb_build_array(
        jsonb_build_object('wallet_id', settle.ensure_wallet(p_order.account_id, p_order.currency),
          'currency', p_order.currency, 'amount', p_order.amount),
        jsonb_build_object('system_account', v_clearing, 'currency', p_order.currency,
          'amount', -p_order.amount)));
  else
    perform settle.post_transaction('purchase', 'order_paid:' || p_order.id, p_order.id,
      p_order.purpose || ' purchase via ' || p_order.gateway,
      jsonb_build_array(
        jsonb_build_object('system_account', 'revenue:' || p_order.purpose,
          'currency', p_order.currency, 'amount', p_order.amount),
        jsonb_build_object('system_account', v_clearing, 'currency', p_order.currency,
          'amount', -p_order.amount)));
  end if;
end
$$;

-- Every effect of a status or refund change, in the order the separate triggers fired in
-- (alphabetical: the payment_stats delta, the posting, subscriptions, held refunds last, after
-- the payment they refund is posted). settle.payment_stats_delta still serves insert and delete.
create function settle.order_effects() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  v_new_paid boolean := new.status in ('paid', 'partially_refunded', 'refunded');
  v_old_paid boolean := old.status in ('paid', 'partially_refunded', 'refunded');
begin
  insert into settle.payment_stats_deltas (account_id, day, gateway, currency, orders_created,
    orders_paid, orders_failed, orders_expired, gross, refunded)
  values (new.account_id, (new.created_at at time zone 'UTC')::date, new.gateway, new.currency, 0,
    v_new_paid::int - v_old_paid::int,
    (new.status = 'failed')::int - (old.status = 'failed')::int,
    (new.status = 'expired')::int - (old.status = 'expired')::int,
    case when v_new_paid then new.amount else 0 end - case when v_old_paid then old.amount else 0 end,
    new.amount_refunded - old.amount_refunded);
  if new.status = old.status then
    return null;
  end if;
  if new.status = 'paid' and old.status <> 'paid' then
    perform settle.post_order_payment(new);
  end if;
  if new.purpose = 'plan' then
    if new.status = 'paid' and old.status in ('created', 'authorized', 'failed', 'expired') then
      perform settle.grant_subscription_period(new.id);
    elsif new.status = 'refunded' then
      perform settle.revoke_subscription_period(new.id);
    elsif old.status = 'refunded' and new.status in ('paid', 'partially_refunded') then
      perform settle.reinstate_subscription_period(new.id);
    end if;
  end if;
  -- Refunds the gateway reported before the payment (20261203001100_held_refunds_on_payment.sql).
  if new.status = 'paid' and old.status in ('created', 'authorized', 'failed', 'expired')
     and exists (select 1 from public.gateway_refund_holds h
                 where h.order_id = new.id and h.resolved_at is null) then
    perform settle.apply_held_gateway_refunds(new.id);
  end if;
  return null;
end
$$;

drop trigger orders_payment_stats_update on public.orders;
drop trigger orders_subscription_effects on public.orders;
drop trigger orders_zz_held_refunds on public.orders;
drop function settle.orders_subscription_effects();
drop function settle.apply_held_refunds_on_payment();
create trigger orders_payment_effects after update of status, amount_refunded on public.orders
  for each row
  when (new.status is distinct from old.status or new.amount_refunded is distinct from old.amount_refunded)
  execute function settle.order_effects();

-- Section - ingest
drop function settle.ingest_webhook(text, text, text, text, text, text, bigint, text, timestamptz,
  text, text, text, jsonb, text);

-- Stores a verified event once and applies it in the same transaction. A duplicate (same event
-- id, or same body key) stores nothing. The advisory locks are those of
-- 20261203000300_webhook_identity.sql: 1399157588 ('SETL') for event ids, 1399157589 for body
-- keys, the event id's always first. p_fast false skips the fast path: the webhook service calls
-- again so when the fast path raised (a lock timeout, a bug: it has no subtransaction), and the
-- general path stores the event 'failed'.
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

-- Section - privileges
revoke execute on function settle.ingest_webhook(settle.incoming_event, boolean),
  settle.post_order_payment(public.orders), settle.order_effects()
  from public, anon, authenticated;
grant execute on function settle.ingest_webhook(settle.incoming_event, boolean) to service_role;
