// Refund test helpers shared by the refund suites: paying orders on either gateway, refunding
// through settle or directly at the gateway (its dashboard), reading what the gateway holds,
// redelivering its webhooks, and the assertions every refund test ends with.
import assert from "node:assert/strict";
import {
  client,
  confirmAtStripe,
  idle,
  invoke,
  payAtSimulator,
  postStripeWebhook,
  postWebhook,
  type Reply,
  simEvents,
  type TestStack,
  type TestUser,
} from "./stack.ts";

export { idle };
import { LOCAL_RAZORPAY, LOCAL_STRIPE } from "../../dev/stack.ts";

export const opts = { sanitizeOps: false, sanitizeResources: false };
export type Gw = "razorpay" | "stripe";
export const GWS: { gw: Gw; currency: string; amount: number; plan: string }[] = [
  { gw: "razorpay", currency: "INR", amount: 50000, plan: "pro_monthly" },
  { gw: "stripe", currency: "USD", amount: 5000, plan: "pro_monthly_usd" },
];

export const RZP_AUTH = "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`);
export const STRIPE_AUTH = `Bearer ${LOCAL_STRIPE.secretKey}`;

export interface Paid {
  gw: Gw;
  orderId: string;
  gatewayOrderId: string;
  paymentId: string;
  amount: number;
  currency: string;
}

export interface SimEvent {
  event_id: string;
  type: string;
  body: string;
  signature: string;
}

// ------------------------------------------------------------------ arranging

export async function simPost(s: TestStack, gw: Gw, path: string, body: unknown) {
  const base = gw === "razorpay"
    ? `${s.simulatorUrl}/razorpay/_sim/razorpay`
    : `${s.stripeUrl}/_sim/stripe`;
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const out = await res.json();
  assert.equal(res.status, 200, `${gw} ${path}: ${JSON.stringify(out)}`);
  return out;
}

/** The simulators' default webhook options (refund webhooks follow these). */
export async function webhooks(s: TestStack, options: Record<string, unknown>) {
  for (const gw of ["razorpay", "stripe"] as const) {
    await simPost(s, gw, "/config", { webhooks: options });
  }
}

export async function fault(s: TestStack, gw: Gw, mode: string, count = 2) {
  const path = gw === "razorpay" ? "/v1/payments/*/refund" : "/v1/refunds";
  await simPost(s, gw, "/faults", { faults: [{ method: "POST", path, mode, count }] });
}

export async function clearFaults(s: TestStack) {
  await fetch(`${s.simulatorUrl}/razorpay/_sim/razorpay/faults`, { method: "DELETE" })
    .then((r) => r.body?.cancel());
  await fetch(`${s.stripeUrl}/_sim/stripe/faults`, { method: "DELETE" })
    .then((r) => r.body?.cancel());
}

export async function createOrder(s: TestStack, u: TestUser, body: Record<string, unknown>) {
  const r = await invoke(client(s, u.token), "create-order", body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.order as { id: string; gateway_order_id: string; amount: number; currency: string };
}

/** Pays an order at its gateway; verify (and webhooks unless held) make it paid. */
export async function pay(
  s: TestStack,
  u: TestUser,
  gw: Gw,
  order: { id: string; gateway_order_id: string; amount: number; currency: string },
  hooks: Record<string, unknown> = {},
): Promise<Paid> {
  const c = client(s, u.token);
  let v: Reply;
  if (gw === "razorpay") {
    const paid = await payAtSimulator(s, order.gateway_order_id, { webhooks: hooks });
    v = await invoke(c, "verify", paid);
  } else {
    await confirmAtStripe(s, order.gateway_order_id, { webhooks: hooks });
    v = await invoke(c, "verify", { payment_intent_id: order.gateway_order_id });
  }
  assert.equal(v.status, 200, JSON.stringify(v.body));
  assert.equal(v.body.order.status, "paid");
  await idle(s);
  const [row] = await s.db`select gateway_payment_id from public.orders where id = ${order.id}`;
  return {
    gw,
    orderId: order.id,
    gatewayOrderId: order.gateway_order_id,
    paymentId: row.gateway_payment_id,
    amount: order.amount,
    currency: order.currency,
  };
}

export async function paidTopup(
  s: TestStack,
  u: TestUser,
  gw: Gw,
  amount: number,
  currency: string,
) {
  const order = await createOrder(s, u, { gateway: gw, purpose: "wallet_topup", amount, currency });
  return await pay(s, u, gw, order);
}

export function refund(
  s: TestStack,
  token: string,
  body: Record<string, unknown>,
  key?: string,
): Promise<Reply> {
  return invoke(client(s, token), "refunds", body, {
    headers: key ? { "Idempotency-Key": key } : undefined,
  });
}

/** A refund made at the gateway itself (its dashboard or API), not through settle. */
export async function refundAtGateway(s: TestStack, p: Paid, amount: number) {
  const res = p.gw === "razorpay"
    ? await fetch(`${s.simulatorUrl}/razorpay/v1/payments/${p.paymentId}/refund`, {
      method: "POST",
      headers: { authorization: RZP_AUTH, "content-type": "application/json" },
      body: JSON.stringify({ amount }),
    })
    : await fetch(`${s.stripeUrl}/v1/refunds`, {
      method: "POST",
      headers: {
        authorization: STRIPE_AUTH,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ payment_intent: p.gatewayOrderId, amount: String(amount) }),
    });
  const out = await res.json();
  assert.equal(res.status, 200, JSON.stringify(out));
  return out as { id: string; amount: number };
}

/** The refunds the gateway holds for the payment. */
export async function gatewayRefunds(s: TestStack, p: Paid) {
  const res = p.gw === "razorpay"
    ? await fetch(`${s.simulatorUrl}/razorpay/v1/payments/${p.paymentId}/refunds?count=100`, {
      headers: { authorization: RZP_AUTH },
    })
    : await fetch(`${s.stripeUrl}/v1/refunds?payment_intent=${p.gatewayOrderId}&limit=100`, {
      headers: { authorization: STRIPE_AUTH },
    });
  const out = await res.json();
  assert.equal(res.status, 200, JSON.stringify(out));
  return (p.gw === "razorpay" ? out.items : out.data) as {
    id: string;
    amount: number;
    status: string;
  }[];
}

/** The refund webhooks the gateway emitted for the order's payment, oldest first. */
export async function refundEvents(s: TestStack, p: Paid): Promise<SimEvent[]> {
  if (p.gw === "razorpay") {
    return (await simEvents(s, p.gatewayOrderId)).filter((e) => e.type.startsWith("refund."));
  }
  const res = await fetch(`${s.stripeUrl}/_sim/stripe/events?related_id=${p.gatewayOrderId}`);
  return ((await res.json()).events as SimEvent[])
    .filter((e) => e.type.startsWith("refund.") || e.type.startsWith("charge.refund"));
}

export async function paymentEvents(s: TestStack, p: Paid): Promise<SimEvent[]> {
  if (p.gw === "razorpay") {
    return (await simEvents(s, p.gatewayOrderId)).filter((e) => !e.type.startsWith("refund."));
  }
  const res = await fetch(`${s.stripeUrl}/_sim/stripe/events?object_id=${p.gatewayOrderId}`);
  return (await res.json()).events as SimEvent[];
}

export async function deliver(s: TestStack, gw: Gw, e: SimEvent) {
  const r = gw === "razorpay" ? await postWebhook(s, e) : await postStripeWebhook(s, e);
  assert.equal(r.status, 200, `${e.type}: ${JSON.stringify(r.body)}`);
}

/** Every event ×copies at once, then each again newest first. */
export async function redeliver(s: TestStack, gw: Gw, events: SimEvent[], copies = 5) {
  await Promise.all(events.flatMap((e) => Array.from({ length: copies }, () => deliver(s, gw, e))));
  for (const e of [...events].reverse()) await deliver(s, gw, e);
}

export async function failAtGateway(s: TestStack, gw: Gw, gatewayRefundId: string) {
  return await simPost(
    s,
    gw,
    `/refunds/${gatewayRefundId}/fail`,
    gw === "stripe" ? { failure_reason: "expired_or_canceled_card" } : {},
  );
}

// ------------------------------------------------------------------ asserting

export async function audit(s: TestStack) {
  await idle(s);
  const rows = await s.db`select * from settle.ledger_audit()`;
  assert.deepEqual(rows.map((r) => ({ ...r })), [], "ledger_audit() is not empty");
}

export async function orderState(s: TestStack, id: string) {
  const [o] = await s.db`select status, amount_refunded from public.orders where id = ${id}`;
  return { status: o.status as string, refunded: Number(o.amount_refunded) };
}

export async function refundRows(s: TestStack, orderId: string) {
  const rows = await s.db`select * from public.refunds where order_id = ${orderId}
                          order by created_at, id`;
  return rows.map((r) => ({
    id: r.id as string,
    status: r.status as string,
    amount: Number(r.amount),
    source: r.source as string,
    gateway_refund_id: r.gateway_refund_id as string | null,
    failure_reason: r.failure_reason as string | null,
    gateway_attempts: r.gateway_attempts as number,
    requested_by: r.requested_by as string | null,
  }));
}

/** The order's ledger postings by idempotency key, sorted. */
export async function ledgerKeys(s: TestStack, orderId: string) {
  const rows = await s.db`select idempotency_key from public.ledger_transactions
                          where order_id = ${orderId} order by idempotency_key`;
  return rows.map((r) => r.idempotency_key as string);
}

export async function outcomes(s: TestStack, eventIds: string[]) {
  const rows = await s.db`select event_id, outcome from public.webhook_events
                          where event_id in ${s.db(eventIds)}`;
  return new Map(rows.map((r) => [r.event_id as string, r.outcome as string]));
}

export async function subscription(s: TestStack, u: TestUser) {
  const r = await invoke(client(s, u.token), "subscriptions", undefined, { method: "GET" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as {
    account_id: string;
    plan: string | null;
    is_pro: boolean;
    entitlement_ends_at: string | null;
    subscription: null | {
      id: string;
      plan_id: string;
      status: string;
      current_period_start: string;
      current_period_end: string;
      cancel_at_period_end: boolean;
      canceled_at: string | null;
    };
  };
}

export const sorted = (xs: string[]) => [...xs].sort();
