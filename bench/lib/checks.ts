// Correctness after every phase: a fast wrong answer does not count. Each check returns a
// list of problems (empty when all is well).
import type { Sql } from "../../dev/db.ts";

export interface SentEvent {
  gatewayOrderId: string;
  eventId: string;
  amount: number;
}

// The queries join and aggregate (hash joins) rather than look up per row: ledger_transactions
// has no index on order_id, and a correlated count per order would make the checks quadratic.

/** Every event delivered was stored once, applied once, and paid its order exactly once. */
export async function checkEventsApplied(
  db: Sql,
  sent: SentEvent[],
  gateway = "razorpay",
): Promise<string[]> {
  if (sent.length === 0) return [];
  const rows = sent.map((s) => ({ o: s.gatewayOrderId, e: s.eventId, a: s.amount }));
  const [r] = await db`
    with s as (
      select * from jsonb_to_recordset(${db.json(rows)}::jsonb) as x(o text, e text, a bigint)
    ),
    so as (
      select s.*, o.id, o.status, o.amount
      from s left join public.orders o on o.gateway = ${gateway} and o.gateway_order_id = s.o
    ),
    tx as (
      select t.order_id, count(*) as n
      from public.ledger_transactions t join so on so.id = t.order_id group by t.order_id
    ),
    ev as (
      select w.event_id, count(*) filter (where w.outcome = 'applied') as applied,
             min(w.order_id::text) as order_id, count(*) as n
      from public.webhook_events w join s on w.gateway = ${gateway} and w.event_id = s.e
      group by w.event_id
    )
    select
      count(*)::int as sent,
      count(so.id)::int as found,
      count(*) filter (where so.status = 'paid' and so.amount = so.a)::int as paid,
      count(*) filter (where tx.n = 1)::int as one_ledger_tx,
      count(*) filter (where ev.n = 1 and ev.applied = 1 and ev.order_id = so.id::text)::int
        as one_applied_event
    from so left join tx on tx.order_id = so.id left join ev on ev.event_id = so.e`;
  const problems: string[] = [];
  for (const k of ["found", "paid", "one_ledger_tx", "one_applied_event"] as const) {
    if (r[k] !== r.sent) problems.push(`${k}: ${r[k]} of ${r.sent} events`);
  }
  return problems;
}

/** Orders that a client verified are paid, with one ledger transaction each. */
export async function checkOrdersPaid(
  db: Sql,
  gatewayOrderIds: string[],
  gateway = "razorpay",
): Promise<string[]> {
  if (gatewayOrderIds.length === 0) return [];
  const [r] = await db`
    with s as (select jsonb_array_elements_text(${db.json(gatewayOrderIds)}::jsonb) as o),
    so as (
      select o.id, o.status
      from s left join public.orders o on o.gateway = ${gateway} and o.gateway_order_id = s.o
    ),
    tx as (
      select t.order_id, count(*) as n
      from public.ledger_transactions t join so on so.id = t.order_id group by t.order_id
    )
    select count(*)::int as sent,
      count(*) filter (where so.status = 'paid')::int as paid,
      count(*) filter (where tx.n = 1)::int as one_ledger_tx
    from so left join tx on tx.order_id = so.id`;
  const problems: string[] = [];
  if (r.paid !== r.sent) problems.push(`paid: ${r.paid} of ${r.sent} verified orders`);
  if (r.one_ledger_tx !== r.sent) problems.push(`one_ledger_tx: ${r.one_ledger_tx} of ${r.sent}`);
  return problems;
}

/**
 * The whole database: exactly expectedPaid orders are paid, each with one balanced ledger
 * transaction, none for unpaid orders, and every wallet balance equals both its ledger entries
 * and the paid top-ups of its account.
 */
export async function checkInvariants(db: Sql, expectedPaid: number): Promise<string[]> {
  const [r] = await db`
    with tx as (
      select order_id, count(*) as n from public.ledger_transactions
      where order_id is not null group by order_id
    ),
    entries as (
      select wallet_id, sum(amount) as s from public.ledger_entries
      where wallet_id is not null group by wallet_id
    ),
    paid as (
      select account_id, currency, sum(amount) as s from public.orders
      where purpose = 'wallet_topup' and status = 'paid' group by account_id, currency
    )
    select
      (select count(*)::int from public.orders where status = 'paid') as paid,
      (select count(*)::int from public.orders o left join tx on tx.order_id = o.id
         where o.status = 'paid' and coalesce(tx.n, 0) <> 1) as paid_without_one_tx,
      (select count(*)::int from tx join public.orders o on o.id = tx.order_id
         where o.status <> 'paid') as tx_for_unpaid,
      (select count(*)::int from (
         select transaction_id from public.ledger_entries
         group by transaction_id, currency having sum(amount) <> 0) u) as unbalanced_tx,
      (select count(*)::int from public.wallets w
         left join entries e on e.wallet_id = w.id
         left join paid p on p.account_id = w.account_id and p.currency = w.currency
         where w.balance <> coalesce(e.s, 0) or w.balance <> coalesce(p.s, 0)) as wrong_balances`;
  const problems: string[] = [];
  if (r.paid !== expectedPaid) problems.push(`${r.paid} orders paid, expected ${expectedPaid}`);
  for (const k of ["paid_without_one_tx", "tx_for_unpaid", "unbalanced_tx", "wrong_balances"]) {
    if (r[k] !== 0) problems.push(`${k}: ${r[k]}`);
  }
  return problems;
}

export async function walletBalance(db: Sql, walletId: string): Promise<number> {
  const [w] = await db`select balance from public.wallets where id = ${walletId}`;
  return Number(w.balance);
}
