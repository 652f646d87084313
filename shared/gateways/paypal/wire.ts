// PayPal wire types (Orders v2, Payments v2, Webhooks v1; MARKETPLACE_FACTS 1.2–1.5) and their
// mapping to settle's normalized events, payment results and refund effects.
import { z } from "zod";
import { HttpError } from "../../http.ts";
import type {
  AppliedEffect,
  DisputeEffect,
  GatewayPaymentRecord,
  GatewayRefundRecord,
  NormalizedEvent,
  PaymentResult,
  RefundResult,
  RefundStatus,
  WebhookEvent,
} from "../types.ts";
import { fromPayPalValue } from "./amounts.ts";

export interface PpMoney {
  currency_code: string;
  value: string;
}

export interface PpLink {
  href: string;
  rel: string;
  method?: string;
}

export interface PpCapture {
  id: string;
  status: "COMPLETED" | "DECLINED" | "PARTIALLY_REFUNDED" | "PENDING" | "REFUNDED" | "FAILED";
  status_details?: { reason?: string };
  amount?: PpMoney;
  custom_id?: string;
  final_capture?: boolean;
  supplementary_data?: { related_ids?: { order_id?: string } };
  links?: PpLink[];
  create_time?: string;
}

export interface PpPurchaseUnit {
  reference_id?: string;
  custom_id?: string;
  amount: PpMoney;
  payments?: { captures?: PpCapture[] };
}

export interface PpOrder {
  id: string;
  status: "CREATED" | "SAVED" | "APPROVED" | "VOIDED" | "COMPLETED" | "PAYER_ACTION_REQUIRED";
  intent?: "CAPTURE" | "AUTHORIZE";
  purchase_units?: PpPurchaseUnit[];
  links?: PpLink[];
  create_time?: string;
}

export interface PpRefund {
  id: string;
  status: "CANCELLED" | "FAILED" | "PENDING" | "COMPLETED";
  status_details?: { reason?: string };
  amount?: PpMoney;
  custom_id?: string;
  links?: PpLink[];
  create_time?: string;
}

export interface PpErrorBody {
  name?: string;
  message?: string;
  debug_id?: string;
  details?: { issue?: string; description?: string; field?: string }[];
}

export interface PpToken {
  access_token: string;
  token_type: string;
  expires_in: number;
}

/** The first detail's issue (ORDER_ALREADY_CAPTURED, ORDER_NOT_APPROVED…), if any. */
export function issueOf(body: PpErrorBody | undefined): string | null {
  return body?.details?.[0]?.issue ?? null;
}

/** The id at the end of a link with this rel whose path contains `segment`. */
function linkedId(links: PpLink[] | undefined, rel: string, segment: string): string | null {
  const href = links?.find((l) => l.rel === rel && l.href.includes(segment))?.href;
  const m = href ? new RegExp(`${segment}([^/?#]+)`).exec(href) : null;
  return m ? decodeURIComponent(m[1]) : null;
}

/** The order a capture belongs to: supplementary_data first, then its rel:up link. */
export function captureOrderId(c: PpCapture): string | null {
  return c.supplementary_data?.related_ids?.order_id ??
    linkedId(c.links, "up", "/v2/checkout/orders/");
}

/** The capture a refund refunds: its rel:up link, never the refund's own id. */
export function refundCaptureId(
  r: PpRefund & { supplementary_data?: { related_ids?: { capture_id?: string } } },
): string | null {
  return linkedId(r.links, "up", "/v2/payments/captures/") ??
    r.supplementary_data?.related_ids?.capture_id ?? null;
}

const money = (m: PpMoney | undefined) => ({
  amount: m ? fromPayPalValue(m.value, m.currency_code) : null,
  currency: typeof m?.currency_code === "string" ? m.currency_code.toUpperCase() : null,
});

/**
 * One capture's state. Only COMPLETED (or later refunded) is money received; PENDING waits
 * (eChecks, review); DECLINED and FAILED are a failed payment.
 */
export function captureResult(c: PpCapture): PaymentResult {
  const m = money(c.amount);
  switch (c.status) {
    case "COMPLETED":
    case "PARTIALLY_REFUNDED":
    case "REFUNDED":
      return { kind: "captured", gatewayPaymentId: c.id, ...m };
    case "PENDING":
      return { kind: "authorized", gatewayPaymentId: c.id, ...m };
    case "DECLINED":
    case "FAILED":
      return {
        kind: "failed",
        gatewayPaymentId: c.id,
        ...m,
        failureCode: `capture_${c.status.toLowerCase()}`,
        failureReason: c.status_details?.reason ?? `the capture was ${c.status.toLowerCase()}`,
      };
    default:
      return { kind: "pending", gatewayPaymentId: null, amount: null, currency: null };
  }
}

export function orderCaptures(o: PpOrder): PpCapture[] {
  return (o.purchase_units ?? []).flatMap((u) => u.payments?.captures ?? []);
}

/**
 * An order's payment state: a capture decides (a completed one first); without one, VOIDED is
 * a failure and anything else is still pending (APPROVED is captured by the caller).
 */
export function orderResult(o: PpOrder): PaymentResult {
  const results = orderCaptures(o).map(captureResult);
  const first = (k: PaymentResult["kind"]) => results.find((r) => r.kind === k);
  const found = first("captured") ?? first("authorized") ?? first("failed");
  if (found) return found;
  if (o.status === "VOIDED") {
    return {
      kind: "failed",
      gatewayPaymentId: null,
      amount: null,
      currency: null,
      failureCode: "order_voided",
      failureReason: "paypal voided the order",
    };
  }
  return { kind: "pending", gatewayPaymentId: null, amount: null, currency: null };
}

export function refundStatus(status: string): RefundStatus {
  if (status === "COMPLETED") return "processed";
  if (status === "FAILED" || status === "CANCELLED") return "failed";
  return "pending";
}

export function refundResult(r: PpRefund): RefundResult {
  const status = refundStatus(r.status);
  return {
    gatewayRefundId: r.id,
    status,
    amount: money(r.amount).amount ?? NaN,
    failureReason: status === "failed"
      ? r.status_details?.reason ?? `refund ${r.status.toLowerCase()} at paypal`
      : null,
  };
}

// Section - webhook events

const envelope = z.object({
  id: z.string().regex(/^[A-Za-z0-9-]{1,255}$/, "not a PayPal event id"),
  event_type: z.string().min(1).max(255),
  create_time: z.string().max(64).optional(),
  resource_type: z.string().max(64).optional(),
  resource: z.record(z.string(), z.unknown()),
}).loose();

type Envelope = z.infer<typeof envelope>;

/** A verified body that is not a PayPal event: 400, nothing stored. */
export function checkEnvelope(raw: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new HttpError(400, "invalid_request", "the webhook body is not JSON");
  }
  const r = envelope.safeParse(value);
  if (!r.success) {
    const details = r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    throw new HttpError(400, "invalid_request", "the webhook body is not a PayPal event", details);
  }
  return r.data;
}

const moneyShape = z.object({ currency_code: z.string(), value: z.string() }).loose();
const linkShape = z.object({ href: z.string(), rel: z.string() }).loose();
const captureShape = z.object({
  id: z.string().min(1).max(255),
  status: z.string(),
  amount: moneyShape.optional(),
  links: z.array(linkShape).optional(),
}).loose();
const refundShape = z.object({
  id: z.string().min(1).max(255),
  status: z.string(),
  amount: moneyShape.optional(),
  custom_id: z.string().optional(),
  links: z.array(linkShape).optional(),
}).loose();
const orderShape = z.object({
  id: z.string().min(1).max(255),
  status: z.string(),
  purchase_units: z.array(z.object({ amount: moneyShape }).loose()).optional(),
}).loose();

const CAPTURE_EVENTS = new Set([
  "PAYMENT.CAPTURE.COMPLETED",
  "PAYMENT.CAPTURE.PENDING",
  // Both names are in PayPal's docs (facts 1.5): handle both.
  "PAYMENT.CAPTURE.DENIED",
  "PAYMENT.CAPTURE.DECLINED",
]);
const REFUND_EVENTS = new Set(["PAYMENT.CAPTURE.REFUNDED"]);
export const DISPUTE_EVENTS = new Set([
  "CUSTOMER.DISPUTE.CREATED",
  "CUSTOMER.DISPUTE.UPDATED",
  "CUSTOMER.DISPUTE.RESOLVED",
]);

/**
 * Maps a verified event. Unknown events, and known ones whose resource is not the shape settle
 * reads, are stored with kind null (answered 200, never a 400 PayPal would retry for days).
 * `bodyKey` is the delivery's transmission id: the event id is not signed on its own (the
 * signature covers only a CRC-32 of the body), so a second body under a signed transmission is
 * stored nothing.
 */
export function normalizeEvent(raw: string, bodyKey: string): PpEvent {
  const e = checkEnvelope(raw);
  const created = e.create_time ? new Date(e.create_time) : null;
  const base: PpEvent = {
    gateway: "paypal",
    eventId: e.id,
    type: e.event_type,
    kind: null,
    gatewayOrderId: null,
    gatewayPaymentId: null,
    amount: null,
    currency: null,
    occurredAt: created && !Number.isNaN(created.getTime()) ? created : null,
    failureCode: null,
    failureReason: null,
    raw,
    effect: null,
    bodyKey: `transmission:${bodyKey}`.slice(0, 255),
  };
  if (CAPTURE_EVENTS.has(e.event_type)) return captureEvent(base, e.resource);
  if (REFUND_EVENTS.has(e.event_type)) return refundEvent(base, e.resource);
  if (e.event_type === "PAYMENT.CAPTURE.REVERSED") return reversedEvent(base, e.resource);
  if (DISPUTE_EVENTS.has(e.event_type)) return disputeEvent(base, e.resource);
  if (e.event_type === "CHECKOUT.ORDER.APPROVED") return approvedEvent(base, e.resource);
  return base;
}

/** A PayPal event as settle normalizes it: its effects are all applied as they are. */
type PpEvent = NormalizedEvent<AppliedEffect>;

/**
 * A normalized event's route: CHECKOUT.ORDER.APPROVED for an order settle can name leaves the
 * capture to settle (`capture`); the rest are payment events.
 */
export function webhookEvent(e: PpEvent): WebhookEvent {
  if (e.type === "CHECKOUT.ORDER.APPROVED" && e.gatewayOrderId) {
    return { route: "capture", event: { ...e, gatewayOrderId: e.gatewayOrderId } };
  }
  return { route: "payment", event: e };
}

function captureEvent(base: PpEvent, resource: unknown): PpEvent {
  const c = captureShape.safeParse(resource);
  if (!c.success) return base;
  const capture = c.data as unknown as PpCapture;
  const r = captureResult(capture);
  // The event name is the fact (a DENIED event whose snapshot says otherwise is still denied).
  const denied = /\.(DENIED|DECLINED)$/.test(base.type);
  const kind = denied ? "failed" : r.kind === "pending" ? null : r.kind;
  return {
    ...base,
    kind: kind === "failed" && !denied ? null : kind,
    gatewayOrderId: captureOrderId(capture),
    gatewayPaymentId: capture.id,
    amount: r.amount,
    currency: r.currency,
    failureCode: denied ? `capture_${capture.status.toLowerCase()}` : null,
    failureReason: denied ? r.failureReason ?? "the capture was denied" : null,
  };
}

/**
 * CHECKOUT.ORDER.APPROVED: the payer approved the order's amount (the order moves to
 * authorized, for its terms only); settle still has to capture it (webhookEvent: `capture`).
 */
function approvedEvent(base: PpEvent, resource: unknown): PpEvent {
  const o = orderShape.safeParse(resource);
  if (!o.success) return base;
  const { amount, currency } = money(o.data.purchase_units?.[0]?.amount as PpMoney | undefined);
  return {
    ...base,
    kind: amount === null ? null : "authorized",
    gatewayOrderId: o.data.id,
    amount,
    currency,
  };
}

/**
 * REFUNDED (a merchant refund): the resource is the refund, linked to settle's refund by its id
 * or custom_id (settle's refund id), else a refund made at the gateway of the capture it names.
 */
function refundEvent(base: PpEvent, resource: unknown): PpEvent {
  const p = refundShape.safeParse(resource);
  if (!p.success) return base;
  const refund = p.data as unknown as PpRefund;
  const captureId = refundCaptureId(refund);
  const { amount, currency } = money(refund.amount);
  const status = refundStatus(refund.status);
  return {
    ...base,
    gatewayPaymentId: captureId,
    amount,
    currency,
    effect: {
      action: "refund",
      gateway_refund_id: refund.id,
      gateway_payment_id: captureId,
      gateway_order_id: null,
      amount,
      currency,
      status,
      settle_refund_id: refund.custom_id ?? null,
      failure_reason: status === "failed"
        ? `refund ${refund.status.toLowerCase()} at paypal`
        : null,
    },
  };
}

/**
 * REVERSED: PayPal took a capture's money back, which it does when a dispute (a claim or a card
 * chargeback, both in the Disputes API) is resolved for the buyer. The dispute books that money
 * (CUSTOMER.DISPUTE.RESOLVED or reconcile's read of it), so the reversal is stored and moves
 * nothing: counting it as a refund too would take the money twice (docs/decisions.md, PayPal
 * disputes).
 */
function reversedEvent(base: PpEvent, resource: unknown): PpEvent {
  const p = refundShape.safeParse(resource);
  if (!p.success) return base;
  const refund = p.data as unknown as PpRefund;
  return { ...base, gatewayPaymentId: refundCaptureId(refund), ...money(refund.amount) };
}

// Section - disputes (Disputes v1; DISPUTE_FACTS 3, MARKETPLACE_FACTS 1.5): state from the
// status, the outcome and the life-cycle stage; money from what PayPal holds and takes. A
// claim or chargeback (stage CHARGEBACK or later) holds the disputed amount at once and refunds
// are refused (REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK), so settle withdraws it from the holder;
// an inquiry moves nothing (a refund is how it ends). Resolved for the buyer: PayPal keeps
// dispute_outcome.amount_refunded (a partial outcome gives the rest back); for the seller,
// cancelled or paid out by PayPal itself: everything held comes back.

export interface PpDispute {
  dispute_id: string;
  create_time?: string;
  update_time?: string;
  disputed_transactions?: { seller_transaction_id?: string }[];
  reason?: string;
  status?: string;
  dispute_amount?: PpMoney;
  dispute_outcome?: { outcome_code?: string; amount_refunded?: PpMoney };
  dispute_life_cycle_stage?: string;
  seller_response_due_date?: string;
  money_movements?: {
    affected_party?: string;
    type?: string;
    amount?: PpMoney;
    initiated_time?: string;
    reason?: string;
  }[];
  links?: PpLink[];
}

const disputeShape = z.object({
  dispute_id: z.string().regex(/^[A-Za-z0-9-]{1,255}$/),
  disputed_transactions: z.array(
    z.object({ seller_transaction_id: z.string().min(1).max(255) }).loose(),
  ).min(1),
  status: z.string().min(1).max(100),
  dispute_amount: moneyShape,
}).loose();

const STAGES: Record<string, string> = {
  INQUIRY: "inquiry",
  CHARGEBACK: "chargeback",
  PRE_ARBITRATION: "pre_arbitration",
  ARBITRATION: "arbitration",
};

/** settle's status of a RESOLVED dispute by its outcome (null: not known yet). */
const OUTCOMES: Record<string, string> = {
  RESOLVED_BUYER_FAVOUR: "lost",
  ACCEPTED: "lost",
  RESOLVED_SELLER_FAVOUR: "won",
  DENIED: "won",
  // PayPal paid the buyer from its own funds: the seller keeps the money.
  RESOLVED_WITH_PAYOUT: "won",
  CANCELED_BY_BUYER: "closed",
};

const FEE_REASONS = new Set(["DISPUTE_FEE", "CHARGEBACK_FEE", "DISPUTE_SETTLEMENT_FEE"]);

const unix = (iso: string | undefined) => {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? null : Math.floor(t / 1000);
};

/** A dispute the normalizer can apply: linked to a capture, with an outcome once resolved. */
export function readableDispute(resource: unknown): PpDispute | null {
  const d = disputeShape.safeParse(resource);
  if (!d.success) return null;
  const dispute = d.data as unknown as PpDispute;
  const amount = money(dispute.dispute_amount).amount;
  if (amount === null || amount <= 0) return null;
  if (dispute.status === "RESOLVED" && !OUTCOMES[dispute.dispute_outcome?.outcome_code ?? ""]) {
    return null;
  }
  return dispute;
}

/** The seller's dispute fees in money_movements, each once (a credit is a fee given back). */
function disputeFees(d: PpDispute) {
  return (d.money_movements ?? []).flatMap((m) => {
    const { amount, currency } = money(m.amount);
    if (m.affected_party !== "SELLER" || !FEE_REASONS.has(m.reason ?? "") || !amount) return [];
    return [{
      id: `${d.dispute_id}:${m.reason}:${m.type}:${m.initiated_time ?? ""}`,
      fee: m.type === "CREDIT" ? -amount : amount,
      currency,
    }];
  });
}

/** The effect settle.apply_dispute_event takes (20261201001800_disputes.sql). */
export function disputeEffect(d: PpDispute, occurredAt: number | null): DisputeEffect {
  const { amount, currency } = money(d.dispute_amount);
  const phase = STAGES[d.dispute_life_cycle_stage ?? ""] ?? "chargeback";
  const status = d.status === "RESOLVED"
    ? OUTCOMES[d.dispute_outcome?.outcome_code ?? ""] ?? "under_review"
    : d.status === "UNDER_REVIEW"
    ? "under_review"
    : "open";
  const held = phase === "inquiry" ? 0 : amount ?? 0;
  const kept = money(d.dispute_outcome?.amount_refunded);
  const taken = kept.amount !== null && kept.currency === currency ? kept.amount : amount ?? 0;
  const withdrawn = status === "lost" ? Math.max(held, taken) : held;
  return {
    action: "dispute",
    gateway_dispute_id: d.dispute_id,
    gateway_payment_id: d.disputed_transactions?.find((t) => t.seller_transaction_id)
      ?.seller_transaction_id ?? null,
    gateway_order_id: null,
    amount,
    currency,
    reason: d.reason ?? null,
    status,
    phase,
    gateway_status: d.dispute_outcome?.outcome_code
      ? `${d.status}:${d.dispute_outcome.outcome_code}`
      : d.status ?? "OPEN",
    evidence_due_by: unix(d.seller_response_due_date),
    created: unix(d.create_time),
    occurred_at: unix(d.update_time) ?? occurredAt,
    withdrawn,
    reinstated: status === "lost" ? withdrawn - Math.min(taken, withdrawn) : status === "open" ||
        status === "under_review"
      ? 0
      : withdrawn,
    balance_transactions: disputeFees(d),
  };
}

/** CUSTOMER.DISPUTE.*: the dispute (an unreadable one is stored, never a 400). */
function disputeEvent(base: PpEvent, resource: unknown): PpEvent {
  const d = readableDispute(resource);
  if (!d) return base;
  const effect = disputeEffect(
    d,
    base.occurredAt ? Math.floor(base.occurredAt.getTime() / 1000) : null,
  );
  return {
    ...base,
    gatewayPaymentId: effect.gateway_payment_id,
    amount: effect.amount,
    currency: effect.currency,
    effect,
  };
}

// Section - records for the gateway audit

export function paymentRecords(o: PpOrder, settleOrderId: string | null): GatewayPaymentRecord[] {
  const created = o.create_time ? Math.floor(Date.parse(o.create_time) / 1000) : 0;
  const unit = o.purchase_units?.[0];
  const asked = money(unit?.amount);
  const captures = orderCaptures(o);
  if (captures.length === 0) {
    return [{
      gatewayPaymentId: null,
      gatewayOrderId: o.id,
      settleOrderId: unit?.custom_id ?? settleOrderId,
      captured: false,
      amount: asked.amount ?? 0,
      currency: asked.currency ?? "",
      status: o.status,
      created,
    }];
  }
  return captures.map((c) => {
    const r = captureResult(c);
    return {
      gatewayPaymentId: c.id,
      gatewayOrderId: o.id,
      settleOrderId: unit?.custom_id ?? settleOrderId,
      captured: r.kind === "captured",
      amount: money(c.amount).amount ?? 0,
      currency: money(c.amount).currency ?? "",
      status: c.status,
      created,
    };
  });
}

export function refundRecord(r: PpRefund): GatewayRefundRecord {
  const m = money(r.amount);
  return {
    gatewayRefundId: r.id,
    gatewayPaymentId: refundCaptureId(r),
    gatewayOrderId: null,
    settleRefundId: r.custom_id ?? null,
    amount: m.amount ?? 0,
    currency: m.currency ?? "",
    status: refundStatus(r.status),
    created: r.create_time ? Math.floor(Date.parse(r.create_time) / 1000) : 0,
  };
}
