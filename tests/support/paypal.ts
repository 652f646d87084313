// PayPal test helpers: orders through settle, the payer at the simulator, signed deliveries.
import assert from "node:assert/strict";
import { client, invoke, raw, type Reply, type TestStack, type TestUser } from "./stack.ts";
import type { PayPalEvent } from "../../dev/simulator/paypal/mod.ts";

export const opts = { sanitizeOps: false, sanitizeResources: false };

export interface PayPalOrder {
  order: { id: string; status: string; gateway_order_id: string; amount: number; currency: string };
  checkout: { order_id: string; approve_url: string; client_id: string };
}

export async function paypalOrder(
  s: TestStack,
  u: TestUser,
  body: Record<string, unknown> = { purpose: "wallet_topup", amount: 5000, currency: "USD" },
): Promise<PayPalOrder> {
  const r = await invoke(client(s, u.token), "create-order", { gateway: "paypal", ...body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body as PayPalOrder;
}

/** POSTs to the simulator's /_sim/paypal/... controls. */
export async function simPost(s: TestStack, path: string, body: unknown = {}) {
  const res = await fetch(`${s.simulatorUrl}/paypal/_sim/paypal/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  // deno-lint-ignore no-explicit-any
  const json = await res.json() as any;
  assert.ok(res.ok, `${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** The payer approves at PayPal; the outcome is what settle's capture will find. */
export function approve(
  s: TestStack,
  gatewayOrderId: string,
  outcome: "approve" | "deny" | "pending" = "approve",
  webhooks: Record<string, unknown> = {},
) {
  return simPost(s, `orders/${gatewayOrderId}/approve`, { outcome, webhooks });
}

/** Holds (or releases) every webhook delivery of the simulator. */
export function holdWebhooks(s: TestStack, hold = true) {
  return simPost(s, "config", { webhooks: hold ? { deliver: false } : {} });
}

export function verify(s: TestStack, u: TestUser, paypalOrderId: string): Promise<Reply> {
  return invoke(client(s, u.token), "verify", { paypal_order_id: paypalOrderId });
}

export function events(s: TestStack, gatewayOrderId: string, type?: string): PayPalEvent[] {
  return s.paypal.events(gatewayOrderId).filter((e) => type === undefined || e.type === type);
}

/** One delivery to the webhook endpoint with exactly these bytes and headers. */
export function deliver(s: TestStack, body: string, headers: Record<string, string>) {
  return raw(s, "webhook/paypal", { method: "POST", headers, body });
}

export const redeliver = (s: TestStack, e: PayPalEvent) => deliver(s, e.body, e.headers);

/** The order as a PayPal API client sees it (a fresh token each time). */
export async function gatewayOrder(s: TestStack, id: string) {
  const base = `${s.simulatorUrl}/paypal`;
  const cfg = s.config.paypal!;
  const tok = await (await fetch(`${base}/v1/oauth2/token`, {
    method: "POST",
    headers: {
      authorization: "Basic " + btoa(`${cfg.clientId}:${cfg.clientSecret}`),
      "content-type": "application/x-www-form-urlencoded",
    },
    body: "grant_type=client_credentials",
  })).json();
  const res = await fetch(`${base}/v2/checkout/orders/${id}`, {
    headers: { authorization: `Bearer ${tok.access_token}` },
  });
  // deno-lint-ignore no-explicit-any
  return await res.json() as any;
}

export async function credits(s: TestStack, orderId: string): Promise<number> {
  const [{ n }] = await s.db`select count(*)::int as n from public.ledger_transactions
    where order_id = ${orderId} and kind in ('topup', 'purchase')`;
  return n;
}

export async function orderRow(s: TestStack, id: string) {
  const [o] = await s.db`select status, gateway_payment_id, failure_code, amount_refunded
    from public.orders where id = ${id}`;
  return o;
}

export async function assertLedgerHealthy(s: TestStack) {
  const rows = await s.db`select * from settle.ledger_audit()`;
  assert.deepEqual(rows.map((r) => ({ ...r })), [], "ledger_audit() is not empty");
}
