// Webhook ingestion: verified on the raw body, stored once, applied in the same transaction.
// The gateway's parseWebhook says where each event goes (WebhookEvent's route); this file only
// dispatches, and never asks which gateway it talks to.
import type { App } from "../app.ts";
import { HttpError, readBodyText } from "../http.ts";
import {
  type Effect,
  type FetchCardEffect,
  type FetchRefundsEffect,
  GatewayError,
  type GatewayName,
  type GatewayReads,
  GATEWAYS,
  type NormalizedEvent,
  type PaymentGateway,
  type ReadEffect,
} from "../gateways/types.ts";
import { minorFromDb } from "../money.ts";
import { applyPayment } from "./orders.ts";
import { storePayoutEvent } from "./payouts.ts";
import { storeEvent } from "./ingest.ts";
import type postgres from "postgres";

/** `log` receives the request log line's fields: gateway, event type and id, outcome, order. */
export async function ingestWebhook(
  app: App,
  gatewayName: string,
  req: Request,
  log: Record<string, unknown> = {},
) {
  if (!(GATEWAYS as readonly string[]).includes(gatewayName)) {
    throw new HttpError(404, "not_found", `no webhook endpoint for ${gatewayName}`);
  }
  log.gateway = gatewayName;
  const gateway = app.gateway(gatewayName as GatewayName);
  // The signature covers the exact bytes sent: read the raw text, verify, only then parse.
  const raw = await readBodyText(req, app.config.webhookBodyLimitBytes);
  for (const w of await gateway.parseWebhook(raw, req.headers)) {
    if (w.route === "payout") {
      await storePayoutEvent(app, w.event, log);
      continue;
    }
    const outcome = await ingestEvent(
      app,
      w.event,
      w.route === "read" ? await firstRead(app, gateway, w.event) : w.event.effect ?? null,
      log,
    );
    if (w.route === "capture" && outcome !== "duplicate") {
      log.capture = await captureApproved(app, gateway, w.event.gatewayOrderId);
    }
  }
  return { received: true as const };
}

/** Stores and applies one payment-gateway event with its effect; returns the outcome. */
async function ingestEvent(
  app: App,
  e: NormalizedEvent,
  effect: Effect | null,
  log: Record<string, unknown>,
): Promise<string> {
  const row = await storeEvent(app.sql, e, effect);
  Object.assign(log, {
    event_type: e.type,
    event_id: e.eventId,
    outcome: row.result.outcome,
    order_id: row.result.order_id ?? null,
  });
  return row.result.outcome;
}

/**
 * The read an event's effect owes, made only for a first delivery: a redelivery needs no
 * gateway read (ingest_webhook answers it as a duplicate), so its effect goes as it came.
 */
async function firstRead(
  app: App,
  gateway: PaymentGateway,
  e: NormalizedEvent & { effect: ReadEffect },
): Promise<Effect> {
  const stored = await app.sql`select 1 from public.webhook_events
    where gateway = ${e.gateway} and event_id = ${e.eventId}`;
  return stored.length ? e.effect : await readOwed(app, gateway, e.effect);
}

/**
 * The capture an approval event leaves to settle (PayPal CHECKOUT.ORDER.APPROVED): with no
 * transaction held, fetchPayment captures the order for its stored terms (the gateway's
 * idempotency key makes verify, this and reconcile one capture), then the result converges
 * through settle.apply_payment. A gateway failure is logged and left to verify or reconcile:
 * the event is stored, so the answer is still 200.
 */
async function captureApproved(
  app: App,
  gateway: PaymentGateway,
  gatewayOrderId: string,
): Promise<string> {
  const [order] = await app.sql<{ amount: string; currency: string; status: string }[]>`
    select amount, currency, status from public.orders
    where gateway = ${gateway.name} and gateway_order_id = ${gatewayOrderId}`;
  if (!order) return "unknown_order";
  if (order.status !== "created" && order.status !== "authorized") return "no_effect";
  try {
    const result = await gateway.fetchPayment({
      gatewayOrderId,
      amount: minorFromDb(order.amount),
      currency: order.currency,
    });
    if (result.kind === "pending") return "pending";
    return (await applyPayment(app.sql, gateway.name, gatewayOrderId, result)).outcome;
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    console.error(JSON.stringify({
      level: "warn",
      msg: "capture after approval failed",
      gateway: gateway.name,
      gateway_order_id: gatewayOrderId,
      error: err.message.slice(0, 300),
    }));
    return "capture_failed";
  }
}

/**
 * Makes the gateway read an effect still needs (a setup intent's card, a payment's refunds) and
 * returns the effect to apply. A gateway that is down or erring leaves the read owed, with its
 * error as the detail: the event is stored 'failed' (answered 200) and reconcile reads again.
 * Anything but a GatewayError is a bug and propagates.
 */
export async function readOwed(
  app: App,
  gateway: PaymentGateway,
  effect: ReadEffect,
): Promise<Effect> {
  try {
    return effect.action === "fetch_card"
      ? await readCard(app, gateway, effect)
      : await readRefunds(app, gateway, effect);
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return { ...effect, detail: err.message.slice(0, 500) };
  }
}

/** A gateway whose events owe a read implements it (GatewayReads): anything else is a bug. */
function lacks(gateway: PaymentGateway, verb: keyof GatewayReads): Error {
  return new Error(`${gateway.name}'s events owe ${verb}, which the gateway lacks`);
}

async function knownCustomer(app: App, gateway: GatewayName, customer: unknown): Promise<boolean> {
  if (typeof customer !== "string") return false;
  const rows = await app.sql`select 1 from public.gateway_customers
    where gateway = ${gateway} and customer_id = ${customer}`;
  return rows.length > 0;
}

/** setup_intent.succeeded: the card's details, read only for a customer settle created. */
async function readCard(
  app: App,
  gateway: PaymentGateway,
  effect: FetchCardEffect,
): Promise<Effect> {
  const pm = effect.payment_method;
  if (typeof pm !== "string") {
    return { action: "ignore", detail: "the setup intent names no payment method" };
  }
  if (!(await knownCustomer(app, gateway.name, effect.customer))) {
    return { action: "ignore", detail: "a setup intent of a customer settle does not know" };
  }
  if (!gateway.readCard) throw lacks(gateway, "readCard");
  const card = await gateway.readCard(pm);
  if (!card) return { action: "ignore", detail: `${gateway.name} has no payment method ${pm}` };
  return { ...card, customer: card.customer ?? effect.customer };
}

/**
 * charge.refunded without its refund list (current API versions): the charge's refunds are read
 * and applied by id. Totals are not compared to skip the read: settle's total counts pending
 * refunds too, so equal totals can hide different refunds.
 */
async function readRefunds(
  app: App,
  gateway: PaymentGateway,
  effect: FetchRefundsEffect,
): Promise<Effect> {
  const ids = {
    gateway_payment_id: effect.gateway_payment_id,
    gateway_order_id: effect.gateway_order_id,
  };
  const [order] = await app.sql`select 1 from public.orders
    where gateway = ${gateway.name} and (gateway_payment_id = ${String(effect.gateway_payment_id)}
      or gateway_order_id = ${String(effect.gateway_order_id ?? "")})
    limit 1`;
  if (!order) return { action: "refunds", ...ids, refunds: [], outcome: "unknown_order" };
  if (!gateway.paymentRefunds) throw lacks(gateway, "paymentRefunds");
  const refunds = await gateway.paymentRefunds(String(effect.gateway_payment_id));
  return { action: "refunds", ...ids, refunds };
}

interface OwedRead {
  id: string;
  gateway: GatewayName;
  /** settle.pending_webhook_reads returns only events whose effect owes a read. */
  effect: ReadEffect;
}

/**
 * Reconcile's retry of stored events whose gateway read failed: read again outside any
 * transaction, then settle.complete_webhook_read applies the result under the event's row lock
 * (a concurrent retrier that completed it first makes this one a no-op).
 */
export async function retryOwedReads(
  app: App,
  s: { limit: number; retrySeconds: number },
): Promise<{ read: number; resolved: number; failed: number }> {
  const due = await app.sql<OwedRead[]>`select id::text, gateway, effect
    from settle.pending_webhook_reads(${s.limit}, ${s.retrySeconds})`;
  let resolved = 0;
  for (const row of due) {
    const effect = await readOwed(app, app.gateway(row.gateway), row.effect);
    const [r] = await app.sql`select settle.complete_webhook_read(${row.id}::bigint,
      ${app.sql.json(effect as postgres.JSONValue)}) as result`;
    // 'skipped': another retrier completed it first (counted there).
    if (r.result.outcome !== "failed" && r.result.outcome !== "skipped") resolved += 1;
  }
  return { read: due.length, resolved, failed: due.length - resolved };
}
