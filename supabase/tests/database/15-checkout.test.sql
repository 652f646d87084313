-- create-order's one statement (settle.create_order with a claim) and verify's
-- (settle.apply_checkout_result): a new order is written already claimed for its gateway call, a
-- replay is claimed only as settle.claim_gateway_order would claim it, the account's gateway
-- customer comes with a claim, and a verified result is applied and read back in one call.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(24);

create function pg_temp.create(p_key text, p_claim uuid, p_lease_ms int default 60000,
  p_hash text default 'h', p_gateway text default 'razorpay') returns jsonb
language sql as $$
  select settle.create_order(p_gateway, 'wallet_topup', null, null, 30000,
    case when p_gateway = 'stripe' then 'USD' else 'INR' end, null, p_key, p_hash, p_claim, p_lease_ms)
$$;

-- Section - fixture
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000015a1', 'checkout-a@example.test');

-- Section - a new order is written claimed
select tests.login('00000000-0000-4000-8000-0000000015a1');
create temp table r as select pg_temp.create('co:1', '00000000-0000-4000-8000-00000000c5a1') as first;
select is((select first ->> 'claimed' from r), 'true', 'a new order comes claimed by its request');
select is((select first ->> 'replayed' from r), 'false', 'and is not a replay');
select tests.logout();
create temp table o as select (first -> 'order' ->> 'id')::uuid as id from r;
select results_eq(
  $$select gateway_claim_id, gateway_attempts, status from public.orders where id = (select id from o)$$,
  $$values ('00000000-0000-4000-8000-00000000c5a1'::uuid, 1, 'created'::text)$$,
  'the row carries the claim and counts the gateway call, as claim_gateway_order would');
select ok((select gateway_claimed_until between now() + interval '59 seconds' and now() + interval '61 seconds'
  from public.orders where id = (select id from o)), 'the claim lasts its lease');
select is((select (first -> 'order' ->> 'gateway_attempts')::int from r), 1,
  'the answer is the row as written');
select is((select count(*)::int from settle.payment_stats_deltas d join public.orders x
  on x.account_id = d.account_id where x.id = (select id from o) and d.orders_created = 1), 1,
  'the order is written once (one creation delta)');

-- Section - replays
select tests.login('00000000-0000-4000-8000-0000000015a1');
select is(pg_temp.create('co:1', '00000000-0000-4000-8000-00000000c5b1') ->> 'claimed', 'false',
  'a replay while the claim is live does not claim');
select is(pg_temp.create('co:1', '00000000-0000-4000-8000-00000000c5b1') ->> 'replayed', 'true',
  'and answers as a replay');
select throws_ok($$select pg_temp.create('co:1', '00000000-0000-4000-8000-00000000c5b1', 60000, 'other')$$,
  'ST409', 'this Idempotency-Key was used with a different request',
  'a replay with another body is refused, claim or not');
select tests.logout();
select is((select gateway_claim_id from public.orders where id = (select id from o)),
  '00000000-0000-4000-8000-00000000c5a1'::uuid, 'the first request still holds the claim');
update public.orders set gateway_claimed_until = clock_timestamp() - interval '1 second'
where id = (select id from o);
select tests.login('00000000-0000-4000-8000-0000000015a1');
select is(pg_temp.create('co:1', '00000000-0000-4000-8000-00000000c5b1') ->> 'claimed', 'true',
  'a replay takes over a claim past its lease');
select tests.logout();
select results_eq(
  $$select gateway_claim_id, gateway_attempts from public.orders where id = (select id from o)$$,
  $$values ('00000000-0000-4000-8000-00000000c5b1'::uuid, 2)$$,
  'the replay holds the claim and its call is the second');
select settle.record_gateway_order((select id from o), '00000000-0000-4000-8000-00000000c5b1',
  'order_Checkout000001', null);
select tests.login('00000000-0000-4000-8000-0000000015a1');
select is(pg_temp.create('co:1', '00000000-0000-4000-8000-00000000c5c1') ->> 'claimed', 'false',
  'a replay of an order with its gateway order claims nothing');
select is(pg_temp.create('co:1', '00000000-0000-4000-8000-00000000c5c1') -> 'order' ->> 'gateway_order_id',
  'order_Checkout000001', 'and answers it');

-- Section - without a claim, and bad input
select is(pg_temp.create('co:2', null) ->> 'claimed', 'false', 'without a claim nothing is claimed');
select throws_ok($$select pg_temp.create('co:3', '00000000-0000-4000-8000-00000000c5d1', 0)$$,
  'ST400', 'the lease must be between 1 ms and 10 minutes', 'a lease of 0 ms is refused');
select tests.logout();
select results_eq(
  $$select gateway_claim_id, gateway_attempts from public.orders where idempotency_key = 'co:2'$$,
  $$values (null::uuid, 0)$$, 'an order made without a claim is not claimed');
select is((select count(*)::int from public.orders where idempotency_key = 'co:3'), 0,
  'a refused lease writes nothing');

-- Section - the account's gateway customer comes with a claim
insert into public.gateway_customers (account_id, gateway, customer_id)
select account_id, 'stripe', 'cus_Checkout0001' from public.orders where id = (select id from o);
select tests.login('00000000-0000-4000-8000-0000000015a1');
select is(pg_temp.create('co:4', '00000000-0000-4000-8000-00000000c5e1', 60000, 'h', 'stripe') ->> 'customer_id',
  'cus_Checkout0001', 'a claimed Stripe order answers the account''s customer');
select is(pg_temp.create('co:5', '00000000-0000-4000-8000-00000000c5e2') ->> 'customer_id', null,
  'a gateway without a stored customer answers none');
-- The nine-argument form keeps its answer.
select is((select array_agg(k order by k) from jsonb_object_keys(settle.create_order('razorpay',
  'wallet_topup', null, null, 30000, 'INR', null, 'co:6', 'h')) k), array['order', 'replayed'],
  'the nine-argument create_order answers as before');
select tests.logout();

-- Section - verify's one statement
select is(settle.apply_checkout_result('razorpay', 'pending', 'order_Checkout000001', null, null,
  null, null, null) -> 'order' ->> 'status', 'created', 'pending applies nothing and answers the order');
select is((select r ->> 'outcome' || ' ' || (r -> 'order' ->> 'status') from settle.apply_checkout_result(
  'razorpay', 'captured', 'order_Checkout000001', 'pay_Checkout000001', 30000, 'INR', null, null) r),
  'applied paid', 'a capture is applied through apply_payment and the paid order comes back');
select ok(not has_function_privilege('authenticated',
    'settle.apply_checkout_result(text, text, text, text, bigint, text, text, text)', 'execute')
  and not has_function_privilege('anon',
    'settle.apply_checkout_result(text, text, text, text, bigint, text, text, text)', 'execute')
  and has_function_privilege('service_role',
    'settle.apply_checkout_result(text, text, text, text, bigint, text, text, text)', 'execute'),
  'only the server applies a checkout result');

select * from finish();
rollback;
