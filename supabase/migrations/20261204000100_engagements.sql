-- Marketplace escrow (issue 12), part 1: engagements, their policy, funding through escrow
-- orders, completion with a rating, disputes and cancellation.
--
-- The money model (docs/decisions.md, "Marketplace escrow"): a paid funding order moves the
-- amount from the gateway's clearing account into a house account of the engagement,
-- escrow:<engagement id without dashes>, so it is in neither the payer's nor the payee's wallet
-- and nobody can spend it. Money owed back to the payer (a penalty, a cancellation, a second
-- payment for an engagement already funded) first moves to the engagement's refund clearing
-- account, escrow_refund:<engagement id>, and leaves it only through the refunds machinery (or,
-- for a remainder too small for the gateway to refund, into the payer's wallet). Settlement is
-- the next migration.

-- Section - the split policy
create table public.escrow_policies (
  -- null: the default row, used for every currency without a row of its own.
  currency text unique references public.currencies (code),
  platform_fee_bps integer not null default 1000 check (platform_fee_bps between 0 and 10000),
  penalty_bps_rating_1 integer not null default 5000 check (penalty_bps_rating_1 between 0 and 10000),
  penalty_bps_rating_2 integer not null default 2500 check (penalty_bps_rating_2 between 0 and 10000),
  penalty_bps_rating_3 integer not null default 1000 check (penalty_bps_rating_3 between 0 and 10000),
  penalty_bps_rating_4 integer not null default 0 check (penalty_bps_rating_4 between 0 and 10000),
  penalty_bps_rating_5 integer not null default 0 check (penalty_bps_rating_5 between 0 and 10000),
  auto_complete_hours integer not null default 336 check (auto_complete_hours between 1 and 8760),
  updated_at timestamptz not null default now()
);
alter table public.escrow_policies enable row level security;
create unique index escrow_policies_one_default_idx on public.escrow_policies ((true))
  where currency is null;
comment on table public.escrow_policies is 'The escrow split per currency (a row with currency null is the default): the platform fee and the penalty returned to the payer per rating, in basis points, and how long after funding an engagement the payer never completes completes itself. An engagement keeps the terms in force when it was created.';
insert into public.escrow_policies (currency) values (null);

create policy "Signed-in users can read the escrow policies" on public.escrow_policies
  for select to authenticated using (true);

-- The policy for a currency: its own row, else the default.
create function settle.escrow_policy(p_currency text) returns public.escrow_policies
language sql stable security definer set search_path = ''
as $$
  select * from public.escrow_policies
  where currency = p_currency or currency is null
  order by currency nulls last limit 1
$$;

-- Section - engagements
create table public.engagements (
  id uuid primary key default gen_random_uuid(),
  payer_account_id uuid not null references public.accounts (id) on delete restrict,
  payee_account_id uuid not null references public.accounts (id) on delete restrict,
  created_by uuid not null references auth.users (id) on delete restrict,
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  currency text not null references public.currencies (code),
  title text check (length(title) between 1 and 200),
  reference text check (length(reference) between 1 and 255),
  hold_hours integer not null default 24 check (hold_hours between 0 and 720),
  status text not null default 'awaiting_payment' check (status in (
    'awaiting_payment', 'funded', 'completed', 'disputed', 'settled', 'canceled')),
  -- The terms of the policy in force at creation.
  platform_fee_bps integer not null check (platform_fee_bps between 0 and 10000),
  penalty_bps integer[] not null check (array_length(penalty_bps, 1) = 5
    and 0 <= all (penalty_bps) and 10000 >= all (penalty_bps)),
  auto_complete_hours integer not null check (auto_complete_hours between 1 and 8760),
  rating smallint check (rating between 1 and 5),
  funding_order_id uuid unique references public.orders (id),
  funded_at timestamptz,
  auto_complete_at timestamptz,
  completed_at timestamptz,
  auto_completed boolean not null default false,
  release_at timestamptz,
  disputed_at timestamptz,
  dispute_reason text check (length(dispute_reason) between 1 and 1000),
  payee_share_bps integer check (payee_share_bps between 0 and 10000),
  penalty_amount bigint check (penalty_amount >= 0),
  fee_amount bigint check (fee_amount >= 0),
  payee_amount bigint check (payee_amount >= 0),
  settled_at timestamptz,
  canceled_at timestamptz,
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  request_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (created_by, idempotency_key),
  check (payer_account_id <> payee_account_id),
  check ((status in ('funded', 'completed', 'disputed', 'settled'))
    <= (funding_order_id is not null and funded_at is not null and auto_complete_at is not null)),
  check ((status in ('completed', 'disputed', 'settled')) <= (completed_at is not null and release_at is not null)),
  check ((status = 'disputed') <= (disputed_at is not null and dispute_reason is not null)),
  check ((status = 'settled') = (settled_at is not null)),
  check ((status = 'canceled') = (canceled_at is not null)),
  check ((status = 'settled') = (penalty_amount is not null and fee_amount is not null and payee_amount is not null)),
  check (payee_amount is null or penalty_amount + fee_amount + payee_amount = amount)
);
alter table public.engagements enable row level security;
create index engagements_payer_idx on public.engagements (payer_account_id, created_at desc);
create index engagements_payee_idx on public.engagements (payee_account_id, created_at desc);
create index engagements_release_idx on public.engagements (release_at) where status = 'completed';
create index engagements_auto_complete_idx on public.engagements (auto_complete_at) where status = 'funded';
comment on table public.engagements is 'One account (payer) paying another (payee) through the platform: funded into escrow, completed by the payer with a rating, held hold_hours, then settled into the payee''s wallet, the platform fee and a penalty returned to the payer. Written only by the settle.*engagement* functions.';
comment on column public.engagements.penalty_bps is 'Penalty returned to the payer per rating 1..5 (penalty_bps[rating]), in basis points, from the policy at creation. No rating: no penalty.';
comment on column public.engagements.release_at is 'completed_at + hold_hours: from then on escrow-settle settles it, unless it was disputed.';
comment on column public.engagements.payee_share_bps is 'Set when an operator resolved a dispute: the payee''s share before the platform fee.';
comment on column public.engagements.penalty_amount is 'At settlement: floor(amount * penalty_bps / 10000), returned to the payer.';
comment on column public.engagements.fee_amount is 'At settlement: floor((amount - penalty) * platform_fee_bps / 10000), platform revenue.';
comment on column public.engagements.payee_amount is 'At settlement: amount - penalty - fee, credited to the payee account''s wallet.';

create policy "Members of the payer or payee account can read their engagements" on public.engagements
  for select to authenticated
  using (settle.is_member(payer_account_id) or settle.is_member(payee_account_id));

create table settle.engagement_transitions (
  from_status text not null,
  to_status text not null,
  primary key (from_status, to_status)
);
insert into settle.engagement_transitions values
  ('awaiting_payment', 'funded'), ('awaiting_payment', 'canceled'),
  ('funded', 'completed'), ('funded', 'canceled'),
  ('completed', 'disputed'), ('completed', 'settled'), ('disputed', 'settled');

create function settle.guard_engagement_update() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.payer_account_id <> old.payer_account_id or new.payee_account_id <> old.payee_account_id
     or new.created_by <> old.created_by or new.amount <> old.amount or new.currency <> old.currency
     or new.title is distinct from old.title or new.reference is distinct from old.reference
     or new.hold_hours <> old.hold_hours or new.platform_fee_bps <> old.platform_fee_bps
     or new.penalty_bps <> old.penalty_bps or new.auto_complete_hours <> old.auto_complete_hours
     or new.idempotency_key is distinct from old.idempotency_key
     or new.request_hash is distinct from old.request_hash or new.created_at <> old.created_at
     or (old.funding_order_id is not null and new.funding_order_id is distinct from old.funding_order_id)
     or (old.rating is not null and new.rating is distinct from old.rating) then
    perform settle.fail(400, 'invalid_request', 'an engagement''s terms cannot change');
  end if;
  if new.status <> old.status and not exists (
    select 1 from settle.engagement_transitions t where t.from_status = old.status and t.to_status = new.status
  ) then
    perform settle.fail(409, 'invalid_transition',
      format('engagement %s cannot move from %s to %s', old.id, old.status, new.status));
  end if;
  new.updated_at := now();
  return new;
end
$$;
create trigger engagements_guard_update before update on public.engagements
  for each row execute function settle.guard_engagement_update();

create function settle.guard_engagement_insert() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status <> 'awaiting_payment' or new.funding_order_id is not null or new.rating is not null
     or new.payee_amount is not null then
    perform settle.fail(400, 'invalid_request', 'an engagement starts awaiting payment');
  end if;
  return new;
end
$$;
create trigger engagements_guard_insert before insert on public.engagements
  for each row execute function settle.guard_engagement_insert();

-- The engagement's house accounts (system accounts are [a-z_]+:[a-z0-9_]+; a uuid without
-- its dashes is still unique, the dashes sit at fixed places).
create function settle.escrow_account(p_engagement_id uuid) returns text
language sql immutable set search_path = ''
as $$ select 'escrow:' || replace(p_engagement_id::text, '-', '') $$;

create function settle.escrow_refund_account(p_engagement_id uuid) returns text
language sql immutable set search_path = ''
as $$ select 'escrow_refund:' || replace(p_engagement_id::text, '-', '') $$;

-- floor() of the three parts, exactly as the issue states it (all operands are non-negative,
-- so integer division is floor): penalty of the amount, fee of what is left, the rest to the
-- payee. At most 10^11 * 10^4 on the way, well inside bigint.
create function settle.escrow_split(p_amount bigint, p_penalty_bps integer, p_fee_bps integer,
  out penalty bigint, out fee bigint, out payee bigint)
language sql immutable set search_path = ''
as $$
  select p.penalty, (p_amount - p.penalty) * p_fee_bps / 10000,
    p_amount - p.penalty - (p_amount - p.penalty) * p_fee_bps / 10000
  from (select p_amount * p_penalty_bps / 10000 as penalty) p
$$;

-- What the API, the SQL functions and the outbox show of an engagement. Before settlement,
-- expected_payee_amount is what the payee gets with the rating so far (none: no penalty).
create function settle.engagement_json(p_e public.engagements) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object(
    'id', p_e.id, 'status', p_e.status, 'payer_account_id', p_e.payer_account_id,
    'payee_account_id', p_e.payee_account_id, 'amount', p_e.amount, 'currency', p_e.currency,
    'title', p_e.title, 'reference', p_e.reference, 'hold_hours', p_e.hold_hours,
    'rating', p_e.rating, 'funding_order_id', p_e.funding_order_id, 'funded_at', p_e.funded_at,
    'auto_complete_at', p_e.auto_complete_at, 'completed_at', p_e.completed_at,
    'auto_completed', p_e.auto_completed, 'release_at', p_e.release_at,
    'disputed_at', p_e.disputed_at, 'dispute_reason', p_e.dispute_reason,
    'payee_share_bps', p_e.payee_share_bps, 'platform_fee_bps', p_e.platform_fee_bps,
    'penalty_amount', p_e.penalty_amount, 'fee_amount', p_e.fee_amount,
    'payee_amount', p_e.payee_amount,
    'expected_payee_amount', case
      when p_e.status = 'settled' then p_e.payee_amount
      when p_e.status = 'canceled' then 0
      else (select s.payee from settle.escrow_split(p_e.amount,
              coalesce(p_e.penalty_bps[p_e.rating], 0), p_e.platform_fee_bps) s) end,
    'settled_at', p_e.settled_at, 'canceled_at', p_e.canceled_at, 'created_at', p_e.created_at)
$$;

-- A visible engagement, locked, and which sides the caller is on; 404 for anyone else.
create function settle.lock_engagement(p_engagement_id uuid,
  out engagement public.engagements, out is_payer boolean, out is_payee boolean)
language plpgsql security definer set search_path = ''
as $$
begin
  if auth.uid() is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  select * into engagement from public.engagements where id = p_engagement_id;
  is_payer := engagement.id is not null and settle.is_member(engagement.payer_account_id);
  is_payee := engagement.id is not null and settle.is_member(engagement.payee_account_id);
  if not (is_payer or is_payee) then
    perform settle.fail(404, 'not_found', 'engagement not found');
  end if;
  select * into engagement from public.engagements where id = p_engagement_id for update;
end
$$;

create function settle.engagement_state_error(p_e public.engagements, p_action text) returns void
language plpgsql set search_path = ''
as $$
begin
  perform settle.fail(409, 'invalid_engagement_state',
    format('engagement %s is %s: it cannot be %s', p_e.id, p_e.status, p_action));
end
$$;

-- Section - creating engagements
create function settle.engagement_replay(p_e public.engagements, p_request_hash text) returns jsonb
language plpgsql stable set search_path = ''
as $$
begin
  if p_e.request_hash is distinct from p_request_hash then
    perform settle.fail(409, 'idempotency_conflict', 'this Idempotency-Key was used with a different request');
  end if;
  return jsonb_build_object('engagement', settle.engagement_json(p_e), 'replayed', true);
end
$$;

-- The request's terms: 400 for bad input, 404 for an unknown payee account.
create function settle.check_engagement_terms(
  p_payer uuid, p_payee uuid, p_amount bigint, p_currency text, p_title text, p_reference text,
  p_hold_hours integer
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_currency public.currencies;
begin
  select * into v_currency from public.currencies where code = p_currency and enabled;
  if not found then
    perform settle.fail(400, 'invalid_request', format('unsupported currency %s', coalesce(p_currency, 'null')));
  end if;
  if p_amount is null or p_amount < v_currency.topup_min or p_amount > v_currency.topup_max then
    perform settle.fail(400, 'invalid_request', format(
      'amount must be between %s and %s minor units of %s', v_currency.topup_min, v_currency.topup_max, p_currency));
  end if;
  if p_hold_hours is null or p_hold_hours not between 0 and 720 then
    perform settle.fail(400, 'invalid_request', 'hold_hours must be between 0 and 720');
  end if;
  if length(p_title) not between 1 and 200 or length(p_reference) not between 1 and 255 then
    perform settle.fail(400, 'invalid_request', 'title is 1-200 characters, reference 1-255');
  end if;
  if p_payee is null then
    perform settle.fail(400, 'invalid_request', 'payee_account_id is required');
  end if;
  if p_payee = p_payer then
    perform settle.fail(400, 'invalid_request', 'the payer and payee accounts must differ');
  end if;
  if not exists (select 1 from public.accounts where id = p_payee) then
    perform settle.fail(404, 'not_found', 'payee account not found');
  end if;
end
$$;

-- Runs as the calling user: an owner of the paying account (default: their personal account)
-- creates an engagement awaiting payment, with the policy's terms of today. With an idempotency
-- key the same request returns the same engagement; another request under it is a 409.
create function settle.create_engagement(
  p_account_id uuid, p_payee_account_id uuid, p_amount bigint, p_currency text,
  p_title text, p_reference text, p_hold_hours integer, p_idempotency_key text, p_request_hash text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_account uuid := p_account_id;
  v_policy public.escrow_policies;
  v_e public.engagements;
begin
  if v_uid is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  if p_idempotency_key is not null then
    select * into v_e from public.engagements where created_by = v_uid and idempotency_key = p_idempotency_key;
    if found then
      return settle.engagement_replay(v_e, p_request_hash);
    end if;
  end if;
  if v_account is null then
    select id into v_account from public.accounts where personal_owner_id = v_uid;
  end if;
  if v_account is null or not settle.is_member(v_account) then
    perform settle.fail(404, 'not_found', 'account not found');
  end if;
  if not settle.has_role_on_account(v_account, 'owner') then
    perform settle.fail(403, 'forbidden', 'only an owner of the account can pay from it');
  end if;
  perform settle.check_engagement_terms(v_account, p_payee_account_id, p_amount, p_currency,
    p_title, p_reference, coalesce(p_hold_hours, 24));
  v_policy := settle.escrow_policy(p_currency);
  insert into public.engagements (payer_account_id, payee_account_id, created_by, amount, currency,
    title, reference, hold_hours, platform_fee_bps, penalty_bps, auto_complete_hours,
    idempotency_key, request_hash)
  values (v_account, p_payee_account_id, v_uid, p_amount, p_currency, p_title, p_reference,
    coalesce(p_hold_hours, 24), v_policy.platform_fee_bps,
    array[v_policy.penalty_bps_rating_1, v_policy.penalty_bps_rating_2, v_policy.penalty_bps_rating_3,
          v_policy.penalty_bps_rating_4, v_policy.penalty_bps_rating_5],
    v_policy.auto_complete_hours, p_idempotency_key, p_request_hash)
  on conflict (created_by, idempotency_key) do nothing
  returning * into v_e;
  if v_e.id is null then
    select * into v_e from public.engagements where created_by = v_uid and idempotency_key = p_idempotency_key;
    return settle.engagement_replay(v_e, p_request_hash);
  end if;
  return jsonb_build_object('engagement', settle.engagement_json(v_e), 'replayed', false);
end
$$;

-- Section - escrow orders
alter table public.orders add column engagement_id uuid references public.engagements (id);
alter table public.orders add constraint orders_engagement_check
  check ((purpose = 'escrow') = (engagement_id is not null));
create index orders_engagement_id_idx on public.orders (engagement_id) where engagement_id is not null;
comment on column public.orders.engagement_id is 'The engagement an escrow order funds (purpose escrow); its amount and currency are the engagement''s.';

create function settle.guard_order_engagement() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.engagement_id is distinct from old.engagement_id then
    perform settle.fail(400, 'invalid_request', 'an order''s terms cannot change after it is created');
  end if;
  return new;
end
$$;
create trigger orders_guard_engagement before update of engagement_id on public.orders
  for each row execute function settle.guard_order_engagement();

-- Runs as the calling user, like settle.create_order (which it leaves alone): a member of the
-- engagement's paying account orders its funding through a gateway, for the engagement's
-- amount and currency. Several orders may exist (another gateway, a retry); the first one paid
-- funds it and any later paid one is owed back in full. Same key and request: same order.
create function settle.create_escrow_order(
  p_gateway text, p_engagement_id uuid, p_account_id uuid, p_idempotency_key text, p_request_hash text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_e public.engagements;
  v_order public.orders;
begin
  if v_uid is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  if p_gateway is null or p_gateway not in ('razorpay', 'stripe', 'paypal') then
    perform settle.fail(400, 'invalid_request', 'an engagement is funded through razorpay, stripe or paypal');
  end if;
  if p_idempotency_key is not null then
    select * into v_order from public.orders where created_by = v_uid and idempotency_key = p_idempotency_key;
    if found then
      if v_order.request_hash is distinct from p_request_hash then
        perform settle.fail(409, 'idempotency_conflict', 'this Idempotency-Key was used with a different request');
      end if;
      return jsonb_build_object('order', to_jsonb(v_order), 'replayed', true);
    end if;
  end if;
  select * into v_e from public.engagements where id = p_engagement_id;
  if v_e.id is null or not (settle.is_member(v_e.payer_account_id) or settle.is_member(v_e.payee_account_id)) then
    perform settle.fail(404, 'not_found', 'engagement not found');
  end if;
  if not settle.is_member(v_e.payer_account_id) then
    perform settle.fail(403, 'forbidden', 'only the paying account funds an engagement');
  end if;
  if p_account_id is not null and p_account_id <> v_e.payer_account_id then
    perform settle.fail(400, 'invalid_request', 'account_id must be the engagement''s paying account');
  end if;
  if v_e.status <> 'awaiting_payment' then
    perform settle.engagement_state_error(v_e, 'funded');
  end if;
  insert into public.orders (account_id, created_by, gateway, purpose, engagement_id, amount, currency,
    idempotency_key, request_hash)
  values (v_e.payer_account_id, v_uid, p_gateway, 'escrow', v_e.id, v_e.amount, v_e.currency,
    p_idempotency_key, p_request_hash)
  on conflict (created_by, idempotency_key) do nothing
  returning * into v_order;
  if v_order.id is null then
    select * into v_order from public.orders where created_by = v_uid and idempotency_key = p_idempotency_key;
    if v_order.request_hash is distinct from p_request_hash then
      perform settle.fail(409, 'idempotency_conflict', 'this Idempotency-Key was used with a different request');
    end if;
    return jsonb_build_object('order', to_jsonb(v_order), 'replayed', true);
  end if;
  return jsonb_build_object('order', to_jsonb(v_order), 'replayed', false);
end
$$;

-- Orders whose money is owed back to the payer (settle.escrow_owed > 0), for escrow-settle to
-- refund. next_attempt_at is the lease of the run that claimed it, or the wait after a refusal.
create table settle.escrow_refund_queue (
  order_id uuid primary key references public.orders (id),
  next_attempt_at timestamptz not null default now()
);
create index escrow_refund_queue_due_idx on settle.escrow_refund_queue (next_attempt_at);

create function settle.enqueue_escrow_refund(p_order_id uuid, p_at timestamptz default now()) returns void
language sql security definer set search_path = ''
as $$
  insert into settle.escrow_refund_queue (order_id, next_attempt_at) values (p_order_id, p_at)
  on conflict (order_id) do update set next_attempt_at = least(escrow_refund_queue.next_attempt_at, excluded.next_attempt_at)
$$;

-- A paid escrow order: the first funds its engagement (gateway clearing -> escrow); one paid
-- for an engagement no longer awaiting payment (funded by another order, canceled) goes to the
-- refund clearing account and is queued to be refunded in full. Called by post_order_payment
-- under the order's row lock; takes the engagement's.
create function settle.fund_engagement(p_order public.orders) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_e public.engagements;
  v_funds boolean;
begin
  select * into v_e from public.engagements where id = p_order.engagement_id for update;
  v_funds := v_e.status = 'awaiting_payment' and p_order.amount = v_e.amount
    and p_order.currency = v_e.currency;
  if v_funds then
    update public.engagements
    set status = 'funded', funding_order_id = p_order.id, funded_at = now(),
        auto_complete_at = now() + make_interval(hours => auto_complete_hours)
    where id = v_e.id;
  else
    perform settle.enqueue_escrow_refund(p_order.id);
  end if;
  perform settle.post_transaction('escrow_funding', 'order_paid:' || p_order.id, p_order.id,
    case when v_funds then 'escrow funding via ' else 'escrow payment to return via ' end || p_order.gateway,
    jsonb_build_array(
      jsonb_build_object('system_account', case when v_funds then settle.escrow_account(v_e.id)
        else settle.escrow_refund_account(v_e.id) end, 'currency', p_order.currency, 'amount', p_order.amount),
      jsonb_build_object('system_account', 'gateway:' || p_order.gateway, 'currency', p_order.currency,
        'amount', -p_order.amount)));
end
$$;

-- Section - the ledger posting of a paid order
-- As defined in 20261203000710_wallet_orders.sql, plus the escrow branch first: a paid escrow
-- order funds its engagement (settle.fund_engagement), once under order_paid:<id>.
create or replace function settle.post_order_payment() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_clearing text := 'gateway:' || new.gateway;
begin
  if new.purpose = 'escrow' then
    perform settle.fund_engagement(new);
    return null;
  end if;
  if new.gateway = 'wallet' then
    if new.purpose = 'wallet_topup' then
      perform settle.fail(400, 'invalid_request', 'a wallet cannot top itself up');
    end if;
    perform settle.post_transaction('purchase', 'order_paid:' || new.id, new.id,
      new.purpose || ' purchase from the wallet',
      jsonb_build_array(
        jsonb_build_object('wallet_id', settle.ensure_wallet(new.account_id, new.currency),
          'currency', new.currency, 'amount', -new.amount),
        jsonb_build_object('system_account', 'revenue:' || new.purpose, 'currency', new.currency,
          'amount', new.amount)));
    return null;
  end if;
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

-- Section - refunds of escrow orders
-- As defined in 20261203000710_wallet_orders.sql, except that an escrow order's refund is paid
-- out of its engagement's refund clearing account (where cancellation, the settlement's
-- penalty and a payment to return put the money first). (The four-argument form calls this.)
create or replace function settle.post_refund_transaction(
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

-- Escrow money leaves only by cancellation and settlement: a refund asked through the API
-- (POST /refunds, settle.request_refund / create_refund) of an escrow order is refused, unless
-- escrow's own functions make it (they set settle.escrow_refund for their statement). A refund
-- made at the gateway (source gateway) cannot be refused: it is counted, and the audit shows
-- the engagement's refund clearing account going below what is owed.
create function settle.guard_escrow_refund() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.source = 'api'
     and coalesce(current_setting('settle.escrow_refund', true), '') <> 'on'
     and exists (select 1 from public.orders o where o.id = new.order_id and o.purpose = 'escrow') then
    perform settle.fail(409, 'escrow_refund_not_allowed',
      'an escrow order is refunded only by cancelling or settling its engagement');
  end if;
  return new;
end
$$;
create trigger refunds_guard_escrow before insert on public.refunds
  for each row execute function settle.guard_escrow_refund();

-- A refused refund of an escrow order puts the money back in the refund clearing account
-- (its reversal): the order is queued again, after a pause, so the refund is retried.
create function settle.requeue_failed_escrow_refund() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.orders o where o.id = new.order_id and o.purpose = 'escrow') then
    insert into settle.escrow_refund_queue (order_id, next_attempt_at)
    values (new.order_id, now() + interval '10 minutes')
    on conflict (order_id) do update set next_attempt_at = excluded.next_attempt_at;
  end if;
  return null;
end
$$;
create trigger refunds_requeue_escrow after update of status on public.refunds
  for each row when (new.status = 'failed' and old.status <> 'failed')
  execute function settle.requeue_failed_escrow_refund();

-- Section - completing, disputing, cancelling
-- A member of the paying account completes a funded engagement with a rating 1-5; the hold
-- starts now.
create function settle.complete_engagement(p_engagement_id uuid, p_rating integer) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v record := settle.lock_engagement(p_engagement_id);
  v_e public.engagements := v.engagement;
begin
  if not v.is_payer then
    perform settle.fail(403, 'forbidden', 'only the paying account completes an engagement');
  end if;
  if p_rating is null or p_rating not between 1 and 5 then
    perform settle.fail(400, 'invalid_request', 'rating must be an integer from 1 to 5');
  end if;
  if v_e.status <> 'funded' then
    perform settle.engagement_state_error(v_e, 'completed');
  end if;
  update public.engagements
  set status = 'completed', rating = p_rating, completed_at = now(),
      release_at = now() + make_interval(hours => hold_hours)
  where id = v_e.id returning * into v_e;
  return jsonb_build_object('engagement', settle.engagement_json(v_e));
end
$$;

-- A member of the paying account disputes a completed engagement before its release: it waits
-- for an operator (settle.resolve_engagement).
create function settle.dispute_engagement(p_engagement_id uuid, p_reason text) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v record := settle.lock_engagement(p_engagement_id);
  v_e public.engagements := v.engagement;
begin
  if not v.is_payer then
    perform settle.fail(403, 'forbidden', 'only the paying account disputes an engagement');
  end if;
  if p_reason is null or length(p_reason) not between 1 and 1000 then
    perform settle.fail(400, 'invalid_request', 'reason must be 1-1000 characters');
  end if;
  if v_e.status <> 'completed' or v_e.release_at <= now() then
    perform settle.fail(409, 'invalid_engagement_state', format(
      'engagement %s is %s%s: only a completed engagement can be disputed, before its release',
      v_e.id, v_e.status, case when v_e.status = 'completed' then ', released at ' || v_e.release_at else '' end));
  end if;
  update public.engagements set status = 'disputed', disputed_at = now(), dispute_reason = p_reason
  where id = v_e.id returning * into v_e;
  return jsonb_build_object('engagement', settle.engagement_json(v_e));
end
$$;

-- The payer before funding, or the payee before completion, cancels. Funded money moves from
-- escrow to the refund clearing account and the funding order is queued to be refunded (the
-- caller refunds it right after, escrow-settle otherwise).
create function settle.cancel_engagement(p_engagement_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v record := settle.lock_engagement(p_engagement_id);
  v_e public.engagements := v.engagement;
begin
  if not (v_e.status = 'awaiting_payment' or (v_e.status = 'funded' and v.is_payee)) then
    perform settle.fail(409, 'invalid_engagement_state', format(
      'engagement %s is %s: the payer cancels before funding, the payee before completion',
      v_e.id, v_e.status));
  end if;
  update public.engagements set status = 'canceled', canceled_at = now()
  where id = v_e.id returning * into v_e;
  if v_e.funding_order_id is not null then
    perform settle.post_transaction('escrow_refund', 'escrow_cancel:' || v_e.id, v_e.funding_order_id,
      'escrow returned on cancellation',
      jsonb_build_array(
        jsonb_build_object('system_account', settle.escrow_account(v_e.id), 'currency', v_e.currency,
          'amount', -v_e.amount),
        jsonb_build_object('system_account', settle.escrow_refund_account(v_e.id),
          'currency', v_e.currency, 'amount', v_e.amount)));
    perform settle.enqueue_escrow_refund(v_e.funding_order_id);
  end if;
  return jsonb_build_object('engagement', settle.engagement_json(v_e));
end
$$;

-- Section - outbox events
-- engagement.funded | .completed | .disputed | .settled | .canceled on those status moves,
-- under the paying account (the payload names both accounts).
create function settle.outbox_engagement_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform settle.outbox_emit('engagement.' || new.status, new.payer_account_id, 'engagement', new.id,
    settle.engagement_json(new) || jsonb_build_object('previous_status', old.status));
  return null;
end
$$;
create trigger engagements_outbox after update of status on public.engagements
  for each row when (new.status is distinct from old.status)
  execute function settle.outbox_engagement_event();
