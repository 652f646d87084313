-- Marketplace escrow: the split for every rating in INR, JPY and KWD at tiny and huge amounts,
-- the hold boundary, funding once, cancellation, disputes, who reads engagements (RLS), that
-- nobody writes them directly, that escrow orders cannot be refunded through the API, and that
-- the ledger audit stays empty.
begin;
set local client_min_messages = warning;
create extension if not exists pgtap;
select plan(39);

insert into auth.users (id, email) values
  ('00000000-0000-4000-8000-0000000e5c01', 'escrow-payer@test.local'),
  ('00000000-0000-4000-8000-0000000e5c02', 'escrow-payee@test.local'),
  ('00000000-0000-4000-8000-0000000e5c03', 'escrow-stranger@test.local');

-- An engagement created by the payer (as the user), funded by a paid razorpay order.
create function pg_temp.funded(p_amount bigint, p_currency text, p_hold integer default 24)
returns uuid language plpgsql as $$
declare
  v_e uuid;
  v_o uuid;
begin
  perform tests.login('00000000-0000-4000-8000-0000000e5c01');
  v_e := (settle.create_engagement(null, tests.personal('00000000-0000-4000-8000-0000000e5c02'),
    p_amount, p_currency, 'a job', null, p_hold, null, null) -> 'engagement' ->> 'id')::uuid;
  v_o := (settle.create_escrow_order('razorpay', v_e, null, null, null) -> 'order' ->> 'id')::uuid;
  perform tests.logout();
  update public.orders set gateway_order_id = 'order_' || replace(v_o::text, '-', '') where id = v_o;
  perform settle.apply_payment('razorpay', 'captured', 'order_' || replace(v_o::text, '-', ''),
    'pay_' || replace(v_o::text, '-', ''), p_amount, p_currency);
  return v_e;
end
$$;

create function pg_temp.complete(p_e uuid, p_rating integer) returns void language plpgsql as $$
begin
  perform tests.login('00000000-0000-4000-8000-0000000e5c01');
  perform settle.complete_engagement(p_e, p_rating);
  perform tests.logout();
end
$$;

-- Section - the split, table-driven
create temp table cases as
select c.currency, a.amount, r.rating, pg_temp.funded(a.amount, c.currency, 0) as engagement_id
from (values ('INR'), ('JPY'), ('KWD')) c(currency)
cross join lateral (select topup_min from public.currencies where code = c.currency
                    union select topup_max from public.currencies where code = c.currency
                    union select 10007) a(amount)
cross join (values (1), (2), (3), (4), (5)) r(rating);
grant select on cases to public;
select pg_temp.complete(engagement_id, rating) from cases;
select is((settle.escrow_settle(now(), 1000) ->> 'settled')::int, (select count(*)::int from cases),
  'every completed engagement with a zero hold settles in one run');

-- The issue's formula in numeric arithmetic, independently of settle.escrow_split.
create temp table expected as
select c.*, floor(c.amount * p.bps / 10000.0)::bigint as penalty from cases c
join (values (1, 5000), (2, 2500), (3, 1000), (4, 0), (5, 0)) p(rating, bps) on p.rating = c.rating;
select is_empty($$
  select x.currency, x.amount, x.rating from expected x join public.engagements e on e.id = x.engagement_id
  where e.status <> 'settled' or e.penalty_amount <> x.penalty
     or e.fee_amount <> floor((x.amount - x.penalty) * 1000 / 10000.0)::bigint
     or e.payee_amount <> x.amount - x.penalty - floor((x.amount - x.penalty) * 1000 / 10000.0)::bigint
$$, 'INR, JPY and KWD, ratings 1-5, smallest, largest and odd amounts: penalty, fee and payee are the formula''s');
select is((select penalty_amount || '/' || fee_amount || '/' || payee_amount from public.engagements e
           join cases c on c.engagement_id = e.id where c.currency = 'INR' and c.amount = 10007 and c.rating = 3),
  '1000/900/8107', '10007 INR at rating 3: penalty 1000, fee 900, payee 8107');
select is((select count(*)::int from settle.escrow_split(1, 5000, 1000) s where s.penalty = 0 and s.fee = 0 and s.payee = 1),
  1, 'one minor unit: nothing to split, all to the payee');
select is((select s.penalty || '/' || s.fee || '/' || s.payee from settle.escrow_split(100000000000, 2500, 1000) s),
  '25000000000/7500000000/67500000000', 'the largest amount splits exactly, without overflow');
select is((select sum(w.balance)::bigint from public.wallets w
           where w.account_id = tests.personal('00000000-0000-4000-8000-0000000e5c02') and w.currency = 'KWD'),
  (select sum(e.payee_amount)::bigint from public.engagements e join cases c on c.engagement_id = e.id
   where c.currency = 'KWD'),
  'the payee''s KWD wallet holds exactly the KWD payee amounts');
select is((select count(*)::int from settle.escrow_refund_queue q join public.orders o on o.id = q.order_id
           join public.engagements e on e.funding_order_id = o.id where e.penalty_amount > 0),
  (select count(*)::int from public.engagements e join cases c on c.engagement_id = e.id where e.penalty_amount > 0),
  'every settlement with a penalty queued its funding order for the refund');
select is_empty('select * from settle.ledger_audit()', 'the audit is empty after the table-driven settlements');
select is((settle.escrow_settle(now(), 1000) ->> 'settled')::int, 0, 'a second run settles nothing again');

-- Section - the hold boundary
create temp table held as select pg_temp.funded(50000, 'INR', 24) as id;
grant select on held to public;
select pg_temp.complete(id, 5) from held;
select is((select release_at - completed_at from public.engagements where id = (select id from held)),
  interval '24 hours', 'release_at is completed_at + hold_hours');
select is((settle.escrow_settle((select release_at - interval '1 second' from public.engagements
           where id = (select id from held)), 1000) ->> 'claimed')::int, 0, 'one second before release: not claimed');
select is((select status from public.engagements where id = (select id from held)), 'completed', '... and not settled');
select is((settle.escrow_settle((select release_at from public.engagements where id = (select id from held)), 1000)
           ->> 'settled')::int, 1, 'at release_at: settled');
select is((select payee_amount from public.engagements where id = (select id from held)), 45000::bigint,
  'rating 5: no penalty, the 10 % fee, 45000 to the payee');

-- Section - funding once, a second payment returned, auto-completion
create temp table twice as select pg_temp.funded(20000, 'INR') as id;
grant select on twice to public;
select is((select settle.apply_payment('razorpay', 'captured', o.gateway_order_id, o.gateway_payment_id, 20000, 'INR') ->> 'outcome'
           from public.orders o join public.engagements e on e.funding_order_id = o.id where e.id = (select id from twice)),
  'no_effect', 'the funding payment reported again changes nothing');
select tests.login('00000000-0000-4000-8000-0000000e5c01');
select throws_ok(format($$select settle.create_escrow_order('stripe', %L, null, null, null)$$, (select id from twice)),
  'ST409', null, 'a funding order for an engagement already funded is a 409');
select tests.logout();
-- A second order made before funding (another gateway), paid after: owed back in full.
insert into public.orders (account_id, created_by, gateway, purpose, engagement_id, amount, currency, gateway_order_id)
select e.payer_account_id, e.created_by, 'stripe', 'escrow', e.id, e.amount, e.currency, 'pi_second_' || left(md5(e.id::text), 8)
from public.engagements e where e.id = (select id from twice);
select settle.apply_payment('stripe', 'captured', 'pi_second_' || left(md5(id::text), 8), 'ch_second', 20000, 'INR') from twice;
select is((select settle.escrow_owed(o) from public.orders o where o.gateway_order_id = 'pi_second_' || left(md5((select id from twice)::text), 8)),
  20000::bigint, 'a second paid order for a funded engagement is owed back in full');
select is((select status from public.engagements where id = (select id from twice)), 'funded', '... and the engagement is funded once');
select is_empty('select * from settle.ledger_audit()', 'the audit is empty with a second payment waiting to be returned');
select is((settle.escrow_settle(now() + interval '14 days', 1000) ->> 'auto_completed')::int >= 1, true,
  'an engagement the payer never completes completes itself 14 days after funding');
select is((select rating is null and auto_completed and status = 'completed' from public.engagements where id = (select id from twice)),
  true, '... without a rating (no penalty)');

-- Section - disputes, cancellation, who may do what
create temp table disputed as select pg_temp.funded(30000, 'INR', 24) as id;
grant select on disputed to public;
select pg_temp.complete(id, 1) from disputed;
select tests.login('00000000-0000-4000-8000-0000000e5c02');
select throws_ok(format($$select settle.dispute_engagement(%L, 'bad work')$$, (select id from disputed)),
  'ST403', null, 'the payee cannot dispute');
select throws_ok(format($$select settle.complete_engagement(%L, 5)$$, (select id from disputed)),
  'ST403', null, 'the payee cannot complete');
select tests.login('00000000-0000-4000-8000-0000000e5c03');
select throws_ok(format($$select settle.dispute_engagement(%L, 'x')$$, (select id from disputed)),
  'ST404', null, 'a stranger gets 404');
select tests.login('00000000-0000-4000-8000-0000000e5c01');
select lives_ok(format($$select settle.dispute_engagement(%L, 'not what we agreed')$$, (select id from disputed)),
  'the payer disputes before release');
select tests.logout();
select settle.escrow_settle(now() + interval '30 days', 1000);
select is((select status from public.engagements where id = (select id from disputed)), 'disputed',
  'a disputed engagement never settles by time');
select is((settle.resolve_engagement((select id from disputed), 7000) -> 'engagement' ->> 'payee_amount')::bigint,
  18900::bigint, 'resolved at 70 %: the payee gets 21000 less the 10 % fee');
select is((select penalty_amount from public.engagements where id = (select id from disputed)), 9000::bigint,
  '... and 9000 goes back to the payer');

create temp table canceled as select pg_temp.funded(40000, 'INR') as id;
grant select on canceled to public;
select tests.login('00000000-0000-4000-8000-0000000e5c01');
select throws_ok(format($$select settle.cancel_engagement(%L)$$, (select id from canceled)),
  'ST409', null, 'the payer cannot cancel once funded');
select tests.login('00000000-0000-4000-8000-0000000e5c02');
select is((settle.cancel_engagement((select id from canceled)) -> 'engagement' ->> 'status'), 'canceled',
  'the payee cancels a funded engagement');
select tests.logout();
select is((select settle.escrow_owed(o) from public.orders o join public.engagements e on e.funding_order_id = o.id
           where e.id = (select id from canceled)), 40000::bigint, '... and its funding is owed back in full');

-- Section - refunds of escrow orders only through escrow
select tests.login('00000000-0000-4000-8000-0000000e5c01');
select throws_ok(format($$select settle.request_refund(%L, 100, null, null, null)$$,
  (select funding_order_id from public.engagements where id = (select id from canceled))),
  'ST409', null, 'a user''s refund of an escrow order is refused');
select tests.login_service();
select throws_ok(format($$select settle.create_refund(%L, 100, null, null, null, null)$$,
  (select funding_order_id from public.engagements where id = (select id from canceled))),
  'ST409', 'an escrow order is refunded only by cancelling or settling its engagement',
  'an operator''s refund of an escrow order through the API is refused too');

-- Section - RLS and writes
select is((select count(*)::int from public.engagements), (select count(*)::int from cases) + 4,
  'the payer reads every engagement of their account');
select tests.login('00000000-0000-4000-8000-0000000e5c02');
select is((select count(*)::int from public.engagements), (select count(*)::int from cases) + 4,
  'the payee reads them too');
select tests.login('00000000-0000-4000-8000-0000000e5c03');
select is_empty('select id from public.engagements', 'a stranger reads none');
select throws_ok($$update public.engagements set status = 'settled'$$, '42501', null, 'users cannot write engagements');
select tests.login_anon();
select throws_ok('select id from public.engagements', '42501', null, 'anon cannot read engagements');
select tests.logout();

select is_empty('select * from settle.ledger_audit()', 'the audit is empty at the end');

select * from finish();
rollback;
