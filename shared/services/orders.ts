// Creating orders (local first, then the gateway's) and verifying checkouts.
import { z } from "zod";
import type { App } from "../app.ts";
import type { Caller } from "../auth.ts";
import { asUser, type Sql, sqlCall, sqlValue, type Tx } from "../db.ts";
import { optionalIdempotencyKey, orderRequestHash } from "../idempotency.ts";
import { HttpError } from "../http.ts";
import { minorFromDb } from "../money.ts";
import { outcomeUnknown } from "../gateways/outcome.ts";
import type { GatewayName, PaymentGateway, PaymentResult } from "../gateways/types.ts";
import { type CustomerGateway, ensureCustomer } from "./customers.ts";
import { payOrderFromWallet } from "./wallet_orders.ts";

export interface OrderRow {
  id: string;
  account_id: string;
  gateway: "razorpay" | "stripe" | "paypal" | "wallet";
  purpose: "wallet_topup" | "plan" | "product" | "escrow";
  engagement_id?: string | null;
  plan_id: string | null;
  product_id: string | null;
  amount: string | number;
  currency: string;
  status: string;
  gateway_order_id: string | null;
  gateway_attempts: number;
  paid_at: string | Date | null;
  created_at: string | Date;
}

const slug = z.string().regex(/^[a-z0-9_-]{1,64}$/, "must be an id of letters, digits, _ or -");

export const createOrderBody = z.object({
  gateway: z.enum(["razorpay", "stripe", "paypal", "wallet"]),
  purpose: z.enum(["wallet_topup", "plan", "product", "escrow"]),
  plan_id: slug.optional(),
  engagement_id: z.uuid({ error: "must be an engagement id (uuid)" }).optional(),
  product_id: slug.optional(),
  amount: z.number().int("must be an integer number of minor units").positive().max(
    100_000_000_000,
  ).optional(),
  currency: z.string().regex(/^[A-Za-z]{3}$/, "must be a 3-letter ISO 4217 code").transform((
    s,
  ) => s.toUpperCase()).optional(),
  account_id: z.uuid().optional(),
}).strict().superRefine((b, ctx) => {
  const need = (field: keyof typeof b, ok: boolean, message: string) => {
    if (!ok) ctx.addIssue({ code: "custom", path: [field], message });
  };
  if (b.purpose === "plan") {
    need("plan_id", b.plan_id !== undefined, "required for purpose plan");
  } else if (b.purpose === "product") {
    need("product_id", b.product_id !== undefined, "required for purpose product");
  } else if (b.purpose === "escrow") {
    need("engagement_id", b.engagement_id !== undefined, "required for purpose escrow");
    need("gateway", b.gateway !== "wallet", "an engagement is funded through a gateway");
  } else {
    need("amount", b.amount !== undefined, "required for purpose wallet_topup");
    need("currency", b.currency !== undefined, "required for purpose wallet_topup");
  }
  if (b.purpose !== "escrow") {
    need("engagement_id", b.engagement_id === undefined, "only for purpose escrow");
  }
  if (b.purpose !== "plan") need("plan_id", b.plan_id === undefined, "only for purpose plan");
  if (b.purpose !== "product") {
    need("product_id", b.product_id === undefined, "only for purpose product");
  }
  if (b.purpose !== "wallet_topup") {
    const from = b.purpose === "escrow" ? "the engagement" : "the catalog";
    need("amount", b.amount === undefined, `the price comes from ${from}`);
    need("currency", b.currency === undefined, `the currency comes from ${from}`);
  }
});

export type CreateOrderBody = z.infer<typeof createOrderBody>;

export function publicOrder(row: OrderRow) {
  const iso = (v: string | Date | null) => v === null ? null : new Date(v).toISOString();
  return {
    id: row.id,
    status: row.status,
    purpose: row.purpose,
    plan_id: row.plan_id,
    product_id: row.product_id,
    ...(row.purpose === "escrow" ? { engagement_id: row.engagement_id ?? null } : {}),
    amount: minorFromDb(row.amount),
    currency: row.currency,
    gateway: row.gateway,
    gateway_order_id: row.gateway_order_id,
    account_id: row.account_id,
    created_at: iso(row.created_at),
    paid_at: iso(row.paid_at),
  };
}

/** What creating (or replaying) an order answers: the order, and whether this request claimed its call. */
interface Claimed {
  order: OrderRow;
  replayed: boolean;
  /** This request holds the order's gateway call (a fresh claim, a lapsed one taken over). */
  claimed: boolean;
  /** The account's customer at the order's gateway, when one is stored. */
  customer_id?: string | null;
}

/** Added to a gateway call's longest time for its claim: latency, a slow database. */
const CLAIM_MARGIN_MS = 2000;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function createOrder(
  app: App,
  caller: Caller,
  body: CreateOrderBody,
  rawKey: string | null,
): Promise<{ status: 200 | 201; body: unknown }> {
  // Paid at once from the account's balance: no gateway order, no checkout (wallet_orders.ts).
  if (body.gateway === "wallet") return await payOrderFromWallet(app, caller, body, rawKey);
  const key = optionalIdempotencyKey(rawKey);
  const gateway = app.gateway(body.gateway);
  if (body.amount !== undefined && body.currency) gateway.checkAmount(body.amount, body.currency);
  const requestHash = orderRequestHash(body);
  const claim = crypto.randomUUID();
  const leaseMs = gateway.orderCallBudgetMs + CLAIM_MARGIN_MS;

  // One statement in the user's transaction: the order, already claimed for its gateway call
  // when it is new, and the account's gateway customer (settle.create_order, 11 arguments).
  const created = await asUser(app.sql, caller, async (tx): Promise<Claimed> => {
    if (body.purpose === "escrow") return await escrowOrder(tx, gateway, body, key, requestHash);
    // Literals, not parameters (sqlCall): one round trip, as for the claims before it.
    const [r] = await tx.unsafe(sqlCall("settle.create_order", [
      body.gateway,
      body.purpose,
      body.plan_id,
      body.product_id,
      body.amount,
      body.currency,
      body.account_id,
      key,
      requestHash,
      claim,
      leaseMs,
    ]));
    const result = r.result as Claimed;
    // Catalog prices too must be amounts the gateway takes (PayPal has no INR, no HUF
    // fractions): refused inside the transaction, so nothing is written.
    gateway.checkAmount(minorFromDb(result.order.amount), result.order.currency);
    return result;
  });
  // An engagement's order is made by its own function, then claimed as a replay would be.
  const start = body.purpose === "escrow" && !created.order.gateway_order_id &&
      created.order.status === "created"
    ? await claimGatewayOrder(app.sql, created.order.id, claim, leaseMs)
    : created;
  const order = await ensureGatewayOrder(app, gateway, start, claim, leaseMs);
  if (!order.gateway_order_id) {
    throw new HttpError(409, "conflict", `order is ${order.status} and has no gateway order`);
  }
  return {
    status: created.replayed ? 200 : 201,
    body: {
      order: publicOrder(order),
      checkout: await gateway.checkout({
        gatewayOrderId: order.gateway_order_id,
        amount: minorFromDb(order.amount),
        currency: order.currency,
      }),
    },
  };
}

/**
 * An engagement's funding order (settle.create_escrow_order): the amount and currency are the
 * engagement's, read through RLS first so the gateway's own limits are checked before anything
 * is written (an invisible engagement falls through to the function, which answers 404).
 */
async function escrowOrder(
  tx: Tx,
  gateway: PaymentGateway,
  body: CreateOrderBody,
  key: string | null,
  requestHash: string,
): Promise<Claimed> {
  const [e] = await tx<{ amount: string; currency: string }[]>`select amount, currency
    from public.engagements where id = ${body.engagement_id!}`;
  if (e) gateway.checkAmount(minorFromDb(e.amount), e.currency);
  const [r] = await tx`select settle.create_escrow_order(${body.gateway}, ${body.engagement_id!},
    ${body.account_id ?? null}, ${key}, ${requestHash}) as result`;
  return { ...(r.result as { order: OrderRow; replayed: boolean }), claimed: false };
}

/** One try at the claim on an order's gateway call (settle.claim_gateway_order). */
async function claimGatewayOrder(
  sql: Sql,
  orderId: string,
  claim: string,
  leaseMs: number,
): Promise<Claimed> {
  const [{ r }] = await sql`select settle.claim_gateway_order(${orderId}, ${claim},
    ${leaseMs}) as r`;
  return { order: r.order as OrderRow, replayed: true, claimed: r.claimed };
}

/**
 * Gives the order its gateway order with no transaction, row lock or pooled connection held
 * while the gateway works: the call is claimed on the row (by create_order itself for a new
 * order), made, and its answer recorded in one short statement. A concurrent request for the
 * same order waits for the claimer's answer, re-trying the claim after short pauses (no lock
 * held); it takes over a claim whose lease ran out (the claimer died) or that a failure freed,
 * and its call looks the gateway order up first (Razorpay receipt, Stripe idempotency key), so
 * no second one is made.
 */
async function ensureGatewayOrder(
  app: App,
  gateway: PaymentGateway,
  start: Claimed,
  claim: string,
  leaseMs: number,
): Promise<OrderRow> {
  const giveUpAt = Date.now() + leaseMs + CLAIM_MARGIN_MS;
  let state = start;
  for (let wait = 20;; wait = Math.min(wait * 2, 200)) {
    const row = state.order;
    if (state.claimed) return await callGateway(app, gateway, row, claim, state.customer_id);
    if (row.gateway_order_id || row.status !== "created") return row;
    if (Date.now() + wait > giveUpAt) {
      throw new HttpError(
        503,
        "gateway_unavailable",
        `${gateway.name} is still creating this order; retry later`,
      );
    }
    await pause(wait);
    state = await claimGatewayOrder(app.sql, row.id, claim, leaseMs);
  }
}

/**
 * The claimed call: its answer is recorded (first answer wins). A refusal frees the claim; a
 * failure whose outcome is unknown (a timeout: the gateway may still make the order) keeps it
 * until its lease ends, so the request that takes it over looks the order up first, unless the
 * gateway's own idempotency makes a second order impossible anyway. A gateway whose orders
 * belong to a customer gets the account's (created on its first order, under the claim).
 */
async function callGateway(
  app: App,
  gateway: PaymentGateway,
  row: OrderRow,
  claim: string,
  knownCustomer?: string | null,
): Promise<OrderRow> {
  let gatewayOrderId: string;
  try {
    const customerId = gateway.createCustomer
      ? knownCustomer ?? await ensureCustomer(app, row.account_id, gateway as CustomerGateway)
      : undefined;
    ({ gatewayOrderId } = await gateway.createOrder({
      orderId: row.id,
      accountId: row.account_id,
      amount: minorFromDb(row.amount),
      currency: row.currency,
      purpose: row.purpose,
      // The claim counted this call already: the attempts before it.
      attempts: row.gateway_attempts - 1,
      customerId,
    }));
  } catch (err) {
    // Diagnostic text from the gateway's answer: a NUL in it would make the statement that
    // releases the claim fail (sqlLiteral refuses one, as Postgres text does).
    const message = String((err as Error)?.message ?? err).replaceAll("\0", "").slice(0, 500);
    const unknown = outcomeUnknown(err) && !gateway.idempotentOrders;
    await app.sql.unsafe(
      sqlCall("settle.record_gateway_order", [row.id, claim, null, message, unknown]),
    );
    throw err;
  }
  const [{ result }] = await app.sql.unsafe(
    sqlCall("settle.record_gateway_order", [row.id, claim, gatewayOrderId, null, false]),
  );
  return result.order as OrderRow;
}

/** The field that names the gateway order in a verify body, per gateway. */
const VERIFY_KEYS: Record<string, GatewayName> = {
  razorpay_order_id: "razorpay",
  payment_intent_id: "stripe",
  paypal_order_id: "paypal",
};

const verifyEnvelope = z.record(z.string(), z.unknown()).refine(
  (b) => Object.keys(VERIFY_KEYS).filter((k) => typeof b[k] === "string").length === 1,
  {
    error: "send razorpay_order_id, razorpay_payment_id, razorpay_signature, " +
      "payment_intent_id or paypal_order_id",
  },
);

/**
 * Applies what the gateway says about the caller's order once its proof checks out: paid only
 * for money the gateway reports captured (a Razorpay signature alone proves an authorization).
 */
export async function verifyPayment(
  app: App,
  caller: Caller,
  body: Record<string, unknown>,
): Promise<{ order: ReturnType<typeof publicOrder> }> {
  verifyEnvelope.parse(body);
  const gatewayName =
    VERIFY_KEYS[Object.keys(VERIFY_KEYS).find((k) => typeof body[k] === "string")!];
  const gateway = app.gateway(gatewayName);
  const reference = gateway.verifyReference(body);

  // Read through RLS: another user's order is simply not found.
  const order = await findOwnOrder(app, caller, gatewayName, reference);
  const result = await gateway.verifyCheckout({
    gatewayOrderId: order.gateway_order_id!,
    amount: minorFromDb(order.amount),
    currency: order.currency,
  }, body);
  // One statement: the result through the payment path, and that same order as it is now.
  const applied = await applyCheckoutResult(app.sql, gatewayName, order.gateway_order_id!, result);
  if (applied.outcome === "mismatch") {
    throw new HttpError(409, "payment_mismatch", "the gateway's payment does not match this order");
  }
  return { order: publicOrder(applied.order) };
}

async function findOwnOrder(app: App, caller: Caller, gateway: string, reference: string) {
  const [order] = await asUser(
    app.sql,
    caller,
    (tx) =>
      tx.unsafe<OrderRow[]>(
        `select * from public.orders where gateway = ${sqlValue(gateway)} and gateway_order_id = ${
          sqlValue(reference)
        }`,
      ),
  );
  if (!order) throw new HttpError(404, "not_found", "order not found");
  return order;
}

/**
 * A verified checkout's result through settle.apply_payment (nothing for "pending"), and the
 * order after it: for an order the caller has just read through RLS (its owner never changes).
 */
async function applyCheckoutResult(
  sql: Sql,
  gateway: string,
  gatewayOrderId: string,
  r: PaymentResult,
): Promise<{ outcome: string; order: OrderRow }> {
  const [row] = await sql.unsafe(
    sqlCall("settle.apply_checkout_result", [
      gateway,
      r.kind,
      gatewayOrderId,
      r.gatewayPaymentId,
      r.amount,
      r.currency,
      r.failureCode,
      r.failureReason,
    ]),
  );
  return row.result;
}

/** The one SQL path for payment effects (shared with webhooks and reconciliation). */
export async function applyPayment(
  sql: Sql,
  gateway: string,
  gatewayOrderId: string,
  r: PaymentResult,
): Promise<{ outcome: string; status?: string }> {
  const [row] = await sql`select settle.apply_payment(${gateway}, ${r.kind}, ${gatewayOrderId},
    ${r.gatewayPaymentId}, ${r.amount}, ${r.currency}, ${r.failureCode ?? null},
    ${r.failureReason ?? null}) as result`;
  return row.result;
}
