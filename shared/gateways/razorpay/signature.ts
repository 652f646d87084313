// Razorpay signatures (GATEWAY_FACTS A6–A8): hex HMAC-SHA256, compared in constant time.
import { hmacSha256Hex, timingSafeEqual } from "../../crypto.ts";

/** Checkout with an order: HMAC(key secret, order_id + "|" + payment_id). */
export async function verifyPaymentSignature(p: {
  orderId: string;
  paymentId: string;
  signature: string;
  keySecret: string;
}): Promise<boolean> {
  const expected = await hmacSha256Hex(p.keySecret, `${p.orderId}|${p.paymentId}`);
  return timingSafeEqual(expected, p.signature);
}

/** Webhook: HMAC(webhook secret, raw body). Any configured secret may match (rotation). */
export async function verifyWebhookSignature(
  rawBody: string,
  signature: string,
  secrets: string[],
): Promise<boolean> {
  let ok = false;
  for (const secret of secrets) {
    // No early exit: every secret is tried so timing says nothing about which one matched.
    ok = timingSafeEqual(await hmacSha256Hex(secret, rawBody), signature) || ok;
  }
  return ok;
}
