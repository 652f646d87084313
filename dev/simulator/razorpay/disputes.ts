// Disputes: /v1/disputes (list, fetch, accept) and the /_sim/razorpay controls that open a
// dispute on a captured payment and move it through its states, each sending Razorpay's
// payment.dispute.* webhook (DISPUTE_FACTS 2): nothing is deducted while a dispute is open; a
// lost (or accepted) one deducts its amount (amount_deducted), a won one nothing.
import { invalid, jsonResponse, notFoundId } from "./errors.ts";
import { emit } from "./events.ts";
import { list } from "./lists.ts";
import { readBody } from "./params.ts";
import type { Call, RazorpayState } from "./state.ts";
import { randomId } from "./util.ts";
import type { DisputeEntity } from "./wire.ts";

const PHASES = ["fraud", "retrieval", "chargeback", "pre_arbitration", "arbitration"] as const;

export function listDisputes(s: RazorpayState, { url }: Call): Response {
  return list(url.searchParams, s.disputeSeq.map((id) => s.disputes.get(id)!));
}

export function getDispute(s: RazorpayState, { ids }: Call): Response {
  if (!/^disp_/.test(ids.id)) return invalid("The dispute id must start with disp_", "id");
  const d = s.disputes.get(ids.id);
  return d ? jsonResponse(200, d) : notFoundId();
}

/** Sends the dispute's webhook with the payment it is on (schedule with the given options). */
function send(s: RazorpayState, d: DisputeEntity, event: string, body: Record<string, unknown>) {
  const payment = s.payments.get(d.payment_id)!.entity;
  s.hooks.schedule([emit(s, event, { payment, dispute: d })], s.hooksFor(body));
}

/** POST /v1/disputes/:id/accept: "The corresponding amount will be deducted"; status lost. */
export function acceptDispute(s: RazorpayState, { ids }: Call): Response {
  const d = s.disputes.get(ids.id);
  if (!d) return notFoundId();
  if (d.status !== "open") {
    return invalid(`Action not allowed when dispute is in ${d.status} status.`);
  }
  Object.assign(d, { status: "lost", amount_deducted: d.amount });
  send(s, d, "payment.dispute.lost", {});
  return jsonResponse(200, d);
}

/**
 * POST /_sim/razorpay/payments/:id/dispute {amount?, phase?, reason_code?, webhooks?}: the
 * customer's bank raises a dispute on a captured payment (payment.dispute.created).
 */
export async function simOpenDispute(s: RazorpayState, { req, ids }: Call): Promise<Response> {
  const body = await readBody(req);
  const p = s.payments.get(ids.id);
  if (!p) return notFoundId();
  if (!p.entity.captured) return invalid("Only a captured payment can be disputed");
  const amount = body.amount ?? p.entity.amount - p.entity.amount_refunded;
  if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount < 1) {
    return invalid("The amount must be a positive integer.", "amount");
  }
  const phase = body.phase ?? "chargeback";
  if (!(PHASES as readonly unknown[]).includes(phase)) {
    return invalid("The phase is invalid.", "phase");
  }
  const d: DisputeEntity = {
    id: randomId("disp_"),
    entity: "dispute",
    payment_id: p.entity.id,
    amount,
    currency: p.entity.currency,
    amount_deducted: 0,
    reason_code: typeof body.reason_code === "string" ? body.reason_code : "chargeback",
    respond_by: s.unix() + 7 * 86400,
    status: "open",
    phase: phase as DisputeEntity["phase"],
    created_at: s.unix(),
    evidence: { amount, summary: null, shipping_proof: null, others: null, submitted_at: null },
  };
  s.disputes.set(d.id, d);
  s.disputeSeq.push(d.id);
  send(s, d, "payment.dispute.created", body);
  return jsonResponse(200, d);
}

const NEXT: Record<string, string[]> = {
  open: ["under_review", "action_required", "won", "lost", "closed"],
  under_review: ["action_required", "won", "lost"],
};

/**
 * POST /_sim/razorpay/disputes/:id/advance {status, amount_deducted?, webhooks?}: evidence
 * submitted (under_review), found wanting (action_required: an event, the status stays open),
 * decided (won: nothing deducted unless amount_deducted says a part was; lost: the amount), or a
 * fraud case closed after a refund.
 */
export async function simAdvanceDispute(s: RazorpayState, { req, ids }: Call): Promise<Response> {
  const body = await readBody(req);
  const d = s.disputes.get(ids.id);
  if (!d) return notFoundId();
  const to = String(body.status);
  if (!(NEXT[d.status] ?? []).includes(to)) {
    return invalid(`Action not allowed when dispute is in ${d.status} status.`, "status");
  }
  const deducted = body.amount_deducted ?? (to === "lost" ? d.amount : 0);
  if (
    typeof deducted !== "number" || !Number.isSafeInteger(deducted) || deducted < 0 ||
    deducted > d.amount
  ) {
    return invalid(
      "amount_deducted must be between 0 and the dispute's amount.",
      "amount_deducted",
    );
  }
  if (to === "action_required") {
    d.status = "open";
  } else {
    Object.assign(d, { status: to, amount_deducted: deducted });
    if (to === "under_review") d.evidence.submitted_at = s.unix();
  }
  send(s, d, `payment.dispute.${to}`, body);
  return jsonResponse(200, d);
}
