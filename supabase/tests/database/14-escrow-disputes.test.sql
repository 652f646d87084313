-- Chargebacks on escrow funding payments (20261201002000_escrow_chargebacks.sql and the escrow
-- migration): the withdrawal leaves the engagement's escrow account, settlement and cancellation
-- wait, a win puts it back and the engagement settles, a chargeback after settlement is the
-- platform's expense, a partial loss ends the engagement and returns the rest to the payer's
-- wallet; the audit agrees, and sees a drifting escrow account. Needs 00-helpers.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(24);

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000ecd01', 'escdisp-payer@test.local'),
  ('00000000-0000-4000-8000-0000000ecd02', 'escdisp-payee@test.local');

-- An engagement (hold 0) funded by a paid razorpay order, completed with rating 5 unless asked.
create function pg_temp.funded(p_amount bigint, p_complete boolean default false)
returns uuid language plpgsql as $$
declare
  v_e uuid;
  v_o uuid;
begin
  perform tests.login('00000000-0000-4000-8000-0000000ecd01');
  v_e := (settle.create_engagement(null, tests.personal('00000000-0000-4000-8000-0000000ecd02'),
    p_amount, 'INR', 'a job', null, 0, null, null) -> 'engagement' ->> 'id')::uuid;
  v_o := (settle.create_escrow_order('razorpay', v_e, null, null, null) -> 'order' ->> 'id')::uuid;
  perform tests.logout();
  update public.orders set gateway_order_id = 'order_' || replace(v_o::text, '-', '') where id = v_o;
  perform settle.apply_payment('razorpay', 'captured', 'order_' || replace(v_o::text, '-', ''),
    'pay_' || replace(v_o::text, '-', ''), p_amount, 'INR');
  if p_complete then
    perform tests.login('00000000-0000-4000-8000-0000000ecd01');
    perform settle.complete_engagement(v_e, 5);
    perform tests.logout();
  end if;
  return v_e;
end
$$;

create function pg_temp.order_of(p_e uuid) returns uuid language sql as $$
  select funding_order_id from public.engagements where id = p_e
$$;

-- A dispute event on an engagement's funding payment, as the Razorpay wire code builds it.
create function pg_temp.dispute(p_e uuid, p_id text, p_status text, p_amount bigint,
  p_withdrawn bigint, p_reinstated bigint, p_at integer) returns text language sql as $$
  select settle.apply_dispute_event('razorpay', jsonb_build_object('action', 'dispute',
    'gateway_dispute_id', p_id, 'gateway_payment_id', 'pay_' || replace(pg_temp.order_of(p_e)::text, '-', ''),
    'amount', p_amount, 'currency', 'INR', 'status', p_status, 'phase', 'chargeback',
    'gateway_status', p_status, 'occurred_at', p_at, 'withdrawn', p_withdrawn,
    'reinstated', p_reinstated)) ->> 'outcome'
$$;

create function pg_temp.house(p_account text) returns bigint language sql as $$
  select coalesce(sum(amount), 0)::bigint from public.ledger_entries where system_account = p_account
$$;

create temp table deal as select pg_temp.funded(10000) as e1, pg_temp.funded(10000, true) as e2;
grant select on deal to public;

-- Section - a chargeback before completion, then won
select is(pg_temp.dispute((select e1 from deal), 'disp_ESCD1', 'open', 10000, 10000, 0, 100), 'applied',
  'a chargeback on a funding payment applies');
select is(pg_temp.house(settle.escrow_account((select e1 from deal))), 0::bigint,
  'the withdrawal comes out of the engagement''s escrow account');
select is(pg_temp.house(settle.dispute_held_account(tests.personal('00000000-0000-4000-8000-0000000ecd01'))),
  10000::bigint, 'and is held for the payer account''s dispute');
select is((select count(*)::int from public.ledger_entries where system_account = 'revenue:escrow'), 0,
  'revenue:escrow is never touched');
select tests.login('00000000-0000-4000-8000-0000000ecd02');
select throws_ok(format('select settle.cancel_engagement(%L)', (select e1 from deal)), 'ST409', null,
  'the payee cannot cancel while the funding payment is charged back');
select tests.login('00000000-0000-4000-8000-0000000ecd01');
select lives_ok(format('select settle.complete_engagement(%L, 5)', (select e1 from deal)),
  'the payer can still complete it');
select tests.logout();
select ok((settle.escrow_settle(now() + interval '1 hour', 1000) ->> 'skipped')::int >= 1,
  'escrow_settle counts it as skipped');
select is((select status from public.engagements where id = (select e1 from deal)), 'completed',
  'and does not settle it');
select is(pg_temp.dispute((select e1 from deal), 'disp_ESCD1', 'won', 10000, 10000, 10000, 200), 'applied',
  'the win applies');
select is(pg_temp.house(settle.escrow_account((select e1 from deal))), 10000::bigint,
  'the money is back in escrow');
select is((settle.escrow_settle(now() + interval '1 hour', 1000) ->> 'settled')::int, 1,
  'the won engagement settles (the undisputed one settled in the run before)');
select is(tests.balance('00000000-0000-4000-8000-0000000ecd02'), 18000::bigint,
  'the payee is credited 9000 for each');

-- Section - a chargeback after settlement
select is(pg_temp.dispute((select e2 from deal), 'disp_ESCD2', 'open', 10000, 10000, 0, 300), 'applied',
  'a chargeback after settlement applies');
select is(pg_temp.house('expense:escrow_chargebacks'), -10000::bigint, 'the platform bears it');
select is(pg_temp.dispute((select e2 from deal), 'disp_ESCD2', 'lost', 10000, 10000, 0, 400), 'applied',
  'the loss applies');
select is(tests.balance('00000000-0000-4000-8000-0000000ecd02'), 18000::bigint,
  'the payee''s earnings are untouched');
select is((select status from public.engagements where id = (select e2 from deal)), 'settled',
  'the engagement stays settled');

-- Section - a partial chargeback lost before completion
create temp table deal3 as select pg_temp.funded(10000) as e3;
grant select on deal3 to public;
select is(pg_temp.dispute((select e3 from deal3), 'disp_ESCD3', 'lost', 4000, 4000, 0, 500), 'applied',
  'a partial chargeback lost at once applies');
select is((select status || '/' || cancel_reason from public.engagements where id = (select e3 from deal3)),
  'canceled/chargeback_lost', 'the engagement ends');
select is(pg_temp.house(settle.escrow_refund_account((select e3 from deal3))), 6000::bigint,
  'what escrow still held is owed back to the payer');
select is((settle.escrow_return_owed(pg_temp.order_of((select e3 from deal3)), 6000, 6000)
  ->> 'wallet_credit')::bigint, 6000::bigint, 'it goes to the payer''s wallet, not to a refund');
select is(tests.balance('00000000-0000-4000-8000-0000000ecd01'), 6000::bigint, 'the payer''s wallet holds it');

select is_empty('select * from settle.ledger_audit()', 'the audit is empty');

-- Section - the audit sees money leaving an escrow account another way
select settle.post_transaction('adjustment', 'escd-drift', null, 'test drift', jsonb_build_array(
  jsonb_build_object('system_account', settle.escrow_account((select e1 from deal)), 'currency', 'INR', 'amount', -1),
  jsonb_build_object('system_account', 'revenue:escrow', 'currency', 'INR', 'amount', 1)));
select results_eq($$select invariant from settle.ledger_audit() order by 1$$,
  array['escrow_account_drift', 'escrow_dispute_misposted'], 'the audit reports the drift');

select * from finish();
rollback;
