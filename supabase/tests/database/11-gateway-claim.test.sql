-- The claim on an order's gateway call (settle.claim_gateway_order, settle.record_gateway_order):
-- one live claim at a time, taken over only once it runs out or a failure freed it; the first
-- gateway order id recorded wins, and only for an order still created without one.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(27);

create function pg_temp.claim(p_order uuid, p_claim uuid, p_lease_ms int default 60000) returns jsonb
language sql as $$ select settle.claim_gateway_order(p_order, p_claim, p_lease_ms) $$;
create function pg_temp.record(p_order uuid, p_claim uuid, p_id text, p_error text default null)
returns jsonb
language sql as $$ select settle.record_gateway_order(p_order, p_claim, p_id, p_error) $$;

-- Section - fixture
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000011a1', 'claim-a@example.test');
select tests.login('00000000-0000-4000-8000-0000000011a1');
create temp table o as select
  (settle.create_order('razorpay', 'wallet_topup', null, null, 30000, 'INR', null, 'claim:1', 'h1')
    -> 'order' ->> 'id')::uuid as first,
  (settle.create_order('razorpay', 'wallet_topup', null, null, 30000, 'INR', null, 'claim:2', 'h2')
    -> 'order' ->> 'id')::uuid as second;
select tests.logout();

-- Section - one live claim
select is(pg_temp.claim((select first from o), '00000000-0000-4000-8000-00000000c1a1') ->> 'claimed',
  'true', 'an order without a gateway order is claimed');
select is((select gateway_attempts from public.orders where id = (select first from o)), 1,
  'the claim counts the gateway call');
select ok((select gateway_claimed_until between now() + interval '59 seconds' and now() + interval '61 seconds'
  from public.orders where id = (select first from o)), 'the claim lasts its lease');
select is(pg_temp.claim((select first from o), '00000000-0000-4000-8000-00000000c1b1') ->> 'claimed',
  'false', 'a second request cannot claim while the claim is live');
select is(
  (pg_temp.claim((select first from o), '00000000-0000-4000-8000-00000000c1b1') -> 'order' ->> 'id')::uuid,
  (select first from o), 'a refused claim still answers with the order');
select is((select gateway_attempts from public.orders where id = (select first from o)), 1,
  'a refused claim counts no call');

-- Section - a failure frees the claim, only its holder's
select is(pg_temp.record((select first from o), '00000000-0000-4000-8000-00000000c1b1', null, 'boom') ->> 'recorded',
  'false', 'another request''s failure does not free the claim');
select is((select gateway_claim_id from public.orders where id = (select first from o)),
  '00000000-0000-4000-8000-00000000c1a1'::uuid, 'the claim is still its holder''s');
select is(pg_temp.record((select first from o), '00000000-0000-4000-8000-00000000c1a1', null, 'razorpay timed out') ->> 'recorded',
  'true', 'the holder''s failure is recorded');
select results_eq(
  $$select gateway_claim_id, gateway_claimed_until, last_gateway_error, gateway_order_id
    from public.orders where id = (select first from o)$$,
  $$values (null::uuid, null::timestamptz, 'razorpay timed out'::text, null::text)$$,
  'a failure frees the claim and notes the error; the order has no gateway order');
select is(pg_temp.claim((select first from o), '00000000-0000-4000-8000-00000000c1b1') ->> 'claimed',
  'true', 'a retry claims at once after a failure');
select is((select gateway_attempts from public.orders where id = (select first from o)), 2,
  'the retry''s call is the second');

-- Section - a claim that ran out (its request died) is taken over
update public.orders set gateway_claimed_until = clock_timestamp() - interval '1 second'
where id = (select first from o);
select is(pg_temp.claim((select first from o), '00000000-0000-4000-8000-00000000c1c1') ->> 'claimed',
  'true', 'a claim past its lease is taken over');
select is((select gateway_claim_id from public.orders where id = (select first from o)),
  '00000000-0000-4000-8000-00000000c1c1'::uuid, 'the new request holds the claim');

-- Section - the first answer wins
select is(pg_temp.record((select first from o), '00000000-0000-4000-8000-00000000c1b1', 'order_ClaimFirst00001') ->> 'recorded',
  'true', 'a late answer of the claim that ran out is still the gateway order, and is recorded');
select results_eq(
  $$select gateway_order_id, gateway_claim_id, gateway_claimed_until, last_gateway_error
    from public.orders where id = (select first from o)$$,
  $$values ('order_ClaimFirst00001'::text, null::uuid, null::timestamptz, null::text)$$,
  'recording the gateway order ends the claim and clears the last error');
select is(pg_temp.record((select first from o), '00000000-0000-4000-8000-00000000c1c1', 'order_ClaimOther00001') ->> 'recorded',
  'false', 'a second gateway order id is not recorded');
select is((select gateway_order_id from public.orders where id = (select first from o)),
  'order_ClaimFirst00001', 'the first gateway order id stays');
select is(pg_temp.record((select first from o), '00000000-0000-4000-8000-00000000c1c1', null, 'late failure') ->> 'recorded',
  'false', 'a failure after the answer changes nothing');
select is(pg_temp.claim((select first from o), '00000000-0000-4000-8000-00000000c1d1') ->> 'claimed',
  'false', 'an order with a gateway order is not claimed');
select is((select gateway_attempts from public.orders where id = (select first from o)), 3,
  'three calls were claimed in all');

-- Section - only created orders
update public.orders set status = 'expired' where id = (select second from o);
select is(pg_temp.claim((select second from o), '00000000-0000-4000-8000-00000000c2a1') ->> 'claimed',
  'false', 'an expired order is not claimed');
select is(pg_temp.record((select second from o), '00000000-0000-4000-8000-00000000c2a1', 'order_ClaimExpired001') ->> 'recorded',
  'false', 'no gateway order is recorded on an order no longer created');

-- Section - bad input and privileges
select throws_ok($$select pg_temp.claim((select first from o), '00000000-0000-4000-8000-00000000c1e1', 0)$$,
  'ST400', 'the lease must be between 1 ms and 10 minutes', 'a lease of 0 ms is refused');
select throws_ok($$select pg_temp.claim('00000000-0000-4000-8000-0000000011ff', '00000000-0000-4000-8000-00000000c1e1')$$,
  'ST404', 'order not found', 'an unknown order is not found');
select ok(not has_function_privilege('authenticated', 'settle.claim_gateway_order(uuid, uuid, integer)', 'execute')
  and not has_function_privilege('anon', 'settle.claim_gateway_order(uuid, uuid, integer)', 'execute')
  and not has_function_privilege('authenticated', 'settle.record_gateway_order(uuid, uuid, text, text)', 'execute')
  and not has_function_privilege('anon', 'settle.record_gateway_order(uuid, uuid, text, text)', 'execute'),
  'users cannot claim or record gateway calls');
select ok(has_function_privilege('service_role', 'settle.claim_gateway_order(uuid, uuid, integer)', 'execute')
  and has_function_privilege('service_role', 'settle.record_gateway_order(uuid, uuid, text, text)', 'execute'),
  'the server (service role) can');

select * from finish();
rollback;
