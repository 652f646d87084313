-- Spending the wallet: charges and holds on a wallet's balance, refunds of charges, and the
-- sweep that releases expired holds. Paying orders from the wallet is the next migration.
--
-- The hold model (docs/decisions.md, "Spending the wallet"): a hold moves the amount from the
-- wallet to the account's held account (a house account held:<account id>, one per account and
-- currency as ledger entries carry their currency), so it is not spendable and is still the
-- account's. A hold resolves exactly once: captured (all or part; the rest goes back to the
-- wallet in the same transaction), voided, or expired by the sweep. Every movement is one
-- keyed ledger transaction, so balances still change only through the ledger trigger.

-- Section - ledger kinds
alter table public.ledger_transactions drop constraint ledger_transactions_kind_check;
alter table public.ledger_transactions add constraint ledger_transactions_kind_check check (kind in (
  'topup', 'purchase', 'refund', 'adjustment',
  'wallet_charge', 'wallet_hold', 'wallet_release', 'wallet_refund'
));

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
create index wallet_charges_account_id_created_at_idx on public.wallet_charges (account_id, created_at desc);
create index wallet_charges_held_expires_at_idx on public.wallet_charges (expires_at)
  where status = 'held';
comment on table public.wallet_charges is 'Money spent from (captured) or held on (held) a wallet by the app''s backend. Written only by the settle.*wallet_charge* functions.';
comment on column public.wallet_charges.amount is 'Minor units charged, or held while status is held; a capture takes amount_captured of it and returns the rest.';
comment on column public.wallet_charges.expires_at is 'A hold still held at this time is released by the sweep (settle.expire_wallet_holds); capture is refused from then on.';

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
-- balance check stays as the last word. Returns {"charge", "replayed"}.
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
alter table public.outbox_events drop constraint outbox_events_subject_type_check;
alter table public.outbox_events add constraint outbox_events_subject_type_check
  check (subject_type in ('order', 'refund', 'subscription', 'wallet_charge'));

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

-- ledger_audit as defined in 20261203000200_refund_identity.sql, with one branch added at the end
-- (held accounts and wallet charges, settle.ledger_audit_holds).
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
  union all
  -- Spending the wallet (0700): held accounts equal the open holds, and each wallet charge's
  -- postings match it.
  select * from settle.ledger_audit_holds()
$$;

comment on function settle.ledger_audit() is 'Returns every violated ledger invariant (empty = healthy): unbalanced or short transactions, wallet balance drift, negative balances, paid orders not credited exactly once (or unpaid ones credited), refunds exceeding payments or disagreeing with the ledger, the refund receivable disagreeing with the open shortfalls, gateway refunds not counted, held accounts disagreeing with open holds, wallet charges whose postings disagree with them.';

-- Section - privileges
-- Money moves through the functions above only: users and the service role read the rows.
revoke all on public.wallet_charges, public.wallet_charge_refunds from public, anon, authenticated, service_role;
grant select on public.wallet_charges, public.wallet_charge_refunds to authenticated, service_role;
revoke all on settle.wallet_spending_stats_visible, public.wallet_spending_stats from public, anon, authenticated;
grant select on settle.wallet_spending_stats_visible, public.wallet_spending_stats
  to authenticated, payment_analyst, service_role;
revoke execute on all functions in schema settle from public;
revoke execute on function settle.held_account(uuid), settle.guard_wallet_charge_update(),
  settle.wallet_charge_json(public.wallet_charges),
  settle.check_wallet_charge_terms(uuid, bigint, text, boolean, integer, text, text, jsonb),
  settle.wallet_charge_replay(public.wallet_charges, text),
  settle.charge_wallet(uuid, bigint, text, text, boolean, integer, text, text, jsonb),
  settle.lock_held_charge(uuid), settle.release_wallet_hold(public.wallet_charges, text),
  settle.capture_wallet_charge(uuid, bigint), settle.void_wallet_charge(uuid),
  settle.expire_wallet_holds(timestamptz, integer),
  settle.refund_wallet_charge(uuid, bigint, text),
  settle.outbox_wallet_charge_event(), settle.ledger_audit_holds()
  from anon, authenticated;
grant execute on function settle.charge_wallet(uuid, bigint, text, text, boolean, integer, text, text, jsonb),
  settle.capture_wallet_charge(uuid, bigint), settle.void_wallet_charge(uuid),
  settle.expire_wallet_holds(timestamptz, integer),
  settle.refund_wallet_charge(uuid, bigint, text), settle.ledger_audit_holds()
  to service_role;
