-- Chargebacks on escrow funding payments (issues 12 x 13): where a dispute's money comes from
-- when the disputed order funds an engagement, and what the engagement does meanwhile and after.
--
-- A dispute moves a withdrawal out of the order's "holder" into dispute_held:<payer account>
-- (disputes file). The holder of an escrow order's disputed money is (docs/decisions.md,
-- "Chargebacks on escrow funding payments"):
--  * the funding order of an engagement not yet settled or canceled: its escrow account, so the
--    escrow holds exactly the funded amount minus what disputes withdrew and did not reinstate;
--  * the funding order of a settled engagement: expense:escrow_chargebacks (the platform bears
--    a chargeback after settlement; the payee keeps its earnings);
--  * anything else (a canceled engagement's funding, a second payment of an engagement): the
--    engagement's refund clearing account, and settle owes the payer that much less.
-- Never revenue:escrow, a house account that holds nothing (the escrow audit checks it stays
-- empty). While a chargeback is open (or a dispute still holds money) the engagement neither
-- settles, nor is resolved, nor canceled (409 order_disputed; escrow file); a dispute that ends
-- with money kept by the gateway ends the engagement (canceled, cancel_reason chargeback_lost):
-- nothing is paid to the payee and what escrow still holds is owed back to the payer (its
-- wallet: the gateway refuses refunds of a charged-back payment).

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

-- Section - privileges
-- Called by the dispute functions and triggers only (as their owner): no grants.
revoke execute on all functions in schema settle from public;
