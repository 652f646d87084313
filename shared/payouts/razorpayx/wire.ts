// RazorpayX wire types and their mapping to settle's payout words (MARKETPLACE_FACTS 2.5-2.8).
import type { ListedPayout, PayoutEvent, PayoutRecord, PayoutStatus } from "../types.ts";

export interface RzpxError {
  error?: { code?: string; description?: string; field?: string | null };
}

export interface RzpxContact {
  id: string;
  entity: "contact";
  reference_id: string | null;
}

export interface RzpxFundAccount {
  id: string;
  entity: "fund_account";
  contact_id: string;
  account_type: "bank_account" | "vpa";
}

export interface RzpxPayout {
  id: string;
  entity: "payout";
  fund_account_id: string;
  amount: number;
  currency: string;
  status: string;
  reference_id: string | null;
  notes?: Record<string, string> | [];
  status_details?: { reason?: string; description?: string } | null;
  failure_reason?: string | null;
  created_at?: number;
}

interface RzpxEnvelope {
  entity?: string;
  event?: string;
  payload?: { payout?: { entity?: RzpxPayout } };
  created_at?: number;
}

/** pending/queued/scheduled are all "not sent yet" to settle; the rest are settle's words. */
const STATUS: Record<string, PayoutStatus> = {
  pending: "pending",
  queued: "pending",
  scheduled: "pending",
  processing: "processing",
  processed: "processed",
  reversed: "reversed",
  cancelled: "cancelled",
  rejected: "rejected",
  failed: "failed",
};

export function payoutRecord(p: RzpxPayout): PayoutRecord {
  return {
    gatewayPayoutId: p.id,
    status: STATUS[p.status] ?? null,
    gatewayStatus: p.status,
    amount: p.amount,
    currency: p.currency.toUpperCase(),
    failureReason: p.status_details?.description ?? p.failure_reason ?? null,
  };
}

/** A listed payout: settle's id is its reference_id (or the settle_payout_id note). */
export function listedPayout(p: RzpxPayout): ListedPayout {
  const notes = Array.isArray(p.notes) ? {} : p.notes ?? {};
  return {
    ...payoutRecord(p),
    settlePayoutId: p.reference_id ?? notes.settle_payout_id ?? null,
    gatewayAccountId: p.fund_account_id ?? null,
    netAmount: p.amount,
    created: p.created_at ?? 0,
  };
}

export class NotAnEvent extends Error {}

/**
 * A verified RazorpayX webhook. payout.* events carry the payout entity; anything else
 * (payout.downtime.*) is stored and ignored. The body key is what the body says happened (event,
 * payout, status: RazorpayX's own dedup advice), so a signed body replayed under a fresh
 * x-razorpay-event-id is stored once.
 */
export function payoutEvent(raw: string, eventId: string): PayoutEvent {
  let env: RzpxEnvelope;
  try {
    env = JSON.parse(raw);
  } catch {
    throw new NotAnEvent("the webhook body is not JSON");
  }
  if (!env || typeof env !== "object" || typeof env.event !== "string") {
    throw new NotAnEvent("the webhook body is not a RazorpayX event");
  }
  const p = env.payload?.payout?.entity;
  const occurredAt = typeof env.created_at === "number" ? new Date(env.created_at * 1000) : null;
  if (!env.event.startsWith("payout.") || !p || typeof p.id !== "string") {
    return {
      gateway: "razorpayx",
      eventId,
      type: env.event,
      occurredAt,
      raw,
      bodyKey: null,
      effect: { action: "ignore" },
    };
  }
  const r = payoutRecord(p);
  const notes = Array.isArray(p.notes) ? {} : p.notes ?? {};
  return {
    gateway: "razorpayx",
    eventId,
    type: env.event,
    occurredAt,
    raw,
    bodyKey: `${env.event}:${p.id}:${p.status}`.slice(0, 255),
    effect: {
      action: "payout",
      gateway_payout_id: p.id,
      settle_payout_id: p.reference_id ?? notes.settle_payout_id ?? null,
      status: r.status,
      gateway_status: p.status,
      amount: p.amount,
      currency: r.currency,
      failure_reason: r.failureReason,
    },
  };
}
