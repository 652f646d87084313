// Razorpay signatures (GATEWAY_FACTS A6–A8): hex HMAC-SHA256, compared in constant time.
// The HMAC is node:crypto's, computed on the calling thread (see shared/crypto.ts).
import { hmacSha256HexSync, timingSafeEqual } from "../../crypto.ts";

/** Checkout with an order: HMAC(key secret, order_id + "|" + payment_id). */
export function verifyPaymentSignature(p: {
  orderId: string;
  paymentId: string;
  signature: string;
  keySecret: string;
}): Promise<boolean> {
  const expected = hmacSha256HexSync(p.keySecret, `${p.orderId}|${p.paymentId}`);
  return Promise.resolve(timingSafeEqual(expected, p.signature));
}

/** Webhook: HMAC(webhook secret, raw body). Any configured secret may match (rotation). */
export function verifyWebhookSignature(
  rawBody: string,
  signature: string,
  secrets: string[],
): Promise<boolean> {
  let ok = false;
  for (const secret of secrets) {
    // No early exit: every secret is tried so timing says nothing about which one matched.
    ok = timingSafeEqual(hmacSha256HexSync(secret, rawBody), signature) || ok;
  }
  return Promise.resolve(ok);
}
