-- Wallets and the append-only double-entry ledger that maintains their balances: every
-- movement of money is one balanced transaction posted once per idempotency key, and a wallet's
-- balance changes only through its entries.

-- Section - wallets
create table public.wallets (
  id uuid primary key default gen_random_uuid(),
  -- cascade: a user with no history can be deleted; ledger entries (restrict) keep the rest.
  account_id uuid not null references public.accounts (id) on delete cascade,
  currency text not null references public.currencies (code),
  balance bigint not null default 0 check (balance >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (account_id, currency)
);
alter table public.wallets enable row level security;
comment on column public.wallets.balance is 'Minor units; maintained only by ledger_entries triggers, never written directly.';

create policy "Members can read their accounts' wallets" on public.wallets
  for select to authenticated using (settle.is_member(account_id));

-- The balance moves only through the ledger trigger below: it sets settle.ledger_posting, and
-- its update runs nested in a trigger. A session setting the flag itself is still refused.
create function settle.guard_wallet_balance() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.balance is distinct from old.balance
     and (coalesce(current_setting('settle.ledger_posting', true), '') <> 'on'
          or pg_trigger_depth() < 2) then
    perform settle.fail(400, 'invalid_request', 'wallet balances change only through the ledger');
  end if;
  if new.account_id <> old.account_id or new.currency <> old.currency then
    perform settle.fail(400, 'invalid_request', 'a wallet''s account and currency are fixed');
  end if;
  new.updated_at := now();
  return new;
end
$$;
create trigger wallets_guard_balance before update on public.wallets
  for each row execute function settle.guard_wallet_balance();

create function settle.guard_wallet_insert() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.balance <> 0 then
    perform settle.fail(400, 'invalid_request', 'a wallet starts at zero');
  end if;
  return new;
end
$$;
create trigger wallets_guard_insert before insert on public.wallets
  for each row execute function settle.guard_wallet_insert();

-- Section - ledger
create table public.ledger_transactions (
  id uuid primary key default gen_random_uuid(),
  -- What moved: a gateway payment (topup, purchase) or its refund; a correction (adjustment);
  -- spending the wallet (wallet_*); escrow, disputes and payouts (their files say which key
  -- each one posts under).
  kind text not null check (kind in (
    'topup', 'purchase', 'refund', 'adjustment',
    'wallet_charge', 'wallet_hold', 'wallet_release', 'wallet_refund',
    'escrow_funding', 'escrow_settlement', 'escrow_refund',
    'dispute_withdrawal', 'dispute_reinstatement', 'dispute_fee',
    'payout', 'payout_sent', 'payout_return'
  )),
  idempotency_key text not null unique check (length(idempotency_key) between 1 and 200),
  order_id uuid,
  description text,
  created_at timestamptz not null default now()
);
alter table public.ledger_transactions enable row level security;
comment on column public.ledger_transactions.idempotency_key is 'One effect, one key (e.g. order_paid:<order id>): posting the same key twice is a no-op.';
-- Reconciliation, support queries and the benchmark's checks look ledger transactions up by
-- order; without an index each lookup scans the whole table (bench/README.md). Top-ups and
-- purchases always carry an order, adjustments may not: those rows stay out of the index.
create index ledger_transactions_order_id_idx
  on public.ledger_transactions (order_id) where order_id is not null;

create table public.ledger_entries (
  id bigint generated always as identity primary key,
  transaction_id uuid not null references public.ledger_transactions (id),
  wallet_id uuid references public.wallets (id),
  account_id uuid references public.accounts (id),
  system_account text check (system_account ~ '^[a-z_]+:[a-z0-9_]+$'),
  currency text not null references public.currencies (code),
  amount bigint not null check (amount <> 0),
  created_at timestamptz not null default now(),
  check ((wallet_id is null) <> (system_account is null)),
  check ((wallet_id is null) = (account_id is null))
);
alter table public.ledger_entries enable row level security;
comment on column public.ledger_entries.amount is 'Signed minor units: positive credits the wallet or system account, negative debits it.';
comment on column public.ledger_entries.system_account is 'House accounts such as gateway:razorpay (money the gateway holds for us) or revenue:plans.';
create index ledger_entries_transaction_id_idx on public.ledger_entries (transaction_id);
create index ledger_entries_wallet_id_idx on public.ledger_entries (wallet_id);
create index ledger_entries_account_id_idx on public.ledger_entries (account_id);

create policy "Members can read their accounts' ledger entries" on public.ledger_entries
  for select to authenticated using (settle.is_member(account_id));

create policy "Members can read ledger transactions touching their accounts" on public.ledger_transactions
  for select to authenticated using (
    exists (
      select 1 from public.ledger_entries e
      where e.transaction_id = ledger_transactions.id and settle.is_member(e.account_id)
    )
  );

-- Append-only: a mistake is corrected by a new transaction, never by changing an old one.
create function settle.refuse_ledger_change() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform settle.fail(400, 'invalid_request',
    'the ledger is append-only: ' || tg_op || ' on ' || tg_table_name || ' is refused; post a correcting transaction');
  return null;
end
$$;
create trigger ledger_entries_append_only before update or delete on public.ledger_entries
  for each row execute function settle.refuse_ledger_change();
create trigger ledger_entries_no_truncate before truncate on public.ledger_entries
  for each statement execute function settle.refuse_ledger_change();
create trigger ledger_transactions_append_only before update or delete on public.ledger_transactions
  for each row execute function settle.refuse_ledger_change();
create trigger ledger_transactions_no_truncate before truncate on public.ledger_transactions
  for each statement execute function settle.refuse_ledger_change();

-- Applies a wallet entry to the wallet balance; the balance check refuses overdrafts.
-- A wallet entry moves the balance with one guarded update and no subtransaction (an exception
-- block would cost one per entry). A wallet that does not match the entry, or a balance that
-- would go negative, updates no row, and only then is the reason looked up for the error. The
-- balance >= 0 check stays on the table as the last word.
create function settle.apply_ledger_entry() returns trigger
language plpgsql set search_path = ''
as $$
declare
  v_wallet public.wallets;
  v_updated boolean;
begin
  if new.wallet_id is null then
    return new;
  end if;
  perform set_config('settle.ledger_posting', 'on', true);
  update public.wallets set balance = balance + new.amount
  where id = new.wallet_id and currency = new.currency and account_id = new.account_id
    and balance + new.amount >= 0;
  v_updated := found; -- before PERFORM, which sets FOUND itself
  perform set_config('settle.ledger_posting', 'off', true);
  if not v_updated then
    select * into v_wallet from public.wallets where id = new.wallet_id;
    if v_wallet.id is null then
      return new; -- no such wallet: the foreign key refuses the entry, as before
    end if;
    if v_wallet.currency <> new.currency or v_wallet.account_id <> new.account_id then
      perform settle.fail(400, 'invalid_request', 'ledger entry does not match its wallet''s account or currency');
    end if;
    raise exception using errcode = 'ST409', message = 'insufficient wallet balance',
      hint = 'insufficient_funds';
  end if;
  return new;
end
$$;
create trigger ledger_entries_apply before insert on public.ledger_entries
  for each row execute function settle.apply_ledger_entry();

-- Checked at commit, once all entries of a transaction exist, as the function's owner (security
-- definer): a refund requested by a signed-in user posts ledger entries in a transaction whose
-- role is `authenticated`, and under RLS the check would see only the user's own entries (not
-- the system account's) and call the transaction unbalanced.
create function settle.check_transaction_balanced() returns trigger
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

create constraint trigger ledger_entries_balanced after insert on public.ledger_entries
  deferrable initially deferred
  for each row execute function settle.check_transaction_balanced();

-- Posts a balanced transaction once per idempotency key. p_entries is a JSON array of
-- {"wallet_id" | "system_account", "currency", "amount"}. Returns the transaction id, or null
-- when the key was already posted. All entries go in with one insert, in array order; a wallet
-- entry takes its account from the wallet, and an unknown wallet leaves both null so the
-- table's checks refuse it.
create function settle.post_transaction(
  p_kind text, p_idempotency_key text, p_order_id uuid, p_description text, p_entries jsonb
) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_tx uuid;
begin
  if jsonb_typeof(p_entries) <> 'array' or jsonb_array_length(p_entries) < 2 then
    perform settle.fail(400, 'invalid_request', 'a ledger transaction needs at least two entries');
  end if;
  insert into public.ledger_transactions (kind, idempotency_key, order_id, description)
  values (p_kind, p_idempotency_key, p_order_id, p_description)
  on conflict (idempotency_key) do nothing
  returning id into v_tx;
  if v_tx is null then
    return null;
  end if;
  insert into public.ledger_entries (transaction_id, wallet_id, account_id, system_account, currency, amount)
  select v_tx, w.id, w.account_id,
    case when e.entry ? 'wallet_id' then null else e.entry ->> 'system_account' end,
    e.entry ->> 'currency', (e.entry ->> 'amount')::bigint
  from jsonb_array_elements(p_entries) with ordinality as e(entry, n)
  left join public.wallets w on e.entry ? 'wallet_id' and w.id = (e.entry ->> 'wallet_id')::uuid
  order by e.n;
  return v_tx;
end
$$;

-- The wallet of an account in a currency, created on first use. Looked up first: it almost
-- always exists, and an insert attempt costs a speculative insertion and a trigger call.
create function settle.ensure_wallet(p_account_id uuid, p_currency text) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid;
begin
  select id into v_id from public.wallets where account_id = p_account_id and currency = p_currency;
  if v_id is not null then
    return v_id;
  end if;
  insert into public.wallets (account_id, currency) values (p_account_id, p_currency)
  on conflict (account_id, currency) do nothing
  returning id into v_id;
  if v_id is null then
    select id into v_id from public.wallets where account_id = p_account_id and currency = p_currency;
  end if;
  return v_id;
end
$$;

-- Section - privileges
-- Money moves through the ledger functions only, for the service role too: it may read and
-- insert rows, never update, delete or truncate them.
revoke execute on all functions in schema settle from public;
revoke all on public.wallets, public.ledger_transactions, public.ledger_entries
  from anon, authenticated;
grant select on public.wallets, public.ledger_transactions, public.ledger_entries to authenticated;
revoke update, delete, truncate on public.wallets, public.ledger_transactions,
  public.ledger_entries from service_role;
grant execute on function settle.guard_wallet_balance(), settle.guard_wallet_insert(),
  settle.refuse_ledger_change(), settle.apply_ledger_entry(), settle.check_transaction_balanced(),
  settle.post_transaction(text, text, uuid, text, jsonb), settle.ensure_wallet(uuid, text)
  to service_role;
