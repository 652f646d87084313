-- Refunds: the bound (never more than was paid, as refund_exceeds_payment and as the orders
-- constraints), unpaid orders, top-up refunds against the wallet, failed refunds reversed
-- exactly once, refund webhooks converging with the API path, external gateway refunds,
-- failing effects stored as 'failed', and who may read or request refunds.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(139);

-- A paid order (payment pay_<gateway order id>), made as the database owner; returns its id.
create function pg_temp.paid_order(p_account uuid, p_uid uuid, p_purpose text, p_amount bigint,
  p_gateway_order_id text) returns uuid
language plpgsql security definer as $$
declare
  v_id uuid;
begin
  insert into public.orders (account_id, created_by, gateway, purpose, product_id, amount, currency, gateway_order_id)
  values (p_account, p_uid, 'razorpay', p_purpose, case when p_purpose = 'product' then 'refunds_book' end,
    p_amount, 'INR', p_gateway_order_id)
  returning id into v_id;
  if settle.apply_payment('razorpay', 'captured', p_gateway_order_id, 'pay_' || p_gateway_order_id,
       p_amount, 'INR') ->> 'outcome' <> 'applied' then
    raise exception 'could not pay %', p_gateway_order_id;
  end if;
  return v_id;
end
$$;
create function pg_temp.oid(p_gateway_order_id text) returns uuid
language sql stable security definer as $$
  select id from public.orders where gateway = 'razorpay' and gateway_order_id = p_gateway_order_id
$$;
-- status and amount_refunded of an order, as 'status/amount_refunded'.
create function pg_temp.state(p_gateway_order_id text) returns text
language sql stable security definer as $$
  select status || '/' || amount_refunded from public.orders
  where gateway = 'razorpay' and gateway_order_id = p_gateway_order_id
$$;
create function pg_temp.refund_count(p_gateway_order_id text) returns int
language sql stable security definer as $$
  select count(*)::int from public.refunds where order_id = pg_temp.oid(p_gateway_order_id)
$$;
create function pg_temp.tx_keys(p_gateway_order_id text) returns text[]
language sql stable security definer as $$
  select array_agg(split_part(idempotency_key, ':', 1) order by created_at, idempotency_key)
  from public.ledger_transactions where order_id = pg_temp.oid(p_gateway_order_id)
$$;
-- The SQLSTATE and contract code (HINT) a statement raises, or 'ok'.
create function pg_temp.error_of(p_sql text) returns text language plpgsql as $$
declare
  v_state text;
  v_hint text;
begin
  execute p_sql;
  return 'ok';
exception when others then
  get stacked diagnostics v_state = returned_sqlstate, v_hint = pg_exception_hint;
  return v_state || ' ' || coalesce(nullif(v_hint, ''), '-');
end
$$;
-- A refund webhook (Razorpay refund.*) as the webhook function hands it to ingest_webhook.
create function pg_temp.refund_event(p_event_id text, p_gateway_order_id text, p_gateway_refund_id text,
  p_amount bigint, p_status text, p_settle_refund_id uuid default null) returns jsonb
language sql security definer as $$
  select settle.ingest_webhook(row('razorpay', p_event_id, 'refund.' || p_status, null, p_gateway_order_id,
    'pay_' || p_gateway_order_id, p_amount, 'INR', now(), '{}', null, null,
    jsonb_build_object('action', 'refund', 'gateway_refund_id', p_gateway_refund_id,
      'gateway_payment_id', 'pay_' || p_gateway_order_id, 'gateway_order_id', p_gateway_order_id,
      'amount', p_amount, 'currency', 'INR', 'status', p_status,
      'settle_refund_id', p_settle_refund_id,
      'failure_reason', case when p_status = 'failed' then 'refund failed at razorpay' end), null)::settle.incoming_event)
$$;

-- Section - fixture
-- a: owns a personal account and the team; c: plain member of the team; b: alone.
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000008a1', 'refunds-a@example.test'),
  ('00000000-0000-4000-8000-0000000008b1', 'refunds-b@example.test'),
  ('00000000-0000-4000-8000-0000000008c1', 'refunds-c@example.test');
insert into public.accounts (id, name) values ('00000000-0000-4000-8000-0000000008f1', 'Refunds team');
insert into public.account_members (account_id, user_id, role) values
  ('00000000-0000-4000-8000-0000000008f1', '00000000-0000-4000-8000-0000000008a1', 'owner'),
  ('00000000-0000-4000-8000-0000000008f1', '00000000-0000-4000-8000-0000000008c1', 'member');
insert into public.products (id, name, amount, currency) values ('refunds_book', 'Refunds book', 10000, 'INR');

-- Section - the bound: partial, over, exact
select isnt(pg_temp.paid_order(tests.personal('00000000-0000-4000-8000-0000000008a1'),
  '00000000-0000-4000-8000-0000000008a1', 'product', 10000, 'order_R_P1'), null, 'a paid product order of 10000');
select results_eq(
  $$select r -> 'refund' ->> 'status', r -> 'refund' ->> 'amount', r -> 'refund' ->> 'source', r ->> 'replayed'
    from settle.create_refund(pg_temp.oid('order_R_P1'), 3000, 'damaged', 'rk-1', 'hash-1') r$$,
  $$values ('pending'::text, '3000'::text, 'api'::text, 'false'::text)$$,
  'a partial refund of 3000 is counted as pending');
select is(pg_temp.state('order_R_P1'), 'partially_refunded/3000', 'the order is partially refunded by 3000');
select results_eq(
  $$select e.system_account, e.amount from public.ledger_entries e
    join public.ledger_transactions t on t.id = e.transaction_id
    where t.order_id = pg_temp.oid('order_R_P1') and t.kind = 'refund' order by e.amount$$,
  $$values ('revenue:product'::text, -3000::bigint), ('gateway:razorpay'::text, 3000::bigint)$$,
  'the refund moves 3000 out of product revenue into the gateway clearing account');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_P1'), 7001, 'too much', null, null)$$),
  'ST409 refund_exceeds_payment', 'refunding 7001 when 7000 remain is refund_exceeds_payment');
select throws_ok($$select settle.create_refund(pg_temp.oid('order_R_P1'), 10000, 'all of it again', null, null)$$,
  'ST409', null, 'refunding the full amount after a partial refund is refused');
select is(pg_temp.state('order_R_P1') || ' ' || pg_temp.refund_count('order_R_P1'), 'partially_refunded/3000 1',
  'the refused refunds wrote nothing');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_P1'), 0, 'nothing', null, null)$$),
  'ST400 invalid_request', 'a zero refund is invalid');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_P1'), -5, 'negative', null, null)$$),
  'ST400 invalid_request', 'a negative refund is invalid');
select is(
  pg_temp.error_of(format($$select settle.create_refund(%L, 100, 'nobody', null, null)$$, gen_random_uuid())),
  'ST404 not_found', 'refunding an unknown order is not found');

-- Idempotency: the same key and request replays, a different request under it conflicts.
select results_eq(
  $$select r ->> 'replayed', r -> 'refund' ->> 'amount'
    from settle.create_refund(pg_temp.oid('order_R_P1'), 3000, 'damaged', 'rk-1', 'hash-1') r$$,
  $$values ('true'::text, '3000'::text)$$,
  'the same key and request hash replays the refund');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_P1'), 4000, 'other', 'rk-1', 'hash-2')$$),
  'ST409 idempotency_conflict', 'the same key with another request is an idempotency conflict');
select is(pg_temp.state('order_R_P1') || ' ' || pg_temp.refund_count('order_R_P1'), 'partially_refunded/3000 1',
  'the replay counted nothing twice');

select is(
  settle.create_refund(pg_temp.oid('order_R_P1'), 7000, 'the rest', null, null) -> 'refund' ->> 'amount',
  '7000', 'refunding exactly the remaining 7000 is accepted');
select is(pg_temp.state('order_R_P1'), 'refunded/10000', 'the order is refunded in full');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_P1'), 1, 'one more', null, null)$$),
  'ST409 order_not_refundable', 'a fully refunded order takes no further refund');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_P1'), null, 'the remainder', null, null)$$),
  'ST409 order_not_refundable', 'nor a refund of "the remainder"');

-- Section - unpaid orders are not refundable
insert into public.orders (account_id, created_by, gateway, purpose, product_id, amount, currency, gateway_order_id)
values
  (tests.personal('00000000-0000-4000-8000-0000000008a1'), '00000000-0000-4000-8000-0000000008a1',
   'razorpay', 'product', 'refunds_book', 10000, 'INR', 'order_R_C1'),
  (tests.personal('00000000-0000-4000-8000-0000000008a1'), '00000000-0000-4000-8000-0000000008a1',
   'razorpay', 'product', 'refunds_book', 10000, 'INR', 'order_R_F1'),
  (tests.personal('00000000-0000-4000-8000-0000000008a1'), '00000000-0000-4000-8000-0000000008a1',
   'razorpay', 'product', 'refunds_book', 10000, 'INR', 'order_R_A1');
select is(settle.apply_payment('razorpay', 'failed', 'order_R_F1', 'pay_order_R_F1', null, null, 'X', 'declined')
  ->> 'status', 'failed', 'an order whose payment failed');
select is(settle.apply_payment('razorpay', 'authorized', 'order_R_A1', 'pay_order_R_A1', null, null)
  ->> 'status', 'authorized', 'an order authorized, not captured');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_C1'), 100, 'x', null, null)$$),
  'ST409 order_not_refundable', 'a created order cannot be refunded');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_F1'), 100, 'x', null, null)$$),
  'ST409 order_not_refundable', 'a failed order cannot be refunded');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_A1'), null, 'x', null, null)$$),
  'ST409 order_not_refundable', 'an authorized order cannot be refunded');
select is(
  (select count(*)::int from public.refunds where order_id in
    (pg_temp.oid('order_R_C1'), pg_temp.oid('order_R_F1'), pg_temp.oid('order_R_A1'))),
  0, 'no refund row was written for unpaid orders');

-- Section - the table keeps the bound and the status whatever the path
select isnt(pg_temp.paid_order(tests.personal('00000000-0000-4000-8000-0000000008a1'),
  '00000000-0000-4000-8000-0000000008a1', 'product', 10000, 'order_R_P2'), null, 'a second paid product order');
select throws_ok(
  $$update public.orders set amount_refunded = 10001, status = 'refunded' where gateway_order_id = 'order_R_P2'$$,
  '23514', null, 'amount_refunded above the amount is refused by the table');
select throws_ok(
  $$update public.orders set amount_refunded = 5000 where gateway_order_id = 'order_R_P2'$$,
  '23514', 'new row for relation "orders" violates check constraint "orders_refund_status_check"',
  'a paid order with money refunded must not stay paid');
select throws_ok(
  $$update public.orders set status = 'refunded' where gateway_order_id = 'order_R_P2'$$,
  '23514', 'new row for relation "orders" violates check constraint "orders_refund_status_check"',
  'an order cannot be refunded with nothing counted as refunded');
select throws_ok(
  $$update public.orders set status = 'partially_refunded', amount_refunded = 10000 where gateway_order_id = 'order_R_P2'$$,
  '23514', 'new row for relation "orders" violates check constraint "orders_refund_status_check"',
  'a fully refunded amount cannot be partially_refunded');
select throws_ok(
  $$update public.orders set amount_refunded = 100 where gateway_order_id = 'order_R_C1'$$,
  '23514', 'new row for relation "orders" violates check constraint "orders_unpaid_not_refunded_check"',
  'an unpaid order cannot carry a refunded amount');
select is(pg_temp.state('order_R_P2'), 'paid/0', 'the refused updates left the order paid with nothing refunded');

-- Section - top-up refunds come out of the wallet
select isnt(pg_temp.paid_order(tests.personal('00000000-0000-4000-8000-0000000008b1'),
  '00000000-0000-4000-8000-0000000008b1', 'wallet_topup', 5000, 'order_R_T1'), null, 'b tops up 5000');
do $$
begin
  -- b spends 3000 of it.
  perform settle.post_transaction('purchase', 'refunds:spend-b', null, 'spent', jsonb_build_array(
    jsonb_build_object('wallet_id', settle.ensure_wallet(tests.personal('00000000-0000-4000-8000-0000000008b1'), 'INR'),
      'currency', 'INR', 'amount', -3000),
    jsonb_build_object('system_account', 'revenue:product', 'currency', 'INR', 'amount', 3000)));
end
$$;
select is(tests.balance('00000000-0000-4000-8000-0000000008b1'), 2000::bigint, 'b''s wallet holds 2000');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_T1'), 2001, 'x', null, null)$$),
  'ST409 insufficient_funds', 'refunding 2001 of the top-up with 2000 in the wallet is insufficient_funds');
select is(
  pg_temp.error_of($$select settle.create_refund(pg_temp.oid('order_R_T1'), null, 'x', null, null)$$),
  'ST409 insufficient_funds', 'so is refunding the whole top-up');
select results_eq(
  $$select pg_temp.state('order_R_T1'), pg_temp.refund_count('order_R_T1'),
      tests.balance('00000000-0000-4000-8000-0000000008b1'), pg_temp.tx_keys('order_R_T1')$$,
  $$values ('paid/0'::text, 0, 2000::bigint, array['order_paid'])$$,
  'the refused top-up refunds wrote nothing: order, refunds, wallet and ledger unchanged');

select is(
  settle.create_refund(pg_temp.oid('order_R_T1'), 2000, 'x', null, null) -> 'refund' ->> 'status',
  'pending', 'refunding exactly the wallet''s 2000 is accepted');
select results_eq(
  $$select pg_temp.state('order_R_T1'), tests.balance('00000000-0000-4000-8000-0000000008b1')$$,
  $$values ('partially_refunded/2000'::text, 0::bigint)$$,
  'the top-up refund debits the wallet and counts against the order');

-- Section - a failed refund is reversed exactly once
select is(
  (settle.transition_refund(
    (select id from public.refunds where order_id = pg_temp.oid('order_R_T1')), 'failed', 'bank refused')).status,
  'failed', 'the top-up refund fails');
select results_eq(
  $$select pg_temp.state('order_R_T1'), tests.balance('00000000-0000-4000-8000-0000000008b1'),
      pg_temp.tx_keys('order_R_T1')$$,
  $$values ('paid/0'::text, 2000::bigint, array['order_paid', 'refund', 'refund_reversed'])$$,
  'the failure restores the order, returns the 2000 to the wallet and posts one reversal');
select is(
  (settle.transition_refund(
    (select id from public.refunds where order_id = pg_temp.oid('order_R_T1')), 'failed', 'again')).failure_reason,
  'bank refused', 'failing it again changes nothing');
select is(
  (settle.transition_refund(
    (select id from public.refunds where order_id = pg_temp.oid('order_R_T1')), 'processed', null)).status,
  'failed', 'a late processed after failed leaves it failed');
select results_eq(
  $$select pg_temp.state('order_R_T1'), tests.balance('00000000-0000-4000-8000-0000000008b1'),
      array_length(pg_temp.tx_keys('order_R_T1'), 1)$$,
  $$values ('paid/0'::text, 2000::bigint, 3)$$,
  'the repeated failure returned nothing twice');

-- The same through the webhook: the gateway answered pending with its id, then refund.failed
-- arrives twice (redelivered under another event id as well).
select is(
  settle.create_refund(pg_temp.oid('order_R_T1'), 1500, 'x', null, null) -> 'refund' ->> 'status',
  'pending', 'a second top-up refund of 1500');
select results_eq(
  $$select r ->> 'gateway_refund_id', r ->> 'status', (r ->> 'gateway_attempts')::int
    from settle.record_refund_result(
      (select id from public.refunds where order_id = pg_temp.oid('order_R_T1') and status = 'pending'),
      'rfnd_R_T1b', 'pending') r$$,
  $$values ('rfnd_R_T1b'::text, 'pending'::text, 1)$$,
  'the gateway''s answer records its refund id');
select is(tests.balance('00000000-0000-4000-8000-0000000008b1'), 500::bigint, 'the wallet is down to 500');
select results_eq(
  $$select r ->> 'outcome', r ->> 'status'
    from pg_temp.refund_event('evt_R_T1b_failed', 'order_R_T1', 'rfnd_R_T1b', 1500, 'failed') r$$,
  $$values ('applied'::text, 'failed'::text)$$,
  'refund.failed through ingest_webhook fails the refund');
select is(pg_temp.refund_event('evt_R_T1b_failed', 'order_R_T1', 'rfnd_R_T1b', 1500, 'failed') ->> 'outcome',
  'duplicate', 'the same event again is a duplicate');
select is(pg_temp.refund_event('evt_R_T1b_failed_2', 'order_R_T1', 'rfnd_R_T1b', 1500, 'failed') ->> 'outcome',
  'no_effect', 'the failure under another event id has no effect');
select results_eq(
  $$select pg_temp.state('order_R_T1'), tests.balance('00000000-0000-4000-8000-0000000008b1'),
      array_length(pg_temp.tx_keys('order_R_T1'), 1)$$,
  $$values ('paid/0'::text, 2000::bigint, 5)$$,
  'the webhook failure restored order and wallet exactly once (one refund, one reversal)');
select results_eq(
  $$select outcome, order_id, effect ->> 'gateway_refund_id' from public.webhook_events
    where gateway = 'razorpay' and event_id in ('evt_R_T1b_failed', 'evt_R_T1b_failed_2') order by event_id$$,
  $$values ('applied'::text, pg_temp.oid('order_R_T1'), 'rfnd_R_T1b'::text),
           ('no_effect'::text, pg_temp.oid('order_R_T1'), 'rfnd_R_T1b'::text)$$,
  'both events are stored with their outcome, order and effect');
select is(pg_temp.refund_event('evt_R_T1b_processed_late', 'order_R_T1', 'rfnd_R_T1b', 1500, 'processed') ->> 'outcome',
  'no_effect', 'a processed event delivered after the failure is an older state: no effect');
select results_eq(
  $$select pg_temp.state('order_R_T1'), tests.balance('00000000-0000-4000-8000-0000000008b1')$$,
  $$values ('paid/0'::text, 2000::bigint)$$,
  'the contradicting event moves no money');

-- A processed refund later rejected by the card network (processed -> failed) is reversed too.
select isnt(pg_temp.paid_order(tests.personal('00000000-0000-4000-8000-0000000008a1'),
  '00000000-0000-4000-8000-0000000008a1', 'product', 10000, 'order_R_P3'), null, 'a third paid product order');
select is(
  settle.record_refund_result(
    (settle.create_refund(pg_temp.oid('order_R_P3'), null, 'all', null, null) -> 'refund' ->> 'id')::uuid,
    'rfnd_R_P3', 'processed') ->> 'status',
  'processed', 'a full refund the gateway processed at once');
select is(pg_temp.state('order_R_P3'), 'refunded/10000', 'the order is refunded');
select is(pg_temp.refund_event('evt_R_P3_failed', 'order_R_P3', 'rfnd_R_P3', 10000, 'failed') ->> 'status',
  'failed', 'the network rejects it afterwards');
select results_eq(
  $$select pg_temp.state('order_R_P3'), pg_temp.tx_keys('order_R_P3')$$,
  $$values ('paid/0'::text, array['order_paid', 'refund', 'refund_reversed'])$$,
  'refunded -> paid again, with one reversal posted');

-- Section - the webhook converges with the API path
select isnt(pg_temp.paid_order(tests.personal('00000000-0000-4000-8000-0000000008a1'),
  '00000000-0000-4000-8000-0000000008a1', 'product', 10000, 'order_R_P4'), null, 'a fourth paid product order');
select is(
  settle.create_refund(pg_temp.oid('order_R_P4'), 4000, 'api', null, null) -> 'refund' ->> 'status',
  'pending', 'an API refund of 4000, the gateway''s answer not recorded yet');
-- The webhook comes first and carries the settle refund id we sent in the notes.
select results_eq(
  format($$select r ->> 'outcome', r ->> 'status', (r ->> 'refund_id')::uuid
    from pg_temp.refund_event('evt_R_P4a', 'order_R_P4', 'rfnd_R_P4a', 4000, 'processed', %L) r$$,
    (select id from public.refunds where order_id = pg_temp.oid('order_R_P4'))),
  format($$values ('applied'::text, 'processed'::text, %L::uuid)$$,
    (select id from public.refunds where order_id = pg_temp.oid('order_R_P4'))),
  'refund.processed with settle_refund_id links to the pending refund');
select results_eq(
  $$select gateway_refund_id, status, source, amount from public.refunds
    where order_id = pg_temp.oid('order_R_P4')$$,
  $$values ('rfnd_R_P4a'::text, 'processed'::text, 'api'::text, 4000::bigint)$$,
  'one refund row: the API''s, now with the gateway id and processed');
select is(pg_temp.state('order_R_P4'), 'partially_refunded/4000', 'counted once against the order');
select results_eq(
  $$select r ->> 'gateway_refund_id', r ->> 'status'
    from settle.record_refund_result((select id from public.refunds where order_id = pg_temp.oid('order_R_P4')),
      'rfnd_R_P4a', 'pending') r$$,
  $$values ('rfnd_R_P4a'::text, 'processed'::text)$$,
  'the API''s late pending answer does not move a processed refund back');

-- Without the settle id an event is never matched to a pending request by amount: it is a
-- refund made at the gateway, and the request the gateway then refuses is failed on its own.
select is(
  settle.create_refund(pg_temp.oid('order_R_P4'), 1000, 'api', null, null) -> 'refund' ->> 'status',
  'pending', 'a second API refund of 1000, unanswered');
select is(pg_temp.refund_event('evt_R_P4b', 'order_R_P4', 'rfnd_R_P4b', 1000, 'processed') ->> 'outcome',
  'applied', 'refund.processed of 1000 without settle id is applied');
select results_eq(
  $$select gateway_refund_id, status, source, origin, amount from public.refunds
    where order_id = pg_temp.oid('order_R_P4') order by amount, source$$,
  $$values (null::text, 'pending'::text, 'api'::text, 'settle'::text, 1000::bigint),
           ('rfnd_R_P4b'::text, 'processed'::text, 'gateway'::text, 'gateway'::text, 1000::bigint),
           ('rfnd_R_P4a'::text, 'processed'::text, 'api'::text, 'settle'::text, 4000::bigint)$$,
  'not linked to the pending 1000 by amount: a gateway-origin row of its own');
select is(pg_temp.state('order_R_P4'), 'partially_refunded/6000', 'both counted while the request is unanswered');
select is(
  settle.record_refund_result((select id from public.refunds where order_id = pg_temp.oid('order_R_P4')
      and source = 'api' and status = 'pending'), null, 'failed', 'refused: fully refunded') ->> 'status',
  'failed', 'the gateway refuses the API request: it fails');
select is(pg_temp.state('order_R_P4'), 'partially_refunded/5000',
  'the order counts 5000: the 4000 and the gateway''s 1000');
select is(
  settle.record_refund_result((select id from public.refunds where gateway_refund_id = 'rfnd_R_P4a'),
    null, 'failed', 'refused resend') ->> 'status',
  'processed', 'a refusal never fails a refund that carries a gateway refund id');

-- Section - a refund made at the gateway (dashboard) is counted once
select results_eq(
  $$select r ->> 'outcome' from pg_temp.refund_event('evt_R_P4c1', 'order_R_P4', 'rfnd_R_P4c', 2500, 'pending') r$$,
  $$values ('applied'::text)$$,
  'an external refund.created is counted');
select is(pg_temp.refund_event('evt_R_P4c2', 'order_R_P4', 'rfnd_R_P4c', 2500, 'processed') ->> 'outcome',
  'applied', 'its refund.processed moves it to processed');
select is(pg_temp.refund_event('evt_R_P4c3', 'order_R_P4', 'rfnd_R_P4c', 2500, 'processed') ->> 'outcome',
  'no_effect', 'refund.processed redelivered under another event id has no effect');
select results_eq(
  $$select status, source, amount, gateway_payment_id from public.refunds where gateway_refund_id = 'rfnd_R_P4c'$$,
  $$values ('processed'::text, 'gateway'::text, 2500::bigint, 'pay_order_R_P4'::text)$$,
  'one gateway-sourced refund row');
select is(pg_temp.state('order_R_P4'), 'partially_refunded/7500', 'the external refund counted once');
select results_eq(
  $$select r ->> 'outcome', r ->> 'held'
    from pg_temp.refund_event('evt_R_P4d', 'order_R_P4', 'rfnd_R_P4d', 2501, 'processed') r$$,
  $$values ('applied'::text, 'awaiting_room'::text)$$,
  'an external refund beyond what remains is held: a refund settle counts must be failing');
select is(pg_temp.refund_event('evt_R_P4x', 'order_R_P4', 'rfnd_R_P4x', 10001, 'processed') ->> 'outcome',
  'mismatch', 'an external refund of more than the whole payment is a mismatch');
select results_eq(
  $$select pg_temp.state('order_R_P4'), pg_temp.refund_count('order_R_P4')$$,
  $$values ('partially_refunded/7500'::text, 4)$$,
  'neither counted anything');
select results_eq(
  $$select gateway_refund_id, reason, status, amount, resolved_at is null from public.gateway_refund_holds
    where order_id = pg_temp.oid('order_R_P4') order by gateway_refund_id$$,
  $$values ('rfnd_R_P4d'::text, 'awaiting_room'::text, 'processed'::text, 2501::bigint, true),
           ('rfnd_R_P4x'::text, 'exceeds_payment'::text, 'processed'::text, 10001::bigint, true)$$,
  'both are held for an operator, not lost');
select results_eq(
  $$select kind, amount from public.refund_exceptions where order_id = pg_temp.oid('order_R_P4') order by amount$$,
  $$values ('held_awaiting_room'::text, 2501::bigint), ('held_exceeds_payment'::text, 10001::bigint)$$,
  'refund_exceptions lists them');
select results_eq(
  $$select invariant, subject from settle.ledger_audit() where subject like 'razorpay:rfnd\_R\_P4%' order by subject$$,
  $$values ('gateway_refund_uncounted'::text, 'razorpay:rfnd_R_P4d'::text),
           ('gateway_refund_uncounted'::text, 'razorpay:rfnd_R_P4x'::text)$$,
  'ledger_audit reports the uncounted gateway refunds');
select is(pg_temp.refund_event('evt_R_P4e', 'order_R_P4', 'rfnd_R_P4e', 100, 'failed') ->> 'outcome',
  'no_effect', 'a failed refund settle never counted has no effect');
select is(pg_temp.refund_event('evt_R_P4e2', 'order_R_P4', 'rfnd_R_P4e', 100, 'processed') ->> 'outcome',
  'no_effect', 'its older refund.processed, delivered after the failure, does not count it');
select results_eq(
  $$select pg_temp.state('order_R_P4'), pg_temp.refund_count('order_R_P4')$$,
  $$values ('partially_refunded/7500'::text, 4)$$,
  'the failed gateway refund was never counted');

-- Section - a failing effect is stored as 'failed' and changes nothing
select results_eq(
  $$select r ->> 'outcome', r ->> 'duplicate'
    from settle.ingest_webhook(row('razorpay', 'evt_R_bad', 'refund.processed', null, 'order_R_P4', 'pay_order_R_P4',
      null, 'INR', now(), '{"bad": true}', null, null,
      '{"action": "refund", "gateway_refund_id": "rfnd_R_bad", "gateway_payment_id": "pay_order_R_P4",
        "amount": "12x", "currency": "INR", "status": "processed"}', null)::settle.incoming_event) r$$,
  $$values ('failed'::text, 'false'::text)$$,
  'an effect that raises answers outcome failed instead of raising');
select results_eq(
  $$select outcome, detail is not null, effect ->> 'gateway_refund_id', raw_body from public.webhook_events
    where gateway = 'razorpay' and event_id = 'evt_R_bad'$$,
  $$values ('failed'::text, true, 'rfnd_R_bad'::text, '{"bad": true}'::text)$$,
  'the event is stored as failed with the error and its effect, for a retry');
select results_eq(
  $$select pg_temp.state('order_R_P4'), pg_temp.refund_count('order_R_P4')$$,
  $$values ('partially_refunded/7500'::text, 4)$$,
  'the failed effect changed nothing');

-- Section - a gateway refund held while settle's unanswered request fills the order
-- d (alone) buys a product; an operator's full refund is counted and sent; before the gateway
-- answers, a dashboard refund of 6000 arrives: the gateway made it, so it is held, and applied
-- the moment the gateway refuses settle's request.
insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000008d1', 'refunds-d@example.test');
select isnt(pg_temp.paid_order(tests.personal('00000000-0000-4000-8000-0000000008d1'),
  '00000000-0000-4000-8000-0000000008d1', 'product', 10000, 'order_R_H'), null, 'd''s paid product order');
select is(settle.create_refund(pg_temp.oid('order_R_H'), null, 'operator', null, null) -> 'refund' ->> 'status',
  'pending', 'an operator''s full refund, unanswered');
select results_eq(
  $$select r ->> 'outcome', r ->> 'held' from pg_temp.refund_event('evt_R_H1', 'order_R_H', 'rfnd_R_H', 6000, 'pending') r$$,
  $$values ('applied'::text, 'awaiting_room'::text)$$,
  'the dashboard refund.created is held: settle''s own request fills the order');
select is(pg_temp.refund_event('evt_R_H2', 'order_R_H', 'rfnd_R_H', 6000, 'processed') ->> 'held',
  'awaiting_room', 'its refund.processed updates the hold');
select results_eq(
  $$select pg_temp.state('order_R_H'), pg_temp.refund_count('order_R_H'),
      (select status from public.gateway_refund_holds where gateway_refund_id = 'rfnd_R_H')$$,
  $$values ('refunded/10000'::text, 1, 'processed'::text)$$,
  'nothing counted twice meanwhile');
select is(
  settle.record_refund_result((select id from public.refunds where order_id = pg_temp.oid('order_R_H')),
    null, 'failed', 'refused: 6000 already refunded') ->> 'status',
  'failed', 'the gateway refuses settle''s request');
select results_eq(
  $$select status, origin, amount, requested_by from public.refunds
    where order_id = pg_temp.oid('order_R_H') order by origin$$,
  $$values ('processed'::text, 'gateway'::text, 6000::bigint, null::uuid),
           ('failed'::text, 'settle'::text, 10000::bigint, null::uuid)$$,
  'the held refund is counted as its own gateway-origin row, processed');
select results_eq(
  $$select pg_temp.state('order_R_H'), h.resolved_at is not null, h.refund_id = r.id
    from public.gateway_refund_holds h join public.refunds r on r.gateway_refund_id = h.gateway_refund_id
    where h.gateway_refund_id = 'rfnd_R_H'$$,
  $$values ('partially_refunded/6000'::text, true, true)$$,
  'the order counts what the gateway refunded; the hold is resolved');
select is(pg_temp.refund_event('evt_R_H2', 'order_R_H', 'rfnd_R_H', 6000, 'processed') ->> 'duplicate',
  'true', 'the redelivered event is a duplicate');
select is(pg_temp.refund_event('evt_R_H3', 'order_R_H', 'rfnd_R_H', 6000, 'processed') ->> 'outcome',
  'no_effect', 'a later copy finds the counted row');

-- Section - a gateway refund the wallet cannot cover: the shortfall is the platform's receivable
select isnt(pg_temp.paid_order(tests.personal('00000000-0000-4000-8000-0000000008d1'),
  '00000000-0000-4000-8000-0000000008d1', 'wallet_topup', 5000, 'order_R_S'), null, 'd tops up 5000');
select lives_ok(
  $$select settle.post_transaction('purchase', 'test-spend-R-S', null, 'spent',
      jsonb_build_array(
        jsonb_build_object('wallet_id', settle.ensure_wallet(tests.personal('00000000-0000-4000-8000-0000000008d1'), 'INR'),
          'currency', 'INR', 'amount', -3000),
        jsonb_build_object('system_account', 'revenue:product', 'currency', 'INR', 'amount', 3000)))$$,
  'd spends 3000 of it');
select is(pg_temp.refund_event('evt_R_S1', 'order_R_S', 'rfnd_R_S', 5000, 'processed') ->> 'outcome',
  'applied', 'a dashboard refund of all 5000 is applied');
select results_eq(
  $$select pg_temp.state('order_R_S'), tests.balance('00000000-0000-4000-8000-0000000008d1'), r.shortfall
    from public.refunds r where r.gateway_refund_id = 'rfnd_R_S'$$,
  $$values ('refunded/5000'::text, 0::bigint, 3000::bigint)$$,
  'the wallet gives its 2000; 3000 is the shortfall');
select results_eq(
  $$select coalesce(e.system_account, 'wallet'), e.amount from public.ledger_entries e
    join public.ledger_transactions t on t.id = e.transaction_id
    where t.idempotency_key = 'refund:' || (select id from public.refunds where gateway_refund_id = 'rfnd_R_S')
    order by e.amount$$,
  $$values ('receivable:refund_shortfall'::text, -3000::bigint), ('wallet'::text, -2000::bigint),
           ('gateway:razorpay'::text, 5000::bigint)$$,
  'one balanced posting: wallet 2000 and receivable 3000 to the gateway');
select results_eq(
  $$select kind, amount, currency from public.refund_exceptions where gateway_refund_id = 'rfnd_R_S'$$,
  $$values ('wallet_shortfall'::text, 3000::bigint, 'INR'::text)$$,
  'refund_exceptions shows the shortfall to operators');
select is_empty(
  $$select * from settle.ledger_audit() where invariant = 'receivable_drift'$$,
  'the receivable equals the open shortfalls');
select is(pg_temp.refund_event('evt_R_S2', 'order_R_S', 'rfnd_R_S', 5000, 'failed') ->> 'outcome',
  'applied', 'the gateway refund fails later');
select results_eq(
  $$select pg_temp.state('order_R_S'), tests.balance('00000000-0000-4000-8000-0000000008d1'),
      (select coalesce(sum(amount), 0) from public.ledger_entries e join public.ledger_transactions t
        on t.id = e.transaction_id where e.system_account = 'receivable:refund_shortfall'
        and t.order_id = pg_temp.oid('order_R_S'))$$,
  $$values ('paid/0'::text, 2000::bigint, 0::numeric)$$,
  'its reversal returns exactly what each gave: wallet 2000, receivable 3000');
select is((select count(*)::int from public.refund_exceptions where gateway_refund_id = 'rfnd_R_S'), 0,
  'no shortfall is open any more');

-- Section - the refund policy for products
select isnt(pg_temp.paid_order(tests.personal('00000000-0000-4000-8000-0000000008d1'),
  '00000000-0000-4000-8000-0000000008d1', 'product', 10000, 'order_R_W'), null, 'd buys the book again');
update public.orders set paid_at = now() - interval '14 days' + interval '1 minute'
where id = pg_temp.oid('order_R_W');
select tests.login('00000000-0000-4000-8000-0000000008d1');
select is(
  settle.request_refund(pg_temp.oid('order_R_W'), 1000, 'late but in time', null, null) -> 'refund' ->> 'status',
  'pending', 'inside the 14-day window the buyer refunds it');
select tests.logout();
update public.orders set paid_at = now() - interval '14 days' - interval '1 minute'
where id = pg_temp.oid('order_R_W');
select tests.login('00000000-0000-4000-8000-0000000008d1');
select is(
  pg_temp.error_of($$select settle.request_refund(pg_temp.oid('order_R_W'), 1000, 'too late', null, null)$$),
  'ST409 refund_not_allowed', 'after the window the buyer may not');
select tests.logout();
update public.products set refund_window_days = 30 where id = 'refunds_book';
select tests.login('00000000-0000-4000-8000-0000000008d1');
select is(
  settle.request_refund(pg_temp.oid('order_R_W'), 1000, 'longer window', null, null) -> 'refund' ->> 'status',
  'pending', 'the product''s own window (30 days) applies');
select tests.logout();
update public.products set refund_window_days = 0 where id = 'refunds_book';
select tests.login('00000000-0000-4000-8000-0000000008d1');
select is(
  pg_temp.error_of($$select settle.request_refund(pg_temp.oid('order_R_W'), 1000, 'none', null, null)$$),
  'ST409 refund_not_allowed', 'a window of 0 days: users never refund it');
select tests.logout();
select is(settle.create_refund(pg_temp.oid('order_R_W'), null, 'operator', null, null) -> 'refund' ->> 'amount',
  '8000', 'an operator refunds what remains at any time');
update public.products set refund_window_days = 14 where id = 'refunds_book';

-- Section - who may request refunds
-- c is a plain member of the team; b belongs to neither of a's accounts.
select isnt(pg_temp.paid_order('00000000-0000-4000-8000-0000000008f1', '00000000-0000-4000-8000-0000000008c1',
  'product', 10000, 'order_R_T'), null, 'a paid team order, bought by the plain member');
select tests.login('00000000-0000-4000-8000-0000000008c1');
select is(
  pg_temp.error_of($$select settle.request_refund(pg_temp.oid('order_R_T'), 100, 'mine', null, null)$$),
  'ST403 forbidden', 'a plain member cannot refund the team''s order, even one they bought');
select tests.login('00000000-0000-4000-8000-0000000008b1');
select is(
  pg_temp.error_of($$select settle.request_refund(pg_temp.oid('order_R_T'), 100, 'x', null, null)$$),
  'ST404 not_found', 'another user refunding the team''s order gets not found');
select is(
  pg_temp.error_of($$select settle.request_refund(pg_temp.oid('order_R_P2'), 100, 'x', null, null)$$),
  'ST404 not_found', 'another user refunding a''s order gets not found');
select throws_ok($$select settle.create_refund(pg_temp.oid('order_R_T1'), 100, 'x', null, null)$$,
  '42501', null, 'a user cannot call the service role''s create_refund');
select throws_ok($$select settle.transition_refund(gen_random_uuid(), 'failed', 'x')$$,
  '42501', null, 'a user cannot call transition_refund');
select tests.login(null);
select throws_ok($$select settle.request_refund(pg_temp.oid('order_R_T'), 100, 'x', null, null)$$,
  'ST401', null, 'no signed-in user is unauthorized');
select tests.login_anon();
select throws_ok($$select settle.request_refund(gen_random_uuid(), 100, 'x', null, null)$$,
  '42501', null, 'anon cannot call request_refund');
select tests.logout();
select is(pg_temp.refund_count('order_R_T'), 0, 'the refused requests wrote nothing');

select tests.login('00000000-0000-4000-8000-0000000008a1');
select results_eq(
  $$select r -> 'refund' ->> 'status', (r -> 'refund' ->> 'requested_by')::uuid
    from settle.request_refund(pg_temp.oid('order_R_T'), 2500, 'goodwill', 'rk-team', 'h') r$$,
  $$values ('pending'::text, '00000000-0000-4000-8000-0000000008a1'::uuid)$$,
  'the team''s owner refunds its order, recorded as requested by them');
select tests.logout();
select is(pg_temp.state('order_R_T'), 'partially_refunded/2500', 'the owner''s refund is counted');

-- Section - users read their own refunds only, and write none
select tests.login('00000000-0000-4000-8000-0000000008a1');
select set_eq('select distinct order_id from public.refunds',
  array[pg_temp.oid('order_R_P1'), pg_temp.oid('order_R_P3'), pg_temp.oid('order_R_P4'), pg_temp.oid('order_R_T')],
  'a reads the refunds of their personal and team orders');
select is((select count(*)::int from public.refunds where order_id = pg_temp.oid('order_R_T1')), 0,
  'a reads none of b''s refunds');
select tests.login('00000000-0000-4000-8000-0000000008c1');
select set_eq('select distinct order_id from public.refunds', array[pg_temp.oid('order_R_T')],
  'the plain member reads the team''s refunds only');
select tests.login('00000000-0000-4000-8000-0000000008b1');
select set_eq('select distinct order_id from public.refunds', array[pg_temp.oid('order_R_T1')],
  'b reads only the refunds of b''s top-up');
select throws_ok(
  $$insert into public.refunds (order_id, account_id, gateway, gateway_payment_id, amount, currency, source)
    select id, account_id, gateway, gateway_payment_id, 1, currency, 'api' from public.orders limit 1$$,
  '42501', null, 'a user cannot insert a refund');
select throws_ok($$update public.refunds set status = 'failed'$$, '42501', null,
  'a user cannot fail a refund directly');
select tests.login_anon();
select throws_ok('select * from public.refunds', '42501', null, 'anon: refunds are permission denied');
select tests.logout();

-- Section - the books agree
select is_empty(
  $$select * from settle.ledger_audit() where subject in (
      select id::text from public.orders where gateway_order_id like 'order\_R\_%'
      union all
      select t.id::text from public.ledger_transactions t
      join public.orders o on o.id = t.order_id where o.gateway_order_id like 'order\_R\_%'
      union all
      select w.id::text from public.wallets w join public.accounts a on a.id = w.account_id
      where a.personal_owner_id in ('00000000-0000-4000-8000-0000000008a1', '00000000-0000-4000-8000-0000000008b1'))$$,
  'ledger_audit finds nothing wrong with this file''s orders, transactions and wallets');
select lives_ok('set constraints all immediate', 'every ledger transaction posted here is balanced');

-- Section - a defect found in review, fixed
-- A refund effect without a status is ignored (transition_refund once took its "failed" branch
-- for a null status and reversed a refund the gateway may have paid out).
select is(
  settle.record_refund_result(
    (settle.create_refund(pg_temp.oid('order_R_P2'), 1000, 'x', null, null) -> 'refund' ->> 'id')::uuid,
    'rfnd_R_P2', 'pending') ->> 'status',
  'pending', 'a pending refund of order P2 with its gateway id');
select lives_ok(
  $$select settle.ingest_webhook(row('razorpay', 'evt_R_P2_nostatus', 'refund.updated', null, 'order_R_P2',
      'pay_order_R_P2', 1000, 'INR', now(), '{}', null, null,
      '{"action": "refund", "gateway_refund_id": "rfnd_R_P2", "gateway_payment_id": "pay_order_R_P2",
        "amount": 1000, "currency": "INR"}', null)::settle.incoming_event)$$,
  'an effect without a status is ingested');
select is((select status from public.refunds where gateway_refund_id = 'rfnd_R_P2'), 'pending',
  'a refund effect without a status leaves the refund pending');
select is(pg_temp.state('order_R_P2'), 'partially_refunded/1000',
  'a refund effect without a status leaves the order''s refunded amount');

-- The receivable check can fail: a posting to receivable:refund_shortfall that no refund's
-- shortfall explains is drift.
select lives_ok(
  $$select settle.post_transaction('adjustment', 'test-receivable-drift', null, 'stray',
      '[{"system_account": "receivable:refund_shortfall", "currency": "INR", "amount": -1},
        {"system_account": "revenue:product", "currency": "INR", "amount": 1}]')$$,
  'a stray receivable posting');
select results_eq(
  $$select invariant, subject from settle.ledger_audit() where invariant = 'receivable_drift'$$,
  $$values ('receivable_drift'::text, 'INR'::text)$$,
  'ledger_audit reports the receivable drifting from the open shortfalls');

select * from finish();
rollback;
