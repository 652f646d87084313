// The gateway audit: the gateways' own lists of payments and refunds in a time window against
// settle's orders, refunds and ledger. ledger_audit() checks settle against itself; this
// checks it against the money that really moved. Records are linked by identity only (gateway
// order/payment/refund ids, settle ids in notes/metadata), never by amount. Each difference is
// stored once in public.gateway_discrepancies (settle.record_gateway_discrepancy).
import type { App } from "../app.ts";
import type { JSONValue } from "postgres";
import { eachLimited } from "../concurrency.ts";
import type { Sql } from "../db.ts";
import { minorFromDb } from "../money.ts";
import { convergeDisputes, type DisputeCounts } from "./disputes.ts";
import { auditPayouts } from "./gateway_audit_payouts.ts";
import type { PayoutGatewayName } from "../payouts/types.ts";
import {
  type GatewayName,
  type GatewayPaymentRecord,
  type GatewayRefundRecord,
  type ListWindow,
  type PaymentGateway,
} from "../gateways/types.ts";

export type DiscrepancyKind =
  | "missing_in_settle"
  | "not_captured_at_gateway"
  | "amount_mismatch"
  | "currency_mismatch"
  | "credit_count"
  | "refund_missing_in_settle"
  | "refund_not_at_gateway"
  | "refund_amount_mismatch"
  | "payout_missing_in_settle"
  | "payout_status_mismatch"
  | "payout_amount_mismatch";

/** The columns of one detection (gateway_discrepancies), amounts in minor units. */
export interface DiscrepancyFields {
  order_id?: string | null;
  refund_id?: string | null;
  payout_id?: string | null;
  gateway_order_id?: string | null;
  gateway_payment_id?: string | null;
  gateway_refund_id?: string | null;
  /** What settle counts: the paid amount (0 when unpaid) or the processed refund (0 when not). */
  settle_amount?: number | null;
  /** What the gateway counts: the captured amount or the processed refund (0 when neither). */
  gateway_amount?: number | null;
  settle_currency?: string | null;
  gateway_currency?: string | null;
  settle_status?: string | null;
  gateway_status?: string | null;
  detail?: string | null;
}

export interface Discrepancy {
  kind: DiscrepancyKind;
  gateway: GatewayName | PayoutGatewayName;
  /**
   * Payment kinds: the gateway order id; refund kinds: the gateway refund id (else settle's id);
   * payout kinds: the gateway payout (transfer) id, else settle's payout id.
   */
  objectId: string;
  fields: DiscrepancyFields;
}

export interface GatewayAuditOptions {
  /** Unix seconds; omitted: since the last scheduled run (with an overlap), or the last 48 h. */
  from?: number;
  to?: number;
  /** Only these accounts' orders and refunds (and the gateway records that belong to them). */
  accountIds?: string[];
}

export interface GatewayAuditSummary {
  window: ListWindow;
  gateways: Partial<Record<GatewayName, { payments: number; refunds: number }>>;
  /** Payouts (Stripe: transfers) each payout gateway listed in the window. */
  payouts: Partial<Record<PayoutGatewayName, number>>;
  discrepancies: { found: number; new: number };
  /** The window's disputes read at the gateways and converged (not for an account-scoped run). */
  disputes?: DisputeCounts;
  duration_ms: number;
}

/** Default window: the last 48 h the first time; later from the previous scheduled run on. */
export const DEFAULT_WINDOW_SECONDS = 48 * 3600;
/** A default run re-reads this much of the previous run's window (late gateway writes). */
export const OVERLAP_SECONDS = 3600;
/** A default window ends this long ago: settle records a gateway's answer a moment after it. */
export const LAG_SECONDS = 300;
/** The longest window a run takes (default runs after a long pause are capped to it too). */
export const MAX_WINDOW_SECONDS = 31 * 24 * 3600;

interface SettleOrder {
  id: string;
  status: string;
  amount: number;
  currency: string;
  gateway_order_id: string | null;
  gateway_payment_id: string | null;
  credits: number;
  credited: number;
}

interface SettleRefund {
  id: string;
  order_id: string;
  status: string;
  amount: number;
  currency: string;
  gateway_refund_id: string | null;
  gateway_payment_id: string;
}

const PAID = new Set(["paid", "partially_refunded", "refunded"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function log(level: "warn" | "error", msg: string, fields: Record<string, unknown>) {
  console.error(JSON.stringify({ level, function: "gateway-audit", msg, ...fields }));
}

/** Runs the audit over every configured gateway that can list; see docs/operations.md, Gateway audit. */
export async function gatewayAudit(
  app: App,
  opts: GatewayAuditOptions = {},
): Promise<GatewayAuditSummary> {
  const started = performance.now();
  const scheduled = opts.from === undefined && opts.to === undefined && !opts.accountIds;
  const window = await auditWindow(app.sql, opts);
  const summary: GatewayAuditSummary = {
    window,
    gateways: {},
    payouts: {},
    discrepancies: { found: 0, new: 0 },
    duration_ms: 0,
  };
  const found: Discrepancy[] = [];
  let failure: unknown;
  for (const name of app.configuredGateways()) {
    const gw = app.gateway(name);
    const canList = gw.listPayments && gw.listRefunds;
    if (!canList && !(gw.orderPaymentRecords && gw.refundRecord)) continue;
    try {
      const [payments, refunds] = canList
        ? await Promise.all([gw.listPayments!(window), gw.listRefunds!(window)])
        : await readBack(app.sql, gw, window, opts.accountIds);
      // A read-back gateway is summarized only when settle had records of it to read.
      if (canList || payments.length + refunds.length > 0) {
        summary.gateways[name] = { payments: payments.length, refunds: refunds.length };
      }
      found.push(...await auditGateway(app.sql, gw, window, payments, refunds, opts.accountIds));
    } catch (err) {
      failure ??= err;
      log("error", "gateway not audited", { gateway: name, error: String(err) });
    }
  }
  const payouts = await auditPayouts(app, window, opts.accountIds);
  summary.payouts = payouts.counts;
  found.push(...payouts.found);
  failure ??= payouts.failure;
  if (!opts.accountIds) {
    // Disputes are converged, not compared: a missed dispute event is applied like the webhook.
    summary.disputes = await convergeDisputes(app, window, { limit: 0, listOnly: true });
  }
  const unique = dedupe(found);
  summary.discrepancies = { found: unique.length, new: await record(app.sql, unique) };
  // Not recorded as a run: the next default window still starts from the last complete one.
  if (failure !== undefined) throw failure;
  summary.duration_ms = Math.round(performance.now() - started);
  await app.sql`insert into settle.gateway_audit_runs (window_from, window_to, summary, scheduled)
    values (to_timestamp(${window.from}), to_timestamp(${window.to}),
            ${app.sql.json(summary as unknown as JSONValue)}, ${scheduled})`;
  if (unique.length > 0) {
    log("warn", "gateway discrepancies", { found: unique.length, new: summary.discrepancies.new });
  }
  return summary;
}

/** The window asked for, or the default one (docs/operations.md, Gateway audit). */
async function auditWindow(sql: Sql, opts: GatewayAuditOptions): Promise<ListWindow> {
  const now = Math.floor(Date.now() / 1000);
  const to = opts.to ?? Math.max(opts.from ?? 0, now - LAG_SECONDS);
  if (opts.from !== undefined) return { from: opts.from, to };
  const [last] = await sql<{ to: number }[]>`select extract(epoch from window_to)::bigint as to
    from settle.gateway_audit_runs where scheduled order by finished_at desc limit 1`;
  const from = last ? Number(last.to) - OVERLAP_SECONDS : to - DEFAULT_WINDOW_SECONDS;
  return { from: Math.max(from, to - MAX_WINDOW_SECONDS), to };
}

/** How many of settle's own records a read-back run reads per kind (oldest first). */
export const READ_BACK_LIMIT = 1000;

/**
 * For a gateway without list endpoints (PayPal has no list of orders): the gateway's records of
 * settle's own orders and refunds created in the window, read one by one. It finds settle
 * records the gateway disagrees with; a payment settle never heard of stays unseen.
 */
async function readBack(
  sql: Sql,
  gw: PaymentGateway,
  w: ListWindow,
  accountIds: string[] | undefined,
): Promise<[GatewayPaymentRecord[], GatewayRefundRecord[]]> {
  const accounts = accountIds ?? null;
  const orders = await sql<{ id: string }[]>`select gateway_order_id as id from public.orders
    where gateway = ${gw.name} and gateway_order_id is not null
      and created_at between to_timestamp(${w.from}) and to_timestamp(${w.to})
      and (${accounts}::uuid[] is null or account_id = any(${accounts}::uuid[]))
    order by created_at limit ${READ_BACK_LIMIT}`;
  const refunds = await sql<{ id: string }[]>`select gateway_refund_id as id from public.refunds
    where gateway = ${gw.name} and gateway_refund_id is not null
      and created_at between to_timestamp(${w.from}) and to_timestamp(${w.to})
      and (${accounts}::uuid[] is null or account_id = any(${accounts}::uuid[]))
    order by created_at limit ${READ_BACK_LIMIT}`;
  const payments: GatewayPaymentRecord[] = [];
  const found: GatewayRefundRecord[] = [];
  await eachLimited(orders, READS_IN_FLIGHT, async (o) => {
    payments.push(...await gw.orderPaymentRecords!(o.id));
  });
  await eachLimited(refunds, READS_IN_FLIGHT, async (r) => {
    const rec = await gw.refundRecord!(r.id);
    if (rec) found.push(rec);
  });
  return [payments, found];
}

/** One gateway's findings: settle's side is read once, after the gateway's lists. */
async function auditGateway(
  sql: Sql,
  gw: PaymentGateway,
  window: ListWindow,
  payments: GatewayPaymentRecord[],
  refunds: GatewayRefundRecord[],
  accountIds: string[] | undefined,
): Promise<Discrepancy[]> {
  const settle = await readSettle(sql, gw.name, window, payments, refunds, accountIds);
  const out = await comparePayments(gw, settle, payments, accountIds !== undefined);
  out.push(...await compareRefunds(gw, settle, refunds));
  for (const o of settle.orders) {
    const f = creditFinding(gw.name, o);
    if (f) out.push(f);
  }
  return out;
}

interface SettleSide {
  orders: SettleOrder[];
  refunds: SettleRefund[];
  orderById: Map<string, SettleOrder>;
  orderByGatewayOrder: Map<string, SettleOrder>;
  orderByPayment: Map<string, SettleOrder>;
}

/**
 * The orders and refunds the gateway records name, plus what settle counts as paid (paid_at)
 * or refunded (processed_at) in the window, with each order's payment postings in the ledger.
 */
async function readSettle(
  sql: Sql,
  gateway: GatewayName,
  w: ListWindow,
  payments: GatewayPaymentRecord[],
  refunds: GatewayRefundRecord[],
  accountIds: string[] | undefined,
): Promise<SettleSide> {
  const ids = (xs: (string | null)[]) => [...new Set(xs.filter((x): x is string => !!x))];
  const uuids = (xs: (string | null)[]) => ids(xs).filter((x) => UUID.test(x));
  const accounts = accountIds ?? null;
  const refundRows = (await sql<SettleRefund[]>`
    select r.id, r.order_id, r.status, r.amount, r.currency,
      r.gateway_refund_id, r.gateway_payment_id
    from public.refunds r
    where r.gateway = ${gateway}
      and (${accounts}::uuid[] is null or r.account_id = any(${accounts}::uuid[]))
      and (r.gateway_refund_id = any(${ids(refunds.map((r) => r.gatewayRefundId))}::text[])
        or r.id = any(${uuids(refunds.map((r) => r.settleRefundId))}::uuid[])
        or (r.status = 'processed'
            and r.processed_at between to_timestamp(${w.from}) and to_timestamp(${w.to})))`)
    .map((r) => ({ ...r, amount: minorFromDb(r.amount) }));
  const gatewayOrderIds = ids([...payments, ...refunds].map((p) => p.gatewayOrderId));
  const refundedPaymentIds = ids(refunds.map((r) => r.gatewayPaymentId));
  const namedOrderIds = uuids([
    ...payments.map((p) => p.settleOrderId),
    ...refundRows.map((r) => r.order_id),
  ]);
  // A payment's credit: a top-up, a purchase, or an engagement's funding (escrow_funding, the
  // one posting under order_paid:<id> of an escrow order).
  const orders = (await sql<SettleOrder[]>`
    select o.id, o.status, o.amount, o.currency, o.gateway_order_id,
      o.gateway_payment_id,
      (select count(*) from public.ledger_transactions t
        where t.order_id = o.id and t.kind in ('topup', 'purchase', 'escrow_funding'))::int as credits,
      (select coalesce(sum(e.amount), 0) from public.ledger_transactions t
        join public.ledger_entries e on e.transaction_id = t.id
        where t.order_id = o.id and t.kind in ('topup', 'purchase', 'escrow_funding') and e.amount > 0) as credited
    from public.orders o
    where o.gateway = ${gateway}
      and (${accounts}::uuid[] is null or o.account_id = any(${accounts}::uuid[]))
      and (o.gateway_order_id = any(${gatewayOrderIds}::text[])
        or o.gateway_payment_id = any(${refundedPaymentIds}::text[])
        or o.id = any(${namedOrderIds}::uuid[])
        or (o.status in ('paid', 'partially_refunded', 'refunded')
            and o.paid_at between to_timestamp(${w.from}) and to_timestamp(${w.to})))`)
    .map((o) => ({ ...o, amount: minorFromDb(o.amount), credited: minorFromDb(o.credited) }));
  const by = (key: (o: SettleOrder) => string | null) =>
    new Map(orders.filter((o) => key(o)).map((o) => [key(o)!, o]));
  return {
    orders,
    refunds: refundRows,
    orderById: by((o) => o.id),
    orderByGatewayOrder: by((o) => o.gateway_order_id),
    orderByPayment: by((o) => o.gateway_payment_id),
  };
}

/** Gateway reads the audit keeps in flight at once. */
const READS_IN_FLIGHT = 8;

/**
 * Listed payments by gateway order, each against its settle order; then settle's paid orders
 * the list did not show, read from the gateway directly (paid before the window, say).
 */
async function comparePayments(
  gw: PaymentGateway,
  s: SettleSide,
  payments: GatewayPaymentRecord[],
  scoped: boolean,
): Promise<Discrepancy[]> {
  const groups = new Map<string, GatewayPaymentRecord[]>();
  for (const p of payments) {
    if (p.gatewayOrderId) groups.set(p.gatewayOrderId, [...groups.get(p.gatewayOrderId) ?? [], p]);
  }
  const out: Discrepancy[] = [];
  const checked = new Set<string>();
  for (const [gatewayOrderId, recs] of groups) {
    const settleId = recs.find((r) => r.settleOrderId)?.settleOrderId;
    const order = s.orderByGatewayOrder.get(gatewayOrderId) ??
      (settleId ? s.orderById.get(settleId) : undefined);
    const captured = recs.some((r) => r.captured);
    if (order && PAID.has(order.status) && !captured) {
      continue; // its capture may predate the window: read the whole order below
    }
    if (order) {
      checked.add(order.id);
      out.push(...paymentFindings(gw.name, order, recs, gatewayOrderId));
    } else if (settleId && captured && !scoped) {
      // Captured for a settle order (metadata) that settle does not have under this id at all
      // (a run for some accounts cannot tell another account's order from a missing one).
      out.push(...paymentFindings(gw.name, null, recs, gatewayOrderId));
    }
  }
  const unseen = s.orders.filter((o) => PAID.has(o.status) && !checked.has(o.id));
  await eachLimited(unseen, READS_IN_FLIGHT, async (o) => {
    const recs = o.gateway_order_id && gw.orderPaymentRecords
      ? await gw.orderPaymentRecords(o.gateway_order_id)
      : [];
    out.push(...paymentFindings(gw.name, o, recs, o.gateway_order_id ?? o.id));
  });
  return out;
}

function paymentFindings(
  gateway: GatewayName,
  o: SettleOrder | null,
  recs: GatewayPaymentRecord[],
  objectId: string,
): Discrepancy[] {
  const captured = recs.filter((r) => r.captured);
  const pick = captured.find((r) => r.gatewayPaymentId === o?.gateway_payment_id) ?? captured[0];
  const paid = o !== null && PAID.has(o.status);
  const fields: DiscrepancyFields = {
    order_id: o?.id ?? null,
    gateway_order_id: objectId,
    gateway_payment_id: pick?.gatewayPaymentId ?? recs[0]?.gatewayPaymentId ??
      o?.gateway_payment_id ?? null,
    settle_amount: paid ? o.amount : 0,
    settle_currency: o?.currency ?? null,
    settle_status: o?.status ?? "missing",
    gateway_amount: pick ? pick.amount : 0,
    gateway_currency: pick?.currency ?? recs[0]?.currency ?? null,
    gateway_status: recs.length === 0
      ? "missing"
      : recs.map((r) => r.captured ? `${r.status} (captured)` : `${r.status} (not captured)`)
        .join(", "),
  };
  const one = (kind: DiscrepancyKind, detail: string): Discrepancy[] => [
    { kind, gateway, objectId, fields: { ...fields, detail } },
  ];
  if (pick && !paid) {
    return one(
      "missing_in_settle",
      `captured ${pick.amount} ${pick.currency}; settle order is ${fields.settle_status}`,
    );
  }
  if (!pick && paid) {
    return one(
      "not_captured_at_gateway",
      `settle paid ${o.amount} ${o.currency}; gateway: ${fields.gateway_status}`,
    );
  }
  if (!pick || !o) return [];
  if (pick.currency !== o.currency) {
    return one("currency_mismatch", `captured ${pick.currency}, settle paid ${o.currency}`);
  }
  if (pick.amount !== o.amount) {
    return one("amount_mismatch", `captured ${pick.amount}, settle paid ${o.amount} ${o.currency}`);
  }
  return [];
}

/** A paid order is credited exactly once for its amount in the ledger; an unpaid one never. */
function creditFinding(gateway: GatewayName, o: SettleOrder): Discrepancy | null {
  const paid = PAID.has(o.status);
  if (paid ? o.credits === 1 && o.credited === o.amount : o.credits === 0) return null;
  return {
    kind: "credit_count",
    gateway,
    objectId: o.gateway_order_id ?? o.id,
    fields: {
      order_id: o.id,
      gateway_order_id: o.gateway_order_id,
      gateway_payment_id: o.gateway_payment_id,
      settle_amount: o.credited,
      settle_currency: o.currency,
      settle_status: o.status,
      detail: `order ${o.status} for ${o.amount} ${o.currency}: ${o.credits} payment postings ` +
        `crediting ${o.credited}`,
    },
  };
}

/**
 * Listed refunds against settle's refund with that gateway id (or settle's id in its notes);
 * then settle's processed refunds the list did not show, read from the gateway directly.
 */
async function compareRefunds(
  gw: PaymentGateway,
  s: SettleSide,
  refunds: GatewayRefundRecord[],
): Promise<Discrepancy[]> {
  const byGatewayId = new Map(
    s.refunds.filter((r) => r.gateway_refund_id).map((r) => [
      r.gateway_refund_id!,
      r,
    ]),
  );
  const byId = new Map(s.refunds.map((r) => [r.id, r]));
  const out: Discrepancy[] = [];
  const seen = new Set<string>();
  for (const g of refunds) {
    const noted = g.settleRefundId ? byId.get(g.settleRefundId) : undefined;
    const mine = byGatewayId.get(g.gatewayRefundId) ??
      (noted && (noted.gateway_refund_id ?? g.gatewayRefundId) === g.gatewayRefundId
        ? noted
        : undefined);
    const order = mine
      ? s.orderById.get(mine.order_id)
      : (g.gatewayPaymentId ? s.orderByPayment.get(g.gatewayPaymentId) : undefined) ??
        (g.gatewayOrderId ? s.orderByGatewayOrder.get(g.gatewayOrderId) : undefined);
    if (!mine && !order) continue; // not a refund of a settle order (or of another account)
    if (mine) seen.add(mine.id);
    out.push(...refundFindings(gw.name, g, mine, order?.id ?? null));
  }
  const unseen = s.refunds.filter((r) => r.status === "processed" && !seen.has(r.id));
  await eachLimited(unseen, READS_IN_FLIGHT, async (r) => {
    const g = r.gateway_refund_id && gw.refundRecord
      ? await gw.refundRecord(r.gateway_refund_id)
      : null;
    out.push(...refundFindings(gw.name, g, r, r.order_id));
  });
  return out;
}

function refundFindings(
  gateway: GatewayName,
  g: GatewayRefundRecord | null,
  r: SettleRefund | undefined,
  orderId: string | null,
): Discrepancy[] {
  const settleDone = r?.status === "processed";
  const gatewayDone = g?.status === "processed";
  const fields: DiscrepancyFields = {
    order_id: orderId,
    refund_id: r?.id ?? null,
    gateway_refund_id: g?.gatewayRefundId ?? r?.gateway_refund_id ?? null,
    gateway_payment_id: g?.gatewayPaymentId ?? r?.gateway_payment_id ?? null,
    settle_amount: settleDone ? r.amount : 0,
    settle_currency: r?.currency ?? null,
    settle_status: r?.status ?? "missing",
    gateway_amount: gatewayDone ? g.amount : 0,
    gateway_currency: g?.currency ?? null,
    gateway_status: g?.status ?? "missing",
  };
  const objectId = fields.gateway_refund_id ?? r!.id;
  const one = (kind: DiscrepancyKind, detail: string): Discrepancy[] => [
    { kind, gateway, objectId, fields: { ...fields, detail } },
  ];
  if (gatewayDone && !settleDone) {
    return one(
      "refund_missing_in_settle",
      `gateway refunded ${g.amount} ${g.currency}; settle refund is ${fields.settle_status}`,
    );
  }
  if (settleDone && !gatewayDone) {
    return one(
      "refund_not_at_gateway",
      `settle refunded ${r.amount} ${r.currency}; gateway refund is ${fields.gateway_status}`,
    );
  }
  if (settleDone && gatewayDone && (g.amount !== r.amount || g.currency !== r.currency)) {
    return one(
      "refund_amount_mismatch",
      `gateway refunded ${g.amount} ${g.currency}, settle ${r.amount} ${r.currency}`,
    );
  }
  return [];
}

/** One detection per key (two paths may find the same thing), in key order (lock order). */
function dedupe(found: Discrepancy[]): Discrepancy[] {
  const key = (d: Discrepancy) => `${d.kind}\u0000${d.gateway}\u0000${d.objectId}`;
  const map = new Map(found.map((d) => [key(d), d]));
  return [...map.keys()].sort().map((k) => map.get(k)!);
}

/** Stores every detection in one statement; returns how many were new (or reopened). */
async function record(sql: Sql, found: Discrepancy[]): Promise<number> {
  if (found.length === 0) return 0;
  const items = found.map((d) => ({
    kind: d.kind,
    gateway: d.gateway,
    object_id: d.objectId,
    fields: d.fields,
  }));
  const [row] = await sql<{ new: number }[]>`
    select count(*) filter (where settle.record_gateway_discrepancy(
      d->>'kind', d->>'gateway', d->>'object_id', d->'fields'))::int as new
    from jsonb_array_elements(${sql.json(items as unknown as JSONValue)}) as x(d)`;
  return row.new;
}
