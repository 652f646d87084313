// Webhook events signed exactly as PayPal signs them (MARKETPLACE_FACTS 1.5, 1.7): the envelope,
// the transmission headers, SHA256withRSA over transmission_id|time|webhook_id|crc32(body).
import { crc32 } from "../../../shared/gateways/paypal/signature.ts";
import type { SimEventRecord, WebhookOptions } from "../common/mod.ts";
import { jsonResponse } from "./errors.ts";
import type { Call, PayPalState } from "./state.ts";
import { isoSeconds } from "./wire.ts";

export interface PayPalEvent extends SimEventRecord {
  /** The delivery's headers, signed when the event was made (duplicates repeat them). */
  headers: Record<string, string>;
  orderId: string | null;
}

export interface SignOptions {
  transmissionId?: string;
  /** The PAYPAL-TRANSMISSION-TIME header exactly; default now. */
  transmissionTime?: string;
  certUrl: string;
  webhookId: string;
}

function base64(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

/** The transmission headers PayPal sends with a delivery of body. */
export async function signDelivery(
  body: string,
  key: CryptoKey,
  opts: SignOptions & { nowMs: number },
): Promise<Record<string, string>> {
  const id = opts.transmissionId ?? crypto.randomUUID();
  const time = opts.transmissionTime ?? isoSeconds(opts.nowMs);
  const message = `${id}|${time}|${opts.webhookId}|${crc32(body)}`;
  const sig = await crypto.subtle.sign(
    "RSASSA-PKCS1-v1_5",
    key,
    new TextEncoder().encode(message),
  );
  return {
    "content-type": "application/json",
    "paypal-transmission-id": id,
    "paypal-transmission-time": time,
    "paypal-transmission-sig": base64(sig),
    "paypal-cert-url": opts.certUrl,
    "paypal-auth-algo": "SHA256withRSA",
    "paypal-auth-version": "v2",
    "user-agent": "PayPal/AUHD-214.0-58863624",
  };
}

const RESOURCE_TYPES: Record<string, string> = {
  "CHECKOUT.ORDER.APPROVED": "checkout-order",
  "PAYMENT.CAPTURE.REFUNDED": "refund",
  "PAYMENT.CAPTURE.REVERSED": "refund",
  "CUSTOMER.DISPUTE.CREATED": "dispute",
  "CUSTOMER.DISPUTE.UPDATED": "dispute",
  "CUSTOMER.DISPUTE.RESOLVED": "dispute",
};

const SUMMARIES: Record<string, string> = {
  "CHECKOUT.ORDER.APPROVED": "An order has been approved by buyer",
  "PAYMENT.CAPTURE.COMPLETED": "Payment completed",
  "PAYMENT.CAPTURE.PENDING": "Payment pending",
  "PAYMENT.CAPTURE.DENIED": "A payment capture was denied",
  "PAYMENT.CAPTURE.REFUNDED": "A capture was refunded",
  "PAYMENT.CAPTURE.REVERSED": "A payment was reversed",
  "CUSTOMER.DISPUTE.CREATED": "A new dispute opened",
  "CUSTOMER.DISPUTE.UPDATED": "A dispute was updated",
  "CUSTOMER.DISPUTE.RESOLVED": "A dispute was resolved",
};

/** The event envelope; `event_version` stays the string "1.0" (re-encoding would change it). */
function eventBody(type: string, resource: object, nowMs: number, base: string) {
  const id = `WH-${crypto.randomUUID().toUpperCase().replace(/-/g, "").slice(0, 25)}`;
  const body = JSON.stringify({
    id,
    event_version: "1.0",
    create_time: new Date(nowMs).toISOString(),
    resource_type: RESOURCE_TYPES[type] ?? "capture",
    resource_version: "2.0",
    event_type: type,
    summary: SUMMARIES[type] ?? type,
    resource,
    links: [
      { href: `${base}/v1/notifications/webhooks-events/${id}`, rel: "self", method: "GET" },
    ],
  });
  return { id, body };
}

/** Records a signed event about the resource and schedules its delivery. */
export async function emit(
  s: PayPalState,
  type: string,
  resource: object,
  orderId: string | null,
  hooks: WebhookOptions,
): Promise<PayPalEvent> {
  const e = await signedEvent(s, type, resource, orderId);
  s.hooks.schedule([e], hooks);
  return e;
}

/** Records several signed events and schedules them as one batch (reorder reverses it). */
export async function emitAll(
  s: PayPalState,
  events: { type: string; resource: object }[],
  orderId: string | null,
  hooks: WebhookOptions,
): Promise<PayPalEvent[]> {
  const signed: PayPalEvent[] = [];
  for (const e of events) signed.push(await signedEvent(s, e.type, e.resource, orderId));
  s.hooks.schedule(signed, hooks);
  return signed;
}

async function signedEvent(
  s: PayPalState,
  type: string,
  resource: object,
  orderId: string | null,
): Promise<PayPalEvent> {
  const { id, body } = eventBody(type, resource, s.now(), s.baseUrl);
  const headers = await signDelivery(body, s.signer.privateKey, {
    certUrl: s.certUrl(s.signer.id),
    webhookId: s.opts.webhookId,
    nowMs: s.now(),
  });
  const e: PayPalEvent = {
    event_id: id,
    type,
    body,
    signature: headers["paypal-transmission-sig"],
    headers,
    orderId,
  };
  s.events.push(e);
  return e;
}

/** GET /_sim/paypal/events?order_id=: the signed events, exact bodies and headers. */
export function simListEvents(s: PayPalState, { req }: Call): Response {
  const orderId = new URL(req.url).searchParams.get("order_id");
  const events = s.events
    .filter((e) => orderId === null || e.orderId === orderId)
    .map(({ event_id, type, body, headers }) => ({ event_id, type, body, headers }));
  return jsonResponse(200, { events });
}

/** GET /v1/notifications/certs/:id: the signing certificate and its CA, as PEM (no auth). */
export function serveCert(s: PayPalState, { ids }: Call): Response {
  const c = s.certs.get(ids.id);
  return c
    ? new Response(c.pem, { headers: { "content-type": "application/x-pem-file" } })
    : new Response("not found", { status: 404 });
}
