// /v2/payments/captures/:id/refund and /v2/payments/refunds/:id, and the refund control.
import { formatUnits, parseValue, unitsOf } from "./currencies.ts";
import { chargebackOpen } from "./disputes.ts";
import { emit } from "./events.ts";
import { invalidRequest, jsonResponse, notFound, unprocessable } from "./errors.ts";
import { remember, replay } from "./idempotency.ts";
import { optionalText } from "./params.ts";
import type { Call, PayPalState } from "./state.ts";
import { isoSeconds, paypalId, type Refund } from "./wire.ts";

export function getRefund(s: PayPalState, { ids }: Call): Response {
  const r = s.refunds.get(ids.id);
  return r ? jsonResponse(200, r) : notFound();
}

/** The capture's refunded total in PayPal units (failed and cancelled refunds do not count). */
export function refundedUnits(s: PayPalState, ids: string[], currency: string): bigint {
  return ids.map((id) => s.refunds.get(id)!)
    .filter((r) => r.status === "COMPLETED" || r.status === "PENDING")
    .reduce((n, r) => n + unitsOf(r.amount.value, currency), 0n);
}

/** A capture's status after its refunds: REFUNDED once nothing is left. */
export function afterRefunds(s: PayPalState, captureId: string): void {
  const c = s.captures.get(captureId)!;
  const currency = c.capture.amount.currency_code;
  const total = refundedUnits(s, c.refunds, currency);
  c.capture.status = total >= unitsOf(c.capture.amount.value, currency)
    ? "REFUNDED"
    : "PARTIALLY_REFUNDED";
}

/**
 * POST /v2/payments/captures/:id/refund: the amount (or what remains) of a completed capture,
 * in its currency, with PayPal's 422 issues for the rest.
 */
export async function refundCapture(
  s: PayPalState,
  { ids: { id }, body, requestId }: Call,
): Promise<Response> {
  const again = replay(s, "refunds", requestId);
  if (again) return again;
  const c = s.captures.get(id);
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
  if (chargebackOpen(s, id)) {
    return unprocessable(
      "REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK",
      "Refunds are not allowed on this capture due to a chargeback on the card or bank.",
    );
  }
  const remaining = unitsOf(cap.amount.value, currency) - refundedUnits(s, c.refunds, currency);
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
      "The refund amount must be less than or equal to the capture amount that has not yet " +
        "been refunded.",
    );
  }
  const texts: Record<string, string | undefined> = {};
  for (
    const [k, max] of [["custom_id", 127], ["invoice_id", 127], ["note_to_payer", 255]] as const
  ) {
    const t = optionalText(body, k, max);
    if (t instanceof Response) return t;
    texts[k] = t;
  }
  const refund = newRefund(s, id, formatUnits(amount, currency), currency, texts);
  refund.status = s.refundStatus;
  c.refunds.push(refund.id);
  refund.seller_payable_breakdown.total_refunded_amount.value = formatUnits(
    refundedUnits(s, c.refunds, currency),
    currency,
  );
  if (refund.status === "COMPLETED") {
    afterRefunds(s, id);
    await emit(s, "PAYMENT.CAPTURE.REFUNDED", refund, c.orderId, s.defaultWebhooks);
  }
  return remember(s, "refunds", requestId, { status: 201, body: refund });
}

export function newRefund(
  s: PayPalState,
  captureId: string,
  value: string,
  currency: string,
  texts: Record<string, string | undefined>,
): Refund {
  const id = paypalId();
  const now = isoSeconds(s.now());
  const money = { currency_code: currency, value };
  const refund: Refund = {
    id,
    status: "COMPLETED",
    amount: money,
    ...Object.fromEntries(Object.entries(texts).filter(([, v]) => v !== undefined)),
    seller_payable_breakdown: { gross_amount: money, total_refunded_amount: { ...money } },
    links: [
      { href: `${s.baseUrl}/v2/payments/refunds/${id}`, rel: "self", method: "GET" },
      { href: `${s.baseUrl}/v2/payments/captures/${captureId}`, rel: "up", method: "GET" },
    ],
    create_time: now,
    update_time: now,
  };
  s.refunds.set(id, refund);
  return refund;
}

/**
 * POST /_sim/paypal/refunds/:id/settle {outcome: completed|failed}: a pending refund completes
 * (with PAYMENT.CAPTURE.REFUNDED) or fails at PayPal.
 */
export async function simSettleRefund(s: PayPalState, { ids, body }: Call) {
  const r = s.refunds.get(ids.id);
  if (!r) return notFound();
  if (r.status !== "PENDING") {
    return unprocessable("REFUND_NOT_PENDING", `the refund is ${r.status}`);
  }
  const outcome = body.outcome ?? "completed";
  if (outcome !== "completed" && outcome !== "failed") {
    return invalidRequest("INVALID_PARAMETER_VALUE", "outcome: completed|failed");
  }
  r.status = outcome === "completed" ? "COMPLETED" : "FAILED";
  r.update_time = isoSeconds(s.now());
  const captureId = /captures\/([^/]+)$/.exec(r.links[1].href)![1];
  if (r.status === "COMPLETED") {
    afterRefunds(s, captureId);
    await emit(
      s,
      "PAYMENT.CAPTURE.REFUNDED",
      r,
      s.captures.get(captureId)!.orderId,
      s.hooksFor(body),
    );
  }
  return jsonResponse(200, r);
}
