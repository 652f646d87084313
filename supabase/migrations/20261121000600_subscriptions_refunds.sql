-- Subscriptions and entitlements, refunds with ledger reversals, and failure-tolerant webhook
-- ingestion (a failed effect is stored as outcome 'failed' for reconciliation to retry).

-- Section - entitlement on the account
alter table public.accounts
  add column plan text references public.plans (id),
  add column is_pro boolean not null default false,
  add column entitlement_ends_at timestamptz;
comment on column public.accounts.plan is 'The plan of the account''s active subscription, null without one. Maintained by the subscriptions trigger only.';
comment on column public.accounts.is_pro is 'True while the account''s subscription is active. Maintained by the subscriptions trigger only.';

-- Section - subscriptions
-- One subscription per account. Buying a plan (either gateway) grants one period: it starts the
-- subscription, or extends it from the current period's end while it is active. Each grant is a
-- row in subscription_periods, unique per order, so a duplicate or late event never extends twice.
create table public.subscriptions (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null unique references public.accounts (id) on delete cascade,
  plan_id text not null references public.plans (id),
  status text not null check (status in ('active', 'past_due', 'canceled')),
  current_period_start timestamptz not null,
  current_period_end timestamptz not null,
  cancel_at_period_end boolean not null default false,
  canceled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (current_period_end >= current_period_start)
);
alter table public.subscriptions enable row level security;
create index subscriptions_active_period_end_idx on public.subscriptions (current_period_end)
  where status = 'active';
comment on table public.subscriptions is 'status: active (entitled until current_period_end), past_due (the period ended unrenewed), canceled (cancelled, or its purchase refunded).';

create policy "Members can read their accounts' subscriptions" on public.subscriptions
  for select to authenticated using (settle.is_member(account_id));

create table public.subscription_periods (
  id bigint generated always as identity primary key,
  subscription_id uuid not null references public.subscriptions (id) on delete cascade,
  account_id uuid not null references public.accounts (id) on delete cascade,
  order_id uuid not null unique references public.orders (id),
  plan_id text not null references public.plans (id),
  period_start timestamptz not null,
  period_end timestamptz not null,
  revoked_at timestamptz,
  created_at timestamptz not null default now(),
  check (period_end > period_start)
);
alter table public.subscription_periods enable row level security;
create index subscription_periods_subscription_id_idx on public.subscription_periods (subscription_id);
comment on table public.subscription_periods is 'One row per paid plan order: the time it bought. revoked_at is set when the order is fully refunded.';

create policy "Members can read their accounts' subscription periods" on public.subscription_periods
  for select to authenticated using (settle.is_member(account_id));

-- The account's entitlement follows its subscription, whoever changes it.
create function settle.sync_entitlement() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_active boolean := new.status = 'active';
begin
  new.updated_at := now();
  update public.accounts
  set plan = case when v_active then new.plan_id end,
      is_pro = v_active,
      entitlement_ends_at = case when v_active then new.current_period_end end
  where id = new.account_id
    and (plan is distinct from case when v_active then new.plan_id end
         or is_pro is distinct from v_active
         or entitlement_ends_at is distinct from case when v_active then new.current_period_end end);
  return new;
end
$$;
create trigger subscriptions_sync_entitlement before insert or update on public.subscriptions
  for each row execute function settle.sync_entitlement();

create function settle.plan_interval(p_plan public.plans) returns interval
language sql immutable set search_path = ''
as $$
  select case p_plan.billing_interval
    when 'day' then make_interval(days => p_plan.interval_count)
    when 'week' then make_interval(weeks => p_plan.interval_count)
    when 'month' then make_interval(months => p_plan.interval_count)
    else make_interval(years => p_plan.interval_count)
  end
$$;

-- Grants the period a paid plan order bought. Serialised per account on the account row.
create function settle.grant_subscription_period(p_order_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
  v_plan public.plans;
  v_sub public.subscriptions;
  v_now timestamptz := now();
  v_start timestamptz;
  v_end timestamptz;
begin
  select * into v_order from public.orders where id = p_order_id;
  if v_order.purpose <> 'plan' then
    return;
  end if;
  perform settle.lock_account(v_order.account_id);
  if exists (select 1 from public.subscription_periods where order_id = p_order_id) then
    return; -- this order's period was granted already
  end if;
  select * into v_plan from public.plans where id = v_order.plan_id;
  select * into v_sub from public.subscriptions where account_id = v_order.account_id;

  if v_sub.id is not null and v_sub.status = 'active' and v_sub.current_period_end > v_now then
    -- Extension runs from the end of the current period, not from now.
    v_start := v_sub.current_period_end;
    v_end := v_start + settle.plan_interval(v_plan);
    update public.subscriptions
    set plan_id = v_plan.id, current_period_end = v_end, cancel_at_period_end = false,
        canceled_at = null
    where id = v_sub.id;
  elsif v_sub.id is not null then
    v_start := v_now;
    v_end := v_start + settle.plan_interval(v_plan);
    update public.subscriptions
    set plan_id = v_plan.id, status = 'active', current_period_start = v_start,
        current_period_end = v_end, cancel_at_period_end = false, canceled_at = null
    where id = v_sub.id;
  else
    v_start := v_now;
    v_end := v_start + settle.plan_interval(v_plan);
    insert into public.subscriptions (account_id, plan_id, status, current_period_start, current_period_end)
    values (v_order.account_id, v_plan.id, 'active', v_start, v_end)
    returning * into v_sub;
  end if;
  insert into public.subscription_periods (subscription_id, account_id, order_id, plan_id, period_start, period_end)
  values (v_sub.id, v_order.account_id, v_order.id, v_plan.id, v_start, v_end);
end
$$;

-- A fully refunded plan purchase takes back the time it bought; if that leaves nothing, the
-- subscription ends now.
create function settle.revoke_subscription_period(p_order_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_period public.subscription_periods;
  v_sub public.subscriptions;
  v_end timestamptz;
begin
  select * into v_period from public.subscription_periods where order_id = p_order_id;
  if v_period.id is null or v_period.revoked_at is not null then
    return;
  end if;
  perform settle.lock_account(v_period.account_id);
  update public.subscription_periods set revoked_at = now()
  where id = v_period.id and revoked_at is null;
  if not found then
    return;
  end if;
  select * into v_sub from public.subscriptions where id = v_period.subscription_id;
  v_end := v_sub.current_period_end - (v_period.period_end - v_period.period_start);
  if v_sub.status <> 'active' then
    return;
  elsif v_end <= now() then
    update public.subscriptions
    set status = 'canceled', canceled_at = now(),
        current_period_end = greatest(now(), current_period_start)
    where id = v_sub.id;
  else
    update public.subscriptions set current_period_end = v_end where id = v_sub.id;
  end if;
end
$$;

-- A full refund that failed gives back the period it had revoked: extended from the current
-- period's end while the subscription is active, else restarted from now.
create function settle.reinstate_subscription_period(p_order_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_period public.subscription_periods;
  v_plan public.plans;
  v_sub public.subscriptions;
  v_start timestamptz;
  v_end timestamptz;
begin
  select * into v_period from public.subscription_periods where order_id = p_order_id;
  if v_period.id is null or v_period.revoked_at is null then
    return;
  end if;
  perform settle.lock_account(v_period.account_id);
  select * into v_period from public.subscription_periods where id = v_period.id;
  if v_period.revoked_at is null then
    return;
  end if;
  select * into v_plan from public.plans where id = v_period.plan_id;
  select * into v_sub from public.subscriptions where id = v_period.subscription_id;
  if v_sub.status = 'active' and v_sub.current_period_end > now() then
    v_start := v_sub.current_period_end;
    v_end := v_start + settle.plan_interval(v_plan);
    update public.subscriptions set current_period_end = v_end where id = v_sub.id;
  else
    v_start := now();
    v_end := v_start + settle.plan_interval(v_plan);
    update public.subscriptions
    set plan_id = v_plan.id, status = 'active', current_period_start = v_start,
        current_period_end = v_end, cancel_at_period_end = false, canceled_at = null
    where id = v_sub.id;
  end if;
  update public.subscription_periods
  set revoked_at = null, period_start = v_start, period_end = v_end
  where id = v_period.id;
end
$$;

create function settle.orders_subscription_effects() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.status = 'paid' and old.status in ('created', 'authorized', 'failed', 'expired') then
    perform settle.grant_subscription_period(new.id);
  elsif new.status = 'refunded' and old.status <> 'refunded' then
    perform settle.revoke_subscription_period(new.id);
  elsif old.status = 'refunded' and new.status in ('paid', 'partially_refunded') then
    perform settle.reinstate_subscription_period(new.id);
  end if;
  return null;
end
$$;
create trigger orders_subscription_effects after update of status on public.orders
  for each row when (new.purpose = 'plan' and new.status is distinct from old.status)
  execute function settle.orders_subscription_effects();

-- Ends periods that ran out: cancelled-at-period-end subscriptions become canceled, the rest
-- past_due. Bounded and safe to run concurrently (SKIP LOCKED); returns how many lapsed.
create function settle.lapse_subscriptions(p_now timestamptz default now(), p_limit integer default 500)
returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  v_count integer;
begin
  with due as (
    select id from public.subscriptions
    where status = 'active' and current_period_end <= p_now
    order by current_period_end
    limit greatest(1, least(p_limit, 10000))
    for update skip locked
  )
  update public.subscriptions s
  set status = case when s.cancel_at_period_end then 'canceled' else 'past_due' end,
      canceled_at = case when s.cancel_at_period_end then p_now else s.canceled_at end
  from due where s.id = due.id;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- Cancels the account's subscription: at the period's end (entitled until then) or at once.
-- Runs as the calling user, who must own the account; the service role may cancel any.
create function settle.cancel_subscription(p_account_id uuid, p_at_period_end boolean default true)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_sub public.subscriptions;
begin
  -- Without a user the caller must be the service role or the database owner: decided by the
  -- session's role (SET ROLE survives SECURITY DEFINER), never by what the claims leave out.
  if auth.uid() is null and coalesce(current_setting('role', true), 'none') not in ('service_role', 'none') then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  elsif auth.uid() is not null and not settle.has_role_on_account(p_account_id, 'owner') then
    if settle.is_member(p_account_id) then
      perform settle.fail(403, 'forbidden', 'only an owner of the account can cancel its subscription');
    end if;
    perform settle.fail(404, 'not_found', 'subscription not found');
  end if;
  perform settle.lock_account(p_account_id);
  select * into v_sub from public.subscriptions where account_id = p_account_id;
  if v_sub.id is null then
    perform settle.fail(404, 'not_found', 'subscription not found');
  end if;
  if v_sub.status <> 'active' then
    perform settle.fail(409, 'conflict', format('the subscription is %s', v_sub.status));
  end if;
  if p_at_period_end then
    update public.subscriptions set cancel_at_period_end = true, canceled_at = now()
    where id = v_sub.id returning * into v_sub;
  else
    update public.subscriptions
    set status = 'canceled', canceled_at = now(), cancel_at_period_end = false,
        current_period_end = greatest(least(current_period_end, now()), current_period_start)
    where id = v_sub.id returning * into v_sub;
  end if;
  return to_jsonb(v_sub);
end
$$;

-- Section - the deferred balance check runs at commit as whoever commits
-- A refund requested by a signed-in user posts ledger entries in a transaction whose role is
-- `authenticated`. The deferred zero-sum check fires at COMMIT with that role: under RLS it would
-- see only the user's own entries (not the system account's) and call the transaction
-- unbalanced. It checks the whole transaction as its owner instead.
create or replace function settle.check_transaction_balanced() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_currency text;
  v_sum numeric;
begin
  select e.currency, sum(e.amount) into v_currency, v_sum
  from public.ledger_entries e
  where e.transaction_id = new.transaction_id
  group by e.currency
  having sum(e.amount) <> 0
  limit 1;
  if found then
    perform settle.fail(400, 'invalid_request', format(
      'ledger transaction %s is unbalanced: %s entries sum to %s', new.transaction_id, v_currency, v_sum));
  end if;
  return null;
end
$$;

-- Section - refunds
create table public.refunds (
  id uuid primary key default gen_random_uuid(),
  order_id uuid not null references public.orders (id),
  account_id uuid not null references public.accounts (id),
  gateway text not null check (gateway in ('razorpay', 'stripe')),
  gateway_refund_id text check (length(gateway_refund_id) between 1 and 255),
  gateway_payment_id text not null,
  amount bigint not null check (amount > 0),
  currency text not null references public.currencies (code),
  status text not null default 'pending' check (status in ('pending', 'processed', 'failed')),
  source text not null check (source in ('api', 'gateway')),
  reason text check (length(reason) <= 500),
  failure_reason text,
  last_gateway_error text,
  gateway_attempts integer not null default 0,
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  request_hash text,
  requested_by uuid references auth.users (id) on delete set null,
  processed_at timestamptz,
  failed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (gateway, gateway_refund_id),
  unique (order_id, idempotency_key)
);
alter table public.refunds enable row level security;
create index refunds_order_id_idx on public.refunds (order_id);
create index refunds_pending_idx on public.refunds (created_at) where status = 'pending';
comment on table public.refunds is 'Money returned on a paid order. pending and processed refunds count against the order (orders.amount_refunded); a failed one is reversed.';

create policy "Members can read their accounts' refunds" on public.refunds
  for select to authenticated using (settle.is_member(account_id));

create function settle.guard_refund_update() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.order_id <> old.order_id or new.account_id <> old.account_id or new.gateway <> old.gateway
     or new.amount <> old.amount or new.currency <> old.currency
     or new.gateway_payment_id <> old.gateway_payment_id or new.source <> old.source
     or new.idempotency_key is distinct from old.idempotency_key
     or new.request_hash is distinct from old.request_hash then
    perform settle.fail(400, 'invalid_request', 'a refund''s terms cannot change');
  end if;
  if old.gateway_refund_id is not null and new.gateway_refund_id is distinct from old.gateway_refund_id then
    perform settle.fail(409, 'conflict', 'a refund''s gateway refund id is set once');
  end if;
  if new.status <> old.status and not (
    (old.status = 'pending' and new.status in ('processed', 'failed'))
    or (old.status = 'processed' and new.status = 'failed')
  ) then
    perform settle.fail(409, 'invalid_transition',
      format('refund %s cannot move from %s to %s', old.id, old.status, new.status));
  end if;
  new.updated_at := now();
  return new;
end
$$;
create trigger refunds_guard_update before update on public.refunds
  for each row execute function settle.guard_refund_update();

-- A refund that fails after it was counted (pending, or processed and then rejected by the
-- card network) gives the money back: orders go back towards paid, so these moves are legal.
insert into settle.order_transitions values
  ('partially_refunded', 'paid'), ('refunded', 'partially_refunded'), ('refunded', 'paid');

-- The paid-side status always agrees with the amount counted as refunded.
alter table public.orders add constraint orders_refund_status_check check (
  status not in ('paid', 'partially_refunded', 'refunded')
  or status = case when amount_refunded = 0 then 'paid'
                   when amount_refunded < amount then 'partially_refunded'
                   else 'refunded' end
);
alter table public.orders add constraint orders_unpaid_not_refunded_check check (
  status in ('paid', 'partially_refunded', 'refunded') or amount_refunded = 0
);

create function settle.refunded_status(p_amount bigint, p_refunded bigint) returns text
language sql immutable set search_path = ''
as $$
  select case when p_refunded = 0 then 'paid' when p_refunded < p_amount then 'partially_refunded'
              else 'refunded' end
$$;

-- The money of a refund as one keyed ledger transaction: p_amount leaves the order's holder
-- (the wallet for a top-up, revenue:<purpose> otherwise) for the gateway's clearing account; a
-- negative p_amount (a reversal) moves it back.
create function settle.post_refund_transaction(
  p_order public.orders, p_key text, p_description text, p_amount bigint
) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform settle.post_transaction('refund', p_key, p_order.id, p_description,
    jsonb_build_array(
      case when p_order.purpose = 'wallet_topup'
        then jsonb_build_object('wallet_id', settle.ensure_wallet(p_order.account_id, p_order.currency))
        else jsonb_build_object('system_account', 'revenue:' || p_order.purpose)
      end || jsonb_build_object('currency', p_order.currency, 'amount', -p_amount),
      jsonb_build_object('system_account', 'gateway:' || p_order.gateway,
        'currency', p_order.currency, 'amount', p_amount)));
end
$$;

-- Counts a new refund against its (locked) order and posts the money movement. The bound
-- (never more than was paid) is orders.amount_refunded <= amount, checked here with a clear
-- error and by the table's constraint whatever the path. A top-up refund debits the wallet and
-- is refused before anything is written if the wallet cannot cover it.
create function settle.insert_refund(
  p_order public.orders, p_amount bigint, p_status text, p_source text, p_reason text,
  p_gateway_refund_id text, p_idempotency_key text, p_request_hash text, p_requested_by uuid
) returns public.refunds
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
  v_wallet public.wallets;
  v_remaining bigint := p_order.amount - p_order.amount_refunded;
begin
  if p_order.status not in ('paid', 'partially_refunded') then
    perform settle.fail(409, 'order_not_refundable',
      format('order %s is %s; only a paid order can be refunded', p_order.id, p_order.status));
  end if;
  if p_amount is null or p_amount <= 0 then
    perform settle.fail(400, 'invalid_request', 'a refund amount must be a positive number of minor units');
  end if;
  if p_amount > v_remaining then
    perform settle.fail(409, 'refund_exceeds_payment', format(
      'refund of %s exceeds what remains refundable on order %s: %s of %s %s',
      p_amount, p_order.id, v_remaining, p_order.amount, p_order.currency));
  end if;
  if p_order.gateway_payment_id is null then
    perform settle.fail(409, 'order_not_refundable', 'the order has no captured payment to refund');
  end if;
  if p_order.purpose = 'wallet_topup' then
    select * into v_wallet from public.wallets
    where account_id = p_order.account_id and currency = p_order.currency
    for update;
    if v_wallet.id is null or v_wallet.balance < p_amount then
      perform settle.fail(409, 'insufficient_funds', format(
        'refunding %s %s would take the wallet below zero (balance %s)',
        p_amount, p_order.currency, coalesce(v_wallet.balance, 0)));
    end if;
  end if;

  insert into public.refunds (order_id, account_id, gateway, gateway_refund_id, gateway_payment_id,
    amount, currency, status, source, reason, idempotency_key, request_hash, requested_by,
    processed_at, failed_at)
  values (p_order.id, p_order.account_id, p_order.gateway, p_gateway_refund_id,
    p_order.gateway_payment_id, p_amount, p_order.currency, 'pending', p_source, left(p_reason, 500),
    p_idempotency_key, p_request_hash, p_requested_by, null, null)
  returning * into v_refund;

  update public.orders
  set amount_refunded = amount_refunded + p_amount,
      status = settle.refunded_status(amount, amount_refunded + p_amount)
  where id = p_order.id;

  perform settle.post_refund_transaction(p_order, 'refund:' || v_refund.id,
    p_order.purpose || ' refund via ' || p_order.gateway, p_amount);

  if p_status <> 'pending' then
    v_refund := settle.transition_refund(v_refund.id, p_status, null);
  end if;
  return v_refund;
end
$$;

-- Moves a refund's status. Failing reverses it: the order's refunded amount goes back down
-- and a reversal transaction returns the money (to the wallet, for a top-up).
create function settle.transition_refund(p_refund_id uuid, p_status text, p_failure_reason text)
returns public.refunds
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
  v_order public.orders;
begin
  if p_status is null or p_status not in ('pending', 'processed', 'failed') then
    perform settle.fail(400, 'invalid_request', 'unknown refund status ' || coalesce(p_status, 'null'));
  end if;
  select * into v_refund from public.refunds where id = p_refund_id for update;
  if v_refund.status = p_status or v_refund.status = 'failed'
     or (v_refund.status = 'processed' and p_status = 'pending') then
    return v_refund; -- already there, final, or an older state arriving late
  end if;
  if p_status = 'processed' then
    update public.refunds set status = 'processed', processed_at = now()
    where id = p_refund_id returning * into v_refund;
    return v_refund;
  elsif p_status <> 'failed' then
    return v_refund; -- pending: nothing moves
  end if;

  select * into v_order from public.orders where id = v_refund.order_id for update;
  update public.refunds
  set status = 'failed', failed_at = now(), failure_reason = left(coalesce(p_failure_reason, 'failed'), 1000)
  where id = p_refund_id returning * into v_refund;
  update public.orders
  set amount_refunded = amount_refunded - v_refund.amount,
      status = settle.refunded_status(amount, amount_refunded - v_refund.amount)
  where id = v_order.id;
  perform settle.post_refund_transaction(v_order, 'refund_reversed:' || v_refund.id,
    'failed refund returned', -v_refund.amount);
  return v_refund;
end
$$;

-- The API path, as the service role: counts the refund (status pending) before the gateway is
-- called. With an idempotency key the same request returns the same refund ({"replayed": true})
-- and a different request under that key is a 409.
create function settle.create_refund(
  p_order_id uuid, p_amount bigint, p_reason text, p_idempotency_key text, p_request_hash text,
  p_requested_by uuid default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
  v_refund public.refunds;
begin
  select * into v_order from public.orders where id = p_order_id for update;
  if v_order.id is null then
    perform settle.fail(404, 'not_found', 'order not found');
  end if;
  if p_idempotency_key is not null then
    select * into v_refund from public.refunds
    where order_id = p_order_id and idempotency_key = p_idempotency_key;
    if v_refund.id is not null then
      if v_refund.request_hash is distinct from p_request_hash then
        perform settle.fail(409, 'idempotency_conflict',
          'this Idempotency-Key was used with a different request');
      end if;
      return jsonb_build_object('refund', to_jsonb(v_refund), 'replayed', true);
    end if;
  end if;
  v_refund := settle.insert_refund(v_order, coalesce(p_amount, v_order.amount - v_order.amount_refunded),
    'pending', 'api', p_reason, null, p_idempotency_key, p_request_hash, p_requested_by);
  return jsonb_build_object('refund', to_jsonb(v_refund), 'replayed', false);
end
$$;

-- The same as the signed-in user: only an owner of the order's account may refund it. Another
-- account's order is simply not found; a member who is not an owner is forbidden.
create function settle.request_refund(
  p_order_id uuid, p_amount bigint, p_reason text, p_idempotency_key text, p_request_hash text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_account uuid;
begin
  if v_uid is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  select account_id into v_account from public.orders where id = p_order_id;
  if v_account is null or not settle.is_member(v_account) then
    perform settle.fail(404, 'not_found', 'order not found');
  end if;
  if not settle.has_role_on_account(v_account, 'owner') then
    perform settle.fail(403, 'forbidden', 'only an owner of the account can refund its orders');
  end if;
  return settle.create_refund(p_order_id, p_amount, p_reason, p_idempotency_key, p_request_hash, v_uid);
end
$$;

-- What the gateway answered to our refund request.
create function settle.record_refund_result(
  p_refund_id uuid, p_gateway_refund_id text, p_status text, p_failure_reason text default null,
  p_gateway_error text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
begin
  select * into v_refund from public.refunds where id = p_refund_id for update;
  if v_refund.id is null then
    perform settle.fail(404, 'not_found', 'refund not found');
  end if;
  update public.refunds
  set gateway_refund_id = coalesce(gateway_refund_id, p_gateway_refund_id),
      gateway_attempts = gateway_attempts + 1,
      last_gateway_error = left(p_gateway_error, 500)
  where id = p_refund_id returning * into v_refund;
  if p_status is not null then
    v_refund := settle.transition_refund(p_refund_id, p_status, p_failure_reason);
  end if;
  return to_jsonb(v_refund);
end
$$;

-- Refund webhooks (Razorpay refund.*, Stripe refund.*). Converges with the API path: the event
-- finds the refund by its gateway id, else by the settle_refund_id we sent in notes/metadata,
-- else it is a refund made at the gateway (dashboard) and is counted here, within the same bounds.
-- p_effect: {action: refund, gateway_refund_id, gateway_payment_id, gateway_order_id, amount,
-- currency, status pending|processed|failed, settle_refund_id, failure_reason}.
create function settle.apply_refund_event(p_gateway text, p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
  v_order public.orders;
  v_gateway_refund_id text := p_effect ->> 'gateway_refund_id';
  v_status text := p_effect ->> 'status';
  v_amount bigint := (p_effect ->> 'amount')::bigint;
  v_settle_id uuid;
  v_before text;
begin
  if v_gateway_refund_id is null or v_status is null
     or v_status not in ('pending', 'processed', 'failed') then
    return jsonb_build_object('outcome', 'ignored');
  end if;
  begin
    v_settle_id := (p_effect ->> 'settle_refund_id')::uuid;
  exception when invalid_text_representation then
    v_settle_id := null;
  end;

  select * into v_refund from public.refunds
  where gateway = p_gateway and gateway_refund_id = v_gateway_refund_id for update;
  if v_refund.id is null and v_settle_id is not null then
    select * into v_refund from public.refunds
    where id = v_settle_id and gateway = p_gateway and gateway_refund_id is null for update;
  end if;

  if v_refund.id is null then
    -- Not one of ours (yet): find the order by the payment it refunds.
    select * into v_order from public.orders
    where gateway = p_gateway and (
      gateway_payment_id = p_effect ->> 'gateway_payment_id'
      or (p_effect ->> 'gateway_order_id' is not null and gateway_order_id = p_effect ->> 'gateway_order_id'))
    order by (gateway_payment_id = p_effect ->> 'gateway_payment_id') desc nulls last
    limit 1
    for update;
    if v_order.id is null then
      return jsonb_build_object('outcome', 'unknown_order');
    end if;
    -- Under the order lock: a concurrent delivery may have linked or counted it meanwhile.
    select * into v_refund from public.refunds
    where gateway = p_gateway and gateway_refund_id = v_gateway_refund_id for update;
    if v_refund.id is null then
      -- Our own request whose answer has not been recorded yet, matched by amount.
      select * into v_refund from public.refunds
      where order_id = v_order.id and gateway_refund_id is null and status = 'pending'
        and amount = v_amount and source = 'api'
      order by created_at limit 1 for update;
    end if;
    if v_refund.id is null then
      if v_status = 'failed' then
        return jsonb_build_object('outcome', 'no_effect', 'order_id', v_order.id,
          'detail', 'a failed refund settle never counted');
      end if;
      if upper(p_effect ->> 'currency') is distinct from v_order.currency or v_amount is null
         or v_amount <= 0 or v_amount > v_order.amount - v_order.amount_refunded
         or v_order.status not in ('paid', 'partially_refunded') then
        return jsonb_build_object('outcome', 'mismatch', 'order_id', v_order.id, 'status', v_order.status,
          'detail', format('gateway refund %s of %s %s does not fit order %s (%s, %s of %s refunded)',
            v_gateway_refund_id, v_amount, upper(p_effect ->> 'currency'), v_order.id, v_order.status,
            v_order.amount_refunded, v_order.amount));
      end if;
      if v_order.purpose = 'wallet_topup' and coalesce((select balance from public.wallets
          where account_id = v_order.account_id and currency = v_order.currency), 0) < v_amount then
        return jsonb_build_object('outcome', 'mismatch', 'order_id', v_order.id, 'status', v_order.status,
          'detail', format('gateway refund %s of %s %s exceeds the wallet balance', v_gateway_refund_id,
            v_amount, v_order.currency));
      end if;
      v_refund := settle.insert_refund(v_order, v_amount, v_status, 'gateway',
        'refunded at the gateway', v_gateway_refund_id, null, null, null);
      return jsonb_build_object('outcome', 'applied', 'order_id', v_order.id, 'refund_id', v_refund.id);
    end if;
  end if;

  if v_amount is not null and v_amount <> v_refund.amount then
    return jsonb_build_object('outcome', 'mismatch', 'order_id', v_refund.order_id,
      'detail', format('gateway refund %s is %s, settle counted %s', v_gateway_refund_id, v_amount,
        v_refund.amount));
  end if;
  if v_refund.gateway_refund_id is null then
    update public.refunds set gateway_refund_id = v_gateway_refund_id where id = v_refund.id
    returning * into v_refund;
  end if;
  -- A processed event arriving after failed is an older state delivered late (events are not
  -- ordered; Stripe fails a succeeded refund): failed is final, the transition is a no-op.
  v_before := v_refund.status;
  v_refund := settle.transition_refund(v_refund.id, v_status, p_effect ->> 'failure_reason');
  return jsonb_build_object(
    'outcome', case when v_refund.status = v_before then 'no_effect' else 'applied' end,
    'order_id', v_refund.order_id, 'refund_id', v_refund.id, 'status', v_refund.status);
end
$$;

-- Section - webhook ingestion that survives a failing effect
alter table public.webhook_events
  add column kind text,
  add column failure_code text,
  add column failure_reason text,
  add column effect jsonb,
  add column attempts integer not null default 1;
create index webhook_events_failed_idx on public.webhook_events (received_at) where outcome = 'failed';
comment on column public.webhook_events.effect is 'The normalized non-payment effect (payment methods, refunds), kept so a failed event can be retried.';

-- The dispatch from a normalized event to the SQL that applies it; shared by ingestion and
-- by reconciliation's retry of failed events.
create function settle.apply_webhook_effect(
  p_gateway text, p_kind text, p_gateway_order_id text, p_gateway_payment_id text,
  p_amount bigint, p_currency text, p_failure_code text, p_failure_reason text, p_effect jsonb
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  if p_effect is not null then
    if p_effect ->> 'action' = 'refund' then
      return settle.apply_refund_event(p_gateway, p_effect);
    end if;
    return settle.apply_payment_method_event(p_effect);
  elsif p_kind is null or p_kind not in ('authorized', 'captured', 'failed') or p_gateway_order_id is null then
    return jsonb_build_object('outcome', 'ignored');
  end if;
  return settle.apply_payment(p_gateway, p_kind, p_gateway_order_id, p_gateway_payment_id,
    p_amount, p_currency, p_failure_code, p_failure_reason);
end
$$;

-- As before (stored once per event, applied in the same transaction), but an effect that raises
-- is rolled back alone and the event is stored with outcome 'failed' and the error, so the
-- gateway gets its 200 and reconciliation retries the stored event.
create or replace function settle.ingest_webhook(
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

  begin
    v_result := settle.apply_webhook_effect(p_gateway, p_kind, p_gateway_order_id,
      p_gateway_payment_id, p_amount, p_currency, p_failure_code, p_failure_reason, p_effect);
  exception when others then
    v_result := jsonb_build_object('outcome', 'failed', 'detail', left(sqlerrm, 1000));
  end;

  insert into public.webhook_events (gateway, event_id, event_type, gateway_order_id,
    gateway_payment_id, amount, currency, raw_body, occurred_at, outcome, order_id, detail,
    processed_at, kind, failure_code, failure_reason, effect)
  values (p_gateway, p_event_id, p_event_type, p_gateway_order_id, p_gateway_payment_id,
    p_amount, upper(p_currency), p_raw_body, p_occurred_at, v_result ->> 'outcome',
    (v_result ->> 'order_id')::uuid, v_result ->> 'detail', now(), p_kind,
    left(p_failure_code, 200), left(p_failure_reason, 1000), p_effect);
  return v_result || jsonb_build_object('duplicate', false);
end
$$;

-- Section - privileges
-- Supabase's default privileges grant new public tables to anon and authenticated: take them back.
revoke all on public.subscriptions, public.subscription_periods, public.refunds from anon, authenticated;
grant select on public.subscriptions, public.subscription_periods, public.refunds to authenticated;
grant all on public.subscriptions, public.subscription_periods, public.refunds to service_role;
revoke execute on all functions in schema settle from public;
grant execute on function settle.request_refund(uuid, bigint, text, text, text),
  settle.cancel_subscription(uuid, boolean) to authenticated;
grant execute on all functions in schema settle to service_role;
