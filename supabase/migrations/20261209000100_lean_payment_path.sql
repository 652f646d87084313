-- The payment path's fixed costs per statement (issue 16, fourth part). Measured by instructions
-- per event (bench/README.md, "Results (issue 16, fourth part)"): a single backend replaying
-- Razorpay captures under callgrind, one transaction per event, where wall-clock figures on this
-- machine vary by ±20% from one run to the next.

-- Section - CHECK constraints, one per table
-- Postgres reads a table's CHECK constraints from their stored text (nodeToString) and plans them
-- afresh for every statement that writes the table: ExecRelCheck runs stringToNode and
-- ExecPrepareExpr on each, once per statement, before the first row. A payment writes five
-- tables with 30 such constraints (about 29 kB of node text) in seven statements, and that was
-- 27% of the instructions of an event. Each table's rules now live in one immutable function
-- that takes the row, and the table has one CHECK calling it: a few hundred bytes to read, and a
-- function PL/pgSQL compiles once per session.
--
-- The rules are the dropped constraints' own expressions, unchanged, tested in the order
-- Postgres tests CHECK constraints (by name), and a failure is the error Postgres raises for a
-- failed CHECK constraint: SQLSTATE 23514, the same message, and the constraint, table and schema
-- fields naming the old constraint. Only the row's DETAIL ("Failing row contains …") is gone.
-- A null passes, as in a CHECK constraint. The functions read only their argument; they set no
-- search_path (a SET clause costs every call a configuration save and restore) and name their
-- functions in pg_catalog; their operators are pg_catalog's, which a search path searches first
-- unless it lists pg_catalog later explicitly. Postgres checks EXECUTE for the role whose
-- statement writes the row: settle's own functions write as the owner, and the service role,
-- which may insert some of these rows itself, may execute them; user roles write none directly.
-- Other tables keep their constraints: nothing on the payment path writes them more than once.

-- What Postgres raises for a failed CHECK constraint, for the validators below.
create function settle.fail_check(p_table text, p_constraint text) returns void
language plpgsql immutable parallel safe
as $$
begin
  raise exception using errcode = 'check_violation', schema = 'public', table = p_table,
    constraint = p_constraint,
    message = pg_catalog.format('new row for relation "%s" violates check constraint "%s"',
      p_table, p_constraint);
end
$$;
revoke execute on function settle.fail_check(text, text) from public, anon, authenticated;
grant execute on function settle.fail_check(text, text) to service_role;

create function settle.orders_checks(r public.orders)
returns boolean
language plpgsql immutable parallel safe
as $$
declare
  v_failed text := case
    when (r.amount > 0 AND r.amount <= '100000000000'::bigint) is false then 'orders_amount_check'
    when (r.amount_refunded >= 0 AND r.amount_refunded <= r.amount) is false then 'orders_check'
    when ((r.purpose = 'plan'::text) = (r.plan_id IS NOT NULL)) is false then 'orders_check1'
    when ((r.purpose = 'product'::text) = (r.product_id IS NOT NULL)) is false then 'orders_check2'
    when ((r.status = ANY ('{paid,partially_refunded,refunded}'::text[])) <= (r.paid_at IS NOT NULL)) is false then 'orders_check3'
    when (r.dispute_status = ANY ('{open,won,lost,closed}'::text[])) is false then 'orders_dispute_status_check'
    when ((r.purpose = 'escrow'::text) = (r.engagement_id IS NOT NULL)) is false then 'orders_engagement_check'
    when (r.gateway = ANY ('{razorpay,stripe,paypal,wallet}'::text[])) is false then 'orders_gateway_check'
    when (pg_catalog.length(r.gateway_order_id) >= 1 AND pg_catalog.length(r.gateway_order_id) <= 255) is false then 'orders_gateway_order_id_check'
    when (pg_catalog.length(r.gateway_payment_id) >= 1 AND pg_catalog.length(r.gateway_payment_id) <= 255) is false then 'orders_gateway_payment_id_check'
    when (pg_catalog.length(r.idempotency_key) >= 1 AND pg_catalog.length(r.idempotency_key) <= 255) is false then 'orders_idempotency_key_check'
    when (r.purpose = ANY ('{wallet_topup,plan,product,escrow}'::text[])) is false then 'orders_purpose_check'
    when (r.reconcile_attempts >= 0) is false then 'orders_reconcile_attempts_check'
    when ((r.status <> ALL ('{paid,partially_refunded,refunded}'::text[])) OR r.status =
          CASE WHEN r.amount_refunded = 0 THEN 'paid'::text
               WHEN r.amount_refunded < r.amount THEN 'partially_refunded'::text
               ELSE 'refunded'::text END) is false then 'orders_refund_status_check'
    when (r.status = ANY ('{created,authorized,paid,partially_refunded,refunded,failed,expired}'::text[])) is false then 'orders_status_check'
    when ((r.status = ANY ('{paid,partially_refunded,refunded}'::text[])) OR r.amount_refunded = 0) is false then 'orders_unpaid_not_refunded_check'
  end;
begin
  if v_failed is not null then
    perform settle.fail_check('orders', v_failed);
  end if;
  return true;
end
$$;
revoke execute on function settle.orders_checks(public.orders) from public, anon, authenticated;
grant execute on function settle.orders_checks(public.orders) to service_role;
alter table public.orders
  drop constraint orders_amount_check,
  drop constraint orders_check,
  drop constraint orders_check1,
  drop constraint orders_check2,
  drop constraint orders_check3,
  drop constraint orders_dispute_status_check,
  drop constraint orders_engagement_check,
  drop constraint orders_gateway_check,
  drop constraint orders_gateway_order_id_check,
  drop constraint orders_gateway_payment_id_check,
  drop constraint orders_idempotency_key_check,
  drop constraint orders_purpose_check,
  drop constraint orders_reconcile_attempts_check,
  drop constraint orders_refund_status_check,
  drop constraint orders_status_check,
  drop constraint orders_unpaid_not_refunded_check,
  add constraint orders_checks check (settle.orders_checks(orders));

create function settle.webhook_events_checks(r public.webhook_events)
returns boolean
language plpgsql immutable parallel safe
as $$
declare
  v_failed text := case
    when (r.body_key IS NULL OR pg_catalog.length(r.body_key) >= 1 AND pg_catalog.length(r.body_key) <= 255) is false then 'webhook_events_body_key_check'
    when (pg_catalog.length(r.event_id) >= 1 AND pg_catalog.length(r.event_id) <= 255) is false then 'webhook_events_event_id_check'
    when (pg_catalog.length(r.event_type) >= 1 AND pg_catalog.length(r.event_type) <= 255) is false then 'webhook_events_event_type_check'
    when (r.gateway = ANY ('{razorpay,stripe,paypal,razorpayx,stripe_connect}'::text[])) is false then 'webhook_events_gateway_check'
    when (r.outcome = ANY ('{received,applied,no_effect,ignored,unknown_order,mismatch,failed}'::text[])) is false then 'webhook_events_outcome_check'
  end;
begin
  if v_failed is not null then
    perform settle.fail_check('webhook_events', v_failed);
  end if;
  return true;
end
$$;
revoke execute on function settle.webhook_events_checks(public.webhook_events) from public, anon, authenticated;
grant execute on function settle.webhook_events_checks(public.webhook_events) to service_role;
alter table public.webhook_events
  drop constraint webhook_events_body_key_check,
  drop constraint webhook_events_event_id_check,
  drop constraint webhook_events_event_type_check,
  drop constraint webhook_events_gateway_check,
  drop constraint webhook_events_outcome_check,
  add constraint webhook_events_checks check (settle.webhook_events_checks(webhook_events));

create function settle.ledger_transactions_checks(r public.ledger_transactions)
returns boolean
language plpgsql immutable parallel safe
as $$
declare
  v_failed text := case
    when (pg_catalog.length(r.idempotency_key) >= 1 AND pg_catalog.length(r.idempotency_key) <= 200) is false then 'ledger_transactions_idempotency_key_check'
    when (r.kind = ANY (ARRAY['topup'::text, 'purchase'::text, 'refund'::text, 'adjustment'::text, 'wallet_charge'::text, 'wallet_hold'::text, 'wallet_release'::text, 'wallet_refund'::text, 'escrow_funding'::text, 'escrow_settlement'::text, 'escrow_refund'::text, 'dispute_withdrawal'::text, 'dispute_reinstatement'::text, 'dispute_fee'::text, 'payout'::text, 'payout_sent'::text, 'payout_return'::text])) is false then 'ledger_transactions_kind_check'
  end;
begin
  if v_failed is not null then
    perform settle.fail_check('ledger_transactions', v_failed);
  end if;
  return true;
end
$$;
revoke execute on function settle.ledger_transactions_checks(public.ledger_transactions) from public, anon, authenticated;
grant execute on function settle.ledger_transactions_checks(public.ledger_transactions) to service_role;
alter table public.ledger_transactions
  drop constraint ledger_transactions_idempotency_key_check,
  drop constraint ledger_transactions_kind_check,
  add constraint ledger_transactions_checks check (settle.ledger_transactions_checks(ledger_transactions));

create function settle.ledger_entries_checks(r public.ledger_entries)
returns boolean
language plpgsql immutable parallel safe
as $$
declare
  v_failed text := case
    when (r.amount <> 0) is false then 'ledger_entries_amount_check'
    when ((r.wallet_id IS NULL) <> (r.system_account IS NULL)) is false then 'ledger_entries_check'
    when ((r.wallet_id IS NULL) = (r.account_id IS NULL)) is false then 'ledger_entries_check1'
    when (r.system_account ~ '^[a-z_]+:[a-z0-9_]+$'::text) is false then 'ledger_entries_system_account_check'
  end;
begin
  if v_failed is not null then
    perform settle.fail_check('ledger_entries', v_failed);
  end if;
  return true;
end
$$;
revoke execute on function settle.ledger_entries_checks(public.ledger_entries) from public, anon, authenticated;
grant execute on function settle.ledger_entries_checks(public.ledger_entries) to service_role;
alter table public.ledger_entries
  drop constraint ledger_entries_amount_check,
  drop constraint ledger_entries_check,
  drop constraint ledger_entries_check1,
  drop constraint ledger_entries_system_account_check,
  add constraint ledger_entries_checks check (settle.ledger_entries_checks(ledger_entries));

create function settle.outbox_events_checks(r public.outbox_events)
returns boolean
language plpgsql immutable parallel safe
as $$
declare
  v_failed text := case
    when (pg_catalog.jsonb_typeof(r.payload) = 'object'::text) is false then 'outbox_events_payload_check'
    when (r.subject_type = ANY (ARRAY['order'::text, 'refund'::text, 'subscription'::text, 'wallet_charge'::text, 'engagement'::text, 'dispute'::text, 'payout'::text])) is false then 'outbox_events_subject_type_check'
    when (r.type ~ '^[a-z][a-z_]*\.[a-z][a-z_]*$'::text) is false then 'outbox_events_type_check'
  end;
begin
  if v_failed is not null then
    perform settle.fail_check('outbox_events', v_failed);
  end if;
  return true;
end
$$;
revoke execute on function settle.outbox_events_checks(public.outbox_events) from public, anon, authenticated;
grant execute on function settle.outbox_events_checks(public.outbox_events) to service_role;
alter table public.outbox_events
  drop constraint outbox_events_payload_check,
  drop constraint outbox_events_subject_type_check,
  drop constraint outbox_events_type_check,
  add constraint outbox_events_checks check (settle.outbox_events_checks(outbox_events));


-- Section - the duplicate check planned once
-- Two statements where there was one with an OR: PL/pgSQL planned the OR'ed check afresh on
-- every call (its custom plan, folding the null body key away, always looked cheaper than the
-- generic one; pg_stat_statements counted a plan per call, though the instruction probe finds
-- it cheap). Otherwise as in 20261201000700_webhooks.sql.
create or replace function settle.ingest_webhook(p_event settle.incoming_event, p_fast boolean default true)
returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  e settle.incoming_event := p_event;
  v_order_id uuid;
  v_result jsonb;
begin
  perform pg_advisory_xact_lock(1399157588, hashtext(e.gateway || '/' || e.event_id));
  if e.body_key is not null then
    perform pg_advisory_xact_lock(1399157589, hashtext(e.gateway || '/' || e.body_key));
  end if;
  if exists (select 1 from public.webhook_events where gateway = e.gateway and event_id = e.event_id) then
    return jsonb_build_object('duplicate', true, 'outcome', 'duplicate');
  end if;
  if e.body_key is not null and exists (select 1 from public.webhook_events
       where gateway = e.gateway and body_key = e.body_key) then
    return jsonb_build_object('duplicate', true, 'outcome', 'duplicate');
  end if;

  -- The common case, with no subtransaction: a capture of a pending top-up or product order for
  -- its own amount and currency, whose payment id pays no other order and which has no held
  -- refunds. Its effects (order_effects: the posting, the stats delta; the outbox) do not raise
  -- by design; if they do anyway, the whole call fails and the caller repeats it with p_fast false.
  -- One statement pays the order and stores the event; the order's AFTER triggers run at its
  -- end, so the wallet's row lock (taken by the posting) is held only from there to the commit.
  -- Anything else, or an order this misses, takes the general path below.
  if p_fast and e.effect is null and e.kind = 'captured' and e.gateway_order_id is not null then
    with paid as (
      update public.orders o
      set status = 'paid', paid_at = now(),
          gateway_payment_id = coalesce(e.gateway_payment_id, o.gateway_payment_id),
          failure_code = null, failure_reason = null
      where o.gateway = e.gateway and o.gateway_order_id = e.gateway_order_id
        and o.status in ('created', 'authorized') and o.purpose in ('wallet_topup', 'product')
        and o.amount = e.amount and o.currency = upper(e.currency)
        and (e.gateway_payment_id is null or e.gateway_payment_id = o.gateway_payment_id
             or not exists (select 1 from public.orders x
                            where x.gateway = e.gateway and x.gateway_payment_id = e.gateway_payment_id))
        and not exists (select 1 from public.gateway_refund_holds h
                        where h.order_id = o.id and h.resolved_at is null)
      returning o.id
    )
    insert into public.webhook_events (gateway, event_id, event_type, gateway_order_id,
      gateway_payment_id, amount, currency, raw_body, occurred_at, outcome, order_id,
      processed_at, kind, failure_code, failure_reason, body_key)
    select e.gateway, e.event_id, e.event_type, e.gateway_order_id, e.gateway_payment_id,
      e.amount, upper(e.currency), e.raw_body, e.occurred_at, 'applied', paid.id, now(), e.kind,
      left(e.failure_code, 200), left(e.failure_reason, 1000), e.body_key
    from paid
    returning order_id into v_order_id;
    if v_order_id is not null then
      return jsonb_build_object('outcome', 'applied', 'order_id', v_order_id, 'status', 'paid',
        'duplicate', false);
    end if;
  end if;

  begin
    v_result := settle.apply_webhook_effect(e.gateway, e.kind, e.gateway_order_id,
      e.gateway_payment_id, e.amount, e.currency, e.failure_code, e.failure_reason, e.effect);
  exception when others then
    v_result := jsonb_build_object('outcome', 'failed', 'detail', left(sqlerrm, 1000));
  end;

  insert into public.webhook_events (gateway, event_id, event_type, gateway_order_id,
    gateway_payment_id, amount, currency, raw_body, occurred_at, outcome, order_id, detail,
    processed_at, kind, failure_code, failure_reason, effect, body_key)
  values (e.gateway, e.event_id, e.event_type, e.gateway_order_id, e.gateway_payment_id,
    e.amount, upper(e.currency), e.raw_body, e.occurred_at, v_result ->> 'outcome',
    (v_result ->> 'order_id')::uuid, v_result ->> 'detail', now(), e.kind,
    left(e.failure_code, 200), left(e.failure_reason, 1000), e.effect, e.body_key);
  return v_result || jsonb_build_object('duplicate', false);
end
$$;


-- Section - a payment's posting, done by the posting code
-- An order's payment posts two legs. Until now post_order_payment built them as JSON for
-- settle.post_transaction, which inserted the transaction, parsed the legs back out (looking each
-- wallet up again), and ledger_entries' statement trigger then moved the wallet and checked the
-- legs: balanced, their transaction and currency existing, a dispute shortfall owed by a credited
-- wallet. For a payment through a gateway (a top-up or a purchase), those checks hold by
-- construction: one leg is the order's amount and the other its negation, in the order's
-- currency (the order's foreign key), on a transaction inserted by the same statement, and the
-- wallet is the account's own in that currency (ensure_wallet). So the posting code now does the
-- wallet's part itself: the transaction and its two legs in one statement (the same rows, in the
-- same order, the same idempotency key: a repeated payment posts nothing), then the wallet moved
-- by the credit, then a dispute shortfall covered, as the trigger does.
--
-- The trigger stays for every other insert. It skips only a statement run inside a trigger
-- (pg_trigger_depth() of 1 or more: here order_effects) while settle.ledger_direct is on, which
-- this function sets just for its one statement. A session can set that setting, but only a
-- trigger of its own could then insert entries at depth 1 or more; the wallet guard
-- (guard_wallet_balance) trusts settle.ledger_posting on the same terms. A payment from the
-- wallet (a debit, which may find the balance short) keeps the trigger's path and its refusal.
create or replace function settle.post_order_payment(p_order public.orders)
returns void
language plpgsql security definer set search_path = '' as $$
declare
  v_wallet uuid;
  v_legs int;
begin
  if p_order.purpose = 'escrow' then
    perform settle.fund_engagement(p_order);
    return;
  end if;
  if p_order.gateway = 'wallet' then
    if p_order.purpose = 'wallet_topup' then
      perform settle.fail(400, 'invalid_request', 'a wallet cannot top itself up');
    end if;
    perform settle.post_transaction('purchase', 'order_paid:' || p_order.id, p_order.id,
      p_order.purpose || ' purchase from the wallet',
      jsonb_build_array(
        jsonb_build_object('wallet_id', settle.ensure_wallet(p_order.account_id, p_order.currency),
          'currency', p_order.currency, 'amount', -p_order.amount),
        jsonb_build_object('system_account', 'revenue:' || p_order.purpose,
          'currency', p_order.currency, 'amount', p_order.amount)));
    return;
  end if;
  if p_order.purpose = 'wallet_topup' then
    v_wallet := settle.ensure_wallet(p_order.account_id, p_order.currency);
  end if;
  perform set_config('settle.ledger_direct', 'on', true);
  with tx as (
    insert into public.ledger_transactions (kind, idempotency_key, order_id, description)
    values (case when v_wallet is null then 'purchase' else 'topup' end,
      'order_paid:' || p_order.id, p_order.id,
      case when v_wallet is null then p_order.purpose || ' purchase via ' || p_order.gateway
           else 'wallet top-up via ' || p_order.gateway end)
    on conflict (idempotency_key) do nothing
    returning id
  ), legs as (
    -- Credit first, then the gateway's clearing account: the order the legs were always written in.
    insert into public.ledger_entries (transaction_id, wallet_id, account_id, system_account,
      currency, amount)
    select tx.id, l.wallet_id, l.account_id, l.system_account, p_order.currency, l.amount
    from tx cross join (values
      (v_wallet, case when v_wallet is not null then p_order.account_id end,
       case when v_wallet is null then 'revenue:' || p_order.purpose end, p_order.amount, 1),
      (null::uuid, null::uuid, 'gateway:' || p_order.gateway, -p_order.amount, 2)
    ) as l (wallet_id, account_id, system_account, amount, n)
    order by l.n
    returning 1
  )
  select count(*) into v_legs from legs;
  perform set_config('settle.ledger_direct', 'off', true);
  if v_legs = 0 or v_wallet is null then
    return;
  end if;
  perform set_config('settle.ledger_posting', 'on', true);
  update public.wallets set balance = balance + p_order.amount, updated_at = now()
  where id = v_wallet;
  perform set_config('settle.ledger_posting', 'off', true);
  if exists (select 1 from public.disputes d
             where d.account_id = p_order.account_id and d.currency = p_order.currency
               and d.shortfall > d.shortfall_covered) then
    perform settle.cover_dispute_shortfall(v_wallet, p_order.account_id, p_order.currency);
  end if;
end
$$;

drop trigger ledger_entries_post on public.ledger_entries;
create trigger ledger_entries_post after insert on public.ledger_entries
  referencing new table as new_entries
  for each statement
  when (pg_trigger_depth() < 1 or current_setting('settle.ledger_direct', true) is distinct from 'on')
  execute function settle.post_ledger_entries();
