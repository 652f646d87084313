-- PayPal as a third gateway (issue 15): settle.create_order takes 'paypal', and the currencies
-- PayPal adds to settle's table. Everything else PayPal does converges through the existing SQL
-- path (apply_payment for captures, apply_refund_event for refunds), as the other gateways do.

-- Section - currencies
-- HUF and TWD have two decimals in ISO 4217 and in settle (amounts stay in minor units), but
-- PayPal takes them without decimals: shared/gateways/paypal/amounts.ts requires multiples of
-- 100 before sending. Bounds are about the USD top-up's ($0.50 .. $10,000), rounded to whole units.
insert into public.currencies (code, exponent, topup_min, topup_max) values
  ('HUF', 2, 20000, 360000000),     -- 200 Ft .. 3,600,000 Ft
  ('TWD', 2, 1500, 30000000)        -- NT$15 .. NT$300,000
on conflict (code) do nothing;

-- Section - creating orders
-- Extends the definition in 20261121000400_orders.sql (the latest; 20261203000710_wallet_orders.sql
-- and 20261204000000_vocabulary.sql leave it as it was): the same function, with paypal among
-- the gateways it accepts. Wallet orders keep their own function (settle.pay_order_from_wallet).
create or replace function settle.create_order(
  p_gateway text, p_purpose text, p_plan_id text, p_product_id text,
  p_amount bigint, p_currency text, p_account_id uuid,
  p_idempotency_key text, p_request_hash text
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
begin
  if v_uid is null then
    perform settle.fail(401, 'unauthorized', 'a signed-in user is required');
  end if;
  if p_gateway is null or p_gateway not in ('razorpay', 'stripe', 'paypal') then
    perform settle.fail(400, 'invalid_request', 'gateway must be razorpay, stripe or paypal');
  end if;

  if p_idempotency_key is not null then
    select * into v_order from public.orders
    where created_by = v_uid and idempotency_key = p_idempotency_key;
    if found then
      if v_order.request_hash is distinct from p_request_hash then
        perform settle.fail(409, 'idempotency_conflict',
          'this Idempotency-Key was used with a different request');
      end if;
      return jsonb_build_object('order', to_jsonb(v_order), 'replayed', true);
    end if;
  end if;

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
    amount, currency, idempotency_key, request_hash)
  values (v_account, v_uid, p_gateway, p_purpose, p_plan_id, p_product_id,
    v_amount, v_currency, p_idempotency_key, p_request_hash)
  on conflict (created_by, idempotency_key) do nothing
  returning * into v_order;

  if v_order.id is null then
    -- A concurrent request with the same key won the insert; answer as its replay.
    select * into v_order from public.orders
    where created_by = v_uid and idempotency_key = p_idempotency_key;
    if v_order.request_hash is distinct from p_request_hash then
      perform settle.fail(409, 'idempotency_conflict',
        'this Idempotency-Key was used with a different request');
    end if;
    return jsonb_build_object('order', to_jsonb(v_order), 'replayed', true);
  end if;
  return jsonb_build_object('order', to_jsonb(v_order), 'replayed', false);
end
$$;

-- create or replace keeps the grants; said again for the reader: users call it, nobody else.
revoke execute on function settle.create_order(text, text, text, text, bigint, text, uuid, text, text)
  from public, anon;
grant execute on function settle.create_order(text, text, text, text, bigint, text, uuid, text, text)
  to authenticated;
