// Razorpay wire types (GATEWAY_FACTS A2–A7) and their mapping to settle's normalized events.
import { z } from "zod";
import type {
  GatewayPaymentRecord,
  GatewayRefundRecord,
  NormalizedEvent,
  PaymentKind,
  PaymentResult,
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

/** Maps a verified webhook body; events settle does not act on come back with kind null. */
export function normalizeWebhook(raw: string, eventId: string): NormalizedEvent {
  let parsed: z.infer<typeof envelope>;
  try {
    parsed = envelope.parse(JSON.parse(raw));
  } catch {
    // Signed by Razorpay but not an envelope we understand: stored, not acted on.
    return {
      gateway: "razorpay",
      eventId,
      type: "unparsed",
      kind: null,
      gatewayOrderId: null,
      gatewayPaymentId: null,
      amount: null,
      currency: null,
      occurredAt: null,
      failureCode: null,
      failureReason: null,
      raw,
    };
  }
  const payment = parsed.payload.payment?.entity;
  const refund = parsed.payload.refund?.entity;
  if (refund && parsed.event.startsWith("refund.")) {
    return {
      gateway: "razorpay",
      eventId,
      type: parsed.event,
      kind: null,
      gatewayOrderId: payment?.order_id ?? null,
      gatewayPaymentId: refund.payment_id,
      amount: refund.amount,
      currency: refund.currency.toUpperCase(),
      occurredAt: parsed.created_at ? new Date(parsed.created_at * 1000) : null,
      failureCode: null,
      failureReason: null,
      raw,
      effect: refundEffect(refund, parsed.event, payment?.order_id ?? null),
    };
  }
  const kind = KINDS[parsed.event] ?? null;
  return {
    gateway: "razorpay",
    eventId,
    type: parsed.event,
    kind: payment ? kind : null,
    gatewayOrderId: payment?.order_id ?? parsed.payload.order?.entity.id ?? null,
    gatewayPaymentId: payment?.id ?? null,
    amount: payment?.amount ?? null,
    currency: payment?.currency.toUpperCase() ?? null,
    occurredAt: parsed.created_at ? new Date(parsed.created_at * 1000) : null,
    failureCode: kind === "failed" ? payment?.error_code ?? null : null,
    failureReason: kind === "failed" ? payment?.error_description ?? null : null,
    raw,
  };
}

/** The order's payment state from its payments: any captured payment wins. */
export function resultFromPayments(payments: RzpPayment[]): PaymentResult {
  const captured = payments.find((p) => p.status === "captured" || p.status === "refunded");
  const pick = (p: RzpPayment, kind: PaymentResult["kind"]): PaymentResult => ({
    kind,
    gatewayPaymentId: p.id,
    amount: p.amount,
    currency: p.currency.toUpperCase(),
    failureCode: p.error_code,
    failureReason: p.error_description,
  });
  if (captured) return pick(captured, "captured");
  const authorized = payments.find((p) => p.status === "authorized");
  if (authorized) return pick(authorized, "authorized");
  const failed = payments.find((p) => p.status === "failed");
  if (failed && payments.every((p) => p.status === "failed")) return pick(failed, "failed");
  return { kind: "pending", gatewayPaymentId: null, amount: null, currency: null };
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
): Record<string, unknown> {
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
