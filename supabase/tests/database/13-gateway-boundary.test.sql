-- The gateway boundary's review findings (the orders, refunds, gateway_refunds and reconcile
-- migrations; before the v0.1.0 re-base, 20261204000600_gateway_boundary.sql): a refund of a
-- payment settle never counted is held, not debited from the order; a known refund's event must
-- name its currency and payment; the SQL retry leaves owed gateway reads alone; a timed-out gateway
-- call keeps its claim; one gateway payment pays at most one order. Needs 00-helpers (run first by
-- pg_prove).
begin;
select plan(32);

insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000013a1', 'boundary-a@example.test');
create function pg_temp.account() returns uuid language sql stable security definer as $$
  select id from public.accounts where personal_owner_id = '00000000-0000-4000-8000-0000000013a1'
$$;
create function pg_temp.order_id(p_gateway_order_id text) returns uuid language sql stable as $$
  select id from public.orders where gateway_order_id = p_gateway_order_id
$$;
-- A refund webhook (refund.processed unless told) of a payment on a Razorpay order.
create function pg_temp.refund_event(p_event text, p_refund text, p_payment text, p_order text,
  p_amount bigint, p_currency text default 'INR', p_status text default 'processed',
  p_settle_refund uuid default null) returns jsonb language sql as $$
  select settle.ingest_webhook(row('razorpay', p_event, 'refund.' || p_status, null, p_order, p_payment,
    p_amount, p_currency, now(), '{}', null, null,
    jsonb_build_object('action', 'refund', 'gateway_refund_id', p_refund,
      'gateway_payment_id', p_payment, 'gateway_order_id', p_order, 'amount', p_amount,
      'currency', p_currency, 'status', p_status, 'settle_refund_id', p_settle_refund), null)::settle.incoming_event)
$$;
insert into public.orders (account_id, created_by, gateway, purpose, amount, currency, gateway_order_id)
values
  (pg_temp.account(), '00000000-0000-4000-8000-0000000013a1', 'razorpay', 'wallet_topup', 5000, 'INR', 'order_BOUNDARY0001'),
  (pg_temp.account(), '00000000-0000-4000-8000-0000000013a1', 'razorpay', 'wallet_topup', 4000, 'INR', 'order_BOUNDARY0002'),
  (pg_temp.account(), '00000000-0000-4000-8000-0000000013a1', 'razorpay', 'wallet_topup', 3000, 'INR', 'order_BOUNDARY0003'),
  (pg_temp.account(), '00000000-0000-4000-8000-0000000013a1', 'razorpay', 'wallet_topup', 2000, 'INR', null);
create function pg_temp.unsent() returns uuid language sql stable as $$
  select id from public.orders where account_id = pg_temp.account() and gateway_order_id is null
$$;
select settle.apply_payment('razorpay', 'captured', 'order_BOUNDARY0001', 'pay_BOUNDARY0001A', 5000, 'INR');

-- 1. The payer paid order 1 twice; settle kept pay_…1A. A dashboard refund of the second payment.
select is(pg_temp.refund_event('evt_b_1', 'rfnd_BOUNDARY0001B', 'pay_BOUNDARY0001B',
  'order_BOUNDARY0001', 5000) ->> 'outcome', 'mismatch', 'a refund of an uncounted payment is a mismatch');
select is((select status || '/' || amount_refunded from public.orders where gateway_order_id = 'order_BOUNDARY0001'),
  'paid/0', 'the kept payment is not debited');
select is((select count(*)::int from public.refunds where gateway_refund_id = 'rfnd_BOUNDARY0001B'), 0,
  'no refund row is counted for it');
select is(tests.balance('00000000-0000-4000-8000-0000000013a1'), 5000::bigint, 'the wallet keeps the payment');
select is((select reason || '/' || gateway_payment_id from public.gateway_refund_holds
  where gateway_refund_id = 'rfnd_BOUNDARY0001B' and resolved_at is null),
  'payment_mismatch/pay_BOUNDARY0001B', 'it is held as a payment mismatch, linked to the payment it refunds');
select is((select kind from public.refund_exceptions where gateway_refund_id = 'rfnd_BOUNDARY0001B'),
  'held_payment_mismatch', 'operators see it in refund_exceptions');
select ok((select detail from public.refund_exceptions where gateway_refund_id = 'rfnd_BOUNDARY0001B')
  like '%pay_BOUNDARY0001B%pay_BOUNDARY0001A%', 'the detail names both payments');
select is((select count(*)::int from settle.ledger_audit() where invariant = 'gateway_refund_uncounted'
  and subject = 'razorpay:rfnd_BOUNDARY0001B'), 1, 'the ledger audit reports it uncounted');
-- Its later states stay held; a refund of the kept payment is still counted.
select is(pg_temp.refund_event('evt_b_2', 'rfnd_BOUNDARY0001B', 'pay_BOUNDARY0001B',
  'order_BOUNDARY0001', 5000) ->> 'outcome', 'mismatch', 'a redelivered state stays a mismatch');
select is(pg_temp.refund_event('evt_b_3', 'rfnd_BOUNDARY0001K', 'pay_BOUNDARY0001A',
  'order_BOUNDARY0001', 1500) ->> 'outcome', 'applied', 'a refund of the kept payment is applied');
select is((select amount_refunded from public.orders where gateway_order_id = 'order_BOUNDARY0001'),
  1500::bigint, 'and counted on the order');

-- 1b. A refund of a payment arrives before the order is paid (held), then another payment pays it.
select is(pg_temp.refund_event('evt_b_4', 'rfnd_BOUNDARY0002X', 'pay_BOUNDARY0002X',
  'order_BOUNDARY0002', 4000) ->> 'outcome', 'mismatch', 'an early refund is held');
select settle.apply_payment('razorpay', 'captured', 'order_BOUNDARY0002', 'pay_BOUNDARY0002A', 4000, 'INR');
select is((select status || '/' || amount_refunded from public.orders where gateway_order_id = 'order_BOUNDARY0002'),
  'paid/0', 'paid by another payment, the early refund is not counted on it');
select is((select reason from public.gateway_refund_holds where gateway_refund_id = 'rfnd_BOUNDARY0002X'
  and resolved_at is null), 'payment_mismatch', 'it stays held, now as a payment mismatch');

-- 2. A refund settle knows: an event with another currency or another payment is not applied.
create temp table r on commit drop as
  select (settle.create_refund(pg_temp.order_id('order_BOUNDARY0001'), 1000, 'asked', null, null)
    -> 'refund' ->> 'id')::uuid as id;
select is(pg_temp.refund_event('evt_b_5', 'rfnd_BOUNDARY0001S', 'pay_BOUNDARY0001A',
  'order_BOUNDARY0001', 1000, 'USD', 'failed', (select id from r)) ->> 'outcome', 'mismatch',
  'another currency (found by settle''s id) is a mismatch');
select is(pg_temp.refund_event('evt_b_6', 'rfnd_BOUNDARY0001S', 'pay_BOUNDARY0001B',
  'order_BOUNDARY0001', 1000, 'INR', 'failed', (select id from r)) ->> 'outcome', 'mismatch',
  'another payment (found by settle''s id) is a mismatch');
select is((select status || '/' || coalesce(gateway_refund_id, '-') from public.refunds where id = (select id from r)),
  'pending/-', 'neither fails nor links the refund');
select is(settle.record_refund_result((select id from r), 'rfnd_BOUNDARY0001S', 'pending') ->> 'status',
  'pending', 'the API answer links the gateway refund');
select is(pg_temp.refund_event('evt_b_7', 'rfnd_BOUNDARY0001S', 'pay_BOUNDARY0001A',
  'order_BOUNDARY0001', 1000, 'usd', 'failed') ->> 'outcome', 'mismatch',
  'another currency (found by the gateway refund id) is a mismatch');
select is((select status from public.refunds where id = (select id from r)), 'pending', 'the refund is not failed');
select is(pg_temp.refund_event('evt_b_8', 'rfnd_BOUNDARY0001S', 'pay_BOUNDARY0001A',
  'order_BOUNDARY0001', 1000, 'inr', 'processed') ->> 'outcome', 'applied',
  'the matching event applies (currency case aside)');
select is((select status from public.refunds where id = (select id from r)), 'processed', 'the refund is processed');

-- 4. The SQL retry leaves events owed a gateway read to the read path.
select settle.ingest_webhook(row('stripe', 'evt_b_owed', 'charge.refunded', null, 'pi_BOUNDARY0001',
  'ch_BOUNDARY0001', null, 'USD', now(), '{}', null, null,
  '{"action": "fetch_refunds", "gateway_payment_id": "ch_BOUNDARY0001", "detail": "stripe is down"}', null)::settle.incoming_event);
select settle.ingest_webhook(row('stripe', 'evt_b_raises', 'refund.updated', null, 'pi_BOUNDARY0001',
  'ch_BOUNDARY0001', null, 'USD', now(), '{}', null, null,
  '{"action": "refund", "gateway_refund_id": "re_BOUNDARY0001", "status": "processed", "amount": "x"}', null)::settle.incoming_event);
select is(settle.retry_failed_webhooks(100, 0) ->> 'retried', '1', 'the retry takes only the failed effect');
select is((select string_agg(event_id || ':' || outcome || ':' || attempts, ',' order by event_id)
  from public.webhook_events where event_id in ('evt_b_owed', 'evt_b_raises')),
  'evt_b_owed:failed:1,evt_b_raises:failed:2', 'the owed read keeps its attempts (1: its ingestion); the other is retried');
select is((select count(*)::int from settle.pending_webhook_reads(100, 0) where gateway = 'stripe'
  and effect ->> 'gateway_payment_id' = 'ch_BOUNDARY0001'), 1, 'the read path still has it due');

-- 5. A gateway call whose outcome is unknown (a timeout) keeps its claim for the lease.
select is(settle.claim_gateway_order(pg_temp.unsent(),
  '00000000-0000-4000-8000-0000000013c1', 60000) ->> 'claimed', 'true', 'the first request claims the call');
select is(settle.record_gateway_order(pg_temp.unsent(),
  '00000000-0000-4000-8000-0000000013c1', null, 'razorpay timed out', true) ->> 'recorded', 'true',
  'its timeout is recorded');
select ok((select gateway_claimed_until > now() and last_gateway_error = 'razorpay timed out'
  from public.orders where id = pg_temp.unsent()), 'the claim is kept');
select is(settle.claim_gateway_order(pg_temp.unsent(),
  '00000000-0000-4000-8000-0000000013c2', 60000) ->> 'claimed', 'false',
  'a second request cannot call the gateway before the lease ends');
select settle.record_gateway_order(pg_temp.unsent(),
  '00000000-0000-4000-8000-0000000013c1', null, 'razorpay answered 400', false);
select is(settle.claim_gateway_order(pg_temp.unsent(),
  '00000000-0000-4000-8000-0000000013c2', 60000) ->> 'claimed', 'true',
  'a refusal (known outcome) frees the claim at once');

-- 6. One gateway payment pays one order.
select throws_ok($$select settle.apply_payment('razorpay', 'captured', 'order_BOUNDARY0003',
  'pay_BOUNDARY0001A', 3000, 'INR')$$, 'ST409', null, 'a payment that paid another order cannot pay this one');
-- The index is the last line, behind the trigger's clear error: tried here with triggers off.
set local session_replication_role = replica;
select throws_ok($$update public.orders set gateway_payment_id = 'pay_BOUNDARY0002A'
  where gateway_order_id = 'order_BOUNDARY0001'$$, '23505', null,
  'the unique index refuses it whatever the path');
set local session_replication_role = origin;

select * from finish();
rollback;
