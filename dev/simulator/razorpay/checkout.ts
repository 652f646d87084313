// Checkout: POST /_sim/razorpay/orders/:id/pay stands in for the customer paying (or failing to
// pay) an order in Razorpay Checkout, and answers what Checkout hands the page.
import type { WebhookOptions } from "../common/mod.ts";
import { invalid, jsonResponse, notFoundId } from "./errors.ts";
import { emit, razorpayHmacHex } from "./events.ts";
import { readBody } from "./params.ts";
import { captureEvents, markCaptured, newPayment } from "./payments.ts";
import type { Call, OrderRecord, RazorpayState } from "./state.ts";
import type { PaymentEntity } from "./wire.ts";

/** Stands in for Razorpay Checkout: the customer pays (or fails to pay) an order. */
export async function simPay(s: RazorpayState, { req, ids }: Call): Promise<Response> {
  const body = await readBody(req);
  const order = s.orders.get(ids.id);
  if (!order) return notFoundId();
  const outcome = body.outcome;
  if (outcome !== "success" && outcome !== "failure") {
    return invalid('outcome must be "success" or "failure"', "outcome");
  }
  if (body.capture !== undefined && typeof body.capture !== "boolean") {
    return invalid("capture must be a boolean", "capture");
  }
  const late = body.authorized_after_minutes ?? 0;
  if (typeof late !== "number" || !Number.isInteger(late) || late < 0) {
    return invalid(
      "authorized_after_minutes must be a whole number of minutes",
      "authorized_after_minutes",
    );
  }
  if (order.entity.status === "paid") return invalid("Order has been paid already", "order_id");
  const hooks = s.hooksFor(body);
  const pay = newPayment(s, order.entity, body);
  s.payments.set(pay.id, { entity: pay, refundIds: [] });
  s.paymentSeq.push(pay.id);
  order.paymentIds.push(pay.id);
  order.entity.attempts += 1;
  order.entity.status = "attempted";

  if (outcome === "failure") return failPayment(s, order, pay, hooks);

  pay.status = "authorized";
  const events = [emit(s, "payment.authorized", { payment: pay })];
  const capture = typeof body.capture === "boolean"
    ? body.capture
    : capturesAutomatically(s, order, late);
  if (capture) {
    markCaptured(pay, order);
    events.push(...captureEvents(s, pay, order));
  }
  s.hooks.schedule(events, hooks);
  return jsonResponse(200, {
    razorpay_payment_id: pay.id,
    razorpay_order_id: order.entity.id,
    razorpay_signature: razorpayHmacHex(s.opts.keySecret, `${order.entity.id}|${pay.id}`),
  });
}

/**
 * Whether Razorpay captures an authorization by itself: the order's `payment` settings win
 * over the account's; automatic capture holds only within automatic_expiry_period minutes of
 * the payment's creation (a later, "late" authorization waits for a manual capture).
 */
function capturesAutomatically(
  s: RazorpayState,
  order: OrderRecord,
  authorizedAfterMinutes: number,
): boolean {
  const settings = order.capture;
  if (!settings) return s.accountCapture === "automatic";
  return settings.capture === "automatic" &&
    (settings.automaticExpiryPeriod === null ||
      authorizedAfterMinutes <= settings.automaticExpiryPeriod);
}

/** A failed attempt: payment.failed, and the error Checkout hands the page. */
function failPayment(
  s: RazorpayState,
  order: OrderRecord,
  pay: PaymentEntity,
  hooks: WebhookOptions,
): Response {
  Object.assign(pay, {
    status: "failed",
    error_code: "BAD_REQUEST_ERROR",
    error_description: "Payment failed",
    error_source: "customer",
    error_step: "payment_authorization",
    error_reason: "payment_failed",
  });
  s.hooks.schedule([emit(s, "payment.failed", { payment: pay })], hooks);
  // Checkout reports a failure to the page through payment.failed with this shape, not an HTTP error.
  return jsonResponse(200, {
    error: {
      code: "BAD_REQUEST_ERROR",
      description: "Payment failed",
      source: "customer",
      step: "payment_authorization",
      reason: "payment_failed",
      metadata: { payment_id: pay.id, order_id: order.entity.id },
    },
  });
}
