// /v2/payments: captures (read; a pending one completing or denied) and refunds of captures.
import { parseWebhookOptions } from "../common.ts";
import { invalidRequest, type Json, jsonResponse, notFound, unprocessable } from "./errors.ts";
import { remember, replay } from "./orders.ts";
import type { PayPalState } from "./state.ts";
import { formatUnits, isoSeconds, parseValue, paypalId, type Refund } from "./wire.ts";

export function getCapture(state: PayPalState, id: string): Response {
  const c = state.captures.get(id);
  return c ? jsonResponse(200, c.capture) : notFound();
}

export function getRefund(state: PayPalState, id: string): Response {
  const r = state.refunds.get(id);
  return r ? jsonResponse(200, r) : notFound();
}

const units = (value: string, currency: string) => {
  const p = parseValue({ value, currency_code: currency });
  return typeof p === "string" ? 0n : p.units;
};

/** The capture's refunded total in PayPal units (failed and cancelled refunds do not count). */
function refunded(state: PayPalState, ids: string[], currency: string): bigint {
  return ids.map((id) => state.refunds.get(id)!)
    .filter((r) => r.status === "COMPLETED" || r.status === "PENDING")
    .reduce((n, r) => n + units(r.amount.value, currency), 0n);
}

function optionalText(body: Json, key: string, max: number): string | Response | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length < 1 || v.length > max) {
    return invalidRequest("INVALID_STRING_LENGTH", `${key} is 1-${max} characters`, `/${key}`);
  }
  return v;
}

/** POST /v2/payments/captures/{id}/refund: the amount, or what remains, of a completed capture. */
export async function refundCapture(
  state: PayPalState,
  id: string,
  body: Json,
  requestId: string | null,
): Promise<Response> {
  const again = replay(state, "refunds", requestId);
  if (again) return again;
  const c = state.captures.get(id);
  if (!c) return notFound();
  const cap = c.capture;
  const currency = cap.amount.currency_code;
  if (cap.status === "PENDING") return unprocessable("PENDING_CAPTURE", "Capture is pending.");
  if (cap.status === "REFUNDED") {
    return unprocessable("CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded");
  }
  if (cap.status !== "COMPLETED" && cap.status !== "PARTIALLY_REFUNDED") {
    return unprocessable("TRANSACTION_REFUSED", `the capture is ${cap.status}`);
  }
  const remaining = units(cap.amount.value, currency) - refunded(state, c.refunds, currency);
  let amount = remaining;
  if (body.amount !== undefined) {
    const p = parseValue(body.amount);
    if (typeof p === "string") return unprocessable(p, `amount: ${p}`);
    if (p.currency !== currency) {
      return unprocessable(
        "REFUND_CAPTURE_CURRENCY_MISMATCH",
        "Refund must be in capture currency.",
      );
    }
    amount = p.units;
  }
  if (amount > remaining) {
    return unprocessable(
      "REFUND_AMOUNT_EXCEEDED",
      "The refund amount must be less than or " +
        "equal to the capture amount that has not yet been refunded.",
    );
  }
  const texts: Record<string, string | undefined> = {};
  for (const [k, max] of [["custom_id", 127], ["invoice_id", 127], ["note_to_payer", 255]]) {
    const t = optionalText(body, k as string, max as number);
    if (t instanceof Response) return t;
    texts[k as string] = t;
  }
  const refund = newRefund(state, id, formatUnits(amount, currency), currency, texts);
  c.refunds.push(refund.id);
  const total = refunded(state, c.refunds, currency);
  refund.seller_payable_breakdown.total_refunded_amount.value = formatUnits(total, currency);
  if (refund.status === "COMPLETED") {
    cap.status = total === units(cap.amount.value, currency) ? "REFUNDED" : "PARTIALLY_REFUNDED";
    await state.emit("PAYMENT.CAPTURE.REFUNDED", refund, c.orderId, {});
  }
  return remember(state, "refunds", requestId, { status: 201, body: refund });
}

function newRefund(
  state: PayPalState,
  captureId: string,
  value: string,
  currency: string,
  texts: Record<string, string | undefined>,
): Refund {
  const id = paypalId();
  const now = isoSeconds(state.now());
  const money = { currency_code: currency, value };
  const refund: Refund = {
    id,
    status: state.refundStatus,
    amount: money,
    ...Object.fromEntries(Object.entries(texts).filter(([, v]) => v !== undefined)),
    seller_payable_breakdown: {
      gross_amount: money,
      total_refunded_amount: { ...money },
    },
    links: [
      { href: `${state.baseUrl}/v2/payments/refunds/${id}`, rel: "self", method: "GET" },
      { href: `${state.baseUrl}/v2/payments/captures/${captureId}`, rel: "up", method: "GET" },
    ],
    create_time: now,
    update_time: now,
  };
  state.refunds.set(id, refund);
  return refund;
}

/** /_sim: a pending capture completes or is denied, with its webhook. */
export async function settlePending(state: PayPalState, id: string, body: Json) {
  const c = state.captures.get(id);
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
  c.capture.update_time = isoSeconds(state.now());
  const type = outcome === "completed" ? "PAYMENT.CAPTURE.COMPLETED" : "PAYMENT.CAPTURE.DENIED";
  await state.emit(type, c.capture, c.orderId, parseWebhookOptions(body.webhooks));
  return jsonResponse(200, c.capture);
}

/** /_sim: PayPal reverses a completed capture (a chargeback): a refund-shaped REVERSED event. */
export async function reverseCapture(state: PayPalState, id: string, body: Json) {
  const c = state.captures.get(id);
  if (!c) return notFound();
  const cap = c.capture;
  const currency = cap.amount.currency_code;
  const remaining = units(cap.amount.value, currency) - refunded(state, c.refunds, currency);
  if (remaining <= 0n) return unprocessable("CAPTURE_FULLY_REFUNDED", "nothing left to reverse");
  const refund = newRefund(state, id, formatUnits(remaining, currency), currency, {
    note_to_payer: "Payment reversed",
  });
  refund.status = "COMPLETED";
  c.refunds.push(refund.id);
  cap.status = "REFUNDED";
  await state.emit(
    "PAYMENT.CAPTURE.REVERSED",
    refund,
    c.orderId,
    parseWebhookOptions(body.webhooks),
  );
  return jsonResponse(200, refund);
}

/** /_sim: a pending refund completes or fails at PayPal (with PAYMENT.CAPTURE.REFUNDED on success). */
export async function settleRefund(state: PayPalState, id: string, body: Json) {
  const r = state.refunds.get(id);
  if (!r) return notFound();
  if (r.status !== "PENDING") {
    return unprocessable("REFUND_NOT_PENDING", `the refund is ${r.status}`);
  }
  const outcome = body.outcome ?? "completed";
  if (outcome !== "completed" && outcome !== "failed") {
    return invalidRequest("INVALID_PARAMETER_VALUE", "outcome: completed|failed");
  }
  r.status = outcome === "completed" ? "COMPLETED" : "FAILED";
  r.update_time = isoSeconds(state.now());
  const captureId = /captures\/([^/]+)$/.exec(r.links[1].href)![1];
  const c = state.captures.get(captureId)!;
  const currency = r.amount.currency_code;
  const total = refunded(state, c.refunds, currency);
  if (r.status === "COMPLETED") {
    c.capture.status = total === units(c.capture.amount.value, currency)
      ? "REFUNDED"
      : "PARTIALLY_REFUNDED";
    await state.emit("PAYMENT.CAPTURE.REFUNDED", r, c.orderId, parseWebhookOptions(body.webhooks));
  }
  return jsonResponse(200, r);
}
