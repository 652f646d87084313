-- The lean payment path (20261209000100_lean_payment_path.sql): each hot table's CHECK
-- constraints as one row validator that fails the way a CHECK constraint fails, and a gateway
-- payment posted by the posting code, with ledger_entries' trigger skipped only inside it.
-- Needs 00-helpers (run first by pg_prove's file order).
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(26);

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000018a1', 'lean-a@example.test');
create function pg_temp.new_order(p_ref text, p_purpose text, p_amount bigint)
returns uuid language sql security definer as $$
  insert into public.orders (account_id, created_by, gateway, purpose, product_id, amount,
    currency, gateway_order_id)
  values (tests.personal('00000000-0000-4000-8000-0000000018a1'),
    '00000000-0000-4000-8000-0000000018a1', 'razorpay', p_purpose,
    case when p_purpose = 'product' then 'sticker_pack' end, p_amount, 'INR', p_ref)
  returning id
$$;
create function pg_temp.pay(p_ref text) returns text language sql security definer as $$
  select settle.apply_payment('razorpay', 'captured', o.gateway_order_id, 'pay_' || p_ref,
    o.amount, o.currency) ->> 'outcome'
  from public.orders o where o.gateway = 'razorpay' and o.gateway_order_id = p_ref
$$;
-- settle.orders_checks on the order order_L_1 with some fields replaced.
create function pg_temp.order_checks(p_change jsonb) returns boolean language sql as $$
  select settle.orders_checks(jsonb_populate_record(o, p_change))
  from public.orders o where o.gateway_order_id = 'order_L_1'
$$;
select from pg_temp.new_order('order_L_1', 'wallet_topup', 1000);

-- Section - one CHECK per table
select is(
  (select string_agg(c.conrelid::regclass || ':' || c.conname, ',' order by c.conname)
   from pg_constraint c
   where c.contype = 'c' and c.conrelid in ('public.orders'::regclass,
     'public.webhook_events'::regclass, 'public.ledger_transactions'::regclass,
     'public.ledger_entries'::regclass, 'public.outbox_events'::regclass)),
  'ledger_entries:ledger_entries_checks,ledger_transactions:ledger_transactions_checks,'
  'orders:orders_checks,outbox_events:outbox_events_checks,webhook_events:webhook_events_checks',
  'the five tables a payment writes each have one CHECK constraint, calling its validator');

-- Section - the rules, each failing under its old constraint's name
select ok(pg_temp.order_checks('{}'), 'a valid order passes');
select ok(pg_temp.order_checks('{"gateway_payment_id": null, "dispute_status": null}'),
  'a null passes, as in a CHECK constraint');
select throws_ok($$select pg_temp.order_checks('{"amount": 0}')$$, '23514',
  'new row for relation "orders" violates check constraint "orders_amount_check"',
  'orders: a zero amount fails orders_amount_check');
select throws_ok($$select pg_temp.order_checks('{"status": "bogus"}')$$, '23514',
  'new row for relation "orders" violates check constraint "orders_status_check"',
  'orders: an unknown status fails orders_status_check');
select throws_ok($$select pg_temp.order_checks('{"gateway_order_id": ""}')$$, '23514',
  'new row for relation "orders" violates check constraint "orders_gateway_order_id_check"',
  'orders: an empty gateway order id fails orders_gateway_order_id_check');
select throws_ok($$select pg_temp.order_checks('{"purpose": "plan"}')$$, '23514',
  'new row for relation "orders" violates check constraint "orders_check1"',
  'orders: a plan order without a plan fails orders_check1');
select throws_ok($$select pg_temp.order_checks('{"amount_refunded": 5}')$$, '23514',
  'new row for relation "orders" violates check constraint "orders_unpaid_not_refunded_check"',
  'orders: an unpaid order with refunds fails orders_unpaid_not_refunded_check');
select throws_ok($$select pg_temp.order_checks('{"status": "paid", "paid_at": "2026-01-01T00:00:00Z", "amount_refunded": 1000}')$$,
  '23514', 'new row for relation "orders" violates check constraint "orders_refund_status_check"',
  'orders: a paid order refunded in full fails orders_refund_status_check');
select throws_ok($$select pg_temp.order_checks('{"amount": 0, "status": "bogus"}')$$, '23514',
  'new row for relation "orders" violates check constraint "orders_amount_check"',
  'orders: of two failed rules the first by name is reported, as Postgres orders CHECK constraints');
select throws_ok(
  $$select settle.ledger_transactions_checks(jsonb_populate_record(null::public.ledger_transactions,
      '{"kind": "bogus", "idempotency_key": "lean:k"}'))$$,
  '23514', 'new row for relation "ledger_transactions" violates check constraint "ledger_transactions_kind_check"',
  'ledger_transactions: an unknown kind fails ledger_transactions_kind_check');
select throws_ok(
  $$select settle.outbox_events_checks(jsonb_populate_record(null::public.outbox_events,
      '{"type": "Order.paid", "subject_type": "order", "payload": {}}'))$$,
  '23514', 'new row for relation "outbox_events" violates check constraint "outbox_events_type_check"',
  'outbox_events: a malformed type fails outbox_events_type_check');
select throws_ok(
  $$select settle.outbox_events_checks(jsonb_populate_record(null::public.outbox_events,
      '{"type": "order.paid", "subject_type": "order", "payload": []}'))$$,
  '23514', 'new row for relation "outbox_events" violates check constraint "outbox_events_payload_check"',
  'outbox_events: a payload that is not an object fails outbox_events_payload_check');

-- Section - through the tables
select throws_ok(
  $$insert into public.webhook_events (gateway, event_id, event_type, raw_body, outcome)
    values ('razorpay', 'evt_lean_1', 'payment.captured', '{}', 'bogus')$$,
  '23514', 'new row for relation "webhook_events" violates check constraint "webhook_events_outcome_check"',
  'an insert into webhook_events with an unknown outcome is refused under the old name');
select throws_ok(
  $$update public.orders set amount_refunded = 1001 where gateway_order_id = 'order_L_1'$$,
  '23514', 'new row for relation "orders" violates check constraint "orders_check"',
  'an update of orders breaking a rule is refused under the old name');
select tests.login_service();
select throws_ok(
  $sql$do $t$
    declare v_tx uuid;
    begin
      insert into public.ledger_transactions (id, kind, idempotency_key) values (gen_random_uuid(), 'adjustment', 'lean:zero')
      returning id into v_tx;
      insert into public.ledger_entries (transaction_id, system_account, currency, amount)
      values (v_tx, 'revenue:plan', 'INR', 0), (v_tx, 'gateway:razorpay', 'INR', 0);
    end
  $t$$sql$,
  '23514', 'new row for relation "ledger_entries" violates check constraint "ledger_entries_amount_check"',
  'the service role''s own insert runs the validator (it may execute it) and is refused');
select tests.logout();

-- Section - a gateway payment posted by the posting code
select is(pg_temp.pay('order_L_1'), 'applied', 'a top-up is paid');
select is(
  (select string_agg(coalesce(e.system_account, 'wallet') || ' ' || e.amount, ', ' order by e.id)
   from public.ledger_entries e join public.ledger_transactions t on t.id = e.transaction_id
   join public.orders o on o.id = t.order_id where o.gateway_order_id = 'order_L_1' and t.kind = 'topup'),
  'wallet 1000, gateway:razorpay -1000', 'its two legs, wallet credit first, on one topup transaction');
select is(tests.balance('00000000-0000-4000-8000-0000000018a1'), 1000::bigint,
  'the wallet moved by the credit');
select from pg_temp.new_order('order_L_2', 'product', 700);
select is(pg_temp.pay('order_L_2'), 'applied', 'a product purchase is paid');
select is(
  (select string_agg(coalesce(e.system_account, 'wallet') || ' ' || e.amount, ', ' order by e.id)
   from public.ledger_entries e join public.ledger_transactions t on t.id = e.transaction_id
   join public.orders o on o.id = t.order_id where o.gateway_order_id = 'order_L_2'),
  'revenue:product 700, gateway:razorpay -700', 'a purchase posts revenue and clearing, no wallet');

-- Section - the trigger's skip cannot be asked for from outside a trigger
select tests.login_service();
select throws_ok(
  $sql$do $t$
    declare v_tx uuid;
    begin
      perform set_config('settle.ledger_direct', 'on', true);
      insert into public.ledger_transactions (id, kind, idempotency_key) values (gen_random_uuid(), 'adjustment', 'lean:forged')
      returning id into v_tx;
      insert into public.ledger_entries (transaction_id, system_account, currency, amount)
      values (v_tx, 'revenue:plan', 'INR', 5), (v_tx, 'gateway:razorpay', 'INR', -4);
    end
  $t$$sql$,
  'ST400', null, 'with settle.ledger_direct on, a statement outside a trigger is still checked');
select tests.logout();

-- A session that switches the setting on for itself, then pays a wallet order: the purchase is
-- posted from inside order_effects (trigger depth 1) by post_transaction, whose entries must still
-- go through the trigger (the wallet debited), not be taken for post_order_payment's statement.
select set_config('settle.ledger_direct', 'on', false);
insert into public.orders (account_id, created_by, gateway, purpose, product_id, amount, currency)
values (tests.personal('00000000-0000-4000-8000-0000000018a1'),
  '00000000-0000-4000-8000-0000000018a1', 'wallet', 'product', 'sticker_pack', 300, 'INR');
select lives_ok(
  $$update public.orders set status = 'paid', paid_at = now()
    where gateway = 'wallet' and created_by = '00000000-0000-4000-8000-0000000018a1'$$,
  'a wallet purchase is paid while the session has settle.ledger_direct on');
select is(tests.balance('00000000-0000-4000-8000-0000000018a1'), 700::bigint,
  'the wallet was debited: a nested posting is checked and moved by the trigger');
select is(current_setting('settle.ledger_direct', true), 'off',
  'and the setting is off again after the posting');
select set_config('settle.ledger_direct', 'off', false);

select is((select count(*)::int from settle.ledger_audit()), 0, 'ledger_audit() is empty');

select * from finish();
rollback;
