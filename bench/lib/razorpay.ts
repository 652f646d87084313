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

/** What Checkout hands the page after a successful payment of an order. */
export async function checkoutResponse(keySecret: string, gatewayOrderId: string) {
  const paymentId = randomId("pay_");
  return {
    razorpay_order_id: gatewayOrderId,
    razorpay_payment_id: paymentId,
    razorpay_signature: await hmacSha256Hex(keySecret, `${gatewayOrderId}|${paymentId}`),
  };
}
