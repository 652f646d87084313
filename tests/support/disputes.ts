// Dispute test helpers: gateway dispute events in the gateways' wire formats (Stripe Dispute
// objects with their balance transactions, Razorpay payment.dispute.* envelopes), signed with
// the local webhook secrets and posted to settle, and what settle stored of them.
import assert from "node:assert/strict";
import { LOCAL_RAZORPAY, LOCAL_STRIPE } from "../../dev/stack.ts";
import { hmacSha256HexSync } from "../../shared/crypto.ts";
import { postStripeWebhook, postWebhook, type Reply, type TestStack } from "./stack.ts";
import type { Paid } from "./refunds.ts";

const rand = (n: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => "ABCDEFGHJKLMNPQRSTUVWXYZ"[b % 24])
    .join("");

/** A dispute as the test drives it: the gateway's ids and the amount in settle's minor units. */
export interface TestDispute {
  gw: "razorpay" | "stripe";
  id: string;
  paid: Paid;
  amount: number;
  /** Stripe: the dispute fee of the withdrawal balance transaction (never hard-coded by settle). */
  fee: number;
  withdrawalTxn: string;
  reinstatementTxn: string;
}

export function newDispute(paid: Paid, opts: { amount?: number; fee?: number } = {}): TestDispute {
  return {
    gw: paid.gw,
    id: paid.gw === "stripe" ? `dp_${rand(24)}` : `disp_${rand(14)}`,
    paid,
    amount: opts.amount ?? paid.amount,
    fee: opts.fee ?? 1500,
    withdrawalTxn: `txn_${rand(24)}`,
    reinstatementTxn: `txn_${rand(24)}`,
  };
}

// ------------------------------------------------------------------ Stripe

export type StripeDisputeStatus =
  | "warning_needs_response"
  | "warning_under_review"
  | "warning_closed"
  | "needs_response"
  | "under_review"
  | "won"
  | "lost";

export interface StripeDisputeState {
  status: StripeDisputeStatus;
  /** Which balance transactions the dispute lists (Stripe lists them cumulatively). */
  withdrawn?: boolean;
  reinstated?: boolean | number;
}

function balanceTransaction(d: TestDispute, kind: "dispute" | "dispute_reversal", amount: number) {
  const fee = kind === "dispute" ? d.fee : 0;
  return {
    id: kind === "dispute" ? d.withdrawalTxn : d.reinstatementTxn,
    object: "balance_transaction",
    amount,
    currency: d.paid.currency.toLowerCase(),
    fee,
    fee_details: fee
      ? [{ amount: fee, currency: "usd", type: "stripe_fee", description: "Dispute fee" }]
      : [],
    net: amount - fee,
    reporting_category: kind,
    source: d.id,
    status: "available",
    type: "adjustment",
    description: `${
      kind === "dispute" ? "Chargeback withdrawal" : "Chargeback reversal"
    } for ${d.paid.paymentId}`,
    created: Math.floor(Date.now() / 1000),
  };
}

export function stripeDisputeObject(d: TestDispute, st: StripeDisputeState) {
  const txns = [];
  if (st.withdrawn) txns.push(balanceTransaction(d, "dispute", -d.amount));
  if (st.reinstated) {
    txns.push(balanceTransaction(
      d,
      "dispute_reversal",
      typeof st.reinstated === "number" ? st.reinstated : d.amount,
    ));
  }
  const inquiry = st.status.startsWith("warning_");
  return {
    id: d.id,
    object: "dispute",
    amount: d.amount,
    balance_transactions: txns,
    charge: d.paid.paymentId,
    created: Math.floor(Date.now() / 1000) - 60,
    currency: d.paid.currency.toLowerCase(),
    evidence: { uncategorized_text: null, product_description: null },
    evidence_details: {
      due_by: Math.floor(Date.now() / 1000) + 7 * 86400,
      has_evidence: false,
      past_due: false,
      submission_count: 0,
    },
    is_charge_refundable: inquiry,
    livemode: false,
    metadata: {},
    payment_intent: d.paid.gatewayOrderId,
    reason: "fraudulent",
    status: st.status,
  };
}

let clock = Math.floor(Date.now() / 1000);

/** A signed Stripe event around the dispute in that state; `created` grows with each call. */
export function stripeDisputeEvent(
  d: TestDispute,
  type: string,
  st: StripeDisputeState,
  created = ++clock,
): { id: string; body: string } {
  const id = `evt_${rand(24)}`;
  const body = JSON.stringify({
    id,
    object: "event",
    api_version: "2026-11-18.endive",
    created,
    data: { object: stripeDisputeObject(d, st) },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  });
  return { id, body };
}

export function postStripe(s: TestStack, body: string): Promise<Reply> {
  const t = Math.floor(Date.now() / 1000);
  const v1 = hmacSha256HexSync(LOCAL_STRIPE.webhookSecret, `${t}.${body}`);
  return postStripeWebhook(s, { body, signature: `t=${t},v1=${v1}` });
}

/** A chargeback's life at Stripe, in the order Stripe sends it, ending won or lost. */
export function stripeLifecycle(d: TestDispute, outcome: "won" | "lost") {
  const events = [
    stripeDisputeEvent(d, "charge.dispute.created", { status: "needs_response", withdrawn: true }),
    stripeDisputeEvent(d, "charge.dispute.funds_withdrawn", {
      status: "needs_response",
      withdrawn: true,
    }),
    stripeDisputeEvent(d, "charge.dispute.updated", { status: "under_review", withdrawn: true }),
    stripeDisputeEvent(d, "charge.dispute.closed", { status: outcome, withdrawn: true }),
  ];
  if (outcome === "won") {
    events.push(stripeDisputeEvent(d, "charge.dispute.funds_reinstated", {
      status: "won",
      withdrawn: true,
      reinstated: true,
    }));
  }
  return events;
}

// ------------------------------------------------------------------ Razorpay

export interface RazorpayDisputeState {
  status: "open" | "under_review" | "won" | "lost" | "closed";
  phase?: string;
  amountDeducted?: number;
}

export function razorpayDisputeEvent(
  d: TestDispute,
  event: string,
  st: RazorpayDisputeState,
  created = ++clock,
): { id: string; body: string } {
  const body = JSON.stringify({
    entity: "event",
    account_id: "acc_BFQ7uQEaa7j2z7",
    event,
    contains: ["payment", "dispute"],
    payload: {
      payment: {
        entity: {
          id: d.paid.paymentId,
          entity: "payment",
          amount: d.paid.amount,
          currency: d.paid.currency,
          status: "captured",
          order_id: d.paid.gatewayOrderId,
          captured: true,
          method: "card",
          notes: [],
          created_at: created - 86400,
        },
      },
      dispute: {
        entity: {
          id: d.id,
          entity: "dispute",
          payment_id: d.paid.paymentId,
          amount: d.amount,
          currency: d.paid.currency,
          amount_deducted: st.amountDeducted ?? 0,
          reason_code: "goods_or_services_not_received_or_partially_received",
          respond_by: created + 7 * 86400,
          status: st.status,
          phase: st.phase ?? "chargeback",
          created_at: created - 60,
          evidence: { amount: d.amount, summary: null, submitted_at: null },
        },
      },
    },
    created_at: created,
  });
  return { id: `evt_${rand(14)}`, body };
}

export function postRazorpay(s: TestStack, e: { id: string; body: string }): Promise<Reply> {
  const signature = hmacSha256HexSync(LOCAL_RAZORPAY.webhookSecret, e.body);
  return postWebhook(s, { event_id: e.id, body: e.body, signature });
}

/** A chargeback's life at Razorpay: opened, contested, then won (nothing deducted) or lost. */
export function razorpayLifecycle(d: TestDispute, outcome: "won" | "lost") {
  return [
    razorpayDisputeEvent(d, "payment.dispute.created", { status: "open" }),
    razorpayDisputeEvent(d, "payment.dispute.under_review", { status: "under_review" }),
    razorpayDisputeEvent(d, `payment.dispute.${outcome}`, {
      status: outcome,
      amountDeducted: outcome === "lost" ? d.amount : 0,
    }),
  ];
}

// ------------------------------------------------------------------ sending and reading

export function lifecycle(d: TestDispute, outcome: "won" | "lost") {
  return d.gw === "stripe" ? stripeLifecycle(d, outcome) : razorpayLifecycle(d, outcome);
}

export async function send(s: TestStack, d: TestDispute, e: { id: string; body: string }) {
  const r = d.gw === "stripe" ? await postStripe(s, e.body) : await postRazorpay(s, e);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { received: true });
}

export async function disputeRow(s: TestStack, d: TestDispute) {
  const [row] = await s.db`select * from public.disputes
    where gateway = ${d.gw} and gateway_dispute_id = ${d.id}`;
  return row;
}

/** What a dispute's outcome is, as settle holds it: the comparable fields only. */
export async function disputeState(s: TestStack, d: TestDispute) {
  const row = await disputeRow(s, d);
  if (!row) return null;
  return {
    status: row.status as string,
    phase: row.phase as string,
    amount_withdrawn: Number(row.amount_withdrawn),
    amount_reinstated: Number(row.amount_reinstated),
    amount_lost: Number(row.amount_lost),
    amount_held: Number(row.amount_held),
    fee: Number(row.fee),
    shortfall: Number(row.shortfall),
    shortfall_covered: Number(row.shortfall_covered),
  };
}

/** The outbox event types of a dispute, in order. */
export async function disputeEvents(s: TestStack, d: TestDispute): Promise<string[]> {
  const row = await disputeRow(s, d);
  const rows = await s.db`select type from public.outbox_events
    where subject_type = 'dispute' and subject_id = ${row.id} order by created_at`;
  return rows.map((r) => r.type as string);
}

/** The signed sum of a house account's entries in a currency (0 when it has none). */
export async function houseBalance(s: TestStack, account: string, currency: string) {
  const [r] = await s.db`select coalesce(sum(amount), 0)::bigint as total from public.ledger_entries
    where system_account = ${account} and currency = ${currency}`;
  return Number(r.total);
}

export function heldAccount(accountId: string) {
  return `dispute_held:${accountId.replaceAll("-", "")}`;
}
