-- settle.ingest_webhook's fast path and the one effects trigger on orders (the webhooks
-- and orders migrations): a capture of a pending top-up is paid without the general path (no
-- subtransaction), and leaves exactly what the general path leaves; any other writer of an
-- order's status (apply_payment, a bare UPDATE) still gets every effect: the ledger posting, the
-- outbox event, the payment_stats delta, subscriptions, held refunds, the guards. Needs
-- 00-helpers (run first by pg_prove's file order).
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(47);
-- Counts plpgsql calls made in this transaction (pg_stat_xact_user_functions).
set local track_functions = 'pl';

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000015a1', 'fast-a@example.test'),
  ('00000000-0000-4000-8000-0000000015b1', 'fast-b@example.test'),
  ('00000000-0000-4000-8000-0000000015c1', 'fast-c@example.test'),
  ('00000000-0000-4000-8000-0000000015d1', 'fast-d@example.test');

-- A created order as create-order leaves it (run as the database owner).
create function pg_temp.order_for(p_uid uuid, p_ref text, p_amount bigint,
  p_purpose text default 'wallet_topup', p_plan text default null, p_product text default null)
returns uuid language sql security definer as $$
  insert into public.orders (account_id, created_by, gateway, purpose, plan_id, product_id, amount,
    currency, gateway_order_id)
  values (tests.personal(p_uid), p_uid, 'razorpay', p_purpose, p_plan, p_product, p_amount, 'INR',
    p_ref)
  returning id
$$;
-- payment.captured for an order, as the Razorpay webhook hands it over.
create function pg_temp.captured(p_event text, p_ref text, p_payment text, p_amount bigint)
returns jsonb language sql as $$
  select settle.ingest_webhook(row('razorpay', p_event, 'payment.captured', 'captured', p_ref,
    p_payment, p_amount, 'INR', now(), '{"entity":"event"}', null, null, null,
    null)::settle.incoming_event)
$$;
-- Calls of a settle function so far in this transaction.
create function pg_temp.calls(p_fn text) returns bigint language sql as $$
  select coalesce((select calls from pg_stat_xact_user_functions
                   where schemaname = 'settle' and funcname = p_fn), 0)
$$;
-- What a payment left for an order: ledger transactions, entries, their sum, outbox events.
create function pg_temp.effects(p_order uuid) returns text language sql security definer as $$
  select (select count(*) from public.ledger_transactions where order_id = p_order) || ' tx/'
    || (select count(*) from public.ledger_entries e join public.ledger_transactions t
        on t.id = e.transaction_id where t.order_id = p_order) || ' entries/sum '
    || (select coalesce(sum(e.amount), 0) from public.ledger_entries e
        join public.ledger_transactions t on t.id = e.transaction_id where t.order_id = p_order)
    || '/' || coalesce((select string_agg(type, ',' order by created_at) from public.outbox_events
        where subject_type = 'order' and subject_id = p_order), 'no outbox')
$$;
-- The account's payment_stats deltas summed: created, paid, failed, gross.
create function pg_temp.deltas(p_uid uuid) returns text language sql security definer as $$
  select coalesce(sum(orders_created), 0) || '/' || coalesce(sum(orders_paid), 0) || '/'
    || coalesce(sum(orders_failed), 0) || '/' || coalesce(sum(gross), 0)
  from settle.payment_stats_deltas where account_id = tests.personal(p_uid)
$$;

-- Section - the fast path: a capture of a pending top-up
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015a1', 'order_FAST0000000A', 5000);
select is(pg_temp.captured('evt_fast_a', 'order_FAST0000000A', 'pay_FAST000000000A', 5000)
  - 'order_id', '{"status": "paid", "outcome": "applied", "duplicate": false}'::jsonb,
  'a capture of a pending top-up is applied');
select is(pg_temp.calls('apply_webhook_effect'), 0::bigint,
  'without the general path (whose subtransaction runs settle.apply_webhook_effect)');
select is(pg_temp.calls('order_effects'), 1::bigint, 'the effects trigger ran once');
select is((select status || '/' || gateway_payment_id || '/' || (paid_at is not null)
  from public.orders where gateway_order_id = 'order_FAST0000000A'),
  'paid/pay_FAST000000000A/true', 'the order is paid by that payment');
select is(pg_temp.effects((select id from public.orders where gateway_order_id = 'order_FAST0000000A')),
  '1 tx/2 entries/sum 0/order.paid', 'one balanced ledger transaction and one order.paid event');
select is(tests.balance('00000000-0000-4000-8000-0000000015a1'), 5000::bigint,
  'the wallet is credited');
select is(pg_temp.deltas('00000000-0000-4000-8000-0000000015a1'), '1/1/0/5000',
  'payment_stats counts the order created and paid');
select results_eq($$select outcome, order_id, raw_body from public.webhook_events
    where gateway = 'razorpay' and event_id = 'evt_fast_a'$$,
  $$select 'applied'::text, id, '{"entity":"event"}'::text from public.orders
    where gateway_order_id = 'order_FAST0000000A'$$,
  'the event is stored applied, with its order and raw body');
select is(pg_temp.captured('evt_fast_a', 'order_FAST0000000A', 'pay_FAST000000000A', 5000),
  '{"outcome": "duplicate", "duplicate": true}'::jsonb, 'the same event again is a duplicate');
select is(pg_temp.captured('evt_fast_a2', 'order_FAST0000000A', 'pay_FAST000000000A', 5000) ->> 'outcome',
  'no_effect', 'another event of the same capture has no effect (general path)');
select is(pg_temp.effects((select id from public.orders where gateway_order_id = 'order_FAST0000000A'))
  || ' ' || tests.balance('00000000-0000-4000-8000-0000000015a1'),
  '1 tx/2 entries/sum 0/order.paid 5000', 'and nothing was posted twice');

-- Section - the same payment through apply_payment (verify, reconcile) leaves the same rows
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015b1', 'order_FAST0000000B', 5000);
select is(settle.apply_payment('razorpay', 'captured', 'order_FAST0000000B', 'pay_FAST000000000B',
  5000, 'INR') ->> 'outcome', 'applied', 'apply_payment pays another top-up');
select is(pg_temp.effects((select id from public.orders where gateway_order_id = 'order_FAST0000000B')),
  '1 tx/2 entries/sum 0/order.paid', 'with the same ledger posting and outbox event');
select is(tests.balance('00000000-0000-4000-8000-0000000015b1'), 5000::bigint, 'and credit');
select is(pg_temp.deltas('00000000-0000-4000-8000-0000000015b1'), '1/1/0/5000',
  'and payment_stats delta');
select results_eq(
  $$select t.kind, t.description, e.system_account, e.wallet_id is not null, e.amount
    from public.ledger_transactions t join public.ledger_entries e on e.transaction_id = t.id
    join public.orders o on o.id = t.order_id where o.gateway_order_id = 'order_FAST0000000A'
    order by e.amount$$,
  $$select t.kind, t.description, e.system_account, e.wallet_id is not null, e.amount
    from public.ledger_transactions t join public.ledger_entries e on e.transaction_id = t.id
    join public.orders o on o.id = t.order_id where o.gateway_order_id = 'order_FAST0000000B'
    order by e.amount$$,
  'the fast path posts exactly what the general path posts');
select results_eq(
  $$select payload - '{id,account_id,gateway_order_id,gateway_payment_id,created_at,paid_at}'::text[]
    from public.outbox_events x join public.orders o on o.id = x.subject_id
    where o.gateway_order_id = 'order_FAST0000000A'$$,
  $$select payload - '{id,account_id,gateway_order_id,gateway_payment_id,created_at,paid_at}'::text[]
    from public.outbox_events x join public.orders o on o.id = x.subject_id
    where o.gateway_order_id = 'order_FAST0000000B'$$,
  'and the same outbox payload');

-- Section - any other writer: a bare status update gets every effect
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015c1', 'order_FAST0000000C', 7000);
update public.orders set status = 'paid', paid_at = now(), gateway_payment_id = 'pay_FAST000000000C'
where gateway_order_id = 'order_FAST0000000C';
select is(pg_temp.effects((select id from public.orders where gateway_order_id = 'order_FAST0000000C')),
  '1 tx/2 entries/sum 0/order.paid', 'a bare update to paid is posted and announced');
select is(tests.balance('00000000-0000-4000-8000-0000000015c1'), 7000::bigint, 'and credits the wallet');
select is(pg_temp.deltas('00000000-0000-4000-8000-0000000015c1'), '1/1/0/7000',
  'and counts in payment_stats');
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015c1', 'order_FAST000000C2', 3000);
update public.orders set status = 'failed', failure_code = 'BAD_REQUEST_ERROR'
where gateway_order_id = 'order_FAST000000C2';
select is(pg_temp.deltas('00000000-0000-4000-8000-0000000015c1'), '2/1/1/7000',
  'a bare update to failed counts a failure');
select is(pg_temp.effects((select id from public.orders where gateway_order_id = 'order_FAST000000C2')),
  '0 tx/0 entries/sum 0/order.failed', 'and is announced, with no posting');
select throws_ok($$update public.orders set status = 'created' where gateway_order_id = 'order_FAST000000C2'$$,
  'ST409', 'order ' || (select id from public.orders where gateway_order_id = 'order_FAST000000C2')
    || ' cannot move from failed to created',
  'the transition guard still holds for any writer');
select throws_like($$update public.orders set gateway_payment_id = 'pay_FAST000000000C'
    where gateway_order_id = 'order_FAST000000C2'$$,
  'payment pay_FAST000000000C already pays order %',
  'a payment id that pays another order is refused by the guard (payment_mismatch)');
select is((select string_agg(tgname, ',' order by tgname) from pg_trigger
    where tgrelid = 'public.orders'::regclass and not tgisinternal
      and tgtype & 16 = 16 and tgtype & 1 = 1 and tgtype & 66 = 0),
  'orders_outbox,orders_payment_effects',
  'an order update runs two row triggers after it: the outbox event and the effects');

-- Section - what the fast path leaves to the general path
-- A plan order: its subscription is granted through the general path.
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015d1', 'order_FAST0000PLAN', 29900,
  'plan', 'pro_monthly');
select is(pg_temp.captured('evt_fast_plan', 'order_FAST0000PLAN', 'pay_FAST00000PLAN', 29900)
  ->> 'outcome', 'applied', 'a plan order''s capture is applied');
select is(pg_temp.calls('apply_webhook_effect'), 2::bigint, 'through the general path');
select is((select status from public.subscriptions
  where account_id = tests.personal('00000000-0000-4000-8000-0000000015d1')), 'active',
  'and grants the subscription');
select is(pg_temp.calls('grant_subscription_period'), 1::bigint, 'once');
-- A top-up with a held gateway refund: counted when the order is paid.
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015d1', 'order_FAST0000HELD', 5000);
select is(settle.ingest_webhook(row('razorpay', 'evt_fast_held_rf', 'refund.processed', null,
  'order_FAST0000HELD', 'pay_FAST00000HELD', 2000, 'INR', now(), '{}', null, null,
  jsonb_build_object('action', 'refund', 'gateway_refund_id', 'rfnd_FAST0000HELD',
    'gateway_payment_id', 'pay_FAST00000HELD', 'gateway_order_id', 'order_FAST0000HELD',
    'amount', 2000, 'currency', 'INR', 'status', 'processed'), null)::settle.incoming_event)
  ->> 'held', 'order_not_refundable', 'a refund before the payment is held');
select is(pg_temp.captured('evt_fast_held', 'order_FAST0000HELD', 'pay_FAST00000HELD', 5000)
  ->> 'outcome', 'applied', 'a capture of an order with a held refund is applied');
select is((select status || '/' || amount_refunded from public.orders
  where gateway_order_id = 'order_FAST0000HELD'), 'partially_refunded/2000',
  'and the held refund is counted');
select is(pg_temp.calls('apply_held_gateway_refunds'), 1::bigint, 'by the held-refunds step');
-- A capture whose payment already pays another order: the effect raises, the event is failed.
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015d1', 'order_FAST00000DUP', 5000);
select is(pg_temp.captured('evt_fast_dup', 'order_FAST00000DUP', 'pay_FAST000000000A', 5000)
  ->> 'outcome', 'failed', 'a capture by a payment of another order is stored failed');
select matches((select detail from public.webhook_events where event_id = 'evt_fast_dup'),
  'already pays order', 'with the guard''s reason');
select is((select status from public.orders where gateway_order_id = 'order_FAST00000DUP'), 'created',
  'and the order is untouched');
select is(pg_temp.effects((select id from public.orders where gateway_order_id = 'order_FAST00000DUP')),
  '0 tx/0 entries/sum 0/no outbox', 'with nothing posted or announced');
-- The order's terms decide: a capture for another amount is a mismatch, not a payment.
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015d1', 'order_FAST00000AMT', 5000);
select is(pg_temp.captured('evt_fast_amt', 'order_FAST00000AMT', 'pay_FAST00000AMT', 4999)
  ->> 'outcome', 'mismatch', 'a capture for another amount is a mismatch');
select is(pg_temp.captured('evt_fast_none', 'order_FAST0000NONE', 'pay_FAST0000NONE', 4999)
  ->> 'outcome', 'unknown_order', 'a capture for no known order is unknown_order');
-- A product order is paid on the fast path too, against revenue.
insert into public.products (id, name, amount, currency) values ('fast_product', 'Fast', 1200, 'INR');
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015d1', 'order_FAST0000PROD', 1200,
  'product', null, 'fast_product');
create temporary table general_calls as select pg_temp.calls('apply_webhook_effect') as n;
select is(pg_temp.captured('evt_fast_prod', 'order_FAST0000PROD', 'pay_FAST0000PROD', 1200)
  ->> 'outcome', 'applied', 'a product order''s capture is applied');
select is(pg_temp.calls('apply_webhook_effect') - (select n from general_calls), 0::bigint,
  'on the fast path');
select results_eq($$select e.system_account, e.amount from public.ledger_entries e
    join public.ledger_transactions t on t.id = e.transaction_id
    join public.orders o on o.id = t.order_id where o.gateway_order_id = 'order_FAST0000PROD'
    order by e.amount$$,
  $$values ('gateway:razorpay'::text, -1200::bigint), ('revenue:product', 1200)$$,
  'posted as revenue against the gateway''s clearing account');

-- Section - an effect that raises on the fast path (a lock timeout, a bug)
create function tests.refuse_posting() returns trigger language plpgsql as $$
begin
  raise exception 'injected ledger failure';
end $$;
create trigger refuse_posting before insert on public.ledger_transactions
  for each row execute function tests.refuse_posting();
select from pg_temp.order_for('00000000-0000-4000-8000-0000000015d1', 'order_FAST00000ERR', 5000);
select throws_ok($$select pg_temp.captured('evt_fast_err', 'order_FAST00000ERR', 'pay_FAST00000ERR',
    5000)$$, 'P0001', 'injected ledger failure',
  'on the fast path, an effect that raises fails the whole call (no subtransaction)');
select is(settle.ingest_webhook(row('razorpay', 'evt_fast_err', 'payment.captured', 'captured',
    'order_FAST00000ERR', 'pay_FAST00000ERR', 5000, 'INR', now(), '{}', null, null, null,
    null)::settle.incoming_event, false) ->> 'outcome', 'failed',
  'called again without the fast path (as storeEvent does), the event is stored failed');
select is((select outcome || '/' || detail from public.webhook_events where event_id = 'evt_fast_err'),
  'failed/injected ledger failure', 'with the error, for reconcile to retry');
select is((select status from public.orders where gateway_order_id = 'order_FAST00000ERR'), 'created',
  'and the order is untouched');
drop trigger refuse_posting on public.ledger_transactions;

-- Section - the whole ledger agrees
select is_empty($$select * from settle.ledger_audit()
  where subject in (select id::text from public.orders where gateway_order_id like 'order_FAST%')
     or invariant in ('unbalanced_transaction', 'wallet_balance_drift', 'gateway_refund_uncounted')$$,
  'ledger_audit finds nothing');

select * from finish();
rollback;
