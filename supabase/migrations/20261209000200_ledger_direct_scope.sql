-- settle.ledger_direct honoured for post_order_payment's own statement only (issue 16, fourth
-- part, review). 20261209000100_lean_payment_path.sql lets ledger_entries' statement trigger skip
-- a statement run inside a trigger while the setting is on. A session could switch it on for
-- itself and then take a legitimate path that posts from inside a trigger through
-- settle.post_transaction (paying a wallet order, a refund, a dispute): those entries would have
-- skipped the trigger, leaving the wallet unmoved and the legs unchecked. post_transaction, the
-- only other writer of ledger entries, now switches the setting off before it inserts, so the
-- skip applies only where post_order_payment set it, for the statement that follows. What stays
-- is a trigger of the session's own inserting entries at depth 1 with the setting on: a role
-- that can create triggers on the ledger's tables (the TRIGGER privilege and a function of its
-- own) can already rewrite their rows, so that is no new exposure.
-- Otherwise as in 20261201000500_ledger.sql.
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
  perform set_config('settle.ledger_direct', 'off', true);
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
