// Every error code the API can answer with, once: its status and when it is sent. docs/api.md's
// error table is this list (tests/docs_test.ts compares them row by row, and fails on a code
// thrown in shared/, a function or a migration that is not here).

export interface ErrorCodeInfo {
  status: number;
  code: string;
  meaning: string;
}

export const ERROR_CODES = [
  {
    status: 400,
    code: "invalid_request",
    meaning: "a field is missing, of the wrong type, out of bounds, an unknown currency",
  },
  { status: 400, code: "invalid_json", meaning: "the body is not JSON" },
  {
    status: 400,
    code: "invalid_signature",
    meaning: "a checkout or webhook signature does not verify",
  },
  {
    status: 401,
    code: "unauthorized",
    meaning: "missing, expired, wrong-audience or otherwise invalid JWT",
  },
  {
    status: 403,
    code: "forbidden",
    meaning: "origin not allowed; a service key where a user is needed",
  },
  {
    status: 404,
    code: "not_found",
    meaning: "unknown plan/product/order/account, or one that is not yours",
  },
  { status: 405, code: "method_not_allowed", meaning: "wrong HTTP method" },
  {
    status: 409,
    code: "idempotency_conflict",
    meaning: "an `Idempotency-Key` reused with a different body",
  },
  {
    status: 409,
    code: "conflict",
    meaning: "the request contradicts the current state (e.g. a cancelled subscription)",
  },
  {
    status: 409,
    code: "payment_mismatch",
    meaning: "the gateway's payment is for another amount or currency than the order",
  },
  {
    status: 409,
    code: "order_not_refundable",
    meaning: "a refund of an order that is not paid, or already fully refunded",
  },
  {
    status: 409,
    code: "refund_exceeds_payment",
    meaning: "a refund larger than what was paid minus what was refunded",
  },
  {
    status: 409,
    code: "insufficient_funds",
    meaning: "a top-up refund or a payout larger than the wallet's balance (or payable earnings)",
  },
  {
    status: 409,
    code: "invalid_transition",
    meaning: "a status change the order or refund state machine forbids (a bug guard)",
  },
  {
    status: 409,
    code: "refund_not_allowed",
    meaning: "a buyer asking for more than the refund policy allows (see Refunds)",
  },
  {
    status: 409,
    code: "charge_not_held",
    meaning: "capture or void of a wallet charge that is not (or no longer) held",
  },
  { status: 409, code: "capture_exceeds_hold", meaning: "a capture larger than the wallet hold" },
  {
    status: 409,
    code: "hold_expired",
    meaning: "a capture of a wallet hold after its `expires_at`",
  },
  {
    status: 409,
    code: "charge_not_captured",
    meaning: "a refund of a wallet charge that was never captured",
  },
  {
    status: 409,
    code: "refund_exceeds_charge",
    meaning: "a wallet-charge refund larger than what remains of the charge",
  },
  {
    status: 409,
    code: "invalid_engagement_state",
    meaning:
      "an engagement action its status forbids (complete before funding, dispute after release, a second funding order)",
  },
  {
    status: 409,
    code: "escrow_refund_not_allowed",
    meaning: "a refund of an escrow order through `POST /refunds` (cancel or settle instead)",
  },
  {
    status: 409,
    code: "payout_account_not_ready",
    meaning: "a payout to a payout account still onboarding (Stripe) or disabled",
  },
  {
    status: 409,
    code: "payout_limit_exceeded",
    meaning: "a payout over the account's daily payout limit (payout_policies)",
  },
  {
    status: 409,
    code: "order_disputed",
    meaning: "a refund of an order whose payment has an open chargeback (see Disputes)",
  },
  {
    status: 409,
    code: "spending_blocked",
    meaning:
      "spending a wallet (charges, wallet orders, payouts) whose account owes a dispute shortfall in that currency",
  },
  {
    status: 413,
    code: "payload_too_large",
    meaning: "body over 64 KiB (webhooks: `WEBHOOK_BODY_LIMIT_BYTES`)",
  },
  { status: 415, code: "unsupported_media_type", meaning: "not `application/json`" },
  {
    status: 429,
    code: "rate_limited",
    meaning: "too many requests from this user or address; see `Retry-After`",
  },
  { status: 502, code: "gateway_error", meaning: "the gateway refused or failed the request" },
  {
    status: 503,
    code: "gateway_unavailable",
    meaning: "the gateway timed out or could not be reached; retry",
  },
  {
    status: 500,
    code: "internal_error",
    meaning: "a bug; details are in the log, never in the response",
  },
] as const satisfies readonly ErrorCodeInfo[];
