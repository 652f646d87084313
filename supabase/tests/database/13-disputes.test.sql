-- Disputes (20261201001800_disputes.sql): RLS on public.disputes, the ledger of a chargeback
-- (held, shortfall receivable, fees), state that never moves back, the refund and spending
-- guards, the constraints, and the audit. Needs 00-helpers.
begin;
select plan(22);

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000013a1', 'dispute-a@example.test'),
  ('00000000-0000-4000-8000-0000000013b1', 'dispute-b@example.test');
insert into public.orders (id, account_id, created_by, gateway, purpose, amount, currency, gateway_order_id)
values ('00000000-0000-4000-8000-0000000013c1', tests.personal('00000000-0000-4000-8000-0000000013a1'),
  '00000000-0000-4000-8000-0000000013a1', 'stripe', 'wallet_topup', 5000, 'USD', 'pi_DISPUTE0000001');
update public.orders set status = 'paid', paid_at = now(), gateway_payment_id = 'ch_DISPUTE0000001'
where id = '00000000-0000-4000-8000-0000000013c1';

create function pg_temp.dispute(p_status text, p_phase text, p_withdrawn bigint, p_reinstated bigint,
  p_at integer, p_fee bigint default null) returns jsonb language sql as $$
  select settle.ingest_webhook(row('stripe', 'evt_dsp_' || p_status || '_' || p_at, 'charge.dispute.updated',
    null, 'pi_DISPUTE0000001', 'ch_DISPUTE0000001', 5000, 'USD', now(), '{}', null, null,
    jsonb_strip_nulls(jsonb_build_object('action', 'dispute', 'gateway_dispute_id', 'dp_DISPUTE0000001',
      'gateway_payment_id', 'ch_DISPUTE0000001', 'gateway_order_id', 'pi_DISPUTE0000001',
      'amount', 5000, 'currency', 'USD', 'status', p_status, 'phase', p_phase,
      'gateway_status', p_status, 'occurred_at', p_at, 'withdrawn', p_withdrawn,
      'reinstated', p_reinstated,
      'balance_transactions', case when p_fee is not null then jsonb_build_array(jsonb_build_object(
        'id', 'txn_DSP1', 'fee', p_fee, 'currency', 'USD')) end)), null)::settle.incoming_event)
$$;

-- Spend 4000 of the 5000 first: the chargeback finds 1000 in the wallet.
select settle.charge_wallet(tests.personal('00000000-0000-4000-8000-0000000013a1'), 4000, 'USD', 'dsp-spend-1');
select is(pg_temp.dispute('open', 'chargeback', 5000, 0, 100, 1500) ->> 'outcome', 'applied',
  'a chargeback on a paid top-up applies');
select is(tests.balance('00000000-0000-4000-8000-0000000013a1', 'USD'), 0::bigint,
  'the wallet gives what it has');
select is((select shortfall from public.disputes where gateway_dispute_id = 'dp_DISPUTE0000001'),
  4000::bigint, 'the rest is the shortfall');
select is((select -sum(amount) from public.ledger_entries where system_account = 'receivable:dispute_shortfall'),
  4000::numeric, 'advanced by the receivable');
select is((select sum(amount) from public.ledger_entries
  where system_account = settle.dispute_held_account(tests.personal('00000000-0000-4000-8000-0000000013a1'))),
  5000::numeric, 'the dispute-held account holds the disputed amount');
select is((select -sum(amount) from public.ledger_entries where system_account = 'expense:dispute_fees'),
  1500::numeric, 'the fee is the platform''s expense');
select ok(settle.spending_blocked(tests.personal('00000000-0000-4000-8000-0000000013a1'), 'USD'),
  'spending the USD wallet is blocked');
select ok(not settle.spending_blocked(tests.personal('00000000-0000-4000-8000-0000000013a1'), 'INR'),
  'other currencies are not');
select throws_ok($$select settle.charge_wallet(tests.personal('00000000-0000-4000-8000-0000000013a1'), 1,
  'USD', 'dsp-spend-2')$$, 'ST409', null, 'a charge while blocked is refused');
select ok(settle.order_has_open_dispute('00000000-0000-4000-8000-0000000013c1'), 'the order has an open chargeback');
select throws_ok($$select settle.create_refund('00000000-0000-4000-8000-0000000013c1', 100, null, null, null)$$,
  'ST409', null, 'a refund through settle is refused');

-- The same state again, and an older event of lower rank: nothing changes.
select is(pg_temp.dispute('open', 'chargeback', 5000, 0, 100, 1500) ->> 'duplicate', 'true', 'a redelivery is a duplicate');
select is(pg_temp.dispute('open', 'inquiry', 0, 0, 50) ->> 'outcome', 'no_effect',
  'an older inquiry state changes nothing');
select is((select phase || '/' || status from public.disputes where gateway_dispute_id = 'dp_DISPUTE0000001'),
  'chargeback/open', 'the state never moves back');

-- Members of the account read it; others and anon do not.
select tests.login('00000000-0000-4000-8000-0000000013a1');
select is((select count(*)::int from public.disputes), 1, 'a member reads the account''s dispute');
select tests.login('00000000-0000-4000-8000-0000000013b1');
select is((select count(*)::int from public.disputes), 0, 'another account''s member reads nothing');
select tests.login_anon();
select throws_ok('select * from public.disputes', '42501', null, 'anon reads nothing');
select tests.logout();

-- Won: the money comes back, repays the shortfall first, and unblocks the wallet.
select is(pg_temp.dispute('won', 'chargeback', 5000, 5000, 200) ->> 'outcome', 'applied', 'the win applies');
select is(tests.balance('00000000-0000-4000-8000-0000000013a1', 'USD'), 1000::bigint,
  'the wallet holds what it held before the dispute');
select ok(not settle.spending_blocked(tests.personal('00000000-0000-4000-8000-0000000013a1'), 'USD'),
  'spending is allowed again');
select throws_ok($$update public.disputes set amount_lost = 1 where gateway_dispute_id = 'dp_DISPUTE0000001'$$,
  '23514', null, 'a resolved dispute cannot hold money');
select is_empty('select * from settle.ledger_audit()', 'the ledger agrees');

select * from finish();
rollback;
