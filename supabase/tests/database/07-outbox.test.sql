-- Outbox: events are written by triggers in the transaction of the change (and only if it
-- commits), fan out to matching active subscribers, are never readable by users, and the
-- delivery functions claim, back off, go dead and replay as documented.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(97);

create function pg_temp.login_as(p_role text) returns void language plpgsql as $$
begin
  perform set_config('role', p_role, true);
  perform set_config('request.jwt.claims', jsonb_build_object('role', p_role)::text, true);
end
$$;
create function pg_temp.account(p_uid uuid) returns uuid language sql stable as $$
  select id from public.accounts where personal_owner_id = p_uid
$$;
-- Events about one subject, by type, oldest first.
create function pg_temp.types(p_subject uuid) returns text[] language sql stable as $$
  select coalesce(array_agg(type order by created_at), '{}') from public.outbox_events where subject_id = p_subject
$$;
create function pg_temp.event_count(p_subject uuid, p_type text) returns int language sql stable as $$
  select count(*)::int from public.outbox_events where subject_id = p_subject and type = p_type
$$;
-- The subscribers (by name) that got a delivery of a subject's event of a type.
create function pg_temp.delivered_to(p_subject uuid, p_type text) returns text[] language sql stable as $$
  select coalesce(array_agg(s.name order by s.name), '{}')
  from public.outbox_deliveries d
  join public.outbox_events e on e.id = d.event_id
  join public.outbox_subscribers s on s.id = d.subscriber_id
  where e.subject_id = p_subject and e.type = p_type
$$;
create function pg_temp.order_id(p_gateway_order_id text) returns uuid language sql stable as $$
  select id from public.orders where gateway_order_id = p_gateway_order_id
$$;

-- Section - fixture
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000007a1', 'outbox-a@example.test'),
  ('00000000-0000-4000-8000-0000000007b1', 'outbox-b@example.test');
insert into public.plans (id, name, amount, currency, billing_interval, interval_count) values
  ('outbox_plan', 'Outbox plan', 1000, 'INR', 'month', 1);
insert into public.outbox_subscribers (name, url, event_types, active) values
  ('all', 'https://all.example.test/hook', array['*'], true),
  ('paid_only', 'https://paid.example.test/hook', array['order.paid'], true),
  ('refunds', 'https://refunds.example.test/hook', array['refund.*'], true),
  ('off', 'https://off.example.test/hook', array['*'], false);
insert into public.orders (account_id, created_by, gateway, purpose, amount, currency, gateway_order_id)
select pg_temp.account('00000000-0000-4000-8000-0000000007a1'), '00000000-0000-4000-8000-0000000007a1',
  'razorpay', 'wallet_topup', v.amount, 'INR', v.gid
from (values (5000, 'order_Ob1'), (3000, 'order_Ob2'), (2000, 'order_Ob3')) v(amount, gid);
insert into public.orders (account_id, created_by, gateway, purpose, plan_id, amount, currency, gateway_order_id)
select pg_temp.account(u.id), u.id, 'razorpay', 'plan', 'outbox_plan', 1000, 'INR', u.gid
from (values ('00000000-0000-4000-8000-0000000007a1'::uuid, 'order_ObP1'),
             ('00000000-0000-4000-8000-0000000007a1'::uuid, 'order_ObP2'),
             ('00000000-0000-4000-8000-0000000007b1'::uuid, 'order_ObP3')) u(id, gid);

-- Section - users never see the outbox
select ok((select relrowsecurity from pg_class where oid = 'public.outbox_events'::regclass),
  'RLS is enabled on outbox_events');
select ok((select relrowsecurity from pg_class where oid = 'public.outbox_subscribers'::regclass),
  'RLS is enabled on outbox_subscribers');
select ok((select relrowsecurity from pg_class where oid = 'public.outbox_deliveries'::regclass),
  'RLS is enabled on outbox_deliveries');
select is((select count(*)::int from pg_policies where schemaname = 'public' and tablename like 'outbox_%'), 0,
  'the outbox tables have no policies');

select tests.login('00000000-0000-4000-8000-0000000007a1');
select throws_ok('select * from public.outbox_events', '42501', null,
  'a signed-in user cannot read outbox events');
select throws_ok('select * from public.outbox_subscribers', '42501', null,
  'a signed-in user cannot read subscribers (or their secrets)');
select throws_ok('select * from public.outbox_deliveries', '42501', null,
  'a signed-in user cannot read deliveries');
select throws_ok($$insert into public.outbox_subscribers (name, url) values ('mine', 'https://x.example.test')$$,
  '42501', null, 'a signed-in user cannot add a subscriber');
select throws_ok('select * from settle.outbox_claim(10, 60, 3)', '42501', null,
  'a signed-in user cannot claim deliveries (and so read secrets)');
select throws_ok('select settle.outbox_replay_all_dead()', '42501', null,
  'a signed-in user cannot replay dead letters');
select pg_temp.login_as('anon');
select throws_ok('select * from public.outbox_events', '42501', null, 'anon cannot read outbox events');
select throws_ok('select * from public.outbox_subscribers', '42501', null, 'anon cannot read subscribers');
select pg_temp.login_as('payment_analyst');
select throws_ok('select * from public.outbox_events', '42501', null, 'an analyst cannot read outbox events');
select tests.logout();
select ok(not has_function_privilege('authenticated', 'settle.outbox_emit(text, uuid, text, uuid, jsonb)', 'execute'),
  'a signed-in user cannot write events');
select ok(has_function_privilege('service_role', 'settle.outbox_claim(integer, integer, integer, timestamptz)', 'execute'),
  'the service role may claim deliveries');

select pg_temp.login_as('service_role');
select lives_ok(
  $$insert into public.outbox_subscribers (name, url, event_types) values ('svc', 'https://svc.example.test/h', array['order.*'])$$,
  'the service role may add a subscriber');
select is((select count(*)::int from public.outbox_subscribers where name = 'svc' and secret like 'whsec_settle_%'), 1,
  'a subscriber gets a generated secret unless one is given');
select throws_ok($$update public.outbox_subscribers set event_types = array['order'] where name = 'svc'$$,
  '23514', null, 'a filter must be *, family.* or an exact type');
select throws_ok($$insert into public.outbox_subscribers (name, url, secret) values ('weak', 'https://w.example.test', 'short')$$,
  '23514', null, 'a secret shorter than 32 characters is refused');
select throws_ok($$insert into public.outbox_subscribers (name, url) values ('ftp', 'ftp://f.example.test')$$,
  '23514', null, 'a subscriber URL must be http(s)');
select tests.logout();
delete from public.outbox_subscribers where name = 'svc';

-- Section - an event exists iff its change commits
savepoint before_pay;
select is(settle.apply_payment('razorpay', 'captured', 'order_Ob1', 'pay_Ob1', 5000, 'INR') ->> 'outcome',
  'applied', 'a capture applies (inside a savepoint)');
select is(pg_temp.event_count(pg_temp.order_id('order_Ob1'), 'order.paid'), 1,
  'the payment wrote order.paid in its own transaction');
rollback to savepoint before_pay;
select is((select status from public.orders where gateway_order_id = 'order_Ob1'), 'created',
  'rolled back, the order is unpaid');
select is((select count(*)::int from public.outbox_events where subject_id = pg_temp.order_id('order_Ob1')), 0,
  'rolled back, no event remains');
select is((select count(*)::int from public.outbox_deliveries d join public.outbox_events e on e.id = d.event_id
  where e.subject_id = pg_temp.order_id('order_Ob1')), 0, 'and no delivery');
select is((select count(*)::int from public.outbox_events where subject_type = 'order'), 0,
  'creating orders writes no events');

-- Section - order events
select is(settle.apply_payment('razorpay', 'authorized', 'order_Ob1', 'pay_Ob1', null, null) ->> 'outcome',
  'applied', 'an authorization applies');
select is(settle.apply_payment('razorpay', 'captured', 'order_Ob1', 'pay_Ob1', 5000, 'INR') ->> 'outcome',
  'applied', 'the capture applies');
select is(settle.apply_payment('razorpay', 'captured', 'order_Ob1', 'pay_Ob1', 5000, 'INR') ->> 'outcome',
  'no_effect', 'the duplicate capture has no effect');
select is(settle.ingest_webhook(row('razorpay', 'evt_Ob1', 'order.paid', 'captured', 'order_Ob1', 'pay_Ob1', 5000, 'INR',
  now(), '{}', null, null, null, null)::settle.incoming_event) ->> 'outcome', 'no_effect', 'a webhook for the paid order has no effect');
select is(pg_temp.types(pg_temp.order_id('order_Ob1')), array['order.authorized', 'order.paid'],
  'authorized then paid: one event each, the duplicates none');
select is(
  (select array_agg(k order by k) from public.outbox_events e, jsonb_object_keys(e.payload) k
   where e.subject_id = pg_temp.order_id('order_Ob1') and e.type = 'order.paid'),
  array['account_id', 'amount', 'amount_refunded', 'created_at', 'currency', 'failure_code', 'failure_reason',
    'gateway', 'gateway_order_id', 'gateway_payment_id', 'id', 'paid_at', 'plan_id', 'previous_status',
    'product_id', 'purpose', 'status'],
  'order.paid carries the order''s public fields, nothing else');
select results_eq(
  $$select payload ->> 'status', payload ->> 'previous_status', (payload ->> 'amount')::bigint, account_id,
      payload ->> 'gateway_payment_id'
    from public.outbox_events where subject_id = pg_temp.order_id('order_Ob1') and type = 'order.paid'$$,
  format($$values ('paid'::text, 'authorized'::text, 5000::bigint, %L::uuid, 'pay_Ob1'::text)$$,
    pg_temp.account('00000000-0000-4000-8000-0000000007a1')),
  'the payload and the event''s account are the order''s');
select is(pg_temp.delivered_to(pg_temp.order_id('order_Ob1'), 'order.paid'), array['all', 'paid_only'],
  'order.paid is delivered to ''*'' and ''order.paid'' subscribers, not to refunds.* or inactive ones');
select is(pg_temp.delivered_to(pg_temp.order_id('order_Ob1'), 'order.authorized'), array['all'],
  'order.authorized only to ''*''');

update public.orders set last_gateway_error = 'noise' where gateway_order_id = 'order_Ob2';
select is(pg_temp.types(pg_temp.order_id('order_Ob2')), '{}'::text[], 'a change that is no business event writes nothing');
select is(settle.apply_payment('razorpay', 'failed', 'order_Ob2', 'pay_Ob2', null, null, 'BAD', 'declined') ->> 'outcome',
  'applied', 'a failure applies');
select is(pg_temp.types(pg_temp.order_id('order_Ob2')), array['order.failed'], 'a failed payment writes order.failed');
select is((select payload ->> 'failure_reason' from public.outbox_events
  where subject_id = pg_temp.order_id('order_Ob2')), 'declined', 'with the failure reason');
select is(settle.apply_payment('razorpay', 'captured', 'order_Ob2', 'pay_Ob2b', 3000, 'INR') ->> 'status',
  'paid', 'a later attempt is captured');
select is(pg_temp.types(pg_temp.order_id('order_Ob2')), array['order.failed', 'order.paid'],
  'failed then paid writes order.paid once');
update public.orders set status = 'expired' where gateway_order_id = 'order_Ob3';
select is(pg_temp.types(pg_temp.order_id('order_Ob3')), array['order.expired'],
  'expiry by a plain UPDATE writes order.expired too');

-- Section - refund events
select is((settle.create_refund(pg_temp.order_id('order_Ob1'), 1000, 'changed mind', null, null) -> 'refund' ->> 'status'),
  'pending', 'a partial refund is created');
select is(pg_temp.types(pg_temp.order_id('order_Ob1')),
  array['order.authorized', 'order.paid', 'order.partially_refunded'], 'the order writes order.partially_refunded');
select is((select type from public.outbox_events e join public.refunds r on r.id = e.subject_id
  where r.order_id = pg_temp.order_id('order_Ob1')), 'refund.created', 'the refund writes refund.created');
select is(
  (select array_agg(k order by k) from public.outbox_events e, jsonb_object_keys(e.payload) k
   where e.type = 'refund.created' and e.payload ->> 'order_id' = pg_temp.order_id('order_Ob1')::text),
  array['account_id', 'amount', 'created_at', 'currency', 'failed_at', 'failure_reason', 'gateway',
    'gateway_refund_id', 'id', 'order_id', 'previous_status', 'processed_at', 'reason', 'source', 'status'],
  'refund payloads carry the refund''s public fields');
select is(
  (select settle.record_refund_result(r.id, 'rfnd_Ob1', 'processed') ->> 'status' from public.refunds r
   where r.order_id = pg_temp.order_id('order_Ob1')),
  'processed', 'the gateway processes the refund');
select is(
  (select array_agg(e.type order by e.created_at) from public.outbox_events e join public.refunds r on r.id = e.subject_id
   where r.order_id = pg_temp.order_id('order_Ob1')),
  array['refund.created', 'refund.processed'], 'refund.processed follows');
select is(
  (select array_agg(s.name order by s.name) from public.outbox_deliveries d
   join public.outbox_events e on e.id = d.event_id join public.outbox_subscribers s on s.id = d.subscriber_id
   where e.type = 'refund.processed' and e.payload ->> 'order_id' = pg_temp.order_id('order_Ob1')::text),
  array['all', 'refunds'], 'refund.* subscribers receive refund events');
select is((settle.create_refund(pg_temp.order_id('order_Ob1'), 4000, null, null, null) -> 'refund' ->> 'amount')::bigint,
  4000::bigint, 'the rest is refunded');
select is(pg_temp.event_count(pg_temp.order_id('order_Ob1'), 'order.refunded'), 1, 'the order writes order.refunded');
select is(
  (select settle.record_refund_result(r.id, 'rfnd_Ob1b', 'failed', 'bank rejected') ->> 'status' from public.refunds r
   where r.order_id = pg_temp.order_id('order_Ob1') and r.amount = 4000),
  'failed', 'the second refund fails');
select results_eq(
  $$select type, payload ->> 'status', (payload ->> 'amount_refunded')::bigint from public.outbox_events
    where subject_id = pg_temp.order_id('order_Ob1') order by created_at desc limit 1$$,
  $$values ('order.refund_reversed'::text, 'partially_refunded'::text, 1000::bigint)$$,
  'the money coming back writes order.refund_reversed with the new status');
select is((select count(*)::int from public.outbox_events e join public.refunds r on r.id = e.subject_id
  where r.amount = 4000 and r.order_id = pg_temp.order_id('order_Ob1') and e.type = 'refund.failed'), 1,
  'and the refund writes refund.failed');

-- Section - subscription events
select is(settle.apply_payment('razorpay', 'captured', 'order_ObP1', 'pay_ObP1', 1000, 'INR') ->> 'status', 'paid',
  'a plan is bought');
create temporary table sub_a as
  select id from public.subscriptions where account_id = pg_temp.account('00000000-0000-4000-8000-0000000007a1');
select is(pg_temp.types((select id from sub_a)), array['subscription.activated'],
  'the new subscription writes subscription.activated');
select is(
  (select array_agg(k order by k) from public.outbox_events e, jsonb_object_keys(e.payload) k
   where e.subject_id = (select id from sub_a)),
  array['account_id', 'cancel_at_period_end', 'canceled_at', 'created_at', 'current_period_end',
    'current_period_start', 'id', 'plan_id', 'previous_status', 'status'],
  'subscription payloads carry the subscription''s public fields');
select is(settle.apply_payment('razorpay', 'captured', 'order_ObP2', 'pay_ObP2', 1000, 'INR') ->> 'status', 'paid',
  'a second period is bought');
select is(pg_temp.types((select id from sub_a)), array['subscription.activated', 'subscription.renewed'],
  'extending the active period writes subscription.renewed');
select ok(
  (select (payload ->> 'current_period_end')::timestamptz > (payload ->> 'current_period_start')::timestamptz
     + interval '1 month' from public.outbox_events
   where subject_id = (select id from sub_a) and type = 'subscription.renewed'),
  'the renewed event carries the later period end');
select is(settle.lapse_subscriptions(now() + interval '3 months'), 1, 'the period runs out');
select is(pg_temp.types((select id from sub_a)),
  array['subscription.activated', 'subscription.renewed', 'subscription.lapsed'], '-> past_due writes subscription.lapsed');
select is((select payload ->> 'previous_status' from public.outbox_events
  where subject_id = (select id from sub_a) and type = 'subscription.lapsed'), 'active', 'from active');

select is(settle.apply_payment('razorpay', 'captured', 'order_ObP3', 'pay_ObP3', 1000, 'INR') ->> 'status', 'paid',
  'b buys a plan');
create temporary table sub_b as
  select id from public.subscriptions where account_id = pg_temp.account('00000000-0000-4000-8000-0000000007b1');
select is(settle.cancel_subscription(pg_temp.account('00000000-0000-4000-8000-0000000007b1'), true) ->> 'cancel_at_period_end',
  'true', 'b schedules the cancellation');
select is(settle.cancel_subscription(pg_temp.account('00000000-0000-4000-8000-0000000007b1'), false) ->> 'status',
  'canceled', 'then cancels at once');
select is(pg_temp.types((select id from sub_b)),
  array['subscription.activated', 'subscription.updated', 'subscription.canceled'],
  'scheduling writes subscription.updated, cancelling subscription.canceled');

select throws_ok($$update public.outbox_events set type = 'order.refunded'$$, 'ST409',
  'outbox events cannot be changed', 'events cannot be rewritten');

-- Section - claiming, backoff, dead letters and replay (the clock is passed in)
delete from public.outbox_deliveries;
update public.outbox_subscribers set active = false;
insert into public.outbox_subscribers (name, url, secret) values
  ('worker', 'https://worker.example.test/hook', 'whsec_settle_worker_secret_0123456789abcdef');
create temporary table ev as
  select n, settle.outbox_emit('order.paid', pg_temp.account('00000000-0000-4000-8000-0000000007a1'), 'order',
    gen_random_uuid(), jsonb_build_object('n', n)) as event_id
  from generate_series(1, 3) n;
create temporary table dl as
  select ev.n, d.id from public.outbox_deliveries d join ev on ev.event_id = d.event_id;
create temporary table t as select now() + interval '1 minute' as t0;
create temporary table c1 as
  select * from settle.outbox_claim(2, 60, 3, (select t0 from t));
select is((select count(*)::int from c1), 2, 'a claim takes at most its limit');
select results_eq('select delivery_id from c1 order by delivery_id', 'select id from dl where n in (1, 2) order by id',
  'the oldest due deliveries first');
select results_eq(
  'select distinct attempt, url, secret, event_type from c1',
  $$values (1, 'https://worker.example.test/hook'::text, 'whsec_settle_worker_secret_0123456789abcdef'::text,
    'order.paid'::text)$$,
  'a claim hands over the attempt number, the URL, the secret and the event');
create temporary table c2 as
  select * from settle.outbox_claim(10, 60, 3, (select t0 from t));
select results_eq('select delivery_id from c2', 'select id from dl where n = 3',
  'a second claim gets only what the first did not hold');
select is((select count(*)::int from settle.outbox_claim(10, 60, 3, (select t0 from t))), 0,
  'claimed deliveries are not claimed again while leased');

select is(settle.outbox_record_success((select id from dl where n = 1), (select claim_token from c1 limit 1), 204,
  (select t0 from t)), true, 'a 2xx is recorded');
select results_eq($$select status, attempts, last_http_status, delivered_at from public.outbox_deliveries
    where id = (select id from dl where n = 1)$$,
  $$values ('delivered'::text, 1, 204, (select t0 from t))$$, 'the delivery is delivered after one attempt');
select is(settle.outbox_record_success((select id from dl where n = 1), (select claim_token from c1 limit 1), 200,
  (select t0 from t)), false, 'recording it again changes nothing');

select is(settle.outbox_record_failure((select id from dl where n = 2), gen_random_uuid(), 500, 'HTTP 500', 3, 10, 15,
  (select t0 from t)), null, 'a failure from a claim that is not current is ignored');
select is(settle.outbox_record_failure((select id from dl where n = 2), (select claim_token from c1 limit 1), 500,
  'HTTP 500', 3, 10, 15, (select t0 from t)) ->> 'next_attempt_at',
  to_jsonb((select t0 + interval '10 seconds' from t)) #>> '{}', 'the first failure waits the base delay');
select is((select count(*)::int from settle.outbox_claim(10, 60, 3, (select t0 + interval '9 seconds' from t))), 0,
  'not due before the backoff ends');
create temporary table c3 as select * from settle.outbox_claim(10, 60, 3, (select t0 + interval '10 seconds' from t));
select results_eq('select delivery_id, attempt from c3', 'select id, 2 from dl where n = 2',
  'due when it ends, as attempt 2');
select is(settle.outbox_record_failure((select id from dl where n = 2), (select claim_token from c3), null,
  'no answer within 10000 ms', 3, 10, 15, (select t0 + interval '10 seconds' from t)) ->> 'next_attempt_at',
  to_jsonb((select t0 + interval '25 seconds' from t)) #>> '{}', 'the second waits twice the base, capped at the maximum');
create temporary table c4 as select * from settle.outbox_claim(10, 60, 3, (select t0 + interval '25 seconds' from t));
select results_eq('select delivery_id, attempt from c4', 'select id, 3 from dl where n = 2', 'attempt 3');
select is(settle.outbox_record_failure((select id from dl where n = 2), (select claim_token from c4), 503,
  'HTTP 503', 3, 10, 15, (select t0 + interval '25 seconds' from t)) ->> 'status', 'dead',
  'failing the last attempt is dead');
select results_eq($$select status, attempts, last_http_status, last_error from public.outbox_deliveries
    where id = (select id from dl where n = 2)$$,
  $$values ('dead'::text, 3, 503, 'HTTP 503'::text)$$, 'a dead letter keeps its last error');

-- Delivery 3's worker never reported: the lease runs out and it comes back, counted.
create temporary table c5 as select * from settle.outbox_claim(10, 60, 2, (select t0 + interval '61 seconds' from t));
select results_eq('select delivery_id, attempt from c5', 'select id, 2 from dl where n = 3',
  'a claim whose lease ran out comes back as the next attempt');
select is(settle.outbox_record_failure((select id from dl where n = 3), (select claim_token from c2), 500, 'late',
  2, 10, 15, (select t0 + interval '62 seconds' from t)), null, 'the first worker''s late failure is ignored');
select is((select count(*)::int from settle.outbox_claim(10, 60, 2, (select t0 + interval '122 seconds' from t))), 0,
  'when the final attempt''s lease runs out too ...');
select results_eq($$select status, left(last_error, 38) from public.outbox_deliveries where id = (select id from dl where n = 3)$$,
  $$values ('dead'::text, 'lease expired during the final attempt'::text)$$, '... the delivery is dead');
select is((select count(*)::int from settle.outbox_claim(10, 60, 3, (select t0 + interval '1 day' from t))), 0,
  'dead letters are never claimed');

select throws_ok('select * from settle.outbox_claim(0, 60, 3)', 'ST400', null, 'a claim needs a positive limit');
select throws_ok(format('select settle.outbox_replay_delivery(%s)', (select id from dl where n = 1)), 'ST409', null,
  'only a dead delivery can be replayed');
select throws_ok('select settle.outbox_replay_delivery(-1)', 'ST404', null, 'an unknown delivery is not found');
select is(settle.outbox_replay_delivery((select id from dl where n = 2)), 1, 'a dead letter is replayed by id');
select results_eq($$select status, attempts, replays, next_attempt_at <= now() from public.outbox_deliveries
    where id = (select id from dl where n = 2)$$,
  $$values ('pending'::text, 0, 1, true)$$, 'pending again, with a fresh attempt budget, due now');
select is(settle.outbox_replay_subscriber((select id from public.outbox_subscribers where name = 'worker')), 1,
  'replaying a subscriber revives its other dead letter');
select is(settle.outbox_replay_all_dead(), 0, 'nothing is left dead');
update public.outbox_subscribers set active = false where name = 'worker';
select is((select count(*)::int from settle.outbox_claim(10, 60, 3, (select t0 + interval '1 day' from t))), 0,
  'an inactive subscriber''s deliveries wait');

select * from finish();
rollback;
