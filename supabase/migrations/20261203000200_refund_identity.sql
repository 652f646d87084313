-- Issue 10, sections 2 and 3: refunds are linked by identity, never by amount; who may refund
-- what.
--
-- A gateway refund event is linked to a settle refund only through the gateway refund id the
-- API returned or settle's own id (Razorpay refund notes / Stripe metadata settle_refund_id).
-- Anything else is a refund made outside settle and becomes its own refund row (origin
-- 'gateway') with its ledger posting. When it does not fit the order yet (settle's own request
-- the gateway has not answered, or a refund whose failure is not delivered yet, fills it), it is
-- held (gateway_refund_holds) and applied the moment one of them fails; one that can never fit
-- stays held as a mismatch for an operator. A top-up's wallet that cannot cover a gateway refund
-- is debited to zero and the shortfall goes to the platform receivable
-- (receivable:refund_shortfall, one balance per currency), so the ledger still balances.
--
-- The refund policy: users refund top-ups within the unspent balance, products and plans within
-- a per-plan/product window, plans only for the unused share of the period (a partial refund
-- shortens it); the service role may refund any paid order. Revoking a fully refunded period
-- takes only its remaining time, never a newer period's.

-- Section - refunds: origin, shortfall, the time a user's partial plan refund took
alter table public.refunds
  add column origin text generated always as (
    case when source = 'api' then 'settle' else 'gateway' end) stored,
  add column shortfall bigint not null default 0,
  add column period_cut interval,
  add constraint refunds_shortfall_check check (shortfall >= 0 and shortfall <= amount),
  add constraint refunds_shortfall_gateway_check check (shortfall = 0 or source = 'gateway'),
  add constraint refunds_gateway_origin_requester_check check (source = 'api' or requested_by is null);
comment on column public.refunds.origin is 'settle: asked through settle''s API (source api); gateway: made at the gateway (its dashboard or API) and learned from its webhooks (source gateway). Gateway-origin refunds have no requester.';
comment on column public.refunds.shortfall is 'The part of a gateway-origin top-up refund the wallet could not cover, posted to receivable:refund_shortfall (the platform is owed it).';
comment on column public.refunds.period_cut is 'Time a user''s partial plan refund took from the order''s subscription period; given back if the refund fails.';

-- Section - gateway refunds settle could not apply (yet)
create table public.gateway_refund_holds (
  gateway text not null check (gateway in ('razorpay', 'stripe')),
  gateway_refund_id text not null check (length(gateway_refund_id) between 1 and 255),
  order_id uuid not null references public.orders (id),
  amount bigint,
  currency text,
  status text not null check (status in ('pending', 'processed', 'failed')),
  reason text not null check (reason in ('awaiting_room', 'exceeds_payment', 'currency_mismatch',
    'order_not_refundable', 'invalid_amount', 'failed_uncounted')),
  detail text,
  effect jsonb not null,
  refund_id uuid references public.refunds (id),
  resolved_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (gateway, gateway_refund_id),
  check ((resolved_at is null) or (refund_id is not null or status = 'failed'))
);
alter table public.gateway_refund_holds enable row level security;
create index gateway_refund_holds_open_idx on public.gateway_refund_holds (order_id)
  where resolved_at is null;
comment on table public.gateway_refund_holds is 'Refunds the gateway made that settle has not counted: awaiting_room (refunds settle counts fill the order, so one of them is failing: settle''s own unanswered request, or a failure not delivered yet; applied when one fails), or a mismatch an operator must look at. resolved_at is set when it is counted (refund_id) or failed at the gateway; failed_uncounted remembers a refund whose failure arrived before it was counted, so its older created/processed events never count it.';

-- Section - refund policy
alter table public.plans
  add column refund_window_days integer not null default 14 check (refund_window_days between 0 and 3650);
alter table public.products
  add column refund_window_days integer not null default 14 check (refund_window_days between 0 and 3650);
comment on column public.plans.refund_window_days is 'Days after payment in which the buyer may refund the unused share of the period; after that only an operator (service role) can.';
comment on column public.products.refund_window_days is 'Days after payment in which the buyer may refund the purchase; after that only an operator (service role) can.';

-- An interval of exactly p_us microseconds (no floating point on the way).
create function settle.us_interval(p_us bigint) returns interval
language sql immutable set search_path = ''
as $$ select (p_us::text || ' microseconds')::interval $$;

create function settle.interval_us(p_from timestamptz, p_to timestamptz) returns bigint
language sql immutable set search_path = ''
as $$ select ((extract(epoch from p_to) - extract(epoch from p_from)) * 1000000)::bigint $$;

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

-- Moves the time of an account's subscription by p_delta (negative: takes time away) from the
-- end of p_period on (the caller changes p_period itself): every later period shifts by p_delta,
-- and so does the subscription's end. A subscription left with no time ends now. Runs under the
-- account lock.
create function settle.shift_subscription_time(p_period public.subscription_periods, p_delta interval)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_sub public.subscriptions;
  v_end timestamptz;
begin
  update public.subscription_periods
  set period_start = period_start + p_delta, period_end = period_end + p_delta
  where subscription_id = p_period.subscription_id and id <> p_period.id
    and revoked_at is null and period_start >= p_period.period_end;
  select * into v_sub from public.subscriptions where id = p_period.subscription_id for update;
  if v_sub.status <> 'active' then
    return;
  end if;
  v_end := v_sub.current_period_end + p_delta;
  if v_end <= now() then
    update public.subscriptions
    set status = 'canceled', canceled_at = now(),
        current_period_end = greatest(now(), current_period_start)
    where id = v_sub.id;
  else
    update public.subscriptions set current_period_end = v_end where id = v_sub.id;
  end if;
end
$$;

-- A fully refunded plan purchase takes back only what is left of the time it bought: the part
-- of its period still ahead (none once it has run out). A newer, separately paid period keeps
-- its full length: it moves earlier to start where the revoked time began.
create or replace function settle.revoke_subscription_period(p_order_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_period public.subscription_periods;
  v_sub public.subscriptions;
  v_from timestamptz;
  v_left interval;
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
  if v_sub.status <> 'active' then
    return;
  end if;
  v_from := greatest(now(), v_period.period_start);
  v_left := greatest(interval '0', least(v_period.period_end, v_sub.current_period_end) - v_from);
  if v_left > interval '0' or v_sub.current_period_end <= now() then
    perform settle.shift_subscription_time(v_period, -v_left);
  end if;
end
$$;

-- A full refund that failed gives back what its revocation took: the part of the period that
-- was still ahead when it was revoked (revoke leaves the period's bounds as they were), extended
-- from the current period's end while the subscription is active, else restarted from now.
create or replace function settle.reinstate_subscription_period(p_order_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_period public.subscription_periods;
  v_sub public.subscriptions;
  v_left interval;
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
  v_left := greatest(interval '0', v_period.period_end - greatest(v_period.revoked_at, v_period.period_start));
  select * into v_sub from public.subscriptions where id = v_period.subscription_id;
  if v_left = interval '0' then
    update public.subscription_periods set revoked_at = null where id = v_period.id;
    return;
  elsif v_sub.status = 'active' and v_sub.current_period_end > now() then
    v_start := v_sub.current_period_end;
    v_end := v_start + v_left;
    update public.subscriptions set current_period_end = v_end where id = v_sub.id;
  else
    v_start := now();
    v_end := v_start + v_left;
    update public.subscriptions
    set plan_id = v_period.plan_id, status = 'active', current_period_start = v_start,
        current_period_end = v_end, cancel_at_period_end = false, canceled_at = null
    where id = v_sub.id;
  end if;
  update public.subscription_periods
  set revoked_at = null, period_start = v_start, period_end = v_end
  where id = v_period.id;
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

-- Section - the refund's money
-- The money of a refund as one keyed ledger transaction: p_amount leaves the order's holder
-- (the wallet for a top-up, revenue:<purpose> otherwise) for the gateway's clearing account,
-- except p_shortfall, which the wallet could not cover and the platform receivable advances.
create function settle.post_refund_transaction(
  p_order public.orders, p_key text, p_description text, p_amount bigint, p_shortfall bigint
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_holder jsonb := case when p_order.purpose = 'wallet_topup'
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
    v_entries || jsonb_build_array(jsonb_build_object('system_account', 'gateway:' || p_order.gateway,
      'currency', p_order.currency, 'amount', p_amount)));
end
$$;

-- The four-argument form (no shortfall) stays for callers that reverse by amount.
create or replace function settle.post_refund_transaction(
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

create or replace function settle.guard_refund_update() returns trigger
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

-- Counts a new refund against its (locked) order and posts the money movement. The bound
-- (never more than was paid) is orders.amount_refunded <= amount, checked here with a clear
-- error and by the table's constraint whatever the path. A top-up refund through settle debits
-- the wallet and is refused before anything is written if the wallet cannot cover it; one the
-- gateway already made (source gateway) cannot be refused, so the wallet gives what it has and
-- the rest is the shortfall the receivable advances.
create or replace function settle.insert_refund(
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
-- the order had no room left are applied now that it has.
create or replace function settle.transition_refund(p_refund_id uuid, p_status text, p_failure_reason text)
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
-- the order's lock so concurrent requests cannot each take the same allowance). Counts the
-- refund (status pending) before the gateway is called. With an idempotency key the same
-- request returns the same refund ({"replayed": true}); another request under it is a 409.
create or replace function settle.create_refund(
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

-- What the gateway answered to our refund request. A refusal (failed, no gateway refund id)
-- never fails a refund the gateway is known to have made (it carries a gateway refund id: a
-- webhook with our id linked it first): the refused request was a resend of a made refund.
create or replace function settle.record_refund_result(
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
  if p_status = 'failed' and p_gateway_refund_id is null and v_refund.gateway_refund_id is not null then
    return to_jsonb(v_refund);
  end if;
  if p_status is not null then
    v_refund := settle.transition_refund(p_refund_id, p_status, p_failure_reason);
  end if;
  return to_jsonb(v_refund);
end
$$;

-- Section - refund webhooks
-- Holds a gateway refund settle cannot count (yet), or updates the hold with a later state
-- (failed is final; processed is never set back to pending). Returns the webhook outcome.
create function settle.hold_gateway_refund(
  p_gateway text, p_order public.orders, p_effect jsonb, p_reason text, p_detail text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_status text := p_effect ->> 'status';
begin
  insert into public.gateway_refund_holds (gateway, gateway_refund_id, order_id, amount, currency,
    status, reason, detail, effect)
  values (p_gateway, p_effect ->> 'gateway_refund_id', p_order.id, (p_effect ->> 'amount')::bigint,
    upper(p_effect ->> 'currency'), v_status, p_reason, left(p_detail, 1000), p_effect)
  on conflict (gateway, gateway_refund_id) do update
  set status = case when gateway_refund_holds.status = 'failed' then 'failed'
                    when gateway_refund_holds.status = 'processed' and excluded.status = 'pending'
                      then 'processed'
                    else excluded.status end,
      reason = excluded.reason, detail = excluded.detail,
      effect = case when gateway_refund_holds.status = 'failed'
                      or (gateway_refund_holds.status = 'processed' and excluded.status = 'pending')
                    then gateway_refund_holds.effect else excluded.effect end,
      updated_at = now()
  where gateway_refund_holds.resolved_at is null;
  return jsonb_build_object(
    'outcome', case when p_reason = 'awaiting_room' then 'applied' else 'mismatch' end,
    'held', p_reason, 'order_id', p_order.id, 'detail', p_detail);
end
$$;

-- A refund the gateway made that is not one of settle's: counted as its own row (origin
-- gateway) when it fits the order, else held. Runs under the order's lock.
create function settle.apply_gateway_origin_refund(p_gateway text, p_order public.orders, p_effect jsonb)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_id text := p_effect ->> 'gateway_refund_id';
  v_amount bigint := (p_effect ->> 'amount')::bigint;
  v_status text := p_effect ->> 'status';
  v_currency text := upper(p_effect ->> 'currency');
  v_refund public.refunds;
  v_detail text;
begin
  -- Events are not ordered: a failure that arrives before the refund was counted is remembered
  -- (resolved at once), so its older created/processed events never count it afterwards.
  if v_status = 'failed' then
    insert into public.gateway_refund_holds (gateway, gateway_refund_id, order_id, amount, currency,
      status, reason, detail, effect, resolved_at)
    values (p_gateway, v_id, p_order.id, v_amount, v_currency, 'failed', 'failed_uncounted',
      'failed at the gateway before settle counted it', p_effect, now())
    on conflict (gateway, gateway_refund_id) do update
    set status = 'failed', resolved_at = coalesce(gateway_refund_holds.resolved_at, now()), updated_at = now();
    return jsonb_build_object('outcome', 'no_effect', 'order_id', p_order.id,
      'detail', 'a failed refund settle never counted');
  elsif exists (select 1 from public.gateway_refund_holds where gateway = p_gateway
                and gateway_refund_id = v_id and status = 'failed') then
    return jsonb_build_object('outcome', 'no_effect', 'order_id', p_order.id,
      'detail', 'an older state of a refund that failed at the gateway');
  end if;
  v_detail := format('gateway refund %s of %s %s on order %s (%s, %s of %s refunded)', v_id,
    v_amount, v_currency, p_order.id, p_order.status, p_order.amount_refunded, p_order.amount);
  if v_currency is distinct from p_order.currency then
    return settle.hold_gateway_refund(p_gateway, p_order, p_effect, 'currency_mismatch', v_detail);
  elsif v_amount is null or v_amount <= 0 then
    return settle.hold_gateway_refund(p_gateway, p_order, p_effect, 'invalid_amount', v_detail);
  elsif p_order.status not in ('paid', 'partially_refunded', 'refunded') then
    return settle.hold_gateway_refund(p_gateway, p_order, p_effect, 'order_not_refundable', v_detail);
  end if;
  if v_amount > p_order.amount - p_order.amount_refunded then
    -- The gateway never refunds more than it captured, so what fills the order now will give
    -- way: settle's own request the gateway has not answered (it will be refused), or a refund
    -- whose failure has not arrived yet. Held until then; only more than the whole payment
    -- can never fit.
    return settle.hold_gateway_refund(p_gateway, p_order, p_effect,
      case when v_amount <= p_order.amount then 'awaiting_room' else 'exceeds_payment' end, v_detail);
  end if;
  v_refund := settle.insert_refund(p_order, v_amount, v_status, 'gateway', 'refunded at the gateway',
    v_id, null, null, null);
  update public.gateway_refund_holds set refund_id = v_refund.id, resolved_at = now(), updated_at = now()
  where gateway = p_gateway and gateway_refund_id = v_id and resolved_at is null;
  return jsonb_build_object('outcome', 'applied', 'order_id', p_order.id, 'refund_id', v_refund.id);
end
$$;

-- Held gateway refunds of an order, tried again (oldest first) once it has room.
create function settle.apply_held_gateway_refunds(p_order_id uuid) returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  v_hold public.gateway_refund_holds;
  v_order public.orders;
  v_applied integer := 0;
begin
  for v_hold in
    select * from public.gateway_refund_holds
    where order_id = p_order_id and resolved_at is null
    order by created_at, gateway_refund_id
  loop
    select * into v_order from public.orders where id = p_order_id for update;
    if (settle.apply_gateway_origin_refund(v_hold.gateway, v_order, v_hold.effect)
        ->> 'refund_id') is not null then
      v_applied := v_applied + 1;
    end if;
  end loop;
  return v_applied;
end
$$;

-- Refund webhooks (Razorpay refund.*, Stripe refund.* and the effects of charge.refunded).
-- Converges with the API path by identity only: the event finds settle's refund by its gateway
-- refund id, else by the settle_refund_id settle sent in notes/metadata; anything else is a
-- refund made at the gateway (apply_gateway_origin_refund). Never by amount.
-- p_effect: {action: refund, gateway_refund_id, gateway_payment_id, gateway_order_id, amount,
-- currency, status pending|processed|failed, settle_refund_id, failure_reason}.
create or replace function settle.apply_refund_event(p_gateway text, p_effect jsonb) returns jsonb
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
    -- Not one of ours: find the order by the payment it refunds.
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
    -- Under the order lock: a concurrent delivery may have counted it meanwhile.
    select * into v_refund from public.refunds
    where gateway = p_gateway and gateway_refund_id = v_gateway_refund_id for update;
    if v_refund.id is null then
      return settle.apply_gateway_origin_refund(p_gateway, v_order, p_effect);
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

-- Section - operators: what the platform is owed and what settle could not count
create view public.refund_exceptions with (security_barrier) as
  select 'wallet_shortfall'::text as kind, r.order_id, r.account_id, r.gateway,
    r.gateway_refund_id, r.shortfall as amount, r.currency, r.status,
    format('gateway refund of %s; the wallet covered %s, receivable:refund_shortfall advanced %s',
      r.amount, r.amount - r.shortfall, r.shortfall) as detail, r.created_at
  from public.refunds r where r.shortfall > 0 and r.status <> 'failed'
  union all
  select 'held_' || h.reason, h.order_id, o.account_id, h.gateway, h.gateway_refund_id, h.amount,
    h.currency, h.status, h.detail, h.created_at
  from public.gateway_refund_holds h join public.orders o on o.id = h.order_id
  where h.resolved_at is null;
comment on view public.refund_exceptions is 'For operators (service role): gateway refunds a wallet could not cover (the shortfall the platform is owed, in receivable:refund_shortfall) and gateway refunds settle has not counted (held: awaiting_room until settle''s own unanswered request fails, or a mismatch to resolve by hand).';

-- Section - ledger audit
-- As before, plus (marked "refund identity"): the receivable equals the open shortfalls, and no
-- gateway refund stays uncounted. Longer than 70 lines because it is one query: a union of
-- independent checks, each commented, so it reads top to bottom as the list of invariants.
create or replace function settle.ledger_audit()
returns table (invariant text, subject text, detail text)
language sql stable security definer set search_path = ''
as $$
  -- Double entry: each transaction's entries sum to zero in every currency.
  select 'unbalanced_transaction', e.transaction_id::text,
    format('%s entries sum to %s', e.currency, sum(e.amount))
  from public.ledger_entries e
  group by e.transaction_id, e.currency
  having sum(e.amount) <> 0
  union all
  select 'short_transaction', t.id::text, format('%s entries', count(e.id))
  from public.ledger_transactions t left join public.ledger_entries e on e.transaction_id = t.id
  group by t.id
  having count(e.id) < 2
  union all
  -- A wallet's balance is the sum of its entries.
  select 'wallet_balance_drift', w.id::text,
    format('balance %s, entries sum to %s', w.balance, coalesce(s.total, 0))
  from public.wallets w
  left join (select wallet_id, sum(amount) as total from public.ledger_entries
             where wallet_id is not null group by wallet_id) s on s.wallet_id = w.id
  where w.balance <> coalesce(s.total, 0)
  union all
  select 'negative_balance', w.id::text, format('balance %s %s', w.balance, w.currency)
  from public.wallets w where w.balance < 0
  union all
  -- A paid order is credited exactly once, for its amount; an unpaid one never.
  select case when o.status in ('paid', 'partially_refunded', 'refunded')
              then 'paid_order_not_credited_once' else 'unpaid_order_credited' end,
    o.id::text,
    format('status %s, %s payment postings crediting %s of %s %s', o.status, count(distinct t.id),
      coalesce(sum(e.amount) filter (where e.amount > 0), 0), o.amount, o.currency)
  from public.orders o
  left join public.ledger_transactions t on t.idempotency_key = 'order_paid:' || o.id
  left join public.ledger_entries e on e.transaction_id = t.id
  group by o.id
  having (o.status in ('paid', 'partially_refunded', 'refunded')
          and (count(distinct t.id) <> 1 or coalesce(sum(e.amount) filter (where e.amount > 0), 0) <> o.amount))
      or (o.status not in ('paid', 'partially_refunded', 'refunded') and count(distinct t.id) > 0)
  union all
  -- Refunds never exceed the payment, and the order, its refunds and the ledger agree.
  select 'refunds_exceed_payment', o.id::text,
    format('refunded %s (refund rows %s, ledger %s) of %s %s', o.amount_refunded,
      coalesce(r.counted, 0), coalesce(l.net, 0), o.amount, o.currency)
  from public.orders o
  left join (select order_id, sum(amount) filter (where status <> 'failed') as counted
             from public.refunds group by order_id) r on r.order_id = o.id
  left join (select t.order_id,
               sum(e.amount) filter (where e.amount > 0 and t.idempotency_key like 'refund:%')
               - coalesce(sum(e.amount) filter (where e.amount > 0 and t.idempotency_key like 'refund\_reversed:%'), 0)
               as net
             from public.ledger_transactions t join public.ledger_entries e on e.transaction_id = t.id
             where t.kind = 'refund' group by t.order_id) l on l.order_id = o.id
  where o.amount_refunded > o.amount
     or coalesce(r.counted, 0) > o.amount
     or coalesce(l.net, 0) > o.amount
     or coalesce(r.counted, 0) <> o.amount_refunded
     or coalesce(l.net, 0) <> o.amount_refunded
  union all
  -- refund identity: the platform receivable holds exactly the shortfalls of counted gateway
  -- refunds, per currency (entries are negative: owed to the platform).
  select 'receivable_drift', c.currency,
    format('receivable:refund_shortfall %s, open shortfalls %s', coalesce(le.total, 0), coalesce(rf.total, 0))
  from (select currency from public.ledger_entries where system_account = 'receivable:refund_shortfall'
        union select currency from public.refunds where shortfall > 0) c
  left join (select currency, -sum(amount) as total from public.ledger_entries
             where system_account = 'receivable:refund_shortfall' group by currency) le
    on le.currency = c.currency
  left join (select currency, sum(shortfall) as total from public.refunds
             where status <> 'failed' group by currency) rf on rf.currency = c.currency
  where coalesce(le.total, 0) <> coalesce(rf.total, 0)
  union all
  -- refund identity: a refund the gateway made that settle has not counted.
  select 'gateway_refund_uncounted', h.gateway || ':' || h.gateway_refund_id,
    format('%s (%s, held since %s): %s', h.reason, h.status, h.created_at, h.detail)
  from public.gateway_refund_holds h
  where h.resolved_at is null
$$;
comment on function settle.ledger_audit() is 'Returns every violated ledger invariant (empty = healthy): unbalanced or short transactions, wallet balance drift, negative balances, paid orders not credited exactly once (or unpaid ones credited), refunds exceeding payments or disagreeing with the ledger, the refund receivable disagreeing with the open shortfalls, gateway refunds not counted.';

-- Section - privileges
revoke all on public.gateway_refund_holds, public.refund_exceptions from public, anon, authenticated;
grant all on public.gateway_refund_holds to service_role;
grant select on public.refund_exceptions to service_role, payment_analyst;
revoke execute on function settle.us_interval(bigint), settle.interval_us(timestamptz, timestamptz),
  settle.original_period_us(public.subscription_periods),
  settle.user_refund_allowance(public.orders),
  settle.shift_subscription_time(public.subscription_periods, interval),
  settle.cut_subscription_period(public.orders, bigint),
  settle.restore_subscription_cut(uuid, interval),
  settle.post_refund_transaction(public.orders, text, text, bigint, bigint),
  settle.reverse_refund_transaction(public.refunds),
  settle.check_user_refund(public.orders, bigint),
  settle.hold_gateway_refund(text, public.orders, jsonb, text, text),
  settle.apply_gateway_origin_refund(text, public.orders, jsonb),
  settle.apply_held_gateway_refunds(uuid)
  from public, anon, authenticated;
grant execute on function settle.user_refund_allowance(public.orders),
  settle.apply_held_gateway_refunds(uuid) to service_role;
