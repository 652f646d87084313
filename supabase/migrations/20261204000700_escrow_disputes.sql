-- Chargebacks on escrow funding payments (issues 12 x 13): where a dispute's money comes from
-- when the disputed order funds an engagement, what the engagement does meanwhile and after.
--
-- The disputes migration (20261204000200) moves a withdrawal out of the order's "holder" into
-- dispute_held:<payer account>. For an escrow order that holder was revenue:escrow, a house
-- account that holds nothing, while the engagement's escrow account kept the money the gateway
-- took back. Here the holder of an escrow order's disputed money is (docs/decisions.md,
-- "Chargebacks on escrow funding payments"):
--  * the funding order of an engagement not yet settled or canceled: its escrow account, so the
--    escrow holds exactly the funded amount minus what disputes withdrew and did not reinstate;
--  * the funding order of a settled engagement: expense:escrow_chargebacks (the platform bears
--    a chargeback after settlement; the payee keeps its earnings);
--  * anything else (a canceled engagement's funding, a second payment of an engagement): the
--    engagement's refund clearing account, and settle owes the payer that much less.
-- While a chargeback is open (or a dispute still holds money) the engagement neither settles,
-- nor is resolved, nor canceled (409 order_disputed); a dispute that ends with money kept by the
-- gateway ends the engagement (canceled, cancel_reason chargeback_lost): nothing is paid to the
-- payee and what escrow still holds is owed back to the payer (its wallet: the gateway refuses
-- refunds of a charged-back payment).

-- Section - engagements: why one was canceled
alter table public.engagements add column cancel_reason text
  check (cancel_reason in ('requested', 'chargeback_lost'));
update public.engagements set cancel_reason = 'requested' where status = 'canceled';
alter table public.engagements add constraint engagements_cancel_reason_status_check
  check ((status = 'canceled') = (cancel_reason is not null));
comment on column public.engagements.cancel_reason is 'Why a canceled engagement was canceled: requested (the payer before funding, the payee before completion) or chargeback_lost (a dispute on the funding payment ended with money kept by the gateway; nothing was paid to the payee).';

-- Only the chargeback's end takes a completed or disputed engagement to canceled
-- (settle.end_escrow_on_lost_dispute); cancel_engagement keeps its own rule for users.
insert into settle.engagement_transitions values ('completed', 'canceled'), ('disputed', 'canceled');

-- As defined in 20261204000100_engagements.sql, plus cancel_reason.
create or replace function settle.engagement_json(p_e public.engagements) returns jsonb
language sql stable security definer set search_path = ''
as $$
  select jsonb_build_object(
    'id', p_e.id, 'status', p_e.status, 'payer_account_id', p_e.payer_account_id,
    'payee_account_id', p_e.payee_account_id, 'amount', p_e.amount, 'currency', p_e.currency,
    'title', p_e.title, 'reference', p_e.reference, 'hold_hours', p_e.hold_hours,
    'rating', p_e.rating, 'funding_order_id', p_e.funding_order_id, 'funded_at', p_e.funded_at,
    'auto_complete_at', p_e.auto_complete_at, 'completed_at', p_e.completed_at,
    'auto_completed', p_e.auto_completed, 'release_at', p_e.release_at,
    'disputed_at', p_e.disputed_at, 'dispute_reason', p_e.dispute_reason,
    'payee_share_bps', p_e.payee_share_bps, 'platform_fee_bps', p_e.platform_fee_bps,
    'penalty_amount', p_e.penalty_amount, 'fee_amount', p_e.fee_amount,
    'payee_amount', p_e.payee_amount,
    'expected_payee_amount', case
      when p_e.status = 'settled' then p_e.payee_amount
      when p_e.status = 'canceled' then 0
      else (select s.payee from settle.escrow_split(p_e.amount,
              coalesce(p_e.penalty_bps[p_e.rating], 0), p_e.platform_fee_bps) s) end,
    'settled_at', p_e.settled_at, 'canceled_at', p_e.canceled_at,
    'cancel_reason', p_e.cancel_reason, 'created_at', p_e.created_at)
$$;

-- Section - questions about an order's disputes
-- What the gateway holds back of the order's payment now: withdrawn and not reinstated, by
-- open and resolved disputes alike.
create function settle.order_disputed_net(p_order_id uuid) returns bigint
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum(d.amount_withdrawn - d.amount_reinstated), 0)::bigint
  from public.disputes d where d.order_id = p_order_id
$$;

-- A funding payment that keeps its engagement from settling, being resolved or canceled: an
-- open chargeback (settle.order_has_open_dispute), or any dispute still holding money (a
-- Razorpay fraud-phase deduction is not a chargeback, yet the escrow is short by it).
create function settle.escrow_payment_disputed(p_order_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select settle.order_has_open_dispute(p_order_id)
    or exists (select 1 from public.disputes d where d.order_id = p_order_id and d.amount_held > 0)
$$;

-- Section - where a dispute's money comes from
-- The holder of an escrow order's disputed money (the header's three cases), decided under the
-- engagement's row lock, taken here after the order's (held by apply_dispute_event): the order
-- in which a payment funds its engagement. escrow_settle holds both while it settles, so a
-- withdrawal either sees the engagement unsettled (escrow) or settled (the platform's expense).
create function settle.escrow_dispute_holder(p_order public.orders) returns text
language plpgsql security definer set search_path = ''
as $$
declare
  v_e public.engagements;
begin
  select * into v_e from public.engagements where id = p_order.engagement_id for update;
  return case
    when v_e.funding_order_id is distinct from p_order.id or v_e.status = 'canceled'
      then settle.escrow_refund_account(v_e.id)
    when v_e.status = 'settled' then 'expense:escrow_chargebacks'
    else settle.escrow_account(v_e.id) end;
end
$$;

-- The ledger entry (without currency and amount) of an order's holder: the wallet for a
-- top-up, the escrow holder for an escrow order, revenue:<purpose> for a plan or product.
create function settle.dispute_holder(p_order public.orders) returns jsonb
language sql security definer set search_path = ''
as $$
  select case p_order.purpose
    when 'wallet_topup' then jsonb_build_object('wallet_id', settle.ensure_wallet(p_order.account_id, p_order.currency))
    when 'escrow' then jsonb_build_object('system_account', settle.escrow_dispute_holder(p_order))
    else jsonb_build_object('system_account', 'revenue:' || p_order.purpose) end
$$;

-- post_dispute_withdrawal as defined in 20261204000200_disputes.sql, except that a holder
-- other than a wallet comes from settle.dispute_holder (an escrow order's escrow account,
-- refund clearing or expense:escrow_chargebacks instead of revenue:escrow).
create or replace function settle.post_dispute_withdrawal(d public.disputes, p_order public.orders, p_amount bigint)
returns public.disputes
language plpgsql security definer set search_path = ''
as $$
declare
  v_shortfall bigint := 0;
  v_wallet public.wallets;
  v_entries jsonb := '[]'::jsonb;
begin
  if p_order.purpose = 'wallet_topup' then
    select * into v_wallet from public.wallets
    where account_id = p_order.account_id and currency = p_order.currency;
    v_shortfall := greatest(0, p_amount - v_wallet.balance);
    if p_amount - v_shortfall > 0 then
      v_entries := jsonb_build_array(jsonb_build_object('wallet_id', v_wallet.id,
        'currency', p_order.currency, 'amount', -(p_amount - v_shortfall)));
    end if;
    if v_shortfall > 0 then
      v_entries := v_entries || jsonb_build_array(jsonb_build_object(
        'system_account', 'receivable:dispute_shortfall', 'currency', p_order.currency,
        'amount', -v_shortfall));
    end if;
  else
    v_entries := jsonb_build_array(settle.dispute_holder(p_order) || jsonb_build_object(
      'currency', p_order.currency, 'amount', -p_amount));
  end if;
  perform settle.post_transaction('dispute_withdrawal',
    format('dispute_withdrawal:%s:%s', d.id, d.amount_withdrawn + p_amount), p_order.id,
    'dispute: funds withdrawn by ' || d.gateway,
    v_entries || jsonb_build_array(jsonb_build_object(
      'system_account', settle.dispute_held_account(d.account_id),
      'currency', p_order.currency, 'amount', p_amount)));
  d.amount_withdrawn := d.amount_withdrawn + p_amount;
  d.shortfall := d.shortfall + v_shortfall;
  d.funds_withdrawn_at := coalesce(d.funds_withdrawn_at, now());
  -- The shortfall is stored now: a reinstatement in the same event credits the wallet, and
  -- settle.cover_dispute_shortfall looks it up (the other columns wait for store_dispute, so
  -- the row never shows held money under a final status).
  update public.disputes set shortfall = d.shortfall where id = d.id;
  return d;
end
$$;

-- post_dispute_reinstatement as defined in 20261204000200_disputes.sql, except that the money
-- goes to settle.dispute_holder's entry; money back in an engagement's refund clearing is owed
-- to the payer again, so the order is queued to be returned.
create or replace function settle.post_dispute_reinstatement(d public.disputes, p_order public.orders, p_amount bigint)
returns public.disputes
language plpgsql security definer set search_path = ''
as $$
declare
  v_from_held bigint := least(p_amount, d.amount_withdrawn - d.amount_reinstated - d.amount_lost);
  v_holder jsonb := settle.dispute_holder(p_order);
  v_entries jsonb := '[]'::jsonb;
begin
  if v_from_held > 0 then
    v_entries := jsonb_build_array(jsonb_build_object(
      'system_account', settle.dispute_held_account(d.account_id),
      'currency', p_order.currency, 'amount', -v_from_held));
  end if;
  if p_amount - v_from_held > 0 then
    v_entries := v_entries || jsonb_build_array(jsonb_build_object(
      'system_account', 'gateway:' || d.gateway, 'currency', p_order.currency,
      'amount', -(p_amount - v_from_held)));
  end if;
  perform settle.post_transaction('dispute_reinstatement',
    format('dispute_reinstatement:%s:%s', d.id, d.amount_reinstated + p_amount),
    p_order.id, 'dispute: funds reinstated by ' || d.gateway,
    v_entries || jsonb_build_array(v_holder
      || jsonb_build_object('currency', p_order.currency, 'amount', p_amount)));
  if v_holder ->> 'system_account' like 'escrow\_refund:%' then
    perform settle.enqueue_escrow_refund(p_order.id);
  end if;
  d.amount_reinstated := d.amount_reinstated + p_amount;
  d.amount_lost := d.amount_lost - (p_amount - v_from_held);
  -- The credit may have repaid part of the shortfall (the trigger updated the row).
  select shortfall_covered into d.shortfall_covered from public.disputes where id = d.id;
  return d;
end
$$;

-- Section - a lost chargeback ends the engagement
-- A dispute on an unsettled engagement's funding payment became final with money the gateway
-- keeps: the escrow no longer holds the agreed amount, so the engagement ends (canceled,
-- chargeback_lost) and nothing is paid to the payee. What escrow still holds (a partial
-- chargeback) moves to refund clearing and is owed back to the payer. Runs in
-- apply_dispute_event's transaction, under the order's lock, then the engagement's.
create function settle.end_escrow_on_lost_dispute() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
  v_e public.engagements;
  v_rest bigint;
begin
  select * into v_order from public.orders where id = new.order_id;
  if v_order.purpose is distinct from 'escrow' then
    return null;
  end if;
  select * into v_e from public.engagements where id = v_order.engagement_id for update;
  if v_e.funding_order_id is distinct from v_order.id
     or v_e.status not in ('funded', 'completed', 'disputed') then
    return null;
  end if;
  update public.engagements set status = 'canceled', canceled_at = now(), cancel_reason = 'chargeback_lost'
  where id = v_e.id;
  v_rest := v_e.amount - settle.order_disputed_net(v_order.id);
  if v_rest <> 0 then
    perform settle.post_transaction('escrow_refund', 'escrow_cancel:' || v_e.id, v_order.id,
      'escrow returned: the funding payment was charged back',
      jsonb_build_array(
        jsonb_build_object('system_account', settle.escrow_account(v_e.id), 'currency', v_e.currency,
          'amount', -v_rest),
        jsonb_build_object('system_account', settle.escrow_refund_account(v_e.id),
          'currency', v_e.currency, 'amount', v_rest)));
    perform settle.enqueue_escrow_refund(v_order.id);
  end if;
  return null;
end
$$;
create trigger disputes_end_escrow after update of amount_lost on public.disputes
  for each row when (new.amount_lost > old.amount_lost and new.status in ('won', 'lost', 'closed'))
  execute function settle.end_escrow_on_lost_dispute();

-- Money owed back to the payer waits while the payment is disputed (escrow_return_owed puts
-- the order back 10 minutes each time); when the dispute is resolved the order is due at once.
create function settle.release_escrow_return() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update settle.escrow_refund_queue set next_attempt_at = now()
  where order_id = new.order_id and next_attempt_at > now();
  return null;
end
$$;
create trigger disputes_release_escrow_return after update of status on public.disputes
  for each row when (new.status in ('won', 'lost', 'closed') and old.status not in ('won', 'lost', 'closed'))
  execute function settle.release_escrow_return();

-- Section - what is owed back to payers
-- escrow_owed as defined in 20261204000110_escrow_settlement.sql, except that money a dispute
-- took back (settle.order_disputed_net) from a payment that is owed back in full (a canceled
-- engagement's funding, a second payment) is no longer owed: the payer's bank gave it back. An
-- unsettled engagement's funding owes nothing (its disputes' money is the escrow's); a settled
-- one owes its penalty (a chargeback after settlement is the platform's, not the payer's debt).
create or replace function settle.escrow_owed(p_order public.orders) returns bigint
language sql stable security definer set search_path = ''
as $$
  select case when p_order.status not in ('paid', 'partially_refunded', 'refunded') then 0::bigint
    else (select case when e.funding_order_id is distinct from p_order.id or e.status = 'canceled'
                        then p_order.amount - settle.order_disputed_net(p_order.id)
                      when e.status = 'settled' then e.penalty_amount
                      else 0 end
          from public.engagements e where e.id = p_order.engagement_id)
      - p_order.amount_refunded
      - coalesce((select sum(r.amount) from settle.escrow_wallet_returns r where r.order_id = p_order.id), 0)
    end::bigint
$$;

-- escrow_return_owed as defined in 20261204000110_escrow_settlement.sql, with two dispute
-- rules before anything moves: while the payment is disputed (settle.escrow_payment_disputed)
-- nothing is returned and the order waits 10 minutes ({"waiting": true}; the gateways refuse
-- refunds of a charged-back payment, and the outcome changes what is owed); after a dispute
-- kept money (lost, or a deduction on a win) the whole owed amount goes to the payer's wallet,
-- since no refund of that payment will be accepted. Returns {"refund", "wallet_credit", "owed"}.
create or replace function settle.escrow_return_owed(p_order_id uuid, p_expected bigint, p_refund_amount bigint)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
  v_e public.engagements;
  v_owed bigint;
  v_amount bigint := p_refund_amount;
  v_refund public.refunds;
  v_return uuid;
begin
  select * into v_order from public.orders where id = p_order_id and purpose = 'escrow' for update;
  if v_order.id is null then
    perform settle.fail(404, 'not_found', 'escrow order not found');
  end if;
  v_owed := settle.escrow_owed(v_order);
  if v_owed <= 0 then
    delete from settle.escrow_refund_queue where order_id = p_order_id;
    return jsonb_build_object('refund', null, 'wallet_credit', 0, 'owed', v_owed);
  elsif v_owed is distinct from p_expected then
    return jsonb_build_object('changed', true, 'owed', v_owed);
  elsif v_amount is null or v_amount < 0 or v_amount > v_owed then
    perform settle.fail(400, 'invalid_request', format('the refund must be between 0 and %s', v_owed));
  elsif settle.escrow_payment_disputed(v_order.id) then
    update settle.escrow_refund_queue set next_attempt_at = now() + interval '10 minutes'
    where order_id = p_order_id;
    return jsonb_build_object('waiting', true, 'owed', v_owed);
  elsif exists (select 1 from public.disputes d where d.order_id = v_order.id and d.amount_lost > 0) then
    v_amount := 0;
  end if;
  select * into v_e from public.engagements where id = v_order.engagement_id;
  if v_amount > 0 then
    perform set_config('settle.escrow_refund', 'on', true);
    v_refund := settle.insert_refund(v_order, v_amount, 'pending', 'api',
      case when v_e.funding_order_id is distinct from v_order.id then 'escrow: a second payment returned'
           when v_e.status = 'canceled' then 'escrow: engagement canceled'
           else 'escrow: penalty for rating ' || coalesce(v_e.rating::text, 'none') end,
      null, null, null, null);
    perform set_config('settle.escrow_refund', 'off', true);
  end if;
  if v_amount < v_owed then
    insert into settle.escrow_wallet_returns (order_id, amount) values (v_order.id, v_owed - v_amount)
    returning id into v_return;
    perform settle.post_transaction('escrow_refund', 'escrow_wallet_return:' || v_return, v_order.id,
      'escrow returned to the wallet (not refundable at the gateway)',
      jsonb_build_array(
        jsonb_build_object('system_account', settle.escrow_refund_account(v_e.id),
          'currency', v_order.currency, 'amount', -(v_owed - v_amount)),
        jsonb_build_object('wallet_id', settle.ensure_wallet(v_order.account_id, v_order.currency),
          'currency', v_order.currency, 'amount', v_owed - v_amount)));
  end if;
  delete from settle.escrow_refund_queue where order_id = p_order_id;
  return jsonb_build_object('refund', case when v_refund.id is null then null else to_jsonb(v_refund) end,
    'wallet_credit', v_owed - v_amount, 'owed', v_owed);
end
$$;

-- Section - settlement, resolution and cancellation wait for the chargeback
-- escrow_settle as defined in 20261204000110_escrow_settlement.sql, except the claim: it takes
-- the funding order's KEY SHARE lock beside the engagement's row lock, both SKIP LOCKED. A
-- dispute event holds the order's row lock while it decides where the money comes from, so an
-- engagement is either claimed before the event (settled; the withdrawal then comes from the
-- platform's expense) or after it (skipped while the payment is disputed), never in between,
-- and the settlement's postings (which reference the order) never wait for a dispute that
-- waits for the engagement. Skipped too: a dispute still holding money.
create or replace function settle.escrow_settle(p_now timestamptz default now(), p_limit integer default 100)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_e public.engagements;
  v_claimed integer := 0;
  v_settled integer := 0;
  v_skipped integer := 0;
  v_auto integer := 0;
begin
  if p_now is null or p_limit is null or p_limit not between 1 and 1000 then
    perform settle.fail(400, 'invalid_request', 'now is required and limit must be between 1 and 1000');
  end if;
  for v_e in
    select * from public.engagements e
    where e.status = 'funded' and e.auto_complete_at <= p_now
    order by e.auto_complete_at, e.id limit p_limit
    for update skip locked
  loop
    update public.engagements
    set status = 'completed', completed_at = p_now, auto_completed = true,
        release_at = p_now + make_interval(hours => hold_hours)
    where id = v_e.id;
    v_auto := v_auto + 1;
  end loop;
  for v_e in
    select e.* from public.engagements e join public.orders o on o.id = e.funding_order_id
    where e.status = 'completed' and e.release_at <= p_now
    order by settle.escrow_payment_disputed(e.funding_order_id), e.release_at, e.id
    limit p_limit
    for update of e skip locked
    for key share of o skip locked
  loop
    v_claimed := v_claimed + 1;
    if settle.escrow_payment_disputed(v_e.funding_order_id)
       or exists (select 1 from public.orders o where o.id = v_e.funding_order_id and o.amount_refunded > 0) then
      v_skipped := v_skipped + 1;
      continue;
    end if;
    perform settle.settle_engagement(v_e, coalesce(v_e.penalty_bps[v_e.rating], 0), null, p_now);
    v_settled := v_settled + 1;
  end loop;
  return jsonb_build_object('claimed', v_claimed, 'settled', v_settled, 'skipped', v_skipped,
    'auto_completed', v_auto);
end
$$;

-- The funding order's KEY SHARE lock, taken before the engagement's by the user and operator
-- actions that post against the order (same order as escrow_settle's claim and as a dispute
-- event: order, then engagement).
create function settle.lock_funding_order(p_engagement_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform 1 from public.orders o
  where o.id = (select e.funding_order_id from public.engagements e where e.id = p_engagement_id)
  for key share of o;
end
$$;

-- resolve_engagement as defined in 20261204000110_escrow_settlement.sql, with the funding
-- order locked first (settle.lock_funding_order) and settle.escrow_payment_disputed as the
-- chargeback check (a dispute still holding money also waits).
create or replace function settle.resolve_engagement(p_engagement_id uuid, p_payee_share_bps integer) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_e public.engagements;
begin
  if p_payee_share_bps is null or p_payee_share_bps not between 0 and 10000 then
    perform settle.fail(400, 'invalid_request', 'payee_share_bps must be an integer from 0 to 10000');
  end if;
  perform settle.lock_funding_order(p_engagement_id);
  select * into v_e from public.engagements where id = p_engagement_id for update;
  if v_e.id is null then
    perform settle.fail(404, 'not_found', 'engagement not found');
  end if;
  if v_e.status <> 'disputed' then
    perform settle.engagement_state_error(v_e, 'resolved');
  end if;
  if settle.escrow_payment_disputed(v_e.funding_order_id) then
    perform settle.fail(409, 'invalid_engagement_state',
      format('engagement %s: its funding payment has an open chargeback', v_e.id));
  end if;
  v_e := settle.settle_engagement(v_e, 10000 - p_payee_share_bps, p_payee_share_bps, now());
  return jsonb_build_object('engagement', settle.engagement_json(v_e));
end
$$;

-- cancel_engagement as defined in 20261204000100_engagements.sql, with the funding order locked
-- first, a funded engagement whose payment is disputed refused (409 order_disputed: its refund
-- would be refused, and the outcome decides what is owed), and cancel_reason 'requested'.
create or replace function settle.cancel_engagement(p_engagement_id uuid) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v record;
  v_e public.engagements;
begin
  perform settle.lock_funding_order(p_engagement_id);
  v := settle.lock_engagement(p_engagement_id);
  v_e := v.engagement;
  if not (v_e.status = 'awaiting_payment' or (v_e.status = 'funded' and v.is_payee)) then
    perform settle.fail(409, 'invalid_engagement_state', format(
      'engagement %s is %s: the payer cancels before funding, the payee before completion',
      v_e.id, v_e.status));
  end if;
  if v_e.funding_order_id is not null and settle.escrow_payment_disputed(v_e.funding_order_id) then
    perform settle.fail(409, 'order_disputed', format(
      'engagement %s: its funding payment has an open chargeback; it can be canceled once the dispute is resolved',
      v_e.id));
  end if;
  update public.engagements set status = 'canceled', canceled_at = now(), cancel_reason = 'requested'
  where id = v_e.id returning * into v_e;
  if v_e.funding_order_id is not null then
    perform settle.post_transaction('escrow_refund', 'escrow_cancel:' || v_e.id, v_e.funding_order_id,
      'escrow returned on cancellation',
      jsonb_build_array(
        jsonb_build_object('system_account', settle.escrow_account(v_e.id), 'currency', v_e.currency,
          'amount', -v_e.amount),
        jsonb_build_object('system_account', settle.escrow_refund_account(v_e.id),
          'currency', v_e.currency, 'amount', v_e.amount)));
    perform settle.enqueue_escrow_refund(v_e.funding_order_id);
  end if;
  return jsonb_build_object('engagement', settle.engagement_json(v_e));
end
$$;

-- Section - ledger audit
-- ledger_audit_escrow as defined in 20261204000110_escrow_settlement.sql, with the escrow
-- account's expectation counting disputes (an unsettled engagement's escrow holds its amount
-- minus what disputes on its funding payment withdrew and did not reinstate) and two checks
-- added: expense:escrow_chargebacks holds exactly what disputes took from settled engagements'
-- funding payments, and nothing posts to revenue:escrow (the holder disputes used before this
-- migration). One query of unioned invariants, so longer than 70 lines, like the original.
create or replace function settle.ledger_audit_escrow()
returns table (invariant text, subject text, detail text)
language sql stable security definer set search_path = ''
as $$
  with escrow_ledger as (
    select e.system_account, e.currency, sum(e.amount) as total from public.ledger_entries e
    where e.system_account like 'escrow:%' group by 1, 2
  ), escrow_expected as (
    select settle.escrow_account(g.id) as system_account, g.currency, g.id,
      case when g.status in ('funded', 'completed', 'disputed')
        then g.amount - settle.order_disputed_net(g.funding_order_id) else 0 end as total
    from public.engagements g
  ), refund_ledger as (
    select e.system_account, e.currency, sum(e.amount) as total from public.ledger_entries e
    where e.system_account like 'escrow\_refund:%' group by 1, 2
  ), refund_expected as (
    select settle.escrow_refund_account(o.engagement_id) as system_account, o.currency,
      sum(settle.escrow_owed(o)) as total
    from public.orders o where o.purpose = 'escrow' group by 1, 2
  ), chargeback_ledger as (
    select e.currency, -sum(e.amount) as total from public.ledger_entries e
    where e.system_account = 'expense:escrow_chargebacks' group by 1
  ), chargeback_expected as (
    select g.currency, sum(settle.order_disputed_net(g.funding_order_id)) as total
    from public.engagements g where g.status = 'settled' group by 1
  )
  select 'escrow_account_drift', coalesce(x.id::text, l.system_account || ' ' || l.currency),
    format('escrow account holds %s, the engagement expects %s', coalesce(l.total, 0), coalesce(x.total, 0))
  from escrow_ledger l full join escrow_expected x
    on x.system_account = l.system_account and x.currency = l.currency
  where coalesce(l.total, 0) <> coalesce(x.total, 0)
  union all
  select 'escrow_refund_drift', coalesce(x.system_account, l.system_account) || ' ' || coalesce(x.currency, l.currency),
    format('refund clearing holds %s, owed back and not yet refunded %s', coalesce(l.total, 0), coalesce(x.total, 0))
  from refund_ledger l full join refund_expected x
    on x.system_account = l.system_account and x.currency = l.currency
  where coalesce(l.total, 0) <> coalesce(x.total, 0)
  union all
  select 'escrow_over_refunded', o.id::text,
    format('order %s gave back %s more than it owed', o.id, -settle.escrow_owed(o))
  from public.orders o where o.purpose = 'escrow' and settle.escrow_owed(o) < 0
  union all
  select 'escrow_split_mismatch', g.id::text,
    format('penalty %s + fee %s + payee %s of %s %s (formula: %s, %s, %s)', g.penalty_amount,
      g.fee_amount, g.payee_amount, g.amount, g.currency, s.penalty, s.fee, s.payee)
  from public.engagements g
  cross join lateral settle.escrow_split(g.amount,
    coalesce(10000 - g.payee_share_bps, g.penalty_bps[g.rating], 0), g.platform_fee_bps) s
  where g.status = 'settled' and (g.penalty_amount + g.fee_amount + g.payee_amount <> g.amount
    or (g.penalty_amount, g.fee_amount, g.payee_amount) <> (s.penalty, s.fee, s.payee))
  union all
  select 'escrow_settlement_not_posted', g.id::text,
    format('status %s, payee_amount %s; %s settlement postings credited the payee wallet %s',
      g.status, g.payee_amount, count(distinct t.id), coalesce(sum(e.amount) filter (where e.wallet_id is not null), 0))
  from public.engagements g
  left join public.ledger_transactions t on t.idempotency_key = 'escrow_settlement:' || g.id
  left join public.ledger_entries e on e.transaction_id = t.id
  group by g.id
  having (g.status = 'settled') <> (count(distinct t.id) = 1)
    or coalesce(sum(e.amount) filter (where e.wallet_id is not null), 0) <> coalesce(g.payee_amount, 0)
  union all
  select 'escrow_chargeback_drift', coalesce(l.currency, x.currency),
    format('expense:escrow_chargebacks %s, disputes on settled engagements hold back %s',
      coalesce(l.total, 0), coalesce(x.total, 0))
  from chargeback_ledger l full join chargeback_expected x on x.currency = l.currency
  where coalesce(l.total, 0) <> coalesce(x.total, 0)
  union all
  select 'escrow_dispute_misposted', e.currency,
    format('revenue:escrow has %s entries summing to %s', count(*), sum(e.amount))
  from public.ledger_entries e where e.system_account = 'revenue:escrow'
  group by e.currency
$$;

-- Section - privileges
revoke execute on function settle.order_disputed_net(uuid), settle.escrow_payment_disputed(uuid),
  settle.escrow_dispute_holder(public.orders), settle.dispute_holder(public.orders),
  settle.end_escrow_on_lost_dispute(), settle.release_escrow_return(), settle.lock_funding_order(uuid)
  from public, anon, authenticated;
