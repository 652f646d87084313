// Charges: /v1/charges (list, retrieve) and the charge each payment attempt creates.
import type { Decline } from "./cards.ts";
import { noSuch } from "./errors.ts";
import { list, retrieve } from "./lists.ts";
import { ALLOWED, rejectUnknown, str } from "./params.ts";
import { type ApiCall, ok, type PmRecord, type Res, type StripeState } from "./state.ts";
import { clone, randomAlnum, randomId } from "./util.ts";
import type { CardDetails, Charge, Json, PaymentIntent } from "./wire.ts";

export function listCharges(s: StripeState, { params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.chargeList);
  const pi = str(p, "payment_intent");
  const customer = str(p, "customer");
  const all = [...s.charges.values()].filter((c) =>
    (pi === undefined || c.payment_intent === pi) &&
    (customer === undefined || c.customer === customer)
  );
  return ok(list(all, p, path));
}

export function retrieveCharge(s: StripeState, { ids, params: p }: ApiCall): Res {
  const c = s.charges.get(ids.id);
  if (!c) throw noSuch("charge", ids.id, "id", 404);
  return ok(retrieve(p, c));
}

/** A charge for one payment attempt; `decline` makes it a failed one, `captured` false a held one. */
export function newCharge(
  s: StripeState,
  pi: PaymentIntent,
  rec: PmRecord,
  decline?: Decline,
  captured = true,
): Charge {
  const c = rec.pm.card;
  const id = randomId("ch_");
  const charge: Charge = {
    id,
    object: "charge",
    amount: pi.amount,
    amount_captured: decline || !captured ? 0 : pi.amount,
    amount_refunded: 0,
    application: null,
    application_fee: null,
    application_fee_amount: null,
    balance_transaction: decline || !captured ? null : randomId("txn_"),
    billing_details: clone(rec.pm.billing_details),
    calculated_statement_descriptor: "SETTLE",
    captured: !decline && captured,
    created: s.unix(),
    currency: pi.currency,
    customer: pi.customer,
    description: pi.description,
    disputed: false,
    failure_balance_transaction: null,
    failure_code: decline?.code ?? null,
    failure_message: decline?.message ?? null,
    fraud_details: {},
    livemode: false,
    metadata: clone(pi.metadata),
    on_behalf_of: null,
    outcome: chargeOutcome(decline),
    paid: !decline,
    payment_intent: pi.id,
    payment_method: rec.pm.id,
    payment_method_details: cardPaymentDetails(pi, c, decline),
    receipt_email: pi.receipt_email,
    receipt_number: null,
    receipt_url: `https://pay.stripe.com/receipts/payment/${randomAlnum(32)}`,
    refunded: false,
    review: null,
    shipping: null,
    source: null,
    source_transfer: null,
    statement_descriptor: null,
    statement_descriptor_suffix: pi.statement_descriptor_suffix,
    status: decline ? "failed" : "succeeded",
    transfer_data: null,
    transfer_group: null,
  };
  s.charges.set(id, charge);
  return charge;
}

function chargeOutcome(decline: Decline | undefined): Json {
  return decline
    ? {
      network_advice_code: null,
      network_decline_code: null,
      network_status: "declined_by_network",
      reason: decline.decline_code ?? null,
      risk_level: "normal",
      seller_message: "The bank did not return any further details with this decline.",
      type: "issuer_declined",
    }
    : {
      network_advice_code: null,
      network_decline_code: null,
      network_status: "approved_by_network",
      reason: null,
      risk_level: "normal",
      seller_message: "Payment complete.",
      type: "authorized",
    };
}

function cardPaymentDetails(pi: PaymentIntent, c: CardDetails, decline: Decline | undefined): Json {
  return {
    card: {
      amount_authorized: decline ? null : pi.amount,
      brand: c.brand,
      checks: clone(c.checks),
      country: c.country,
      exp_month: c.exp_month,
      exp_year: c.exp_year,
      fingerprint: c.fingerprint,
      funding: c.funding,
      last4: c.last4,
      network: c.brand,
      three_d_secure: null,
      wallet: null,
    },
    type: "card",
  };
}
