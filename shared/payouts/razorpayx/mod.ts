// The RazorpayX payout gateway: contacts and fund accounts (bank account, UPI), payouts with
// X-Payout-Idempotency, and payout.* webhooks signed with the RazorpayX webhook secret.
import type { RazorpayXConfig } from "../../config.ts";
import { sha256Hex } from "../../crypto.ts";
import { HttpError } from "../../http.ts";
import { verifyWebhookSignature } from "../../gateways/razorpay/signature.ts";
import type {
  Destination,
  DestinationRequest,
  PayoutEvent,
  PayoutGateway,
  PayoutSend,
} from "../types.ts";
import { RazorpayXClient } from "./client.ts";
import { listedPayout, NotAnEvent, payoutEvent, payoutRecord } from "./wire.ts";

/** IMPS carries up to ₹5,00,000; larger bank payouts go by NEFT. UPI for a VPA. */
const IMPS_MAX_PAISE = 50_000_000;

/**
 * One contact per payout account: its reference_id is settle's id, so the contact is findable
 * from RazorpayX's dashboard and a lost answer's retry returns the same one. Then the fund
 * account (bank account or VPA) under it.
 */
async function createDestination(
  client: RazorpayXClient,
  req: DestinationRequest,
  ctx: { payoutAccountId: string },
): Promise<Destination> {
  if (req.type === "stripe_account") {
    throw new HttpError(400, "invalid_request", "razorpayx takes a bank_account or a vpa");
  }
  const contact = await client.createContact({
    name: req.type === "bank_account" ? req.name.slice(0, 50) : "settle payee",
    type: "vendor",
    reference_id: ctx.payoutAccountId,
  });
  const fa = await client.createFundAccount(
    req.type === "bank_account"
      ? {
        contact_id: contact.id,
        account_type: "bank_account",
        bank_account: { name: req.name, ifsc: req.ifsc, account_number: req.accountNumber },
      }
      : { contact_id: contact.id, account_type: "vpa", vpa: { address: req.address } },
  );
  const last4 = req.type === "bank_account" ? req.accountNumber.slice(-4) : null;
  const handle = req.type === "vpa" ? "@" + req.address.split("@")[1].toLowerCase() : null;
  return {
    type: req.type,
    display: last4 ? `•••• ${last4}` : `•••${handle}`,
    last4,
    vpaHandle: handle,
    contactId: contact.id,
    gatewayAccountId: fa.id,
  };
}

/** Built from the payout's stored terms only: RazorpayX refuses a key reused with another body. */
function payoutBody(config: RazorpayXConfig, p: PayoutSend) {
  return {
    account_number: config.accountNumber,
    fund_account_id: p.gatewayAccountId,
    amount: p.amount,
    currency: p.currency,
    mode: p.destinationType === "vpa" ? "UPI" : p.amount <= IMPS_MAX_PAISE ? "IMPS" : "NEFT",
    purpose: "payout",
    queue_if_low_balance: true,
    reference_id: p.payoutId,
    narration: "settle payout",
    notes: { settle_payout_id: p.payoutId },
  };
}

/** A payout.* delivery: signed with the RazorpayX webhook secret, one event a body. */
async function parseWebhook(
  config: RazorpayXConfig,
  raw: string,
  headers: Headers,
): Promise<PayoutEvent[]> {
  const signature = headers.get("x-razorpay-signature");
  if (!signature) throw new HttpError(400, "invalid_signature", "missing X-Razorpay-Signature");
  if (!(await verifyWebhookSignature(raw, signature, [config.webhookSecret]))) {
    throw new HttpError(400, "invalid_signature", "X-Razorpay-Signature does not match the body");
  }
  const header = headers.get("x-razorpay-event-id");
  const eventId = header && header.length <= 255 ? header : `body:${await sha256Hex(raw)}`;
  try {
    return [payoutEvent(raw, eventId)];
  } catch (err) {
    if (err instanceof NotAnEvent) throw new HttpError(400, "invalid_request", err.message);
    throw err;
  }
}

export function createRazorpayXGateway(
  config: RazorpayXConfig,
  fetchImpl?: typeof fetch,
): PayoutGateway & {
  parseWebhook(raw: string, headers: Headers): Promise<PayoutEvent[]>;
} {
  const client = new RazorpayXClient({ ...config, fetch: fetchImpl });
  return {
    name: "razorpayx",
    createDestination: (req, ctx) => createDestination(client, req, ctx),
    async sendPayout(p) {
      return payoutRecord(await client.createPayout(payoutBody(config, p), p.idempotencyKey));
    },
    async fetchPayout(id) {
      return payoutRecord(await client.fetchPayout(id));
    },
    async listPayouts(w) {
      return (await client.listPayouts(config.accountNumber, w.from, w.to)).map(listedPayout);
    },
    parseWebhook: (raw, headers) => parseWebhook(config, raw, headers),
  };
}
