-- Marketplace escrow (issue 12), part 2: settlement (the split, the batch job, operators'
-- dispute resolution), returning what is owed to payers through the refunds machinery, the
-- audit, statistics, privileges and the schedule.

-- Section - what is owed back to payers
-- Remainders too small for the gateway to refund (below its minimum, or not a multiple of 10
-- of a three-decimal currency), credited to the payer's wallet instead.
create table settle.escrow_wallet_returns (
  id uuid primary key default gen_random_uuid(),
  order_id uuid not null references public.orders (id),
  amount bigint not null check (amount > 0),
  created_at timestamptz not null default now()
);
create index escrow_wallet_returns_order_idx on settle.escrow_wallet_returns (order_id);

-- What a paid escrow order still owes its payer: the settlement's penalty or, after a
-- cancellation, everything (the engagement's funding order); everything (any other paid order
-- of the engagement: a second payment); minus what its refunds (pending or processed) and
-- wallet returns gave back. Negative: more went back than was owed (a refund made at the
-- gateway), which the audit reports.
create function settle.escrow_owed(p_order public.orders) returns bigint
language sql stable security definer set search_path = ''
as $$
  select case when p_order.status not in ('paid', 'partially_refunded', 'refunded') then 0::bigint
    else (select case when e.funding_order_id is distinct from p_order.id then p_order.amount
                      when e.status = 'settled' then e.penalty_amount
                      when e.status = 'canceled' then p_order.amount
                      else 0 end
          from public.engagements e where e.id = p_order.engagement_id)
      - p_order.amount_refunded
      - coalesce((select sum(r.amount) from settle.escrow_wallet_returns r where r.order_id = p_order.id), 0)
    end::bigint
$$;

-- Claims up to p_limit queued orders (SKIP LOCKED, then a 5-minute lease so concurrent runs
-- split the work) and says what each owes; settle.escrow_return_owed acts on each.
create function settle.escrow_claim_refunds(p_now timestamptz default now(), p_limit integer default 100)
returns table (order_id uuid, gateway text, currency text, owed bigint)
language sql security definer set search_path = ''
as $$
  with due as (
    select q.order_id from settle.escrow_refund_queue q
    where q.next_attempt_at <= p_now
    order by q.next_attempt_at, q.order_id
    limit least(greatest(p_limit, 1), 1000)
    for update skip locked
  ), leased as (
    update settle.escrow_refund_queue q set next_attempt_at = p_now + interval '5 minutes'
    from due where q.order_id = due.order_id
    returning q.order_id
  )
  select o.id, o.gateway, o.currency, settle.escrow_owed(o)
  from leased l join public.orders o on o.id = l.order_id
$$;

-- Gives an order's owed money back, once, under the order's row lock: p_refund_amount of it as
-- a pending refund through the refunds machinery (the caller then sends it to the gateway), the
-- rest (what the gateway cannot refund) into the payer's wallet. p_expected is what the caller
-- saw owed; if that changed meanwhile nothing is done ({"changed": true}) and the order stays
-- queued. Returns {"refund", "wallet_credit", "owed"}.
create function settle.escrow_return_owed(p_order_id uuid, p_expected bigint, p_refund_amount bigint)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_order public.orders;
  v_e public.engagements;
  v_owed bigint;
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
  elsif p_refund_amount is null or p_refund_amount < 0 or p_refund_amount > v_owed then
    perform settle.fail(400, 'invalid_request', format('the refund must be between 0 and %s', v_owed));
  end if;
  select * into v_e from public.engagements where id = v_order.engagement_id;
  if p_refund_amount > 0 then
    perform set_config('settle.escrow_refund', 'on', true);
    v_refund := settle.insert_refund(v_order, p_refund_amount, 'pending', 'api',
      case when v_e.funding_order_id is distinct from v_order.id then 'escrow: a second payment returned'
           when v_e.status = 'canceled' then 'escrow: engagement canceled'
           else 'escrow: penalty for rating ' || coalesce(v_e.rating::text, 'none') end,
      null, null, null, null);
    perform set_config('settle.escrow_refund', 'off', true);
  end if;
  if p_refund_amount < v_owed then
    insert into settle.escrow_wallet_returns (order_id, amount) values (v_order.id, v_owed - p_refund_amount)
    returning id into v_return;
    perform settle.post_transaction('escrow_refund', 'escrow_wallet_return:' || v_return, v_order.id,
      'escrow returned to the wallet (too small for a gateway refund)',
      jsonb_build_array(
        jsonb_build_object('system_account', settle.escrow_refund_account(v_e.id),
          'currency', v_order.currency, 'amount', -(v_owed - p_refund_amount)),
        jsonb_build_object('wallet_id', settle.ensure_wallet(v_order.account_id, v_order.currency),
          'currency', v_order.currency, 'amount', v_owed - p_refund_amount)));
  end if;
  delete from settle.escrow_refund_queue where order_id = p_order_id;
  return jsonb_build_object('refund', case when v_refund.id is null then null else to_jsonb(v_refund) end,
    'wallet_credit', v_owed - p_refund_amount, 'owed', v_owed);
end
$$;

-- Section - settlement
-- Settles a locked engagement: the split stored on it and one balanced transaction out of
-- escrow (payee wallet, platform fee revenue, the penalty to the refund clearing account),
-- once under escrow_settlement:<id>. The penalty's refund is queued, never made here: the
-- payee's credit does not wait for the gateway.
create function settle.settle_engagement(
  p_e public.engagements, p_penalty_bps integer, p_payee_share_bps integer, p_now timestamptz
) returns public.engagements
language plpgsql security definer set search_path = ''
as $$
declare
  v_split record;
  v_e public.engagements;
  v_entries jsonb;
begin
  select * into v_split from settle.escrow_split(p_e.amount, p_penalty_bps, p_e.platform_fee_bps);
  update public.engagements
  set status = 'settled', settled_at = p_now, payee_share_bps = p_payee_share_bps,
      penalty_amount = v_split.penalty, fee_amount = v_split.fee, payee_amount = v_split.payee
  where id = p_e.id returning * into v_e;
  v_entries := jsonb_build_array(jsonb_build_object('system_account', settle.escrow_account(v_e.id),
    'currency', v_e.currency, 'amount', -v_e.amount));
  if v_split.payee > 0 then
    v_entries := v_entries || jsonb_build_array(jsonb_build_object(
      'wallet_id', settle.ensure_wallet(v_e.payee_account_id, v_e.currency),
      'currency', v_e.currency, 'amount', v_split.payee));
  end if;
  if v_split.fee > 0 then
    v_entries := v_entries || jsonb_build_array(jsonb_build_object('system_account', 'revenue:escrow_fee',
      'currency', v_e.currency, 'amount', v_split.fee));
  end if;
  if v_split.penalty > 0 then
    v_entries := v_entries || jsonb_build_array(jsonb_build_object(
      'system_account', settle.escrow_refund_account(v_e.id), 'currency', v_e.currency,
      'amount', v_split.penalty));
    perform settle.enqueue_escrow_refund(v_e.funding_order_id);
  end if;
  perform settle.post_transaction('escrow_settlement', 'escrow_settlement:' || v_e.id,
    v_e.funding_order_id, 'escrow settlement', v_entries);
  return v_e;
end
$$;

-- The batch job (POST /escrow-settle; p_now injectable for tests): funded engagements past
-- their auto-completion time complete (no rating, no penalty), then up to p_limit completed
-- engagements whose release_at has come are claimed (SKIP LOCKED: concurrent runs never wait
-- for, nor settle, the same one) and settled in this transaction. One whose funding payment
-- has an open chargeback, or was refunded at the gateway, is skipped (claimed last, so skipped
-- ones never crowd out the rest). Returns {claimed, settled, skipped, auto_completed}.
create function settle.escrow_settle(p_now timestamptz default now(), p_limit integer default 100)
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
    select * from public.engagements e
    where e.status = 'completed' and e.release_at <= p_now
    order by settle.order_has_open_dispute(e.funding_order_id), e.release_at, e.id
    limit p_limit
    for update skip locked
  loop
    v_claimed := v_claimed + 1;
    if settle.order_has_open_dispute(v_e.funding_order_id)
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

-- An operator (service role) settles a disputed engagement with the payee's share in basis
-- points: the rest is the penalty returned to the payer, and the platform fee applies to the
-- payee's part (penalty_bps = 10000 - share in the one split formula).
create function settle.resolve_engagement(p_engagement_id uuid, p_payee_share_bps integer) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  v_e public.engagements;
begin
  if p_payee_share_bps is null or p_payee_share_bps not between 0 and 10000 then
    perform settle.fail(400, 'invalid_request', 'payee_share_bps must be an integer from 0 to 10000');
  end if;
  select * into v_e from public.engagements where id = p_engagement_id for update;
  if v_e.id is null then
    perform settle.fail(404, 'not_found', 'engagement not found');
  end if;
  if v_e.status <> 'disputed' then
    perform settle.engagement_state_error(v_e, 'resolved');
  end if;
  if settle.order_has_open_dispute(v_e.funding_order_id) then
    perform settle.fail(409, 'invalid_engagement_state',
      format('engagement %s: its funding payment has an open chargeback', v_e.id));
  end if;
  v_e := settle.settle_engagement(v_e, 10000 - p_payee_share_bps, p_payee_share_bps, now());
  return jsonb_build_object('engagement', settle.engagement_json(v_e));
end
$$;

-- Section - ledger audit
-- Escrow accounts hold exactly the funded, unsettled engagements' amounts (zero once settled
-- or canceled); refund clearing accounts hold exactly what is owed back and not yet refunded;
-- no order gave back more than it owed; a settled engagement's split is the formula's and adds
-- up, and its settlement posting credited the payee's wallet with exactly payee_amount.
create function settle.ledger_audit_escrow()
returns table (invariant text, subject text, detail text)
language sql stable security definer set search_path = ''
as $$
  with escrow_ledger as (
    select e.system_account, e.currency, sum(e.amount) as total from public.ledger_entries e
    where e.system_account like 'escrow:%' group by 1, 2
  ), escrow_expected as (
    select settle.escrow_account(g.id) as system_account, g.currency, g.id,
      case when g.status in ('funded', 'completed', 'disputed') then g.amount else 0 end as total
    from public.engagements g
  ), refund_ledger as (
    select e.system_account, e.currency, sum(e.amount) as total from public.ledger_entries e
    where e.system_account like 'escrow\_refund:%' group by 1, 2
  ), refund_expected as (
    select settle.escrow_refund_account(o.engagement_id) as system_account, o.currency,
      sum(settle.escrow_owed(o)) as total
    from public.orders o where o.purpose = 'escrow' group by 1, 2
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
$$;

-- ledger_audit() runs settle.ledger_audit_escrow() with the other areas' checks (20261204000900_ledger_audit_areas.sql
-- finds every settle.ledger_audit_<area>() by name), so it is not redefined here.

-- Section - statistics
-- Beside payment_stats and wallet_spending_stats, the same pattern: aggregated with the
-- owner's rights after filtering rows by the caller (members of either side; analysts and the
-- service role everything), exposed as a security_invoker view. Per UTC day of the
-- engagement's creation and currency.
create view settle.escrow_stats_visible with (security_barrier = true) as
select
  (e.created_at at time zone 'UTC')::date as day,
  e.currency,
  count(*) as engagements_created,
  count(*) filter (where e.funded_at is not null) as engagements_funded,
  count(*) filter (where e.status = 'settled') as engagements_settled,
  count(*) filter (where e.status = 'disputed') as engagements_disputed,
  count(*) filter (where e.status = 'canceled') as engagements_canceled,
  coalesce(sum(e.amount) filter (where e.status in ('funded', 'completed', 'disputed')), 0)::bigint as held,
  coalesce(sum(e.payee_amount), 0)::bigint as released_to_payees,
  coalesce(sum(e.penalty_amount), 0)::bigint as penalties,
  coalesce(sum(e.fee_amount), 0)::bigint as platform_revenue
from public.engagements e
where settle.can_read_payment_stats(e.payer_account_id) or settle.can_read_payment_stats(e.payee_account_id)
group by 1, 2;

create view public.escrow_stats with (security_invoker = true) as
select day, currency, engagements_created, engagements_funded, engagements_settled,
  engagements_disputed, engagements_canceled, held, released_to_payees, penalties, platform_revenue
from settle.escrow_stats_visible;
comment on view public.escrow_stats is 'Escrow per UTC day of engagement creation and currency: engagements created, funded, settled, disputed (now), canceled; held = amounts in escrow now (funded, completed or disputed), released_to_payees = payee amounts credited at settlement, penalties = amounts returned to payers at settlement, platform_revenue = platform fees. Minor units. Signed-in users see engagements of their accounts (either side); payment_analyst sees all.';

-- Section - privileges
-- Engagements and policies are written only by the functions above; members read (RLS).
revoke all on public.engagements, public.escrow_policies from public, anon, authenticated, service_role;
grant select on public.engagements, public.escrow_policies to authenticated, service_role;
revoke all on settle.engagement_transitions, settle.escrow_refund_queue, settle.escrow_wallet_returns
  from public, anon, authenticated;
revoke all on settle.escrow_stats_visible, public.escrow_stats from public, anon, authenticated;
grant select on settle.escrow_stats_visible, public.escrow_stats
  to authenticated, payment_analyst, service_role;
revoke execute on all functions in schema settle from public;
grant execute on function
  settle.create_engagement(uuid, uuid, bigint, text, text, text, integer, text, text),
  settle.create_escrow_order(text, uuid, uuid, text, text),
  settle.complete_engagement(uuid, integer), settle.dispute_engagement(uuid, text),
  settle.cancel_engagement(uuid), settle.engagement_json(public.engagements)
  to authenticated, service_role;
grant execute on function settle.resolve_engagement(uuid, integer),
  settle.escrow_settle(timestamptz, integer), settle.escrow_claim_refunds(timestamptz, integer),
  settle.escrow_return_owed(uuid, bigint, bigint), settle.ledger_audit_escrow(),
  settle.escrow_split(bigint, integer, integer), settle.escrow_owed(public.orders)
  to service_role;

-- Section - the schedule (Supabase only)
-- escrow-settle every minute beside reconcile (20261121000850_schedule.sql has the helper and
-- the Vault secrets it reads); nothing is scheduled where pg_cron, pg_net or Vault are missing.
do $$
begin
  if (select count(*) from pg_available_extensions where name in ('pg_cron', 'pg_net')) < 2
     or to_regnamespace('vault') is null then
    raise notice 'settle: pg_cron, pg_net or Vault missing; escrow-settle is not scheduled here';
    return;
  end if;
  begin
    if to_regnamespace('extensions') is not null then
      create extension if not exists pg_net with schema extensions;
    else
      create extension if not exists pg_net;
    end if;
    create extension if not exists pg_cron;
    perform cron.schedule('settle-escrow-settle', '* * * * *',
      $job$select settle.invoke_edge_function('escrow-settle')$job$);
  exception when others then
    raise warning 'settle: could not schedule escrow-settle (%); schedule it by hand (Operations)', sqlerrm;
  end;
end
$$;
