-- Reconciliation: orders stuck in created/authorized converge on what the gateway says (through
-- settle.apply_payment, like verify and webhooks), orders nobody paid expire, and stored webhook
-- events whose effect failed are applied again. Its bookkeeping columns are on orders
-- (reconcile_after, reconcile_attempts, reconcile_claim; orders file).
--
-- A reconciler claims a bounded batch in one short transaction (FOR UPDATE SKIP LOCKED, then a
-- lease written on each row), asks the gateway outside any transaction, converges, and releases
-- the batch with a backoff. Concurrent reconcilers never hold the same order at the same time; a
-- reconciler that dies mid-batch leaves its orders claimable again once the lease runs out.
-- (Payouts, escrow refunds and events owed a gateway read have claims of their own, in their
-- files.)

-- Section - stuck orders
-- The claim's scan: open orders, and failed/expired ones still re-checked (see below).
create index orders_reconcile_idx on public.orders (created_at)
  where status in ('created', 'authorized', 'failed', 'expired');

-- Claims up to p_limit orders older than p_older_than_seconds whose lease or backoff has
-- passed, most overdue first: every order still created/authorized, and failed/expired orders
-- younger than p_recheck_seconds. Those two can still be paid (failed -> paid and expired ->
-- paid are legal: another attempt, a late capture), and if that capture's webhook is lost, only
-- asking the gateway lands the money. Orders without a gateway order (its creation failed and
-- nobody retried) are claimed only once they are due to expire: until then the customer may
-- still retry create-order. Rows locked elsewhere (a webhook applying, create-order talking to
-- the gateway, another reconciler claiming) are skipped, never waited for.
create function settle.claim_stuck_orders(
  p_claim uuid, p_gateways text[], p_limit integer, p_older_than_seconds integer,
  p_expiry_seconds integer, p_lease_seconds integer, p_recheck_seconds integer
) returns table (
  order_id uuid, gateway text, gateway_order_id text, status text, expiry_due boolean
)
language plpgsql security definer set search_path = ''
as $$
begin
  if p_claim is null or p_gateways is null then
    perform settle.fail(400, 'invalid_request', 'a claim id and the configured gateways are required');
  end if;
  if p_limit is null or p_limit not between 1 and 1000 then
    perform settle.fail(400, 'invalid_request', 'limit must be between 1 and 1000');
  end if;
  if p_older_than_seconds is null or p_older_than_seconds < 0
     or p_expiry_seconds is null or p_expiry_seconds < 0
     or p_recheck_seconds is null or p_recheck_seconds < 0 then
    perform settle.fail(400, 'invalid_request', 'ages must be zero or more seconds');
  end if;
  if p_lease_seconds is null or p_lease_seconds < 1 then
    perform settle.fail(400, 'invalid_request', 'the lease must be at least one second');
  end if;

  return query
  with due as (
    select o.id from public.orders o
    where o.status in ('created', 'authorized', 'failed', 'expired')
      and o.created_at <= now() - make_interval(secs => p_older_than_seconds)
      and (o.reconcile_after is null or o.reconcile_after <= now())
      and (
        (o.gateway_order_id is not null and o.gateway = any (p_gateways)
          and (o.status in ('created', 'authorized')
               or o.created_at > now() - make_interval(secs => p_recheck_seconds)))
        or (o.gateway_order_id is null and o.status = 'created'
            and o.created_at <= now() - make_interval(secs => p_expiry_seconds))
      )
        -- Most overdue first: never-claimed orders by age, re-checks by when they fell due, so
    -- orders that keep coming back cannot starve the rest of a large backlog.
    order by coalesce(o.reconcile_after, o.created_at)
    limit p_limit
    for update of o skip locked
  )
  update public.orders o
  set reconcile_after = now() + make_interval(secs => p_lease_seconds),
      reconcile_attempts = o.reconcile_attempts + 1,
      reconcile_claim = p_claim
  from due
  where o.id = due.id
  returning o.id, o.gateway, o.gateway_order_id, o.status,
    o.created_at <= now() - make_interval(secs => p_expiry_seconds);
end
$$;

-- created -> expired for an order nobody paid: only while it is still created (authorized money
-- is never expired: ask again later) and older than the expiry age. The row lock orders it with
-- apply_payment, and a payment captured after all still lands (expired -> paid is legal).
create function settle.expire_order(p_order_id uuid, p_expiry_seconds integer) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
begin
  if p_expiry_seconds is null or p_expiry_seconds < 0 then
    perform settle.fail(400, 'invalid_request', 'the expiry age must be zero or more seconds');
  end if;
  select * into v_order from public.orders where id = p_order_id for update;
  if not found then
    return jsonb_build_object('outcome', 'unknown_order');
  end if;
  if v_order.status <> 'created' or v_order.created_at > now() - make_interval(secs => p_expiry_seconds) then
    return jsonb_build_object('outcome', 'no_effect', 'order_id', v_order.id, 'status', v_order.status);
  end if;
  update public.orders set status = 'expired' where id = v_order.id returning * into v_order;
  return jsonb_build_object('outcome', 'applied', 'order_id', v_order.id, 'status', v_order.status);
end
$$;

-- Ends a batch's lease: orders still open (or re-checked) wait p_retry_seconds * 2^(claims - 1)
-- (at most 64 times the base) before the next check. Only rows this claim still holds are
-- touched.
create function settle.release_stuck_orders(p_claim uuid, p_order_ids uuid[], p_retry_seconds integer)
returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  v_count integer;
begin
  if p_retry_seconds is null or p_retry_seconds < 0 then
    perform settle.fail(400, 'invalid_request', 'the retry delay must be zero or more seconds');
  end if;
  update public.orders o
  set reconcile_after = now() + make_interval(
        secs => p_retry_seconds * power(2, least(greatest(o.reconcile_attempts - 1, 0), 6))),
      reconcile_claim = null
  where o.id = any (p_order_ids) and o.reconcile_claim = p_claim;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- Section - failed webhook events
-- Applies stored events whose effect raised (outcome 'failed') again through the dispatch
-- ingestion uses (settle.apply_webhook_effect), oldest first, at most p_limit, each no sooner
-- than p_retry_seconds * 2^(attempts - 1) (at most 64 times the base) after its last try, and
-- giving up (the event stays 'failed' for an operator) after p_max_attempts. Each event runs in
-- its own subtransaction: one that fails again is rolled back alone and recorded. Rows another
-- retrier holds are skipped. Events whose effect still owes a gateway read (fetch_card,
-- fetch_refunds) are not taken: the SQL retry cannot read the gateway, so re-applying them only
-- burns their attempts and pushes back their read (reconcile's retryOwedReads goes through
-- settle.pending_webhook_reads / complete_webhook_read, webhooks file). Returns
-- {"retried","resolved","failed"}.
create function settle.retry_failed_webhooks(
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

-- Section - privileges
-- Reconciliation is the service role's job alone.
revoke execute on all functions in schema settle from public;
grant execute on function
  settle.claim_stuck_orders(uuid, text[], integer, integer, integer, integer, integer),
  settle.expire_order(uuid, integer),
  settle.release_stuck_orders(uuid, uuid[], integer),
  settle.retry_failed_webhooks(integer, integer, integer)
  to service_role;
