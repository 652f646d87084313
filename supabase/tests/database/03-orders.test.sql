-- Orders: creation as the signed-in user at server-side prices, idempotency keys, the status
-- state machine, settle.apply_payment (the one path that pays an order) and webhook ingestion.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(80);

-- The order a user created under an idempotency key.
create function pg_temp.order_id(p_uid uuid, p_key text) returns uuid
language sql stable security definer as $$
  select id from public.orders where created_by = p_uid and idempotency_key = p_key
$$;
create function pg_temp.status(p_order uuid) returns text
language sql stable security definer as $$
  select status from public.orders where id = p_order
$$;
create function pg_temp.ledger_count(p_order uuid) returns int
language sql stable security definer as $$
  select count(*)::int from public.ledger_transactions where order_id = p_order
$$;

-- Section - fixture
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000003a1', 'orders-a@example.test'),
  ('00000000-0000-4000-8000-0000000003b1', 'orders-b@example.test');
-- A team account a belongs to as a plain member.
insert into public.accounts (id, name) values ('00000000-0000-4000-8000-0000000003f1', 'Orders team');
insert into public.account_members (account_id, user_id, role) values
  ('00000000-0000-4000-8000-0000000003f1', '00000000-0000-4000-8000-0000000003a1', 'member');
insert into public.plans (id, name, amount, currency, billing_interval, active) values
  ('orders_plan', 'Orders plan', 12345, 'INR', 'month', true),
  ('orders_plan_off', 'Orders retired plan', 100, 'INR', 'month', false);
insert into public.products (id, name, amount, currency) values ('orders_book', 'Orders book', 4999, 'INR');

-- Section - creating orders
select tests.login('00000000-0000-4000-8000-0000000003a1');
select is(
  settle.create_order('razorpay', 'plan', 'orders_plan', null, null, null, null, 'ord:plan-1', 'hash-1') ->> 'replayed',
  'false', 'a new plan order is not a replay');
select results_eq(
  $$select status, purpose, plan_id, amount, currency, account_id, created_by, gateway
    from public.orders where idempotency_key = 'ord:plan-1'$$,
  format($$values ('created'::text, 'plan'::text, 'orders_plan'::text, 12345::bigint, 'INR'::text, %L::uuid, %L::uuid,
    'razorpay'::text)$$,
    tests.personal('00000000-0000-4000-8000-0000000003a1'), '00000000-0000-4000-8000-0000000003a1'),
  'the plan order is created at the plan''s price, on the caller''s personal account, readable by them');
select is(
  settle.create_order('razorpay', 'plan', 'orders_plan', null, null, null, null, 'ord:plan-1', 'hash-1') ->> 'replayed',
  'true', 'the same key and request hash replays');
select is(
  (settle.create_order('razorpay', 'plan', 'orders_plan', null, null, null, null, 'ord:plan-1', 'hash-1')
    -> 'order' ->> 'id')::uuid,
  pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:plan-1'),
  'the replay returns the same order');
select is((select count(*)::int from public.orders where idempotency_key = 'ord:plan-1'), 1,
  'replays create no second order');
select throws_ok(
  $$select settle.create_order('razorpay', 'plan', 'orders_plan', null, null, null, null, 'ord:plan-1', 'hash-2')$$,
  'ST409', 'this Idempotency-Key was used with a different request',
  'the same key with a different request hash is a conflict');
select throws_ok(
  $$select settle.create_order('razorpay', 'plan', 'orders_plan', null, 1, 'INR', null, null, null)$$,
  'ST400', null, 'a plan order cannot carry a client amount');
select throws_ok(
  $$select settle.create_order('razorpay', 'plan', 'no_such_plan', null, null, null, null, null, null)$$,
  'ST404', 'plan not found', 'an unknown plan is not found');
select throws_ok(
  $$select settle.create_order('razorpay', 'plan', 'orders_plan_off', null, null, null, null, null, null)$$,
  'ST404', 'plan not found', 'a retired plan is not found');
select is(
  (settle.create_order('stripe', 'product', null, 'orders_book', null, null, null, null, null) -> 'order' ->> 'amount')::bigint,
  4999::bigint, 'a product order is created at the product''s price');
select throws_ok(
  $$select settle.create_order('razorpay', 'product', null, 'no_such_product', null, null, null, null, null)$$,
  'ST404', 'product not found', 'an unknown product is not found');

select is(
  (settle.create_order('razorpay', 'wallet_topup', null, null, 5000, 'INR', null, 'ord:topup-1', 't1')
    -> 'order' ->> 'amount')::bigint,
  5000::bigint, 'a top-up within bounds is created for the requested amount');
select throws_ok(
  $$select settle.create_order('razorpay', 'wallet_topup', null, null, 99, 'INR', null, null, null)$$,
  'ST400', null, 'a top-up below the currency''s topup_min is refused');
select lives_ok(
  $$select settle.create_order('razorpay', 'wallet_topup', null, null, 100, 'INR', null, null, null)$$,
  'a top-up of exactly topup_min is accepted');
select throws_ok(
  $$select settle.create_order('razorpay', 'wallet_topup', null, null, 10000001, 'INR', null, null, null)$$,
  'ST400', null, 'a top-up above the currency''s topup_max is refused');
select throws_ok(
  $$select settle.create_order('razorpay', 'wallet_topup', null, null, 1000, 'XYZ', null, null, null)$$,
  'ST400', 'unsupported currency XYZ', 'a top-up in an unknown currency is refused');
select throws_ok(
  $$select settle.create_order('razorpay', 'wallet_topup', null, null, null, 'INR', null, null, null)$$,
  'ST400', null, 'a top-up without an amount is refused');
select throws_ok(
  $$select settle.create_order('adyen', 'wallet_topup', null, null, 1000, 'INR', null, null, null)$$,
  'ST400', 'gateway must be razorpay, stripe or paypal', 'an unknown gateway is refused');
select throws_ok(
  $$select settle.create_order('razorpay', 'donation', null, null, 1000, 'INR', null, null, null)$$,
  'ST400', null, 'an unknown purpose is refused');

select throws_ok(
  format($$select settle.create_order('razorpay', 'plan', 'orders_plan', null, null, null, %L, null, null)$$,
    tests.personal('00000000-0000-4000-8000-0000000003b1')),
  'ST404', 'account not found', 'ordering on another user''s account is not found');
select is(
  (settle.create_order('razorpay', 'plan', 'orders_plan', null, null, null,
    '00000000-0000-4000-8000-0000000003f1', null, null) -> 'order' ->> 'account_id')::uuid,
  '00000000-0000-4000-8000-0000000003f1'::uuid, 'a plain member can order on their team account');

-- Keys are per user: b's 'ord:plan-1' is b's own new order.
select tests.login('00000000-0000-4000-8000-0000000003b1');
select results_eq(
  $$select r ->> 'replayed', (r -> 'order' ->> 'account_id')::uuid
    from settle.create_order('razorpay', 'plan', 'orders_plan', null, null, null, null, 'ord:plan-1', 'hash-2') r$$,
  format($$values ('false'::text, %L::uuid)$$, tests.personal('00000000-0000-4000-8000-0000000003b1')),
  'another user''s identical key makes their own order, not a replay of a''s');

select tests.login(null);
select throws_ok(
  $$select settle.create_order('razorpay', 'plan', 'orders_plan', null, null, null, null, null, null)$$,
  'ST401', null, 'no signed-in user (no sub claim) is unauthorized');
select set_config('request.jwt.claims', '', true) as no_claims;
select throws_ok(
  $$select settle.create_order('razorpay', 'wallet_topup', null, null, 1000, 'INR', null, null, null)$$,
  'ST401', null, 'no claims at all is unauthorized');
select tests.logout();

-- Section - orders start created and keep their terms
select throws_ok(
  format($$insert into public.orders (account_id, created_by, gateway, purpose, amount, currency, status, paid_at)
    values (%L, %L, 'razorpay', 'wallet_topup', 1000, 'INR', 'paid', now())$$,
    tests.personal('00000000-0000-4000-8000-0000000003a1'), '00000000-0000-4000-8000-0000000003a1'),
  'ST400', 'an order starts as created, unpaid', 'an order cannot be inserted already paid');

-- Section - paying a top-up
update public.orders set gateway_order_id = 'order_T1'
where id = pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:topup-1');

select is(
  settle.apply_payment('razorpay', 'captured', 'order_T1', 'pay_T1', null, null) ->> 'outcome',
  'mismatch', 'a capture without the gateway''s amount and currency is a mismatch (a signature proves no capture)');
select is(pg_temp.ledger_count(pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:topup-1')), 0,
  'a capture without amount and currency credits nothing');
select is(
  settle.apply_payment('razorpay', 'captured', 'order_T1', 'pay_T1', 5000, 'INR') ->> 'outcome',
  'applied', 'a capture applies to a created order');
select results_eq(
  $$select status, gateway_payment_id, paid_at is not null from public.orders where gateway_order_id = 'order_T1'$$,
  $$values ('paid'::text, 'pay_T1'::text, true)$$,
  'the order is paid, with its payment id and paid_at');
select results_eq(
  $$select kind, idempotency_key from public.ledger_transactions
    where order_id = (select id from public.orders where gateway_order_id = 'order_T1')$$,
  format($$values ('topup'::text, %L::text)$$,
    'order_paid:' || pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:topup-1')),
  'exactly one top-up ledger transaction is posted for the order');
select results_eq(
  $$select e.system_account, e.amount from public.ledger_entries e
    join public.ledger_transactions t on t.id = e.transaction_id
    join public.orders o on o.id = t.order_id
    where o.gateway_order_id = 'order_T1' order by e.amount$$,
  $$values ('gateway:razorpay'::text, -5000::bigint), (null::text, 5000::bigint)$$,
  'the top-up moves the amount from the gateway clearing account to the wallet');
select is(tests.balance('00000000-0000-4000-8000-0000000003a1'), 5000::bigint, 'the wallet is credited');

select is(
  settle.apply_payment('razorpay', 'captured', 'order_T1', 'pay_T1', 5000, 'INR') ->> 'outcome',
  'no_effect', 'a second capture of a paid order has no effect');
select is(pg_temp.ledger_count(pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:topup-1')), 1,
  'the second capture posts no second ledger transaction');
select is(tests.balance('00000000-0000-4000-8000-0000000003a1'), 5000::bigint,
  'the second capture credits nothing');
select is(
  settle.apply_payment('razorpay', 'failed', 'order_T1', 'pay_T1', null, null, 'BAD_REQUEST_ERROR', 'late') ->> 'outcome',
  'no_effect', 'a late failure after paid has no effect');
select is(
  settle.apply_payment('razorpay', 'authorized', 'order_T1', 'pay_T1', null, null) ->> 'outcome',
  'no_effect', 'a late authorization after paid has no effect');
select results_eq(
  $$select status, failure_code from public.orders where gateway_order_id = 'order_T1'$$,
  $$values ('paid'::text, null::text)$$,
  'the order is still paid, with no failure recorded');

-- Section - the state machine refuses direct moves and changed terms
select throws_ok($$update public.orders set status = 'created' where gateway_order_id = 'order_T1'$$,
  'ST409', null, 'paid -> created is refused');
select throws_ok($$update public.orders set status = 'failed' where gateway_order_id = 'order_T1'$$,
  'ST409', null, 'paid -> failed is refused');
select throws_ok(
  format($$update public.orders set status = 'refunded' where id = %L$$,
    pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:plan-1')),
  'ST409', null, 'created -> refunded is refused');
select throws_ok($$update public.orders set amount = 1 where gateway_order_id = 'order_T1'$$,
  'ST400', 'an order''s terms cannot change after it is created', 'an order''s amount cannot change');
select throws_ok($$update public.orders set currency = 'USD' where gateway_order_id = 'order_T1'$$,
  'ST400', null, 'an order''s currency cannot change');
select throws_ok($$update public.orders set gateway_order_id = 'order_other' where gateway_order_id = 'order_T1'$$,
  'ST409', 'an order''s gateway order id is set once', 'the gateway order id is set once');
select throws_ok($$update public.orders set gateway_payment_id = 'pay_other' where gateway_order_id = 'order_T1'$$,
  'ST409', 'a paid order''s gateway payment id cannot change', 'a paid order''s gateway payment id is fixed');

-- Section - failed -> paid: a later attempt is captured after a failure
select tests.login('00000000-0000-4000-8000-0000000003a1');
select isnt(settle.create_order('razorpay', 'wallet_topup', null, null, 3000, 'INR', null, 'ord:topup-2', 't2'), null,
  'second top-up order created');
select tests.logout();
update public.orders set gateway_order_id = 'order_T2'
where id = pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:topup-2');

select is(
  settle.apply_payment('razorpay', 'failed', 'order_T2', null, null, null, 'BAD_REQUEST_ERROR', 'card declined') ->> 'outcome',
  'applied', 'a failure applies to a created order');
select results_eq(
  $$select status, failure_code, failure_reason from public.orders where gateway_order_id = 'order_T2'$$,
  $$values ('failed'::text, 'BAD_REQUEST_ERROR'::text, 'card declined'::text)$$,
  'the order is failed with the gateway''s reason');
select is(
  settle.apply_payment('razorpay', 'captured', 'order_T2', 'pay_T2b', 3000, 'INR') ->> 'outcome',
  'applied', 'a capture after a failure applies');
select results_eq(
  $$select status, failure_code, gateway_payment_id from public.orders where gateway_order_id = 'order_T2'$$,
  $$values ('paid'::text, null::text, 'pay_T2b'::text)$$,
  'the failed order is paid, the failure cleared');
select is(tests.balance('00000000-0000-4000-8000-0000000003a1'), 8000::bigint,
  'the captured later attempt credits the wallet once');

-- Section - authorized -> paid
select tests.login('00000000-0000-4000-8000-0000000003a1');
select isnt(settle.create_order('razorpay', 'wallet_topup', null, null, 2000, 'INR', null, 'ord:topup-3', 't3'), null,
  'third top-up order created');
select tests.logout();
update public.orders set gateway_order_id = 'order_T3'
where id = pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:topup-3');
select is(
  settle.apply_payment('razorpay', 'authorized', 'order_T3', 'pay_T3', 1999, 'INR') ->> 'outcome',
  'mismatch', 'an authorization for another amount is a mismatch and changes nothing');
select is(
  settle.apply_payment('razorpay', 'authorized', 'order_T3', 'pay_T3', null, null) ->> 'status',
  'authorized', 'an authorization moves created -> authorized');
select is(tests.balance('00000000-0000-4000-8000-0000000003a1'), 8000::bigint, 'an authorization credits nothing');
select is(
  settle.apply_payment('razorpay', 'captured', 'order_T3', 'pay_T3', 2000, 'INR') ->> 'status',
  'paid', 'the capture moves authorized -> paid');
select is(tests.balance('00000000-0000-4000-8000-0000000003a1'), 10000::bigint, 'the capture credits the wallet');

-- Section - amount and currency mismatches change nothing
update public.orders set gateway_order_id = 'order_P1'
where id = pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:plan-1');
select is(
  settle.apply_payment('razorpay', 'captured', 'order_P1', 'pay_P1', 12000, 'INR') ->> 'outcome',
  'mismatch', 'a capture for another amount is a mismatch');
select is(
  settle.apply_payment('razorpay', 'captured', 'order_P1', 'pay_P1', 12345, 'USD') ->> 'outcome',
  'mismatch', 'a capture in another currency is a mismatch');
select results_eq(
  $$select status, gateway_payment_id, paid_at from public.orders where gateway_order_id = 'order_P1'$$,
  $$values ('created'::text, null::text, null::timestamptz)$$,
  'after mismatches the order is unchanged');
select is(pg_temp.ledger_count(pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:plan-1')), 0,
  'a mismatch posts no ledger transaction');
select is(
  settle.apply_payment('razorpay', 'captured', 'order_P1', 'pay_P1', 12345, 'inr') ->> 'outcome',
  'applied', 'the matching capture applies (currency compared case-insensitively)');
select results_eq(
  $$select e.system_account, e.amount from public.ledger_entries e
    join public.ledger_transactions t on t.id = e.transaction_id
    join public.orders o on o.id = t.order_id
    where o.gateway_order_id = 'order_P1' and t.kind = 'purchase' order by e.amount$$,
  $$values ('gateway:razorpay'::text, -12345::bigint), ('revenue:plan'::text, 12345::bigint)$$,
  'a plan purchase books revenue against the gateway clearing account');
select is(tests.balance('00000000-0000-4000-8000-0000000003a1'), 10000::bigint,
  'a plan purchase does not touch the wallet');

select is(
  settle.apply_payment('razorpay', 'captured', 'order_nobody', 'pay_x', null, null) ->> 'outcome',
  'unknown_order', 'a payment for an unknown gateway order is reported as unknown_order');
select is(
  settle.apply_payment('stripe', 'captured', 'order_T3', 'pay_T3', null, null) ->> 'outcome',
  'unknown_order', 'gateway order ids are matched within their gateway');
select throws_ok($$select settle.apply_payment('razorpay', 'refunded', 'order_T1', 'pay_T1', null, null)$$,
  'ST400', null, 'an unknown event kind is refused');

-- Section - webhooks are stored once per (gateway, event id)
select tests.login('00000000-0000-4000-8000-0000000003a1');
select isnt(settle.create_order('razorpay', 'wallet_topup', null, null, 1500, 'INR', null, 'ord:topup-5', 't5'), null,
  'fifth top-up order created');
select tests.logout();
update public.orders set gateway_order_id = 'order_T5'
where id = pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:topup-5');

select results_eq(
  $$select r ->> 'duplicate', r ->> 'outcome'
    from settle.ingest_webhook(row('razorpay', 'evt_T5', 'payment.captured', 'captured', 'order_T5', 'pay_T5',
      1500, 'inr', now(), '{"event": "payment.captured"}', null, null, null, null)::settle.incoming_event) r$$,
  $$values ('false'::text, 'applied'::text)$$,
  'a new webhook is stored and applied');
select results_eq(
  $$select event_type, outcome, order_id, currency, raw_body, processed_at is not null
    from public.webhook_events where gateway = 'razorpay' and event_id = 'evt_T5'$$,
  format($$values ('payment.captured'::text, 'applied'::text, %L::uuid, 'INR'::text,
    '{"event": "payment.captured"}'::text, true)$$,
    pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:topup-5')),
  'the stored event keeps its raw body and records its outcome and order');
select results_eq(
  $$select r ->> 'duplicate', r ->> 'outcome'
    from settle.ingest_webhook(row('razorpay', 'evt_T5', 'payment.captured', 'captured', 'order_T5', 'pay_T5',
      1500, 'INR', now(), '{"event": "payment.captured", "redelivered": true}', null, null, null, null)::settle.incoming_event) r$$,
  $$values ('true'::text, 'duplicate'::text)$$,
  'the same event delivered again is a duplicate');
select is((select count(*)::int from public.webhook_events where gateway = 'razorpay' and event_id = 'evt_T5'), 1,
  'the duplicate stores no second row');
select is(tests.balance('00000000-0000-4000-8000-0000000003a1'), 11500::bigint,
  'the webhook credited the wallet once');
select results_eq(
  $$select r ->> 'duplicate', r ->> 'outcome'
    from settle.ingest_webhook(row('stripe', 'evt_T5', 'charge.updated', null, null, null, null, null, now(), '{}', null, null, null, null)::settle.incoming_event) r$$,
  $$values ('false'::text, 'ignored'::text)$$,
  'the same event id from another gateway is a different event; one without a kind is ignored');
select is(
  settle.ingest_webhook(row('razorpay', 'evt_unknown', 'payment.captured', 'captured', 'order_nobody', 'pay_y',
    100, 'INR', now(), '{}', null, null, null, null)::settle.incoming_event) ->> 'outcome',
  'unknown_order', 'a webhook for an unknown order answers unknown_order');
select is(
  (select outcome from public.webhook_events where gateway = 'razorpay' and event_id = 'evt_unknown'),
  'unknown_order', 'and is kept with that outcome');

-- Known defect (see the report): when the captured payment is not the one first seen
-- (attempt 1 authorized, then failed; attempt 2 captured), the order keeps attempt 1's id.
select tests.login('00000000-0000-4000-8000-0000000003a1');
select isnt(settle.create_order('razorpay', 'wallet_topup', null, null, 1000, 'INR', null, 'ord:topup-6', 't6'), null,
  'sixth top-up order created');
select tests.logout();
update public.orders set gateway_order_id = 'order_T6'
where id = pg_temp.order_id('00000000-0000-4000-8000-0000000003a1', 'ord:topup-6');
do $$
begin
  perform settle.apply_payment('razorpay', 'authorized', 'order_T6', 'pay_T6a', null, null);
  perform settle.apply_payment('razorpay', 'failed', 'order_T6', 'pay_T6a', null, null, 'X', 'expired');
end
$$;
select is(
  settle.apply_payment('razorpay', 'captured', 'order_T6', 'pay_T6b', 1000, 'INR') ->> 'status',
  'paid', 'authorized -> failed -> captured by a later attempt ends paid');
-- (was a todo: the captured payment's id now wins)
select is(
  (select gateway_payment_id from public.orders where gateway_order_id = 'order_T6'),
  'pay_T6b', 'the order records the payment that was captured');

-- Every ledger transaction posted by apply_payment above passes the commit-time balance check.
select lives_ok('set constraints all immediate', 'all ledger transactions posted for orders are balanced');

select * from finish();
rollback;
