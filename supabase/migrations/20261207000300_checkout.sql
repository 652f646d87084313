-- Checkout in fewer statements (issue 16, the checkout target). create-order's user transaction
-- creates the order already claimed for its gateway call (one row written once, instead of an
-- insert, then a claim's update in a second statement), and answers the account's gateway
-- customer with it; verify applies the gateway's answer and reads the order back in one
-- statement. The guarantees are those of 20261121000400 (create_order), 20261203000400 (the
-- claim and its lease) and apply_payment's, unchanged.

-- Section - creating an order, claimed for its gateway call
-- Extends the definition in 20261204000400_paypal.sql (the latest) with p_claim and p_lease_ms.
-- With a claim, an order this call inserts is written claimed (gateway_claim_id, its lease,
-- gateway_attempts 1: what settle.claim_gateway_order would set on it at once), and a replayed
-- order still created without a gateway order is claimed through settle.claim_gateway_order (a
-- live claim of another request is left alone). The answer says whether this call holds the
-- claim, and carries the account's customer at the order's gateway when one is known.
-- One function, over 70 lines like the definition it extends: checks, pricing and the insert
-- stay together.
create function settle.create_order(
  p_gateway text, p_purpose text, p_plan_id text, p_product_id text,
  p_amount bigint, p_currency text, p_account_id uuid,
  p_idempotency_key text, p_request_hash text, p_claim uuid, p_lease_ms integer
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_account uuid := p_account_id;
  v_amount bigint;
  v_currency text;
  v_currency_row public.currencies;
  v_order public.orders;
  v_replayed boolean := true;
  v_claimed boolean := false;
  v_claim jsonb;
begin
  if v_uid is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  if p_gateway is null or p_gateway not in ('razorpay', 'stripe', 'paypal') then
    perform settle.fail(400, 'invalid_request', 'gateway must be razorpay, stripe or paypal');
  end if;
  if p_claim is not null and (p_lease_ms is null or p_lease_ms not between 1 and 600000) then
    perform settle.fail(400, 'invalid_request', 'the lease must be between 1 ms and 10 minutes');
  end if;

  if p_idempotency_key is not null then
    select * into v_order from public.orders
    where created_by = v_uid and idempotency_key = p_idempotency_key;
  end if;

  if v_order.id is null then
    if v_account is null then
      select id into v_account from public.accounts where personal_owner_id = v_uid;
    end if;
    if v_account is null or not exists (
      select 1 from public.account_members m where m.account_id = v_account and m.user_id = v_uid
    ) then
      perform settle.fail(404, 'not_found', 'account not found');
    end if;

    if p_purpose = 'plan' then
      if p_amount is not null or p_currency is not null or p_product_id is not null then
        perform settle.fail(400, 'invalid_request', 'a plan order takes only plan_id; the price comes from the plan');
      end if;
      select amount, currency into v_amount, v_currency from public.plans where id = p_plan_id and active;
      if not found then
        perform settle.fail(404, 'not_found', 'plan not found');
      end if;
    elsif p_purpose = 'product' then
      if p_amount is not null or p_currency is not null or p_plan_id is not null then
        perform settle.fail(400, 'invalid_request', 'a product order takes only product_id; the price comes from the product');
      end if;
      select amount, currency into v_amount, v_currency from public.products where id = p_product_id and active;
      if not found then
        perform settle.fail(404, 'not_found', 'product not found');
      end if;
    elsif p_purpose = 'wallet_topup' then
      if p_plan_id is not null or p_product_id is not null then
        perform settle.fail(400, 'invalid_request', 'a top-up takes amount and currency only');
      end if;
      select * into v_currency_row from public.currencies where code = p_currency and enabled;
      if not found then
        perform settle.fail(400, 'invalid_request', format('unsupported currency %s', p_currency));
      end if;
      if p_amount is null or p_amount < v_currency_row.topup_min or p_amount > v_currency_row.topup_max then
        perform settle.fail(400, 'invalid_request', format(
          'top-up amount must be between %s and %s minor units of %s',
          v_currency_row.topup_min, v_currency_row.topup_max, p_currency));
      end if;
      v_amount := p_amount;
      v_currency := p_currency;
    else
      perform settle.fail(400, 'invalid_request', 'purpose must be wallet_topup, plan or product');
    end if;

    insert into public.orders (account_id, created_by, gateway, purpose, plan_id, product_id,
      amount, currency, idempotency_key, request_hash,
      gateway_claim_id, gateway_claimed_until, gateway_attempts)
    values (v_account, v_uid, p_gateway, p_purpose, p_plan_id, p_product_id,
      v_amount, v_currency, p_idempotency_key, p_request_hash,
      p_claim, case when p_claim is not null
        then clock_timestamp() + make_interval(secs => p_lease_ms / 1000.0) end,
      case when p_claim is not null then 1 else 0 end)
    on conflict (created_by, idempotency_key) do nothing
    returning * into v_order;
    if v_order.id is not null then
      v_replayed := false;
      v_claimed := p_claim is not null;
    else
      -- A concurrent request with the same key won the insert; answer as its replay.
      select * into v_order from public.orders
      where created_by = v_uid and idempotency_key = p_idempotency_key;
    end if;
  end if;

  if v_replayed then
    if v_order.request_hash is distinct from p_request_hash then
      perform settle.fail(409, 'idempotency_conflict',
        'this Idempotency-Key was used with a different request');
    end if;
    if p_claim is not null and v_order.status = 'created' and v_order.gateway_order_id is null then
      v_claim := settle.claim_gateway_order(v_order.id, p_claim, p_lease_ms);
      v_claimed := (v_claim ->> 'claimed')::boolean;
      v_order := jsonb_populate_record(null::public.orders, v_claim -> 'order');
    end if;
  end if;
  return jsonb_build_object('order', to_jsonb(v_order), 'replayed', v_replayed,
    'claimed', v_claimed,
    'customer_id', case when v_claimed then (select g.customer_id from public.gateway_customers g
      where g.account_id = v_order.account_id and g.gateway = v_order.gateway) end);
end
$$;

-- The nine-argument form stays for its callers (pgTAP, scripts): no claim, its old answer.
create or replace function settle.create_order(
  p_gateway text, p_purpose text, p_plan_id text, p_product_id text,
  p_amount bigint, p_currency text, p_account_id uuid,
  p_idempotency_key text, p_request_hash text
) returns jsonb
language sql security definer set search_path = ''
as $$
  select r - 'claimed' - 'customer_id' from settle.create_order(p_gateway, p_purpose, p_plan_id,
    p_product_id, p_amount, p_currency, p_account_id, p_idempotency_key, p_request_hash,
    null, null) r
$$;

-- Section - verify's one statement after the gateway's answer
-- Applies a verified checkout's result through the one payment path (settle.apply_payment;
-- nothing when the gateway says pending) and answers the outcome with the order as it is now.
-- The server calls it only for an order the user has just read through RLS.
create function settle.apply_checkout_result(
  p_gateway text, p_kind text, p_gateway_order_id text, p_gateway_payment_id text,
  p_amount bigint, p_currency text, p_failure_code text, p_failure_reason text
) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_result jsonb := jsonb_build_object('outcome', 'pending');
  v_order public.orders;
begin
  if p_kind is distinct from 'pending' then
    v_result := settle.apply_payment(p_gateway, p_kind, p_gateway_order_id, p_gateway_payment_id,
      p_amount, p_currency, p_failure_code, p_failure_reason);
  end if;
  select * into v_order from public.orders
  where gateway = p_gateway and gateway_order_id = p_gateway_order_id;
  if not found then
    perform settle.fail(404, 'not_found', 'order not found');
  end if;
  return v_result || jsonb_build_object('order', to_jsonb(v_order));
end
$$;

-- Section - privileges
-- Users call create_order (as in 20261204000400); apply_checkout_result is the server's.
revoke execute on function
  settle.create_order(text, text, text, text, bigint, text, uuid, text, text, uuid, integer),
  settle.apply_checkout_result(text, text, text, text, bigint, text, text, text)
  from public, anon;
grant execute on function
  settle.create_order(text, text, text, text, bigint, text, uuid, text, text, uuid, integer)
  to authenticated;
revoke execute on function settle.apply_checkout_result(text, text, text, text, bigint, text, text, text)
  from authenticated;
grant execute on function settle.apply_checkout_result(text, text, text, text, bigint, text, text, text)
  to service_role;
