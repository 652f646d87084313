// Payments: /v1/payments (list, fetch, capture), the payment state changes Checkout and capture
// share, and the late payment.failed control.
import { invalid, jsonResponse, notFoundId } from "./errors.ts";
import { emit } from "./events.ts";
import { list } from "./lists.ts";
import { readBody } from "./params.ts";
import type { Call, OrderRecord, RazorpayState, StoredEvent } from "./state.ts";
import { clone, randomId } from "./util.ts";
import type { Json, OrderEntity, PaymentEntity } from "./wire.ts";

export function listPayments(s: RazorpayState, { url }: Call): Response {
  return list(url.searchParams, s.paymentSeq.map((id) => s.payments.get(id)!.entity));
}

export function getPayment(s: RazorpayState, { ids }: Call): Response {
  const p = s.payments.get(ids.id);
  return p ? jsonResponse(200, p.entity) : notFoundId();
}

export async function capturePayment(
  s: RazorpayState,
  { req, ids: { id } }: Call,
): Promise<Response> {
  const body = await readBody(req);
  const p = s.payments.get(id);
  if (!p) return notFoundId();
  const { amount, currency } = body;
  if (amount === undefined || amount === null) {
    return invalid("The amount field is required.", "amount");
  }
  if (typeof amount !== "number" || !Number.isInteger(amount)) {
    return invalid("The amount must be an integer", "amount");
  }
  if (currency === undefined || currency === null) {
    return invalid("The currency field is required.", "currency");
  }
  const pay = p.entity;
  if (pay.status === "captured" || pay.status === "refunded") {
    return invalid("This payment has already been captured");
  }
  if (pay.status !== "authorized") {
    return invalid(
      "Only payments which have been authorized and not yet captured can be captured",
    );
  }
  if (currency !== pay.currency) {
    return invalid("Currency does not match the payment currency", "currency");
  }
  if (amount !== pay.amount) {
    return invalid("Capture amount must be equal to the amount authorized", "amount");
  }
  const order = s.orders.get(pay.order_id)!;
  markCaptured(pay, order);
  s.hooks.schedule(captureEvents(s, pay, order), s.defaultWebhooks);
  return jsonResponse(200, pay);
}

export function newPayment(s: RazorpayState, order: OrderEntity, body: Json): PaymentEntity {
  return {
    id: randomId("pay_"),
    entity: "payment",
    amount: order.amount_due,
    currency: order.currency,
    status: "created",
    order_id: order.id,
    invoice_id: null,
    international: false,
    method: "card",
    amount_refunded: 0,
    refund_status: null,
    captured: false,
    description: typeof body.description === "string" ? body.description : null,
    card_id: null,
    bank: null,
    wallet: null,
    vpa: null,
    email: typeof body.email === "string" ? body.email : "customer@example.com",
    contact: typeof body.contact === "string" ? body.contact : "+919876543210",
    notes: [],
    fee: null,
    tax: null,
    error_code: null,
    error_description: null,
    error_source: null,
    error_step: null,
    error_reason: null,
    acquirer_data: {},
    created_at: s.unix(),
  };
}

export function markCaptured(pay: PaymentEntity, order: OrderRecord): void {
  pay.status = "captured";
  pay.captured = true;
  // Razorpay's standard plan: 2% fee plus 18% GST on the fee; fee includes tax.
  const base = Math.round(pay.amount * 0.02);
  pay.tax = Math.round(base * 0.18);
  pay.fee = base + pay.tax;
  // The Orders docs move an order to "paid" on capture, not on authorization.
  order.entity.amount_paid += pay.amount;
  order.entity.amount_due = Math.max(0, order.entity.amount - order.entity.amount_paid);
  order.entity.status = "paid";
}

export function captureEvents(
  s: RazorpayState,
  pay: PaymentEntity,
  order: OrderRecord,
): StoredEvent[] {
  return [
    emit(s, "payment.captured", { payment: pay }),
    emit(s, "order.paid", { payment: pay, order: order.entity }),
  ];
}

// ---------------------------------------------------------------- webhooks

/** A payment.failed that arrives after the payment was captured; the stored payment is untouched. */
export async function simFailLate(s: RazorpayState, { req, ids }: Call): Promise<Response> {
  const body = await readBody(req);
  const paymentId = ids.id;
  const p = s.payments.get(paymentId);
  if (!p) return notFoundId();
  const snapshot: PaymentEntity = {
    ...clone(p.entity),
    status: "failed",
    captured: false,
    amount_refunded: 0,
    refund_status: null,
    fee: null,
    tax: null,
    error_code: "BAD_REQUEST_ERROR",
    error_description: "Payment failed",
    error_source: "customer",
    error_step: "payment_authorization",
    error_reason: "payment_failed",
  };
  const ev = emit(s, "payment.failed", { payment: snapshot });
  s.hooks.schedule([ev], s.hooksFor(body));
  return jsonResponse(200, { event_id: ev.event_id });
}
