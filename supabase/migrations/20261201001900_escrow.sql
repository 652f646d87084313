-- Marketplace escrow (issue 12): engagements between a paying and a payee account, their
-- policy, funding through escrow orders, completion with a rating, disputes between the parties
-- and cancellation; settlement (the split, the batch job, operators' resolution of disputed
-- engagements); returning what is owed to payers through the refunds machinery; the audit and
-- statistics. What a chargeback on a funding payment does is the escrow_chargebacks file's.
--
-- The money model (docs/decisions.md, "Marketplace escrow"): a paid funding order moves the
-- amount from the gateway's clearing account into a house account of the engagement,
-- escrow:<engagement id without dashes>, so it is in neither the payer's nor the payee's wallet
-- and nobody can spend it. Money owed back to the payer (a penalty, a cancellation, a second
-- payment for an engagement already funded) first moves to the engagement's refund clearing
-- account, escrow_refund:<engagement id>, and leaves it only through the refunds machinery (or,
-- for a remainder too small for the gateway to refund, into the payer's wallet). While a
-- chargeback on the funding payment is open (or a dispute still holds money) the engagement
-- neither settles, nor is resolved, nor canceled.

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
  cancel_reason text check (cancel_reason in ('requested', 'chargeback_lost')),
  unique (created_by, idempotency_key),
  check (payer_account_id <> payee_account_id),
  check ((status in ('funded', 'completed', 'disputed', 'settled'))
    <= (funding_order_id is not null and funded_at is not null and auto_complete_at is not null)),
  check ((status in ('completed', 'disputed', 'settled')) <= (completed_at is not null and release_at is not null)),
  check ((status = 'disputed') <= (disputed_at is not null and dispute_reason is not null)),
  check ((status = 'settled') = (settled_at is not null)),
  check ((status = 'canceled') = (canceled_at is not null)),
  check ((status = 'settled') = (penalty_amount is not null and fee_amount is not null and payee_amount is not null)),
  check (payee_amount is null or penalty_amount + fee_amount + payee_amount = amount),
  constraint engagements_cancel_reason_status_check
    check ((status = 'canceled') = (cancel_reason is not null))
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
comment on column public.engagements.cancel_reason is 'Why a canceled engagement was canceled: requested (the payer before funding, the payee before completion) or chargeback_lost (a dispute on the funding payment ended with money kept by the gateway; nothing was paid to the payee).';

create policy "Members of the payer or payee account can read their engagements" on public.engagements
  for select to authenticated
  using (settle.is_member(payer_account_id) or settle.is_member(payee_account_id));

-- The legal status moves. Only the chargeback's end takes a completed or disputed engagement to
-- canceled (settle.end_escrow_on_lost_dispute, escrow_chargebacks file); cancel_engagement keeps
-- its own rule for users.
create table settle.engagement_transitions (
  from_status text not null,
  to_status text not null,
  primary key (from_status, to_status)
);
insert into settle.engagement_transitions values
  ('awaiting_payment', 'funded'), ('awaiting_payment', 'canceled'),
  ('funded', 'completed'), ('funded', 'canceled'),
  ('completed', 'disputed'), ('completed', 'settled'), ('disputed', 'settled'),
  ('completed', 'canceled'), ('disputed', 'canceled');

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
    'settled_at', p_e.settled_at, 'canceled_at', p_e.canceled_at,
    'cancel_reason', p_e.cancel_reason, 'created_at', p_e.created_at)
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

-- The funding order's KEY SHARE lock, taken before the engagement's by the user and operator
-- actions that post against the order (the same order as escrow_settle's claim and as a dispute
-- event: order, then engagement).
create function settle.lock_funding_order(p_engagement_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform 1 from public.orders o
  where o.id = (select e.funding_order_id from public.engagements e where e.id = p_engagement_id)
  for key share of o;
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
-- orders.engagement_id is a column of orders (orders file); its foreign key is added here, as
-- engagements reference their funding order and are created after orders.
alter table public.orders add constraint orders_engagement_id_fkey
  foreign key (engagement_id) references public.engagements (id);
create index orders_engagement_id_idx on public.orders (engagement_id) where engagement_id is not null;
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

-- Section - refunds of escrow orders
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

-- The payer before funding, or the payee before completion, cancels, with cancel_reason
-- 'requested'. Funded money moves from escrow to the refund clearing account and the funding
-- order is queued to be refunded (the caller refunds it right after, escrow-settle otherwise).
-- The funding order is locked first; a funded engagement whose payment is disputed is refused
-- (409 order_disputed: its refund would be refused, and the outcome decides what is owed).
create function settle.cancel_engagement(p_engagement_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v record;
  v_e public.engagements;
begin
  perform settle.lock_funding_order(p_engagement_id);
  v := settle.lock_engagement(p_engagement_id);
  v_e := v.engagement;
  if not (v_e.status = 'awaiting_payment' or (v_e.status = 'funded' and v.is_payee)) then
    perform settle.fail(409, 'invalid_engagement_state', format(
      'engagement %s is %s: the payer cancels before funding, the payee before completion',
      v_e.id, v_e.status));
  end if;
  if v_e.funding_order_id is not null and settle.escrow_payment_disputed(v_e.funding_order_id) then
    perform settle.fail(409, 'order_disputed', format(
      'engagement %s: its funding payment has an open chargeback; it can be canceled once the dispute is resolved',
      v_e.id));
  end if;
  update public.engagements set status = 'canceled', canceled_at = now(), cancel_reason = 'requested'
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

-- Section - chargebacks on the funding payment
-- A funding payment that keeps its engagement from settling, being resolved or canceled: an
-- open chargeback (settle.order_has_open_dispute), or any dispute still holding money (a
-- Razorpay fraud-phase deduction is not a chargeback, yet the escrow is short by it).
create function settle.escrow_payment_disputed(p_order_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select settle.order_has_open_dispute(p_order_id)
    or exists (select 1 from public.disputes d where d.order_id = p_order_id and d.amount_held > 0)
$$;

-- Section - what is owed back to payers
-- Remainders too small for the gateway to refund (below its minimum, or not a multiple of 10
-- of a three-decimal currency), credited to the payer's wallet instead.
create table settle.escrow_wallet_returns (
  id uuid primary key default gen_random_uuid(),
  order_id uuid not null references public.orders (id),
  amount bigint not null check (amount > 0),
  created_at timestamptz not null default now()
);
create index escrow_wallet_returns_order_idx on settle.escrow_wallet_returns (order_id);

-- What a paid escrow order still owes its payer: the settlement's penalty (the funding order of
-- a settled engagement; a chargeback after settlement is the platform's, not the payer's debt);
-- everything (a canceled engagement's funding, or any other paid order of the engagement: a
-- second payment) less what a dispute took back of it (settle.order_disputed_net: the payer's
-- bank gave that back); nothing (an unsettled engagement's funding: its disputes' money is the
-- escrow's); minus what its refunds (pending or processed) and wallet returns gave back.
-- Negative: more went back than was owed (a refund made at the gateway), which the audit
-- reports.
create function settle.escrow_owed(p_order public.orders) returns bigint
language sql stable security definer set search_path = ''
as $$
  select case when p_order.status not in ('paid', 'partially_refunded', 'refunded') then 0::bigint
    else (select case when e.funding_order_id is distinct from p_order.id or e.status = 'canceled'
                        then p_order.amount - settle.order_disputed_net(p_order.id)
                      when e.status = 'settled' then e.penalty_amount
                      else 0 end
          from public.engagements e where e.id = p_order.engagement_id)
      - p_order.amount_refunded
      - coalesce((select sum(r.amount) from settle.escrow_wallet_returns r where r.order_id = p_order.id), 0)
    end::bigint
$$;

-- Claims up to p_limit queued orders (SKIP LOCKED, then a 5-minute lease so concurrent runs
-- split the work) and says what each owes; settle.escrow_return_owed acts on each.
create function settle.escrow_claim_refunds(p_now timestamptz default now(), p_limit integer default 100)
returns table (order_id uuid, gateway text, currency text, owed bigint)
language sql security definer set search_path = ''
as $$
  with due as (
    select q.order_id from settle.escrow_refund_queue q
    where q.next_attempt_at <= p_now
    order by q.next_attempt_at, q.order_id
    limit least(greatest(p_limit, 1), 1000)
    for update skip locked
  ), leased as (
    update settle.escrow_refund_queue q set next_attempt_at = p_now + interval '5 minutes'
    from due where q.order_id = due.order_id
    returning q.order_id
  )
  select o.id, o.gateway, o.currency, settle.escrow_owed(o)
  from leased l join public.orders o on o.id = l.order_id
$$;

-- Gives an order's owed money back, once, under the order's row lock: p_refund_amount of it as
-- a pending refund through the refunds machinery (the caller then sends it to the gateway), the
-- rest (what the gateway cannot refund) into the payer's wallet. p_expected is what the caller
-- saw owed; if that changed meanwhile nothing is done ({"changed": true}) and the order stays
-- queued. While the payment is disputed (settle.escrow_payment_disputed) nothing is returned and
-- the order waits 10 minutes ({"waiting": true}; the gateways refuse refunds of a charged-back
-- payment, and the outcome changes what is owed); after a dispute kept money (lost, or a
-- deduction on a win) the whole owed amount goes to the payer's wallet, since no refund of that
-- payment will be accepted. Returns {"refund", "wallet_credit", "owed"}.
create function settle.escrow_return_owed(p_order_id uuid, p_expected bigint, p_refund_amount bigint)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
  v_e public.engagements;
  v_owed bigint;
  v_amount bigint := p_refund_amount;
  v_refund public.refunds;
  v_return uuid;
begin
  select * into v_order from public.orders where id = p_order_id and purpose = 'escrow' for update;
  if v_order.id is null then
    perform settle.fail(404, 'not_found', 'escrow order not found');
  end if;
  v_owed := settle.escrow_owed(v_order);
  if v_owed <= 0 then
    delete from settle.escrow_refund_queue where order_id = p_order_id;
    return jsonb_build_object('refund', null, 'wallet_credit', 0, 'owed', v_owed);
  elsif v_owed is distinct from p_expected then
    return jsonb_build_object('changed', true, 'owed', v_owed);
  elsif v_amount is null or v_amount < 0 or v_amount > v_owed then
    perform settle.fail(400, 'invalid_request', format('the refund must be between 0 and %s', v_owed));
  elsif settle.escrow_payment_disputed(v_order.id) then
    update settle.escrow_refund_queue set next_attempt_at = now() + interval '10 minutes'
    where order_id = p_order_id;
    return jsonb_build_object('waiting', true, 'owed', v_owed);
  elsif exists (select 1 from public.disputes d where d.order_id = v_order.id and d.amount_lost > 0) then
    v_amount := 0;
  end if;
  select * into v_e from public.engagements where id = v_order.engagement_id;
  if v_amount > 0 then
    perform set_config('settle.escrow_refund', 'on', true);
    v_refund := settle.insert_refund(v_order, v_amount, 'pending', 'api',
      case when v_e.funding_order_id is distinct from v_order.id then 'escrow: a second payment returned'
           when v_e.status = 'canceled' then 'escrow: engagement canceled'
           else 'escrow: penalty for rating ' || coalesce(v_e.rating::text, 'none') end,
      null, null, null, null);
    perform set_config('settle.escrow_refund', 'off', true);
  end if;
  if v_amount < v_owed then
    insert into settle.escrow_wallet_returns (order_id, amount) values (v_order.id, v_owed - v_amount)
    returning id into v_return;
    perform settle.post_transaction('escrow_refund', 'escrow_wallet_return:' || v_return, v_order.id,
      'escrow returned to the wallet (not refundable at the gateway)',
      jsonb_build_array(
        jsonb_build_object('system_account', settle.escrow_refund_account(v_e.id),
          'currency', v_order.currency, 'amount', -(v_owed - v_amount)),
        jsonb_build_object('wallet_id', settle.ensure_wallet(v_order.account_id, v_order.currency),
          'currency', v_order.currency, 'amount', v_owed - v_amount)));
  end if;
  delete from settle.escrow_refund_queue where order_id = p_order_id;
  return jsonb_build_object('refund', case when v_refund.id is null then null else to_jsonb(v_refund) end,
    'wallet_credit', v_owed - v_amount, 'owed', v_owed);
end
$$;

-- Section - settlement
-- Settles a locked engagement: the split stored on it and one balanced transaction out of
-- escrow (payee wallet, platform fee revenue, the penalty to the refund clearing account),
-- once under escrow_settlement:<id>. The penalty's refund is queued, never made here: the
-- payee's credit does not wait for the gateway.
create function settle.settle_engagement(
  p_e public.engagements, p_penalty_bps integer, p_payee_share_bps integer, p_now timestamptz
) returns public.engagements
language plpgsql security definer set search_path = ''
as $$
declare
  v_split record;
  v_e public.engagements;
  v_entries jsonb;
begin
  select * into v_split from settle.escrow_split(p_e.amount, p_penalty_bps, p_e.platform_fee_bps);
  update public.engagements
  set status = 'settled', settled_at = p_now, payee_share_bps = p_payee_share_bps,
      penalty_amount = v_split.penalty, fee_amount = v_split.fee, payee_amount = v_split.payee
  where id = p_e.id returning * into v_e;
  v_entries := jsonb_build_array(jsonb_build_object('system_account', settle.escrow_account(v_e.id),
    'currency', v_e.currency, 'amount', -v_e.amount));
  if v_split.payee > 0 then
    v_entries := v_entries || jsonb_build_array(jsonb_build_object(
      'wallet_id', settle.ensure_wallet(v_e.payee_account_id, v_e.currency),
      'currency', v_e.currency, 'amount', v_split.payee));
  end if;
  if v_split.fee > 0 then
    v_entries := v_entries || jsonb_build_array(jsonb_build_object('system_account', 'revenue:escrow_fee',
      'currency', v_e.currency, 'amount', v_split.fee));
  end if;
  if v_split.penalty > 0 then
    v_entries := v_entries || jsonb_build_array(jsonb_build_object(
      'system_account', settle.escrow_refund_account(v_e.id), 'currency', v_e.currency,
      'amount', v_split.penalty));
    perform settle.enqueue_escrow_refund(v_e.funding_order_id);
  end if;
  perform settle.post_transaction('escrow_settlement', 'escrow_settlement:' || v_e.id,
    v_e.funding_order_id, 'escrow settlement', v_entries);
  return v_e;
end
$$;

-- The batch job (POST /escrow-settle; p_now injectable for tests): funded engagements past
-- their auto-completion time complete (no rating, no penalty), then up to p_limit completed
-- engagements whose release_at has come are claimed and settled in this transaction. The claim
-- takes the funding order's KEY SHARE lock beside the engagement's row lock, both SKIP LOCKED
-- (concurrent runs never wait for, nor settle, the same one). A dispute event holds the order's
-- row lock while it decides where the money comes from, so an engagement is either claimed
-- before the event (settled; the withdrawal then comes from the platform's expense) or after it
-- (skipped while the payment is disputed), never in between, and the settlement's postings
-- (which reference the order) never wait for a dispute that waits for the engagement. One whose
-- funding payment is disputed (settle.escrow_payment_disputed), or was refunded at the gateway,
-- is skipped (claimed last, so skipped ones never crowd out the rest). Returns {claimed,
-- settled, skipped, auto_completed}.
create function settle.escrow_settle(p_now timestamptz default now(), p_limit integer default 100)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_e public.engagements;
  v_claimed integer := 0;
  v_settled integer := 0;
  v_skipped integer := 0;
  v_auto integer := 0;
begin
  if p_now is null or p_limit is null or p_limit not between 1 and 1000 then
    perform settle.fail(400, 'invalid_request', 'now is required and limit must be between 1 and 1000');
  end if;
  for v_e in
    select * from public.engagements e
    where e.status = 'funded' and e.auto_complete_at <= p_now
    order by e.auto_complete_at, e.id limit p_limit
    for update skip locked
  loop
    update public.engagements
    set status = 'completed', completed_at = p_now, auto_completed = true,
        release_at = p_now + make_interval(hours => hold_hours)
    where id = v_e.id;
    v_auto := v_auto + 1;
  end loop;
  for v_e in
    select e.* from public.engagements e join public.orders o on o.id = e.funding_order_id
    where e.status = 'completed' and e.release_at <= p_now
    order by settle.escrow_payment_disputed(e.funding_order_id), e.release_at, e.id
    limit p_limit
    for update of e skip locked
    for key share of o skip locked
  loop
    v_claimed := v_claimed + 1;
    if settle.escrow_payment_disputed(v_e.funding_order_id)
       or exists (select 1 from public.orders o where o.id = v_e.funding_order_id and o.amount_refunded > 0) then
      v_skipped := v_skipped + 1;
      continue;
    end if;
    perform settle.settle_engagement(v_e, coalesce(v_e.penalty_bps[v_e.rating], 0), null, p_now);
    v_settled := v_settled + 1;
  end loop;
  return jsonb_build_object('claimed', v_claimed, 'settled', v_settled, 'skipped', v_skipped,
    'auto_completed', v_auto);
end
$$;

-- An operator (service role) settles a disputed engagement with the payee's share in basis
-- points: the rest is the penalty returned to the payer, and the platform fee applies to the
-- payee's part (penalty_bps = 10000 - share in the one split formula). The funding order is
-- locked first (settle.lock_funding_order); a funding payment that is disputed waits.
create function settle.resolve_engagement(p_engagement_id uuid, p_payee_share_bps integer) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_e public.engagements;
begin
  if p_payee_share_bps is null or p_payee_share_bps not between 0 and 10000 then
    perform settle.fail(400, 'invalid_request', 'payee_share_bps must be an integer from 0 to 10000');
  end if;
  perform settle.lock_funding_order(p_engagement_id);
  select * into v_e from public.engagements where id = p_engagement_id for update;
  if v_e.id is null then
    perform settle.fail(404, 'not_found', 'engagement not found');
  end if;
  if v_e.status <> 'disputed' then
    perform settle.engagement_state_error(v_e, 'resolved');
  end if;
  if settle.escrow_payment_disputed(v_e.funding_order_id) then
    perform settle.fail(409, 'invalid_engagement_state',
      format('engagement %s: its funding payment has an open chargeback', v_e.id));
  end if;
  v_e := settle.settle_engagement(v_e, 10000 - p_payee_share_bps, p_payee_share_bps, now());
  return jsonb_build_object('engagement', settle.engagement_json(v_e));
end
$$;

-- Section - ledger audit
-- Escrow accounts hold exactly the funded, unsettled engagements' amounts less what disputes on
-- their funding payments withdrew and did not reinstate (zero once settled or canceled); refund
-- clearing accounts hold exactly what is owed back and not yet refunded; no order gave back
-- more than it owed; a settled engagement's split is the formula's and adds up, and its
-- settlement posting credited the payee's wallet with exactly payee_amount;
-- expense:escrow_chargebacks holds exactly what disputes took from settled engagements' funding
-- payments, and nothing posts to revenue:escrow. One query of unioned invariants, so longer
-- than 70 lines.
create function settle.ledger_audit_escrow()
returns table (invariant text, subject text, detail text)
language sql stable security definer set search_path = ''
as $$
  with escrow_ledger as (
    select e.system_account, e.currency, sum(e.amount) as total from public.ledger_entries e
    where e.system_account like 'escrow:%' group by 1, 2
  ), escrow_expected as (
    select settle.escrow_account(g.id) as system_account, g.currency, g.id,
      case when g.status in ('funded', 'completed', 'disputed')
        then g.amount - settle.order_disputed_net(g.funding_order_id) else 0 end as total
    from public.engagements g
  ), refund_ledger as (
    select e.system_account, e.currency, sum(e.amount) as total from public.ledger_entries e
    where e.system_account like 'escrow\_refund:%' group by 1, 2
  ), refund_expected as (
    select settle.escrow_refund_account(o.engagement_id) as system_account, o.currency,
      sum(settle.escrow_owed(o)) as total
    from public.orders o where o.purpose = 'escrow' group by 1, 2
  ), chargeback_ledger as (
    select e.currency, -sum(e.amount) as total from public.ledger_entries e
    where e.system_account = 'expense:escrow_chargebacks' group by 1
  ), chargeback_expected as (
    select g.currency, sum(settle.order_disputed_net(g.funding_order_id)) as total
    from public.engagements g where g.status = 'settled' group by 1
  )
  select 'escrow_account_drift', coalesce(x.id::text, l.system_account || ' ' || l.currency),
    format('escrow account holds %s, the engagement expects %s', coalesce(l.total, 0), coalesce(x.total, 0))
  from escrow_ledger l full join escrow_expected x
    on x.system_account = l.system_account and x.currency = l.currency
  where coalesce(l.total, 0) <> coalesce(x.total, 0)
  union all
  select 'escrow_refund_drift', coalesce(x.system_account, l.system_account) || ' ' || coalesce(x.currency, l.currency),
    format('refund clearing holds %s, owed back and not yet refunded %s', coalesce(l.total, 0), coalesce(x.total, 0))
  from refund_ledger l full join refund_expected x
    on x.system_account = l.system_account and x.currency = l.currency
  where coalesce(l.total, 0) <> coalesce(x.total, 0)
  union all
  select 'escrow_over_refunded', o.id::text,
    format('order %s gave back %s more than it owed', o.id, -settle.escrow_owed(o))
  from public.orders o where o.purpose = 'escrow' and settle.escrow_owed(o) < 0
  union all
  select 'escrow_split_mismatch', g.id::text,
    format('penalty %s + fee %s + payee %s of %s %s (formula: %s, %s, %s)', g.penalty_amount,
      g.fee_amount, g.payee_amount, g.amount, g.currency, s.penalty, s.fee, s.payee)
  from public.engagements g
  cross join lateral settle.escrow_split(g.amount,
    coalesce(10000 - g.payee_share_bps, g.penalty_bps[g.rating], 0), g.platform_fee_bps) s
  where g.status = 'settled' and (g.penalty_amount + g.fee_amount + g.payee_amount <> g.amount
    or (g.penalty_amount, g.fee_amount, g.payee_amount) <> (s.penalty, s.fee, s.payee))
  union all
  select 'escrow_settlement_not_posted', g.id::text,
    format('status %s, payee_amount %s; %s settlement postings credited the payee wallet %s',
      g.status, g.payee_amount, count(distinct t.id), coalesce(sum(e.amount) filter (where e.wallet_id is not null), 0))
  from public.engagements g
  left join public.ledger_transactions t on t.idempotency_key = 'escrow_settlement:' || g.id
  left join public.ledger_entries e on e.transaction_id = t.id
  group by g.id
  having (g.status = 'settled') <> (count(distinct t.id) = 1)
    or coalesce(sum(e.amount) filter (where e.wallet_id is not null), 0) <> coalesce(g.payee_amount, 0)
  union all
  select 'escrow_chargeback_drift', coalesce(l.currency, x.currency),
    format('expense:escrow_chargebacks %s, disputes on settled engagements hold back %s',
      coalesce(l.total, 0), coalesce(x.total, 0))
  from chargeback_ledger l full join chargeback_expected x on x.currency = l.currency
  where coalesce(l.total, 0) <> coalesce(x.total, 0)
  union all
  select 'escrow_dispute_misposted', e.currency,
    format('revenue:escrow has %s entries summing to %s', count(*), sum(e.amount))
  from public.ledger_entries e where e.system_account = 'revenue:escrow'
  group by e.currency
$$;

-- Section - statistics
-- Beside payment_stats and wallet_spending_stats, the same pattern: aggregated with the
-- owner's rights after filtering rows by the caller (members of either side; analysts and the
-- service role everything), exposed as a security_invoker view. Per UTC day of the
-- engagement's creation and currency.
create view settle.escrow_stats_visible with (security_barrier = true) as
select
  (e.created_at at time zone 'UTC')::date as day,
  e.currency,
  count(*) as engagements_created,
  count(*) filter (where e.funded_at is not null) as engagements_funded,
  count(*) filter (where e.status = 'settled') as engagements_settled,
  count(*) filter (where e.status = 'disputed') as engagements_disputed,
  count(*) filter (where e.status = 'canceled') as engagements_canceled,
  coalesce(sum(e.amount) filter (where e.status in ('funded', 'completed', 'disputed')), 0)::bigint as held,
  coalesce(sum(e.payee_amount), 0)::bigint as released_to_payees,
  coalesce(sum(e.penalty_amount), 0)::bigint as penalties,
  coalesce(sum(e.fee_amount), 0)::bigint as platform_revenue
from public.engagements e
where settle.can_read_payment_stats(e.payer_account_id) or settle.can_read_payment_stats(e.payee_account_id)
group by 1, 2;

create view public.escrow_stats with (security_invoker = true) as
select day, currency, engagements_created, engagements_funded, engagements_settled,
  engagements_disputed, engagements_canceled, held, released_to_payees, penalties, platform_revenue
from settle.escrow_stats_visible;
comment on view public.escrow_stats is 'Escrow per UTC day of engagement creation and currency: engagements created, funded, settled, disputed (now), canceled; held = amounts in escrow now (funded, completed or disputed), released_to_payees = payee amounts credited at settlement, penalties = amounts returned to payers at settlement, platform_revenue = platform fees. Minor units. Signed-in users see engagements of their accounts (either side); payment_analyst sees all.';

-- Section - privileges
-- Engagements and policies are written only by the functions above; members read (RLS).
revoke execute on all functions in schema settle from public;
revoke all on public.engagements, public.escrow_policies from anon, authenticated, service_role;
grant select on public.engagements, public.escrow_policies to authenticated, service_role;
revoke all on settle.engagement_transitions, settle.escrow_refund_queue, settle.escrow_wallet_returns
  from public;
revoke all on public.escrow_stats from anon, authenticated;
grant select on settle.escrow_stats_visible, public.escrow_stats
  to authenticated, payment_analyst, service_role;
grant execute on function
  settle.create_engagement(uuid, uuid, bigint, text, text, text, integer, text, text),
  settle.create_escrow_order(text, uuid, uuid, text, text),
  settle.complete_engagement(uuid, integer), settle.dispute_engagement(uuid, text),
  settle.cancel_engagement(uuid), settle.engagement_json(public.engagements)
  to authenticated, service_role;
grant execute on function settle.resolve_engagement(uuid, integer),
  settle.escrow_settle(timestamptz, integer), settle.escrow_claim_refunds(timestamptz, integer),
  settle.escrow_return_owed(uuid, bigint, bigint), settle.ledger_audit_escrow(),
  settle.escrow_split(bigint, integer, integer), settle.escrow_owed(public.orders)
  to service_role;
