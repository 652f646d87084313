// Marketplace escrow: engagements (create, complete with a rating, dispute, cancel, resolve),
// the batch settlement and the return of what is owed to payers.
//
// Every rule (who may act, the state machine, the split, exactly-once ledger postings) lives in
// the settle.*engagement* SQL functions; this file validates the request's shape, maps answers,
// and makes the gateway calls the database cannot: the refunds of what is owed back to payers,
// always after the transaction that decided them, never inside one.
import { z } from "zod";
import type { App } from "../app.ts";
import { type Caller, requireServiceRole, requireUser } from "../auth.ts";
import { asUser, type Tx } from "../db.ts";
import { sha256Hex } from "../crypto.ts";
import { HttpError } from "../http.ts";
import { minorFromDb } from "../money.ts";
import type { GatewayName, PaymentGateway } from "../gateways/types.ts";
import { publicRefund, type RefundRow, submitRefund } from "./refunds.ts";

type Time = string | Date | null;
type Amount = string | number | null;

/** An engagement as settle.engagement_json returns it. */
export interface EngagementJson {
  id: string;
  status: string;
  payer_account_id: string;
  payee_account_id: string;
  amount: Amount;
  currency: string;
  title: string | null;
  reference: string | null;
  hold_hours: number;
  rating: number | null;
  funding_order_id: string | null;
  funded_at: Time;
  auto_complete_at: Time;
  completed_at: Time;
  auto_completed: boolean;
  release_at: Time;
  disputed_at: Time;
  dispute_reason: string | null;
  payee_share_bps: number | null;
  platform_fee_bps: number;
  penalty_amount: Amount;
  fee_amount: Amount;
  payee_amount: Amount;
  expected_payee_amount: Amount;
  settled_at: Time;
  canceled_at: Time;
  /** requested (by the payer or payee) or chargeback_lost; null unless canceled. */
  cancel_reason: string | null;
  created_at: Time;
}

const iso = (v: Time) => v === null ? null : new Date(v).toISOString();
const minorOrNull = (v: Amount) => v === null ? null : minorFromDb(v);

export function publicEngagement(e: EngagementJson) {
  return {
    id: e.id,
    status: e.status,
    payer_account_id: e.payer_account_id,
    payee_account_id: e.payee_account_id,
    amount: minorFromDb(e.amount!),
    currency: e.currency,
    title: e.title,
    reference: e.reference,
    hold_hours: e.hold_hours,
    rating: e.rating,
    completed_at: iso(e.completed_at),
    release_at: iso(e.release_at),
    created_at: iso(e.created_at),
    funding_order_id: e.funding_order_id,
    funded_at: iso(e.funded_at),
    auto_complete_at: iso(e.auto_complete_at),
    auto_completed: e.auto_completed,
    disputed_at: iso(e.disputed_at),
    dispute_reason: e.dispute_reason,
    payee_share_bps: e.payee_share_bps,
    platform_fee_bps: e.platform_fee_bps,
    penalty_amount: minorOrNull(e.penalty_amount),
    fee_amount: minorOrNull(e.fee_amount),
    payee_amount: minorOrNull(e.payee_amount),
    expected_payee_amount: minorOrNull(e.expected_payee_amount),
    settled_at: iso(e.settled_at),
    canceled_at: iso(e.canceled_at),
    cancel_reason: e.cancel_reason,
  };
}

// Text a person typed: no control characters, bounded.
const text = (max: number) =>
  z.string().trim().min(1).max(max).regex(
    /^[^\p{Cc}\p{Cs}]*$/u,
    "must be text without control characters",
  );

export const engagementBody = z.object({
  payee_account_id: z.uuid({ error: "must be an account id (uuid)" }),
  amount: z.number().int("must be an integer number of minor units").positive().max(
    100_000_000_000,
  ),
  currency: z.string().regex(/^[A-Za-z]{3}$/, "must be a 3-letter ISO 4217 code").transform((s) =>
    s.toUpperCase()
  ),
  title: text(200).optional(),
  reference: text(255).optional(),
  hold_hours: z.number().int("must be a whole number of hours").min(0).max(720).optional(),
  account_id: z.uuid({ error: "must be an account id (uuid)" }).optional(),
}).strict();

const completeBody = z.object({
  rating: z.number({ error: "rating must be an integer from 1 to 5" }).int(
    "rating must be an integer from 1 to 5",
  ).min(1).max(5),
}).strict();
const disputeBody = z.object({ reason: text(1000) }).strict();
const resolveBody = z.object({
  payee_share_bps: z.number().int("must be an integer number of basis points").min(0).max(10000),
}).strict();
const settleBody = z.object({
  limit: z.number().int("must be an integer").min(1).max(1000).optional(),
}).strict();

const idempotencyKey = z.string().regex(
  /^[\x21-\x7e]{1,255}$/,
  "Idempotency-Key must be 1-255 visible ASCII characters",
);
const engagementId = z.uuid({ error: "the engagement id must be a uuid" });
const listQuery = z.object({
  status: z.enum(["awaiting_payment", "funded", "completed", "disputed", "settled", "canceled"])
    .optional(),
  role: z.enum(["payer", "payee"]).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
}).strict();

/** POST /engagements: the payer's owner creates an engagement awaiting payment. */
export async function createEngagement(
  app: App,
  caller: Caller,
  body: Record<string, unknown>,
  rawKey: string | null,
): Promise<{ status: 200 | 201; body: unknown }> {
  const user = requireUser(caller);
  const b = engagementBody.parse(body);
  const key = rawKey === null ? null : idempotencyKey.parse(rawKey);
  const hash = await sha256Hex(JSON.stringify([
    b.payee_account_id,
    b.amount,
    b.currency,
    b.title ?? null,
    b.reference ?? null,
    b.hold_hours ?? null,
    b.account_id ?? null,
  ]));
  const r = await asUser(app.sql, user, async (tx) => {
    const [row] = await tx`select settle.create_engagement(${b.account_id ?? null},
      ${b.payee_account_id}, ${b.amount}, ${b.currency}, ${b.title ?? null}, ${b.reference ?? null},
      ${b.hold_hours ?? 24}, ${key}, ${hash}) as result`;
    return row.result as { engagement: EngagementJson; replayed: boolean };
  });
  return {
    status: r.replayed ? 200 : 201,
    body: { engagement: publicEngagement(r.engagement) },
  };
}

/** GET /engagements: those of the caller's accounts, either side (RLS), newest first. */
export async function listEngagements(app: App, caller: Caller, params: URLSearchParams) {
  const q = listQuery.parse(Object.fromEntries(params));
  const rows = await asUser(
    app.sql,
    caller,
    (tx) =>
      tx<{ e: EngagementJson }[]>`select settle.engagement_json(e) as e from public.engagements e
      where (${q.status ?? null}::text is null or e.status = ${q.status ?? null})
        and (${q.role ?? null}::text is null
             or (${q.role ?? null} = 'payer' and settle.is_member(e.payer_account_id))
             or (${q.role ?? null} = 'payee' and settle.is_member(e.payee_account_id)))
      order by e.created_at desc, e.id limit ${q.limit}`,
  );
  return { engagements: rows.map((r) => publicEngagement(r.e)) };
}

/** GET /engagements/{id}: 404 unless the caller is a member of either side. */
export async function getEngagement(app: App, caller: Caller, id: string) {
  const eid = engagementId.parse(id);
  const [row] = await asUser(
    app.sql,
    caller,
    (tx) =>
      tx<{ e: EngagementJson }[]>`select settle.engagement_json(e) as e from public.engagements e
      where e.id = ${eid}`,
  );
  if (!row) throw new HttpError(404, "not_found", "engagement not found");
  return { engagement: publicEngagement(row.e) };
}

type Action = "complete" | "dispute" | "cancel" | "resolve";

/** POST /engagements/{id}/{action}: one SQL function each; cancel then returns the funding. */
export async function engagementAction(
  app: App,
  caller: Caller,
  id: string,
  action: Action,
  body: Record<string, unknown>,
) {
  const eid = engagementId.parse(id);
  if (action === "resolve") {
    requireServiceRole(caller, "only an operator (service role) resolves a dispute");
    const { payee_share_bps } = resolveBody.parse(body);
    const [row] = await app.sql`select settle.resolve_engagement(${eid}, ${payee_share_bps})
      as result`;
    const e = (row.result as { engagement: EngagementJson }).engagement;
    const returned = await returnOwedOf(app, e.funding_order_id);
    return { engagement: publicEngagement(e), refund: returned };
  }
  const user = requireUser(caller);
  let call: (tx: Tx) => Promise<{ result: unknown }[]>;
  if (action === "complete") {
    const { rating } = completeBody.parse(body);
    call = (tx) => tx`select settle.complete_engagement(${eid}, ${rating}) as result`;
  } else if (action === "dispute") {
    const { reason } = disputeBody.parse(body);
    call = (tx) => tx`select settle.dispute_engagement(${eid}, ${reason}) as result`;
  } else {
    if (Object.keys(body).length > 0) {
      throw new HttpError(400, "invalid_request", "cancel takes no options");
    }
    call = (tx) => tx`select settle.cancel_engagement(${eid}) as result`;
  }
  const [row] = await asUser(app.sql, user, call);
  const e = (row.result as { engagement: EngagementJson }).engagement;
  if (action !== "cancel") return { engagement: publicEngagement(e) };
  return { engagement: publicEngagement(e), refund: await returnOwedOf(app, e.funding_order_id) };
}

// Section - returning what is owed

/**
 * The largest part of `owed` the gateway takes as a refund, by the gateway's own rule
 * (checkRefundAmount: Razorpay's three-decimal amounts end in 0, PayPal takes HUF and TWD in
 * whole units, minimums): `owed` rounded down to 1, 10, 100 or 1000 minor units, the first it
 * accepts, else 0. The rest goes to the payer's wallet.
 */
export function refundablePart(gateway: PaymentGateway, owed: number, currency: string): number {
  for (const step of [1, 10, 100, 1000]) {
    const candidate = owed - (owed % step);
    if (candidate <= 0) return 0;
    try {
      gateway.checkRefundAmount(candidate, currency);
      return candidate;
    } catch {
      // Not this granularity: try a coarser one.
    }
  }
  return 0;
}

interface Owed {
  order_id: string;
  gateway: GatewayName;
  currency: string;
  owed: string | number;
}

/**
 * Gives one order's owed money back: counted in the database (once, under the order's lock),
 * then, with no transaction held, sent to the gateway. A refusal fails the refund, which
 * requeues the order for a later run; an outage leaves it pending for reconcile's retry.
 */
async function returnOwed(app: App, o: Owed): Promise<RefundRow | null> {
  const owed = minorFromDb(o.owed);
  const amount = owed > 0 ? refundablePart(app.gateway(o.gateway), owed, o.currency) : 0;
  const [row] = await app.sql`select settle.escrow_return_owed(${o.order_id}, ${owed}, ${amount})
    as result`;
  const refund = (row.result as { refund: RefundRow | null }).refund;
  if (!refund) return null;
  return await submitRefund(app, refund, { throwOnError: false });
}

async function returnOwedOf(app: App, orderId: string | null) {
  if (orderId === null) return null;
  const [o] = await app.sql<Owed[]>`select o.id as order_id, o.gateway, o.currency,
    settle.escrow_owed(o) as owed from public.orders o where o.id = ${orderId}`;
  if (!o || minorFromDb(o.owed) <= 0) return null;
  try {
    const refund = await returnOwed(app, o);
    return refund && publicRefund(refund);
  } catch (err) {
    // The action is done; the queued order is returned by the next escrow-settle run.
    logWarn("escrow return failed", o.order_id, err);
    return null;
  }
}

function logWarn(msg: string, orderId: string, err: unknown) {
  console.error(JSON.stringify({
    level: "warn",
    msg,
    order_id: orderId,
    error: String((err as Error)?.message ?? err).slice(0, 200),
  }));
}

const MAX_BATCHES = 10;
const DEFAULT_BATCH = 100;

/**
 * POST /escrow-settle: settles due engagements in batches (each its own transaction, claimed
 * with SKIP LOCKED), then returns what is owed to payers (penalties, cancellations, second
 * payments), each refund sent after its transaction.
 */
export async function escrowSettle(app: App, caller: Caller, body: Record<string, unknown>) {
  requireServiceRole(caller, "only the service role may run escrow settlement");
  const limit = settleBody.parse(body).limit ?? DEFAULT_BATCH;
  const totals = { claimed: 0, settled: 0, skipped: 0, auto_completed: 0 };
  for (let i = 0; i < MAX_BATCHES; i++) {
    const [row] = await app.sql`select settle.escrow_settle(now(), ${limit}) as r`;
    const r = row.r as typeof totals;
    for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += r[k];
    if (r.claimed < limit || r.settled + r.auto_completed === 0) break;
  }
  const owed = await app.sql<Owed[]>`select * from settle.escrow_claim_refunds(now(), ${limit})`;
  let refunds = 0;
  let refundErrors = 0;
  for (const o of owed) {
    try {
      if (await returnOwed(app, o)) refunds++;
    } catch (err) {
      refundErrors++;
      logWarn("escrow refund failed", o.order_id, err);
    }
  }
  return { ...totals, refunds_created: refunds, refund_errors: refundErrors };
}
