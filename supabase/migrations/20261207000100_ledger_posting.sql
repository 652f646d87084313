-- Ledger posting without a trigger chain (issue 16): one statement-level trigger per insert into
-- ledger_entries checks the balance, moves each wallet once and repays a dispute shortfall only
-- when one is owed; the foreign keys the posting already guarantees go; the order event's payload
-- is built inline. docs/decisions.md, "Ledger posting: one statement, one check".

-- Section - the three per-row triggers go
drop trigger ledger_entries_apply on public.ledger_entries;
drop trigger ledger_entries_balanced on public.ledger_entries;
drop trigger ledger_entries_cover_dispute_shortfall on public.ledger_entries;
drop function settle.apply_ledger_entry();
drop function settle.check_transaction_balanced();
drop function settle.cover_dispute_shortfall();

-- Section - foreign keys the posting guarantees
-- transaction_id: ledger_transactions is append-only (no update, delete or truncate), so only
-- the insert needs checking, and settle.post_ledger_entries does it without a row lock.
-- wallet_id, account_id: every wallet entry moves its wallet with an update that matches id,
-- account and currency together (and locks the row); a wallet with entries cannot be deleted
-- (wallets_keep_history), so neither can its account. currency: a wallet entry's currency is
-- its wallet's; every entry's currency is checked against public.currencies at insert, and a
-- currency the ledger uses cannot be deleted or renamed (currencies_keep_ledger).
alter table public.ledger_entries
  drop constraint ledger_entries_transaction_id_fkey,
  drop constraint ledger_entries_wallet_id_fkey,
  drop constraint ledger_entries_account_id_fkey,
  drop constraint ledger_entries_currency_fkey;

-- Section - posting
-- Lookups by key are written as scalar or LATERAL subqueries, which run per row through the
-- primary key whatever the statistics say: NOT EXISTS may be planned as a hash of the whole
-- table, and a plan made while a table is new (never analyzed) is kept by the session.
-- Runs once per INSERT statement on ledger_entries, whoever wrote it, over the statement's rows.
-- Wallet legs are summed per wallet and each wallet moved by one update that matches its id,
-- account and currency and keeps it at or above zero. Then the statement's entries of each
-- transaction must sum to zero per currency: a transaction is posted in one statement
-- (settle.post_transaction does), so the ledger is balanced after every statement, not only at
-- commit. Then the references the dropped foreign keys checked, and the shortfall cover.
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

-- Section - the wallet guard is not called for the ledger's own update
-- The ledger's update (inside post_ledger_entries, at trigger depth 1, with the posting flag
-- on) no longer calls the guard: the WHEN clause skips it, and that update sets updated_at
-- itself. Every other update calls it as before. A session setting the flag itself is still
-- refused: its update runs at depth 0.
drop trigger wallets_guard_balance on public.wallets;
create trigger wallets_guard_balance before update on public.wallets
  for each row
  when (pg_trigger_depth() < 1
        or current_setting('settle.ledger_posting', true) is distinct from 'on'
        or new.id <> old.id or new.account_id <> old.account_id or new.currency <> old.currency)
  execute function settle.guard_wallet_balance();
-- A wallet's id is fixed too now: ledger entries name it without a foreign key.
create or replace function settle.guard_wallet_balance() returns trigger
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

-- Section - history the dropped foreign keys protected
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
-- wallets (their foreign keys stay), no longer ledger_entries: refused here instead.
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

-- Section - the shortfall is repaid by the wallet's next credits
-- Called by post_ledger_entries for a wallet the statement credited, only when its account owes
-- a shortfall in that currency (the cheap test there, on disputes_owed_idx). Oldest dispute
-- first, as far as the balance goes; the wallet row is already locked by the credit. The nested
-- posting debits the wallet, so it never calls this again.
create function settle.cover_dispute_shortfall(p_wallet_id uuid, p_account_id uuid, p_currency text)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_dispute public.disputes;
  v_balance bigint;
  v_amount bigint;
begin
  for v_dispute in
    select * from public.disputes
    where account_id = p_account_id and currency = p_currency and shortfall > shortfall_covered
    order by created_at, id for update
  loop
    select balance into v_balance from public.wallets where id = p_wallet_id;
    v_amount := least(v_balance, v_dispute.shortfall - v_dispute.shortfall_covered);
    exit when v_amount <= 0;
    perform settle.post_transaction('dispute_withdrawal',
      format('dispute_cover:%s:%s', v_dispute.id, v_dispute.shortfall_covered + v_amount), v_dispute.order_id,
      'dispute shortfall repaid from the wallet',
      jsonb_build_array(
        jsonb_build_object('wallet_id', p_wallet_id, 'currency', p_currency, 'amount', -v_amount),
        jsonb_build_object('system_account', 'receivable:dispute_shortfall', 'currency', p_currency,
          'amount', v_amount)));
    update public.disputes set shortfall_covered = shortfall_covered + v_amount where id = v_dispute.id;
  end loop;
end
$$;

-- Section - post_transaction looks its wallets up by key
-- Same contract as before (20261121000300). The wallet of each leg is read by a LATERAL lookup
-- on the primary key; the left join it replaces was planned as a hash of every wallet on a
-- table that had never been analyzed, and the session kept that plan.
create or replace function settle.post_transaction(
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

-- Section - outbox: the order event in one insert
-- The payload built inline (outbox_order_payload, a SQL function with its own search_path, is
-- not inlined and was planned again in every transaction); the same keys and values.
create or replace function settle.outbox_order_event() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_type text;
begin
  if new.amount_refunded < old.amount_refunded then
    v_type := 'order.refund_reversed';
  elsif new.amount_refunded > old.amount_refunded then
    v_type := 'order.' || new.status;
  elsif new.status = 'paid' and old.status in ('created', 'authorized', 'failed', 'expired') then
    v_type := 'order.paid';
  elsif new.status in ('authorized', 'failed', 'expired') then
    v_type := 'order.' || new.status;
  else
    return null;
  end if;
  insert into public.outbox_events (type, account_id, subject_type, subject_id, payload)
  values (v_type, new.account_id, 'order', new.id, jsonb_build_object(
    'id', new.id, 'account_id', new.account_id, 'status', new.status,
    'previous_status', old.status, 'purpose', new.purpose,
    'plan_id', new.plan_id, 'product_id', new.product_id,
    'amount', new.amount, 'currency', new.currency,
    'amount_refunded', new.amount_refunded, 'gateway', new.gateway,
    'gateway_order_id', new.gateway_order_id, 'gateway_payment_id', new.gateway_payment_id,
    'failure_code', new.failure_code, 'failure_reason', new.failure_reason,
    'created_at', new.created_at, 'paid_at', new.paid_at));
  return null;
end
$$;

revoke execute on function settle.post_ledger_entries(), settle.refuse_wallet_legs(jsonb),
  settle.refuse_wallet_delete(), settle.refuse_wallet_truncate(), settle.refuse_currency_change(), settle.cover_dispute_shortfall(uuid, uuid, text)
  from public, anon, authenticated;
