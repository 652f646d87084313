// Razorpay ids, payment.captured webhooks and Checkout signatures, built exactly as Razorpay
// (and dev/simulator) does: the envelope of GATEWAY_FACTS A7, hex HMAC-SHA256 of the raw body.
import { hmacSha256Hex } from "../../shared/crypto.ts";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** prefix + 14 uniformly random letters and digits, like Razorpay's ids. */
export function randomId(prefix: string): string {
  const out: string[] = [];
  const buf = new Uint8Array(32);
  while (out.length < 14) {
    crypto.getRandomValues(buf);
    for (const b of buf) if (b < 248 && out.length < 14) out.push(ALNUM[b % 62]);
  }
  return prefix + out.join("");
}

export interface SignedEvent {
  eventId: string;
  gatewayOrderId: string;
  amount: number;
  body: string;
  signature: string;
}

/** A payment.captured event for an order, signed with the webhook secret. */
export async function capturedEvent(
  webhookSecret: string,
  order: { gatewayOrderId: string; amount: number; currency: string },
): Promise<SignedEvent> {
  const now = Math.floor(Date.now() / 1000);
  const base = Math.round(order.amount * 0.02);
  const tax = Math.round(base * 0.18);
  const payment = {
    id: randomId("pay_"),
    entity: "payment",
    amount: order.amount,
    currency: order.currency,
    status: "captured",
    order_id: order.gatewayOrderId,
    invoice_id: null,
    international: false,
    method: "card",
    amount_refunded: 0,
    refund_status: null,
    captured: true,
    description: null,
    card_id: null,
    bank: null,
    wallet: null,
    vpa: null,
    email: "customer@example.com",
    contact: "+919876543210",
    notes: [],
    fee: base + tax,
    tax,
    error_code: null,
    error_description: null,
    error_source: null,
    error_step: null,
    error_reason: null,
    acquirer_data: {},
    created_at: now,
  };
  const body = JSON.stringify({
    entity: "event",
    account_id: "acc_BenchSettle001",
    event: "payment.captured",
    contains: ["payment"],
    payload: { payment: { entity: payment } },
    created_at: now,
  });
  return {
    eventId: randomId("evt_"),
    gatewayOrderId: order.gatewayOrderId,
    amount: order.amount,
    body,
    signature: await hmacSha256Hex(webhookSecret, body),
  };
}

async function simPost(url: string, body: unknown) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return await res.json();
}

/**
 * Pays orders (captured) at the simulator process (bench/server.ts sim) and returns Checkout's
 * answer for each: verify reads the payment from Razorpay, so it must exist there.
 */
export async function payOrders(simulatorUrl: string, ids: string[]) {
  const proofs: Record<string, string>[] = [];
  for (let i = 0; i < ids.length; i += 2000) {
    const body = { ids: ids.slice(i, i + 2000) };
    proofs.push(...(await simPost(`${simulatorUrl}/bench/razorpay/pay`, body)).proofs);
  }
  return proofs;
}

/** Orders created at the simulator process, then paid there (see payOrders). */
export async function paidOrders(
  simulatorUrl: string,
  items: { amount: number; currency: string }[],
): Promise<{ ids: string[]; proofs: Record<string, string>[] }> {
  const ids: string[] = [];
  for (let i = 0; i < items.length; i += 2000) {
    const body = { items: items.slice(i, i + 2000) };
    ids.push(...(await simPost(`${simulatorUrl}/bench/razorpay/orders`, body)).ids);
  }
  return { ids, proofs: await payOrders(simulatorUrl, ids) };
}
