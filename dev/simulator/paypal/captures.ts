// /v2/payments/captures/:id, and the controls for what PayPal itself does to a capture later:
// a pending capture completes or is denied; a completed one is reversed (a chargeback).
import { formatUnits, unitsOf } from "./currencies.ts";
import { emit } from "./events.ts";
import { invalidRequest, jsonResponse, notFound, unprocessable } from "./errors.ts";
import { newRefund, refundedUnits } from "./refunds.ts";
import type { Call, PayPalState } from "./state.ts";
import { isoSeconds } from "./wire.ts";

export function getCapture(s: PayPalState, { ids }: Call): Response {
  const c = s.captures.get(ids.id);
  return c ? jsonResponse(200, c.capture) : notFound();
}

/** POST /_sim/paypal/captures/:id/settle {outcome: completed|denied}, with its webhook. */
export async function simSettleCapture(s: PayPalState, { ids, body }: Call) {
  const c = s.captures.get(ids.id);
  if (!c) return notFound();
  if (c.capture.status !== "PENDING") {
    return unprocessable("CAPTURE_NOT_PENDING", `the capture is ${c.capture.status}`);
  }
  const outcome = body.outcome ?? "completed";
  if (outcome !== "completed" && outcome !== "denied") {
    return invalidRequest("INVALID_PARAMETER_VALUE", "outcome: completed|denied");
  }
  c.capture.status = outcome === "completed" ? "COMPLETED" : "DECLINED";
  delete c.capture.status_details;
  c.capture.update_time = isoSeconds(s.now());
  const type = outcome === "completed" ? "PAYMENT.CAPTURE.COMPLETED" : "PAYMENT.CAPTURE.DENIED";
  await emit(s, type, c.capture, c.orderId, s.hooksFor(body));
  return jsonResponse(200, c.capture);
}

/**
 * POST /_sim/paypal/captures/:id/reverse: PayPal takes back what was not refunded; the event's
 * resource is refund-shaped (facts 1.5: a sample payload, `note_to_payer` "Payment reversed").
 */
export async function simReverseCapture(s: PayPalState, { ids, body }: Call) {
  const c = s.captures.get(ids.id);
  if (!c) return notFound();
  const currency = c.capture.amount.currency_code;
  const remaining = unitsOf(c.capture.amount.value, currency) -
    refundedUnits(s, c.refunds, currency);
  if (remaining <= 0n) return unprocessable("CAPTURE_FULLY_REFUNDED", "nothing left to reverse");
  const refund = newRefund(s, ids.id, formatUnits(remaining, currency), currency, {
    note_to_payer: "Payment reversed",
  });
  c.refunds.push(refund.id);
  c.capture.status = "REFUNDED";
  await emit(s, "PAYMENT.CAPTURE.REVERSED", refund, c.orderId, s.hooksFor(body));
  return jsonResponse(200, refund);
}
