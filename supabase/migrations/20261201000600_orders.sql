-- Orders: what a user buys (a top-up, a plan, a product, an escrow funding), their state machine,
-- the one trigger that carries out a status change's effects, the one path that applies a
-- gateway payment, and the claim that keeps create-order from holding a row lock across the
-- gateway's HTTP call.

-- Section - orders
-- Lists in CHECK constraints are written '{a,b,...}'::text[]: Postgres prepares every CHECK of a
-- table again for each INSERT or UPDATE statement, and a list written ARRAY['a', 'b', ...] is
-- one constant per element folded into an array each time, '{a,b,...}'::text[] one constant
-- (a payment's one-row update of orders checks 16 constraints; bench/README.md has the cost).
create table public.orders (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete restrict,
  created_by uuid not null references auth.users (id) on delete restrict,
  -- wallet: paid from the account's wallet (wallet_spending file), never through a gateway.
  gateway text not null check (gateway = any ('{razorpay,stripe,paypal,wallet}'::text[])),
  purpose text not null check (purpose = any ('{wallet_topup,plan,product,escrow}'::text[])),
  plan_id text references public.plans (id),
  product_id text references public.products (id),
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  currency text not null references public.currencies (code),
  status text not null default 'created' check (status = any (
    '{created,authorized,paid,partially_refunded,refunded,failed,expired}'::text[])),
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
  -- Reconciliation's bookkeeping (reconcile file).
  reconcile_after timestamptz,
  reconcile_attempts integer not null default 0 check (reconcile_attempts >= 0),
  reconcile_claim uuid,
  -- The claim on the gateway call (Section - the gateway call, below).
  gateway_claim_id uuid,
  gateway_claimed_until timestamptz,
  -- Escrow (escrow file, which adds the foreign key: engagements reference their funding order,
  -- so they are created after orders).
  engagement_id uuid,
  dispute_status text check (dispute_status = any ('{open,won,lost,closed}'::text[])),
  unique (gateway, gateway_order_id),
  unique (created_by, idempotency_key),
  check ((purpose = 'plan') = (plan_id is not null)),
  check ((purpose = 'product') = (product_id is not null)),
  constraint orders_check3 check (
    (status = any ('{paid,partially_refunded,refunded}'::text[])) <= (paid_at is not null)),
  -- The paid-side status always agrees with the amount counted as refunded.
  constraint orders_refund_status_check check (
    status <> all ('{paid,partially_refunded,refunded}'::text[]) or status = case
      when amount_refunded = 0 then 'paid'
      when amount_refunded < amount then 'partially_refunded'
      else 'refunded' end),
  constraint orders_unpaid_not_refunded_check check (
    status = any ('{paid,partially_refunded,refunded}'::text[]) or amount_refunded = 0),
  constraint orders_engagement_check check ((purpose = 'escrow') = (engagement_id is not null))
);
alter table public.orders enable row level security;
comment on column public.orders.amount is 'Minor units of currency, from plans/products or a bounded top-up; never from the client otherwise.';
comment on column public.orders.gateway_attempts is 'Times the gateway order was requested; a retry after a failure looks the order up first.';
comment on column public.orders.reconcile_after is 'Reconciliation does not claim the order before this time: the lease of a running reconciler, then the backoff until the next check. Null: claimable once older than the stuck age.';
comment on column public.orders.reconcile_attempts is 'Times reconciliation claimed the order; the backoff between checks doubles with each (capped at 64 times the base).';
comment on column public.orders.reconcile_claim is 'The batch holding the lease, so a reconciler that overran its lease cannot release an order another one has claimed since.';
comment on column public.orders.gateway_claim_id is 'The request now asking the gateway for this order''s gateway order; null when none is.';
comment on column public.orders.gateway_claimed_until is 'When that request''s claim runs out (the gateway call''s longest time plus a margin): after it, another request may ask the gateway again.';
comment on column public.orders.engagement_id is 'The engagement an escrow order funds (purpose escrow); its amount and currency are the engagement''s.';
comment on column public.orders.dispute_status is 'open while a dispute on the order''s payment is unresolved (fulfilment should wait), else the last dispute''s outcome; null if never disputed.';
create index orders_account_id_created_at_idx on public.orders (account_id, created_at desc);
create index orders_status_created_at_idx on public.orders (status, created_at)
  where status in ('created', 'authorized');

-- One gateway payment pays at most one order (settle.guard_order_update says so first, with a
-- clear 409).
create unique index orders_gateway_payment_unique_idx on public.orders (gateway, gateway_payment_id)
  where gateway_payment_id is not null;

create policy "Members can read their accounts' orders" on public.orders
  for select to authenticated using (settle.is_member(account_id));

-- Section - the state machine
-- The legal status moves. failed/expired -> paid is allowed on purpose: a gateway may capture
-- a later attempt (or a late authorization) after an earlier failure, and captured money must
-- land. Nothing ever leaves paid except towards refunded, and back: a refund that fails after it
-- was counted (pending, or processed and then rejected by the card network) gives the money
-- back, so orders go back towards paid.
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
  ('partially_refunded', 'partially_refunded'), ('partially_refunded', 'refunded'),
  ('partially_refunded', 'paid'), ('refunded', 'partially_refunded'), ('refunded', 'paid');

-- An order's terms are fixed once it is created, its gateway order id and (once paid) its payment
-- id are set once, its status moves only along settle.order_transitions, and one gateway payment
-- pays at most one order: a clear 409 payment_mismatch before the unique index below would
-- refuse it (apply_payment takes the id the gateway reports for the order's own gateway order,
-- a Razorpay payment belongs to one order, a Stripe charge to one intent; wallet orders get
-- 'wallet_' || their own id; verify answers the 409, a webhook whose effect raises is stored
-- 'failed' for an operator). security definer: the identity check reads every account's orders.
create function settle.guard_order_update() returns trigger
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

-- Section - effects after an order update
-- Becoming paid posts the order's ledger transaction, whoever makes the change: "paid" and
-- "credited once" cannot drift apart. The key order_paid:<id> makes it happen once. A paid escrow
-- order funds its engagement (settle.fund_engagement, escrow file); paid from the wallet debits
-- the wallet and credits revenue (no gateway clearing is involved; the ledger refuses it if the
-- wallet cannot cover it); otherwise the gateway's clearing account pays the wallet (a top-up)
-- or revenue:<purpose>.
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

-- Every effect of a status or refund change, from one trigger (one plpgsql call per update), in
-- this order: the payment_stats delta (payment_stats file; settle.payment_stats_delta serves
-- insert and delete), the posting, the plan's subscription period (granted, revoked, given
-- back: subscriptions file), then held gateway refunds (gateway_refunds file: a refund webhook
-- that arrived before the capture is counted once the order is paid, after the payment it
-- refunds is posted). The outbox's trigger (settle.outbox_order_event) stays its own.
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
create trigger orders_payment_effects after update of status, amount_refunded on public.orders
  for each row
  when (new.status is distinct from old.status or new.amount_refunded is distinct from old.amount_refunded)
  execute function settle.order_effects();

-- Section - applying payments
-- The single path by which verify, webhooks and reconciliation change an order's payment
-- state. The order row lock serialises racers; the state check and the ledger key make the
-- effect happen once. p_kind: authorized | captured | failed. Only captured money counts: a
-- checkout signature proves an authorization, not a capture, so a capture must carry the
-- gateway's own amount and currency, which must be the order's (a capture without them is a
-- mismatch). An authorization reported for other terms is flagged the same way (it is never
-- captured). Over 70 lines: the three kinds share the locked row and its checks, in one place.
create function settle.apply_payment(
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

-- Verify's one statement after the gateway's answer: applies a verified checkout's result through
-- the one payment path (settle.apply_payment; nothing when the gateway says pending) and answers
-- the outcome with the order as it is now. The server calls it only for an order the user has
-- just read through RLS.
create function settle.apply_checkout_result(
  p_gateway text, p_kind text, p_gateway_order_id text, p_gateway_payment_id text,
  p_amount bigint, p_currency text, p_failure_code text, p_failure_reason text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_result jsonb := jsonb_build_object('outcome', 'pending');
  v_order public.orders;
begin
  if p_kind is distinct from 'pending' then
    v_result := settle.apply_payment(p_gateway, p_kind, p_gateway_order_id, p_gateway_payment_id,
      p_amount, p_currency, p_failure_code, p_failure_reason);
  end if;
  select * into v_order from public.orders
  where gateway = p_gateway and gateway_order_id = p_gateway_order_id;
  if not found then
    perform settle.fail(404, 'not_found', 'order not found');
  end if;
  return v_result || jsonb_build_object('order', to_jsonb(v_order));
end
$$;

-- Section - creating orders
-- Runs as the calling user (auth.uid()). Prices come from the catalog; only a top-up takes a
-- client amount, within the currency's bounds. With an idempotency key, the same request
-- returns the same order ({"replayed": true}) and a different request under that key is a 409.
-- Gateway orders only: wallet orders have their own function (settle.pay_order_from_wallet),
-- escrow orders theirs (settle.create_escrow_order). With p_claim, an order this call inserts is
-- written already claimed for its gateway call (gateway_claim_id, its lease, gateway_attempts 1:
-- what settle.claim_gateway_order would set on it at once; one row written once instead of an
-- insert and then a claim's update), and a replayed order still created without a gateway order
-- is claimed through settle.claim_gateway_order (a live claim of another request is left
-- alone). The answer says whether this call holds the claim, and carries the account's customer
-- at the order's gateway when one is known. Over 70 lines: checks, pricing and the insert stay
-- together.
create function settle.create_order(
  p_gateway text, p_purpose text, p_plan_id text, p_product_id text,
  p_amount bigint, p_currency text, p_account_id uuid,
  p_idempotency_key text, p_request_hash text, p_claim uuid, p_lease_ms integer
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
  v_replayed boolean := true;
  v_claimed boolean := false;
  v_claim jsonb;
begin
  if v_uid is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  if p_gateway is null or p_gateway not in ('razorpay', 'stripe', 'paypal') then
    perform settle.fail(400, 'invalid_request', 'gateway must be razorpay, stripe or paypal');
  end if;
  if p_claim is not null and (p_lease_ms is null or p_lease_ms not between 1 and 600000) then
    perform settle.fail(400, 'invalid_request', 'the lease must be between 1 ms and 10 minutes');
  end if;

  if p_idempotency_key is not null then
    select * into v_order from public.orders
    where created_by = v_uid and idempotency_key = p_idempotency_key;
  end if;

  if v_order.id is null then
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
      amount, currency, idempotency_key, request_hash,
      gateway_claim_id, gateway_claimed_until, gateway_attempts)
    values (v_account, v_uid, p_gateway, p_purpose, p_plan_id, p_product_id,
      v_amount, v_currency, p_idempotency_key, p_request_hash,
      p_claim, case when p_claim is not null
        then clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0) end,
      case when p_claim is not null then 1 else 0 end)
    on conflict (created_by, idempotency_key) do nothing
    returning * into v_order;
    if v_order.id is not null then
      v_replayed := false;
      v_claimed := p_claim is not null;
    else
      -- A concurrent request with the same key won the insert; answer as its replay.
      select * into v_order from public.orders
      where created_by = v_uid and idempotency_key = p_idempotency_key;
    end if;
  end if;

  if v_replayed then
    if v_order.request_hash is distinct from p_request_hash then
      perform settle.fail(409, 'idempotency_conflict',
        'this Idempotency-Key was used with a different request');
    end if;
    if p_claim is not null and v_order.status = 'created' and v_order.gateway_order_id is null then
      v_claim := settle.claim_gateway_order(v_order.id, p_claim, p_lease_ms);
      v_claimed := (v_claim ->> 'claimed')::boolean;
      v_order := jsonb_populate_record(null::public.orders, v_claim -> 'order');
    end if;
  end if;
  return jsonb_build_object('order', to_jsonb(v_order), 'replayed', v_replayed,
    'claimed', v_claimed,
    'customer_id', case when v_claimed then (select g.customer_id from public.gateway_customers g
      where g.account_id = v_order.account_id and g.gateway = v_order.gateway) end);
end
$$;

-- The nine-argument form stays for its callers (pgTAP, scripts): no claim, its old answer.
create function settle.create_order(
  p_gateway text, p_purpose text, p_plan_id text, p_product_id text,
  p_amount bigint, p_currency text, p_account_id uuid,
  p_idempotency_key text, p_request_hash text
) returns jsonb
language sql security definer set search_path = ''
as $$
  select r - 'claimed' - 'customer_id' from settle.create_order(p_gateway, p_purpose, p_plan_id,
    p_product_id, p_amount, p_currency, p_account_id, p_idempotency_key, p_request_hash,
    null, null) r
$$;

-- Section - the gateway call
-- A slow gateway must not stall everyone: create-order does not hold the order's row lock (and
-- a pooled connection) across the gateway's HTTP call. It claims the call on the order in one
-- short statement, calls the gateway with nothing held, and records the answer in another short
-- statement guarded by the order's state. Concurrent requests for one order see the live claim
-- and wait for its answer (short reads, no lock); a claim whose request died runs out after its
-- lease and is taken over by the next request, whose call looks the gateway order up first
-- (Razorpay: by receipt; Stripe: the same idempotency key), so an order never gets a second one.

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
-- claim. A failure (p_gateway_order_id null) is noted, but only while this request still holds
-- the claim: a refusal (p_outcome_unknown false) frees the claim at once for a retry; a call that
-- failed without the gateway saying no (a timeout, a dropped connection, a 5xx; null counts as
-- unknown) may still make the gateway order, so its claim is kept until gateway_claimed_until:
-- meanwhile no other request asks the gateway, and the one that takes the claim over afterwards
-- looks the order up first (Razorpay receipt, Stripe idempotency key). The answer carries the
-- order as it is now.
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

-- The four-argument form stays for its callers: a failure it records is a refusal (known
-- outcome), which frees the claim.
create function settle.record_gateway_order(
  p_order_id uuid, p_claim uuid, p_gateway_order_id text, p_error text
) returns jsonb
language sql security definer set search_path = ''
as $$ select settle.record_gateway_order(p_order_id, p_claim, p_gateway_order_id, p_error, false) $$;

-- Section - privileges
revoke execute on all functions in schema settle from public;
revoke all on public.orders from anon, authenticated;
grant select on public.orders to authenticated;
revoke all on table settle.order_transitions from public;
-- Users create orders as themselves; the server applies payments and records the gateway call.
grant execute on function
  settle.create_order(text, text, text, text, bigint, text, uuid, text, text, uuid, integer)
  to authenticated;
grant execute on function
  settle.create_order(text, text, text, text, bigint, text, uuid, text, text)
  to authenticated, service_role;
grant execute on function settle.guard_order_update(), settle.guard_order_insert(),
  settle.apply_payment(text, text, text, text, bigint, text, text, text),
  settle.apply_checkout_result(text, text, text, text, bigint, text, text, text),
  settle.claim_gateway_order(uuid, uuid, integer),
  settle.record_gateway_order(uuid, uuid, text, text, boolean),
  settle.record_gateway_order(uuid, uuid, text, text)
  to service_role;
