// Creating orders (local first, then the gateway's) and verifying checkouts.
import { z } from "zod";
import type { App } from "../app.ts";
import type { Caller } from "../auth.ts";
import { asUser, type Sql } from "../db.ts";
import { sha256Hex } from "../crypto.ts";
import { HttpError } from "../http.ts";
import { minorFromDb } from "../money.ts";
import { GatewayError, type PaymentGateway, type PaymentResult } from "../gateways/types.ts";
import { ensureCustomer } from "./customers.ts";
import { payOrderFromWallet } from "./wallet_orders.ts";

export interface OrderRow {
  id: string;
  account_id: string;
  gateway: "razorpay" | "stripe" | "wallet";
  purpose: "wallet_topup" | "plan" | "product";
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
  gateway: z.enum(["razorpay", "stripe", "wallet"]),
  purpose: z.enum(["wallet_topup", "plan", "product"]),
  plan_id: slug.optional(),
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
  } else {
    need("amount", b.amount !== undefined, "required for purpose wallet_topup");
    need("currency", b.currency !== undefined, "required for purpose wallet_topup");
  }
  if (b.purpose !== "plan") need("plan_id", b.plan_id === undefined, "only for purpose plan");
  if (b.purpose !== "product") {
    need("product_id", b.product_id === undefined, "only for purpose product");
  }
  if (b.purpose !== "wallet_topup") {
    need("amount", b.amount === undefined, "the price comes from the catalog");
    need("currency", b.currency === undefined, "the currency comes from the catalog");
  }
});

export type CreateOrderBody = z.infer<typeof createOrderBody>;

const idempotencyKey = z.string().regex(
  /^[\x21-\x7e]{1,255}$/,
  "Idempotency-Key must be 1-255 visible ASCII characters",
);

export function publicOrder(row: OrderRow) {
  const iso = (v: string | Date | null) => v === null ? null : new Date(v).toISOString();
  return {
    id: row.id,
    status: row.status,
    purpose: row.purpose,
    plan_id: row.plan_id,
    product_id: row.product_id,
    amount: minorFromDb(row.amount),
    currency: row.currency,
    gateway: row.gateway,
    gateway_order_id: row.gateway_order_id,
    account_id: row.account_id,
    created_at: iso(row.created_at),
    paid_at: iso(row.paid_at),
  };
}

export async function createOrder(
  app: App,
  caller: Caller,
  body: CreateOrderBody,
  rawKey: string | null,
): Promise<{ status: 200 | 201; body: unknown }> {
  // Paid at once from the account's balance: no gateway order, no checkout (wallet_orders.ts).
  if (body.gateway === "wallet") return await payOrderFromWallet(app, caller, body, rawKey);
  const key = rawKey === null ? null : idempotencyKey.parse(rawKey);
  const gateway = app.gateway(body.gateway);
  if (body.amount !== undefined && body.currency) gateway.checkAmount(body.amount, body.currency);
  // The hash covers the normalized request, so key replays compare meaning, not bytes.
  const requestHash = await sha256Hex(JSON.stringify([
    body.gateway,
    body.purpose,
    body.plan_id ?? null,
    body.product_id ?? null,
    body.amount ?? null,
    body.currency ?? null,
    body.account_id ?? null,
  ]));

  const created = await asUser(app.sql, caller, async (tx) => {
    const [r] = await tx`select settle.create_order(
      ${body.gateway}, ${body.purpose}, ${body.plan_id ?? null}, ${body.product_id ?? null},
      ${body.amount ?? null}, ${body.currency ?? null}, ${body.account_id ?? null},
      ${key}, ${requestHash}) as result`;
    return r.result as { order: OrderRow; replayed: boolean };
  });

  let order = created.order;
  if (!order.gateway_order_id && order.status === "created") {
    // Stripe intents belong to the account's customer (so cards can be saved and reused).
    const customerId = gateway.name === "stripe"
      ? await ensureCustomer(app, order.account_id).catch((e) => Promise.reject(toHttp(e)))
      : undefined;
    order = await ensureGatewayOrder(app.sql, gateway, order, customerId);
  }
  if (!order.gateway_order_id) {
    throw new HttpError(409, "conflict", `order is ${order.status} and has no gateway order`);
  }
  return {
    status: created.replayed ? 200 : 201,
    body: {
      order: publicOrder(order),
      checkout: await Promise.resolve(gateway.checkout({
        gatewayOrderId: order.gateway_order_id,
        amount: minorFromDb(order.amount),
        currency: order.currency,
      })).catch((e) => Promise.reject(toHttp(e))),
    },
  };
}

/**
 * Creates the gateway's order under a row lock, so concurrent retries of one order wait for
 * each other instead of racing to the gateway; a failure is recorded and the order stays
 * retryable.
 */
async function ensureGatewayOrder(
  sql: Sql,
  gateway: PaymentGateway,
  order: OrderRow,
  customerId?: string,
) {
  let failure: unknown;
  const row = await sql.begin(async (tx) => {
    const [locked] = await tx<
      OrderRow[]
    >`select * from public.orders where id = ${order.id} for update`;
    if (locked.gateway_order_id || locked.status !== "created") return locked;
    try {
      const g = await gateway.createOrder({
        orderId: locked.id,
        accountId: locked.account_id,
        amount: minorFromDb(locked.amount),
        currency: locked.currency,
        purpose: locked.purpose,
        attempts: locked.gateway_attempts,
        customerId,
      });
      const [updated] = await tx<OrderRow[]>`
        update public.orders
        set gateway_order_id = ${g.gatewayOrderId}, gateway_attempts = gateway_attempts + 1,
            last_gateway_error = null
        where id = ${locked.id} returning *`;
      return updated;
    } catch (err) {
      failure = err;
      await tx`update public.orders
               set gateway_attempts = gateway_attempts + 1, last_gateway_error = ${
        String((err as Error)?.message ?? err).slice(0, 500)
      }
               where id = ${locked.id}`;
      return locked;
    }
  }) as OrderRow;
  if (failure !== undefined) throw toHttp(failure);
  return row;
}

export function toHttp(err: unknown): unknown {
  if (err instanceof GatewayError) {
    console.error(JSON.stringify({
      level: "warn",
      msg: "gateway error",
      gateway: err.gateway,
      error: err.message,
    }));
    return err.status === 503
      ? new HttpError(503, "gateway_unavailable", `${err.gateway} is unavailable; retry later`)
      : new HttpError(502, "gateway_error", `${err.gateway} refused the request`);
  }
  return err;
}

const verifyEnvelope = z.union([
  z.object({ razorpay_order_id: z.string() }).loose(),
  z.object({ payment_intent_id: z.string() }).loose(),
], {
  error: "send razorpay_order_id, razorpay_payment_id, razorpay_signature or payment_intent_id",
});

/** Marks the caller's order paid once the gateway's proof checks out. */
export async function verifyPayment(
  app: App,
  caller: Caller,
  body: Record<string, unknown>,
): Promise<{ order: ReturnType<typeof publicOrder> }> {
  verifyEnvelope.parse(body);
  const gatewayName = "razorpay_order_id" in body ? "razorpay" : "stripe";
  const gateway = app.gateway(gatewayName);
  const reference = gateway.verifyReference(body);

  // Read through RLS: another user's order is simply not found.
  const order = await findOwnOrder(app, caller, gatewayName, reference);
  let result: PaymentResult;
  try {
    result = await gateway.verifyCheckout({
      gatewayOrderId: order.gateway_order_id!,
      amount: minorFromDb(order.amount),
      currency: order.currency,
    }, body);
  } catch (err) {
    throw toHttp(err);
  }
  if (result.kind !== "pending") {
    const applied = await applyPayment(app.sql, gatewayName, order.gateway_order_id!, result);
    if (applied.outcome === "mismatch") {
      throw new HttpError(
        409,
        "payment_mismatch",
        "the gateway's payment does not match this order",
      );
    }
  }
  return { order: publicOrder(await findOwnOrder(app, caller, gatewayName, reference)) };
}

async function findOwnOrder(app: App, caller: Caller, gateway: string, reference: string) {
  const [order] = await asUser(
    app.sql,
    caller,
    (tx) =>
      tx<OrderRow[]>`select * from public.orders
                     where gateway = ${gateway} and gateway_order_id = ${reference}`,
  );
  if (!order) throw new HttpError(404, "not_found", "order not found");
  return order;
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
