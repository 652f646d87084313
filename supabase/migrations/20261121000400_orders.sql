-- Orders with their state machine, webhook events, and the one path that applies a payment.

-- Section - orders
create table public.orders (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete restrict,
  created_by uuid not null references auth.users (id) on delete restrict,
  gateway text not null check (gateway in ('razorpay', 'stripe')),
  purpose text not null check (purpose in ('wallet_topup', 'plan', 'product')),
  plan_id text references public.plans (id),
  product_id text references public.products (id),
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  currency text not null references public.currencies (code),
  status text not null default 'created' check (status in (
    'created', 'authorized', 'paid', 'partially_refunded', 'refunded', 'failed', 'expired'
  )),
  amount_refunded bigint not null default 0 check (amount_refunded >= 0 and amount_refunded <= amount),
  gateway_order_id text check (length(gateway_order_id) between 1 and 255),
  gateway_payment_id text check (length(gateway_payment_id) between 1 and 255),
  gateway_attempts integer not null default 0,
  last_gateway_error text,
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  request_hash text,
  failure_code text,
  failure_reason text,
  paid_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (gateway, gateway_order_id),
  unique (created_by, idempotency_key),
  check ((purpose = 'plan') = (plan_id is not null)),
  check ((purpose = 'product') = (product_id is not null)),
  check ((status in ('paid', 'partially_refunded', 'refunded')) <= (paid_at is not null))
);
alter table public.orders enable row level security;
create index orders_account_id_created_at_idx on public.orders (account_id, created_at desc);
create index orders_status_created_at_idx on public.orders (status, created_at)
  where status in ('created', 'authorized');
comment on column public.orders.amount is 'Minor units of currency, from plans/products or a bounded top-up; never from the client otherwise.';
comment on column public.orders.gateway_attempts is 'Times the gateway order was requested; a retry after a failure looks the order up first.';

create policy "Members can read their accounts' orders" on public.orders
  for select to authenticated using (settle.is_member(account_id));

-- The legal status moves. failed/expired -> paid is allowed on purpose: a gateway may capture
-- a later attempt (or a late authorization) after an earlier failure, and captured money must
-- land. Nothing ever leaves paid except towards refunded.
create table settle.order_transitions (
  from_status text not null,
  to_status text not null,
  primary key (from_status, to_status)
);
insert into settle.order_transitions values
  ('created', 'authorized'), ('created', 'paid'), ('created', 'failed'), ('created', 'expired'),
  ('authorized', 'paid'), ('authorized', 'failed'),
  ('failed', 'paid'), ('expired', 'paid'),
  ('paid', 'partially_refunded'), ('paid', 'refunded'),
  ('partially_refunded', 'partially_refunded'), ('partially_refunded', 'refunded');

create function settle.guard_order_update() returns trigger
language plpgsql set search_path = ''
as $$
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
  -- The payment that was captured is the one refunds go to: fixed once the order is paid.
  if old.status in ('paid', 'partially_refunded', 'refunded')
     and new.gateway_payment_id is distinct from old.gateway_payment_id then
    perform settle.fail(409, 'conflict', 'a paid order''s gateway payment id cannot change');
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
create trigger orders_guard_update before update on public.orders
  for each row execute function settle.guard_order_update();

create function settle.guard_order_insert() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status <> 'created' or new.amount_refunded <> 0 or new.paid_at is not null then
    perform settle.fail(400, 'invalid_request', 'an order starts as created, unpaid');
  end if;
  return new;
end
$$;
create trigger orders_guard_insert before insert on public.orders
  for each row execute function settle.guard_order_insert();

-- Becoming paid posts the order's ledger transaction, whoever makes the change: "paid" and
-- "credited once" cannot drift apart. The key order_paid:<id> makes it happen once.
create function settle.post_order_payment() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_clearing text := 'gateway:' || new.gateway;
begin
  if new.purpose = 'wallet_topup' then
    perform settle.post_transaction('topup', 'order_paid:' || new.id, new.id,
      'wallet top-up via ' || new.gateway,
      jsonb_build_array(
        jsonb_build_object('wallet_id', settle.ensure_wallet(new.account_id, new.currency),
          'currency', new.currency, 'amount', new.amount),
        jsonb_build_object('system_account', v_clearing, 'currency', new.currency, 'amount', -new.amount)));
  else
    perform settle.post_transaction('purchase', 'order_paid:' || new.id, new.id,
      new.purpose || ' purchase via ' || new.gateway,
      jsonb_build_array(
        jsonb_build_object('system_account', 'revenue:' || new.purpose, 'currency', new.currency,
          'amount', new.amount),
        jsonb_build_object('system_account', v_clearing, 'currency', new.currency, 'amount', -new.amount)));
  end if;
  return null;
end
$$;
create trigger orders_post_payment after update of status on public.orders
  for each row when (new.status = 'paid' and old.status <> 'paid')
  execute function settle.post_order_payment();

-- Section - webhook events
create table public.webhook_events (
  id bigint generated always as identity primary key,
  gateway text not null check (gateway in ('razorpay', 'stripe')),
  event_id text not null check (length(event_id) between 1 and 255),
  event_type text not null check (length(event_type) between 1 and 255),
  gateway_order_id text,
  gateway_payment_id text,
  amount bigint,
  currency text,
  order_id uuid references public.orders (id),
  raw_body text not null,
  outcome text not null default 'received' check (outcome in (
    'received', 'applied', 'no_effect', 'ignored', 'unknown_order', 'mismatch', 'failed'
  )),
  detail text,
  occurred_at timestamptz,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  unique (gateway, event_id)
);
alter table public.webhook_events enable row level security;
create index webhook_events_order_id_idx on public.webhook_events (order_id);
comment on table public.webhook_events is 'Every verified webhook, raw body kept for audit and replay. Never readable by users (no policies).';

-- Section - applying payments
-- The single path by which verify, webhooks and reconciliation change an order's payment
-- state. The order row lock serialises racers; the state check and the ledger key make the
-- effect happen once. p_kind: authorized | captured | failed. p_amount/p_currency null means
-- the caller proved the payment against the order itself (a checkout signature).
create function settle.apply_payment(
  p_gateway text, p_kind text, p_gateway_order_id text, p_gateway_payment_id text,
  p_amount bigint, p_currency text, p_failure_code text default null, p_failure_reason text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
begin
  select * into v_order from public.orders
  where gateway = p_gateway and gateway_order_id = p_gateway_order_id
  for update;
  if not found then
    return jsonb_build_object('outcome', 'unknown_order');
  end if;

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
    if (p_amount is not null and p_amount <> v_order.amount)
       or (p_currency is not null and upper(p_currency) <> v_order.currency) then
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

-- Stores a verified webhook once per (gateway, event id) and applies its effect in the same
-- transaction. A duplicate returns {"duplicate": true} and changes nothing.
-- Concurrent deliveries of one event queue on a transaction-scoped advisory lock keyed by the
-- event; the next one sees the first's committed row and answers duplicate. Taking the lock
-- first lets the row be written once, outcome included, instead of inserted then updated. The
-- unique (gateway, event_id) stays as the last line of defence: if it ever fired, the whole
-- transaction (effect included) would roll back. p_effect carries payment-method effects
-- (settle.apply_payment_method_event, in the Stripe migration).
create function settle.ingest_webhook(
  p_gateway text, p_event_id text, p_event_type text, p_kind text,
  p_gateway_order_id text, p_gateway_payment_id text, p_amount bigint, p_currency text,
  p_occurred_at timestamptz, p_raw_body text,
  p_failure_code text default null, p_failure_reason text default null,
  p_effect jsonb default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_result jsonb;
begin
  -- 1399157588 is settle's advisory lock class ('SETL'); the second key is the event's hash
  -- (a collision only makes two different events wait for each other).
  perform pg_advisory_xact_lock(1399157588, hashtext(p_gateway || '/' || p_event_id));
  if exists (select 1 from public.webhook_events where gateway = p_gateway and event_id = p_event_id) then
    return jsonb_build_object('duplicate', true, 'outcome', 'duplicate');
  end if;

  if p_effect is not null then
    v_result := settle.apply_payment_method_event(p_effect);
  elsif p_kind is null or p_kind not in ('authorized', 'captured', 'failed') or p_gateway_order_id is null then
    v_result := jsonb_build_object('outcome', 'ignored');
  else
    v_result := settle.apply_payment(p_gateway, p_kind, p_gateway_order_id, p_gateway_payment_id,
      p_amount, p_currency, p_failure_code, p_failure_reason);
  end if;

  insert into public.webhook_events (gateway, event_id, event_type, gateway_order_id,
    gateway_payment_id, amount, currency, raw_body, occurred_at, outcome, order_id, detail,
    processed_at)
  values (p_gateway, p_event_id, p_event_type, p_gateway_order_id, p_gateway_payment_id,
    p_amount, upper(p_currency), p_raw_body, p_occurred_at, v_result ->> 'outcome',
    (v_result ->> 'order_id')::uuid, v_result ->> 'detail', now());
  return v_result || jsonb_build_object('duplicate', false);
end
$$;

-- Section - creating orders
-- Runs as the calling user (auth.uid()). Prices come from the catalog; only a top-up takes a
-- client amount, within the currency's bounds. With an idempotency key, the same request
-- returns the same order ({"replayed": true}) and a different request under that key is a 409.
create function settle.create_order(
  p_gateway text, p_purpose text, p_plan_id text, p_product_id text,
  p_amount bigint, p_currency text, p_account_id uuid,
  p_idempotency_key text, p_request_hash text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_account uuid := p_account_id;
  v_amount bigint;
  v_currency text;
  v_currency_row public.currencies;
  v_order public.orders;
begin
  if v_uid is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  if p_gateway is null or p_gateway not in ('razorpay', 'stripe') then
    perform settle.fail(400, 'invalid_request', 'gateway must be razorpay or stripe');
  end if;

  if p_idempotency_key is not null then
    select * into v_order from public.orders
    where created_by = v_uid and idempotency_key = p_idempotency_key;
    if found then
      if v_order.request_hash is distinct from p_request_hash then
        perform settle.fail(409, 'idempotency_conflict',
          'this Idempotency-Key was used with a different request');
      end if;
      return jsonb_build_object('order', to_jsonb(v_order), 'replayed', true);
    end if;
  end if;

  if v_account is null then
    select id into v_account from public.accounts where personal_owner_id = v_uid;
  end if;
  if v_account is null or not exists (
    select 1 from public.account_members m where m.account_id = v_account and m.user_id = v_uid
  ) then
    perform settle.fail(404, 'not_found', 'account not found');
  end if;

  if p_purpose = 'plan' then
    if p_amount is not null or p_currency is not null or p_product_id is not null then
      perform settle.fail(400, 'invalid_request', 'a plan order takes only plan_id; the price comes from the plan');
    end if;
    select amount, currency into v_amount, v_currency from public.plans where id = p_plan_id and active;
    if not found then
      perform settle.fail(404, 'not_found', 'plan not found');
    end if;
  elsif p_purpose = 'product' then
    if p_amount is not null or p_currency is not null or p_plan_id is not null then
      perform settle.fail(400, 'invalid_request', 'a product order takes only product_id; the price comes from the product');
    end if;
    select amount, currency into v_amount, v_currency from public.products where id = p_product_id and active;
    if not found then
      perform settle.fail(404, 'not_found', 'product not found');
    end if;
  elsif p_purpose = 'wallet_topup' then
    if p_plan_id is not null or p_product_id is not null then
      perform settle.fail(400, 'invalid_request', 'a top-up takes amount and currency only');
    end if;
    select * into v_currency_row from public.currencies where code = p_currency and enabled;
    if not found then
      perform settle.fail(400, 'invalid_request', format('unsupported currency %s', p_currency));
    end if;
    if p_amount is null or p_amount < v_currency_row.topup_min or p_amount > v_currency_row.topup_max then
      perform settle.fail(400, 'invalid_request', format(
        'top-up amount must be between %s and %s minor units of %s',
        v_currency_row.topup_min, v_currency_row.topup_max, p_currency));
    end if;
    v_amount := p_amount;
    v_currency := p_currency;
  else
    perform settle.fail(400, 'invalid_request', 'purpose must be wallet_topup, plan or product');
  end if;

  insert into public.orders (account_id, created_by, gateway, purpose, plan_id, product_id,
    amount, currency, idempotency_key, request_hash)
  values (v_account, v_uid, p_gateway, p_purpose, p_plan_id, p_product_id,
    v_amount, v_currency, p_idempotency_key, p_request_hash)
  on conflict (created_by, idempotency_key) do nothing
  returning * into v_order;

  if v_order.id is null then
    -- A concurrent request with the same key won the insert; answer as its replay.
    select * into v_order from public.orders
    where created_by = v_uid and idempotency_key = p_idempotency_key;
    if v_order.request_hash is distinct from p_request_hash then
      perform settle.fail(409, 'idempotency_conflict',
        'this Idempotency-Key was used with a different request');
    end if;
    return jsonb_build_object('order', to_jsonb(v_order), 'replayed', true);
  end if;
  return jsonb_build_object('order', to_jsonb(v_order), 'replayed', false);
end
$$;

-- Section - privileges
revoke all on all tables in schema public from anon, authenticated;
grant select on public.currencies, public.plans, public.products to anon, authenticated;
grant select on public.accounts, public.account_members, public.orders, public.wallets,
  public.ledger_transactions, public.ledger_entries to authenticated;
grant all on all tables in schema public to service_role;
-- Money moves through the ledger functions only, for the service role too.
revoke update, delete, truncate on public.wallets, public.ledger_transactions,
  public.ledger_entries from service_role;
revoke all on table settle.order_transitions from public;

revoke execute on all functions in schema settle from public;
grant execute on function settle.is_member(uuid), settle.has_role_on_account(uuid, text)
  to authenticated, service_role;
grant execute on function settle.create_order(text, text, text, text, bigint, text, uuid, text, text)
  to authenticated;
grant execute on all functions in schema settle to service_role;
