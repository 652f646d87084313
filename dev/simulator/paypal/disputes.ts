// Disputes v1: GET /v1/customer/disputes (list) and /v1/customer/disputes/:id, and the
// /_sim/paypal controls that open a dispute on a completed capture and move it through its
// states (DISPUTE_FACTS 3, MARKETPLACE_FACTS 1.5), each step sending the signed
// CUSTOMER.DISPUTE.* event; a resolution for the buyer also reverses the capture (as far as the
// outcome refunds it) and sends PAYMENT.CAPTURE.REVERSED in the same batch. A claim or
// chargeback makes PayPal refuse refunds of the capture (REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK).
import { formatUnits, parseValue } from "./currencies.ts";
import { emit, emitAll } from "./events.ts";
import { invalidRequest, jsonResponse, notFound, unprocessable } from "./errors.ts";
import { newRefund, refundedUnits } from "./refunds.ts";
import type { Call, PayPalState } from "./state.ts";
import { isoSeconds, type Link, type Money, paypalId } from "./wire.ts";

export interface Dispute {
  dispute_id: string;
  create_time: string;
  update_time: string;
  disputed_transactions: {
    seller_transaction_id: string;
    create_time: string;
    transaction_status: string;
    gross_amount: Money;
  }[];
  reason: string;
  status: string;
  dispute_amount: Money;
  dispute_outcome?: { outcome_code: string; amount_refunded?: Money };
  dispute_life_cycle_stage: string;
  dispute_channel: "INTERNAL" | "EXTERNAL";
  seller_response_due_date?: string;
  money_movements: {
    affected_party: "SELLER" | "BUYER";
    type: "DEBIT" | "CREDIT";
    amount: Money;
    initiated_time: string;
    reason: string;
  }[];
  links: Link[];
}

const REASONS = [
  "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
  "MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED",
  "UNAUTHORISED",
  "CREDIT_NOT_PROCESSED",
  "DUPLICATE_TRANSACTION",
  "INCORRECT_AMOUNT",
  "PAYMENT_BY_OTHER_MEANS",
  "CANCELED_RECURRING_BILLING",
  "PROBLEM_WITH_REMITTANCE",
  "OTHER",
];
const STAGES = ["INQUIRY", "CHARGEBACK", "PRE_ARBITRATION", "ARBITRATION"];
const OPEN_STATUSES = ["WAITING_FOR_SELLER_RESPONSE", "WAITING_FOR_BUYER_RESPONSE", "UNDER_REVIEW"];
const OUTCOMES = [
  "RESOLVED_BUYER_FAVOUR",
  "RESOLVED_SELLER_FAVOUR",
  "RESOLVED_WITH_PAYOUT",
  "CANCELED_BY_BUYER",
  "ACCEPTED",
  "DENIED",
];
const BUYER_WINS = new Set(["RESOLVED_BUYER_FAVOUR", "ACCEPTED"]);
const DAY_MS = 86_400_000;

/** A value in the capture's currency from a control body (absent: undefined), or a 400. */
function value(body: Record<string, unknown>, key: string, currency: string) {
  const v = body[key];
  if (v === undefined) return undefined;
  const p = parseValue({ value: v, currency_code: currency });
  if (typeof p === "string") return invalidRequest(p, `${key}: a ${currency} value`, `/${key}`);
  return p.units;
}

/** Whether a capture has a claim or chargeback open (refunds are refused meanwhile). */
export function chargebackOpen(s: PayPalState, captureId: string): boolean {
  return [...s.disputes.values()].some((d) =>
    d.disputed_transactions[0].seller_transaction_id === captureId &&
    d.status !== "RESOLVED" && d.dispute_life_cycle_stage !== "INQUIRY"
  );
}

function fee(d: Dispute, units: bigint, at: string) {
  if (units <= 0n) return;
  d.money_movements.push({
    affected_party: "SELLER",
    type: "DEBIT",
    amount: {
      currency_code: d.dispute_amount.currency_code,
      value: formatUnits(units, d.dispute_amount.currency_code),
    },
    initiated_time: at,
    reason: "CHARGEBACK_FEE",
  });
}

/**
 * POST /_sim/paypal/captures/:id/dispute {amount?, reason?, stage?, fee?, webhooks?}: the buyer
 * (or their card's bank: stage CHARGEBACK, the default) disputes a completed capture; amount
 * defaults to what is not refunded; fee is a CHARGEBACK_FEE the seller pays.
 */
export async function simOpenDispute(s: PayPalState, { ids, body }: Call): Promise<Response> {
  const c = s.captures.get(ids.id);
  if (!c) return notFound();
  if (c.capture.status !== "COMPLETED" && c.capture.status !== "PARTIALLY_REFUNDED") {
    return unprocessable("TRANSACTION_REFUSED", `a ${c.capture.status} capture cannot be disputed`);
  }
  const currency = c.capture.amount.currency_code;
  const left = parseValue(c.capture.amount) as { units: bigint };
  const remaining = left.units - refundedUnits(s, c.refunds, currency);
  const amount = value(body, "amount", currency) ?? remaining;
  if (amount instanceof Response) return amount;
  if (amount > remaining) {
    return invalidRequest(
      "INVALID_PARAMETER_VALUE",
      "amount: more than the capture holds",
      "/amount",
    );
  }
  const feeUnits = value(body, "fee", currency) ?? 0n;
  if (feeUnits instanceof Response) return feeUnits;
  const reason = body.reason ?? "MERCHANDISE_OR_SERVICE_NOT_RECEIVED";
  const stage = body.stage ?? "CHARGEBACK";
  if (typeof reason !== "string" || !REASONS.includes(reason)) {
    return invalidRequest("INVALID_PARAMETER_VALUE", `reason: ${REASONS.join("|")}`, "/reason");
  }
  if (stage !== "INQUIRY" && stage !== "CHARGEBACK") {
    return invalidRequest("INVALID_PARAMETER_VALUE", "stage: INQUIRY|CHARGEBACK", "/stage");
  }
  const now = isoSeconds(s.now());
  const id = `PP-D-${paypalId().slice(0, 8)}`;
  const d: Dispute = {
    dispute_id: id,
    create_time: now,
    update_time: now,
    disputed_transactions: [{
      seller_transaction_id: c.capture.id,
      create_time: c.capture.create_time,
      transaction_status: "COMPLETED",
      gross_amount: c.capture.amount,
    }],
    reason,
    status: "WAITING_FOR_SELLER_RESPONSE",
    dispute_amount: { currency_code: currency, value: formatUnits(amount, currency) },
    dispute_life_cycle_stage: stage,
    dispute_channel: stage === "CHARGEBACK" ? "EXTERNAL" : "INTERNAL",
    seller_response_due_date: isoSeconds(s.now() + 10 * DAY_MS),
    money_movements: [],
    links: [{ href: `${s.baseUrl}/v1/customer/disputes/${id}`, rel: "self", method: "GET" }],
  };
  fee(d, feeUnits, now);
  s.disputes.set(id, d);
  await emit(s, "CUSTOMER.DISPUTE.CREATED", structuredClone(d), c.orderId, s.hooksFor(body));
  return jsonResponse(201, d);
}

/**
 * POST /_sim/paypal/disputes/:id/advance {status, stage?, outcome?, amount_refunded?, fee?,
 * webhooks?}: the dispute moves on (WAITING_FOR_*: someone must answer; UNDER_REVIEW: PayPal
 * decides; stage: an inquiry escalated to a claim) or is RESOLVED with an outcome; for the buyer,
 * PayPal keeps amount_refunded (default: the dispute's amount) and reverses the capture by it.
 */
export async function simAdvanceDispute(s: PayPalState, { ids, body }: Call): Promise<Response> {
  const d = s.disputes.get(ids.id);
  if (!d) return notFound();
  if (d.status === "RESOLVED") return unprocessable("DISPUTE_RESOLVED", "the dispute is resolved");
  const status = body.status;
  const currency = d.dispute_amount.currency_code;
  if (typeof status !== "string" || ![...OPEN_STATUSES, "RESOLVED"].includes(status)) {
    return invalidRequest(
      "INVALID_PARAMETER_VALUE",
      `status: ${OPEN_STATUSES.join("|")}|RESOLVED`,
      "/status",
    );
  }
  const stage = body.stage ?? d.dispute_life_cycle_stage;
  if (
    typeof stage !== "string" || STAGES.indexOf(stage) < STAGES.indexOf(d.dispute_life_cycle_stage)
  ) {
    return invalidRequest(
      "INVALID_PARAMETER_VALUE",
      `stage: ${STAGES.join("|")}, never back`,
      "/stage",
    );
  }
  const outcome = body.outcome;
  if ((status === "RESOLVED") !== (typeof outcome === "string" && OUTCOMES.includes(outcome))) {
    return invalidRequest(
      "INVALID_PARAMETER_VALUE",
      `outcome (with RESOLVED only): ${OUTCOMES.join("|")}`,
      "/outcome",
    );
  }
  const disputed = parseValue(d.dispute_amount) as { units: bigint };
  const kept = value(body, "amount_refunded", currency) ?? disputed.units;
  if (kept instanceof Response) return kept;
  if (kept > disputed.units) {
    return invalidRequest(
      "INVALID_PARAMETER_VALUE",
      "amount_refunded: at most the dispute's amount",
      "/amount_refunded",
    );
  }
  const feeUnits = value(body, "fee", currency) ?? 0n;
  if (feeUnits instanceof Response) return feeUnits;
  const now = isoSeconds(s.now());
  d.status = status;
  d.dispute_life_cycle_stage = stage;
  d.update_time = now;
  fee(d, feeUnits, now);
  if (status !== "RESOLVED") {
    await emit(s, "CUSTOMER.DISPUTE.UPDATED", structuredClone(d), orderOf(s, d), s.hooksFor(body));
    return jsonResponse(200, d);
  }
  delete d.seller_response_due_date;
  const buyer = BUYER_WINS.has(outcome as string);
  d.dispute_outcome = {
    outcome_code: outcome as string,
    ...(buyer
      ? { amount_refunded: { currency_code: currency, value: formatUnits(kept, currency) } }
      : {}),
  };
  const events: { type: string; resource: object }[] = [
    { type: "CUSTOMER.DISPUTE.RESOLVED", resource: structuredClone(d) },
  ];
  if (buyer) events.push({ type: "PAYMENT.CAPTURE.REVERSED", resource: reverse(s, d, kept) });
  await emitAll(s, events, orderOf(s, d), s.hooksFor(body));
  return jsonResponse(200, d);
}

const orderOf = (s: PayPalState, d: Dispute) =>
  s.captures.get(d.disputed_transactions[0].seller_transaction_id)?.orderId ?? null;

/** PayPal takes `units` of the capture back: a refund-shaped reversal (as captures.ts makes). */
function reverse(s: PayPalState, d: Dispute, units: bigint) {
  const captureId = d.disputed_transactions[0].seller_transaction_id;
  const c = s.captures.get(captureId)!;
  const currency = c.capture.amount.currency_code;
  const refund = newRefund(s, captureId, formatUnits(units, currency), currency, {
    note_to_payer: "Payment reversed",
  });
  c.refunds.push(refund.id);
  const total = parseValue(c.capture.amount) as { units: bigint };
  c.capture.status = refundedUnits(s, c.refunds, currency) >= total.units
    ? "REFUNDED"
    : "PARTIALLY_REFUNDED";
  return refund;
}

export function getDispute(s: PayPalState, { ids }: Call): Response {
  const d = s.disputes.get(ids.id);
  return d ? jsonResponse(200, d) : notFound("INVALID_RESOURCE_ID");
}

/**
 * GET /v1/customer/disputes?start_time&disputed_transaction_id&page_size&next_page_token: the
 * newest first, as summaries without their transactions (PayPal's list items are summaries:
 * a client reads each dispute by id for its capture), next_page_token in the rel:next link.
 */
export function listDisputes(s: PayPalState, { req }: Call): Response {
  const q = new URL(req.url).searchParams;
  const size = Number(q.get("page_size") ?? 10);
  if (!Number.isInteger(size) || size < 1 || size > 50) {
    return invalidRequest("INVALID_PARAMETER_VALUE", "page_size: 1-50", "page_size");
  }
  const start = q.get("start_time");
  const startMs = start === null ? 0 : Date.parse(start);
  if (Number.isNaN(startMs)) {
    return invalidRequest("INVALID_PARAMETER_SYNTAX", "start_time: an RFC 3339 time", "start_time");
  }
  const txn = q.get("disputed_transaction_id");
  const offset = Number(q.get("next_page_token") ?? 0) || 0;
  const all = [...s.disputes.values()]
    .filter((d) => Date.parse(d.create_time) >= startMs)
    .filter((d) => txn === null || d.disputed_transactions[0].seller_transaction_id === txn)
    .reverse();
  const page = all.slice(offset, offset + size);
  const links: Link[] = [];
  if (offset + size < all.length) {
    const next = new URLSearchParams(q);
    next.delete("start_time");
    next.set("next_page_token", String(offset + size));
    links.push({ href: `${s.baseUrl}/v1/customer/disputes?${next}`, rel: "next", method: "GET" });
  }
  const items = page.map(({ disputed_transactions: _t, money_movements: _m, ...summary }) =>
    summary
  );
  return jsonResponse(200, { items, links });
}
