-- PayPal (the currencies and orders migrations): settle.create_order takes the paypal gateway as the others,
-- HUF and TWD are settle currencies with ISO 4217's two decimals, and a PayPal order converges
-- through settle.apply_payment like any other.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(8);

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000013a1', 'paypal-a@example.test');

select tests.login('00000000-0000-4000-8000-0000000013a1');
select is(
  settle.create_order('paypal', 'wallet_topup', null, null, 1050, 'USD', null, 'pp:1', 'h1')
    -> 'order' ->> 'gateway',
  'paypal', 'a PayPal top-up order is created');
select is(
  settle.create_order('paypal', 'wallet_topup', null, null, 1050, 'USD', null, 'pp:1', 'h1')
    ->> 'replayed',
  'true', 'the same key replays it');
select is(
  settle.create_order('paypal', 'wallet_topup', null, null, 250000, 'HUF', null, 'pp:2', 'h2')
    -> 'order' ->> 'currency',
  'HUF', 'a HUF top-up is accepted');
select throws_ok(
  $$select settle.create_order('paypal', 'wallet_topup', null, null, 100, 'HUF', null, 'pp:3', 'h3')$$,
  'ST400', null, 'a HUF top-up below its minimum is refused');
select tests.logout();

select results_eq(
  $$select code, exponent from public.currencies where code in ('HUF', 'TWD') order by code$$,
  $$values ('HUF'::text, 2::smallint), ('TWD', 2::smallint)$$,
  'HUF and TWD have two decimals in settle (PayPal takes them whole)');

-- The PayPal order pays through the one SQL path.
update public.orders set gateway_order_id = '5O190127TN364715T'
where created_by = '00000000-0000-4000-8000-0000000013a1' and idempotency_key = 'pp:1';
select is(
  settle.apply_payment('paypal', 'captured', '5O190127TN364715T', '3C679366HH908993F', 1050, 'USD')
    ->> 'outcome',
  'applied', 'a PayPal capture for the order''s terms pays it');
select is(
  settle.apply_payment('paypal', 'captured', '5O190127TN364715T', '3C679366HH908993F', 1050, 'USD')
    ->> 'outcome',
  'no_effect', 'the same capture again changes nothing');
select is(
  (select balance from public.wallets w join public.accounts a on a.id = w.account_id
   where a.personal_owner_id = '00000000-0000-4000-8000-0000000013a1' and w.currency = 'USD'),
  1050::bigint, 'the wallet is credited once');

select * from finish();
rollback;
