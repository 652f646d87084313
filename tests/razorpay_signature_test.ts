// Razorpay signatures: the official vectors, and the official SDK's validators as an oracle.
import assert from "node:assert/strict";
import {
  validatePaymentVerification,
  validateWebhookSignature,
} from "razorpay/dist/utils/razorpay-utils.js";
import { hmacSha256Hex, timingSafeEqual } from "../shared/crypto.ts";
import {
  verifyPaymentSignature,
  verifyWebhookSignature,
} from "../shared/gateways/razorpay/signature.ts";
import { createRazorpayGateway } from "../shared/gateways/razorpay/mod.ts";
import { HttpError } from "../shared/http.ts";

// GATEWAY_FACTS A8, from razorpay-node's test/utils/razorpay-utils.spec.js.
const VECTORS = [
  {
    name: "webhook",
    secret: "123456",
    message: '{"a":1,"b":2,"c":{"d":3}}',
    hex: "2fe04e22977002e6c7cb553adab8b460cb9e2a4970d5953cb27a8472752e3bbc",
  },
  {
    name: "order payment",
    secret: "EnLs21M47BllR3X8PSFtjtbd",
    message: "order_IEIaMR65cu6nz3|pay_IH4NVgf4Dreq1l",
    hex: "0d4e745a1838664ad6c9c9902212a32d627d68e917290b0ad5f08ff4561bc50f",
  },
  {
    name: "subscription",
    secret: "EnLs21M47BllR3X8PSFtjtbd",
    message: "pay_IDZNwZZFtnjyym|sub_ID6MOhgkcoHj9I",
    hex: "601f383334975c714c91a7d97dd723eb56520318355863dcf3821c0d07a17693",
  },
  {
    name: "payment link",
    secret: "EnLs21M47BllR3X8PSFtjtbd",
    message: "plink_IH3cNucfVEgV68|TSsd1989|paid|pay_IH3d0ara9bSsjQ",
    hex: "07ae18789e35093e51d0a491eb9922646f3f82773547e5b0f67ee3f2d3bf7d5b",
  },
];

for (const v of VECTORS) {
  Deno.test(`HMAC reproduces the official ${v.name} vector`, async () => {
    assert.equal(await hmacSha256Hex(v.secret, v.message), v.hex);
  });
}

Deno.test("checkout signature: the official order vector verifies; any change does not", async () => {
  const base = {
    orderId: "order_IEIaMR65cu6nz3",
    paymentId: "pay_IH4NVgf4Dreq1l",
    signature: VECTORS[1].hex,
    keySecret: "EnLs21M47BllR3X8PSFtjtbd",
  };
  assert.equal(await verifyPaymentSignature(base), true);
  assert.equal(await verifyPaymentSignature({ ...base, orderId: "order_IEIaMR65cu6nz4" }), false);
  assert.equal(await verifyPaymentSignature({ ...base, paymentId: "pay_IH4NVgf4Dreq1m" }), false);
  assert.equal(await verifyPaymentSignature({ ...base, keySecret: "wrong" }), false);
  assert.equal(
    await verifyPaymentSignature({ ...base, signature: base.signature.toUpperCase() }),
    false,
  );
  assert.equal(await verifyPaymentSignature({ ...base, signature: "" }), false);
});

// Payloads and signatures the official package must judge exactly as we do.
function tamper(s: string, at: number): string {
  const c = s[at] === "0" ? "1" : "0";
  return s.slice(0, at) + c + s.slice(at + 1);
}

Deno.test("the razorpay package's validators agree with ours on valid and tampered inputs", async () => {
  const secret = "settle_oracle_secret";
  const cases: { order: string; payment: string; sig: string }[] = [];
  for (let i = 0; i < 20; i++) {
    const order = `order_${crypto.randomUUID().replaceAll("-", "").slice(0, 14)}`;
    const payment = `pay_${crypto.randomUUID().replaceAll("-", "").slice(0, 14)}`;
    const sig = await hmacSha256Hex(secret, `${order}|${payment}`);
    cases.push({ order, payment, sig }, { order, payment, sig: tamper(sig, i % 64) });
    cases.push({ order: tamper(order, 6 + (i % 14)), payment, sig });
  }
  for (const c of cases) {
    const ours = await verifyPaymentSignature({
      orderId: c.order,
      paymentId: c.payment,
      signature: c.sig,
      keySecret: secret,
    });
    const theirs = validatePaymentVerification(
      { order_id: c.order, payment_id: c.payment },
      c.sig,
      secret,
    );
    assert.equal(ours, theirs, JSON.stringify(c));
  }
  assert.equal(
    cases.filter((c) =>
      validatePaymentVerification(
        { order_id: c.order, payment_id: c.payment },
        c.sig,
        secret,
      )
    ).length,
    20,
  );

  const bodies = [
    '{"a":1,"b":2,"c":{"d":3}}',
    '{"entity":"event","event":"payment.captured","payload":{}}',
    '{"emoji":"\u{1F600}","amount":50000}',
  ];
  for (const body of bodies) {
    const sig = await hmacSha256Hex(secret, body);
    for (const [b, s] of [[body, sig], [body + " ", sig], [body, tamper(sig, 3)]]) {
      assert.equal(
        await verifyWebhookSignature(b, s, [secret]),
        validateWebhookSignature(b, s, secret),
        `${b} / ${s}`,
      );
    }
  }
});

Deno.test("webhook signature: the official vector, and a previous secret during rotation", async () => {
  const body = VECTORS[0].message;
  assert.equal(await verifyWebhookSignature(body, VECTORS[0].hex, ["123456"]), true);
  assert.equal(await verifyWebhookSignature(body, VECTORS[0].hex, ["new-secret", "123456"]), true);
  assert.equal(await verifyWebhookSignature(body, VECTORS[0].hex, ["new-secret"]), false);
  assert.equal(await verifyWebhookSignature(body + "\n", VECTORS[0].hex, ["123456"]), false);
});

Deno.test("timingSafeEqual is exact", () => {
  assert.equal(timingSafeEqual("abc", "abc"), true);
  assert.equal(timingSafeEqual("abc", "abd"), false);
  assert.equal(timingSafeEqual("abc", "abcd"), false);
  assert.equal(timingSafeEqual("", ""), true);
});

Deno.test("gateway.parseWebhook rejects missing and forged signatures before parsing", async () => {
  const gw = createRazorpayGateway({
    keyId: "rzp_test_x",
    keySecret: "key-secret",
    webhookSecrets: ["hook-secret"],
    apiUrl: "http://127.0.0.1:9",
    timeoutMs: 100,
  });
  const body = JSON.stringify({
    entity: "event",
    event: "payment.captured",
    created_at: 1700000000,
    payload: {
      payment: {
        entity: {
          id: "pay_AAAAAAAAAAAAAA",
          amount: 50000,
          currency: "INR",
          status: "captured",
          captured: true,
          order_id: "order_BBBBBBBBBBBBBB",
        },
      },
    },
  });
  const sig = await hmacSha256Hex("hook-secret", body);
  const rejects = async (headers: Record<string, string>, b = body) => {
    await assert.rejects(
      gw.parseWebhook(b, new Headers(headers)),
      (e: unknown) => e instanceof HttpError && e.code === "invalid_signature",
    );
  };
  await rejects({});
  await rejects({ "x-razorpay-signature": await hmacSha256Hex("key-secret", body) });
  await rejects({ "x-razorpay-signature": sig }, body.replace("50000", "50001"));

  const [routed] = await gw.parseWebhook(
    body,
    new Headers({ "x-razorpay-signature": sig, "x-razorpay-event-id": "evt_1" }),
  );
  assert.equal(routed.route, "payment");
  const event = routed.event;
  assert.deepEqual(
    {
      id: event.eventId,
      kind: event.kind,
      order: event.gatewayOrderId,
      amount: event.amount,
      currency: event.currency,
    },
    {
      id: "evt_1",
      kind: "captured",
      order: "order_BBBBBBBBBBBBBB",
      amount: 50000,
      currency: "INR",
    },
  );
  // Without an event id header the body's hash is the identity: duplicates still collapse.
  const [{ event: a }] = await gw.parseWebhook(body, new Headers({ "x-razorpay-signature": sig }));
  const [{ event: b }] = await gw.parseWebhook(body, new Headers({ "x-razorpay-signature": sig }));
  assert.equal(a.eventId, b.eventId);
  assert.match(a.eventId, /^body:[0-9a-f]{64}$/);
});
