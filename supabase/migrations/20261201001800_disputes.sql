-- Disputes and chargebacks (issue 13): a buyer's bank takes a paid payment's money back.
--
-- One row per gateway dispute (public.disputes), linked to its order through the gateway
-- payment id, never by amount. Every dispute event (webhook or reconcile's read) goes through
-- settle.apply_dispute_event, which merges what the event says into the row under the order's
-- lock and then moves the ledger to what the merged row says:
--  * state from the gateway's status, kept monotone by a rank (phase, then status), so a late
--    charge.dispute.created after .closed changes nothing;
--  * money from what the gateway says it moved (the wire code reads Stripe's balance
--    transactions / dispute status, Razorpay's amount_deducted, what PayPal holds and keeps):
--    amount_withdrawn and amount_reinstated only grow, and the ledger posts the difference to
--    what was posted;
--  * when the dispute is final, what is still held is the gateway's for good.
-- Ledger accounts (docs/decisions.md, "Disputes"):
--  * dispute_held:<account id without dashes>: what the gateway withdrew from the account's
--    money (its wallet for a top-up, revenue:<purpose> for a plan or product; for an escrow
--    order see the escrow_chargebacks file) while the outcome is open; it goes back to the
--    holder on a reinstatement and to gateway:<gw> when lost;
--  * receivable:dispute_shortfall: the part a wallet could not cover, owed by the account; its
--    spending of that currency is blocked until later credits to the wallet repay it;
--  * expense:dispute_fees: the gateway's dispute fees (exactly the balance transactions' fee).

-- Section - table
create table public.disputes (
  id uuid primary key default gen_random_uuid(),
  gateway text not null check (gateway in ('razorpay', 'stripe', 'paypal')),
  gateway_dispute_id text not null check (length(gateway_dispute_id) between 1 and 255),
  gateway_payment_id text not null check (length(gateway_payment_id) between 1 and 255),
  order_id uuid not null references public.orders (id) on delete restrict,
  account_id uuid not null references public.accounts (id) on delete restrict,
  amount bigint not null check (amount > 0 and amount <= 100000000000),
  currency text not null references public.currencies (code),
  reason text check (length(reason) <= 200),
  status text not null check (status in ('open', 'under_review', 'won', 'lost', 'closed')),
  phase text not null check (phase in (
    'early_warning', 'inquiry', 'retrieval', 'fraud', 'chargeback', 'pre_arbitration', 'arbitration'
  )),
  gateway_status text not null check (length(gateway_status) between 1 and 100),
  evidence_due_by timestamptz,
  amount_withdrawn bigint not null default 0 check (amount_withdrawn >= 0),
  amount_reinstated bigint not null default 0
    check (amount_reinstated between 0 and amount_withdrawn),
  amount_lost bigint not null default 0 check (amount_lost >= 0),
  amount_held bigint generated always as (amount_withdrawn - amount_reinstated - amount_lost) stored
    check (amount_held >= 0),
  fee bigint not null default 0,
  fee_currency text references public.currencies (code),
  shortfall bigint not null default 0 check (shortfall >= 0),
  shortfall_covered bigint not null default 0 check (shortfall_covered between 0 and shortfall),
  entitlement text check (entitlement in ('suspended', 'ended', 'restored')),
  gateway_created_at timestamptz,
  last_event_at timestamptz,
  funds_withdrawn_at timestamptz,
  resolved_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (gateway, gateway_dispute_id),
  check ((status in ('won', 'lost', 'closed')) = (resolved_at is not null)),
  check (status not in ('won', 'lost', 'closed') or amount_held = 0)
);
alter table public.disputes enable row level security;
create index disputes_order_id_idx on public.disputes (order_id);
create index disputes_account_id_created_at_idx on public.disputes (account_id, created_at desc);
create index disputes_open_due_idx on public.disputes (evidence_due_by)
  where status in ('open', 'under_review');
create index disputes_owed_idx on public.disputes (account_id, currency)
  where shortfall > shortfall_covered;
comment on table public.disputes is 'Chargebacks, inquiries and early fraud warnings on paid orders, one row per gateway dispute. Written only by settle.apply_dispute_event (webhooks, reconcile).';
comment on column public.disputes.amount_withdrawn is 'Minor units the gateway took for this dispute so far (never decreases).';
comment on column public.disputes.amount_reinstated is 'Minor units the gateway gave back (won, or the refunded part of a partial win).';
comment on column public.disputes.amount_lost is 'Minor units the gateway kept for good (moved from dispute_held to gateway:<gw> when the dispute became final).';
comment on column public.disputes.amount_held is 'What dispute_held:<account> holds for this dispute: withdrawn while the outcome is open; 0 once final.';
comment on column public.disputes.shortfall is 'The part of the withdrawal the wallet could not cover, advanced by receivable:dispute_shortfall; the account''s spending in currency is blocked until shortfall_covered reaches it.';
comment on column public.disputes.fee is 'Net dispute fees the gateway charged (its balance transactions'' fee), in fee_currency; booked to expense:dispute_fees.';
comment on column public.disputes.entitlement is 'A plan order''s entitlement: suspended while funds are withdrawn (plans.dispute_policy suspend), ended when lost, restored when won.';

create policy "Members can read their accounts' disputes" on public.disputes
  for select to authenticated using (settle.is_member(account_id));

create trigger disputes_touch before update on public.disputes
  for each row execute function settle.touch_updated_at();

-- Section - vocabulary helpers
create function settle.dispute_held_account(p_account_id uuid) returns text
language sql immutable set search_path = ''
as $$
  select 'dispute_held:' || replace(p_account_id::text, '-', '')
$$;

create function settle.dispute_final(p_status text) returns boolean
language sql immutable set search_path = ''
as $$ select p_status in ('won', 'lost', 'closed') $$;

-- The order in which a dispute's states follow each other: the phase first (an inquiry can
-- become a chargeback, a won chargeback a pre-arbitration), then the status within it.
create function settle.dispute_rank(p_phase text, p_status text) returns integer
language sql immutable set search_path = ''
as $$
  select 10 * case p_phase when 'chargeback' then 1 when 'pre_arbitration' then 2
                           when 'arbitration' then 3 else 0 end
    + case p_status when 'open' then 1 when 'under_review' then 2 else 3 end
$$;

create function settle.dispute_json(p_dispute public.disputes) returns jsonb
language sql stable set search_path = ''
as $$
  select jsonb_build_object(
    'id', p_dispute.id, 'order_id', p_dispute.order_id, 'account_id', p_dispute.account_id,
    'gateway', p_dispute.gateway, 'gateway_dispute_id', p_dispute.gateway_dispute_id,
    'gateway_payment_id', p_dispute.gateway_payment_id, 'amount', p_dispute.amount,
    'currency', p_dispute.currency, 'reason', p_dispute.reason, 'status', p_dispute.status,
    'phase', p_dispute.phase, 'evidence_due_by', p_dispute.evidence_due_by,
    'amount_withdrawn', p_dispute.amount_withdrawn, 'amount_reinstated', p_dispute.amount_reinstated,
    'amount_lost', p_dispute.amount_lost, 'fee', p_dispute.fee, 'fee_currency', p_dispute.fee_currency,
    'shortfall', p_dispute.shortfall, 'created_at', p_dispute.created_at,
    'resolved_at', p_dispute.resolved_at)
$$;

-- Section - the questions other areas ask
-- A chargeback (not an inquiry, retrieval, fraud-phase case or early warning: those are settled
-- by a refund) that is not resolved yet. Escrow settlement and refunds wait for it.
create function settle.order_has_open_dispute(p_order_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.disputes d
    where d.order_id = p_order_id and d.status in ('open', 'under_review')
      and d.phase in ('chargeback', 'pre_arbitration', 'arbitration'))
$$;
comment on function settle.order_has_open_dispute(uuid) is 'True while a chargeback on the order''s payment is open (funds withdrawn or not): escrow settlement and refunds wait for it.';

create function settle.spending_blocked(p_account_id uuid, p_currency text) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.disputes d
    where d.account_id = p_account_id and d.currency = p_currency
      and d.shortfall > d.shortfall_covered)
$$;
comment on function settle.spending_blocked(uuid, text) is 'True while the account owes the platform a dispute shortfall in the currency: its wallet may not be spent or paid out in it.';

-- What the gateway holds back of the order's payment now: withdrawn and not reinstated, by
-- open and resolved disputes alike (escrow counts it against what its funding holds and owes).
create function settle.order_disputed_net(p_order_id uuid) returns bigint
language sql stable security definer set search_path = ''
as $$
  select coalesce(sum(d.amount_withdrawn - d.amount_reinstated), 0)::bigint
  from public.disputes d where d.order_id = p_order_id
$$;

-- Section - applying a dispute event
-- p_effect (built by shared/gateways/<gw>/wire.ts): {"action": "dispute", "gateway_dispute_id",
-- "gateway_payment_id", "gateway_order_id"?, "amount"?, "currency"?, "reason"?, "status",
-- "phase", "gateway_status", "evidence_due_by"? (unix s), "created"? (unix s), "occurred_at"
-- (unix s), "withdrawn" / "reinstated" (minor units the event proves moved so far),
-- "balance_transactions"? [{"id", "fee", "currency"}]}.
create function settle.dispute_order(p_gateway text, p_effect jsonb) returns public.orders
language sql stable security definer set search_path = ''
as $$
  select o.* from public.orders o
  where o.gateway = p_gateway
    and (o.gateway_payment_id = p_effect ->> 'gateway_payment_id'
         or o.gateway_order_id = p_effect ->> 'gateway_order_id')
  order by (o.gateway_payment_id = p_effect ->> 'gateway_payment_id') desc nulls last
  limit 1
$$;

create function settle.apply_dispute_event(p_gateway text, p_effect jsonb) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders := settle.dispute_order(p_gateway, p_effect);
  v_before public.disputes;
  v_dispute public.disputes;
begin
  if v_order.id is null then
    return jsonb_build_object('outcome', 'ignored', 'detail', 'a dispute on a payment settle does not know');
  end if;
  -- The order's lock first (as payments and refunds take it), then the wallet's, then the
  -- dispute's: the refund guard and the wallet's credits see the dispute before or after.
  select * into v_order from public.orders where id = v_order.id for update;
  if v_order.status not in ('paid', 'partially_refunded', 'refunded') then
    return jsonb_build_object('outcome', 'failed', 'order_id', v_order.id,
      'detail', format('order %s is %s: the dispute waits until settle counts its payment', v_order.id, v_order.status));
  end if;
  if upper(coalesce(p_effect ->> 'currency', v_order.currency)) <> v_order.currency then
    return jsonb_build_object('outcome', 'mismatch', 'order_id', v_order.id,
      'detail', format('dispute in %s on an order in %s', p_effect ->> 'currency', v_order.currency));
  end if;
  if v_order.purpose = 'wallet_topup' then
    perform 1 from public.wallets
    where id = settle.ensure_wallet(v_order.account_id, v_order.currency) for update;
  end if;
  v_before := settle.upsert_dispute(p_gateway, v_order, p_effect);
  v_dispute := settle.post_dispute_money(settle.merged_dispute(v_before, p_effect), v_order, p_effect);
  v_dispute := settle.store_dispute(v_dispute);
  perform settle.post_dispute_fees(v_dispute, p_effect -> 'balance_transactions');
  select * into v_dispute from public.disputes where id = v_dispute.id;
  v_dispute := settle.apply_dispute_effects(v_dispute, v_order);
  perform settle.emit_dispute_events(v_before, v_dispute);
  return jsonb_build_object('order_id', v_order.id, 'dispute_id', v_dispute.id,
    'outcome', case when v_before.last_event_at is not null
      and to_jsonb(v_dispute) - 'updated_at' - 'last_event_at' = to_jsonb(v_before) - 'updated_at' - 'last_event_at'
      then 'no_effect' else 'applied' end);
end
$$;

-- The dispute row, locked; a placeholder (last_event_at null) when this is the first event
-- settle sees of it, which the merge then fills in, whatever state that event is in.
create function settle.upsert_dispute(p_gateway text, p_order public.orders, p_effect jsonb)
returns public.disputes
language plpgsql security definer set search_path = ''
as $$
declare
  v_dispute public.disputes;
begin
  insert into public.disputes (gateway, gateway_dispute_id, gateway_payment_id, order_id,
    account_id, amount, currency, status, phase, gateway_status)
  values (p_gateway, p_effect ->> 'gateway_dispute_id',
    coalesce(p_effect ->> 'gateway_payment_id', p_order.gateway_payment_id), p_order.id,
    p_order.account_id, coalesce((p_effect ->> 'amount')::bigint, p_order.amount), p_order.currency,
    'open', 'early_warning', 'unknown')
  on conflict (gateway, gateway_dispute_id) do nothing;
  select * into v_dispute from public.disputes
  where gateway = p_gateway and gateway_dispute_id = p_effect ->> 'gateway_dispute_id' for update;
  if v_dispute.order_id <> p_order.id then
    perform settle.fail(409, 'conflict', format('dispute %s belongs to order %s, not %s',
      v_dispute.gateway_dispute_id, v_dispute.order_id, p_order.id));
  end if;
  return v_dispute;
end
$$;

-- What the event says, merged into the row (in memory): the state only moves up in rank (a
-- newer event of the same rank updates the details); the money is merged by post_dispute_money.
create function settle.merged_dispute(p_dispute public.disputes, p_effect jsonb)
returns public.disputes
language plpgsql stable set search_path = ''
as $$
declare
  v_at timestamptz := to_timestamp((p_effect ->> 'occurred_at')::double precision);
  v_status text := p_effect ->> 'status';
  v_phase text := coalesce(p_effect ->> 'phase', 'chargeback');
  v_rank integer := settle.dispute_rank(v_phase, v_status);
  v_old integer := settle.dispute_rank(p_dispute.phase, p_dispute.status);
  d public.disputes := p_dispute;
begin
  if d.last_event_at is null or v_rank > v_old or (v_rank = v_old and v_at > d.last_event_at) then
    d.status := v_status;
    d.phase := v_phase;
    d.gateway_status := left(p_effect ->> 'gateway_status', 100);
    d.amount := coalesce((p_effect ->> 'amount')::bigint, d.amount);
    d.reason := coalesce(left(p_effect ->> 'reason', 200), d.reason);
    d.evidence_due_by := to_timestamp(nullif((p_effect ->> 'evidence_due_by')::double precision, 0));
    d.resolved_at := case when settle.dispute_final(v_status) then coalesce(d.resolved_at, now()) end;
  end if;
  d.reason := coalesce(d.reason, left(p_effect ->> 'reason', 200));
  d.gateway_created_at := coalesce(d.gateway_created_at, to_timestamp((p_effect ->> 'created')::double precision));
  d.last_event_at := greatest(d.last_event_at, v_at, d.created_at);
  return d;
end
$$;

-- Writes the merged row back (the money columns were moved by post_dispute_money).
create function settle.store_dispute(d public.disputes) returns public.disputes
language plpgsql security definer set search_path = ''
as $$
declare
  v_dispute public.disputes;
begin
  update public.disputes set status = d.status, phase = d.phase, gateway_status = d.gateway_status,
    amount = d.amount, reason = d.reason, evidence_due_by = d.evidence_due_by,
    gateway_created_at = d.gateway_created_at, last_event_at = d.last_event_at,
    resolved_at = d.resolved_at, amount_withdrawn = d.amount_withdrawn,
    amount_reinstated = d.amount_reinstated, amount_lost = d.amount_lost, shortfall = d.shortfall,
    funds_withdrawn_at = d.funds_withdrawn_at
  where id = d.id returning * into v_dispute;
  return v_dispute;
end
$$;

-- Moves the ledger to what the merged row and the event say: the gateway's withdrawals and
-- reinstatements so far (the larger of what was posted and what the event proves), and, once
-- the dispute is final, the rest of the held money to the gateway. Updates d's money columns.
create function settle.post_dispute_money(d public.disputes, p_order public.orders, p_effect jsonb)
returns public.disputes
language plpgsql security definer set search_path = ''
as $$
declare
  v_withdrawn bigint := greatest(d.amount_withdrawn,
    least(coalesce((p_effect ->> 'withdrawn')::bigint, 0), 100000000000));
  v_reinstated bigint := greatest(d.amount_reinstated,
    least(coalesce((p_effect ->> 'reinstated')::bigint, 0), v_withdrawn));
  v_held bigint;
begin
  if v_withdrawn > d.amount_withdrawn then
    d := settle.post_dispute_withdrawal(d, p_order, v_withdrawn - d.amount_withdrawn);
  end if;
  if v_reinstated > d.amount_reinstated then
    d := settle.post_dispute_reinstatement(d, p_order, v_reinstated - d.amount_reinstated);
  end if;
  v_held := d.amount_withdrawn - d.amount_reinstated - d.amount_lost;
  if settle.dispute_final(d.status) and v_held > 0 then
    perform settle.post_transaction('dispute_withdrawal',
      format('dispute_lost:%s:%s', d.id, d.amount_lost + v_held), p_order.id,
      'dispute lost: the gateway keeps the withdrawn amount',
      jsonb_build_array(
        jsonb_build_object('system_account', settle.dispute_held_account(d.account_id),
          'currency', d.currency, 'amount', -v_held),
        jsonb_build_object('system_account', 'gateway:' || d.gateway, 'currency', d.currency,
          'amount', v_held)));
    d.amount_lost := d.amount_lost + v_held;
  end if;
  return d;
end
$$;

-- The gateway took p_amount more: it leaves the order's holder (settle.dispute_holder,
-- escrow_chargebacks file: the wallet for a top-up, as far as its balance goes, the receivable
-- for the rest; an escrow order's escrow account, refund clearing or expense:escrow_chargebacks;
-- revenue:<purpose> otherwise) for the account's dispute-held account.
create function settle.post_dispute_withdrawal(d public.disputes, p_order public.orders, p_amount bigint)
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

-- The gateway gave p_amount back: to the holder (settle.dispute_holder), from the held account
-- while it still holds this dispute's money, else from the gateway's clearing (a reinstatement
-- after the dispute was booked as lost, e.g. the refunded part of a partial win). A wallet that
-- owes a shortfall repays it from this credit (settle.cover_dispute_shortfall); money back in an
-- engagement's refund clearing is owed to the payer again, so the order is queued to be
-- returned.
create function settle.post_dispute_reinstatement(d public.disputes, p_order public.orders, p_amount bigint)
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

-- Each balance transaction's fee, once (keyed by its id): a positive fee is the gateway's
-- charge (expense:dispute_fees), a negative one a fee given back. Never a hard-coded fee.
create function settle.post_dispute_fees(p_dispute public.disputes, p_bts jsonb) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_bt jsonb;
  v_fee bigint;
  v_currency text;
begin
  if jsonb_typeof(p_bts) is distinct from 'array' then
    return;
  end if;
  for v_bt in select value from jsonb_array_elements(p_bts) loop
    v_fee := (v_bt ->> 'fee')::bigint;
    v_currency := upper(v_bt ->> 'currency');
    continue when v_fee is null or v_fee = 0 or v_bt ->> 'id' is null
      or not exists (select 1 from public.currencies where code = v_currency)
      or v_currency is distinct from coalesce(p_dispute.fee_currency, v_currency);
    if settle.post_transaction('dispute_fee',
         format('dispute_fee:%s:%s', p_dispute.gateway, left(v_bt ->> 'id', 150)),
         p_dispute.order_id, 'dispute fee charged by ' || p_dispute.gateway,
         jsonb_build_array(
           jsonb_build_object('system_account', 'expense:dispute_fees', 'currency', v_currency, 'amount', -v_fee),
           jsonb_build_object('system_account', 'gateway:' || p_dispute.gateway, 'currency', v_currency,
             'amount', v_fee))) is not null then
      update public.disputes set fee = fee + v_fee, fee_currency = v_currency
      where id = p_dispute.id returning * into p_dispute;
    end if;
  end loop;
end
$$;

-- Effects on the order: the order's dispute_status (fulfilment), and a plan's entitlement: the
-- bought period is suspended while funds are withdrawn (plans.dispute_policy 'suspend'), ended
-- when lost, given back when won (through the subscriptions file's revoke/reinstate functions).
create function settle.apply_dispute_effects(p_dispute public.disputes, p_order public.orders)
returns public.disputes
language plpgsql security definer set search_path = ''
as $$
declare
  v_policy text;
  v_entitlement text := p_dispute.entitlement;
begin
  update public.orders o set dispute_status = s.status
  from (select case when bool_or(d.status in ('open', 'under_review')) then 'open'
                    else (array_agg(d.status order by d.resolved_at desc, d.created_at desc))[1] end as status
        from public.disputes d where d.order_id = p_order.id) s
  where o.id = p_order.id and o.dispute_status is distinct from s.status;
  if p_order.purpose <> 'plan' then
    return p_dispute;
  end if;
  select dispute_policy into v_policy from public.plans where id = p_order.plan_id;
  if p_dispute.status = 'lost' then
    if v_entitlement is distinct from 'suspended' then
      perform settle.revoke_subscription_period(p_order.id);
    end if;
    v_entitlement := 'ended';
  elsif p_dispute.amount_held > 0 and v_policy = 'suspend' and v_entitlement is null then
    perform settle.revoke_subscription_period(p_order.id);
    v_entitlement := 'suspended';
  elsif p_dispute.status = 'won' and v_entitlement in ('suspended', 'ended') then
    perform settle.reinstate_subscription_period(p_order.id);
    v_entitlement := 'restored';
  end if;
  if v_entitlement is distinct from p_dispute.entitlement then
    update public.disputes set entitlement = v_entitlement where id = p_dispute.id
    returning * into p_dispute;
  end if;
  return p_dispute;
end
$$;

-- Section - the shortfall is repaid by the wallet's next credits
-- Called by the ledger's posting trigger (settle.post_ledger_entries, ledger file) for a wallet
-- the statement credited, only when its account owes a shortfall in that currency (the cheap
-- test there, on disputes_owed_idx). Oldest dispute first, as far as the balance goes; the
-- wallet row is already locked by the credit. The nested posting debits the wallet, so it never
-- calls this again.
create function settle.cover_dispute_shortfall(p_wallet_id uuid, p_account_id uuid, p_currency text)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_dispute public.disputes;
  v_balance bigint;
  v_amount bigint;
begin
  for v_dispute in
    select * from public.disputes
    where account_id = p_account_id and currency = p_currency and shortfall > shortfall_covered
    order by created_at, id for update
  loop
    select balance into v_balance from public.wallets where id = p_wallet_id;
    v_amount := least(v_balance, v_dispute.shortfall - v_dispute.shortfall_covered);
    exit when v_amount <= 0;
    perform settle.post_transaction('dispute_withdrawal',
      format('dispute_cover:%s:%s', v_dispute.id, v_dispute.shortfall_covered + v_amount), v_dispute.order_id,
      'dispute shortfall repaid from the wallet',
      jsonb_build_array(
        jsonb_build_object('wallet_id', p_wallet_id, 'currency', p_currency, 'amount', -v_amount),
        jsonb_build_object('system_account', 'receivable:dispute_shortfall', 'currency', p_currency,
          'amount', v_amount)));
    update public.disputes set shortfall_covered = shortfall_covered + v_amount where id = v_dispute.id;
  end loop;
end
$$;

-- Section - guards: refunds of disputed orders, spending a wallet that owes a shortfall
-- A refund asked through settle (source api) of an order with an open chargeback: the gateways
-- refuse it too (Stripe: "Charge has been charged back"), so it is refused before the gateway
-- is asked. A refund the gateway already made (source gateway) is a fact and is counted.
-- Also after a lost chargeback: the buyer's bank already gave the money back.
create function settle.refuse_refund_of_disputed(p_order_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if settle.order_has_open_dispute(p_order_id) then
    perform settle.fail(409, 'order_disputed', format(
      'order %s has an open chargeback; it cannot be refunded until the dispute is resolved', p_order_id));
  end if;
  if exists (select 1 from public.disputes where order_id = p_order_id and status = 'lost') then
    perform settle.fail(409, 'order_disputed', format(
      'order %s was charged back (dispute lost): its money already went back to the buyer', p_order_id));
  end if;
end
$$;

create function settle.refuse_disputed_refund() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.source = 'api' then
    perform settle.refuse_refund_of_disputed(new.order_id);
  end if;
  return new;
end
$$;
create trigger refunds_refuse_disputed before insert on public.refunds
  for each row execute function settle.refuse_disputed_refund();

-- New wallet charges and holds, and orders paid from the wallet, while the account owes a
-- dispute shortfall in the currency (captures of holds made before stay allowed: that money
-- left the wallet already). The wallet row is locked by both callers before they insert.
create function settle.refuse_blocked_spending() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if settle.spending_blocked(new.account_id, new.currency) then
    perform settle.fail(409, 'spending_blocked', format(
      'the account owes a dispute shortfall in %s; its %s wallet cannot be spent until it is repaid',
      new.currency, new.currency));
  end if;
  return new;
end
$$;
create trigger wallet_charges_refuse_blocked before insert on public.wallet_charges
  for each row execute function settle.refuse_blocked_spending();
create trigger orders_refuse_blocked_wallet before insert on public.orders
  for each row when (new.gateway = 'wallet')
  execute function settle.refuse_blocked_spending();

-- Section - outbox events
-- dispute.opened (first seen), .funds_withdrawn (the gateway first took money), .won / .lost
-- (that outcome), .closed (resolved, whatever the outcome): each once per dispute state, in
-- that order even when the first event settle sees is already the last one. Emitted by
-- apply_dispute_event from the row before and after the event (a row trigger would see the
-- money and the state change in separate updates).
create function settle.emit_dispute_events(p_before public.disputes, p_after public.disputes)
returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_payload jsonb := settle.dispute_json(p_after);
  v_types text[] := '{}';
  v_type text;
begin
  if p_before.last_event_at is null then
    v_types := v_types || 'dispute.opened'::text;
  end if;
  if p_after.amount_withdrawn > 0 and p_before.amount_withdrawn = 0 then
    v_types := v_types || 'dispute.funds_withdrawn'::text;
  end if;
  if p_after.status in ('won', 'lost') and p_after.status is distinct from p_before.status then
    v_types := v_types || ('dispute.' || p_after.status);
  end if;
  if settle.dispute_final(p_after.status)
     and (p_before.last_event_at is null or not settle.dispute_final(p_before.status)) then
    v_types := v_types || 'dispute.closed'::text;
  end if;
  foreach v_type in array v_types loop
    perform settle.outbox_emit(v_type, p_after.account_id, 'dispute', p_after.id, v_payload);
  end loop;
end
$$;

-- Section - operators: open disputes by due date
create view public.open_disputes with (security_barrier = true) as
select d.id, d.gateway, d.gateway_dispute_id, d.gateway_payment_id, d.order_id, d.account_id,
  o.purpose, d.amount, d.currency, d.reason, d.status, d.phase, d.gateway_status,
  d.evidence_due_by, d.amount_withdrawn, d.amount_held, d.fee, d.fee_currency,
  d.shortfall - d.shortfall_covered as shortfall_owed, d.created_at
from public.disputes d join public.orders o on o.id = d.order_id
where d.status in ('open', 'under_review')
order by d.evidence_due_by nulls last, d.created_at;
comment on view public.open_disputes is 'For operators (service role) and analysts: unresolved disputes, the earliest evidence deadline first (early warnings and disputes without a deadline last). shortfall_owed = what the account still owes of a withdrawal its wallet could not cover.';

-- Section - statistics
-- Beside payment_stats, built the same way (its file says how): per UTC day of the
-- order's creation, gateway and currency, so the dispute rate divides like with like.
create view settle.dispute_stats_visible with (security_barrier = true) as
select
  (o.created_at at time zone 'UTC')::date as day,
  o.gateway,
  o.currency,
  count(distinct o.id) filter (where o.status in ('paid', 'partially_refunded', 'refunded')) as orders_paid,
  count(d.id) as disputes_opened,
  count(d.id) filter (where d.phase in ('early_warning', 'inquiry', 'retrieval')) as inquiries,
  count(d.id) filter (where d.status = 'won') as disputes_won,
  count(d.id) filter (where d.status = 'lost') as disputes_lost,
  coalesce(sum(d.amount), 0)::bigint as amount_disputed,
  coalesce(sum(d.amount_lost), 0)::bigint as amount_lost,
  round(
    (count(distinct d.order_id) filter (where d.phase in ('chargeback', 'pre_arbitration', 'arbitration', 'fraud')))::numeric
    / nullif(count(distinct o.id) filter (where o.status in ('paid', 'partially_refunded', 'refunded')), 0),
    4) as dispute_rate
from public.orders o
left join public.disputes d on d.order_id = o.id
where o.gateway <> 'wallet' and settle.can_read_payment_stats(o.account_id)
group by 1, 2, 3;

create view public.dispute_stats with (security_invoker = true) as
select day, gateway, currency, orders_paid, disputes_opened, inquiries, disputes_won,
  disputes_lost, amount_disputed, amount_lost, dispute_rate
from settle.dispute_stats_visible;
comment on view public.dispute_stats is 'Disputes per UTC day of order creation, gateway and currency (the rows of payment_stats): paid orders, disputes opened (inquiries and early warnings included, also counted alone as inquiries), won, lost, amount_disputed (their amounts), amount_lost (what the gateways kept), dispute_rate = paid orders with a chargeback / paid orders. Minor units. Signed-in users see their accounts; payment_analyst sees all.';

-- Section - ledger audit
-- The dispute-held accounts hold exactly the open disputes' withdrawn and not reinstated
-- amounts (per account and currency), the shortfall receivable exactly what accounts still owe,
-- the fee expense exactly the disputes' fees; a resolved dispute holds nothing.
create function settle.ledger_audit_disputes()
returns table (invariant text, subject text, detail text)
language sql stable security definer set search_path = ''
as $$
  with held_ledger as (
    select e.system_account, e.currency, sum(e.amount) as total
    from public.ledger_entries e where e.system_account like 'dispute\_held:%'
    group by 1, 2
  ), held_open as (
    select settle.dispute_held_account(d.account_id) as system_account, d.currency,
      sum(d.amount_held) as total
    from public.disputes d where d.status in ('open', 'under_review')
    group by 1, 2
  )
  select 'dispute_held_drift', coalesce(l.system_account, o.system_account) || ' ' || coalesce(l.currency, o.currency),
    format('dispute-held account holds %s, open disputes withdrew %s', coalesce(l.total, 0), coalesce(o.total, 0))
  from held_ledger l full join held_open o on o.system_account = l.system_account and o.currency = l.currency
  where coalesce(l.total, 0) <> coalesce(o.total, 0)
  union all
  select 'dispute_receivable_drift', c.currency,
    format('receivable:dispute_shortfall %s, owed shortfalls %s', coalesce(le.total, 0), coalesce(dd.total, 0))
  from (select currency from public.ledger_entries where system_account = 'receivable:dispute_shortfall'
        union select currency from public.disputes where shortfall > 0) c
  left join (select currency, -sum(amount) as total from public.ledger_entries
             where system_account = 'receivable:dispute_shortfall' group by currency) le on le.currency = c.currency
  left join (select currency, sum(shortfall - shortfall_covered) as total from public.disputes
             group by currency) dd on dd.currency = c.currency
  where coalesce(le.total, 0) <> coalesce(dd.total, 0)
  union all
  select 'dispute_fee_drift', c.currency,
    format('expense:dispute_fees %s, disputes'' fees %s', coalesce(le.total, 0), coalesce(dd.total, 0))
  from (select currency from public.ledger_entries where system_account = 'expense:dispute_fees'
        union select fee_currency from public.disputes where fee_currency is not null) c
  left join (select currency, -sum(amount) as total from public.ledger_entries
             where system_account = 'expense:dispute_fees' group by currency) le on le.currency = c.currency
  left join (select fee_currency, sum(fee) as total from public.disputes
             group by fee_currency) dd on dd.fee_currency = c.currency
  where coalesce(le.total, 0) <> coalesce(dd.total, 0)
  union all
  select 'resolved_dispute_holds_money', d.id::text,
    format('%s dispute holds %s %s', d.status, d.amount_held, d.currency)
  from public.disputes d where d.status not in ('open', 'under_review') and d.amount_held <> 0
$$;

-- Section - privileges
-- Members read their disputes (RLS); only the functions above write them.
revoke execute on all functions in schema settle from public;
revoke all on public.disputes from anon, authenticated, service_role;
grant select on public.disputes to authenticated, service_role;
revoke all on public.open_disputes, public.dispute_stats from anon, authenticated;
grant select on public.open_disputes to payment_analyst;
grant select on settle.dispute_stats_visible, public.dispute_stats
  to authenticated, payment_analyst, service_role;
grant execute on function settle.apply_dispute_event(text, jsonb), settle.ledger_audit_disputes(),
  settle.order_has_open_dispute(uuid), settle.spending_blocked(uuid, text)
  to service_role;
