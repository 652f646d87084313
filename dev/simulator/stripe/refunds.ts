// Refunds: /v1/refunds (create, list, retrieve) and the /_sim/stripe refund failure.
import { invalid, noSuch } from "./errors.ts";
import { emit, emitUpdated } from "./events.ts";
import { formatMajor } from "./currencies.ts";
import { list, retrieve } from "./lists.ts";
import {
  ALLOWED,
  applyMetadata,
  currencyParam,
  int,
  oneOf,
  type Params,
  rejectUnknown,
  str,
} from "./params.ts";
import { type ApiCall, type Ctx, ok, type Res, type StripeState } from "./state.ts";
import { clone, diff, randomId } from "./util.ts";
import type { Charge, Json, Metadata, Refund } from "./wire.ts";

export function listRefunds(s: StripeState, { params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.refundList);
  const pi = str(p, "payment_intent");
  const charge = str(p, "charge");
  const all = [...s.refunds.values()].filter((r) =>
    (pi === undefined || r.payment_intent === pi) &&
    (charge === undefined || r.charge === charge)
  );
  return ok(list(all, p, path));
}

export function retrieveRefund(s: StripeState, { ids, params: p }: ApiCall): Res {
  const r = s.refunds.get(ids.id);
  if (!r) throw noSuch("refund", ids.id, "id", 404);
  return ok(retrieve(p, r));
}

export function createRefund(s: StripeState, { params: p, ctx }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.refundCreate);
  const charge = refundableCharge(s, p);
  const amount = refundAmount(p, charge);
  if (p.currency !== undefined && currencyParam(p) !== charge.currency) {
    throw invalid(
      `The currency must match the charge's currency (${charge.currency}).`,
      "currency",
    );
  }
  const reason = oneOf(
    p,
    "reason",
    ["duplicate", "fraudulent", "requested_by_customer"] as const,
  );
  const metadata = applyMetadata(p.metadata, {});
  const refund = newRefund(s, charge, amount, reason ?? null, metadata);
  s.refunds.set(refund.id, refund);
  const before = clone(charge);
  charge.amount_refunded += amount;
  charge.refunded = charge.amount_refunded >= charge.amount;
  emit(s, ctx, "refund.created", refund);
  emit(
    s,
    ctx,
    "charge.refunded",
    charge,
    diff(before as unknown as Json, charge as unknown as Json) ?? undefined,
  );
  return ok(refund);
}

/** The charge a refund names (by payment_intent or charge), if it can be refunded at all. */
function refundableCharge(s: StripeState, p: Params): Charge {
  const piId = str(p, "payment_intent");
  const chargeId = str(p, "charge");
  if (piId === undefined && chargeId === undefined) {
    throw invalid(
      "One of the following params should be provided for this request: payment_intent or charge.",
      undefined,
      "parameter_missing",
    );
  }
  let charge: Charge | undefined;
  if (piId !== undefined) {
    const pi = s.pis.get(piId);
    if (!pi) throw noSuch("payment_intent", piId, "payment_intent");
    charge = pi.latest_charge ? s.charges.get(pi.latest_charge) : undefined;
    if (!charge || charge.status !== "succeeded") {
      throw invalid(
        `This PaymentIntent (${piId}) does not have a successful charge to refund.`,
        "payment_intent",
        "charge_not_refundable",
      );
    }
    if (chargeId !== undefined && chargeId !== charge.id) {
      throw invalid(
        `The charge ${chargeId} does not belong to the PaymentIntent ${piId}.`,
        "charge",
      );
    }
  } else {
    charge = s.charges.get(chargeId!);
    if (!charge) throw noSuch("charge", chargeId!, "charge");
    if (charge.status !== "succeeded") {
      throw invalid(
        `Charge ${charge.id} has not succeeded and cannot be refunded.`,
        "charge",
        "charge_not_refundable",
      );
    }
  }
  if (!charge.captured) {
    throw invalid(
      `Charge ${charge.id} has not been captured: cancel its PaymentIntent to release it.`,
      "charge",
      "charge_not_refundable",
    );
  }
  // A chargeback not won: the money is already on its way back (DISPUTE_FACTS 1.4).
  const chargedBack = [...s.disputes.values()].some((d) =>
    d.charge === charge!.id && !d.is_charge_refundable && d.status !== "won"
  );
  if (chargedBack) {
    throw invalid(
      `Charge ${charge.id} has been charged back; cannot issue a refund.`,
      "charge",
      "charge_disputed",
    );
  }
  return charge;
}

/** The amount to refund: the rest of the charge unless `amount` asks for less. */
function refundAmount(p: Params, charge: Charge): number {
  const remaining = charge.amount - charge.amount_refunded;
  if (remaining <= 0) {
    throw invalid(
      `Charge ${charge.id} has already been refunded.`,
      undefined,
      "charge_already_refunded",
    );
  }
  const rawAmount = int(p, "amount");
  if (rawAmount !== undefined && rawAmount < 1) {
    throw invalid("Invalid positive integer", "amount", "parameter_invalid_integer");
  }
  const amount = rawAmount ?? remaining;
  if (amount > remaining) {
    throw invalid(
      `Refund amount (${formatMajor(amount, charge.currency)} ${charge.currency}) is greater ` +
        `than unrefunded amount on charge (${formatMajor(remaining, charge.currency)} ` +
        `${charge.currency})`,
      "amount",
      "amount_too_large",
    );
  }
  return amount;
}

function newRefund(
  s: StripeState,
  charge: Charge,
  amount: number,
  reason: string | null,
  metadata: Metadata,
): Refund {
  return {
    id: randomId("re_"),
    object: "refund",
    amount,
    balance_transaction: randomId("txn_"),
    charge: charge.id,
    created: s.unix(),
    currency: charge.currency,
    customer: charge.customer,
    customer_account: null,
    destination_details: {
      card: {
        reference: null,
        reference_status: "pending",
        reference_type: "acquirer_reference_number",
        type: "refund",
      },
      type: "card",
    },
    metadata,
    payment_intent: charge.payment_intent,
    payment_method: charge.payment_method,
    reason,
    receipt_number: null,
    source_transfer_reversal: null,
    status: "succeeded",
    transfer_reversal: null,
  };
}

/** A refund that the card network later rejects (refund.failed, then the money is back). */
export function simFailRefund(s: StripeState, id: string, body: Json, ctx: Ctx): Refund {
  const refund = s.refunds.get(id);
  if (!refund) throw noSuch("refund", id, "id", 404);
  if (refund.status === "failed" || refund.status === "canceled") {
    throw invalid(
      `Refund ${id} has already ${refund.status === "failed" ? "failed" : "been canceled"}.`,
    );
  }
  const reason = body.failure_reason ?? "expired_or_canceled_card";
  const reasons = [
    "lost_or_stolen_card",
    "expired_or_canceled_card",
    "charge_for_pending_refund_disputed",
    "insufficient_funds",
    "declined",
    "merchant_request",
    "unknown",
  ];
  if (typeof reason !== "string" || !reasons.includes(reason)) {
    throw invalid(`failure_reason must be one of ${reasons.join(", ")}`, "failure_reason");
  }
  const before = clone(refund);
  refund.status = "failed";
  refund.failure_reason = reason;
  refund.failure_balance_transaction = randomId("txn_");
  const charge = s.charges.get(refund.charge)!;
  charge.amount_refunded = Math.max(0, charge.amount_refunded - refund.amount);
  charge.refunded = false;
  emitUpdated(s, ctx, "refund.updated", before, refund);
  emit(s, ctx, "refund.failed", refund);
  return refund;
}
