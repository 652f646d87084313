-- A gateway refund delivered before its order's capture is held, then counted when the order is
-- paid (20261201001100_gateway_refunds.sql). Needs 00-helpers (run first by pg_prove's file order).
begin;
select plan(7);

insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000012a1', 'held-a@example.test');
create function pg_temp.account() returns uuid language sql stable security definer as $$
  select id from public.accounts where personal_owner_id = '00000000-0000-4000-8000-0000000012a1'
$$;
insert into public.orders (account_id, created_by, gateway, purpose, amount, currency, gateway_order_id)
values (pg_temp.account(), '00000000-0000-4000-8000-0000000012a1', 'razorpay', 'wallet_topup', 5000,
  'INR', 'order_HELD00000001');

-- refund.processed for a dashboard refund arrives first: the order is not paid yet.
select settle.ingest_webhook(row('razorpay', 'evt_held_refund', 'refund.processed', null,
  'order_HELD00000001', 'pay_HELD0000000001', 2000, 'INR', now(), '{}', null, null,
  jsonb_build_object('action', 'refund', 'gateway_refund_id', 'rfnd_HELD000000001',
    'gateway_payment_id', 'pay_HELD0000000001', 'gateway_order_id', 'order_HELD00000001',
    'amount', 2000, 'currency', 'INR', 'status', 'processed'), null)::settle.incoming_event);
select is((select reason from public.gateway_refund_holds where gateway_refund_id = 'rfnd_HELD000000001'
  and resolved_at is null), 'order_not_refundable', 'the early refund is held, not counted');

-- Then the capture: the order is paid, credited, and the held refund counted in the same step.
select is(settle.apply_payment('razorpay', 'captured', 'order_HELD00000001', 'pay_HELD0000000001',
  5000, 'INR') ->> 'outcome', 'applied', 'the capture applies');
select is((select status || '/' || amount_refunded from public.orders
  where gateway_order_id = 'order_HELD00000001'), 'partially_refunded/2000',
  'the order counts the refund the gateway made');
select is((select count(*)::int from public.refunds r join public.orders o on o.id = r.order_id
  where o.gateway_order_id = 'order_HELD00000001' and r.origin = 'gateway'
    and r.gateway_refund_id = 'rfnd_HELD000000001' and r.status = 'processed'), 1,
  'as one processed gateway-origin refund');
select isnt((select resolved_at from public.gateway_refund_holds
  where gateway_refund_id = 'rfnd_HELD000000001'), null, 'the hold is resolved');
select is((select balance from public.wallets where account_id = pg_temp.account() and currency = 'INR'),
  3000::bigint, 'the wallet holds the payment less the refund');
select is_empty($$select * from settle.ledger_audit()
  where subject in (select id::text from public.orders where gateway_order_id = 'order_HELD00000001')
     or invariant in ('gateway_refund_uncounted', 'unbalanced_transaction', 'wallet_balance_drift')$$,
  'the ledger agrees');

select * from finish();
rollback;
