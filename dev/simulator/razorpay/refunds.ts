// Refunds: POST /v1/payments/:id/refund (with X-Refund-Idempotency), the refund reads, and the
// /_sim/razorpay controls that fail a refund or refund an expired authorization.
import { canonical } from "../common/mod.ts";
import { CURRENCY_EXPONENT, formatMinor, minimumAmount } from "./currencies.ts";
import { errorResponse, invalid, jsonResponse, notFoundId } from "./errors.ts";
import { emit } from "./events.ts";
import { list } from "./lists.ts";
import { readBody, validateNotes } from "./params.ts";
import type { Call, PaymentRecord, RazorpayState } from "./state.ts";
import { randomId } from "./util.ts";
import type { Json, Notes, PaymentEntity, RefundEntity } from "./wire.ts";

export function listRefunds(s: RazorpayState, { url }: Call): Response {
  return list(url.searchParams, s.refundSeq.map((id) => s.refunds.get(id)!));
}

export function getRefund(s: RazorpayState, { ids }: Call): Response {
  const r = s.refunds.get(ids.id);
  return r ? jsonResponse(200, r) : notFoundId();
}

export function listPaymentRefunds(s: RazorpayState, { url, ids }: Call): Response {
  const p = s.payments.get(ids.id);
  if (!p) return notFoundId();
  return list(url.searchParams, p.refundIds.map((id) => s.refunds.get(id)!));
}

export function getPaymentRefund(s: RazorpayState, { ids }: Call): Response {
  const r = s.refunds.get(ids.refund);
  return r && r.payment_id === ids.id ? jsonResponse(200, r) : notFoundId();
}

export async function createRefund(s: RazorpayState, { req, ids }: Call): Promise<Response> {
  const raw = await req.text();
  const paymentId = ids.id;
  const p = s.payments.get(paymentId);
  if (!p) return notFoundId();
  const body = parseRefundBody(raw);
  if (body instanceof Response) return body;
  const key = req.headers.get("x-refund-idempotency");
  const fingerprint = `${paymentId}\n${canonical(body)}`;
  if (key !== null) {
    const early = replayRefund(s, key, fingerprint);
    if (early) return early;
  }
  const pay = p.entity;
  const amount = refundAmount(pay, body);
  if (amount instanceof Response) return amount;
  const speed = body.speed ?? "normal";
  if (speed !== "normal" && speed !== "optimum") {
    return invalid("The selected speed is invalid.", "speed");
  }
  const notes = validateNotes(body.notes);
  if (notes instanceof Response) return notes;
  const receipt = body.receipt ?? null;
  if (receipt !== null && (typeof receipt !== "string" || receipt.length > 40)) {
    return invalid("The receipt may not be greater than 40 characters.", "receipt");
  }
  const refund = recordRefund(s, p, { amount, notes, receipt, speed });
  if (key !== null) s.refundKeys.set(key, { paymentId, fingerprint, refundId: refund.id });
  pay.amount_refunded += amount;
  if (pay.amount_refunded >= pay.amount) {
    pay.refund_status = "full";
    pay.status = "refunded";
  } else {
    pay.refund_status = "partial";
  }
  const created = emit(s, "refund.created", { refund, payment: pay });
  const processed = emit(s, "refund.processed", { refund, payment: pay });
  s.hooks.schedule([created, processed], s.defaultWebhooks);
  return jsonResponse(200, refund);
}

/** The body as JSON (Razorpay's SDK sends JSON here), {} when empty. */
function parseRefundBody(raw: string): Json | Response {
  let body: Json = {};
  if (raw.trim() !== "") {
    try {
      const parsed = JSON.parse(raw);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new Error();
      }
      body = parsed as Json;
    } catch {
      return invalid("The request body is not valid JSON");
    }
  }
  return body;
}

/** A key seen before: the refund it made, or a 409 if the request differs. Bad keys are a 400. */
function replayRefund(s: RazorpayState, key: string, fingerprint: string): Response | null {
  if (!/^[A-Za-z0-9_-]{10,}$/.test(key)) {
    return invalid(
      "The X-Refund-Idempotency header must be at least 10 characters from A-Z, a-z, 0-9, _ and -",
      "X-Refund-Idempotency",
    );
  }
  const seen = s.refundKeys.get(key);
  if (seen) {
    if (seen.fingerprint !== fingerprint) {
      return errorResponse(
        409,
        "The idempotency key was already used with a different request",
        {
          source: "business",
          step: "NA",
          reason: "idempotency_key_reused",
          field: "X-Refund-Idempotency",
        },
      );
    }
    return jsonResponse(200, s.refunds.get(seen.refundId));
  }
  return null;
}

/** The amount to refund: the rest of the payment unless `amount` asks for less. */
function refundAmount(pay: PaymentEntity, body: Json): number | Response {
  const exponent = CURRENCY_EXPONENT.get(pay.currency) ?? 2;
  if (!pay.captured) return invalid("Only captured payments can be refunded");
  const remaining = pay.amount - pay.amount_refunded;
  if (remaining <= 0) return invalid("The payment has been fully refunded already");
  let amount = remaining;
  if (body.amount !== undefined && body.amount !== null) {
    if (typeof body.amount !== "number" || !Number.isInteger(body.amount)) {
      return invalid("The amount must be an integer", "amount");
    }
    const min = minimumAmount(exponent);
    if (body.amount < min) {
      return invalid(
        `The amount must be at least ${pay.currency} ${formatMinor(min, exponent)}`,
        "amount",
      );
    }
    if (body.amount > remaining) {
      return invalid("The refund amount provided is greater than amount captured", "amount");
    }
    amount = body.amount;
  }
  return amount;
}

/** Stores a processed refund of payment `p` (Razorpay's normal speed processes at once here). */
function recordRefund(
  s: RazorpayState,
  p: PaymentRecord,
  r: { amount: number; notes: Notes; receipt: string | null; speed: "normal" | "optimum" },
): RefundEntity {
  const pay = p.entity;
  const refund: RefundEntity = {
    id: randomId("rfnd_"),
    entity: "refund",
    amount: r.amount,
    currency: pay.currency,
    payment_id: pay.id,
    notes: r.notes,
    receipt: r.receipt,
    acquirer_data: { arn: null },
    created_at: s.unix(),
    batch_id: null,
    status: "processed",
    speed_processed: "normal",
    speed_requested: r.speed,
  };
  s.refunds.set(refund.id, refund);
  s.refundSeq.push(refund.id);
  p.refundIds.push(refund.id);
  return refund;
}

/**
 * An authorization nobody captured before it expired (A4: 3 days, or the order's
 * manual_expiry_period): Razorpay refunds it. The payment becomes `refunded` with
 * `captured: false`, a refund entity records the return, and refund.created and
 * refund.processed are sent (with the payment, as every refund event). No payment.failed:
 * the payment did not fail, it was given back.
 */
export async function simAutoRefund(s: RazorpayState, { req, ids }: Call): Promise<Response> {
  const body = await readBody(req);
  const p = s.payments.get(ids.id);
  if (!p) return notFoundId();
  const pay = p.entity;
  if (pay.status !== "authorized") {
    return invalid(
      "Only a payment still authorized and never captured is refunded automatically",
    );
  }
  const order = s.orders.get(pay.order_id)!;
  const speed = order.capture?.refundSpeed ?? "normal";
  const refund = recordRefund(s, p, { amount: pay.amount, notes: [], receipt: null, speed });
  Object.assign(pay, { status: "refunded", amount_refunded: pay.amount, refund_status: "full" });
  const events = [
    emit(s, "refund.created", { refund, payment: pay }),
    emit(s, "refund.processed", { refund, payment: pay }),
  ];
  s.hooks.schedule(events, s.hooksFor(body));
  return jsonResponse(200, pay);
}

/** A refund the bank later rejects: the money is back on the payment and refund.failed is sent. */
export async function simFailRefund(s: RazorpayState, { req, ids }: Call): Promise<Response> {
  const body = await readBody(req);
  const refund = s.refunds.get(ids.id);
  if (!refund) return notFoundId();
  if (refund.status === "failed") return invalid("The refund has failed already", "refund_id");
  const pay = s.payments.get(refund.payment_id)!.entity;
  refund.status = "failed";
  pay.amount_refunded = Math.max(0, pay.amount_refunded - refund.amount);
  pay.refund_status = pay.amount_refunded === 0
    ? null
    : pay.amount_refunded >= pay.amount
    ? "full"
    : "partial";
  if (pay.status === "refunded" && pay.amount_refunded < pay.amount) pay.status = "captured";
  const ev = emit(s, "refund.failed", { refund, payment: pay });
  s.hooks.schedule([ev], s.hooksFor(body));
  return jsonResponse(200, refund);
}
