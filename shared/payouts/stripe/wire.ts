// Stripe Connect objects (MARKETPLACE_FACTS 3.1-3.3) and their mapping to settle's payout words:
// transfers (synchronous: a transfer that exists has put the money in the connected account) and
// connected accounts (usable once payouts are enabled and the transfers capability is active).
import type Stripe from "stripe";
import { fromStripeAmount } from "../../gateways/stripe/amounts.ts";
import type { ListedPayout, PayoutEvent, PayoutRecord } from "../types.ts";

/** Whole reversal, partial reversal or none: transfers have no status field of their own. */
export function transferState(t: Stripe.Transfer): "created" | "reversed" | "partially_reversed" {
  if (t.reversed || (t.amount > 0 && t.amount_reversed >= t.amount)) return "reversed";
  return t.amount_reversed > 0 ? "partially_reversed" : "created";
}

/**
 * A transfer as settle counts it: created (or partly reversed) is processed, reversed in full is
 * reversed. A partial reversal is not returned to the wallet (settle never makes one; an
 * operator's partial reversal in the Dashboard stays theirs to settle, docs/decisions.md).
 */
export function transferRecord(t: Stripe.Transfer): PayoutRecord {
  const currency = t.currency.toUpperCase();
  const state = transferState(t);
  return {
    gatewayPayoutId: t.id,
    status: state === "reversed" ? "reversed" : "processed",
    gatewayStatus: state,
    amount: fromStripeAmount(t.amount, currency),
    currency,
    failureReason: state === "reversed" ? "the transfer was reversed" : null,
  };
}

/** A listed transfer: settle's payout id is its metadata's (or its transfer_group). */
export function listedTransfer(t: Stripe.Transfer): ListedPayout {
  const r = transferRecord(t);
  const destination = typeof t.destination === "string" ? t.destination : t.destination?.id;
  return {
    ...r,
    settlePayoutId: t.metadata?.settle_payout_id ?? t.transfer_group ?? null,
    gatewayAccountId: destination ?? null,
    netAmount: fromStripeAmount(t.amount - t.amount_reversed, r.currency),
    created: t.created,
  };
}

/** The connected account's readiness: payouts enabled and the transfers capability active. */
export function accountEffect(a: Stripe.Account): Record<string, unknown> {
  return {
    action: "payout_account",
    gateway_account_id: a.id,
    payouts_enabled: a.payouts_enabled === true,
    transfers: a.capabilities?.transfers ?? null,
  };
}

/** A verified platform event about a transfer (transfer.created, .updated, .reversed). */
export function transferEvent(
  event: { id: string; type: string; created: number; data: { object: unknown } },
  raw: string,
): PayoutEvent {
  const t = event.data.object as Stripe.Transfer;
  const r = transferRecord(t);
  return {
    gateway: "stripe",
    eventId: event.id,
    type: event.type,
    occurredAt: new Date(event.created * 1000),
    raw,
    // Stripe signs its event ids: a replayed body keeps its id, so the id alone deduplicates.
    bodyKey: null,
    effect: {
      action: "payout",
      gateway_payout_id: t.id,
      settle_payout_id: t.metadata?.settle_payout_id ?? t.transfer_group ?? null,
      status: r.status,
      gateway_status: r.gatewayStatus,
      amount: r.amount,
      currency: r.currency,
      failure_reason: r.failureReason,
    },
  };
}

/**
 * A verified Connect event: account.updated names the account to read (the event's own copy is
 * not applied: an older event delivered late would undo a newer state), a deauthorization
 * disables it, the rest is stored.
 */
export function connectEvent(
  event: { id: string; type: string; created: number; account: string; data: { object: unknown } },
  raw: string,
): PayoutEvent {
  let effect: Record<string, unknown> = { action: "ignore" };
  if (event.type === "account.updated") {
    const a = event.data.object as Stripe.Account;
    effect = a.id === event.account
      ? { action: "read_account", gateway_account_id: a.id }
      : { action: "ignore", detail: "the account object is not the event's account" };
  } else if (event.type === "account.application.deauthorized") {
    effect = { action: "payout_account", gateway_account_id: event.account, deauthorized: true };
  }
  return {
    gateway: "stripe_connect",
    eventId: event.id,
    type: event.type,
    occurredAt: new Date(event.created * 1000),
    raw,
    bodyKey: null,
    effect,
  };
}
