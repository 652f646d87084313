-- Wallets and the append-only double-entry ledger that maintains their balances: every
-- movement of money is one balanced transaction posted once per idempotency key, in one
-- statement, and a wallet's balance changes only through its entries (one statement-level
-- trigger checks the balance, moves each wallet once and repays a dispute shortfall only when
-- one is owed).

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

-- The balance moves only through the ledger's posting trigger (settle.post_ledger_entries below):
-- it sets settle.ledger_posting, and its update runs nested in a trigger (depth 1) and sets
-- updated_at itself, so the WHEN clause does not even call this guard for it. Every other update
-- calls it; a session setting the flag itself is still refused (its update runs at depth 0). A
-- wallet's id, account and currency are fixed: ledger entries name it without a foreign key.
create function settle.guard_wallet_balance() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.balance is distinct from old.balance
     and (coalesce(current_setting('settle.ledger_posting', true), '') <> 'on'
          or pg_trigger_depth() < 2) then
    perform settle.fail(400, 'invalid_request', 'wallet balances change only through the ledger');
  end if;
  if new.id <> old.id or new.account_id <> old.account_id or new.currency <> old.currency then
    perform settle.fail(400, 'invalid_request', 'a wallet''s id, account and currency are fixed');
  end if;
  new.updated_at := now();
  return new;
end
$$;
create trigger wallets_guard_balance before update on public.wallets
  for each row
  when (pg_trigger_depth() < 1
        or current_setting('settle.ledger_posting', true) is distinct from 'on'
        or new.id <> old.id or new.account_id <> old.account_id or new.currency <> old.currency)
  execute function settle.guard_wallet_balance();

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

-- History the ledger's entries name without foreign keys (see ledger_entries): a wallet with
-- entries cannot be deleted (so neither can its account), nor the wallets truncated.
create function settle.refuse_wallet_delete() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.ledger_entries e where e.wallet_id = old.id) then
    raise exception using errcode = '23503',
      message = format('wallet %s has ledger entries and cannot be deleted', old.id);
  end if;
  return old;
end
$$;
create trigger wallets_keep_history before delete on public.wallets
  for each row execute function settle.refuse_wallet_delete();

-- TRUNCATE fires no delete trigger, and a cascading TRUNCATE from accounts or currencies reaches
-- wallets (their foreign keys stay) but not ledger_entries (it has none): refused here instead.
create function settle.refuse_wallet_truncate() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.ledger_entries) then
    perform settle.fail(400, 'invalid_request',
      'the ledger is append-only: TRUNCATE on wallets would orphan its entries; post a correcting transaction');
  end if;
  return null;
end
$$;
create trigger wallets_no_truncate before truncate on public.wallets
  for each statement execute function settle.refuse_wallet_truncate();

-- The same for a currency the ledger uses: it cannot be deleted or renamed.
create function settle.refuse_currency_change() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' then
    if new.code = old.code then
      return new;
    end if;
  end if;
  if exists (select 1 from public.ledger_entries e where e.currency = old.code) then
    raise exception using errcode = '23503',
      message = format('currency %s is used by the ledger and cannot be deleted or renamed', old.code);
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end
$$;
create trigger currencies_keep_ledger before delete or update of code on public.currencies
  for each row execute function settle.refuse_currency_change();

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

-- No foreign keys: the posting guarantees each one, cheaper than a key lookup and a row lock
-- per entry. transaction_id: ledger_transactions is append-only (no update, delete or truncate),
-- so only the insert needs checking, and settle.post_ledger_entries does it without a row lock.
-- wallet_id, account_id: every wallet entry moves its wallet with an update that matches id,
-- account and currency together (and locks the row); a wallet with entries cannot be deleted
-- (wallets_keep_history), so neither can its account. currency: a wallet entry's currency is its
-- wallet's; every entry's currency is checked against public.currencies at insert, and a
-- currency the ledger uses cannot be deleted or renamed (currencies_keep_ledger).
create table public.ledger_entries (
  id bigint generated always as identity primary key,
  transaction_id uuid not null,
  wallet_id uuid,
  account_id uuid,
  system_account text check (system_account ~ '^[a-z_]+:[a-z0-9_]+$'),
  currency text not null,
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

-- Section - posting
-- Runs once per INSERT statement on ledger_entries, whoever wrote it, over the statement's rows.
-- Wallet legs are summed per wallet and each wallet moved by one update that matches its id,
-- account and currency and keeps it at or above zero (locked in id order: opposite transfers
-- cannot deadlock; the balance >= 0 check stays on the table as the last word). Then the
-- statement's entries of each transaction must sum to zero per currency: a transaction is posted
-- in one statement (settle.post_transaction does), so the ledger is balanced after every
-- statement, not only at commit. Then the references the table has no foreign keys for, and the
-- dispute shortfall a credited wallet owes (settle.cover_dispute_shortfall, disputes file: only
-- when one is owed). Lookups by key are written as scalar or LATERAL subqueries, which run per row
-- through the primary key whatever the statistics say: NOT EXISTS may be planned as a hash of the
-- whole table, and a plan made while a table is new (never analyzed) is kept by the session.
create function settle.post_ledger_entries() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_unmoved bigint;
  v_unbalanced text;
  v_missing boolean;
  v_owed boolean;
begin
  perform set_config('settle.ledger_posting', 'on', true);
  with legs as (
    select n.wallet_id, n.account_id, n.currency, sum(n.amount)::bigint as amount
    from new_entries n where n.wallet_id is not null
    group by n.wallet_id, n.account_id, n.currency
    order by n.wallet_id -- wallets locked in id order: opposite transfers cannot deadlock
  ), moved as (
    update public.wallets w set balance = w.balance + l.amount, updated_at = now()
    from legs l
    where w.id = l.wallet_id and w.account_id = l.account_id and w.currency = l.currency
      and w.balance + l.amount >= 0
    returning 1
  )
  select (select count(*) from legs) - (select count(*) from moved),
    (select format('ledger transaction %s is unbalanced: %s entries sum to %s', n.transaction_id,
       n.currency, sum(n.amount)) from new_entries n
     group by n.transaction_id, n.currency having sum(n.amount) <> 0 limit 1),
    exists (select 1 from new_entries n
            where (select true from public.ledger_transactions t where t.id = n.transaction_id) is null
               or (select true from public.currencies c where c.code = n.currency) is null),
    exists (select 1 from new_entries n join public.disputes d
              on d.account_id = n.account_id and d.currency = n.currency
             and d.shortfall > d.shortfall_covered
            where n.wallet_id is not null and n.amount > 0)
  into v_unmoved, v_unbalanced, v_missing, v_owed;
  perform set_config('settle.ledger_posting', 'off', true);
  if v_unmoved > 0 then
    perform settle.refuse_wallet_legs((select jsonb_agg(n) from new_entries n where n.wallet_id is not null));
  elsif v_unbalanced is not null then
    perform settle.fail(400, 'invalid_request', v_unbalanced);
  elsif v_missing then
    raise exception using errcode = '23503',
      message = 'ledger entry names a ledger transaction or currency that does not exist';
  elsif v_owed then
    perform settle.cover_dispute_shortfall(l.wallet_id, l.account_id, l.currency)
    from (select distinct n.wallet_id, n.account_id, n.currency from new_entries n
          where n.wallet_id is not null and n.amount > 0) l;
  end if;
  return null;
end
$$;
create trigger ledger_entries_post after insert on public.ledger_entries
  referencing new table as new_entries
  for each statement execute function settle.post_ledger_entries();

-- Why some wallet leg moved no wallet (p_legs: the statement's wallet entries), raised from the
-- trigger above: no such wallet, a leg that does not match its wallet, or not enough balance.
create function settle.refuse_wallet_legs(p_legs jsonb) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_missing boolean;
begin
  select w.id is null into v_missing
  from jsonb_to_recordset(p_legs) as l(wallet_id uuid, account_id uuid, currency text)
  left join public.wallets w on w.id = l.wallet_id
  where w.id is null or w.account_id <> l.account_id or w.currency <> l.currency
  order by w.id is null desc limit 1;
  if v_missing then
    raise exception using errcode = '23503', message = 'ledger entry names a wallet that does not exist';
  elsif found then
    perform settle.fail(400, 'invalid_request', 'ledger entry does not match its wallet''s account or currency');
  end if;
  raise exception using errcode = 'ST409', message = 'insufficient wallet balance',
    hint = 'insufficient_funds';
end
$$;

-- Posts a balanced transaction once per idempotency key. p_entries is a JSON array of
-- {"wallet_id" | "system_account", "currency", "amount"}. Returns the transaction id, or null
-- when the key was already posted. All entries go in with one insert, in array order (so the
-- posting trigger sees the whole transaction at once); a wallet entry takes its account from the
-- wallet, read by a LATERAL lookup on the primary key (a left join was planned as a hash of every
-- wallet on a table never analyzed, and the session kept that plan), and an unknown wallet leaves
-- both null so the table's checks refuse it.
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
  left join lateral (
    select w.id, w.account_id from public.wallets w
    where e.entry ? 'wallet_id' and w.id = (e.entry ->> 'wallet_id')::uuid
    limit 1 -- keeps the lookup a per-leg subquery (not flattened into a join)
  ) w on true
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
  settle.refuse_ledger_change(), settle.post_transaction(text, text, uuid, text, jsonb),
  settle.ensure_wallet(uuid, text)
  to service_role;
