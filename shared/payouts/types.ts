// The payout gateway interface: stateless verbs for payout accounts, payouts and their webhooks.
// Payout gateways are not payment gateways (shared/gateways/): they move money out, not in.

export type PayoutGatewayName = "razorpayx" | "stripe";

/** settle's payout statuses (public.payouts.status), in lifecycle order. */
export type PayoutStatus =
  | "pending"
  | "processing"
  | "processed"
  | "failed"
  | "rejected"
  | "cancelled"
  | "reversed";

/** A validated POST /payout-accounts destination (the gateway's part of the body). */
export type DestinationRequest =
  | { type: "bank_account"; name: string; ifsc: string; accountNumber: string }
  | { type: "vpa"; address: string }
  | { type: "stripe_account"; email?: string; country?: string };

/** What settle stores of a destination the gateway created: ids and a masked form only. */
export interface Destination {
  type: "bank_account" | "vpa" | "stripe_account";
  display: string;
  last4: string | null;
  vpaHandle: string | null;
  contactId: string | null;
  gatewayAccountId: string;
  /** Stripe: where the payee finishes onboarding. */
  onboarding?: { url: string; expiresAt: string };
}

/** A payout as sent: built only from stored terms, so every retry sends the same body. */
export interface PayoutSend {
  payoutId: string;
  /** What the payee receives (the payout's amount minus settle's fee), minor units. */
  amount: number;
  currency: string;
  destinationType: Destination["type"];
  gatewayAccountId: string;
  /** Derived from the payout id: the same for every try of the same payout. */
  idempotencyKey: string;
  /**
   * The first try may be older than the gateway keeps idempotency keys (Stripe: 24 h): look for
   * the payout it made before sending again.
   */
  keyMayHaveExpired?: boolean;
}

/** The gateway's record of a payout. */
export interface PayoutRecord {
  gatewayPayoutId: string;
  /** settle's word for the gateway's state; null when the state says nothing new. */
  status: PayoutStatus | null;
  gatewayStatus: string;
  amount: number;
  currency: string;
  failureReason: string | null;
}

/** A payout the gateway lists (the audit): its record plus what links it to settle. */
export interface ListedPayout extends PayoutRecord {
  /** settle's payout id from the payout's reference_id / notes / metadata, when it has one. */
  settlePayoutId: string | null;
  /** The destination it paid (RazorpayX fund account, Stripe connected account). */
  gatewayAccountId: string | null;
  /** What the destination kept: the amount less any reversed part (Stripe), minor units. */
  netAmount: number;
  created: number;
}

/** A verified payout webhook, reduced to what settle.ingest_payout_webhook applies. */
export interface PayoutEvent {
  /** The webhook_events.gateway it is stored under. */
  gateway: "razorpayx" | "stripe" | "stripe_connect";
  eventId: string;
  type: string;
  occurredAt: Date | null;
  raw: string;
  bodyKey: string | null;
  effect: Record<string, unknown>;
}

export interface PayoutGateway {
  readonly name: PayoutGatewayName;
  /**
   * The send's answer is final (Stripe transfers are synchronous: a transfer made is money in the
   * connected account), so its status is applied at once; otherwise only the gateway's id is
   * recorded and the status follows its events.
   */
  readonly settlesOnSend?: boolean;
  createDestination(
    req: DestinationRequest,
    /** origin: where the payout-accounts function was called (onboarding URLs' fallback). */
    ctx: { payoutAccountId: string; accountId: string; origin: string },
  ): Promise<Destination>;
  sendPayout(p: PayoutSend): Promise<PayoutRecord>;
  fetchPayout(gatewayPayoutId: string): Promise<PayoutRecord>;
  /** Every payout the gateway created in [from, to] (unix seconds), all pages (the audit). */
  listPayouts?(window: { from: number; to: number }): Promise<ListedPayout[]>;
}

/**
 * The gateway answered with an error (502) or could not be reached (503). `refused` is true only
 * when the answer says no payout was made (a 4xx other than 408/409/429): the payout fails and
 * its money returns; anything else may hide a payout that was made, so it is sent again under
 * the same idempotency key.
 */
export class PayoutGatewayError extends Error {
  constructor(
    readonly status: 502 | 503,
    readonly gateway: PayoutGatewayName,
    message: string,
    readonly refused = false,
  ) {
    super(message);
  }
}

/** Whether an HTTP status from a gateway means "no, and nothing was done". */
export function refusalStatus(httpStatus: number): boolean {
  return httpStatus >= 400 && httpStatus < 500 && ![408, 409, 429].includes(httpStatus);
}
