// Stripe ids, payment_intent.succeeded webhooks and simulator intents for the benchmarks. The
// event is the simulator's own payment_intent.succeeded (dev/simulator/stripe/mod.ts, Stripe's wire
// format) with the ids and amount of each bench order put in, pretty-printed as Stripe sends
// it, and signed as Stripe signs: Stripe-Signature t=<unix>,v1=<hex HMAC-SHA256 of "t.body">.
import { LOCAL_STRIPE } from "../../dev/stack.ts";
import { stripeSignatureHeader, StripeSimulator } from "../../dev/simulator/stripe/mod.ts";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** prefix + 24 random letters and digits, like Stripe's ids. */
export function stripeId(prefix: string, length = 24): string {
  const out: string[] = [];
  const buf = new Uint8Array(48);
  while (out.length < length) {
    crypto.getRandomValues(buf);
    for (const b of buf) if (b < 248 && out.length < length) out.push(ALNUM[b % 62]);
  }
  return prefix + out.join("");
}

type Json = Record<string, unknown>;

const auth = { authorization: `Bearer ${LOCAL_STRIPE.secretKey}` };

async function call(sim: StripeSimulator, method: string, path: string, init: RequestInit = {}) {
  const res = await sim.fetch(new Request(`http://stripe.local${path}`, { method, ...init }));
  const body = await res.json();
  if (!res.ok) throw new Error(`stripe simulator ${method} ${path}: ${JSON.stringify(body)}`);
  return body as Json;
}

/** A PaymentIntent at the simulator, created as settle's gateway creates it (form-encoded). */
export async function createIntent(
  sim: StripeSimulator,
  p: { amount: number; currency: string; customer?: string; orderId?: string },
): Promise<string> {
  const form = new URLSearchParams({
    amount: String(p.amount),
    currency: p.currency.toLowerCase(),
    "automatic_payment_methods[enabled]": "true",
    "metadata[settle_order_id]": p.orderId ?? crypto.randomUUID(),
  });
  if (p.customer) form.set("customer", p.customer);
  const pi = await call(sim, "POST", "/v1/payment_intents", {
    headers: { ...auth, "content-type": "application/x-www-form-urlencoded" },
    body: form.toString(),
  });
  return pi.id as string;
}

/** Stripe.js's part: the customer pays with a test card. No webhook is delivered. */
export async function confirmIntent(sim: StripeSimulator, id: string): Promise<Json> {
  return await call(sim, "POST", `/_sim/stripe/payment_intents/${id}/confirm`, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ outcome: "success", webhooks: { deliver: false } }),
  });
}

/** The simulator's payment_intent.succeeded event for a paid intent, as a template. */
export async function succeededTemplate(): Promise<Json> {
  const sim = new StripeSimulator({ ...LOCAL_STRIPE });
  const id = await createIntent(sim, { amount: 5000, currency: "USD" });
  await confirmIntent(sim, id);
  const { events } = await call(
    sim,
    "GET",
    `/_sim/stripe/events?object_id=${id}&type=payment_intent.succeeded`,
  ) as { events: { body: string }[] };
  if (events.length !== 1) throw new Error("no payment_intent.succeeded from the simulator");
  await sim.idle();
  return JSON.parse(events[0].body);
}

export interface StripeEvent {
  eventId: string;
  gatewayOrderId: string;
  amount: number;
  body: string;
}

/** payment_intent.succeeded for one order (an intent id, an amount in cents, a currency). */
export function succeededEvent(
  template: Json,
  order: { gatewayOrderId: string; amount: number; currency: string },
): StripeEvent {
  const event = structuredClone(template);
  const now = Math.floor(Date.now() / 1000);
  const pi = (event.data as Json).object as Json;
  const charge = stripeId("ch_");
  event.id = stripeId("evt_");
  event.created = now;
  event.request = { id: null, idempotency_key: null };
  Object.assign(pi, {
    id: order.gatewayOrderId,
    amount: order.amount,
    amount_received: order.amount,
    currency: order.currency.toLowerCase(),
    client_secret: `${order.gatewayOrderId}_secret_${stripeId("", 24)}`,
    latest_charge: charge,
    created: now - 60,
    metadata: { settle_order_id: crypto.randomUUID(), account_id: crypto.randomUUID() },
  });
  return {
    eventId: event.id as string,
    gatewayOrderId: order.gatewayOrderId,
    amount: order.amount,
    body: JSON.stringify(event, null, 2),
  };
}

/** The Stripe-Signature header for a body at a time (Stripe accepts 300 s of skew). */
export function stripeSignature(secret: string, body: string, atSec = Date.now() / 1000) {
  return stripeSignatureHeader(secret, Math.floor(atSec), body);
}
