-- Subscriptions and entitlements: buying a plan (any gateway, or the wallet) grants a period of
-- the account's one subscription; the account's entitlement (accounts.plan, is_pro) follows it.
-- A refund takes back the time it paid for (refunds file), a chargeback suspends or ends it
-- (disputes file), and periods that ran out lapse. An order's status moves grant, revoke and
-- give back its period through settle.order_effects (orders file).

-- Section - subscriptions
-- One subscription per account. Buying a plan (any gateway, or the wallet) grants one period: it
-- starts the subscription, or extends it from the current period's end while it is active. Each
-- grant is a row in subscription_periods, unique per order, so a duplicate or late event never
-- extends twice.
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
comment on table public.subscriptions is 'status: active (entitled until current_period_end), past_due (the period ended unrenewed), canceled (cancelled, or its purchase refunded).';
create index subscriptions_active_period_end_idx on public.subscriptions (current_period_end)
  where status = 'active';

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
comment on table public.subscription_periods is 'One row per paid plan order: the time it bought. revoked_at is set when the order is fully refunded.';
create index subscription_periods_subscription_id_idx on public.subscription_periods (subscription_id);

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

-- Section - periods
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

-- An interval of exactly p_us microseconds (no floating point on the way).
create function settle.us_interval(p_us bigint) returns interval
language sql immutable set search_path = ''
as $$ select (p_us::text || ' microseconds')::interval $$;

create function settle.interval_us(p_from timestamptz, p_to timestamptz) returns bigint
language sql immutable set search_path = ''
as $$ select ((extract(epoch from p_to) - extract(epoch from p_from)) * 1000000)::bigint $$;

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
-- of its period still ahead (none once it has run out); if that leaves nothing, the
-- subscription ends now. A newer, separately paid period keeps its full length: it moves
-- earlier to start where the revoked time began. A chargeback suspends a period the same way.
create function settle.revoke_subscription_period(p_order_id uuid) returns void
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

-- A full refund that failed (or a dispute won) gives back what its revocation took: the part of
-- the period that was still ahead when it was revoked (revoke leaves the period's bounds as they
-- were), extended from the current period's end while the subscription is active, else
-- restarted from now.
create function settle.reinstate_subscription_period(p_order_id uuid) returns void
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

-- Section - lapsing and cancelling
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

-- Section - privileges
revoke execute on all functions in schema settle from public;
revoke all on public.subscriptions, public.subscription_periods from anon, authenticated;
grant select on public.subscriptions, public.subscription_periods to authenticated;
grant execute on function settle.cancel_subscription(uuid, boolean) to authenticated, service_role;
grant execute on function settle.sync_entitlement(), settle.plan_interval(public.plans),
  settle.grant_subscription_period(uuid), settle.revoke_subscription_period(uuid),
  settle.reinstate_subscription_period(uuid), settle.lapse_subscriptions(timestamptz, integer)
  to service_role;
