// Disputes: /v1/disputes (list, retrieve, close) and the /_sim/stripe controls that open a
// dispute on a paid charge and move it through its states, each step sending the events Stripe
// sends (DISPUTE_FACTS 1.1-1.4): a chargeback withdraws the amount plus a fee at once (one
// `dispute` balance transaction; created and funds_withdrawn), a win reinstates it
// (`dispute_reversal`; closed and funds_reinstated), an inquiry moves no money.
import { invalid, noSuch } from "./errors.ts";
import { emit, emitUpdated } from "./events.ts";
import { list, retrieve } from "./lists.ts";
import { ALLOWED, rejectUnknown, str } from "./params.ts";
import { type ApiCall, type Ctx, ok, type Res, type StripeState } from "./state.ts";
import { clone, randomId } from "./util.ts";
import type { Charge, Dispute, DisputeBalanceTransaction, DisputeStatus, Json } from "./wire.ts";

/** Stripe's US dispute fee in cents; the control may set another (settle never assumes one). */
const DEFAULT_FEE = 1500;
const REASONS = [
  "bank_cannot_process",
  "credit_not_processed",
  "duplicate",
  "fraudulent",
  "general",
  "product_not_received",
  "product_unacceptable",
  "subscription_canceled",
  "unrecognized",
];

/** A whole number from a control body (undefined when absent), else a 400. */
function count(body: Json, name: string, min: number): number | undefined {
  const v = body[name];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
    throw invalid(`${name} must be an integer of at least ${min}`, name);
  }
  return v;
}

export function listDisputes(s: StripeState, { params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.disputeList);
  const charge = str(p, "charge");
  const pi = str(p, "payment_intent");
  const all = [...s.disputes.values()].filter((d) =>
    (charge === undefined || d.charge === charge) && (pi === undefined || d.payment_intent === pi)
  );
  return ok(list(all, p, path));
}

export function retrieveDispute(s: StripeState, { ids, params: p }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.disputeRetrieve);
  const d = s.disputes.get(ids.id);
  if (!d) throw noSuch("dispute", ids.id, "id", 404);
  return ok(retrieve(p, d));
}

/** Accepting the dispute: "status … will change from needs_response to lost. … irreversible." */
export function closeDispute(s: StripeState, { ids, params: p, ctx }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.disputeClose);
  const d = s.disputes.get(ids.id);
  if (!d) throw noSuch("dispute", ids.id, "id", 404);
  if (!["needs_response", "warning_needs_response"].includes(d.status)) {
    throw invalid(`This dispute is already ${d.status} and cannot be closed.`);
  }
  move(s, ctx, d, d.status === "needs_response" ? "lost" : "warning_closed");
  return ok(d);
}

function balanceTransaction(
  s: StripeState,
  d: Dispute,
  kind: "dispute" | "dispute_reversal",
  amount: number,
  fee: number,
): DisputeBalanceTransaction {
  const charge = s.charges.get(d.charge)!;
  return {
    id: randomId("txn_"),
    object: "balance_transaction",
    amount,
    available_on: s.unix(),
    created: s.unix(),
    currency: d.currency,
    description: `${
      kind === "dispute" ? "Chargeback withdrawal" : "Chargeback reversal"
    } for ${charge.id}`,
    fee,
    fee_details: fee === 0 ? [] : [{
      amount: fee,
      application: null,
      currency: d.currency,
      description: "Dispute fee",
      type: "stripe_fee",
    }],
    net: amount - fee,
    reporting_category: kind,
    source: d.id,
    status: "available",
    type: "adjustment",
  };
}

function withdraw(s: StripeState, ctx: Ctx, d: Dispute, fee: number) {
  d.balance_transactions.push(balanceTransaction(s, d, "dispute", -d.amount, fee));
  d.is_charge_refundable = false;
  emit(s, ctx, "charge.dispute.funds_withdrawn", d);
}

/** Moves the dispute to `to`, sending what Stripe sends for that step. */
function move(s: StripeState, ctx: Ctx, d: Dispute, to: DisputeStatus, reinstated?: number) {
  const before = clone(d);
  d.status = to;
  if (to === "won" || to === "lost" || to === "warning_closed") {
    d.evidence_details.due_by = null;
    emit(s, ctx, "charge.dispute.closed", d);
    const back = to === "won" ? d.amount : to === "lost" ? reinstated ?? 0 : 0;
    if (back > 0) {
      d.balance_transactions.push(balanceTransaction(s, d, "dispute_reversal", back, 0));
      emit(s, ctx, "charge.dispute.funds_reinstated", d);
    }
    return;
  }
  emitUpdated(s, ctx, "charge.dispute.updated", before, d);
}

/**
 * POST /_sim/stripe/charges/:id/dispute {amount?, reason?, inquiry?, fee?, webhooks?}: the
 * cardholder's bank disputes a paid charge. A chargeback (default) sends created and
 * funds_withdrawn; an inquiry only created.
 */
export function simOpenDispute(s: StripeState, chargeId: string, body: Json, ctx: Ctx): Dispute {
  const charge: Charge | undefined = s.charges.get(chargeId);
  if (!charge) throw noSuch("charge", chargeId, "id", 404);
  if (charge.status !== "succeeded" || !charge.captured) {
    throw invalid(`Charge ${chargeId} was not paid: it cannot be disputed.`);
  }
  const amount = count(body, "amount", 1) ?? charge.amount - charge.amount_refunded;
  const fee = count(body, "fee", 0) ?? DEFAULT_FEE;
  const reason = body.reason ?? "fraudulent";
  if (typeof reason !== "string" || !REASONS.includes(reason)) {
    throw invalid(`reason must be one of ${REASONS.join(", ")}`, "reason");
  }
  const inquiry = body.inquiry === true;
  const d: Dispute = {
    id: randomId("dp_"),
    object: "dispute",
    amount,
    balance_transactions: [],
    charge: charge.id,
    created: s.unix(),
    currency: charge.currency,
    enhanced_eligibility_types: [],
    evidence: { uncategorized_text: null, product_description: null, refund_policy: null },
    evidence_details: {
      due_by: s.unix() + 7 * 86400,
      enhanced_eligibility: {},
      has_evidence: false,
      past_due: false,
      submission_count: 0,
    },
    is_charge_refundable: inquiry,
    livemode: false,
    metadata: {},
    payment_intent: charge.payment_intent,
    payment_method_details: {
      type: "card",
      card: { brand: "visa", case_type: inquiry ? "inquiry" : "chargeback" },
    },
    reason,
    status: inquiry ? "warning_needs_response" : "needs_response",
  };
  s.disputes.set(d.id, d);
  charge.disputed = true;
  emit(s, ctx, "charge.dispute.created", d);
  if (!inquiry) withdraw(s, ctx, d, fee);
  return d;
}

const NEXT: Record<string, DisputeStatus[]> = {
  warning_needs_response: ["warning_under_review", "warning_closed", "needs_response"],
  warning_under_review: ["warning_closed", "needs_response"],
  needs_response: ["under_review", "won", "lost"],
  under_review: ["won", "lost"],
};

/**
 * POST /_sim/stripe/disputes/:id/advance {status, reinstated?, fee?, webhooks?}: the next step
 * (evidence submitted: under_review; the bank decides: won | lost, `reinstated` being the
 * refunded part a partial win returns; an inquiry escalates to needs_response or closes).
 */
export function simAdvanceDispute(s: StripeState, id: string, body: Json, ctx: Ctx): Dispute {
  const d = s.disputes.get(id);
  if (!d) throw noSuch("dispute", id, "id", 404);
  const to = body.status as DisputeStatus;
  if (!(NEXT[d.status] ?? []).includes(to)) {
    throw invalid(`A ${d.status} dispute cannot become ${String(to)}.`, "status");
  }
  const reinstated = count(body, "reinstated", 1);
  if (reinstated !== undefined && (to !== "lost" || reinstated > d.amount)) {
    throw invalid(
      "reinstated is at most the dispute's amount, for a lost dispute only",
      "reinstated",
    );
  }
  if (to === "needs_response") {
    // An inquiry escalated: the formal chargeback withdraws the money now.
    const before = clone(d);
    d.status = to;
    emitUpdated(s, ctx, "charge.dispute.updated", before, d);
    withdraw(s, ctx, d, count(body, "fee", 0) ?? DEFAULT_FEE);
    return d;
  }
  move(s, ctx, d, to, reinstated);
  return d;
}
