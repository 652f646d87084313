// Webhook events: emit() records a signed event (the caller schedules its delivery through
// s.hooks), and the /_sim/razorpay/events listing.
import { createHmac } from "node:crypto";
import { jsonResponse } from "./errors.ts";
import type { Call, RazorpayState, StoredEvent } from "./state.ts";
import { clone, randomId } from "./util.ts";
import type { OrderEntity, PaymentEntity } from "./wire.ts";

const ACCOUNT_ID = "acc_SettleSim00001";

/** Lowercase hex HMAC-SHA256, the primitive behind Checkout and webhook signatures (GATEWAY_FACTS A6-A8). */
export function razorpayHmacHex(secret: string, message: string): string {
  return createHmac("sha256", secret).update(message, "utf8").digest("hex");
}

/** Records an event with snapshots of the entities as they are now. */
export function emit(
  s: RazorpayState,
  type: string,
  entities: Record<string, object>,
): StoredEvent {
  const payload: Record<string, { entity: unknown }> = {};
  for (const [k, v] of Object.entries(entities)) payload[k] = { entity: clone(v) };
  const envelope = {
    entity: "event",
    account_id: ACCOUNT_ID,
    event: type,
    contains: Object.keys(entities),
    payload,
    created_at: s.unix(),
  };
  const body = JSON.stringify(envelope);
  const payment = entities.payment as PaymentEntity | undefined;
  const order = entities.order as OrderEntity | undefined;
  const ev: StoredEvent = {
    event_id: randomId("evt_"),
    type,
    body,
    signature: razorpayHmacHex(s.opts.webhookSecret, body),
    orderId: order?.id ?? payment?.order_id ?? null,
    paymentId: payment?.id ?? null,
  };
  s.events.push(ev);
  return ev;
}

/** The events recorded, filtered by order_id, payment_id and type. */
export function simListEvents(s: RazorpayState, { url }: Call): Response {
  const q = url.searchParams;
  const orderId = q.get("order_id");
  const paymentId = q.get("payment_id");
  const type = q.get("type");
  const events = s.events
    .filter((e) =>
      (orderId === null || e.orderId === orderId) &&
      (paymentId === null || e.paymentId === paymentId) &&
      (type === null || e.type === type)
    )
    .map(({ event_id, type, body, signature }) => ({ event_id, type, body, signature }));
  return jsonResponse(200, { events });
}
