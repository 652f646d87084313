// Razorpay wire types (GATEWAY_FACTS A2–A7) and their mapping to settle's normalized events.
import { z } from "zod";
import { sha256HexSync } from "../../crypto.ts";
import { HttpError } from "../../http.ts";
import type {
  AppliedEffect,
  DisputeEffect,
  GatewayPaymentRecord,
  GatewayRefundRecord,
  NormalizedEvent,
  PaymentKind,
  PaymentResult,
  RefundEffect,
  RefundStatus,
} from "../types.ts";

export interface RzpOrder {
  id: string;
  entity: "order";
  amount: number;
  amount_paid: number;
  amount_due: number;
  currency: string;
  receipt: string | null;
  status: "created" | "attempted" | "paid";
  attempts: number;
  notes: Record<string, string> | [];
  created_at: number;
}

export interface RzpPayment {
  id: string;
  entity: "payment";
  amount: number;
  currency: string;
  status: "created" | "authorized" | "captured" | "refunded" | "failed";
  order_id: string | null;
  captured: boolean;
  amount_refunded: number;
  refund_status: null | "partial" | "full";
  error_code: string | null;
  error_description: string | null;
  error_reason?: string | null;
  created_at: number;
}

/** An order's `payment` field (GATEWAY_FACTS A2): per-order capture settings. */
export interface RzpCaptureSettings {
  capture: "automatic" | "manual";
  capture_options?: {
    automatic_expiry_period?: number;
    manual_expiry_period?: number;
    refund_speed?: "normal" | "optimum";
  };
}

export interface RzpRefund {
  id: string;
  entity: "refund";
  amount: number;
  currency: string;
  payment_id: string;
  notes: Record<string, string> | [];
  receipt: string | null;
  status: "pending" | "processed" | "failed";
  created_at: number;
}

export interface RzpCollection<T> {
  entity: "collection";
  count: number;
  items: T[];
}

export interface RzpErrorBody {
  error: {
    code: string;
    description: string;
    field?: string | null;
    source?: string;
    step?: string;
    reason?: string;
    metadata?: Record<string, unknown>;
  };
}

const paymentEntity = z.object({
  id: z.string(),
  amount: z.number().int(),
  currency: z.string(),
  status: z.string(),
  order_id: z.string().nullable().optional(),
  captured: z.boolean().optional(),
  error_code: z.string().nullable().optional(),
  error_description: z.string().nullable().optional(),
});

const refundEntity = z.object({
  id: z.string().min(1).max(255),
  amount: z.number().int(),
  currency: z.string(),
  payment_id: z.string(),
  status: z.string(),
  notes: z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional(),
});

const envelope = z.object({
  entity: z.literal("event"),
  event: z.string().min(1).max(200),
  created_at: z.number().int().optional(),
  payload: z.object({
    payment: z.object({ entity: paymentEntity }).optional(),
    order: z.object({ entity: z.object({ id: z.string() }).loose() }).optional(),
    refund: z.object({ entity: refundEntity }).optional(),
  }).loose(),
}).loose();

const KINDS: Record<string, PaymentKind> = {
  "payment.authorized": "authorized",
  "payment.captured": "captured",
  "order.paid": "captured",
  "payment.failed": "failed",
};

/** What every Razorpay event has; checked after the signature, before anything is stored. */
const baseEnvelope = z.object({
  entity: z.literal("event"),
  event: z.string().min(1).max(200),
  payload: z.record(z.string(), z.unknown()),
}).loose();

/** A verified body that is not a Razorpay event: 400, nothing stored. */
function checkEnvelope(raw: string): z.infer<typeof baseEnvelope> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new HttpError(400, "invalid_request", "the webhook body is not JSON");
  }
  const r = baseEnvelope.safeParse(value);
  if (!r.success) {
    const details = r.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    throw new HttpError(
      400,
      "invalid_request",
      "the webhook body is not a Razorpay event",
      details,
    );
  }
  return r.data;
}

/**
 * What the body says happened, independent of the unsigned x-razorpay-event-id: the event name
 * and each payload entity's id and status (payment.authorized and payment.captured of one
 * payment differ, so do refund.created and refund.processed). Hashed to bound its length; a body
 * naming no entity is identified by its own digest.
 */
export function razorpayBodyKey(parsed: z.infer<typeof baseEnvelope>, raw: string): string {
  const entities = Object.keys(parsed.payload).sort().flatMap((name) => {
    const e = (parsed.payload[name] as { entity?: { id?: unknown; status?: unknown } } | null)
      ?.entity;
    return typeof e?.id === "string" ? [`${name}=${e.id}/${String(e.status ?? "")}`] : [];
  });
  return entities.length
    ? `sha256:${sha256HexSync(`${parsed.event}|${entities.join("|")}`)}`
    : `body:${sha256HexSync(raw)}`;
}

/** An event that does nothing; the branches below fill in what they act on. */
function inert(
  eventId: string,
  type: string,
  raw: string,
  bodyKey: string,
  occurredAt: Date | null,
) {
  return {
    gateway: "razorpay" as const,
    eventId,
    type,
    kind: null,
    gatewayOrderId: null,
    gatewayPaymentId: null,
    amount: null,
    currency: null,
    occurredAt,
    failureCode: null,
    failureReason: null,
    raw,
    bodyKey,
  };
}

/**
 * Maps a verified webhook body: 400 if it is not an event envelope; an event whose entities are
 * not the shape settle reads is stored with kind null (never lost to a 400 Razorpay would retry).
 */
export function normalizeWebhook(raw: string, eventId: string): NormalizedEvent<AppliedEffect> {
  const envelopeBase = checkEnvelope(raw);
  const bodyKey = razorpayBodyKey(envelopeBase, raw);
  if (envelopeBase.event.startsWith("payment.dispute.")) {
    return disputeEvent(envelopeBase, inert(eventId, envelopeBase.event, raw, bodyKey, null));
  }
  const result = envelope.safeParse(envelopeBase);
  if (!result.success) return inert(eventId, envelopeBase.event, raw, bodyKey, null);
  const parsed = result.data;
  const payment = parsed.payload.payment?.entity;
  const refund = parsed.payload.refund?.entity;
  const base = inert(
    eventId,
    parsed.event,
    raw,
    bodyKey,
    parsed.created_at ? new Date(parsed.created_at * 1000) : null,
  );
  if (refund && parsed.event.startsWith("refund.") && payment?.captured === false) {
    // Razorpay refunding a payment that was never captured: an authorization that expired and
    // was given back (A4). The order's payment failed; there is no settle refund to count.
    return {
      ...base,
      kind: "failed",
      gatewayOrderId: payment.order_id ?? null,
      gatewayPaymentId: payment.id,
      amount: payment.amount,
      currency: payment.currency.toUpperCase(),
      failureCode: AUTHORIZATION_REFUNDED.code,
      failureReason: AUTHORIZATION_REFUNDED.reason,
    };
  }
  if (refund && parsed.event.startsWith("refund.")) {
    return {
      ...base,
      gatewayOrderId: payment?.order_id ?? null,
      gatewayPaymentId: refund.payment_id,
      amount: refund.amount,
      currency: refund.currency.toUpperCase(),
      effect: refundEffect(refund, parsed.event, payment?.order_id ?? null),
    };
  }
  let kind: PaymentKind | null = KINDS[parsed.event] ?? null;
  // Credit only what the entity itself says is captured (never a payment.authorized snapshot).
  if (kind === "captured" && payment?.captured !== true) kind = null;
  return {
    ...base,
    kind: payment ? kind : null,
    gatewayOrderId: payment?.order_id ?? parsed.payload.order?.entity.id ?? null,
    gatewayPaymentId: payment?.id ?? null,
    amount: payment?.amount ?? null,
    currency: payment?.currency.toUpperCase() ?? null,
    failureCode: kind === "failed" ? payment?.error_code ?? null : null,
    failureReason: kind === "failed" ? payment?.error_description ?? null : null,
  };
}

/** What settle records for a payment Razorpay refunded without ever capturing it. */
export const AUTHORIZATION_REFUNDED = {
  code: "authorization_refunded",
  reason: "the payment was authorized but never captured, and Razorpay refunded it",
};

/**
 * One payment's state. Only `captured: true` is money received: a `refunded` payment that was
 * never captured is an authorization Razorpay gave back (a failure, never a credit).
 */
export function paymentResult(p: RzpPayment): PaymentResult {
  const base = {
    gatewayPaymentId: p.id,
    amount: p.amount,
    currency: p.currency.toUpperCase(),
  };
  if (p.captured === true && (p.status === "captured" || p.status === "refunded")) {
    return { kind: "captured", ...base };
  }
  if (p.status === "authorized") return { kind: "authorized", ...base };
  if (p.status === "refunded") {
    return {
      kind: "failed",
      ...base,
      failureCode: p.error_code ?? AUTHORIZATION_REFUNDED.code,
      failureReason: p.error_description ?? AUTHORIZATION_REFUNDED.reason,
    };
  }
  if (p.status === "failed") {
    return {
      kind: "failed",
      ...base,
      failureCode: p.error_code,
      failureReason: p.error_description,
    };
  }
  return { kind: "pending", gatewayPaymentId: null, amount: null, currency: null };
}

/** The order's payment state from its payments: a captured one wins, then an authorized one. */
export function resultFromPayments(payments: RzpPayment[]): PaymentResult {
  const results = payments.map(paymentResult);
  const first = (kind: PaymentResult["kind"]) => results.find((r) => r.kind === kind);
  const failed = first("failed");
  return first("captured") ?? first("authorized") ??
    (failed && results.every((r) => r.kind === "failed") ? failed : undefined) ??
    { kind: "pending", gatewayPaymentId: null, amount: null, currency: null };
}

/** The state a refund entity is in; a refund.failed event is final whatever the entity says. */
export function refundStatus(status: string, event?: string): RefundStatus {
  if (event === "refund.failed" || status === "failed") return "failed";
  return status === "processed" ? "processed" : "pending";
}

function refundEffect(
  refund: z.infer<typeof refundEntity>,
  event: string,
  gatewayOrderId: string | null,
): RefundEffect {
  const notes = Array.isArray(refund.notes) ? {} : refund.notes ?? {};
  const settleId = typeof notes.settle_refund_id === "string" ? notes.settle_refund_id : null;
  const status = refundStatus(refund.status, event);
  return {
    action: "refund",
    gateway_refund_id: refund.id,
    gateway_payment_id: refund.payment_id,
    gateway_order_id: gatewayOrderId,
    amount: refund.amount,
    currency: refund.currency.toUpperCase(),
    status,
    settle_refund_id: settleId,
    failure_reason: status === "failed" ? "refund failed at razorpay" : null,
  };
}

// Section - records for the gateway audit

/** Only `captured: true` is captured money: `refunded` with captured false is an expired authorization. */
export function paymentRecord(p: RzpPayment): GatewayPaymentRecord {
  return {
    gatewayPaymentId: p.id,
    gatewayOrderId: p.order_id,
    settleOrderId: null,
    captured: p.captured === true,
    amount: p.amount,
    currency: p.currency.toUpperCase(),
    status: p.status,
    created: p.created_at,
  };
}

export function refundRecord(r: RzpRefund): GatewayRefundRecord {
  const notes = Array.isArray(r.notes) ? {} : r.notes ?? {};
  return {
    gatewayRefundId: r.id,
    gatewayPaymentId: r.payment_id,
    gatewayOrderId: null,
    settleRefundId: typeof notes.settle_refund_id === "string" ? notes.settle_refund_id : null,
    amount: r.amount,
    currency: r.currency.toUpperCase(),
    status: refundStatus(r.status),
    created: r.created_at,
  };
}

// Section - disputes (DISPUTE_FACTS 2): state from the entity's status and phase, money from
// amount_deducted (Razorpay deducts when a dispute is lost or accepted, nothing at creation).

const disputeEntity = z.object({
  id: z.string().min(1).max(255),
  payment_id: z.string().min(1).max(255),
  amount: z.number().int().positive(),
  currency: z.string().min(3).max(3),
  amount_deducted: z.number().int().nonnegative().nullish(),
  reason_code: z.string().nullish(),
  respond_by: z.number().int().nullish(),
  status: z.string().nullish(),
  phase: z.string().nullish(),
  created_at: z.number().int().nullish(),
}).loose();

const DISPUTE_STATUSES = ["open", "under_review", "won", "lost", "closed"];
const DISPUTE_PHASES = ["fraud", "retrieval", "chargeback", "pre_arbitration", "arbitration"];

/** The status an event name implies, where the entity carries none settle knows. */
function statusOfEvent(event: string): string {
  const suffix = event.slice("payment.dispute.".length);
  return DISPUTE_STATUSES.includes(suffix) ? suffix : "open";
}

export function disputeEffect(
  d: z.infer<typeof disputeEntity>,
  event: string,
  occurredAt: number | null,
  gatewayOrderId: string | null,
): DisputeEffect {
  const status = d.status && DISPUTE_STATUSES.includes(d.status) ? d.status : statusOfEvent(event);
  const deducted = d.amount_deducted ?? 0;
  return {
    action: "dispute",
    gateway_dispute_id: d.id,
    gateway_payment_id: d.payment_id,
    gateway_order_id: gatewayOrderId,
    amount: d.amount,
    currency: d.currency.toUpperCase(),
    reason: d.reason_code ?? null,
    status,
    phase: d.phase && DISPUTE_PHASES.includes(d.phase) ? d.phase : "chargeback",
    gateway_status: d.status ?? status,
    evidence_due_by: d.respond_by ?? null,
    created: d.created_at ?? null,
    occurred_at: occurredAt ?? d.created_at ?? null,
    // A lost dispute whose entity does not say what was deducted: the whole amount.
    withdrawn: deducted > 0 ? deducted : status === "lost" ? d.amount : 0,
    reinstated: 0,
  };
}

/** payment.dispute.*: the dispute entity (an unreadable one is stored, never a 400). */
function disputeEvent(
  parsed: z.infer<typeof baseEnvelope>,
  base: ReturnType<typeof inert>,
): NormalizedEvent<DisputeEffect> {
  const entity = disputeEntity.safeParse(
    (parsed.payload.dispute as { entity?: unknown } | undefined)?.entity,
  );
  if (!entity.success) return base;
  const payment = (parsed.payload.payment as { entity?: { order_id?: unknown } } | undefined)
    ?.entity;
  const orderId = typeof payment?.order_id === "string" ? payment.order_id : null;
  const createdAt = typeof parsed.created_at === "number" ? parsed.created_at : null;
  const effect = disputeEffect(entity.data, parsed.event, createdAt, orderId);
  return {
    ...base,
    occurredAt: createdAt ? new Date(createdAt * 1000) : null,
    gatewayOrderId: orderId,
    gatewayPaymentId: entity.data.payment_id,
    amount: entity.data.amount,
    currency: entity.data.currency.toUpperCase(),
    effect,
  };
}

/** A dispute read from GET /v1/disputes as the effect its webhook would carry; null if unreadable. */
export function disputeReadEffect(
  entity: unknown,
  readAt: number,
): DisputeEffect | null {
  const d = disputeEntity.safeParse(entity);
  return d.success ? disputeEffect(d.data, "payment.dispute.read", readAt, null) : null;
}
