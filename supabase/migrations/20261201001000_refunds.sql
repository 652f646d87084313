-- Refunds: money returned on a paid order, counted against it before the gateway is asked,
-- posted to the ledger once, and reversed if the refund fails; who may refund what (the refund
-- policy); the API path for users and operators. Refunds the gateway made on its own (its
-- dashboard, a webhook settle did not expect) are the gateway_refunds file's.
--
-- A gateway refund event is linked to a settle refund only through identity: the gateway refund
-- id the API returned or settle's own id (Razorpay refund notes / Stripe metadata
-- settle_refund_id), never by amount. A top-up's wallet that cannot cover a gateway refund is
-- debited to zero and the shortfall goes to the platform receivable
-- (receivable:refund_shortfall, one balance per currency), so the ledger still balances.
--
-- The refund policy: users refund top-ups within the unspent balance, products and plans within
-- a per-plan/product window, plans only for the unused share of the period (a partial refund
-- shortens it); the service role may refund any paid order. Revoking a fully refunded period
-- takes only its remaining time, never a newer period's (subscriptions file).

-- Section - refunds
create table public.refunds (
  id uuid primary key default gen_random_uuid(),
  order_id uuid not null references public.orders (id),
  account_id uuid not null references public.accounts (id),
  gateway text not null check (gateway in ('razorpay', 'stripe', 'paypal', 'wallet')),
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
  origin text generated always as (
    case when source = 'api' then 'settle' else 'gateway' end) stored,
  shortfall bigint not null default 0,
  period_cut interval,
  unique (gateway, gateway_refund_id),
  unique (order_id, idempotency_key),
  constraint refunds_shortfall_check check (shortfall >= 0 and shortfall <= amount),
  constraint refunds_shortfall_gateway_check check (shortfall = 0 or source = 'gateway'),
  constraint refunds_gateway_origin_requester_check check (source = 'api' or requested_by is null)
);
alter table public.refunds enable row level security;
comment on table public.refunds is 'Money returned on a paid order. pending and processed refunds count against the order (orders.amount_refunded); a failed one is reversed.';
comment on column public.refunds.origin is 'settle: asked through settle''s API (source api); gateway: made at the gateway (its dashboard or API) and learned from its webhooks (source gateway). Gateway-origin refunds have no requester.';
comment on column public.refunds.shortfall is 'The part of a gateway-origin top-up refund the wallet could not cover, posted to receivable:refund_shortfall (the platform is owed it).';
comment on column public.refunds.period_cut is 'Time a user''s partial plan refund took from the order''s subscription period; given back if the refund fails.';
create index refunds_order_id_idx on public.refunds (order_id);
create index refunds_pending_idx on public.refunds (created_at) where status = 'pending';

create policy "Members can read their accounts' refunds" on public.refunds
  for select to authenticated using (settle.is_member(account_id));

-- A refund's terms are fixed (a period cut, once recorded, too); its status moves pending ->
-- processed | failed, processed -> failed (a card network can still reject a processed refund).
create function settle.guard_refund_update() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.order_id <> old.order_id or new.account_id <> old.account_id or new.gateway <> old.gateway
     or new.amount <> old.amount or new.currency <> old.currency
     or new.gateway_payment_id <> old.gateway_payment_id or new.source <> old.source
     or new.shortfall <> old.shortfall
     or new.idempotency_key is distinct from old.idempotency_key
     or new.request_hash is distinct from old.request_hash
     or (old.period_cut is not null and new.period_cut is distinct from old.period_cut) then
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
create function settle.refunded_status(p_amount bigint, p_refunded bigint) returns text
language sql immutable set search_path = ''
as $$
  select case when p_refunded = 0 then 'paid' when p_refunded < p_amount then 'partially_refunded'
              else 'refunded' end
$$;

-- Section - the refund's money
-- The money of a refund as one keyed ledger transaction: p_amount leaves the order's holder (the
-- wallet for a top-up; for an escrow order its engagement's refund clearing account, where
-- cancellation, the settlement's penalty and a payment to return put the money first;
-- revenue:<purpose> otherwise) for the gateway's clearing account (for a wallet order: back into
-- the wallet), except p_shortfall, which the wallet could not cover and the platform receivable
-- advances.
create function settle.post_refund_transaction(
  p_order public.orders, p_key text, p_description text, p_amount bigint, p_shortfall bigint
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_holder jsonb := case
    when p_order.purpose = 'escrow'
      then jsonb_build_object('system_account', settle.escrow_refund_account(p_order.engagement_id))
    when p_order.purpose = 'wallet_topup'
      then jsonb_build_object('wallet_id', settle.ensure_wallet(p_order.account_id, p_order.currency))
    else jsonb_build_object('system_account', 'revenue:' || p_order.purpose) end;
  v_entries jsonb := '[]'::jsonb;
begin
  if p_amount - p_shortfall <> 0 then
    v_entries := v_entries || jsonb_build_array(v_holder || jsonb_build_object(
      'currency', p_order.currency, 'amount', -(p_amount - p_shortfall)));
  end if;
  if p_shortfall <> 0 then
    v_entries := v_entries || jsonb_build_array(jsonb_build_object(
      'system_account', 'receivable:refund_shortfall', 'currency', p_order.currency,
      'amount', -p_shortfall));
  end if;
  perform settle.post_transaction('refund', p_key, p_order.id, p_description,
    v_entries || jsonb_build_array(
      case when p_order.gateway = 'wallet'
        then jsonb_build_object('wallet_id', settle.ensure_wallet(p_order.account_id, p_order.currency))
        else jsonb_build_object('system_account', 'gateway:' || p_order.gateway)
      end || jsonb_build_object('currency', p_order.currency, 'amount', p_amount)));
end
$$;

-- The four-argument form (no shortfall) stays for callers that post by amount.
create function settle.post_refund_transaction(
  p_order public.orders, p_key text, p_description text, p_amount bigint
) returns void
language sql security definer set search_path = ''
as $$ select settle.post_refund_transaction(p_order, p_key, p_description, p_amount, 0::bigint) $$;

-- A failed refund's reversal: exactly the refund's own posting, negated (wallet, receivable
-- and gateway each get back what they gave), once under refund_reversed:<id>.
create function settle.reverse_refund_transaction(p_refund public.refunds) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_entries jsonb;
begin
  select jsonb_agg(case when e.wallet_id is not null
      then jsonb_build_object('wallet_id', e.wallet_id)
      else jsonb_build_object('system_account', e.system_account) end
    || jsonb_build_object('currency', e.currency, 'amount', -e.amount) order by e.id)
  into v_entries
  from public.ledger_transactions t join public.ledger_entries e on e.transaction_id = t.id
  where t.idempotency_key = 'refund:' || p_refund.id;
  perform settle.post_transaction('refund', 'refund_reversed:' || p_refund.id, p_refund.order_id,
    'failed refund returned', v_entries);
end
$$;

-- Section - the refund policy
-- The length a plan order's period was bought with, in microseconds: its length now plus the
-- time its users' partial refunds took back.
create function settle.original_period_us(p_period public.subscription_periods) returns bigint
language sql stable security definer set search_path = ''
as $$
  select settle.interval_us(p_period.period_start, p_period.period_end + coalesce((
    select sum(r.period_cut) from public.refunds r
    where r.order_id = p_period.order_id and r.status <> 'failed' and r.period_cut is not null),
    interval '0'))
$$;

-- What the buyer may still refund of a paid order themselves, and why not more. Top-ups: all
-- that remains (the wallet check in insert_refund bounds it by the unspent balance). Products:
-- all that remains inside the window. Plans: inside the window, the unused share of the
-- order's period, floor(amount * unused / bought length), bounded by what remains.
create function settle.user_refund_allowance(p_order public.orders)
returns table (refundable bigint, window_ends_at timestamptz, reason text)
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_days integer;
  v_period public.subscription_periods;
  v_sub public.subscriptions;
  v_now timestamptz := now();
  v_unused bigint;
  v_len bigint;
begin
  if p_order.purpose = 'wallet_topup' then
    return query select p_order.amount - p_order.amount_refunded, null::timestamptz, null::text;
    return;
  end if;
  v_days := case p_order.purpose
    when 'plan' then (select refund_window_days from public.plans where id = p_order.plan_id)
    else (select refund_window_days from public.products where id = p_order.product_id) end;
  window_ends_at := p_order.paid_at + make_interval(days => coalesce(v_days, 14));
  if v_now > window_ends_at then
    return query select 0::bigint, window_ends_at, 'the refund window has ended';
    return;
  end if;
  if p_order.purpose = 'product' then
    return query select p_order.amount - p_order.amount_refunded, window_ends_at, null::text;
    return;
  end if;
  select * into v_period from public.subscription_periods where order_id = p_order.id;
  select * into v_sub from public.subscriptions where id = v_period.subscription_id;
  if v_period.id is null or v_period.revoked_at is not null or v_sub.status is distinct from 'active' then
    return query select 0::bigint, window_ends_at, 'the plan period is not active';
    return;
  end if;
  v_len := settle.original_period_us(v_period);
  v_unused := greatest(0, settle.interval_us(greatest(v_now, v_period.period_start),
    least(v_period.period_end, v_sub.current_period_end)));
  -- The order's price bought v_len; time a user's refund took back is no longer unused.
  return query select least(div(p_order.amount::numeric * v_unused, v_len)::bigint,
    p_order.amount - p_order.amount_refunded), window_ends_at, 'only the unused share of the period';
end
$$;

-- The policy for a signed-in user: a 409 refund_not_allowed saying what they may refund.
create function settle.check_user_refund(p_order public.orders, p_amount bigint) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_allowance record;
begin
  select * into v_allowance from settle.user_refund_allowance(p_order);
  if p_amount > v_allowance.refundable then
    perform settle.fail(409, 'refund_not_allowed', format(
      'you may refund at most %s %s of this %s order (%s%s); an operator can refund more',
      v_allowance.refundable, p_order.currency, p_order.purpose, v_allowance.reason,
      case when v_allowance.window_ends_at is not null
        then ', window ends ' || to_char(v_allowance.window_ends_at at time zone 'UTC',
          'YYYY-MM-DD"T"HH24:MI:SS"Z"') else '' end));
  end if;
end
$$;

-- A user's partial refund of a plan order takes the time it paid back: ceil(bought length *
-- amount / price), from the end of the order's period. Returns the time taken (the refund
-- records it in period_cut).
create function settle.cut_subscription_period(p_order public.orders, p_amount bigint)
returns interval
language plpgsql security definer set search_path = ''
as $$
declare
  v_period public.subscription_periods;
  v_len bigint;
  v_cut bigint;
begin
  perform settle.lock_account(p_order.account_id);
  select * into v_period from public.subscription_periods where order_id = p_order.id;
  if v_period.id is null or v_period.revoked_at is not null then
    return null;
  end if;
  v_len := settle.original_period_us(v_period);
  -- Ceil, but a period keeps at least one microsecond (its check); the full refund revokes it.
  v_cut := div(p_amount::numeric * v_len + p_order.amount - 1, p_order.amount)::bigint;
  v_cut := least(v_cut, settle.interval_us(v_period.period_start, v_period.period_end) - 1);
  if v_cut <= 0 then
    return null;
  end if;
  update public.subscription_periods set period_end = period_end - settle.us_interval(v_cut)
  where id = v_period.id;
  perform settle.shift_subscription_time(v_period, -settle.us_interval(v_cut));
  return settle.us_interval(v_cut);
end
$$;

-- A failed partial plan refund gives the time it took back: to the period's end and, while the
-- subscription is active, to its end; a subscription the cut had ended restarts with it.
create function settle.restore_subscription_cut(p_order_id uuid, p_cut interval) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_period public.subscription_periods;
  v_sub public.subscriptions;
begin
  select * into v_period from public.subscription_periods where order_id = p_order_id;
  if v_period.id is null or v_period.revoked_at is not null or p_cut is null then
    return;
  end if;
  perform settle.lock_account(v_period.account_id);
  select * into v_sub from public.subscriptions where id = v_period.subscription_id for update;
  if v_sub.status = 'active' and v_sub.current_period_end > now() then
    update public.subscription_periods set period_end = period_end + p_cut where id = v_period.id;
    update public.subscription_periods
    set period_start = period_start + p_cut, period_end = period_end + p_cut
    where subscription_id = v_period.subscription_id and id <> v_period.id
      and revoked_at is null and period_start >= v_period.period_end;
    update public.subscriptions set current_period_end = current_period_end + p_cut
    where id = v_sub.id;
  else
    update public.subscription_periods set period_start = now(), period_end = now() + p_cut
    where id = v_period.id;
    update public.subscriptions
    set plan_id = v_period.plan_id, status = 'active', current_period_start = now(),
        current_period_end = now() + p_cut, cancel_at_period_end = false, canceled_at = null
    where id = v_sub.id;
  end if;
end
$$;

-- Section - counting refunds
-- Counts a new refund against its (locked) order and posts the money movement. The bound
-- (never more than was paid) is orders.amount_refunded <= amount, checked here with a clear
-- error and by the table's constraint whatever the path. A top-up refund through settle debits
-- the wallet and is refused before anything is written if the wallet cannot cover it; one the
-- gateway already made (source gateway) cannot be refused, so the wallet gives what it has and
-- the rest is the shortfall the receivable advances.
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
  v_shortfall bigint := 0;
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
    perform settle.ensure_wallet(p_order.account_id, p_order.currency);
    select * into v_wallet from public.wallets
    where account_id = p_order.account_id and currency = p_order.currency
    for update;
    if p_source = 'gateway' then
      v_shortfall := greatest(0, p_amount - v_wallet.balance);
    elsif v_wallet.balance < p_amount then
      perform settle.fail(409, 'insufficient_funds', format(
        'refunding %s %s would take the wallet below zero (balance %s)',
        p_amount, p_order.currency, coalesce(v_wallet.balance, 0)));
    end if;
  end if;

  insert into public.refunds (order_id, account_id, gateway, gateway_refund_id, gateway_payment_id,
    amount, currency, status, source, reason, idempotency_key, request_hash, requested_by,
    processed_at, failed_at, shortfall)
  values (p_order.id, p_order.account_id, p_order.gateway, p_gateway_refund_id,
    p_order.gateway_payment_id, p_amount, p_order.currency, 'pending', p_source, left(p_reason, 500),
    p_idempotency_key, p_request_hash, case when p_source = 'api' then p_requested_by end,
    null, null, v_shortfall)
  returning * into v_refund;

  update public.orders
  set amount_refunded = amount_refunded + p_amount,
      status = settle.refunded_status(amount, amount_refunded + p_amount)
  where id = p_order.id;

  perform settle.post_refund_transaction(p_order, 'refund:' || v_refund.id,
    p_order.purpose || ' refund via ' || p_order.gateway, p_amount, v_shortfall);

  if p_status <> 'pending' then
    v_refund := settle.transition_refund(v_refund.id, p_status, null);
  end if;
  return v_refund;
end
$$;

-- Moves a refund's status. Failing reverses it: the order's refunded amount goes back down, its
-- posting is returned, a plan period cut by it is given back, and gateway refunds held because
-- the order had no room left are applied now that it has (gateway_refunds file).
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
  perform settle.reverse_refund_transaction(v_refund);
  if v_refund.period_cut is not null then
    perform settle.restore_subscription_cut(v_order.id, v_refund.period_cut);
  end if;
  perform settle.apply_held_gateway_refunds(v_order.id);
  return v_refund;
end
$$;

-- Section - the API path
-- As the service role (p_requested_by null: an operator may refund any paid order) or for a
-- signed-in user through request_refund (p_requested_by set: the refund policy applies, under
-- the order's lock so concurrent requests cannot each take the same allowance). An order with
-- an open chargeback is refused first (settle.refuse_refund_of_disputed, disputes file): for a
-- top-up, a withdrawn wallet would otherwise answer insufficient_funds. Counts the refund
-- (status pending) before the gateway is called. With an idempotency key the same request
-- returns the same refund ({"replayed": true}); another request under it is a 409.
create function settle.create_refund(
  p_order_id uuid, p_amount bigint, p_reason text, p_idempotency_key text, p_request_hash text,
  p_requested_by uuid default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
  v_refund public.refunds;
  v_amount bigint;
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
  -- An open chargeback first: every other answer (the bound, the wallet, the policy) would
  -- send the caller after the wrong cause.
  perform settle.refuse_refund_of_disputed(v_order.id);
  v_amount := coalesce(p_amount, v_order.amount - v_order.amount_refunded);
  -- The policy binds users on plans and products; a top-up's is the wallet check (unspent
  -- balance) in insert_refund, whose errors (the bound, the wallet) come first.
  if p_requested_by is not null and v_order.status in ('paid', 'partially_refunded')
     and v_order.purpose <> 'wallet_topup' and v_amount <= v_order.amount - v_order.amount_refunded then
    -- A user who names no amount of a plan order gets its unused share.
    if p_amount is null and v_order.purpose = 'plan' then
      v_amount := least(v_amount, (select refundable from settle.user_refund_allowance(v_order)));
      v_amount := greatest(v_amount, 1);
    end if;
    perform settle.check_user_refund(v_order, v_amount);
  end if;
  v_refund := settle.insert_refund(v_order, v_amount, 'pending', 'api', p_reason, null,
    p_idempotency_key, p_request_hash, p_requested_by);
  -- A user's partial plan refund shortens the period it paid for, in this transaction (a full
  -- one revokes the period through the orders trigger).
  if p_requested_by is not null and v_order.purpose = 'plan'
     and v_order.amount_refunded + v_amount < v_order.amount then
    update public.refunds set period_cut = settle.cut_subscription_period(v_order, v_amount)
    where id = v_refund.id returning * into v_refund;
  end if;
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

-- What the gateway answered to our refund request. First the per-payment advisory lock
-- settle.apply_webhook_effect takes for refund events (class 1399157590, the same key:
-- gateway || '/refunds-of/' || the payment), before any row lock: otherwise the answer (refund
-- row, then order) and a webhook listing a dashboard refund before this one (order, then refund
-- row) lock in opposite orders and one of them dies of a deadlock. A refusal (failed, no gateway
-- refund id) never fails a refund the gateway is known to have made (it carries a gateway refund
-- id: a webhook with our id linked it first): the refused request was a resend of a made refund.
create function settle.record_refund_result(
  p_refund_id uuid, p_gateway_refund_id text, p_status text, p_failure_reason text default null,
  p_gateway_error text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_refund public.refunds;
begin
  -- gateway and gateway_payment_id never change (guard_refund_update): safe to read unlocked.
  select * into v_refund from public.refunds where id = p_refund_id;
  if v_refund.id is null then
    perform settle.fail(404, 'not_found', 'refund not found');
  end if;
  perform pg_advisory_xact_lock(1399157590,
    hashtext(v_refund.gateway || '/refunds-of/' || v_refund.gateway_payment_id));
  select * into v_refund from public.refunds where id = p_refund_id for update;
  update public.refunds
  set gateway_refund_id = coalesce(gateway_refund_id, p_gateway_refund_id),
      gateway_attempts = gateway_attempts + 1,
      last_gateway_error = left(p_gateway_error, 500)
  where id = p_refund_id returning * into v_refund;
  if p_status = 'failed' and p_gateway_refund_id is null and v_refund.gateway_refund_id is not null then
    return to_jsonb(v_refund);
  end if;
  if p_status is not null then
    v_refund := settle.transition_refund(p_refund_id, p_status, p_failure_reason);
  end if;
  return to_jsonb(v_refund);
end
$$;

-- Section - privileges
revoke execute on all functions in schema settle from public;
revoke all on public.refunds from anon, authenticated;
grant select on public.refunds to authenticated;
grant execute on function settle.request_refund(uuid, bigint, text, text, text)
  to authenticated, service_role;
grant execute on function settle.guard_refund_update(), settle.refunded_status(bigint, bigint),
  settle.post_refund_transaction(public.orders, text, text, bigint),
  settle.user_refund_allowance(public.orders),
  settle.insert_refund(public.orders, bigint, text, text, text, text, text, text, uuid),
  settle.transition_refund(uuid, text, text),
  settle.create_refund(uuid, bigint, text, text, text, uuid),
  settle.record_refund_result(uuid, text, text, text, text)
  to service_role;
