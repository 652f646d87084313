// The gateway interface: stateless verbs; the core persists what they return.

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

/** A gateway event reduced to what settle acts on; the raw body is kept beside it. */
export interface NormalizedEvent {
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
  /** A non-payment effect (saved payment methods), applied by the same SQL ingestion. */
  effect?: Record<string, unknown> | null;
  /**
   * What the body says happened, for gateways whose event id is not signed (Razorpay): a second
   * identity, unique per gateway, so a signed body replayed under a fresh event id stores nothing.
   */
  bodyKey?: string | null;
  /**
   * The payer approved but the gateway leaves the capture to settle (PayPal
   * CHECKOUT.ORDER.APPROVED): after storing the event, the webhook service reads the order
   * through fetchPayment (which captures it) and applies the result.
   */
  captureOwed?: boolean;
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

export interface PaymentGateway extends GatewayLister, GatewayDisputes {
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
  /**
   * Optional, for gateways whose payments belong to a customer (Stripe): creates the account's
   * customer and returns its id. The core calls it once per account (the first order or saved
   * card), keeps the id in public.gateway_customers, and passes it as OrderTerms.customerId;
   * the same account must always get the same customer (an idempotency key from the account).
   */
  createCustomer?(accountId: string): Promise<string>;
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
  /** Verifies the raw body's signature, then normalizes; throws invalid_signature. */
  parseWebhook(rawBody: string, headers: Headers): Promise<NormalizedEvent[]>;
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
  listDisputes?(window: ListWindow): Promise<Record<string, unknown>[]>;
  /** One dispute, or null when the gateway has no such dispute. */
  fetchDispute?(gatewayDisputeId: string): Promise<Record<string, unknown> | null>;
}
