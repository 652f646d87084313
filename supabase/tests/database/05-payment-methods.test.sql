-- Saved payment methods (Stripe): RLS on payment_methods and gateway_customers, the one-default
-- rule (partial unique index plus triggers serialized on the account row), the effect functions
-- and payment-method webhooks through settle.ingest_webhook.
--
-- Everything is made here with fixed ids inside the test's transaction and rolled back at the end.
-- Tests marked todo assert the correct behaviour of known schema bugs; they fail until fixed.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(67);

-- The default method(s) of an account, by gateway id.
create function pg_temp.defaults(p_account uuid) returns text[]
language sql stable security definer as $$
  select coalesce(array_agg(gateway_payment_method_id order by gateway_payment_method_id), '{}')
  from public.payment_methods where account_id = p_account and is_default
$$;
-- A Stripe payment-method webhook, as the webhook function sends it.
create function pg_temp.pm_event(p_event_id text, p_type text, p_effect jsonb) returns jsonb
language sql as $$
  select settle.ingest_webhook(row('stripe', p_event_id, p_type, null, null, null, null, null, now(), '{}',
    null, null, p_effect, null)::settle.incoming_event)
$$;

-- Section - fixture
-- a and b each get a personal account (and wallet) from the auth.users trigger; a is also a
-- plain member of a team account. The other team accounts have no members.
insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000005a1', 'pm-a@example.test'),
  ('00000000-0000-4000-8000-0000000005b1', 'pm-b@example.test');
insert into public.accounts (id, name) values
  ('00000000-0000-4000-8000-0000000005a2', 'PM team of a'),
  ('00000000-0000-4000-8000-0000000005c1', 'PM locks'),
  ('00000000-0000-4000-8000-0000000005c2', 'PM nested triggers'),
  ('00000000-0000-4000-8000-0000000005d1', 'PM defaults'),
  ('00000000-0000-4000-8000-0000000005e1', 'PM deletes'),
  ('00000000-0000-4000-8000-0000000005f1', 'PM webhooks');
insert into public.account_members (account_id, user_id, role) values
  ('00000000-0000-4000-8000-0000000005a2', '00000000-0000-4000-8000-0000000005a1', 'member');

insert into public.payment_methods (account_id, gateway_payment_method_id, brand, last4, created_at) values
  (tests.personal('00000000-0000-4000-8000-0000000005a1'), 'pm_05a_1', 'visa', '4242', now() - interval '2 hours'),
  (tests.personal('00000000-0000-4000-8000-0000000005a1'), 'pm_05a_2', 'amex', '0005', now() - interval '1 hour'),
  ('00000000-0000-4000-8000-0000000005a2', 'pm_05a_team', 'visa', '1881', now()),
  (tests.personal('00000000-0000-4000-8000-0000000005b1'), 'pm_05b_1', 'mastercard', '4444', now());
insert into public.gateway_customers (account_id, gateway, customer_id) values
  ('00000000-0000-4000-8000-0000000005f1', 'stripe', 'cus_05Webhooks'),
  (tests.personal('00000000-0000-4000-8000-0000000005b1'), 'stripe', 'cus_05PersonalB');

-- Section - RLS: members read their accounts' methods; nobody else reads or writes
select tests.login('00000000-0000-4000-8000-0000000005a1');
select results_eq(
  $$select account_id, gateway_payment_method_id, is_default from public.payment_methods
    order by account_id = '00000000-0000-4000-8000-0000000005a2', created_at$$,
  format($$values (%L::uuid, 'pm_05a_1'::text, true), (%L, 'pm_05a_2', false),
    ('00000000-0000-4000-8000-0000000005a2', 'pm_05a_team', true)$$,
    tests.personal('00000000-0000-4000-8000-0000000005a1'), tests.personal('00000000-0000-4000-8000-0000000005a1')),
  'a member reads the methods of their accounts (personal and team), and no other account''s');
select is(
  (select count(*)::int from public.payment_methods
   where account_id = tests.personal('00000000-0000-4000-8000-0000000005b1') or gateway_payment_method_id = 'pm_05b_1'),
  0, 'a member of other accounts sees none of b''s methods, even asking by account or gateway id');
select throws_ok('select * from public.gateway_customers', '42501', null,
  'authenticated: gateway_customers are permission denied');
select throws_ok(
  $$insert into public.payment_methods (account_id, gateway_payment_method_id)
    values (tests.personal('00000000-0000-4000-8000-0000000005a1'), 'pm_05a_forged')$$,
  '42501', null, 'authenticated cannot insert a payment method, even on their own account');
select throws_ok(
  $$update public.payment_methods set is_default = true where gateway_payment_method_id = 'pm_05a_2'$$,
  '42501', null, 'authenticated cannot update a payment method (not even to make it the default)');
select throws_ok(
  $$delete from public.payment_methods where gateway_payment_method_id = 'pm_05a_1'$$,
  '42501', null, 'authenticated cannot delete a payment method');
select throws_ok(
  $$select settle.upsert_payment_method(tests.personal('00000000-0000-4000-8000-0000000005a1'), 'pm_05a_forged',
    'visa', '4242', 12, 2030)$$,
  '42501', null, 'authenticated cannot execute settle.upsert_payment_method');
select throws_ok($$select settle.remove_payment_method('pm_05b_1')$$, '42501', null,
  'authenticated cannot execute settle.remove_payment_method (not even on another user''s card)');
select throws_ok($$select settle.set_default_payment_method('pm_05a_2')$$, '42501', null,
  'authenticated cannot execute settle.set_default_payment_method');
select throws_ok(
  $$select settle.ingest_webhook(row('stripe', 'evt_05_forged', 'payment_method.attached', null, null, null, null, null,
    now(), '{}', null, null, '{"action":"attached","customer":"cus_05PersonalB","payment_method":"pm_05a_forged"}'::jsonb, null)::settle.incoming_event)$$,
  '42501', null, 'authenticated cannot execute settle.ingest_webhook');

select tests.login('00000000-0000-4000-8000-0000000005b1');
select results_eq(
  'select gateway_payment_method_id from public.payment_methods',
  $$values ('pm_05b_1'::text)$$,
  'a non-member of a''s accounts reads only their own method');
select is(
  (select count(*)::int from public.payment_methods
   where account_id in (tests.personal('00000000-0000-4000-8000-0000000005a1'), '00000000-0000-4000-8000-0000000005a2')),
  0, 'a non-member sees none of a''s methods');

select tests.login_anon();
select throws_ok('select * from public.payment_methods', '42501', null, 'anon: payment_methods are permission denied');
select throws_ok('select * from public.gateway_customers', '42501', null, 'anon: gateway_customers are permission denied');
select tests.logout();

select results_eq(
  $$select count(*)::int from public.payment_methods
    where account_id in (tests.personal('00000000-0000-4000-8000-0000000005a1'),
      tests.personal('00000000-0000-4000-8000-0000000005b1'), '00000000-0000-4000-8000-0000000005a2')$$,
  'values (4)', 'the refused writes changed nothing');

-- Section - the partial unique index
select has_index('public', 'payment_methods', 'payment_methods_one_default_idx', 'account_id',
  'payment_methods has an index on account_id for the default');
select index_is_unique('public', 'payment_methods', 'payment_methods_one_default_idx',
  'the default index is unique');
select is(
  (select pg_get_expr(indpred, indrelid) from pg_index
   where indexrelid = 'public.payment_methods_one_default_idx'::regclass),
  'is_default', 'the default index is partial: it covers default rows only (at most one per account)');

-- Section - the one-default rule (account d)
select is(
  (settle.upsert_payment_method('00000000-0000-4000-8000-0000000005d1', 'pm_05d_1', 'visa', '4242', 12, 2030)).is_default,
  true, 'the first method of an account becomes its default');
select is(
  (settle.upsert_payment_method('00000000-0000-4000-8000-0000000005d1', 'pm_05d_2', 'mastercard', '4444', 1, 2031)).is_default,
  false, 'a second method is not the default');
select is(settle.set_default_payment_method('pm_05d_2'), true, 'set_default reports a known method');
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005d1'), array['pm_05d_2'],
  'set_default moves the default: exactly one, the chosen method');
select is(settle.set_default_payment_method('pm_05d_2'), true, 'making the default the default again is harmless');
select is(settle.set_default_payment_method('pm_05d_unknown'), false, 'set_default reports an unknown method');
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005d1'), array['pm_05d_2'],
  'and neither changed the default');

insert into public.payment_methods (account_id, gateway_payment_method_id, is_default)
values ('00000000-0000-4000-8000-0000000005d1', 'pm_05d_3', true);
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005d1'), array['pm_05d_3'],
  'a direct insert of a second default row moves the default (never two)');
insert into public.payment_methods (account_id, gateway_payment_method_id, is_default) values
  ('00000000-0000-4000-8000-0000000005d1', 'pm_05d_4', true),
  ('00000000-0000-4000-8000-0000000005d1', 'pm_05d_5', true);
select is(cardinality(pg_temp.defaults('00000000-0000-4000-8000-0000000005d1')), 1,
  'one statement inserting two default rows still leaves exactly one default');

select throws_ok(
  $$update public.payment_methods set is_default = false
    where account_id = '00000000-0000-4000-8000-0000000005d1' and is_default$$,
  'ST409', 'make another payment method the default instead',
  'unsetting the default directly is refused');
select throws_ok(
  $$update public.payment_methods set is_default = false where account_id = '00000000-0000-4000-8000-0000000005d1'$$,
  'ST409', 'make another payment method the default instead',
  'unsetting every method of the account at once is refused too');
select is(cardinality(pg_temp.defaults('00000000-0000-4000-8000-0000000005d1')), 1,
  'and the account keeps its default');
select throws_ok(
  $$update public.payment_methods set account_id = '00000000-0000-4000-8000-0000000005e1'
    where gateway_payment_method_id = 'pm_05d_1'$$,
  'ST400', 'a payment method''s account and gateway id are fixed', 'a method cannot move to another account');

update public.payment_methods set is_default = true where gateway_payment_method_id = 'pm_05d_1';
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005d1'), array['pm_05d_1'],
  'a direct update making another method default moves the default');

-- Every write takes the account row lock first (xmax shows the lock of this transaction).
insert into public.payment_methods (account_id, gateway_payment_method_id)
values ('00000000-0000-4000-8000-0000000005c1', 'pm_05c_1');
select is(
  (select xmax::text from public.accounts where id = '00000000-0000-4000-8000-0000000005c1'),
  (txid_current() % 4294967296)::text,
  'writing a payment method locks its account row, serializing the default rules per account');

-- Section - upserts
select lives_ok(
  $$select settle.upsert_payment_method('00000000-0000-4000-8000-0000000005d1', 'pm_05d_1', 'visa', '1111', 6, 2032)$$,
  'upserting a known method of the same account succeeds');
select results_eq(
  $$select count(*)::int, min(account_id::text), min(last4), min(exp_month)::int, min(exp_year)::int, bool_and(is_default)
    from public.payment_methods where gateway_payment_method_id = 'pm_05d_1'$$,
  $$values (1, '00000000-0000-4000-8000-0000000005d1', '1111', 6, 2032, true)$$,
  'the upsert is idempotent: one row, details refreshed, still the default');
select throws_ok(
  $$select settle.upsert_payment_method(tests.personal('00000000-0000-4000-8000-0000000005b1'), 'pm_05d_1',
    'visa', '9999', 1, 2040)$$,
  'ST409', 'payment method belongs to another account',
  'upserting a method that belongs to another account is a conflict');
select results_eq(
  $$select account_id, last4 from public.payment_methods where gateway_payment_method_id = 'pm_05d_1'$$,
  $$values ('00000000-0000-4000-8000-0000000005d1'::uuid, '1111'::text)$$,
  'and the method stays with its account, unchanged');
select is(
  (select count(*)::int from public.payment_methods
   where account_id = tests.personal('00000000-0000-4000-8000-0000000005b1')),
  1, 'and nothing was added to the other account');

-- Section - deletes (account e): the newest remaining method, by created_at, is promoted.
-- The ids run against created_at, so ordering by id alone would pick pm_05e_2.
insert into public.payment_methods (id, account_id, gateway_payment_method_id, created_at) values
  ('00000000-0000-4000-8000-0000000005e8', '00000000-0000-4000-8000-0000000005e1', 'pm_05e_1', now() - interval '3 hours'),
  ('00000000-0000-4000-8000-0000000005e9', '00000000-0000-4000-8000-0000000005e1', 'pm_05e_2', now() - interval '2 hours'),
  ('00000000-0000-4000-8000-0000000005e7', '00000000-0000-4000-8000-0000000005e1', 'pm_05e_3', now() - interval '1 hour');
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005e1'), array['pm_05e_1'],
  'of several methods inserted at once the first is the default');

delete from public.payment_methods where gateway_payment_method_id = 'pm_05e_1';
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005e1'), array['pm_05e_3'],
  'deleting the default promotes the most recent remaining method');
delete from public.payment_methods where gateway_payment_method_id = 'pm_05e_2';
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005e1'), array['pm_05e_3'],
  'deleting another method leaves the default alone');
select is(settle.remove_payment_method('pm_05e_3'), true, 'removing the last method reports it removed');
select results_eq(
  $$select count(*)::int, (count(*) filter (where is_default))::int from public.payment_methods
    where account_id = '00000000-0000-4000-8000-0000000005e1'$$,
  'values (0, 0)', 'deleting the last method leaves zero methods and zero defaults');
select is(settle.remove_payment_method('pm_05e_3'), false, 'removing it again finds nothing');

insert into public.payment_methods (account_id, gateway_payment_method_id, created_at) values
  ('00000000-0000-4000-8000-0000000005e1', 'pm_05e_4', now() - interval '3 hours'),
  ('00000000-0000-4000-8000-0000000005e1', 'pm_05e_5', now() - interval '2 hours'),
  ('00000000-0000-4000-8000-0000000005e1', 'pm_05e_6', now() - interval '1 hour');
delete from public.payment_methods where gateway_payment_method_id in ('pm_05e_4', 'pm_05e_6');
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005e1'), array['pm_05e_5'],
  'deleting the default and the newest in one statement promotes the newest that remains');

-- Section - payment-method webhooks (account f is Stripe customer cus_05Webhooks)
select is(
  pg_temp.pm_event('evt_05_attach_1', 'payment_method.attached',
    '{"action":"attached","customer":"cus_05Webhooks","payment_method":"pm_05w_1","brand":"visa","last4":"4242","exp_month":12,"exp_year":2030}')
    ->> 'outcome',
  'applied', 'attached for a known customer is applied');
select results_eq(
  $$select account_id, brand, last4, exp_month::int, exp_year::int, is_default from public.payment_methods
    where gateway_payment_method_id = 'pm_05w_1'$$,
  $$values ('00000000-0000-4000-8000-0000000005f1'::uuid, 'visa'::text, '4242'::text, 12, 2030, true)$$,
  'the card is saved on the customer''s account, as its first (default) method');
select results_eq(
  $$select outcome, processed_at is not null from public.webhook_events
    where gateway = 'stripe' and event_id = 'evt_05_attach_1'$$,
  $$values ('applied'::text, true)$$, 'the event is stored as applied');
select is(
  pg_temp.pm_event('evt_05_attach_1', 'payment_method.attached',
    '{"action":"attached","customer":"cus_05Webhooks","payment_method":"pm_05w_1","brand":"visa","last4":"0077","exp_month":1,"exp_year":2031}'),
  '{"duplicate": true, "outcome": "duplicate"}'::jsonb, 'the same event id again is a duplicate');
select results_eq(
  $$select (select count(*)::int from public.payment_methods where gateway_payment_method_id = 'pm_05w_1'),
           (select min(last4) from public.payment_methods where gateway_payment_method_id = 'pm_05w_1'),
           (select count(*)::int from public.webhook_events where gateway = 'stripe' and event_id = 'evt_05_attach_1')$$,
  $$values (1, '4242'::text, 1)$$, 'and is not applied again: one method, unchanged, one stored event');

select is(
  pg_temp.pm_event('evt_05_attach_2', 'setup_intent.succeeded',
    '{"action":"attached","customer":"cus_05Webhooks","payment_method":"pm_05w_2","brand":"mastercard","last4":"4444","exp_month":3,"exp_year":2029}')
    ->> 'outcome',
  'applied', 'a second card attached is applied');
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005f1'), array['pm_05w_1'],
  'and does not take the default');
select is(
  pg_temp.pm_event('evt_05_default_1', 'customer.updated',
    '{"action":"default","customer":"cus_05Webhooks","payment_method":"pm_05w_2"}') ->> 'outcome',
  'applied', 'default for a known card is applied');
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005f1'), array['pm_05w_2'],
  'and moves the default to it');
select is(
  pg_temp.pm_event('evt_05_default_2', 'customer.updated',
    '{"action":"default","customer":"cus_05Webhooks","payment_method":"pm_05w_unknown"}') ->> 'outcome',
  'no_effect', 'default for an unknown card has no effect');
select is(
  pg_temp.pm_event('evt_05_detach_1', 'payment_method.detached',
    '{"action":"detached","payment_method":"pm_05w_2"}') ->> 'outcome',
  'applied', 'detached for a saved card is applied');
select results_eq(
  $$select gateway_payment_method_id, is_default from public.payment_methods
    where account_id = '00000000-0000-4000-8000-0000000005f1'$$,
  $$values ('pm_05w_1'::text, true)$$, 'the detached default is removed and the remaining card promoted');
select is(
  pg_temp.pm_event('evt_05_detach_2', 'payment_method.detached',
    '{"action":"detached","payment_method":"pm_05w_unknown"}') ->> 'outcome',
  'no_effect', 'detached for an unknown card has no effect');
select is(
  pg_temp.pm_event('evt_05_attach_3', 'payment_method.attached',
    '{"action":"attached","customer":"cus_05Nobody","payment_method":"pm_05w_9","brand":"visa","last4":"4242","exp_month":12,"exp_year":2030}')
    ->> 'outcome',
  'ignored', 'attached for an unknown customer is ignored (not settle''s card)');
select results_eq(
  $$select outcome, processed_at is not null from public.webhook_events
    where gateway = 'stripe' and event_id = 'evt_05_attach_3'$$,
  $$values ('ignored'::text, true)$$, 'and the event is still stored');
select is((select count(*)::int from public.payment_methods where gateway_payment_method_id = 'pm_05w_9'), 0,
  'and no payment method is saved');
select is(
  pg_temp.pm_event('evt_05_other_1', 'payment_method.updated',
    '{"action":"refreshed","customer":"cus_05Webhooks","payment_method":"pm_05w_1"}') ->> 'outcome',
  'ignored', 'an action settle does not know is ignored (and stored)');

-- Section - fixed bugs (found by this file as todo tests; kept as regressions)
select lives_ok(
  $$select pg_temp.pm_event('evt_05_attach_4', 'payment_method.attached',
    '{"action":"attached","customer":"cus_05Webhooks","payment_method":"pm_05b_1","brand":"visa","last4":"4242","exp_month":12,"exp_year":2030}')$$,
  'attached for a card saved on another account does not fail the webhook');
select is((select count(*)::int from public.webhook_events where gateway = 'stripe' and event_id = 'evt_05_attach_4'), 1,
  'and the event is stored (for audit and replay) like every verified event');

do $$ begin
  perform pg_temp.pm_event('evt_05_default_3', 'customer.updated',
    '{"action":"default","customer":"cus_05Webhooks","payment_method":"pm_05d_2"}');
end $$;
select is(pg_temp.defaults('00000000-0000-4000-8000-0000000005d1'), array['pm_05d_1'],
  'a default event for one customer leaves another account''s default alone');

-- Any UPDATE run from inside a trigger has pg_trigger_depth() = 2 in the guard trigger, so the
-- "only by making another default" rule is skipped for it, not just for the guard's own update.
insert into public.payment_methods (account_id, gateway_payment_method_id)
values ('00000000-0000-4000-8000-0000000005c2', 'pm_05c_2');
create function pg_temp.unset_default() returns trigger language plpgsql as $$
begin
  update public.payment_methods set is_default = false where gateway_payment_method_id = 'pm_05c_2';
  return null;
end
$$;
create temp table pm_poke (x int);
create trigger pm_poke after insert on pm_poke for each row execute function pg_temp.unset_default();
select throws_ok('insert into pm_poke values (1)', 'ST409', 'make another payment method the default instead',
  'unsetting the default from inside another trigger is refused too');
-- Put the default back if the bug let it go, so the invariant below checks the rest.
update public.payment_methods set is_default = true where gateway_payment_method_id = 'pm_05c_2';

-- Section - invariant
select is_empty(
  $$select account_id from public.payment_methods
    group by account_id having count(*) filter (where is_default) <> 1$$,
  'every account with at least one payment method has exactly one default');

select * from finish();
rollback;
