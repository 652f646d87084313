// Refunds: counted (and the wallet debited) in the database first, then asked of the gateway.
//
// The database decides whether a refund may exist (owner, paid order, the bound, the wallet,
// and for a signed-in buyer the refund policy: settle.user_refund_allowance) and counts it as
// pending before any gateway call, so a refund that would take a wallet below
// zero is refused before the gateway hears of it. The gateway call carries an idempotency key
// derived from settle's refund id: a retry (the client's, or reconciliation's) never refunds
// twice. Refund webhooks converge on the same row (settle.apply_refund_event) by identity only:
// the gateway refund id the API returned, or settle's refund id sent in notes/metadata.
import { z } from "zod";
import type { App } from "../app.ts";
import type { Caller } from "../auth.ts";
import { asUser, type Tx } from "../db.ts";
import { sha256Hex } from "../crypto.ts";
import { HttpError } from "../http.ts";
import { optionalIdempotencyKey } from "../idempotency.ts";
import { minorFromDb } from "../money.ts";
import { GatewayError, type GatewayName, type RefundResult } from "../gateways/types.ts";
import { refusedByGateway } from "../gateways/outcome.ts";
import { type OrderRow, publicOrder } from "./orders.ts";

export interface RefundRow {
  id: string;
  order_id: string;
  account_id: string;
  gateway: GatewayName;
  gateway_refund_id: string | null;
  gateway_payment_id: string;
  amount: string | number;
  currency: string;
  status: "pending" | "processed" | "failed";
  source: "api" | "gateway";
  /** settle: asked through settle's API; gateway: made at the gateway (its dashboard). */
  origin: "settle" | "gateway";
  reason: string | null;
  failure_reason: string | null;
  created_at: string | Date;
  processed_at: string | Date | null;
  failed_at: string | Date | null;
}

// Text a person typed: no control characters (NUL, escapes), bounded.
const reasonText = z.string().trim().min(1).max(500).regex(
  /^[^\p{Cc}\p{Cs}]*$/u,
  "must be printable text without control characters",
);

export const refundBody = z.object({
  order_id: z.uuid({ error: "must be an order id (uuid)" }),
  amount: z.number().int("must be an integer number of minor units").positive().max(
    100_000_000_000,
  ).optional(),
  reason: reasonText.optional(),
}).strict();

const listQuery = z.object({ order_id: z.uuid({ error: "order_id must be a uuid" }) });

export function publicRefund(r: RefundRow) {
  const iso = (v: string | Date | null) => v === null ? null : new Date(v).toISOString();
  return {
    id: r.id,
    order_id: r.order_id,
    status: r.status,
    amount: minorFromDb(r.amount),
    currency: r.currency,
    gateway: r.gateway,
    gateway_refund_id: r.gateway_refund_id,
    source: r.source,
    origin: r.origin,
    reason: r.reason,
    failure_reason: r.failure_reason,
    created_at: iso(r.created_at),
    processed_at: iso(r.processed_at),
  };
}

/** POST /refunds: an owner of the order's account, or the service role. */
export async function createRefund(
  app: App,
  caller: Caller,
  body: Record<string, unknown>,
  rawKey: string | null,
): Promise<{ status: 200 | 201; body: unknown }> {
  const input = refundBody.parse(body);
  const key = optionalIdempotencyKey(rawKey);
  const requestHash = await sha256Hex(
    JSON.stringify([input.order_id, input.amount ?? null, input.reason ?? null]),
  );

  const work = async (tx: Tx) => {
    // The gateway's own limits (minimum refund, three-decimal rounding) are checked before
    // anything is written. Read through RLS for a user: an invisible order falls through to
    // the function, which answers 404.
    const [order] = await tx<Pick<OrderRow, "gateway" | "currency" | "amount" | "purpose">[]>`
      select gateway, currency, amount - amount_refunded as amount, purpose
      from public.orders where id = ${input.order_id}`;
    // Escrow money leaves only by cancelling or settling the engagement (the database refuses
    // it too, after the buyer's refund policy has spoken: this answer comes first).
    if (order?.purpose === "escrow") {
      throw new HttpError(
        409,
        "escrow_refund_not_allowed",
        "an escrow order is refunded only by cancelling or settling its engagement",
      );
    }
    // A wallet order's refund goes back to the wallet: no gateway, no gateway limits.
    if (
      order && order.gateway !== "wallet" &&
      (input.amount !== undefined || minorFromDb(order.amount) > 0)
    ) {
      app.gateway(order.gateway).checkRefundAmount(
        input.amount ?? minorFromDb(order.amount),
        order.currency,
      );
    }
    const [r] = caller.role === "service_role"
      ? await tx`select settle.create_refund(${input.order_id}, ${input.amount ?? null},
          ${input.reason ?? null}, ${key}, ${requestHash}, null) as result`
      : await tx`select settle.request_refund(${input.order_id}, ${input.amount ?? null},
          ${input.reason ?? null}, ${key}, ${requestHash}) as result`;
    return r.result as { refund: RefundRow; replayed: boolean };
  };
  const created = caller.role === "service_role"
    ? await app.sql.begin((tx) => work(tx)) as Awaited<ReturnType<typeof work>>
    : await asUser(app.sql, caller, work);

  let refund = created.refund;
  if (refund.status === "pending" && refund.gateway_refund_id === null) {
    refund = await submitRefund(app, refund, { throwOnError: true });
  }
  const [order] = await app.sql<OrderRow[]>`select * from public.orders
                                            where id = ${refund.order_id}`;
  return {
    status: created.replayed ? 200 : 201,
    body: { refund: publicRefund(refund), order: publicOrder(order) },
  };
}

/**
 * Sends a counted refund to its gateway and records the answer. A refusal (the gateway said
 * no) fails the refund, which reverses it; an outage leaves it pending for a retry under the
 * same idempotency key.
 */
export async function submitRefund(
  app: App,
  refund: RefundRow,
  opts: { throwOnError: boolean },
): Promise<RefundRow> {
  const gateway = app.gateway(refund.gateway);
  const [order] = await app.sql<OrderRow[]>`select * from public.orders
                                            where id = ${refund.order_id}`;
  let result: RefundResult;
  try {
    result = await gateway.refund({
      refundId: refund.id,
      orderId: order.id,
      gatewayOrderId: order.gateway_order_id!,
      gatewayPaymentId: refund.gateway_payment_id,
      amount: minorFromDb(refund.amount),
      currency: refund.currency,
      idempotencyKey: `settle-refund-${refund.id}`,
    });
  } catch (err) {
    const refused = refusedByGateway(err);
    const message = String((err as Error)?.message ?? err).slice(0, 500);
    const [row] = await app.sql`select settle.record_refund_result(${refund.id}, null,
      ${refused ? "failed" : null}, ${refused ? message : null}, ${message}) as result`;
    if (opts.throwOnError) {
      // Not refused means not known: the client is told to retry (503), as for an outage.
      throw err instanceof GatewayError && !refused
        ? new GatewayError(503, err.gateway, err.message, err.detail)
        : err;
    }
    return row.result as RefundRow;
  }
  const [row] = await app.sql`select settle.record_refund_result(${refund.id},
    ${result.gatewayRefundId}, ${result.status}, ${result.failureReason ?? null}, null) as result`;
  return row.result as RefundRow;
}

/**
 * Reconciliation's step for refunds: pending ones never sent (or whose answer was lost) are
 * sent again under their idempotency key; pending ones the gateway knows are re-read.
 * Claims rows with SKIP LOCKED so concurrent reconcilers split the work.
 */
export async function reconcileRefunds(
  app: App,
  opts: { limit: number; olderThanSeconds: number },
): Promise<{ refunds_checked: number; refunds_settled: number; refund_errors: number }> {
  const claimed = await app.sql.begin(async (tx) => {
    const rows = await tx<RefundRow[]>`
      select * from public.refunds
      where status = 'pending'
        and updated_at < now() - make_interval(secs => ${opts.olderThanSeconds})
      order by updated_at limit ${opts.limit}
      for update skip locked`;
    if (rows.length) {
      // Touching updated_at is the lease: another reconciler skips these until it ages again.
      await tx`update public.refunds set updated_at = now()
               where id in ${tx(rows.map((r) => r.id))}`;
    }
    return rows;
  });
  let settled = 0;
  let errors = 0;
  for (const refund of claimed) {
    try {
      let after: RefundRow;
      if (refund.gateway_refund_id === null) {
        after = await submitRefund(app, refund, { throwOnError: false });
      } else {
        const r = await app.gateway(refund.gateway).fetchRefund(refund.gateway_refund_id);
        const [row] = await app.sql`select settle.record_refund_result(${refund.id},
          ${r.gatewayRefundId}, ${r.status}, ${r.failureReason ?? null}, null) as result`;
        after = row.result as RefundRow;
      }
      if (after.status !== "pending") settled++;
    } catch (err) {
      errors++;
      console.error(JSON.stringify({
        level: "warn",
        msg: "refund reconcile failed",
        refund_id: refund.id,
        error: String((err as Error)?.message ?? err).slice(0, 200),
      }));
    }
  }
  return { refunds_checked: claimed.length, refunds_settled: settled, refund_errors: errors };
}

/** GET /refunds?order_id=: the order's refunds, through RLS. */
export async function listRefunds(app: App, caller: Caller, params: URLSearchParams) {
  const { order_id } = listQuery.parse({ order_id: params.get("order_id") ?? undefined });
  const rows = await asUser(app.sql, caller, async (tx) => {
    const [order] = await tx`select id from public.orders where id = ${order_id}`;
    if (!order) throw new HttpError(404, "not_found", "order not found");
    return await tx<RefundRow[]>`select * from public.refunds where order_id = ${order_id}
                                 order by created_at, id`;
  });
  return { refunds: rows.map(publicRefund) };
}
