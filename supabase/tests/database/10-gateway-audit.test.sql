-- Gateway audit discrepancies: stored once per (kind, gateway, object), re-detection updates
-- the sighting, a resolved one that recurs is reopened; operators only. All rolled back.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(22);

select tests.login_service();
select is(settle.record_gateway_discrepancy('missing_in_settle', 'razorpay', 'order_T10AuditOrder1',
    '{"gateway_amount": 50000, "settle_amount": 0, "gateway_currency": "INR", "settle_status": "created", "detail": "first"}'),
  true, 'a first detection is new');
select is(settle.record_gateway_discrepancy('missing_in_settle', 'razorpay', 'order_T10AuditOrder1',
    '{"gateway_amount": 50000, "settle_amount": 0, "gateway_currency": "INR", "settle_status": "failed", "detail": "second"}'),
  false, 'the same one again is not new');
select is(settle.record_gateway_discrepancy('missing_in_settle', 'stripe', 'order_T10AuditOrder1', '{}'),
  true, 'another gateway is another discrepancy');
select is(settle.record_gateway_discrepancy('amount_mismatch', 'razorpay', 'order_T10AuditOrder1', '{}'),
  true, 'another kind is another discrepancy');
select is((select count(*)::int from public.gateway_discrepancies where gateway_object_id = 'order_T10AuditOrder1'),
  3, 'one row per kind, gateway and object');
select results_eq(
  $$select times_seen, settle_status, detail, gateway_amount::int from public.gateway_discrepancies
    where kind = 'missing_in_settle' and gateway = 'razorpay' and gateway_object_id = 'order_T10AuditOrder1'$$,
  $$values (2, 'failed'::text, 'second'::text, 50000)$$,
  'a re-detection counts the sighting and keeps its latest amounts and states');
select is((select count(*)::int from public.gateway_discrepancies_open where gateway_object_id = 'order_T10AuditOrder1'),
  3, 'the operator view lists the open ones');

-- Resolving: a note is required, once; then it leaves the open view until it recurs.
select throws_ok($$select settle.resolve_gateway_discrepancy(
    (select id from public.gateway_discrepancies where kind = 'amount_mismatch' and gateway_object_id = 'order_T10AuditOrder1'), '')$$,
  'ST400', null, 'a resolution needs a note');
select throws_ok($$select settle.resolve_gateway_discrepancy(-1, 'no such')$$,
  'ST404', null, 'an unknown discrepancy cannot be resolved');
select lives_ok($$select settle.resolve_gateway_discrepancy(
    (select id from public.gateway_discrepancies where kind = 'amount_mismatch' and gateway_object_id = 'order_T10AuditOrder1'), 'posted a correction')$$,
  'the service role resolves one with a note');
select throws_ok($$select settle.resolve_gateway_discrepancy(
    (select id from public.gateway_discrepancies where kind = 'amount_mismatch' and gateway_object_id = 'order_T10AuditOrder1'), 'again')$$,
  'ST409', null, 'a resolved one cannot be resolved again');
select is((select count(*)::int from public.gateway_discrepancies_open where gateway_object_id = 'order_T10AuditOrder1'),
  2, 'a resolved discrepancy leaves the operator view');
select is(settle.record_gateway_discrepancy('amount_mismatch', 'razorpay', 'order_T10AuditOrder1', '{}'),
  true, 'a resolved one detected again counts as new');
select results_eq(
  $$select reopened_count, resolved_at is null, resolution is null from public.gateway_discrepancies
    where kind = 'amount_mismatch' and gateway_object_id = 'order_T10AuditOrder1'$$,
  $$values (1, true, true)$$,
  'and is reopened');
select throws_ok($$select settle.record_gateway_discrepancy('looks_odd', 'razorpay', 'x', '{}')$$,
  '23514', null, 'only the documented kinds are stored');

-- Users never see or touch them.
select tests.login_anon();
select throws_ok('select * from public.gateway_discrepancies', '42501', null, 'anon cannot read discrepancies');
select throws_ok('select * from public.gateway_discrepancies_open', '42501', null, 'anon cannot read the operator view');
select tests.login('00000000-0000-4000-8000-00000000a0a1');
select throws_ok('select * from public.gateway_discrepancies', '42501', null, 'authenticated cannot read discrepancies');
select throws_ok('select * from public.gateway_discrepancies_open', '42501', null, 'authenticated cannot read the operator view');
select throws_ok($$select settle.record_gateway_discrepancy('missing_in_settle', 'razorpay', 'forged', '{}')$$,
  '42501', null, 'authenticated cannot record a discrepancy');
select throws_ok($$select settle.resolve_gateway_discrepancy(1, 'hide it')$$,
  '42501', null, 'authenticated cannot resolve a discrepancy');
select throws_ok('select * from settle.gateway_audit_runs', '42501', null, 'authenticated cannot read audit runs');
select tests.logout();

select * from finish();
rollback;
