-- Spending the wallet: charges and holds on a wallet's balance by the app's backend, refunds of
-- charges, the sweep that releases expired holds, and orders (plans, products) paid from the
-- wallet.
--
-- The hold model (docs/decisions.md, "Spending the wallet"): a hold moves the amount from the
-- wallet to the account's held account (a house account held:<account id>, one per account and
-- currency as ledger entries carry their currency), so it is not spendable and is still the
-- account's. A hold resolves exactly once: captured (all or part; the rest goes back to the
-- wallet in the same transaction), voided, or expired by the sweep. Every movement is one
-- keyed ledger transaction, so balances still change only through the ledger trigger.
--
-- Wallet orders (gateway 'wallet') are created and paid in one transaction, through the same
-- status move as a gateway payment (so the ledger, subscription and outbox triggers apply;
-- settle.post_order_payment, orders file, posts them), and their refunds go back to the wallet
-- without a gateway (settle.post_refund_transaction, refunds file). A wallet whose account owes
-- a dispute shortfall in its currency cannot be spent (settle.spending_blocked, disputes file).

-- Section - held accounts
-- The house account an account's held money sits in (system accounts are [a-z_]+:[a-z0-9_]+;
-- a uuid without its dashes is still unique, the dashes sit at fixed places).
create function settle.held_account(p_account_id uuid) returns text
language sql immutable set search_path = ''
as $$
  select 'held:' || replace(p_account_id::text, '-', '')
$$;

-- Section - charges
create table public.wallet_charges (
  id uuid primary key default gen_random_uuid(),
  account_id uuid not null references public.accounts (id) on delete restrict,
  wallet_id uuid not null references public.wallets (id),
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  currency text not null references public.currencies (code),
  status text not null check (status in ('held', 'captured', 'released', 'refunded')),
  amount_captured bigint not null default 0 check (amount_captured between 0 and amount),
  amount_refunded bigint not null default 0 check (amount_refunded between 0 and amount_captured),
  description text check (length(description) between 1 and 500),
  reference text check (length(reference) between 1 and 255),
  metadata jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  idempotency_key text not null unique check (length(idempotency_key) between 1 and 255),
  request_hash text not null,
  expires_at timestamptz,
  release_reason text check (release_reason in ('voided', 'expired')),
  captured_at timestamptz,
  released_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((status = 'held') <= (expires_at is not null and amount_captured = 0)),
  check ((status in ('captured', 'refunded')) = (captured_at is not null and amount_captured > 0)),
  check ((status = 'released') = (released_at is not null and release_reason is not null)),
  check ((status = 'refunded') = (amount_captured > 0 and amount_refunded = amount_captured))
);
alter table public.wallet_charges enable row level security;
comment on table public.wallet_charges is 'Money spent from (captured) or held on (held) a wallet by the app''s backend. Written only by the settle.*wallet_charge* functions.';
comment on column public.wallet_charges.amount is 'Minor units charged, or held while status is held; a capture takes amount_captured of it and returns the rest.';
comment on column public.wallet_charges.expires_at is 'A hold still held at this time is released by the sweep (settle.expire_wallet_holds); capture is refused from then on.';
create index wallet_charges_account_id_created_at_idx on public.wallet_charges (account_id, created_at desc);
create index wallet_charges_held_expires_at_idx on public.wallet_charges (expires_at)
  where status = 'held';

create policy "Members can read their accounts' wallet charges" on public.wallet_charges
  for select to authenticated using (settle.is_member(account_id));

create table public.wallet_charge_refunds (
  id uuid primary key default gen_random_uuid(),
  charge_id uuid not null references public.wallet_charges (id),
  account_id uuid not null references public.accounts (id) on delete restrict,
  amount bigint not null check (amount > 0),
  currency text not null references public.currencies (code),
  idempotency_key text check (length(idempotency_key) between 1 and 255),
  request_hash text not null,
  created_at timestamptz not null default now(),
  unique (charge_id, idempotency_key)
);
alter table public.wallet_charge_refunds enable row level security;
create index wallet_charge_refunds_charge_id_idx on public.wallet_charge_refunds (charge_id);

create policy "Members can read their accounts' wallet charge refunds" on public.wallet_charge_refunds
  for select to authenticated using (settle.is_member(account_id));

-- A charge's terms are fixed; its status moves held -> captured | released, captured -> refunded.
create function settle.guard_wallet_charge_update() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.account_id <> old.account_id or new.wallet_id <> old.wallet_id or new.amount <> old.amount
     or new.currency <> old.currency or new.idempotency_key <> old.idempotency_key
     or new.request_hash <> old.request_hash or new.created_at <> old.created_at
     or new.expires_at is distinct from old.expires_at
     or new.description is distinct from old.description
     or new.reference is distinct from old.reference or new.metadata <> old.metadata then
    perform settle.fail(400, 'invalid_request', 'a wallet charge''s terms cannot change');
  end if;
  if new.status <> old.status and not (
    (old.status = 'held' and new.status in ('captured', 'released'))
    or (old.status = 'captured' and new.status = 'refunded')
  ) then
    perform settle.fail(409, 'invalid_transition',
      format('wallet charge %s cannot move from %s to %s', old.id, old.status, new.status));
  end if;
  if old.status <> 'held' and new.amount_captured <> old.amount_captured then
    perform settle.fail(409, 'invalid_transition', 'a charge is captured once');
  end if;
  new.updated_at := now();
  return new;
end
$$;
create trigger wallet_charges_guard_update before update on public.wallet_charges
  for each row execute function settle.guard_wallet_charge_update();

-- What the API, the SQL functions and the outbox show of a charge.
create function settle.wallet_charge_json(p_charge public.wallet_charges) returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'id', p_charge.id, 'account_id', p_charge.account_id, 'status', p_charge.status,
    'amount', p_charge.amount, 'currency', p_charge.currency,
    'amount_captured', p_charge.amount_captured, 'amount_refunded', p_charge.amount_refunded,
    'description', p_charge.description, 'reference', p_charge.reference,
    'metadata', p_charge.metadata, 'expires_at', p_charge.expires_at,
    'release_reason', p_charge.release_reason, 'captured_at', p_charge.captured_at,
    'released_at', p_charge.released_at, 'created_at', p_charge.created_at)
$$;

-- Section - creating charges and holds
-- The request's terms, checked before anything is read or locked: 400 for bad input, 404 for an
-- unknown account.
create function settle.check_wallet_charge_terms(
  p_account_id uuid, p_amount bigint, p_currency text, p_capture boolean,
  p_expires_in_seconds integer, p_description text, p_reference text, p_metadata jsonb
) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  v_currency public.currencies;
begin
  if p_account_id is null or p_capture is null then
    perform settle.fail(400, 'invalid_request', 'account_id and capture are required');
  end if;
  select * into v_currency from public.currencies where code = p_currency and enabled;
  if not found then
    perform settle.fail(400, 'invalid_request', format('unsupported currency %s', coalesce(p_currency, 'null')));
  end if;
  if p_amount is null or p_amount < 1 or p_amount > v_currency.topup_max then
    perform settle.fail(400, 'invalid_request', format(
      'amount must be between 1 and %s minor units of %s', v_currency.topup_max, p_currency));
  end if;
  if p_capture and p_expires_in_seconds is not null then
    perform settle.fail(400, 'invalid_request', 'expires_in_seconds is only for a hold (capture false)');
  end if;
  if p_expires_in_seconds is not null and p_expires_in_seconds not between 1 and 2592000 then
    perform settle.fail(400, 'invalid_request', 'expires_in_seconds must be between 1 and 2592000 (30 days)');
  end if;
  if length(p_description) not between 1 and 500 or length(p_reference) not between 1 and 255 then
    perform settle.fail(400, 'invalid_request', 'description is 1-500 characters, reference 1-255');
  end if;
  if p_metadata is not null and (jsonb_typeof(p_metadata) <> 'object' or length(p_metadata::text) > 4096) then
    perform settle.fail(400, 'invalid_request', 'metadata must be a JSON object of at most 4 KB');
  end if;
  if not exists (select 1 from public.accounts where id = p_account_id) then
    perform settle.fail(404, 'not_found', 'account not found');
  end if;
end
$$;

-- The same key and terms return the charge made under that key; other terms are a 409.
create function settle.wallet_charge_replay(p_charge public.wallet_charges, p_request_hash text)
returns jsonb
language plpgsql stable set search_path = ''
as $$
begin
  if p_charge.request_hash <> p_request_hash then
    perform settle.fail(409, 'idempotency_conflict', 'this Idempotency-Key was used with a different request');
  end if;
  return jsonb_build_object('charge', settle.wallet_charge_json(p_charge), 'replayed', true);
end
$$;

-- Charges (p_capture true: the wallet is debited and revenue:wallet_charges credited) or holds
-- (false: the amount moves to the account's held account until captured, voided or expired)
-- an account's wallet, once per idempotency key. The wallet row lock orders concurrent charges
-- of one wallet, so the balance check and the debit cannot interleave; the ledger trigger's
-- balance check stays as the last word. After the lock and before the balance check, a wallet
-- that owes a dispute shortfall is refused with spending_blocked (such a wallet is drained by
-- every credit, so the answer would otherwise be a less telling insufficient_funds). Over
-- 70 lines by two: the lock, the replay check and the insert must stay together. Returns
-- {"charge", "replayed"}.
create function settle.charge_wallet(
  p_account_id uuid, p_amount bigint, p_currency text, p_idempotency_key text,
  p_capture boolean default true, p_expires_in_seconds integer default null,
  p_description text default null, p_reference text default null, p_metadata jsonb default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_hash text := md5(jsonb_build_array(p_account_id, p_amount, p_currency, p_capture,
    p_expires_in_seconds, p_description, p_reference, coalesce(p_metadata, '{}'::jsonb))::text);
  v_charge public.wallet_charges;
  v_wallet public.wallets;
begin
  if p_idempotency_key is null or p_idempotency_key !~ '^[!-~]{1,255}$' then
    perform settle.fail(400, 'invalid_request', 'an idempotency key of 1-255 visible ASCII characters is required');
  end if;
  select * into v_charge from public.wallet_charges where idempotency_key = p_idempotency_key;
  if found then
    return settle.wallet_charge_replay(v_charge, v_hash);
  end if;
  perform settle.check_wallet_charge_terms(p_account_id, p_amount, p_currency, p_capture,
    p_expires_in_seconds, p_description, p_reference, p_metadata);
  select * into v_wallet from public.wallets
  where account_id = p_account_id and currency = p_currency for update;
  if not found then
    perform settle.fail(409, 'insufficient_funds', format('the account has no %s wallet', p_currency));
  end if;
  -- A sender with the same key may have charged this wallet while we waited for its lock: its
  -- charge is the answer, whatever the balance is now.
  select * into v_charge from public.wallet_charges where idempotency_key = p_idempotency_key;
  if found then
    return settle.wallet_charge_replay(v_charge, v_hash);
  end if;
  if settle.spending_blocked(p_account_id, p_currency) then
    perform settle.fail(409, 'spending_blocked', format(
      'the account owes a dispute shortfall in %s; its wallet cannot be spent in %s until it is repaid',
      p_currency, p_currency));
  end if;
  if v_wallet.balance < p_amount then
    perform settle.fail(409, 'insufficient_funds', format(
      'the %s wallet holds %s minor units, the charge is %s', p_currency, v_wallet.balance, p_amount));
  end if;

  insert into public.wallet_charges (account_id, wallet_id, amount, currency, status,
    amount_captured, description, reference, metadata, idempotency_key, request_hash, expires_at,
    captured_at)
  values (p_account_id, v_wallet.id, p_amount, p_currency,
    case when p_capture then 'captured' else 'held' end,
    case when p_capture then p_amount else 0 end, p_description, p_reference,
    coalesce(p_metadata, '{}'::jsonb), p_idempotency_key, v_hash,
    case when not p_capture then now() + make_interval(secs => coalesce(p_expires_in_seconds, 86400)) end,
    case when p_capture then now() end)
  on conflict (idempotency_key) do nothing
  returning * into v_charge;
  if v_charge.id is null then
    -- A concurrent request with the same key won the insert; answer as its replay.
    select * into v_charge from public.wallet_charges where idempotency_key = p_idempotency_key;
    return settle.wallet_charge_replay(v_charge, v_hash);
  end if;

  perform settle.post_transaction(
    case when p_capture then 'wallet_charge' else 'wallet_hold' end,
    'wallet_charge:' || v_charge.id, null,
    coalesce(p_description, case when p_capture then 'wallet charge' else 'wallet hold' end),
    jsonb_build_array(
      jsonb_build_object('wallet_id', v_wallet.id, 'currency', p_currency, 'amount', -p_amount),
      jsonb_build_object('system_account',
        case when p_capture then 'revenue:wallet_charges' else settle.held_account(p_account_id) end,
        'currency', p_currency, 'amount', p_amount)));
  return jsonb_build_object('charge', settle.wallet_charge_json(v_charge), 'replayed', false);
end
$$;

-- Section - resolving holds
-- A held charge, locked; anything else is a 404 or a 409 naming its status.
create function settle.lock_held_charge(p_charge_id uuid) returns public.wallet_charges
language plpgsql security definer set search_path = ''
as $$
declare
  v_charge public.wallet_charges;
begin
  select * into v_charge from public.wallet_charges where id = p_charge_id for update;
  if v_charge.id is null then
    perform settle.fail(404, 'not_found', 'wallet charge not found');
  end if;
  if v_charge.status <> 'held' then
    perform settle.fail(409, 'charge_not_held',
      format('wallet charge %s is %s, not held', v_charge.id, v_charge.status));
  end if;
  return v_charge;
end
$$;

-- Releases a held charge (locked by the caller) back to its wallet.
create function settle.release_wallet_hold(p_charge public.wallet_charges, p_reason text)
returns public.wallet_charges
language plpgsql security definer set search_path = ''
as $$
declare
  v_charge public.wallet_charges;
begin
  update public.wallet_charges
  set status = 'released', release_reason = p_reason, released_at = now()
  where id = p_charge.id and status = 'held'
  returning * into v_charge;
  perform settle.post_transaction('wallet_release', 'wallet_release:' || p_charge.id, null,
    'wallet hold ' || p_reason,
    jsonb_build_array(
      jsonb_build_object('system_account', settle.held_account(p_charge.account_id),
        'currency', p_charge.currency, 'amount', -p_charge.amount),
      jsonb_build_object('wallet_id', p_charge.wallet_id, 'currency', p_charge.currency,
        'amount', p_charge.amount)));
  return v_charge;
end
$$;

-- Captures all (p_amount null) or part of a hold: the captured amount goes to revenue, the rest
-- back to the wallet, in one transaction. Refused once the hold has expired, even before the
-- sweep has released it.
create function settle.capture_wallet_charge(p_charge_id uuid, p_amount bigint default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_charge public.wallet_charges := settle.lock_held_charge(p_charge_id);
  v_amount bigint := coalesce(p_amount, v_charge.amount);
  v_entries jsonb;
begin
  if v_amount < 1 then
    perform settle.fail(400, 'invalid_request', 'a capture amount must be a positive number of minor units');
  end if;
  if v_amount > v_charge.amount then
    perform settle.fail(409, 'capture_exceeds_hold',
      format('capture of %s exceeds the hold of %s %s', v_amount, v_charge.amount, v_charge.currency));
  end if;
  if v_charge.expires_at <= now() then
    perform settle.fail(409, 'hold_expired', format('wallet hold %s expired at %s', v_charge.id, v_charge.expires_at));
  end if;
  update public.wallet_charges
  set status = 'captured', amount_captured = v_amount, captured_at = now()
  where id = v_charge.id returning * into v_charge;
  v_entries := jsonb_build_array(
    jsonb_build_object('system_account', settle.held_account(v_charge.account_id),
      'currency', v_charge.currency, 'amount', -v_charge.amount),
    jsonb_build_object('system_account', 'revenue:wallet_charges', 'currency', v_charge.currency,
      'amount', v_amount));
  if v_amount < v_charge.amount then
    v_entries := v_entries || jsonb_build_array(jsonb_build_object('wallet_id', v_charge.wallet_id,
      'currency', v_charge.currency, 'amount', v_charge.amount - v_amount));
  end if;
  perform settle.post_transaction('wallet_charge', 'wallet_capture:' || v_charge.id, null,
    coalesce(v_charge.description, 'wallet hold captured'), v_entries);
  return jsonb_build_object('charge', settle.wallet_charge_json(v_charge));
end
$$;

create function settle.void_wallet_charge(p_charge_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
begin
  return jsonb_build_object('charge', settle.wallet_charge_json(
    settle.release_wallet_hold(settle.lock_held_charge(p_charge_id), 'voided')));
end
$$;

-- The scheduled sweep: releases up to p_limit holds expired at p_now, oldest first. Rows another
-- transaction holds (a capture or void in flight) are skipped, never waited for; the batch is
-- released in wallet order so two sweeps never lock two wallets in opposite orders. Returns how
-- many it released.
create function settle.expire_wallet_holds(p_now timestamptz default now(), p_limit integer default 500)
returns integer
language plpgsql security definer set search_path = ''
as $$
declare
  v_charge public.wallet_charges;
  v_count integer := 0;
begin
  if p_now is null or p_limit is null or p_limit not between 1 and 10000 then
    perform settle.fail(400, 'invalid_request', 'now is required and limit must be between 1 and 10000');
  end if;
  for v_charge in
    with due as (
      select * from public.wallet_charges c
      where c.status = 'held' and c.expires_at <= p_now
      order by c.expires_at
      limit p_limit
      for update skip locked
    )
    select * from due d order by d.wallet_id, d.id
  loop
    perform settle.release_wallet_hold(v_charge, 'expired');
    v_count := v_count + 1;
  end loop;
  return v_count;
end
$$;

-- Section - refunding charges
-- Credits a captured charge back to its wallet: all that remains (p_amount null) or part, never
-- more than was captured in total. With a key, the same request returns the same refund and
-- another one under that key is a 409. Returns {"charge", "refund", "replayed"}.
create function settle.refund_wallet_charge(
  p_charge_id uuid, p_amount bigint default null, p_idempotency_key text default null
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_charge public.wallet_charges;
  v_refund public.wallet_charge_refunds;
  v_hash text := md5(jsonb_build_array(p_charge_id, p_amount)::text);
  v_amount bigint;
begin
  select * into v_charge from public.wallet_charges where id = p_charge_id for update;
  if v_charge.id is null then
    perform settle.fail(404, 'not_found', 'wallet charge not found');
  end if;
  if p_idempotency_key is not null then
    select * into v_refund from public.wallet_charge_refunds
    where charge_id = p_charge_id and idempotency_key = p_idempotency_key;
    if found then
      if v_refund.request_hash <> v_hash then
        perform settle.fail(409, 'idempotency_conflict', 'this Idempotency-Key was used with a different request');
      end if;
      return jsonb_build_object('charge', settle.wallet_charge_json(v_charge),
        'refund', to_jsonb(v_refund), 'replayed', true);
    end if;
  end if;
  if v_charge.status not in ('captured', 'refunded') then
    perform settle.fail(409, 'charge_not_captured',
      format('wallet charge %s is %s; only a captured charge can be refunded', v_charge.id, v_charge.status));
  end if;
  v_amount := coalesce(p_amount, v_charge.amount_captured - v_charge.amount_refunded);
  if p_amount is not null and p_amount < 1 then
    perform settle.fail(400, 'invalid_request', 'a refund amount must be a positive number of minor units');
  end if;
  if v_amount < 1 or v_amount > v_charge.amount_captured - v_charge.amount_refunded then
    perform settle.fail(409, 'refund_exceeds_charge', format(
      'refund of %s exceeds what remains refundable on wallet charge %s: %s of %s %s', v_amount,
      v_charge.id, v_charge.amount_captured - v_charge.amount_refunded, v_charge.amount_captured,
      v_charge.currency));
  end if;

  insert into public.wallet_charge_refunds (charge_id, account_id, amount, currency,
    idempotency_key, request_hash)
  values (v_charge.id, v_charge.account_id, v_amount, v_charge.currency, p_idempotency_key, v_hash)
  returning * into v_refund;
  update public.wallet_charges
  set amount_refunded = amount_refunded + v_amount,
      status = case when amount_refunded + v_amount = amount_captured then 'refunded' else 'captured' end
  where id = v_charge.id returning * into v_charge;
  perform settle.post_transaction('wallet_refund', 'wallet_charge_refund:' || v_refund.id, null,
    'wallet charge refund',
    jsonb_build_array(
      jsonb_build_object('system_account', 'revenue:wallet_charges', 'currency', v_charge.currency,
        'amount', -v_amount),
      jsonb_build_object('wallet_id', v_charge.wallet_id, 'currency', v_charge.currency,
        'amount', v_amount)));
  return jsonb_build_object('charge', settle.wallet_charge_json(v_charge),
    'refund', to_jsonb(v_refund), 'replayed', false);
end
$$;

-- Section - outbox events
-- wallet_charge.captured | .held on insert; .captured | .released when a hold resolves;
-- .refunded whenever more is refunded (refund_amount says how much this time).
create function settle.outbox_wallet_charge_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_type text;
  v_payload jsonb := settle.wallet_charge_json(new);
begin
  if tg_op = 'INSERT' then
    v_type := 'wallet_charge.' || new.status;
    v_payload := v_payload || jsonb_build_object('previous_status', null);
  elsif new.amount_refunded > old.amount_refunded then
    v_type := 'wallet_charge.refunded';
    v_payload := v_payload || jsonb_build_object('previous_status', old.status,
      'refund_amount', new.amount_refunded - old.amount_refunded);
  elsif new.status in ('captured', 'released') and old.status = 'held' then
    v_type := 'wallet_charge.' || new.status;
    v_payload := v_payload || jsonb_build_object('previous_status', old.status);
  else
    return null;
  end if;
  perform settle.outbox_emit(v_type, new.account_id, 'wallet_charge', new.id, v_payload);
  return null;
end
$$;

create trigger wallet_charges_outbox after insert or update of status, amount_refunded
  on public.wallet_charges
  for each row execute function settle.outbox_wallet_charge_event();

-- Section - statistics
-- Beside payment_stats (orders), the same pattern: aggregated with the owner's rights after
-- filtering rows by the caller (settle.can_read_payment_stats), exposed as a security_invoker
-- view. Per UTC day of the charge's creation and currency.
create view settle.wallet_spending_stats_visible with (security_barrier = true) as
select
  (c.created_at at time zone 'UTC')::date as day,
  c.currency,
  count(*) filter (where c.captured_at is not null and c.expires_at is null) as charges,
  count(*) filter (where c.expires_at is not null) as holds,
  count(*) filter (where c.expires_at is not null and c.captured_at is not null) as holds_captured,
  count(*) filter (where c.release_reason = 'voided') as holds_voided,
  count(*) filter (where c.release_reason = 'expired') as holds_expired,
  coalesce(sum(c.amount) filter (where c.status = 'held'), 0)::bigint as held,
  coalesce(sum(c.amount_captured), 0)::bigint as captured,
  coalesce(sum(c.amount_refunded), 0)::bigint as refunded,
  (coalesce(sum(c.amount_captured), 0) - coalesce(sum(c.amount_refunded), 0))::bigint as net
from public.wallet_charges c
where settle.can_read_payment_stats(c.account_id)
group by 1, 2;

create view public.wallet_spending_stats with (security_invoker = true) as
select day, currency, charges, holds, holds_captured, holds_voided, holds_expired, held, captured,
  refunded, net
from settle.wallet_spending_stats_visible;
comment on view public.wallet_spending_stats is 'Wallet spending per UTC day of charge creation and currency: charges (captured at once), holds (and how many were captured, voided, expired), held = amounts still on hold, captured = amounts spent, refunded = amounts credited back, net = captured - refunded. Minor units. Orders paid from the wallet are in payment_stats under gateway wallet. Signed-in users see their accounts; payment_analyst sees all.';

-- Section - ledger audit
-- Held accounts equal the sum of open holds (per account and currency), and every charge's
-- postings moved its wallet by exactly what the charge says: -(captured - refunded), and the
-- amount itself while it is held.
create function settle.ledger_audit_holds()
returns table (invariant text, subject text, detail text)
language sql stable security definer set search_path = ''
as $$
  with held_ledger as (
    select e.system_account, e.currency, sum(e.amount) as total
    from public.ledger_entries e
    where e.system_account like 'held:%'
    group by 1, 2
  ), held_open as (
    select settle.held_account(c.account_id) as system_account, c.currency, sum(c.amount) as total
    from public.wallet_charges c where c.status = 'held'
    group by 1, 2
  )
  select 'held_account_drift', coalesce(l.system_account, o.system_account) || ' ' || coalesce(l.currency, o.currency),
    format('held account holds %s, open holds sum to %s', coalesce(l.total, 0), coalesce(o.total, 0))
  from held_ledger l full join held_open o
    on o.system_account = l.system_account and o.currency = l.currency
  where coalesce(l.total, 0) <> coalesce(o.total, 0)
  union all
  select 'wallet_charge_not_posted', c.id::text,
    format('status %s, captured %s, refunded %s of %s %s; its postings moved the wallet by %s',
      c.status, c.amount_captured, c.amount_refunded, c.amount, c.currency, coalesce(m.moved, 0))
  from public.wallet_charges c
  left join lateral (
    -- Looked up by key (unique index), one charge at a time.
    select sum(e.amount) as moved
    from (select 'wallet_charge:' || c.id as k
          union all select 'wallet_capture:' || c.id
          union all select 'wallet_release:' || c.id
          union all select 'wallet_charge_refund:' || r.id
                    from public.wallet_charge_refunds r where r.charge_id = c.id) keys
    join public.ledger_transactions t on t.idempotency_key = keys.k
    join public.ledger_entries e on e.transaction_id = t.id and e.wallet_id = c.wallet_id
  ) m on true
  where coalesce(m.moved, 0) <> -(c.amount_captured - c.amount_refunded)
    - case when c.status = 'held' then c.amount else 0 end
$$;

-- Section - wallet orders
-- A wallet order never waits for anything: at commit it is paid (or refunded since). So
-- reconciliation, which claims created/authorized/failed/expired orders, never sees one.
create function settle.check_wallet_order_paid() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.orders where id = new.id
             and status not in ('paid', 'partially_refunded', 'refunded')) then
    perform settle.fail(400, 'invalid_request', 'a wallet order is paid in the transaction that creates it');
  end if;
  return null;
end
$$;
create constraint trigger orders_wallet_paid after insert on public.orders
  deferrable initially deferred
  for each row when (new.gateway = 'wallet')
  execute function settle.check_wallet_order_paid();

-- Section - refunds of wallet orders
-- A refund of a wallet order has no gateway to ask: it is processed when it is counted, with a
-- refund id of its own, so the API never submits it and reconciliation never claims it.
create function settle.settle_wallet_refund() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.status := 'processed';
  new.processed_at := now();
  new.gateway_refund_id := coalesce(new.gateway_refund_id, 'wallet_' || replace(new.id::text, '-', ''));
  return new;
end
$$;
create trigger refunds_wallet_settle before insert on public.refunds
  for each row when (new.gateway = 'wallet')
  execute function settle.settle_wallet_refund();

-- refund.created is emitted on insert (outbox file); a wallet refund is processed at once, so
-- receivers get its refund.processed right after.
create function settle.outbox_wallet_refund_processed() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform settle.outbox_emit('refund.processed', new.account_id, 'refund', new.id,
    settle.outbox_refund_payload(new, 'pending'));
  return null;
end
$$;
create trigger refunds_wallet_processed_outbox after insert on public.refunds
  for each row when (new.gateway = 'wallet')
  execute function settle.outbox_wallet_refund_processed();

-- Section - paying an order from the wallet
-- The catalog price of what the wallet may pay for: a plan or a product (400 otherwise, 404 for
-- an unknown or inactive one).
create function settle.wallet_order_price(p_purpose text, p_plan_id text, p_product_id text,
  out amount bigint, out currency text)
language plpgsql stable security definer set search_path = ''
as $$
begin
  if p_purpose = 'plan' and p_product_id is null then
    select p.amount, p.currency into amount, currency from public.plans p where p.id = p_plan_id and p.active;
  elsif p_purpose = 'product' and p_plan_id is null then
    select p.amount, p.currency into amount, currency from public.products p
    where p.id = p_product_id and p.active;
  else
    perform settle.fail(400, 'invalid_request', 'the wallet pays for a plan (plan_id) or a product (product_id)');
  end if;
  if amount is null then
    perform settle.fail(404, 'not_found', p_purpose || ' not found');
  end if;
end
$$;

-- Runs as the calling user, like settle.create_order: an owner of the account buys a plan or a
-- product at its catalog price from the account's wallet in the price's currency. The order is
-- inserted created and moved to paid at once (the path every gateway payment takes), all in
-- this transaction: a balance too small (or a wallet that owes a dispute shortfall, as in
-- charge_wallet) is a 409 and nothing is written. The same key and request return the same order
-- ({"replayed": true}); another request under it is a 409.
create function settle.pay_order_from_wallet(
  p_purpose text, p_plan_id text, p_product_id text, p_account_id uuid,
  p_idempotency_key text, p_request_hash text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_account uuid := p_account_id;
  v_amount bigint;
  v_currency text;
  v_wallet public.wallets;
  v_order public.orders;
begin
  if v_uid is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  if p_idempotency_key is not null then
    select * into v_order from public.orders where created_by = v_uid and idempotency_key = p_idempotency_key;
    if found then
      return settle.wallet_order_replay(v_order, p_request_hash);
    end if;
  end if;
  if v_account is null then
    select id into v_account from public.accounts where personal_owner_id = v_uid;
  end if;
  if v_account is null or not settle.is_member(v_account) then
    perform settle.fail(404, 'not_found', 'account not found');
  end if;
  if not settle.has_role_on_account(v_account, 'owner') then
    perform settle.fail(403, 'forbidden', 'only an owner of the account can pay from its wallet');
  end if;
  select c.amount, c.currency into v_amount, v_currency
  from settle.wallet_order_price(p_purpose, p_plan_id, p_product_id) c;

  -- The wallet row lock orders this with every other spend of the wallet.
  select * into v_wallet from public.wallets where account_id = v_account and currency = v_currency for update;
  if p_idempotency_key is not null then
    -- The same request may have been paid while we waited for the wallet: that is the answer.
    select * into v_order from public.orders where created_by = v_uid and idempotency_key = p_idempotency_key;
    if found then
      return settle.wallet_order_replay(v_order, p_request_hash);
    end if;
  end if;
  if settle.spending_blocked(v_account, v_currency) then
    perform settle.fail(409, 'spending_blocked', format(
      'the account owes a dispute shortfall in %s; its wallet cannot be spent in %s until it is repaid',
      v_currency, v_currency));
  end if;
  if v_wallet.id is null or v_wallet.balance < v_amount then
    perform settle.fail(409, 'insufficient_funds', format(
      'the %s wallet holds %s minor units, the price is %s', v_currency, coalesce(v_wallet.balance, 0), v_amount));
  end if;
  insert into public.orders (account_id, created_by, gateway, purpose, plan_id, product_id,
    amount, currency, idempotency_key, request_hash)
  values (v_account, v_uid, 'wallet', p_purpose, p_plan_id, p_product_id, v_amount, v_currency,
    p_idempotency_key, p_request_hash)
  on conflict (created_by, idempotency_key) do nothing
  returning * into v_order;
  if v_order.id is null then
    select * into v_order from public.orders where created_by = v_uid and idempotency_key = p_idempotency_key;
    return settle.wallet_order_replay(v_order, p_request_hash);
  end if;
  update public.orders
  set status = 'paid', paid_at = now(), gateway_payment_id = 'wallet_' || replace(id::text, '-', '')
  where id = v_order.id
  returning * into v_order;
  return jsonb_build_object('order', to_jsonb(v_order), 'replayed', false);
end
$$;

create function settle.wallet_order_replay(p_order public.orders, p_request_hash text) returns jsonb
language plpgsql stable set search_path = ''
as $$
begin
  if p_order.request_hash is distinct from p_request_hash then
    perform settle.fail(409, 'idempotency_conflict', 'this Idempotency-Key was used with a different request');
  end if;
  return jsonb_build_object('order', to_jsonb(p_order), 'replayed', true);
end
$$;

-- Section - privileges
-- Money moves through the functions above only: users and the service role read the rows.
revoke execute on all functions in schema settle from public;
revoke all on public.wallet_charges, public.wallet_charge_refunds
  from anon, authenticated, service_role;
grant select on public.wallet_charges, public.wallet_charge_refunds to authenticated, service_role;
revoke all on public.wallet_spending_stats from anon, authenticated;
grant select on settle.wallet_spending_stats_visible, public.wallet_spending_stats
  to authenticated, payment_analyst, service_role;
grant execute on function settle.pay_order_from_wallet(text, text, text, uuid, text, text)
  to authenticated, service_role;
grant execute on function
  settle.charge_wallet(uuid, bigint, text, text, boolean, integer, text, text, jsonb),
  settle.capture_wallet_charge(uuid, bigint), settle.void_wallet_charge(uuid),
  settle.expire_wallet_holds(timestamptz, integer),
  settle.refund_wallet_charge(uuid, bigint, text), settle.ledger_audit_holds()
  to service_role;
