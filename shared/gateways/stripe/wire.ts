// Stripe wire objects (GATEWAY_FACTS B5–B7) and their mapping to settle's normalized events.
import type Stripe from "stripe";
import { z } from "zod";
import { HttpError } from "../../http.ts";
import { transferEvent } from "../../payouts/stripe/wire.ts";
import {
  type CardEffect,
  type DefaultCardEffect,
  type DetachedEffect,
  type DisputeEffect,
  type FetchCardEffect,
  type FetchRefundsEffect,
  type NormalizedEvent,
  type PaymentResult,
  paymentRoute,
  type RefundEffect,
  type RefundListEffect,
  type RefundResult,
  type RefundStatus,
  type WebhookEvent,
} from "../types.ts";
import { fromStripeAmount } from "./amounts.ts";

export interface CardDetails {
  gatewayPaymentMethodId: string;
  customerId: string | null;
  brand: string | null;
  last4: string | null;
  expMonth: number | null;
  expYear: number | null;
}

/** What every Stripe event has; checked after the signature, before anything is stored. */
const envelope = z.object({
  id: z.string().regex(/^evt_[A-Za-z0-9_]{1,250}$/, "not a Stripe event id"),
  object: z.literal("event").optional(),
  type: z.string().min(1).max(255),
  created: z.number().int().nonnegative(),
  data: z.object({ object: z.record(z.string(), z.unknown()) }).loose(),
}).loose();

export const notAnEvent = (message: string, details?: unknown) =>
  new HttpError(400, "invalid_request", message, details);

/** A verified body that is not a Stripe event: 400, nothing stored. */
export function checkEnvelope(value: unknown): Stripe.Event {
  const r = envelope.safeParse(value);
  if (!r.success) {
    const details = r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    throw notAnEvent("the webhook body is not a Stripe event", details);
  }
  return r.data as unknown as Stripe.Event;
}

/** The id of an expandable field (a string, or the expanded object), null when absent. */
export const idOf = (x: string | { id: string } | null | undefined): string | null =>
  typeof x === "string" ? x : x?.id ?? null;

export function card(pm: Stripe.PaymentMethod): CardDetails {
  return {
    gatewayPaymentMethodId: pm.id,
    customerId: idOf(pm.customer),
    brand: pm.card?.brand ?? null,
    last4: pm.card?.last4 ?? null,
    expMonth: pm.card?.exp_month ?? null,
    expYear: pm.card?.exp_year ?? null,
  };
}

export function effectCard(c: CardDetails): Omit<CardEffect, "action"> {
  return {
    customer: c.customerId,
    payment_method: c.gatewayPaymentMethodId,
    brand: c.brand,
    last4: c.last4,
    exp_month: c.expMonth,
    exp_year: c.expYear,
  };
}

export function intentResult(pi: Stripe.PaymentIntent): PaymentResult {
  const currency = pi.currency.toUpperCase();
  const paymentId = idOf(pi.latest_charge) ?? pi.id;
  switch (pi.status) {
    case "succeeded":
      return {
        kind: "captured",
        gatewayPaymentId: paymentId,
        amount: fromStripeAmount(pi.amount_received, currency),
        currency,
      };
    case "requires_capture":
      return { kind: "authorized", gatewayPaymentId: paymentId, amount: null, currency };
    case "canceled":
      return {
        kind: "failed",
        gatewayPaymentId: null,
        amount: null,
        currency,
        failureCode: "canceled",
        failureReason: pi.cancellation_reason ?? "canceled",
      };
    default:
      return { kind: "pending", gatewayPaymentId: null, amount: null, currency };
  }
}

export function refundStatus(status: string | null): RefundStatus {
  if (status === "succeeded") return "processed";
  if (status === "failed" || status === "canceled") return "failed";
  return "pending";
}

export function refundResult(r: Stripe.Refund): RefundResult {
  const status = refundStatus(r.status);
  return {
    gatewayRefundId: r.id,
    status,
    amount: fromStripeAmount(r.amount, r.currency.toUpperCase()),
    failureReason: status === "failed" ? r.failure_reason ?? r.status ?? "failed" : null,
  };
}

/** A refund object (refund.* events, a charge's refund list) as a settle refund effect. */
export function refundEffect(r: Stripe.Refund): RefundEffect {
  const result = refundResult(r);
  return {
    action: "refund",
    gateway_refund_id: r.id,
    gateway_payment_id: idOf(r.charge),
    gateway_order_id: idOf(r.payment_intent),
    amount: result.amount,
    currency: r.currency.toUpperCase(),
    status: result.status,
    settle_refund_id: r.metadata?.settle_refund_id ?? null,
    failure_reason: result.failureReason ?? null,
  };
}

/**
 * charge.refunded: the charge's own refund list where the API version includes it whole (before
 * 2022-11-15, or expanded); otherwise (absent, or has_more) a read of the charge's refunds,
 * made by the webhook service only if settle counts less refunded than the charge says.
 */
export function chargeRefundedEffect(ch: Stripe.Charge): RefundListEffect | FetchRefundsEffect {
  const listed = ch.refunds;
  const ids = { gateway_payment_id: ch.id, gateway_order_id: idOf(ch.payment_intent) };
  if (listed && Array.isArray(listed.data) && !listed.has_more) {
    return { action: "refunds", ...ids, refunds: listed.data.map(refundEffect) };
  }
  const currency = ch.currency.toUpperCase();
  return {
    action: "fetch_refunds",
    ...ids,
    currency,
    amount_refunded: fromStripeAmount(ch.amount_refunded, currency),
  };
}

/** The saved-card effect of a payment-method, setup-intent or customer event; null if none. */
function cardEffect(
  event: Stripe.Event,
): CardEffect | DetachedEffect | FetchCardEffect | DefaultCardEffect | null {
  switch (event.type) {
    case "payment_method.attached":
      return { action: "attached", ...effectCard(card(event.data.object)) };
    case "payment_method.updated":
      return { action: "updated", ...effectCard(card(event.data.object)) };
    case "payment_method.detached":
      return { action: "detached", payment_method: event.data.object.id };
    case "setup_intent.succeeded": {
      // Names the card only by id: the webhook service reads it from Stripe, if the customer is
      // one of settle's.
      const si = event.data.object;
      return {
        action: "fetch_card",
        customer: idOf(si.customer),
        payment_method: idOf(si.payment_method),
      };
    }
    case "customer.updated": {
      const pm = idOf(event.data.object.invoice_settings?.default_payment_method);
      return pm ? { action: "default", customer: event.data.object.id, payment_method: pm } : null;
    }
    default:
      return null;
  }
}

/** Everything settle needs from a verified event, or kind null for events it only stores. */
export function normalizeEvent(event: Stripe.Event, raw: string): NormalizedEvent {
  const base: NormalizedEvent = {
    gateway: "stripe",
    eventId: event.id,
    type: event.type,
    kind: null,
    gatewayOrderId: null,
    gatewayPaymentId: null,
    amount: null,
    currency: null,
    occurredAt: new Date(event.created * 1000),
    failureCode: null,
    failureReason: null,
    raw,
    effect: null,
  };
  switch (event.type) {
    case "payment_intent.succeeded":
    case "payment_intent.canceled": {
      const r = intentResult(event.data.object);
      return {
        ...base,
        kind: r.kind === "pending" ? null : r.kind,
        gatewayOrderId: event.data.object.id,
        gatewayPaymentId: r.gatewayPaymentId,
        amount: r.amount,
        currency: r.currency,
        failureCode: r.failureCode ?? null,
        failureReason: r.failureReason ?? null,
      };
    }
    case "payment_intent.payment_failed": {
      const pi = event.data.object;
      return {
        ...base,
        kind: "failed",
        gatewayOrderId: pi.id,
        currency: pi.currency.toUpperCase(),
        failureCode: pi.last_payment_error?.code ?? "payment_failed",
        failureReason: pi.last_payment_error?.message ?? "payment failed",
      };
    }
    case "refund.created":
    case "refund.updated":
    case "refund.failed":
    case "charge.refund.updated":
      return withRefund(base, refundEffect(event.data.object));
    case "charge.refunded":
      return withRefund(base, chargeRefundedEffect(event.data.object));
    case "charge.dispute.created":
    case "charge.dispute.updated":
    case "charge.dispute.funds_withdrawn":
    case "charge.dispute.funds_reinstated":
    case "charge.dispute.closed":
      return withRefund(base, disputeEffect(event.data.object, event.type, event.created));
    case "radar.early_fraud_warning.created":
    case "radar.early_fraud_warning.updated":
      return withRefund(base, earlyWarningEffect(event.data.object, event.created));
    default:
      return { ...base, effect: cardEffect(event) };
  }
}

function withRefund(
  base: NormalizedEvent,
  effect: RefundEffect | RefundListEffect | FetchRefundsEffect | DisputeEffect,
): NormalizedEvent {
  const amount = "amount" in effect ? effect.amount : null;
  const currency = "currency" in effect ? effect.currency : null;
  return {
    ...base,
    gatewayOrderId: effect.gateway_order_id,
    gatewayPaymentId: effect.gateway_payment_id,
    amount: Number.isSafeInteger(amount) ? amount : null,
    currency: typeof currency === "string" ? currency : null,
    effect,
  };
}

/**
 * A verified event and its route: transfer.* events are about payouts (Stripe Connect transfers
 * made from the platform, settle.ingest_payout_webhook); an effect that names a card or a
 * charge's refunds without carrying them owes a read; the rest are payment events.
 */
export function webhookEvent(event: Stripe.Event, raw: string): WebhookEvent {
  if (event.type.startsWith("transfer.")) {
    return { route: "payout", event: transferEvent(event, raw) };
  }
  return paymentRoute(normalizeEvent(event, raw));
}

// Section - disputes (DISPUTE_FACTS 1.1-1.4): state from the dispute's status, money from its
// balance transactions (the dispute's amount where a chargeback status implies a withdrawal
// that the payload does not itemise). Never from the event's name alone: funds_reinstated can
// come with status lost (a partial win).

/** Stripe's dispute status as settle's status and phase. */
const DISPUTE_STATES: Record<string, { status: string; phase: string }> = {
  warning_needs_response: { status: "open", phase: "inquiry" },
  warning_under_review: { status: "under_review", phase: "inquiry" },
  warning_closed: { status: "closed", phase: "inquiry" },
  prevented: { status: "closed", phase: "inquiry" },
  needs_response: { status: "open", phase: "chargeback" },
  under_review: { status: "under_review", phase: "chargeback" },
  won: { status: "won", phase: "chargeback" },
  lost: { status: "lost", phase: "chargeback" },
  appeal_needs_response: { status: "open", phase: "pre_arbitration" },
  appeal_under_review: { status: "under_review", phase: "pre_arbitration" },
};

type DisputeEvent =
  | "charge.dispute.created"
  | "charge.dispute.updated"
  | "charge.dispute.funds_withdrawn"
  | "charge.dispute.funds_reinstated"
  | "charge.dispute.closed";

/** What the dispute's balance transactions moved, in the dispute's currency (others: not comparable). */
function disputeMoney(d: Stripe.Dispute, currency: string) {
  let withdrawn = 0;
  let reinstated = 0;
  const txns = (Array.isArray(d.balance_transactions) ? d.balance_transactions : [])
    .filter((bt) => bt && typeof bt === "object" && typeof bt.id === "string");
  for (const bt of txns) {
    if (bt.currency?.toUpperCase() !== currency || !Number.isSafeInteger(bt.amount)) continue;
    const amount = fromStripeAmount(bt.amount, currency);
    if (amount < 0) withdrawn -= amount;
    else reinstated += amount;
  }
  const fees = txns.flatMap((bt) =>
    Number.isSafeInteger(bt.fee) && typeof bt.currency === "string"
      ? [{
        id: bt.id,
        fee: fromStripeAmount(bt.fee, bt.currency.toUpperCase()),
        currency: bt.currency.toUpperCase(),
      }]
      : []
  );
  return { withdrawn, reinstated, fees };
}

export function disputeEffect(
  d: Stripe.Dispute,
  type: DisputeEvent | "reconcile",
  occurredAt: number,
): DisputeEffect {
  const currency = d.currency.toUpperCase();
  const amount = fromStripeAmount(d.amount, currency);
  const state = DISPUTE_STATES[d.status] ?? { status: "open", phase: "chargeback" };
  const money = disputeMoney(d, currency);
  // A chargeback status means Stripe has debited the disputed amount (how-disputes-work).
  const chargeback = state.phase !== "inquiry" || type === "charge.dispute.funds_withdrawn";
  const withdrawn = money.withdrawn > 0 ? money.withdrawn : chargeback ? amount : 0;
  const reinstated = money.reinstated > 0
    ? money.reinstated
    : d.status === "won" || (type === "charge.dispute.funds_reinstated" && d.status !== "lost")
    ? withdrawn
    : 0;
  return {
    action: "dispute",
    gateway_dispute_id: d.id,
    gateway_payment_id: idOf(d.charge),
    gateway_order_id: idOf(d.payment_intent),
    amount,
    currency,
    reason: d.reason ?? null,
    status: state.status,
    phase: state.phase,
    gateway_status: d.status,
    evidence_due_by: d.evidence_details?.due_by ?? null,
    created: d.created,
    occurred_at: occurredAt,
    withdrawn,
    reinstated,
    balance_transactions: money.fees,
    refundable: d.is_charge_refundable ?? null,
  };
}

/** An early fraud warning: recorded beside the charge's disputes; it never moves money. */
export function earlyWarningEffect(
  w: Stripe.Radar.EarlyFraudWarning,
  occurredAt: number,
): DisputeEffect {
  return {
    action: "dispute",
    gateway_dispute_id: w.id,
    gateway_payment_id: idOf(w.charge),
    gateway_order_id: idOf(w.payment_intent ?? null),
    amount: null,
    currency: null,
    reason: w.fraud_type ?? null,
    status: w.actionable ? "open" : "closed",
    phase: "early_warning",
    gateway_status: `early_fraud_warning_${w.actionable ? "actionable" : "resolved"}`,
    created: w.created,
    occurred_at: occurredAt,
    withdrawn: 0,
    reinstated: 0,
  };
}
