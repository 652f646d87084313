// Each gateway's parseWebhook says where its events go (WebhookEvent's route), with real
// signatures: the webhook service dispatches on that alone (shared/services/webhooks.ts). The
// effects' JSON is pinned: settle.apply_webhook_effect reads these fields by name.
import assert from "node:assert/strict";
import { stripeSignatureHeader } from "../dev/simulator/stripe/mod.ts";
import { createStripeGateway } from "../shared/gateways/stripe/mod.ts";
import { createRazorpayGateway } from "../shared/gateways/razorpay/mod.ts";
import { normalizeEvent, webhookEvent } from "../shared/gateways/paypal/wire.ts";
import { hmacSha256Hex } from "../shared/crypto.ts";
import { HttpError } from "../shared/http.ts";
import type { WebhookEvent } from "../shared/gateways/types.ts";

const SECRET = "whsec_routes";
const NOW = new Date("2026-12-07T12:00:00Z");
const stripe = createStripeGateway({
  secretKey: "sk_test_routes",
  publishableKey: "pk_test_routes",
  webhookSecrets: [SECRET],
  apiUrl: "http://127.0.0.1:9",
  timeoutMs: 100,
}, { now: () => NOW });

function stripeBody(type: string, object: Record<string, unknown>): string {
  return JSON.stringify({
    id: "evt_routes1",
    object: "event",
    type,
    created: Math.floor(NOW.getTime() / 1000),
    data: { object },
  });
}

async function stripeRoute(type: string, object: Record<string, unknown>): Promise<WebhookEvent> {
  const body = stripeBody(type, object);
  const header = stripeSignatureHeader(SECRET, Math.floor(NOW.getTime() / 1000), body);
  const events = await stripe.parseWebhook(body, new Headers({ "stripe-signature": header }));
  assert.equal(events.length, 1);
  return events[0];
}

const transfer = {
  id: "tr_routes1",
  object: "transfer",
  amount: 1250,
  amount_reversed: 0,
  reversed: false,
  currency: "usd",
  destination: "acct_routes1",
  metadata: { settle_payout_id: "payout-1" },
  transfer_group: null,
};

Deno.test("webhook routes: Stripe transfer.* events go to the payout ingest, as payout effects", async () => {
  const w = await stripeRoute("transfer.created", transfer);
  assert.equal(w.route, "payout");
  assert.deepEqual(w.event, {
    gateway: "stripe",
    eventId: "evt_routes1",
    type: "transfer.created",
    occurredAt: NOW,
    raw: stripeBody("transfer.created", transfer),
    bodyKey: null,
    effect: {
      action: "payout",
      gateway_payout_id: "tr_routes1",
      settle_payout_id: "payout-1",
      status: "processed",
      gateway_status: "created",
      amount: 1250,
      currency: "USD",
      failure_reason: null,
    },
  });
  // A signed transfer event settle cannot read is a 400 (nothing stored), like other events.
  await assert.rejects(
    stripeRoute("transfer.updated", { ...transfer, currency: undefined }),
    (e: unknown) => e instanceof HttpError && e.status === 400 && e.code === "invalid_request",
  );
});

Deno.test("webhook routes: Stripe effects that name an object without carrying it owe a read", async () => {
  const card = await stripeRoute("setup_intent.succeeded", {
    id: "seti_1",
    object: "setup_intent",
    customer: "cus_1",
    payment_method: "pm_1",
  });
  assert.equal(card.route, "read");
  assert.equal(
    JSON.stringify(card.event.effect),
    '{"action":"fetch_card","customer":"cus_1","payment_method":"pm_1"}',
  );
  const charge = { id: "ch_1", object: "charge", payment_intent: "pi_1", currency: "usd" };
  const refunds = await stripeRoute("charge.refunded", { ...charge, amount_refunded: 300 });
  assert.equal(refunds.route, "read");
  assert.equal(
    JSON.stringify(refunds.event.effect),
    '{"action":"fetch_refunds","gateway_payment_id":"ch_1","gateway_order_id":"pi_1",' +
      '"currency":"USD","amount_refunded":300}',
  );
  // The charge's whole list in the event: applied as it is, no read.
  const listed = await stripeRoute("charge.refunded", {
    ...charge,
    amount_refunded: 300,
    refunds: {
      has_more: false,
      data: [{
        id: "re_1",
        object: "refund",
        amount: 300,
        currency: "usd",
        charge: "ch_1",
        payment_intent: "pi_1",
        status: "succeeded",
        metadata: { settle_refund_id: "refund-1" },
      }],
    },
  });
  assert.equal(listed.route, "payment");
  assert.equal(
    JSON.stringify(listed.event.effect),
    '{"action":"refunds","gateway_payment_id":"ch_1","gateway_order_id":"pi_1","refunds":[' +
      '{"action":"refund","gateway_refund_id":"re_1","gateway_payment_id":"ch_1",' +
      '"gateway_order_id":"pi_1","amount":300,"currency":"USD","status":"processed",' +
      '"settle_refund_id":"refund-1","failure_reason":null}]}',
  );
});

Deno.test("webhook routes: a Stripe dispute is a payment-gateway event with the dispute effect", async () => {
  const w = await stripeRoute("charge.dispute.created", {
    id: "dp_1",
    object: "dispute",
    charge: "ch_1",
    payment_intent: "pi_1",
    amount: 1000,
    currency: "usd",
    reason: "fraudulent",
    status: "needs_response",
    evidence_details: { due_by: 1765000000 },
    created: 1764900000,
    balance_transactions: [{ id: "txn_1", amount: -1000, fee: 1500, currency: "usd" }],
    is_charge_refundable: false,
  });
  assert.equal(w.route, "payment");
  assert.equal(
    JSON.stringify(w.event.effect),
    '{"action":"dispute","gateway_dispute_id":"dp_1","gateway_payment_id":"ch_1",' +
      '"gateway_order_id":"pi_1","amount":1000,"currency":"USD","reason":"fraudulent",' +
      '"status":"open","phase":"chargeback","gateway_status":"needs_response",' +
      '"evidence_due_by":1765000000,"created":1764900000,"occurred_at":' +
      `${Math.floor(NOW.getTime() / 1000)},"withdrawn":1000,"reinstated":0,` +
      '"balance_transactions":[{"id":"txn_1","fee":1500,"currency":"USD"}],"refundable":false}',
  );
});

Deno.test("webhook routes: every Razorpay event is a payment-gateway event", async () => {
  const razorpay = createRazorpayGateway({
    keyId: "rzp_test_routes",
    keySecret: "key-secret",
    webhookSecrets: ["hook-secret"],
    apiUrl: "http://127.0.0.1:9",
    timeoutMs: 100,
  });
  const body = JSON.stringify({
    entity: "event",
    event: "refund.processed",
    created_at: 1764900000,
    payload: {
      refund: {
        entity: {
          id: "rfnd_1",
          amount: 100,
          currency: "INR",
          payment_id: "pay_AAAAAAAAAAAAAA",
          status: "processed",
          notes: { settle_refund_id: "refund-1" },
        },
      },
    },
  });
  const [w] = await razorpay.parseWebhook(
    body,
    new Headers({ "x-razorpay-signature": await hmacSha256Hex("hook-secret", body) }),
  );
  assert.equal(w.route, "payment");
  assert.equal(
    JSON.stringify(w.event.effect),
    '{"action":"refund","gateway_refund_id":"rfnd_1","gateway_payment_id":"pay_AAAAAAAAAAAAAA",' +
      '"gateway_order_id":null,"amount":100,"currency":"INR","status":"processed",' +
      '"settle_refund_id":"refund-1","failure_reason":null}',
  );
});

Deno.test("webhook routes: a PayPal approval leaves the capture to settle; an unreadable one does not", () => {
  const raw = (resource: unknown) =>
    JSON.stringify({
      id: "WH-1",
      event_type: "CHECKOUT.ORDER.APPROVED",
      create_time: NOW.toISOString(),
      resource,
    });
  const approved = webhookEvent(normalizeEvent(
    raw({
      id: "5O190127TN364715T",
      status: "APPROVED",
      purchase_units: [{ amount: { currency_code: "USD", value: "10.00" } }],
    }),
    "t1",
  ));
  assert.equal(approved.route, "capture");
  assert.deepEqual(
    [approved.event.kind, approved.event.gatewayOrderId, approved.event.amount],
    ["authorized", "5O190127TN364715T", 1000],
  );
  // No order settle can name: stored as an event that does nothing, nothing to capture.
  const unreadable = webhookEvent(normalizeEvent(raw({ id: 5 }), "t2"));
  assert.equal(unreadable.route, "payment");
  assert.deepEqual([unreadable.event.kind, unreadable.event.gatewayOrderId], [null, null]);
});
