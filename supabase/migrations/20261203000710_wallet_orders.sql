-- Paying orders from the wallet: gateway 'wallet' orders are created and paid in one
-- transaction, through the same status move as a gateway payment (so the ledger, subscription
-- and outbox triggers apply), and their refunds go back to the wallet without a gateway.

-- Section - orders and refunds learn the wallet
alter table public.orders drop constraint orders_gateway_check;
alter table public.orders add constraint orders_gateway_check
  check (gateway in ('razorpay', 'stripe', 'wallet'));
alter table public.refunds drop constraint refunds_gateway_check;
alter table public.refunds add constraint refunds_gateway_check
  check (gateway in ('razorpay', 'stripe', 'wallet'));

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

-- Section - the ledger posting of a paid order
-- As defined in 20261121000400_orders.sql, plus the wallet branch first: paid from the wallet
-- debits the wallet and credits revenue (no gateway clearing is involved). The ledger trigger
-- refuses it if the wallet cannot cover it.
create or replace function settle.post_order_payment() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_clearing text := 'gateway:' || new.gateway;
begin
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

-- Section - refunds of wallet orders
-- As defined in 20261203000200_refund_identity.sql (a shortfall advanced by the platform
-- receivable), except that a wallet order's refund is paid back into the wallet instead of
-- coming out of a gateway's clearing account. (The four-argument form, 0200's, calls this one.)
create or replace function settle.post_refund_transaction(
  p_order public.orders, p_key text, p_description text, p_amount bigint, p_shortfall bigint
) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_holder jsonb := case when p_order.purpose = 'wallet_topup'
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

-- refund.created is emitted on insert (20261121000900_outbox.sql); a wallet refund is processed at once, so
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
-- this transaction: a balance too small is a 409 and nothing is written. The same key and
-- request return the same order ({"replayed": true}); another request under it is a 409.
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
revoke execute on all functions in schema settle from public;
revoke execute on function settle.check_wallet_order_paid(), settle.settle_wallet_refund(),
  settle.outbox_wallet_refund_processed(), settle.wallet_order_replay(public.orders, text),
  settle.wallet_order_price(text, text, text)
  from anon, authenticated;
grant execute on function settle.pay_order_from_wallet(text, text, text, uuid, text, text)
  to authenticated, service_role;
