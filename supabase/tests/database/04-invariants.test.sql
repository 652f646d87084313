-- Invariants that hold whoever writes: paid implies one ledger posting, balances move only
-- through the ledger, empty transactions are refused, users without history can be deleted,
-- and webhooks of kinds settle does not act on are still stored.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(14);

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000004a1', 'inv-a@example.test'),
  ('00000000-0000-4000-8000-0000000004b1', 'inv-b@example.test');

create function pg_temp.account(p_uid uuid) returns uuid language sql stable as $$
  select id from public.accounts where personal_owner_id = p_uid
$$;

-- An order made as the database owner, then paid by a bare status update (no apply_payment).
insert into public.orders (id, account_id, created_by, gateway, purpose, amount, currency, gateway_order_id)
values ('00000000-0000-4000-8000-0000000004f1', pg_temp.account('00000000-0000-4000-8000-0000000004a1'),
  '00000000-0000-4000-8000-0000000004a1', 'razorpay', 'wallet_topup', 4200, 'INR', 'order_Inv0000000001');

update public.orders set status = 'paid', paid_at = now(), gateway_payment_id = 'pay_Inv00000000001'
where id = '00000000-0000-4000-8000-0000000004f1';
select is(
  (select count(*)::int from public.ledger_transactions where order_id = '00000000-0000-4000-8000-0000000004f1'),
  1, 'becoming paid posts the ledger transaction, however the status changed');
select is(
  (select balance from public.wallets where account_id = pg_temp.account('00000000-0000-4000-8000-0000000004a1') and currency = 'INR'),
  4200::bigint, 'and the wallet holds the amount');

select is(
  settle.apply_payment('razorpay', 'captured', 'order_Inv0000000001', 'pay_Inv00000000001', 4200, 'INR') ->> 'outcome',
  'no_effect', 'the same payment captured again has no effect');
select is(
  settle.apply_payment('razorpay', 'captured', 'order_Inv0000000001', 'pay_Inv00000000002', 4200, 'INR') ->> 'outcome',
  'mismatch', 'a second payment captured for a paid order is flagged as a mismatch');
select is(
  (select count(*)::int from public.ledger_transactions where order_id = '00000000-0000-4000-8000-0000000004f1'),
  1, 'and credits nothing more');

-- A session setting the posting flag itself still cannot move a balance.
select set_config('settle.ledger_posting', 'on', true);
select throws_ok(
  $$update public.wallets set balance = 1 where account_id = pg_temp.account('00000000-0000-4000-8000-0000000004b1')$$,
  'ST400', 'wallet balances change only through the ledger',
  'setting settle.ledger_posting by hand does not unlock the balance');
select set_config('settle.ledger_posting', 'off', true);

select throws_ok(
  $$select settle.post_transaction('adjustment', 'inv:empty', null, 'empty', '[]'::jsonb)$$,
  'ST400', 'a ledger transaction needs at least two entries', 'an empty transaction is refused');
select throws_ok(
  $$select settle.post_transaction('adjustment', 'inv:one', null, 'one leg',
     '[{"system_account":"revenue:plan","currency":"INR","amount":5}]'::jsonb)$$,
  'ST400', 'a ledger transaction needs at least two entries', 'a one-legged transaction is refused');
select is((select count(*)::int from public.ledger_transactions where idempotency_key like 'inv:%'), 0,
  'and neither used up its key');

-- A webhook whose kind settle does not act on is stored and ignored, not lost.
select is(
  settle.ingest_webhook(row('razorpay', 'evt_Inv00000000001', 'refund.processed', 'refunded',
    'order_Inv0000000001', 'pay_Inv00000000001', 4200, 'INR', now(), '{}', null, null, null, null)::settle.incoming_event) ->> 'outcome',
  'ignored', 'an unknown kind is ignored');
select is((select outcome from public.webhook_events where event_id = 'evt_Inv00000000001'), 'ignored',
  'and the event is stored');

-- A user who never paid can be deleted; one with ledger history cannot.
select lives_ok($$delete from auth.users where id = '00000000-0000-4000-8000-0000000004b1'$$,
  'a user without history can be deleted');
select is((select count(*)::int from public.accounts where personal_owner_id = '00000000-0000-4000-8000-0000000004b1'),
  0, 'with their personal account and wallet');
select throws_ok($$delete from auth.users where id = '00000000-0000-4000-8000-0000000004a1'$$,
  '23503', null, 'a user with orders and ledger entries cannot be deleted');

select * from finish();
rollback;
