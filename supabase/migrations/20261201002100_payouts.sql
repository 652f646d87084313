-- Payouts (issue 14): payees take their earnings out to a bank account or UPI address through
-- RazorpayX, or to a Stripe Connect Express account.
--
-- Stripe Connect (docs/decisions.md, "Stripe Connect payouts"): Express connected accounts
-- onboard through an account link and become usable when account.updated says payouts are
-- enabled and the transfers capability is active; a payout to one is a transfer (synchronous:
-- created = the money is in the connected account = processed), and transfer.reversed returns
-- it to the wallet. Payouts to Stripe use the same request, send, move and ingest functions as
-- RazorpayX's.
--
-- The money model (docs/decisions.md, "Payouts"): a payout request moves its whole amount at once
-- from the wallet to the house account payouts_in_flight:<gateway>, under the wallet's row lock,
-- so concurrent requests can never overdraw it. The fee (policy: flat + bps of the amount, 0 by
-- default) is part of the amount: the payee receives amount - fee. When the gateway reports the
-- payout processed, the in-flight amount moves to the gateway clearing account (gateway:<gateway>,
-- what the gateway sent out of our balance) and the fee to revenue:payout_fees. When it reports
-- failed, rejected, cancelled or reversed, the whole amount returns to the wallet, from in-flight
-- or (a reversal after processed) from clearing and revenue. Each movement is one keyed ledger
-- transaction (payout:, payout_sent:, payout_return:<payout id>), and a payout's status only moves
-- forward (pending < processing < processed < the returned statuses), so any order, duplicate or
-- concurrency of events moves the money once.

-- Section - policies
create table public.payout_policies (
  id uuid primary key default gen_random_uuid(),
  -- null: the default for every account without a policy of its own in the currency.
  account_id uuid references public.accounts (id) on delete cascade,
  currency text not null references public.currencies (code),
  min_amount bigint not null check (min_amount > 0),
  daily_limit bigint not null check (daily_limit >= min_amount and daily_limit <= 100000000000),
  fee_flat bigint not null default 0 check (fee_flat >= 0),
  fee_bps integer not null default 0 check (fee_bps between 0 and 10000),
  allow_topup_balance boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique nulls not distinct (account_id, currency),
  check (fee_flat < min_amount)
);
alter table public.payout_policies enable row level security;
comment on table public.payout_policies is 'What a payout may be, per currency: the default (account_id null) or an account''s own. Amounts in minor units; fee = fee_flat + floor(amount * fee_bps / 10000), taken from the amount; allow_topup_balance lets the whole wallet be paid out, not only earnings.';
comment on column public.payout_policies.daily_limit is 'The most an account may have requested (and not had returned) per UTC day in the currency.';

create policy "Members can read their accounts' payout policies and the defaults" on public.payout_policies
  for select to authenticated using (account_id is null or settle.is_member(account_id));

insert into public.payout_policies (currency, min_amount, daily_limit)
select code, min_amount, daily_limit from (values
  ('INR', 100, 10000000),   -- ₹1 .. ₹1,00,000 a day (RazorpayX's minimum is 100 paise)
  ('USD', 100, 1000000),    -- $1 .. $10,000 a day
  ('EUR', 100, 1000000),
  ('GBP', 100, 1000000)
) as d(code, min_amount, daily_limit)
where exists (select 1 from public.currencies c where c.code = d.code);

-- The policy that applies to an account in a currency (its own, else the default), or null.
create function settle.payout_policy(p_account_id uuid, p_currency text)
returns public.payout_policies
language sql stable security definer set search_path = ''
as $$
  select * from public.payout_policies
  where currency = p_currency and (account_id = p_account_id or account_id is null)
  order by account_id nulls last
  limit 1
$$;

-- Section - payout accounts
create table public.payout_accounts (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete restrict,
  gateway text not null check (gateway in ('razorpayx', 'stripe')),
  type text not null check (type in ('bank_account', 'vpa', 'stripe_account')),
  display text not null check (length(display) between 1 and 100),
  last4 text check (last4 ~ '^[0-9]{4}$'),
  vpa_handle text check (vpa_handle ~ '^@[a-z0-9.-]{2,64}$'),
  gateway_contact_id text check (length(gateway_contact_id) between 1 and 100),
  gateway_account_id text not null check (length(gateway_account_id) between 1 and 100),
  status text not null check (status in ('onboarding', 'active', 'disabled')),
  -- The gateway time of the last account event applied (Stripe account.updated), so an older
  -- event delivered late cannot undo a newer one.
  status_event_at timestamptz,
  created_by uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  disabled_at timestamptz,
  unique (gateway, gateway_account_id),
  check ((gateway = 'razorpayx') = (type in ('bank_account', 'vpa'))),
  check ((type = 'bank_account') = (last4 is not null)),
  check ((type = 'vpa') = (vpa_handle is not null)),
  check ((gateway = 'razorpayx') = (gateway_contact_id is not null)),
  check ((status = 'disabled') = (disabled_at is not null))
);
alter table public.payout_accounts enable row level security;
create index payout_accounts_account_id_idx on public.payout_accounts (account_id, created_at desc);
comment on table public.payout_accounts is 'Where an account''s payouts go: a RazorpayX fund account (bank account or UPI address) or a Stripe Connect account. Only the gateway''s ids and a masked form are stored, never an account number.';
comment on column public.payout_accounts.display is 'The masked form shown to people: "•••• 1234" for a bank account, "•••@handle" for a UPI address.';
comment on column public.payout_accounts.gateway_account_id is 'RazorpayX fund account (fa_...) or Stripe connected account (acct_...).';
comment on column public.payout_accounts.status is 'onboarding: a Stripe connected account that cannot receive transfers yet (account.updated moves it); active: payouts may be sent; disabled: by its owner, or the account deauthorized the platform (final).';

create policy "Members can read their accounts' payout accounts" on public.payout_accounts
  for select to authenticated using (settle.is_member(account_id));

create function settle.guard_payout_account_update() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.account_id <> old.account_id or new.gateway <> old.gateway or new.type <> old.type
     or new.gateway_account_id <> old.gateway_account_id
     or new.gateway_contact_id is distinct from old.gateway_contact_id
     or new.last4 is distinct from old.last4 or new.vpa_handle is distinct from old.vpa_handle then
    perform settle.fail(400, 'invalid_request', 'a payout account''s destination cannot change');
  end if;
  if old.status = 'disabled' and new.status <> 'disabled' then
    perform settle.fail(409, 'invalid_transition', 'a disabled payout account stays disabled');
  end if;
  new.updated_at := now();
  return new;
end
$$;
create trigger payout_accounts_guard_update before update on public.payout_accounts
  for each row execute function settle.guard_payout_account_update();

create function settle.payout_account_json(p public.payout_accounts) returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object('id', p.id, 'account_id', p.account_id, 'gateway', p.gateway,
    'type', p.type, 'display', p.display, 'status', p.status, 'created_at', p.created_at,
    'disabled_at', p.disabled_at)
$$;

-- Records a payout account the gateway has just created (service role: the function checked
-- the caller owns p_account_id before asking the gateway). RazorpayX accounts are active at
-- once; a Stripe account is onboarding until account.updated says it can receive transfers.
create function settle.create_payout_account(
  p_id uuid, p_account_id uuid, p_created_by uuid, p_gateway text, p_type text, p_display text,
  p_last4 text, p_vpa_handle text, p_gateway_contact_id text, p_gateway_account_id text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.payout_accounts;
begin
  insert into public.payout_accounts (id, account_id, created_by, gateway, type, display, last4,
    vpa_handle, gateway_contact_id, gateway_account_id, status)
  values (p_id, p_account_id, p_created_by, p_gateway, p_type, p_display, p_last4, p_vpa_handle,
    p_gateway_contact_id, p_gateway_account_id,
    case when p_gateway = 'razorpayx' then 'active' else 'onboarding' end)
  on conflict (id) do nothing
  returning * into v_row;
  if v_row.id is null then
    select * into v_row from public.payout_accounts where id = p_id;
  end if;
  return settle.payout_account_json(v_row);
end
$$;

-- DELETE /payout-accounts/{id}: an owner disables it (payouts already made keep it).
create function settle.disable_payout_account(p_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.payout_accounts;
begin
  select * into v_row from public.payout_accounts where id = p_id for update;
  if v_row.id is null or not settle.has_role_on_account(v_row.account_id, 'owner') then
    perform settle.fail(404, 'not_found', 'payout account not found');
  end if;
  if v_row.status <> 'disabled' then
    update public.payout_accounts set status = 'disabled', disabled_at = now()
    where id = p_id returning * into v_row;
  end if;
  return settle.payout_account_json(v_row);
end
$$;

-- Stripe account.updated (and account.application.deauthorized): p_effect
-- {"gateway_account_id", "payouts_enabled", "transfers" (the transfers capability's status),
-- "observed_at", "deauthorized"}. Active needs payouts_enabled and transfers 'active' (a
-- transfer to an account without the capability is refused by Stripe); anything less is
-- onboarding again. The state is the account as read from Stripe when its account.updated
-- arrived, versioned by observed_at (when the read started: a read started later sees a state at
-- least as new), else by the event's time. A state older than the last one applied, or for a
-- disabled account, changes nothing. A deauthorization disables the account for good, whatever
-- its time.
create function settle.apply_payout_account_event(p_effect jsonb, p_occurred_at timestamptz)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_row public.payout_accounts;
  v_status text := case
    when coalesce((p_effect ->> 'deauthorized')::boolean, false) then 'disabled'
    when coalesce((p_effect ->> 'payouts_enabled')::boolean, false)
         and coalesce(p_effect ->> 'transfers', 'active') = 'active' then 'active'
    else 'onboarding' end;
  v_at timestamptz := coalesce((p_effect ->> 'observed_at')::timestamptz, p_occurred_at);
begin
  select * into v_row from public.payout_accounts
  where gateway = 'stripe' and gateway_account_id = p_effect ->> 'gateway_account_id' for update;
  if v_row.id is null then
    return jsonb_build_object('outcome', 'ignored', 'detail', 'a connected account settle does not know');
  end if;
  if v_row.status = 'disabled' or v_row.status = v_status
     or (v_status <> 'disabled' and v_at is not null and v_row.status_event_at > v_at) then
    return jsonb_build_object('outcome', 'no_effect');
  end if;
  update public.payout_accounts
  set status = v_status, status_event_at = greatest(v_at, status_event_at),
      disabled_at = case when v_status = 'disabled' then now() else disabled_at end
  where id = v_row.id;
  return jsonb_build_object('outcome', 'applied');
end
$$;

-- Section - payouts
create table public.payouts (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete restrict,
  payout_account_id uuid not null references public.payout_accounts (id),
  wallet_id uuid not null references public.wallets (id),
  gateway text not null check (gateway in ('razorpayx', 'stripe')),
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  fee bigint not null check (fee >= 0 and fee < amount),
  currency text not null references public.currencies (code),
  status text not null default 'pending' check (status in (
    'pending', 'processing', 'processed', 'failed', 'rejected', 'cancelled', 'reversed')),
  gateway_payout_id text check (length(gateway_payout_id) between 1 and 100),
  gateway_status text check (length(gateway_status) between 1 and 50),
  failure_reason text check (length(failure_reason) <= 1000),
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  request_hash text not null,
  created_by uuid,
  send_attempts integer not null default 0,
  last_send_error text check (length(last_send_error) <= 500),
  sent_at timestamptz,
  processed_at timestamptz,
  returned_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (created_by, idempotency_key),
  unique (gateway, gateway_payout_id),
  check ((status in ('failed', 'rejected', 'cancelled', 'reversed')) = (returned_at is not null)),
  check ((status = 'processed') <= (processed_at is not null))
);
alter table public.payouts enable row level security;
create index payouts_account_id_created_at_idx on public.payouts (account_id, created_at desc);
create index payouts_wallet_id_idx on public.payouts (wallet_id);
create index payouts_open_updated_at_idx on public.payouts (updated_at)
  where status in ('pending', 'processing');
comment on table public.payouts is 'Money leaving a wallet to a payout account. Written only by the settle.*payout* functions; the status follows the gateway (pending -> processing -> processed -> reversed; failed, rejected, cancelled), and only forward.';
comment on column public.payouts.amount is 'Minor units taken from the wallet; the payee receives amount - fee.';
comment on column public.payouts.processed_at is 'When the gateway reported it processed (kept if it is reversed later).';

create policy "Members can read their accounts' payouts" on public.payouts
  for select to authenticated using (settle.is_member(account_id));

-- How far a status is along the lifecycle: an event may only move a payout further.
create function settle.payout_status_rank(p_status text) returns integer
language sql immutable set search_path = ''
as $$
  select case p_status when 'pending' then 0 when 'processing' then 1 when 'processed' then 2
    when 'failed' then 3 when 'rejected' then 3 when 'cancelled' then 3 when 'reversed' then 3 end
$$;

create function settle.guard_payout_update() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.account_id <> old.account_id or new.payout_account_id <> old.payout_account_id
     or new.wallet_id <> old.wallet_id or new.gateway <> old.gateway or new.amount <> old.amount
     or new.fee <> old.fee or new.currency <> old.currency
     or new.idempotency_key is distinct from old.idempotency_key
     or new.request_hash <> old.request_hash or new.created_at <> old.created_at
     or (old.gateway_payout_id is not null
         and new.gateway_payout_id is distinct from old.gateway_payout_id) then
    perform settle.fail(400, 'invalid_request', 'a payout''s terms cannot change');
  end if;
  if new.status <> old.status
     and settle.payout_status_rank(new.status) <= settle.payout_status_rank(old.status) then
    perform settle.fail(409, 'invalid_transition',
      format('payout %s cannot move from %s to %s', old.id, old.status, new.status));
  end if;
  new.updated_at := now();
  return new;
end
$$;
create trigger payouts_guard_update before update on public.payouts
  for each row execute function settle.guard_payout_update();

create function settle.payout_json(p public.payouts) returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object('id', p.id, 'account_id', p.account_id,
    'payout_account_id', p.payout_account_id, 'gateway', p.gateway, 'status', p.status,
    'amount', p.amount, 'fee', p.fee, 'currency', p.currency,
    'gateway_payout_id', p.gateway_payout_id, 'failure_reason', p.failure_reason,
    'created_at', p.created_at, 'processed_at', p.processed_at, 'returned_at', p.returned_at)
$$;

-- What an account may pay out of its wallet (whose row the caller has locked): everything
-- when its policy allows the top-up balance, else only earnings (escrow settlements credited
-- to the wallet) less the payouts not returned, and never more than the balance.
create function settle.payable_amount(p_wallet public.wallets, p_allow_topup boolean)
returns bigint
language sql stable security definer set search_path = ''
as $$
  select case when p_allow_topup then p_wallet.balance else greatest(0, least(p_wallet.balance,
    (select coalesce(sum(e.amount), 0) from public.ledger_entries e
     join public.ledger_transactions t on t.id = e.transaction_id
     where e.wallet_id = p_wallet.id and t.kind = 'escrow_settlement' and e.amount > 0)
    - (select coalesce(sum(p.amount), 0) from public.payouts p
       where p.wallet_id = p_wallet.id
         and p.status not in ('failed', 'rejected', 'cancelled', 'reversed'))))::bigint end
$$;

create function settle.payout_replay(p public.payouts, p_request_hash text) returns jsonb
language plpgsql stable set search_path = ''
as $$
begin
  if p.request_hash <> p_request_hash then
    perform settle.fail(409, 'idempotency_conflict', 'this Idempotency-Key was used with a different request');
  end if;
  return jsonb_build_object('payout', settle.payout_json(p), 'replayed', true);
end
$$;

-- The request's terms, checked before anything is locked: 400 for bad input, 404 for a payout
-- account that is not the caller's to pay into, 409 for one not ready. RazorpayX pays out INR
-- only; Stripe Connect does not pay out INR (MARKETPLACE_FACTS 3.1: India is not a Connect
-- region for separate charges and transfers; INR payouts go through RazorpayX). Returns the
-- policy.
create function settle.check_payout_terms(
  p_account public.payout_accounts, p_amount bigint, p_currency text
) returns public.payout_policies
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_policy public.payout_policies;
  v_fee bigint;
begin
  if not exists (select 1 from public.currencies where code = p_currency and enabled) then
    perform settle.fail(400, 'invalid_request', format('unsupported currency %s', coalesce(p_currency, 'null')));
  end if;
  if p_amount is null or p_amount < 1 or p_amount > 100000000000 then
    perform settle.fail(400, 'invalid_request', 'amount must be a positive number of minor units');
  end if;
  if p_account.id is null or not settle.has_role_on_account(p_account.account_id, 'owner') then
    perform settle.fail(404, 'not_found', 'payout account not found');
  end if;
  if p_account.gateway = 'razorpayx' and p_currency <> 'INR' then
    perform settle.fail(400, 'invalid_request', 'razorpayx pays out INR only');
  end if;
  if p_account.gateway = 'stripe' and p_currency = 'INR' then
    perform settle.fail(400, 'invalid_request', 'stripe connect does not pay out INR; use razorpayx');
  end if;
  v_policy := settle.payout_policy(p_account.account_id, p_currency);
  if v_policy.id is null then
    perform settle.fail(400, 'invalid_request', format('payouts are not offered in %s', p_currency));
  end if;
  v_fee := v_policy.fee_flat + (p_amount * v_policy.fee_bps) / 10000;
  if p_amount < v_policy.min_amount or p_amount <= v_fee then
    perform settle.fail(400, 'invalid_request', format(
      'a payout is at least %s minor units of %s (and more than its fee)', v_policy.min_amount, p_currency));
  end if;
  if p_account.status <> 'active' then
    perform settle.fail(409, 'payout_account_not_ready', format(
      'payout account %s is %s', p_account.id, p_account.status));
  end if;
  if settle.spending_blocked(p_account.account_id, p_currency) then
    perform settle.fail(409, 'spending_blocked', format(
      'the account''s %s wallet is blocked by an open dispute shortfall', p_currency));
  end if;
  return v_policy;
end
$$;

-- POST /payouts, as the signed-in owner: once per (user, Idempotency-Key). The wallet's row
-- lock orders concurrent payouts of one wallet, so the payable check, the daily limit and the
-- debit cannot interleave; the ledger trigger's balance check stays the last word.
-- Returns {"payout", "replayed"}.
create function settle.request_payout(
  p_payout_account_id uuid, p_amount bigint, p_currency text, p_idempotency_key text,
  p_request_hash text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_account public.payout_accounts;
  v_policy public.payout_policies;
  v_wallet public.wallets;
  v_payout public.payouts;
  v_used bigint;
  v_payable bigint;
begin
  if v_uid is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  if p_idempotency_key is not null then
    select * into v_payout from public.payouts
    where created_by = v_uid and idempotency_key = p_idempotency_key;
    if found then
      return settle.payout_replay(v_payout, p_request_hash);
    end if;
  end if;
  select * into v_account from public.payout_accounts where id = p_payout_account_id;
  v_policy := settle.check_payout_terms(v_account, p_amount, p_currency);

  select * into v_wallet from public.wallets
  where account_id = v_account.account_id and currency = p_currency for update;
  if not found then
    perform settle.fail(409, 'insufficient_funds', format('the account has no %s wallet', p_currency));
  end if;
  if p_idempotency_key is not null then
    -- A request with the same key may have been made while we waited for the lock.
    select * into v_payout from public.payouts
    where created_by = v_uid and idempotency_key = p_idempotency_key;
    if found then
      return settle.payout_replay(v_payout, p_request_hash);
    end if;
  end if;
  v_payable := settle.payable_amount(v_wallet, v_policy.allow_topup_balance);
  if p_amount > v_payable then
    perform settle.fail(409, 'insufficient_funds', format(
      'the %s wallet can pay out %s minor units, the payout is %s', p_currency, v_payable, p_amount));
  end if;
  select coalesce(sum(amount), 0) into v_used from public.payouts
  where account_id = v_account.account_id and currency = p_currency
    and created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'
    and status not in ('failed', 'rejected', 'cancelled', 'reversed');
  if v_used + p_amount > v_policy.daily_limit then
    perform settle.fail(409, 'payout_limit_exceeded', format(
      'payouts of %s minor units of %s today; the daily limit is %s', v_used, p_currency, v_policy.daily_limit));
  end if;

  insert into public.payouts (account_id, payout_account_id, wallet_id, gateway, amount, fee,
    currency, idempotency_key, request_hash, created_by)
  values (v_account.account_id, v_account.id, v_wallet.id, v_account.gateway, p_amount,
    v_policy.fee_flat + (p_amount * v_policy.fee_bps) / 10000, p_currency, p_idempotency_key,
    p_request_hash, v_uid)
  returning * into v_payout;
  perform settle.post_transaction('payout', 'payout:' || v_payout.id, null, 'payout requested',
    jsonb_build_array(
      jsonb_build_object('wallet_id', v_wallet.id, 'currency', p_currency, 'amount', -p_amount),
      jsonb_build_object('system_account', 'payouts_in_flight:' || v_account.gateway,
        'currency', p_currency, 'amount', p_amount)));
  return jsonb_build_object('payout', settle.payout_json(v_payout), 'replayed', false);
end
$$;

-- Section - the gateway's answers
-- The gateway accepted the payout (its id) or could not be asked (p_error): recorded, never a
-- status change. An id other than the one already recorded is a mismatch and changes nothing.
create function settle.record_payout_sent(
  p_payout_id uuid, p_gateway_payout_id text, p_gateway_status text, p_error text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
begin
  select * into v_payout from public.payouts where id = p_payout_id for update;
  if v_payout.id is null then
    perform settle.fail(404, 'not_found', 'payout not found');
  end if;
  if p_gateway_payout_id is not null and v_payout.gateway_payout_id is not null
     and v_payout.gateway_payout_id <> p_gateway_payout_id then
    return jsonb_build_object('outcome', 'mismatch', 'payout', settle.payout_json(v_payout),
      'detail', format('the gateway answered %s, settle holds %s', p_gateway_payout_id,
        v_payout.gateway_payout_id));
  end if;
  update public.payouts
  set gateway_payout_id = coalesce(gateway_payout_id, p_gateway_payout_id),
      gateway_status = coalesce(left(p_gateway_status, 50), gateway_status),
      sent_at = case when p_gateway_payout_id is not null then coalesce(sent_at, now()) else sent_at end,
      send_attempts = send_attempts + 1,
      last_send_error = left(p_error, 500)
  where id = p_payout_id
  returning * into v_payout;
  return jsonb_build_object('outcome', 'applied', 'payout', settle.payout_json(v_payout));
end
$$;

-- Moves a payout (locked by the caller) to p_status if that is further along, with its money:
-- processed sends the in-flight amount to clearing (and the fee to revenue); a returned status
-- brings the whole amount back to the wallet from wherever it is. Returns the outcome.
create function settle.move_payout(
  p_payout public.payouts, p_status text, p_gateway_status text, p_failure_reason text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_net bigint := p_payout.amount - p_payout.fee;
  v_sent boolean := p_payout.processed_at is not null;
  v_fee jsonb := '[]';
  v_fee_back jsonb := '[]';
begin
  if settle.payout_status_rank(p_status) is null then
    perform settle.fail(400, 'invalid_request', format('unknown payout status %s', p_status));
  end if;
  if settle.payout_status_rank(p_status) <= settle.payout_status_rank(p_payout.status) then
    return jsonb_build_object('outcome', 'no_effect', 'payout', settle.payout_json(p_payout));
  end if;
  if p_payout.fee > 0 then
    v_fee := jsonb_build_array(jsonb_build_object('system_account', 'revenue:payout_fees',
      'currency', p_payout.currency, 'amount', p_payout.fee));
    v_fee_back := jsonb_build_array(jsonb_build_object('system_account', 'revenue:payout_fees',
      'currency', p_payout.currency, 'amount', -p_payout.fee));
  end if;
  if p_status = 'processed' then
    perform settle.post_transaction('payout_sent', 'payout_sent:' || p_payout.id, null, 'payout processed',
      jsonb_build_array(
        jsonb_build_object('system_account', 'payouts_in_flight:' || p_payout.gateway,
          'currency', p_payout.currency, 'amount', -p_payout.amount),
        jsonb_build_object('system_account', 'gateway:' || p_payout.gateway,
          'currency', p_payout.currency, 'amount', v_net)) || v_fee);
  elsif settle.payout_status_rank(p_status) = 3 then
    perform settle.post_transaction('payout_return', 'payout_return:' || p_payout.id, null,
      'payout ' || p_status,
      case when v_sent then jsonb_build_array(
          jsonb_build_object('system_account', 'gateway:' || p_payout.gateway,
            'currency', p_payout.currency, 'amount', -v_net))
          || v_fee_back
        else jsonb_build_array(jsonb_build_object('system_account',
          'payouts_in_flight:' || p_payout.gateway, 'currency', p_payout.currency,
          'amount', -p_payout.amount)) end
      || jsonb_build_array(jsonb_build_object('wallet_id', p_payout.wallet_id,
        'currency', p_payout.currency, 'amount', p_payout.amount)));
  end if;
  update public.payouts
  set status = p_status,
      gateway_status = coalesce(left(p_gateway_status, 50), gateway_status),
      failure_reason = case when settle.payout_status_rank(p_status) = 3
        then coalesce(left(p_failure_reason, 1000), failure_reason, p_status) else failure_reason end,
      processed_at = case when p_status = 'processed' then now() else processed_at end,
      returned_at = case when settle.payout_status_rank(p_status) = 3 then now() else returned_at end
  where id = p_payout.id
  returning * into v_payout;
  return jsonb_build_object('outcome', 'applied', 'payout', settle.payout_json(v_payout));
end
$$;

-- A status the gateway reported for a payout (a refusal of the send, reconcile's read).
create function settle.apply_payout_status(
  p_payout_id uuid, p_status text, p_gateway_status text, p_failure_reason text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
begin
  select * into v_payout from public.payouts where id = p_payout_id for update;
  if v_payout.id is null then
    perform settle.fail(404, 'not_found', 'payout not found');
  end if;
  return settle.move_payout(v_payout, p_status, p_gateway_status, p_failure_reason);
end
$$;

-- A payout event (webhook). p_effect: {"gateway_payout_id", "settle_payout_id", "status" (settle's
-- word, null for events that carry none), "gateway_status", "amount" (what the gateway sends,
-- amount - fee), "currency", "failure_reason"}. Found by identity only: the gateway's id, or
-- settle's id the payout carried (reference_id, metadata); an unknown payout is 'ignored'.
create function settle.apply_payout_event(p_gateway text, p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_payout public.payouts;
  v_gid text := p_effect ->> 'gateway_payout_id';
  v_sid text := p_effect ->> 'settle_payout_id';
  v_result jsonb;
begin
  select * into v_payout from public.payouts
  where gateway = p_gateway and gateway_payout_id = v_gid for update;
  if v_payout.id is null and v_sid ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    select * into v_payout from public.payouts
    where id = v_sid::uuid and gateway = p_gateway for update;
  end if;
  if v_payout.id is null then
    return jsonb_build_object('outcome', 'ignored', 'detail', 'a payout settle does not know');
  end if;
  if v_gid is not null and v_payout.gateway_payout_id is distinct from v_gid then
    if v_payout.gateway_payout_id is not null then
      return jsonb_build_object('outcome', 'mismatch', 'detail', format(
        'payout %s is %s at the gateway, the event names %s', v_payout.id, v_payout.gateway_payout_id, v_gid));
    end if;
    -- The event came before the send's answer was recorded (or the answer was lost).
    update public.payouts set gateway_payout_id = v_gid, sent_at = coalesce(sent_at, now())
    where id = v_payout.id returning * into v_payout;
  end if;
  if (p_effect ->> 'amount')::bigint is distinct from (v_payout.amount - v_payout.fee)
     or upper(p_effect ->> 'currency') is distinct from v_payout.currency then
    return jsonb_build_object('outcome', 'mismatch', 'detail', format(
      'the event is for %s %s, payout %s sends %s %s', p_effect ->> 'amount', p_effect ->> 'currency',
      v_payout.id, v_payout.amount - v_payout.fee, v_payout.currency));
  end if;
  if p_effect ->> 'status' is null then
    return jsonb_build_object('outcome', 'no_effect');
  end if;
  v_result := settle.move_payout(v_payout, p_effect ->> 'status', p_effect ->> 'gateway_status',
    p_effect ->> 'failure_reason');
  return jsonb_build_object('outcome', v_result ->> 'outcome');
end
$$;

-- Payout webhooks (RazorpayX payout.*, Stripe Connect account.*, Stripe platform transfer.*):
-- stored in public.webhook_events once per (gateway, event id) and once per body key, and
-- applied in the same transaction, as settle.ingest_webhook does (same advisory lock classes).
-- An effect that raises is not stored: the error reaches the gateway as a 500 and it redelivers
-- (settle.retry_failed_webhooks dispatches through settle.apply_webhook_effect, which does not
-- know payout effects; reconcile also reads stuck payouts from the gateway).
create function settle.ingest_payout_webhook(
  p_gateway text, p_event_id text, p_event_type text, p_occurred_at timestamptz,
  p_raw_body text, p_body_key text, p_effect jsonb
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_result jsonb;
  v_payout_gateway text := case when p_gateway = 'razorpayx' then 'razorpayx' else 'stripe' end;
begin
  perform pg_advisory_xact_lock(1399157588, hashtext(p_gateway || '/' || p_event_id));
  if p_body_key is not null then
    perform pg_advisory_xact_lock(1399157589, hashtext(p_gateway || '/' || p_body_key));
  end if;
  if exists (select 1 from public.webhook_events where gateway = p_gateway and event_id = p_event_id)
     or (p_body_key is not null and exists (select 1 from public.webhook_events
         where gateway = p_gateway and body_key = p_body_key)) then
    return jsonb_build_object('duplicate', true, 'outcome', 'duplicate');
  end if;
  v_result := case p_effect ->> 'action'
    when 'payout' then settle.apply_payout_event(v_payout_gateway, p_effect)
    when 'payout_account' then settle.apply_payout_account_event(p_effect, p_occurred_at)
    else jsonb_build_object('outcome', 'ignored') end;
  insert into public.webhook_events (gateway, event_id, event_type, gateway_payment_id, amount,
    currency, raw_body, occurred_at, outcome, detail, processed_at, effect, body_key)
  values (p_gateway, p_event_id, p_event_type,
    coalesce(p_effect ->> 'gateway_payout_id', p_effect ->> 'gateway_account_id'),
    (p_effect ->> 'amount')::bigint, upper(p_effect ->> 'currency'), p_raw_body, p_occurred_at,
    v_result ->> 'outcome', left(v_result ->> 'detail', 1000), now(), p_effect, p_body_key);
  return v_result || jsonb_build_object('duplicate', false);
end
$$;

-- Section - reconciliation
-- Payouts still pending or processing whose last change is older than p_older_than_seconds:
-- claimed with SKIP LOCKED, and their updated_at touched as the lease (another reconciler skips
-- them until they age again). The caller sends the unsent ones again under their idempotency
-- key and reads the others from the gateway, outside any transaction.
create function settle.claim_stuck_payouts(p_limit integer, p_older_than_seconds integer)
returns setof public.payouts
language plpgsql security definer set search_path = ''
as $$
begin
  if p_limit is null or p_limit not between 1 and 1000 or p_older_than_seconds is null
     or p_older_than_seconds < 0 then
    perform settle.fail(400, 'invalid_request', 'limit must be 1-1000, older_than_seconds >= 0');
  end if;
  return query
  with due as (
    select p.id from public.payouts p
    where p.status in ('pending', 'processing')
      and p.updated_at <= now() - make_interval(secs => p_older_than_seconds)
    order by p.updated_at
    limit p_limit
    for update skip locked
  )
  update public.payouts p set updated_at = now() from due where p.id = due.id
  returning p.*;
end
$$;

-- Section - outbox events
-- payout.created on insert, payout.<status> on every status move.
create function settle.outbox_payout_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform settle.outbox_emit('payout.created', new.account_id, 'payout', new.id,
      settle.payout_json(new) || jsonb_build_object('previous_status', null));
  elsif new.status <> old.status then
    perform settle.outbox_emit('payout.' || new.status, new.account_id, 'payout', new.id,
      settle.payout_json(new) || jsonb_build_object('previous_status', old.status));
  end if;
  return null;
end
$$;
create trigger payouts_outbox after insert or update of status on public.payouts
  for each row execute function settle.outbox_payout_event();

-- Section - statistics
-- Beside payment_stats, the same pattern (rows filtered by settle.can_read_payment_stats, then
-- aggregated; a security_invoker view in public). Per UTC day of the request, gateway, currency.
create view settle.payout_stats_visible with (security_barrier = true) as
select
  (p.created_at at time zone 'UTC')::date as day,
  p.gateway,
  p.currency,
  count(*) as payouts_requested,
  count(*) filter (where p.status = 'processed') as payouts_sent,
  count(*) filter (where p.status in ('failed', 'rejected', 'cancelled')) as payouts_failed,
  count(*) filter (where p.status = 'reversed') as payouts_reversed,
  count(*) filter (where p.status in ('pending', 'processing')) as payouts_in_flight,
  coalesce(sum(p.amount), 0)::bigint as requested,
  coalesce(sum(p.amount - p.fee) filter (where p.status = 'processed'), 0)::bigint as sent,
  coalesce(sum(p.fee) filter (where p.status = 'processed'), 0)::bigint as fees,
  coalesce(sum(p.amount) filter (where p.returned_at is not null), 0)::bigint as returned,
  coalesce(sum(p.amount) filter (where p.status in ('pending', 'processing')), 0)::bigint as in_flight
from public.payouts p
where settle.can_read_payment_stats(p.account_id)
group by 1, 2, 3;

create view public.payout_stats with (security_invoker = true) as
select day, gateway, currency, payouts_requested, payouts_sent, payouts_failed, payouts_reversed,
  payouts_in_flight, requested, sent, fees, returned, in_flight
from settle.payout_stats_visible;
comment on view public.payout_stats is 'Payouts per UTC day of request, gateway and currency: requested (count and amount), sent = processed (amount reaching payees, fees kept), failed (failed, rejected, cancelled), reversed (after or before processing), in flight, returned = amounts credited back to wallets. Minor units. Signed-in users see their accounts; payment_analyst sees all.';

-- Section - ledger audit
-- In-flight accounts equal the sum of unfinished payouts (per gateway and currency), and each
-- payout's postings match its status: the wallet moved by -amount unless returned (then 0), and
-- the amount was sent to clearing exactly when it was processed.
create function settle.ledger_audit_payouts()
returns table (invariant text, subject text, detail text)
language sql stable security definer set search_path = ''
as $$
  with flight_ledger as (
    select e.system_account, e.currency, sum(e.amount) as total
    from public.ledger_entries e
    where e.system_account like 'payouts\_in\_flight:%'
    group by 1, 2
  ), flight_open as (
    select 'payouts_in_flight:' || p.gateway as system_account, p.currency, sum(p.amount) as total
    from public.payouts p where p.status in ('pending', 'processing')
    group by 1, 2
  )
  select 'payouts_in_flight_drift', coalesce(l.system_account, o.system_account) || ' ' || coalesce(l.currency, o.currency),
    format('in-flight account holds %s, unfinished payouts sum to %s', coalesce(l.total, 0), coalesce(o.total, 0))
  from flight_ledger l full join flight_open o
    on o.system_account = l.system_account and o.currency = l.currency
  where coalesce(l.total, 0) <> coalesce(o.total, 0)
  union all
  select 'payout_not_posted', p.id::text,
    format('status %s, %s %s; its postings moved the wallet by %s, sent postings %s', p.status,
      p.amount, p.currency, coalesce(m.moved, 0), coalesce(m.sent, 0))
  from public.payouts p
  left join lateral (
    select sum(e.amount) filter (where e.wallet_id = p.wallet_id) as moved,
      count(distinct t.id) filter (where t.kind = 'payout_sent') as sent
    from public.ledger_transactions t
    join public.ledger_entries e on e.transaction_id = t.id
    where t.idempotency_key in ('payout:' || p.id, 'payout_sent:' || p.id, 'payout_return:' || p.id)
  ) m on true
  where coalesce(m.moved, 0) <> case when p.returned_at is null then -p.amount else 0 end
     or coalesce(m.sent, 0) <> case when p.processed_at is null then 0 else 1 end
$$;

-- Section - privileges
-- Members read their payout accounts, payouts and policies (RLS); money moves only through the
-- functions above. The owner asks for a payout as themself (settle.request_payout); everything
-- else is the service role's (the functions, after talking to the gateway).
revoke execute on all functions in schema settle from public;
revoke all on public.payout_policies, public.payout_accounts, public.payouts
  from anon, authenticated, service_role;
grant select on public.payout_policies, public.payout_accounts, public.payouts
  to authenticated, service_role;
revoke all on public.payout_stats from anon, authenticated;
grant select on settle.payout_stats_visible, public.payout_stats
  to authenticated, payment_analyst, service_role;
grant execute on function settle.request_payout(uuid, bigint, text, text, text),
  settle.disable_payout_account(uuid)
  to authenticated, service_role;
grant execute on function settle.payout_policy(uuid, text),
  settle.create_payout_account(uuid, uuid, uuid, text, text, text, text, text, text, text),
  settle.apply_payout_account_event(jsonb, timestamptz),
  settle.record_payout_sent(uuid, text, text, text),
  settle.apply_payout_status(uuid, text, text, text), settle.apply_payout_event(text, jsonb),
  settle.ingest_payout_webhook(text, text, text, timestamptz, text, text, jsonb),
  settle.claim_stuck_payouts(integer, integer), settle.ledger_audit_payouts()
  to service_role;
