-- Webhook identity and the effects added for issue 10 (sections 4 and 7): the body key that
-- makes a replay under a fresh event id a duplicate, charge.refunded's refund list,
-- payment_method.updated, and events whose effect still owes a gateway read.
--
-- Everything is made here with fixed ids inside the test's transaction and rolled back at the end.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(24);

create function pg_temp.ingest(p_event_id text, p_type text, p_effect jsonb, p_body_key text)
returns jsonb language sql as $$
  select settle.ingest_webhook(row('razorpay', p_event_id, p_type, null, null, null, null, null, now(),
    '{}', null, null, p_effect, p_body_key)::settle.incoming_event)
$$;
create function pg_temp.card_event(p_event_id text, p_effect jsonb) returns jsonb
language sql as $$
  select settle.ingest_webhook(row('stripe', p_event_id, 'payment_method.updated', null, null, null,
    null, null, now(), '{}', null, null, p_effect, null)::settle.incoming_event)
$$;

-- Section - the body key
select is(pg_temp.ingest('evt_09_a', 'payment.captured', null, 'sha256:09-one') ->> 'duplicate',
  'false', 'a new body key is stored');
select is(pg_temp.ingest('evt_09_b', 'payment.captured', null, 'sha256:09-one') ->> 'outcome',
  'duplicate', 'the same body key under another event id is a duplicate');
select is((select count(*)::int from public.webhook_events where body_key = 'sha256:09-one'), 1,
  'and stored once');
select is(pg_temp.ingest('evt_09_c', 'payment.captured', null, 'sha256:09-two') ->> 'duplicate',
  'false', 'another body key is another event');
select is(pg_temp.ingest('evt_09_c', 'payment.captured', null, 'sha256:09-three') ->> 'outcome',
  'duplicate', 'the event id alone still deduplicates');
select is(pg_temp.ingest('evt_09_d', 'payment.captured', null, null) ->> 'duplicate', 'false',
  'events without a body key (Stripe) are keyed by id only');
select is(pg_temp.ingest('evt_09_e', 'payment.captured', null, null) ->> 'duplicate', 'false',
  'and two of them never collide');
select throws_ok(
  $$insert into public.webhook_events (gateway, event_id, event_type, raw_body, body_key)
    values ('razorpay', 'evt_09_f', 'x', '{}', 'sha256:09-one')$$,
  '23505', null, 'the unique index holds the body key even outside ingest_webhook');
select is(
  (select body_key from public.webhook_events where gateway = 'razorpay' and event_id = 'evt_09_a'),
  'sha256:09-one', 'the body key is kept on the row');

-- Section - a charge's refund list
select is(settle.apply_refund_list('stripe',
  '{"action":"refunds","refunds":[],"outcome":"no_effect","detail":"already counted"}') ->> 'outcome',
  'no_effect', 'an empty list takes the outcome the caller decided');
select is(settle.apply_refund_list('stripe',
  '{"action":"refunds","refunds":[{"action":"refund","gateway_refund_id":"re_09_nobody","status":"processed","amount":100,"currency":"USD","gateway_payment_id":"ch_09_nobody"}]}')
  ->> 'outcome', 'unknown_order', 'a refund of no settle order is unknown_order');
select is(settle.apply_refund_list('stripe', '{"action":"refunds"}') ->> 'outcome', 'ignored',
  'a list that is no array is ignored');

-- Section - payment_method.updated
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000009a1', 'wh-a@example.test'),
  ('00000000-0000-4000-8000-0000000009b1', 'wh-b@example.test');
insert into public.gateway_customers (account_id, gateway, customer_id)
select id, 'stripe', 'cus_09A' from public.accounts
  where personal_owner_id = '00000000-0000-4000-8000-0000000009a1';
insert into public.gateway_customers (account_id, gateway, customer_id)
select id, 'stripe', 'cus_09B' from public.accounts
  where personal_owner_id = '00000000-0000-4000-8000-0000000009b1';
insert into public.payment_methods (account_id, gateway_payment_method_id, brand, last4, exp_month, exp_year)
select account_id, 'pm_09A', 'visa', '4242', 3, 2025 from public.gateway_customers where customer_id = 'cus_09A';

select is(pg_temp.card_event('evt_09_pm1',
  '{"action":"updated","customer":"cus_09A","payment_method":"pm_09A","brand":"mastercard","last4":"3222","exp_month":9,"exp_year":2030}')
  ->> 'outcome', 'applied', 'updated for a stored card is applied');
select results_eq(
  $$select brand, last4, exp_month::int, exp_year::int from public.payment_methods where gateway_payment_method_id = 'pm_09A'$$,
  $$values ('mastercard'::text, '3222'::text, 9, 2030)$$, 'brand, last4 and expiry are the new ones');
select is(pg_temp.card_event('evt_09_pm2',
  '{"action":"updated","customer":"cus_09A","payment_method":"pm_09A","brand":"mastercard","last4":"3222","exp_month":9,"exp_year":2030}')
  ->> 'outcome', 'no_effect', 'the same update again has no effect');
select is(pg_temp.card_event('evt_09_pm3',
  '{"action":"updated","customer":"cus_09B","payment_method":"pm_09A","brand":"visa","last4":"9999","exp_month":1,"exp_year":2030}')
  ->> 'outcome', 'mismatch', 'another account''s customer cannot change the card');
select is(pg_temp.card_event('evt_09_pm4',
  '{"action":"updated","customer":"cus_09Nobody","payment_method":"pm_09A","brand":"visa","last4":"9999","exp_month":1,"exp_year":2030}')
  ->> 'outcome', 'ignored', 'a customer settle does not know is ignored');
select is(pg_temp.card_event('evt_09_pm5',
  '{"action":"updated","customer":"cus_09A","payment_method":"pm_09Unsaved","brand":"visa","last4":"9999","exp_month":1,"exp_year":2030}')
  ->> 'outcome', 'no_effect', 'a card never saved is not created by an update');
select is((select last4 from public.payment_methods where gateway_payment_method_id = 'pm_09A'), '3222',
  'and none of those changed the stored card');

-- Section - an effect that owes a gateway read
select is(settle.ingest_webhook(row('stripe', 'evt_09_owed', 'setup_intent.succeeded', null, null, null,
  null, null, now(), '{}', null, null,
  '{"action":"fetch_card","customer":"cus_09A","payment_method":"pm_09New","detail":"stripe: api_error"}', null)::settle.incoming_event)
  ->> 'outcome', 'failed', 'a read that failed stores the event failed');
select is(
  (select count(*)::int from settle.pending_webhook_reads(100, 0) where effect ->> 'payment_method' = 'pm_09New'),
  1, 'and it is due for reconcile''s read');
select is(settle.complete_webhook_read(
  (select id from public.webhook_events where event_id = 'evt_09_owed'),
  '{"action":"attached","customer":"cus_09A","payment_method":"pm_09New","brand":"visa","last4":"4242","exp_month":1,"exp_year":2031}')
  ->> 'outcome', 'applied', 'completing it with the card read applies it');
select results_eq(
  $$select e.outcome, e.attempts, e.effect ->> 'action', (select count(*)::int from public.payment_methods where gateway_payment_method_id = 'pm_09New')
    from public.webhook_events e where event_id = 'evt_09_owed'$$,
  $$values ('applied'::text, 2, 'attached'::text, 1)$$, 'the event is applied, the card saved');
select is(settle.complete_webhook_read(
  (select id from public.webhook_events where event_id = 'evt_09_owed'),
  '{"action":"ignore"}') ->> 'outcome', 'skipped', 'a second completion is skipped');

select * from finish();
rollback;
