-- Gateway audit payout kinds (20261201002200_gateway_audit.sql): accepted for the payout gateways, stored
-- once per (kind, gateway, gateway payout), payout_id must name a payout; the old kinds still
-- stand and an unknown one is refused. All rolled back.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(8);

select tests.login_service();
select is(settle.record_gateway_discrepancy('payout_missing_in_settle', 'razorpayx', 'pout_T10AuditPayout1',
  '{"gateway_amount": 2500, "gateway_currency": "INR", "settle_status": "missing"}'), true,
  'a payout kind is recorded for razorpayx');
select is(settle.record_gateway_discrepancy('payout_missing_in_settle', 'razorpayx', 'pout_T10AuditPayout1',
  '{"gateway_amount": 2600}'), false, 'the same payout again is not new');
select is(settle.record_gateway_discrepancy('payout_status_mismatch', 'stripe', 'tr_T10AuditTransfer1', '{}'),
  true, 'a payout kind is recorded for stripe');
select is(settle.record_gateway_discrepancy('payout_amount_mismatch', 'stripe', 'tr_T10AuditTransfer1', '{}'),
  true, 'another payout kind for the same transfer is its own row');
select results_eq(
  $$select times_seen, gateway_amount::int, payout_id from public.gateway_discrepancies
    where gateway_object_id = 'pout_T10AuditPayout1'$$,
  $$values (2, 2600, null::uuid)$$, 'seen twice, the latest amounts kept, no settle payout');
select throws_ok($$select settle.record_gateway_discrepancy('payout_status_mismatch', 'razorpayx',
  'pout_T10AuditPayout2', '{"payout_id": "00000000-0000-4000-8000-000000000000"}')$$,
  '23503', null, 'payout_id must name a payout');
select is(settle.record_gateway_discrepancy('refund_amount_mismatch', 'razorpay', 'rfnd_T10AuditPayouts', '{}'),
  true, 'the earlier kinds are still accepted');
select throws_ok($$select settle.record_gateway_discrepancy('payout_lost', 'razorpayx', 'pout_T10AuditPayout3', '{}')$$,
  '23514', null, 'an unknown kind is refused');
select tests.logout();

select * from finish();
rollback;
