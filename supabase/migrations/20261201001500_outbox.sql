-- Transactional outbox: business events written by triggers in the transaction that caused them,
-- a delivery per (event, subscriber), and the SQL the outbox-dispatch worker and operators call.
--
-- An event exists iff the change that caused it committed: the triggers below (and those of the
-- wallet, escrow, dispute and payout files) insert it in the same transaction, whichever path
-- made the change (verify, webhooks, reconcile, plain SQL). Delivery is at least once; the event
-- id is stable across retries so receivers can dedup.

-- Section - subscribers
-- Filters: '*' (everything), 'order.*' (a family) or an exact type such as 'order.paid'.
create function settle.outbox_valid_filters(p_types text[]) returns boolean
language sql immutable set search_path = ''
as $$
  select coalesce(cardinality(p_types), 0) between 1 and 100
    and not exists (
      select 1 from unnest(p_types) t
      where t is null or t !~ '^(\*|[a-z][a-z_]*\.(\*|[a-z][a-z_]*))$'
    )
$$;

create function settle.outbox_filter_matches(p_types text[], p_type text) returns boolean
language sql immutable set search_path = ''
as $$
  select exists (
    select 1 from unnest(p_types) t
    where t = '*' or t = p_type or (t like '%.*' and starts_with(p_type, left(t, -1)))
  )
$$;

create table public.outbox_subscribers (
  id uuid primary key default gen_random_uuid(),
  name text not null unique check (length(name) between 1 and 200),
  url text not null check (url ~ '^https?://[^[:space:]]+$' and length(url) <= 2000),
  -- 244 random bits (two v4 uuids) unless the operator brings their own.
  secret text not null
    default 'whsec_settle_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '')
    check (length(secret) between 32 and 500),
  event_types text[] not null default array['*'] check (settle.outbox_valid_filters(event_types)),
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table public.outbox_subscribers enable row level security;
create trigger outbox_subscribers_touch before update on public.outbox_subscribers
  for each row execute function settle.touch_updated_at();
comment on table public.outbox_subscribers is 'Where business events are POSTed, signed with secret (HMAC-SHA256). Operators manage rows in SQL; never readable by users (no policies).';
comment on column public.outbox_subscribers.event_types is 'Types this subscriber receives: ''*'', ''order.*'' or exact types like ''order.paid''.';
comment on column public.outbox_subscribers.active is 'Inactive subscribers get no deliveries for new events; their pending deliveries wait until reactivated.';

-- Section - events
create table public.outbox_events (
  id uuid primary key default gen_random_uuid(),
  type text not null check (type ~ '^[a-z][a-z_]*\.[a-z][a-z_]*$'),
  -- No foreign key: an event is a record of the past and must not hold its account hostage.
  account_id uuid not null,
  -- Subjects from other files: wallet_charge (wallet_spending), engagement (escrow), dispute,
  -- payout; each file's trigger or function emits its own events through settle.outbox_emit.
  subject_type text not null check (subject_type in (
    'order', 'refund', 'subscription', 'wallet_charge', 'engagement', 'dispute', 'payout'
  )),
  subject_id uuid not null,
  payload jsonb not null check (jsonb_typeof(payload) = 'object'),
  -- The clock, not the transaction's start: events of one transaction keep their order.
  created_at timestamptz not null default clock_timestamp()
);
alter table public.outbox_events enable row level security;
create index outbox_events_subject_idx on public.outbox_events (subject_type, subject_id, created_at);
create index outbox_events_created_at_idx on public.outbox_events (created_at);
comment on table public.outbox_events is 'Business events, written by triggers in the transaction of the change they describe. id is the stable event id receivers dedup on. Never readable by users (no policies).';
comment on column public.outbox_events.payload is 'The public fields of the row (settle.outbox_*_payload): never raw gateway bodies, secrets or card data.';

-- Events are facts: they may be pruned (deliveries go with them) but never rewritten.
create function settle.refuse_outbox_event_update() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform settle.fail(409, 'conflict', 'outbox events cannot be changed');
  return null;
end
$$;
create trigger outbox_events_refuse_update before update on public.outbox_events
  for each row execute function settle.refuse_outbox_event_update();

-- Section - deliveries
create table public.outbox_deliveries (
  id bigint generated always as identity primary key,
  event_id uuid not null references public.outbox_events (id) on delete cascade,
  subscriber_id uuid not null references public.outbox_subscribers (id) on delete cascade,
  status text not null default 'pending' check (status in ('pending', 'delivered', 'dead')),
  attempts integer not null default 0 check (attempts >= 0),
  -- While claimed, the end of the worker's lease: a crashed worker's claim comes back then.
  next_attempt_at timestamptz not null default now(),
  claim_token uuid,
  claimed_at timestamptz,
  last_attempt_at timestamptz,
  last_http_status integer,
  last_error text,
  delivered_at timestamptz,
  replays integer not null default 0,
  created_at timestamptz not null default now(),
  unique (event_id, subscriber_id),
  check ((status = 'delivered') = (delivered_at is not null))
);
alter table public.outbox_deliveries enable row level security;
create index outbox_deliveries_due_idx on public.outbox_deliveries (next_attempt_at, id)
  where status = 'pending';
create index outbox_deliveries_subscriber_idx on public.outbox_deliveries (subscriber_id, status);
comment on table public.outbox_deliveries is 'One row per (event, subscriber): pending until a 2xx (delivered) or until the attempts run out (dead, replayable). Never readable by users (no policies).';
comment on column public.outbox_deliveries.attempts is 'Attempts started (counted when claimed, so a delivery that crashes its worker still runs out).';

-- Each new event gets a delivery for every active subscriber whose filter matches, in the same
-- transaction. Subscribers added later receive only later events.
create function settle.outbox_fan_out() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.outbox_deliveries (event_id, subscriber_id)
  select new.id, s.id from public.outbox_subscribers s
  where s.active and settle.outbox_filter_matches(s.event_types, new.type);
  return null;
end
$$;
create trigger outbox_events_fan_out after insert on public.outbox_events
  for each row execute function settle.outbox_fan_out();

-- Section - writing events
create function settle.outbox_emit(
  p_type text, p_account_id uuid, p_subject_type text, p_subject_id uuid, p_payload jsonb
) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
begin
  insert into public.outbox_events (type, account_id, subject_type, subject_id, payload)
  values (p_type, p_account_id, p_subject_type, p_subject_id, p_payload)
  returning id into v_id;
  return v_id;
end
$$;

-- An order's event payload; outbox_order_event builds the same inline (pgTAP compares them).
create function settle.outbox_order_payload(p_order public.orders, p_previous_status text)
returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'id', p_order.id, 'account_id', p_order.account_id, 'status', p_order.status,
    'previous_status', p_previous_status, 'purpose', p_order.purpose,
    'plan_id', p_order.plan_id, 'product_id', p_order.product_id,
    'amount', p_order.amount, 'currency', p_order.currency,
    'amount_refunded', p_order.amount_refunded, 'gateway', p_order.gateway,
    'gateway_order_id', p_order.gateway_order_id, 'gateway_payment_id', p_order.gateway_payment_id,
    'failure_code', p_order.failure_code, 'failure_reason', p_order.failure_reason,
    'created_at', p_order.created_at, 'paid_at', p_order.paid_at)
$$;

-- order.authorized | order.paid | order.failed | order.expired on those status moves;
-- order.partially_refunded | order.refunded whenever more is refunded; order.refund_reversed
-- when a failed refund gives money back (amount_refunded goes down). The payload is built inline,
-- the same keys and values as settle.outbox_order_payload (a SQL function with its own
-- search_path is not inlined and was planned again in every transaction).
create function settle.outbox_order_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_type text;
begin
  if new.amount_refunded < old.amount_refunded then
    v_type := 'order.refund_reversed';
  elsif new.amount_refunded > old.amount_refunded then
    v_type := 'order.' || new.status;
  elsif new.status = 'paid' and old.status in ('created', 'authorized', 'failed', 'expired') then
    v_type := 'order.paid';
  elsif new.status in ('authorized', 'failed', 'expired') then
    v_type := 'order.' || new.status;
  else
    return null;
  end if;
  insert into public.outbox_events (type, account_id, subject_type, subject_id, payload)
  values (v_type, new.account_id, 'order', new.id, jsonb_build_object(
    'id', new.id, 'account_id', new.account_id, 'status', new.status,
    'previous_status', old.status, 'purpose', new.purpose,
    'plan_id', new.plan_id, 'product_id', new.product_id,
    'amount', new.amount, 'currency', new.currency,
    'amount_refunded', new.amount_refunded, 'gateway', new.gateway,
    'gateway_order_id', new.gateway_order_id, 'gateway_payment_id', new.gateway_payment_id,
    'failure_code', new.failure_code, 'failure_reason', new.failure_reason,
    'created_at', new.created_at, 'paid_at', new.paid_at));
  return null;
end
$$;
create trigger orders_outbox after update of status, amount_refunded on public.orders
  for each row when (new.status is distinct from old.status
                     or new.amount_refunded is distinct from old.amount_refunded)
  execute function settle.outbox_order_event();

create function settle.outbox_refund_payload(p_refund public.refunds, p_previous_status text)
returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'id', p_refund.id, 'order_id', p_refund.order_id, 'account_id', p_refund.account_id,
    'status', p_refund.status, 'previous_status', p_previous_status,
    'amount', p_refund.amount, 'currency', p_refund.currency, 'gateway', p_refund.gateway,
    'gateway_refund_id', p_refund.gateway_refund_id, 'source', p_refund.source,
    'reason', p_refund.reason, 'failure_reason', p_refund.failure_reason,
    'created_at', p_refund.created_at, 'processed_at', p_refund.processed_at,
    'failed_at', p_refund.failed_at)
$$;

-- refund.created on insert; refund.processed / refund.failed when the status moves there.
create function settle.outbox_refund_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform settle.outbox_emit('refund.created', new.account_id, 'refund', new.id,
      settle.outbox_refund_payload(new, null));
  elsif new.status in ('processed', 'failed') and new.status is distinct from old.status then
    perform settle.outbox_emit('refund.' || new.status, new.account_id, 'refund', new.id,
      settle.outbox_refund_payload(new, old.status));
  end if;
  return null;
end
$$;
create trigger refunds_outbox_insert after insert on public.refunds
  for each row execute function settle.outbox_refund_event();
create trigger refunds_outbox_update after update of status on public.refunds
  for each row when (new.status is distinct from old.status)
  execute function settle.outbox_refund_event();

create function settle.outbox_subscription_payload(p_sub public.subscriptions, p_previous_status text)
returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'id', p_sub.id, 'account_id', p_sub.account_id, 'plan_id', p_sub.plan_id,
    'status', p_sub.status, 'previous_status', p_previous_status,
    'current_period_start', p_sub.current_period_start,
    'current_period_end', p_sub.current_period_end,
    'cancel_at_period_end', p_sub.cancel_at_period_end, 'canceled_at', p_sub.canceled_at,
    'created_at', p_sub.created_at)
$$;

-- subscription.activated: created active, or back to active. subscription.renewed: the period's
-- end moves later while it stays active. subscription.lapsed: -> past_due. subscription.canceled:
-- -> canceled. subscription.updated: anything else a receiver sees (cancel at period end set or
-- cleared, the period shortened by a refund, another plan) while the status stays.
create function settle.outbox_subscription_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_type text;
begin
  if tg_op = 'INSERT' then
    v_type := case new.status when 'active' then 'subscription.activated'
      when 'past_due' then 'subscription.lapsed' else 'subscription.canceled' end;
    perform settle.outbox_emit(v_type, new.account_id, 'subscription', new.id,
      settle.outbox_subscription_payload(new, null));
    return null;
  end if;
  if new.status is distinct from old.status then
    v_type := case new.status when 'active' then 'subscription.activated'
      when 'past_due' then 'subscription.lapsed' else 'subscription.canceled' end;
  elsif new.status = 'active' and new.current_period_end > old.current_period_end then
    v_type := 'subscription.renewed';
  elsif new.current_period_end is distinct from old.current_period_end
        or new.current_period_start is distinct from old.current_period_start
        or new.cancel_at_period_end is distinct from old.cancel_at_period_end
        or new.plan_id is distinct from old.plan_id then
    v_type := 'subscription.updated';
  else
    return null;
  end if;
  perform settle.outbox_emit(v_type, new.account_id, 'subscription', new.id,
    settle.outbox_subscription_payload(new, old.status));
  return null;
end
$$;
create trigger subscriptions_outbox after insert or update on public.subscriptions
  for each row execute function settle.outbox_subscription_event();

-- Section - delivering
-- Claims up to p_limit due deliveries for one worker. SKIP LOCKED lets workers run side by
-- side without waiting on or double-claiming each other's rows; a claim moves next_attempt_at
-- to the end of a lease, so if the worker dies its claims come back then. Attempts are counted
-- here, at the start of each one; a claim whose lease ran out on the final attempt is dead.
create function settle.outbox_claim(
  p_limit integer, p_lease_seconds integer, p_max_attempts integer, p_now timestamptz default now()
) returns table (
  delivery_id bigint, claim_token uuid, attempt integer, event_id uuid, event_type text,
  event_created_at timestamptz, account_id uuid, payload jsonb, subscriber_id uuid, url text,
  secret text
)
language plpgsql security definer set search_path = ''
as $$
declare
  v_token uuid := gen_random_uuid();
begin
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform settle.fail(400, 'invalid_request', 'limit must be between 1 and 1000');
  end if;
  if p_lease_seconds is null or p_lease_seconds < 1 or p_max_attempts is null or p_max_attempts < 1
     or p_now is null then
    perform settle.fail(400, 'invalid_request', 'lease, max attempts and now are required');
  end if;

  with expired as (
    select d.id from public.outbox_deliveries d
    where d.status = 'pending' and d.next_attempt_at <= p_now and d.attempts >= p_max_attempts
    for update skip locked
  )
  update public.outbox_deliveries d
  set status = 'dead', claim_token = null,
      last_error = left('lease expired during the final attempt; last error: '
        || coalesce(d.last_error, 'none'), 1000)
  from expired where d.id = expired.id;

  return query
  with due as (
    select d.id from public.outbox_deliveries d
    join public.outbox_subscribers s on s.id = d.subscriber_id
    where d.status = 'pending' and d.next_attempt_at <= p_now and d.attempts < p_max_attempts
      and s.active
    order by d.next_attempt_at, d.id
    limit p_limit
    for update of d skip locked
  ), claimed as (
    update public.outbox_deliveries d
    set attempts = d.attempts + 1, claim_token = v_token, claimed_at = p_now,
        next_attempt_at = p_now + make_interval(secs => p_lease_seconds)
    from due where d.id = due.id
    returning d.id, d.attempts, d.event_id, d.subscriber_id
  )
  select c.id, v_token, c.attempts, e.id, e.type, e.created_at, e.account_id, e.payload, s.id,
    s.url, s.secret
  from claimed c
  join public.outbox_events e on e.id = c.event_id
  join public.outbox_subscribers s on s.id = c.subscriber_id
  order by c.id;
end
$$;

-- A 2xx from the subscriber. Accepted from any claim, even one whose lease ran out: the receiver
-- has the event, which is what delivered means. Returns false when it was already delivered.
create function settle.outbox_record_success(
  p_delivery_id bigint, p_claim_token uuid, p_http_status integer, p_now timestamptz default now()
) returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  update public.outbox_deliveries
  set status = 'delivered', delivered_at = p_now, last_attempt_at = p_now,
      last_http_status = p_http_status, last_error = null, claim_token = null
  where id = p_delivery_id and status <> 'delivered';
  return found;
end
$$;

-- A failed attempt (non-2xx, timeout, network error). Only the current claim may record one: a
-- worker whose lease ran out and was re-claimed is ignored (returns null). Otherwise the next
-- attempt is due after base * 2^(attempts - 1) seconds, capped; after the last attempt the
-- delivery is dead. Returns {status, attempts, next_attempt_at}.
create function settle.outbox_record_failure(
  p_delivery_id bigint, p_claim_token uuid, p_http_status integer, p_error text,
  p_max_attempts integer, p_backoff_base_seconds integer, p_backoff_max_seconds integer,
  p_now timestamptz default now()
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.outbox_deliveries;
begin
  update public.outbox_deliveries d
  set status = case when d.attempts >= p_max_attempts then 'dead' else 'pending' end,
      next_attempt_at = case when d.attempts >= p_max_attempts then p_now
        else p_now + make_interval(secs => least(
          p_backoff_base_seconds::numeric * power(2::numeric, least(d.attempts - 1, 40)),
          p_backoff_max_seconds::numeric)::double precision) end,
      last_attempt_at = p_now, last_http_status = p_http_status,
      last_error = left(coalesce(p_error, 'failed'), 1000), claim_token = null
  where d.id = p_delivery_id and d.status = 'pending' and d.claim_token = p_claim_token
  returning * into v_row;
  if not found then
    return null;
  end if;
  return jsonb_build_object('status', v_row.status, 'attempts', v_row.attempts,
    'next_attempt_at', v_row.next_attempt_at);
end
$$;

-- Section - replaying dead letters (operators, from SQL)
-- Each makes dead deliveries pending again with a fresh attempt budget, due now, and returns how
-- many it revived. The event (and its id) is the same, so receivers can still dedup.
create function settle.outbox_replay_delivery(p_delivery_id bigint) returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  v_status text;
begin
  select status into v_status from public.outbox_deliveries where id = p_delivery_id for update;
  if v_status is null then
    perform settle.fail(404, 'not_found', format('no outbox delivery %s', p_delivery_id));
  elsif v_status <> 'dead' then
    perform settle.fail(409, 'conflict', format('outbox delivery %s is %s, not dead', p_delivery_id, v_status));
  end if;
  update public.outbox_deliveries
  set status = 'pending', attempts = 0, next_attempt_at = now(), claim_token = null,
      replays = replays + 1
  where id = p_delivery_id;
  return 1;
end
$$;

create function settle.outbox_replay_subscriber(p_subscriber_id uuid) returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  v_count integer;
begin
  if not exists (select 1 from public.outbox_subscribers where id = p_subscriber_id) then
    perform settle.fail(404, 'not_found', format('no outbox subscriber %s', p_subscriber_id));
  end if;
  update public.outbox_deliveries
  set status = 'pending', attempts = 0, next_attempt_at = now(), claim_token = null,
      replays = replays + 1
  where subscriber_id = p_subscriber_id and status = 'dead';
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

create function settle.outbox_replay_all_dead() returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  v_count integer;
begin
  update public.outbox_deliveries
  set status = 'pending', attempts = 0, next_attempt_at = now(), claim_token = null,
      replays = replays + 1
  where status = 'dead';
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- Section - privileges
-- Users never see the outbox: RLS on, no policies, and no grants to anon or authenticated.
revoke execute on all functions in schema settle from public;
revoke all on public.outbox_events, public.outbox_subscribers, public.outbox_deliveries
  from anon, authenticated;
grant execute on function
  settle.outbox_claim(integer, integer, integer, timestamptz),
  settle.outbox_record_success(bigint, uuid, integer, timestamptz),
  settle.outbox_record_failure(bigint, uuid, integer, text, integer, integer, integer, timestamptz),
  settle.outbox_replay_delivery(bigint),
  settle.outbox_replay_subscriber(uuid),
  settle.outbox_replay_all_dead(),
  -- The subscribers table's check constraint calls it when the service role writes a row.
  settle.outbox_valid_filters(text[])
  to service_role;
