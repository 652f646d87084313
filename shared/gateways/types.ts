// The gateway interface: stateless verbs; the core persists what they return. What only some
// gateways do is an optional verb (GatewayLister, GatewayDisputes, GatewayReads, GatewayCustomers,
// savedCards): the core checks that the verb is there, never which gateway it talks to.
import type { PayoutEvent } from "../payouts/types.ts";

export type GatewayName = "razorpay" | "stripe" | "paypal";
export const GATEWAYS: readonly GatewayName[] = ["razorpay", "stripe", "paypal"];

/** What a payment event does to an order; null for events settle stores but does not act on. */
export type PaymentKind = "authorized" | "captured" | "failed";

export interface OrderTerms {
  orderId: string;
  accountId: string;
  amount: number;
  currency: string;
  purpose: string;
  /** How many gateway requests were made before; >0 means a retry that must not duplicate. */
  attempts: number;
  /** The account's customer at the gateway, where the gateway has customers. */
  customerId?: string;
}

export interface GatewayOrder {
  gatewayOrderId: string;
}

/**
 * A gateway event reduced to what settle acts on; the raw body is kept beside it. `E` narrows the
 * effect where a route says more (WebhookEvent).
 */
export interface NormalizedEvent<E extends Effect = Effect> {
  gateway: GatewayName;
  eventId: string;
  type: string;
  kind: PaymentKind | null;
  gatewayOrderId: string | null;
  gatewayPaymentId: string | null;
  /** Minor units as settle counts them (converted in gateway code where the gateway differs). */
  amount: number | null;
  currency: string | null;
  occurredAt: Date | null;
  failureCode: string | null;
  failureReason: string | null;
  raw: string;
  /** A non-payment effect (refunds, disputes, saved cards), applied by the same SQL ingestion. */
  effect?: E | null;
  /**
   * What the body says happened, for gateways whose event id is not signed (Razorpay): a second
   * identity, unique per gateway, so a signed body replayed under a fresh event id stores nothing.
   */
  bodyKey?: string | null;
}

/**
 * One verified webhook event and what the core does with it (shared/services/webhooks.ts
 * dispatches on `route` and never on a gateway's name):
 * - `payment`: stored and applied by settle.ingest_webhook (a payment kind and/or an effect);
 * - `read`: the same, after the read its effect owes (GatewayReads), unless it is a redelivery;
 * - `capture`: stored, then captured (the payer approved; PayPal CHECKOUT.ORDER.APPROVED leaves
 *   the capture to settle): fetchPayment captures the order for its stored terms;
 * - `payout`: an event about a payout that arrives on a payment gateway's endpoint (Stripe
 *   Connect transfer.* events are the platform's), stored by settle.ingest_payout_webhook.
 */
export type WebhookEvent =
  | { route: "payment"; event: NormalizedEvent<AppliedEffect> }
  | { route: "read"; event: NormalizedEvent<ReadEffect> & { effect: ReadEffect } }
  | { route: "capture"; event: NormalizedEvent<AppliedEffect> & { gatewayOrderId: string } }
  | { route: "payout"; event: PayoutEvent };

/** A payment-gateway event's route: `read` when its effect owes a read, else `payment`. */
export function paymentRoute(event: NormalizedEvent): WebhookEvent {
  const effect = event.effect ?? null;
  if (effect?.action === "fetch_card" || effect?.action === "fetch_refunds") {
    return { route: "read", event: { ...event, effect } };
  }
  return { route: "payment", event: { ...event, effect } };
}

/** The outcome of a verified checkout or a read from the gateway. */
export interface PaymentResult {
  kind: PaymentKind | "pending";
  gatewayPaymentId: string | null;
  amount: number | null;
  currency: string | null;
  failureCode?: string | null;
  failureReason?: string | null;
}

export interface PaymentGateway
  extends GatewayLister, GatewayDisputes, GatewayReads, GatewayCustomers {
  readonly name: GatewayName;
  /**
   * The longest createOrder can take (its requests' timeouts and retries): how long a request's
   * claim on an order's gateway call lasts before another request may take it over.
   */
  readonly orderCallBudgetMs: number;
  /**
   * True when createOrder is idempotent at the gateway itself (Stripe's idempotency key: the
   * same order's call always returns the same gateway order), so a call whose outcome is unknown
   * frees its claim at once. Otherwise (Razorpay: a receipt lookup that can miss an order still
   * being made) the claim is kept until its lease ends.
   */
  readonly idempotentOrders?: boolean;
  /** Refuses amounts the gateway cannot take (e.g. Razorpay three-decimal amounts not ending in 0). */
  checkAmount(amount: number, currency: string): void;
  createOrder(terms: OrderTerms): Promise<GatewayOrder>;
  /** What the browser needs to open the gateway's checkout for this order. */
  checkout(order: { gatewayOrderId: string; amount: number; currency: string }):
    | Record<string, unknown>
    | Promise<Record<string, unknown>>;
  /** Validates a verify request body strictly and returns the gateway order id it refers to. */
  verifyReference(body: Record<string, unknown>): string;
  /**
   * Proves what happened to the order: the signature first (throws invalid_signature), then
   * the gateway's own record. Only money the gateway reports captured comes back "captured".
   */
  verifyCheckout(
    order: { gatewayOrderId: string; amount: number; currency: string },
    body: Record<string, unknown>,
  ): Promise<PaymentResult>;
  /**
   * Verifies the raw body's signature, then normalizes each event and says where it goes (its
   * route); throws invalid_signature, or invalid_request for a verified body that is no event.
   */
  parseWebhook(rawBody: string, headers: Headers): Promise<WebhookEvent[]>;
  /**
   * Reads the order's payment state from the gateway's API (reconciliation); a payment only
   * authorized for the order's exact terms may be captured on the way (Razorpay).
   */
  fetchPayment(
    order: { gatewayOrderId: string; amount: number; currency: string },
  ): Promise<PaymentResult>;
  /** Refuses refund amounts the gateway cannot take (minimums, three-decimal rounding). */
  checkRefundAmount(amount: number, currency: string): void;
  /** Asks the gateway to refund; the idempotency key makes a retry return the same refund. */
  refund(req: RefundRequest): Promise<RefundResult>;
  /** Reads a refund's state (reconciliation of refunds left pending). */
  fetchRefund(gatewayRefundId: string): Promise<RefundResult>;
  /**
   * Saved cards, where the gateway keeps them (Stripe): present means the payment-methods
   * endpoints can use this gateway (shared/services/payment_methods.ts).
   */
  readonly savedCards?: SavedCards;
}

export type RefundStatus = "pending" | "processed" | "failed";

export interface RefundRequest {
  /** settle's refund id: sent in notes/metadata so webhooks can find it. */
  refundId: string;
  orderId: string;
  gatewayOrderId: string;
  gatewayPaymentId: string;
  amount: number;
  currency: string;
  idempotencyKey: string;
}

export interface RefundResult {
  gatewayRefundId: string;
  status: RefundStatus;
  amount: number;
  failureReason?: string | null;
}

/** The gateway answered, but with an error (502), or could not be reached (503). */
export class GatewayError extends Error {
  constructor(
    readonly status: 502 | 503,
    readonly gateway: GatewayName,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

// Section - listing the gateway's own records (the gateway audit, shared/services/gateway_audit.ts)

/** A time window in unix seconds, both ends included, on the gateway's creation time. */
export interface ListWindow {
  from: number;
  to: number;
}

/** A gateway payment as the audit compares it (Razorpay payment, Stripe PaymentIntent). */
export interface GatewayPaymentRecord {
  /** Razorpay pay_…, Stripe the intent's latest charge (what settle stores as the payment). */
  gatewayPaymentId: string | null;
  /** Razorpay order_…, Stripe pi_…: what settle stores as orders.gateway_order_id. */
  gatewayOrderId: string | null;
  /** settle's order id where the gateway carries it (Stripe metadata). */
  settleOrderId: string | null;
  /** Money captured (Razorpay `captured: true`, Stripe `succeeded`): only this counts as paid. */
  captured: boolean;
  /** The captured amount when captured, else the amount asked for; settle's minor units. */
  amount: number;
  currency: string;
  /** The gateway's own status word (e.g. "refunded" with captured false). */
  status: string;
  created: number;
}

/** A gateway refund as the audit compares it. */
export interface GatewayRefundRecord {
  gatewayRefundId: string;
  gatewayPaymentId: string | null;
  gatewayOrderId: string | null;
  /** settle's refund id from Razorpay notes / Stripe metadata, when settle made the refund. */
  settleRefundId: string | null;
  amount: number;
  currency: string;
  status: RefundStatus;
  created: number;
}

/**
 * Optional list verbs a gateway implements for the audit: every record created in the window
 * (all pages), and direct reads for settle records the window did not show.
 */
export interface GatewayLister {
  listPayments?(window: ListWindow): Promise<GatewayPaymentRecord[]>;
  listRefunds?(window: ListWindow): Promise<GatewayRefundRecord[]>;
  /** The payments of one gateway order ([] when the gateway has no such order). */
  orderPaymentRecords?(gatewayOrderId: string): Promise<GatewayPaymentRecord[]>;
  /** One refund, or null when the gateway has no such refund. */
  refundRecord?(gatewayRefundId: string): Promise<GatewayRefundRecord | null>;
}

// Section - disputes at the gateway (reconcile and the gateway audit, shared/services/disputes.ts)

/**
 * Optional dispute verbs: each answers disputes as the effect their webhook would carry
 * (action "dispute", built by the gateway's wire mapping), so a read converges through the same
 * SQL path (settle.apply_dispute_event) as the events it stands in for.
 */
export interface GatewayDisputes {
  /** Every dispute created in the window (all pages). */
  listDisputes?(window: ListWindow): Promise<DisputeEffect[]>;
  /** One dispute, or null when the gateway has no such dispute. */
  fetchDispute?(gatewayDisputeId: string): Promise<DisputeEffect | null>;
}

// Section - reads an effect owes (the webhook service and reconcile, shared/services/webhooks.ts)

/**
 * Optional verbs for events that name an object without carrying it (Stripe setup_intent.succeeded,
 * charge.refunded on current API versions): the webhook service makes the read outside any
 * transaction, only for a first delivery and an object of settle's, and applies what it returns.
 * A gateway whose events never owe a read (their effect is never `fetch_*`) has none.
 */
export interface GatewayReads {
  /** fetch_card: the payment method as an 'attached' effect; null when the gateway has none. */
  readCard?(paymentMethodId: string): Promise<CardEffect | null>;
  /** fetch_refunds: every refund of a payment (all pages), newest first, as refund effects. */
  paymentRefunds?(gatewayPaymentId: string): Promise<RefundEffect[]>;
}

// Section - customers and saved cards (shared/services/customers.ts, payment_methods.ts)

/** An optional verb for gateways with customers (Stripe): intents and cards belong to one. */
export interface GatewayCustomers {
  /**
   * The account's customer at the gateway; concurrent first calls get the same one (the
   * idempotency key derives from the account id). settle stores it in public.gateway_customers.
   */
  createCustomer?(accountId: string): Promise<string>;
}

/** Saved cards: set up in the browser, made the default, removed (all four or none). */
export interface SavedCards {
  /** What the browser needs beside a setup intent's client secret (Stripe's publishable key). */
  readonly publishableKey: string;
  createSetupIntent(
    customerId: string,
    accountId: string,
  ): Promise<{ id: string; clientSecret: string }>;
  setDefaultPaymentMethod(customerId: string, paymentMethodId: string): Promise<void>;
  detachPaymentMethod(paymentMethodId: string): Promise<void>;
}

// Section - webhook effects: what settle.apply_webhook_effect understands (defined in
// supabase/migrations/20261201000700_webhooks.sql). Fields are named as the SQL reads them (p_effect ->> 'field'),
// so the JSON is exactly the object built. `type` aliases, not interfaces: an effect is also a
// plain JSON record.

/** A refund's state at the gateway (settle.apply_refund_event; also an item of a refund list). */
export type RefundEffect = {
  action: "refund";
  gateway_refund_id: string;
  gateway_payment_id: string | null;
  gateway_order_id: string | null;
  amount: number | null;
  currency: string | null;
  status: RefundStatus;
  /** settle's refund id from the refund's metadata/notes/custom_id, when settle made it. */
  settle_refund_id: string | null;
  failure_reason: string | null;
};

/** A payment's whole refund list (settle.apply_refund_list: each applied by id). */
export type RefundListEffect = {
  action: "refunds";
  gateway_payment_id: string | null;
  gateway_order_id: string | null;
  refunds: RefundEffect[];
  /** The outcome an empty list answers (unknown_order: the payment is not settle's). */
  outcome?: "unknown_order";
  detail?: string;
};

/** A fee (or, negative, a fee given back) a dispute's balance transaction moved. */
export type DisputeFee = { id: string; fee: number; currency: string | null };

/** A dispute's state and money (settle.apply_dispute_event); also an early fraud warning. */
export type DisputeEffect = {
  action: "dispute";
  gateway_dispute_id: string;
  gateway_payment_id: string | null;
  gateway_order_id: string | null;
  amount: number | null;
  currency: string | null;
  reason: string | null;
  /** open, under_review, won, lost or closed. */
  status: string;
  /** inquiry, chargeback, pre_arbitration, arbitration, fraud, retrieval or early_warning. */
  phase: string;
  gateway_status: string;
  /** Unix seconds. */
  evidence_due_by?: number | null;
  created: number | null;
  occurred_at: number | null;
  /** What the gateway took for the dispute so far, and gave back, in the dispute's currency. */
  withdrawn: number;
  reinstated: number;
  balance_transactions?: DisputeFee[];
  /** Whether the disputed charge can still be refunded (Stripe is_charge_refundable). */
  refundable?: boolean | null;
};

/** A saved card attached to a customer, or its details changed (settle.apply_payment_method_event). */
export type CardEffect = {
  action: "attached" | "updated";
  customer: string | null;
  payment_method: string;
  brand: string | null;
  last4: string | null;
  exp_month: number | null;
  exp_year: number | null;
};

export type DetachedEffect = { action: "detached"; payment_method: string };
export type DefaultCardEffect = { action: "default"; customer: string; payment_method: string };
/** Stored as 'ignored' with the detail as the reason. */
export type IgnoreEffect = { action: "ignore"; detail?: string };

/** setup_intent.succeeded: the card to read (GatewayReads.readCard); `detail` a failed read's error. */
export type FetchCardEffect = {
  action: "fetch_card";
  customer: string | null;
  payment_method: string | null;
  detail?: string;
};

/** charge.refunded without its list: the refunds to read (GatewayReads.paymentRefunds). */
export type FetchRefundsEffect = {
  action: "fetch_refunds";
  gateway_payment_id: string;
  gateway_order_id: string | null;
  currency: string;
  amount_refunded: number;
  detail?: string;
};

/** An effect that owes a gateway read: stored 'failed' until the read is made (reconcile). */
export type ReadEffect = FetchCardEffect | FetchRefundsEffect;
/** An effect the SQL applies as it is. */
export type AppliedEffect =
  | RefundEffect
  | RefundListEffect
  | DisputeEffect
  | CardEffect
  | DetachedEffect
  | DefaultCardEffect
  | IgnoreEffect;
export type Effect = AppliedEffect | ReadEffect;
