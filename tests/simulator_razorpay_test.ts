// Checks the Razorpay simulator against Razorpay's wire formats and the official SDK's own validators.
import assert from "node:assert/strict";
import Razorpay from "razorpay";
import {
  validatePaymentVerification,
  validateWebhookSignature,
} from "razorpay/dist/utils/razorpay-utils.js";
import { razorpayHmacHex, RazorpaySimulator } from "../dev/simulator/razorpay/mod.ts";
import {
  type HarnessOpts,
  harnessTests,
  hookReceiver,
  type Json,
  jsonReply,
  serveSimulator,
  stopHarness,
} from "./support/simharness.ts";

const KEY_ID = "rzp_test_settle0000000001";
const KEY_SECRET = "sim_key_secret_for_tests_01";
const WEBHOOK_SECRET = "sim_webhook_secret_for_tests_01";
const AUTH = `Basic ${btoa(`${KEY_ID}:${KEY_SECRET}`)}`;
// Mounted under a prefix, like the dev server does, so prefix stripping is exercised too.
const PREFIX = "/razorpay";

interface Hook {
  body: string;
  signature: string | null;
  eventId: string | null;
  event: string;
}

function startHarness(opts: HarnessOpts = {}) {
  const receiver = hookReceiver((req, body): Hook => ({
    body,
    signature: req.headers.get("x-razorpay-signature"),
    eventId: req.headers.get("x-razorpay-event-id"),
    event: JSON.parse(body).event,
  }), opts.hookStatus);
  const sim = new RazorpaySimulator({
    keyId: KEY_ID,
    keySecret: KEY_SECRET,
    webhookSecret: WEBHOOK_SECRET,
    webhookUrl: receiver.url("/hooks/razorpay"),
  });
  const served = serveSimulator((req) => {
    const url = new URL(req.url);
    if (!url.pathname.startsWith(`${PREFIX}/`)) {
      return Promise.resolve(new Response("not mounted", { status: 404 }));
    }
    url.pathname = url.pathname.slice(PREFIX.length);
    return sim.fetch(new Request(url, req));
  });
  const base = `http://127.0.0.1:${served.port}${PREFIX}`;

  async function call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; json: Json; headers: Headers }> {
    const res = await fetch(base + path, {
      method,
      headers: {
        ...(path.startsWith("/v1") ? { authorization: AUTH } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    return await jsonReply(res);
  }

  async function createOrder(body: Json = { amount: 50000, currency: "INR", receipt: "r1" }) {
    const r = await call("POST", "/v1/orders", body);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json;
  }

  return {
    sim,
    base,
    hooks: receiver.hooks,
    inflight: served.inflight,
    call,
    createOrder,
    close: () => stopHarness(sim, served.server, receiver.server),
  };
}

type Harness = ReturnType<typeof startHarness>;
const withHarness = harnessTests(startHarness);

const ID14 = /^[A-Za-z0-9]{14}$/;

Deno.test("razorpayHmacHex reproduces the official razorpay-node vectors (GATEWAY_FACTS A8)", () => {
  assert.equal(
    razorpayHmacHex("123456", '{"a":1,"b":2,"c":{"d":3}}'),
    "2fe04e22977002e6c7cb553adab8b460cb9e2a4970d5953cb27a8472752e3bbc",
  );
  const secret = "EnLs21M47BllR3X8PSFtjtbd";
  assert.equal(
    razorpayHmacHex(secret, "order_IEIaMR65cu6nz3|pay_IH4NVgf4Dreq1l"),
    "0d4e745a1838664ad6c9c9902212a32d627d68e917290b0ad5f08ff4561bc50f",
  );
  assert.equal(
    razorpayHmacHex(secret, "pay_IDZNwZZFtnjyym|sub_ID6MOhgkcoHj9I"),
    "601f383334975c714c91a7d97dd723eb56520318355863dcf3821c0d07a17693",
  );
  assert.equal(
    razorpayHmacHex(secret, "plink_IH3cNucfVEgV68|TSsd1989|paid|pay_IH3d0ara9bSsjQ"),
    "07ae18789e35093e51d0a491eb9922646f3f82773547e5b0f67ee3f2d3bf7d5b",
  );
});

withHarness("orders: create, fetch and Razorpay-shaped validation errors", async (h) => {
  const order = await h.createOrder({
    amount: 50000,
    currency: "INR",
    receipt: "rcpt#1",
    notes: { k: "v" },
  });
  assert.match(order.id, /^order_/);
  assert.match(order.id.slice(6), ID14);
  const { id: _id, created_at, ...rest } = order;
  assert.equal(typeof created_at, "number");
  assert.ok(Math.abs(created_at - Date.now() / 1000) < 5);
  assert.deepEqual(rest, {
    entity: "order",
    amount: 50000,
    amount_paid: 0,
    amount_due: 50000,
    currency: "INR",
    receipt: "rcpt#1",
    offer_id: null,
    status: "created",
    attempts: 0,
    notes: { k: "v" },
  });
  const bare = await h.createOrder({ amount: 100, currency: "INR" });
  assert.deepEqual(bare.notes, []);
  assert.equal(bare.receipt, null);

  const fetched = await h.call("GET", `/v1/orders/${order.id}`);
  assert.deepEqual(fetched.json, order);

  const fractional = await h.call("POST", "/v1/orders", { amount: 100.5, currency: "INR" });
  assert.equal(fractional.status, 400);
  assert.equal(fractional.json.error.code, "BAD_REQUEST_ERROR");
  assert.equal(fractional.json.error.description, "The amount must be an integer");
  assert.equal(fractional.json.error.field, "amount");

  const low = await h.call("POST", "/v1/orders", { amount: 99, currency: "INR" });
  assert.equal(low.status, 400);
  assert.deepEqual(low.json, {
    error: {
      code: "BAD_REQUEST_ERROR",
      description: "The amount must be at least INR 1.00",
      source: "business",
      step: "payment_initiation",
      reason: "input_validation_failed",
      metadata: {},
      field: "amount",
    },
  });

  const cur = await h.call("POST", "/v1/orders", { amount: 1000, currency: "XYZ" });
  assert.equal(cur.status, 400);
  assert.equal(cur.json.error.field, "currency");

  assert.equal((await h.call("POST", "/v1/orders", { amount: 1, currency: "JPY" })).status, 200);
  const kwd = await h.call("POST", "/v1/orders", { amount: 1001, currency: "KWD" });
  assert.equal(kwd.status, 400);
  assert.equal((await h.call("POST", "/v1/orders", { amount: 1010, currency: "KWD" })).status, 200);
  assert.equal((await h.call("POST", "/v1/orders", { amount: 990, currency: "KWD" })).status, 400);

  const longReceipt = await h.call("POST", "/v1/orders", {
    amount: 100,
    currency: "INR",
    receipt: "x".repeat(41),
  });
  assert.equal(longReceipt.status, 400);
  assert.equal(longReceipt.json.error.field, "receipt");
  const notes = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, "v"]));
  assert.equal(
    (await h.call("POST", "/v1/orders", { amount: 100, currency: "INR", notes })).status,
    400,
  );
  const longNote = { amount: 100, currency: "INR", notes: { k: "x".repeat(257) } };
  assert.equal((await h.call("POST", "/v1/orders", longNote)).status, 400);
  const extra = await h.call("POST", "/v1/orders", { amount: 100, currency: "INR", colour: "red" });
  assert.equal(extra.status, 400);
  assert.equal(extra.json.error.description, "colour is/are not required and should not be sent");

  const invalidKey = {
    error: {
      code: "BAD_REQUEST_ERROR",
      description: "The api key provided is invalid",
      source: "NA",
      step: "NA",
      reason: "NA",
      metadata: {},
      field: null,
    },
  };
  const badAuth = await h.call("POST", "/v1/orders", { amount: 100, currency: "INR" }, {
    authorization: `Basic ${btoa(`${KEY_ID}:wrong`)}`,
  });
  assert.equal(badAuth.status, 401);
  assert.deepEqual(badAuth.json, invalidKey);
  const lowerBasic = await h.call("GET", `/v1/orders/${order.id}`, undefined, {
    authorization: AUTH.replace("Basic", "basic"),
  });
  assert.equal(lowerBasic.status, 401);
  const noAuth = await fetch(`${h.base}/v1/orders/${order.id}`);
  assert.equal(noAuth.status, 401);
  assert.deepEqual(await noAuth.json(), invalidKey);

  const missing = await h.call("GET", "/v1/orders/order_DoesNotExist00");
  assert.equal(missing.status, 400);
  assert.equal(missing.json.error.description, "The id provided does not exist");
  const route = await h.call("GET", "/v1/nothing-here");
  assert.equal(route.status, 404);
  assert.equal(route.json.error.description, "The requested URL was not found on the server.");
  assert.equal((await h.call("GET", "/elsewhere")).status, 404);
});

withHarness("orders: list with receipt filter and paging", async (h) => {
  const a = await h.createOrder({ amount: 100, currency: "INR", receipt: "match-me" });
  await h.createOrder({ amount: 200, currency: "INR", receipt: "match-me-not" });
  const c = await h.createOrder({ amount: 300, currency: "INR", receipt: "match-me" });
  const filtered = await h.call("GET", "/v1/orders?receipt=match-me");
  assert.equal(filtered.json.entity, "collection");
  assert.equal(filtered.json.count, 2);
  assert.deepEqual(filtered.json.items.map((o: Json) => o.id), [c.id, a.id]);
  const page = await h.call("GET", "/v1/orders?count=1&skip=1");
  assert.equal(page.json.count, 1);
  assert.equal(page.json.items[0].receipt, "match-me-not");
  assert.equal((await h.call("GET", "/v1/orders?count=101")).status, 400);
  const future = Math.floor(Date.now() / 1000) + 3600;
  assert.equal((await h.call("GET", `/v1/orders?from=${future}`)).json.count, 0);
});

withHarness("pay success: Checkout signature and signed webhooks in order", async (h) => {
  const order = await h.createOrder();
  const pay = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, { outcome: "success" });
  assert.equal(pay.status, 200);
  assert.deepEqual(Object.keys(pay.json).sort(), [
    "razorpay_order_id",
    "razorpay_payment_id",
    "razorpay_signature",
  ]);
  assert.equal(pay.json.razorpay_order_id, order.id);
  assert.match(pay.json.razorpay_payment_id, /^pay_[A-Za-z0-9]{14}$/);
  assert.equal(
    validatePaymentVerification(
      { order_id: order.id, payment_id: pay.json.razorpay_payment_id },
      pay.json.razorpay_signature,
      KEY_SECRET,
    ),
    true,
  );
  assert.equal(pay.headers.get("access-control-allow-origin"), "*");

  const o = (await h.call("GET", `/v1/orders/${order.id}`)).json;
  assert.equal(o.status, "paid");
  assert.equal(o.amount_paid, 50000);
  assert.equal(o.amount_due, 0);
  assert.equal(o.attempts, 1);
  const p = (await h.call("GET", `/v1/payments/${pay.json.razorpay_payment_id}`)).json;
  assert.equal(p.status, "captured");
  assert.equal(p.captured, true);
  assert.equal(p.order_id, order.id);
  assert.equal(p.amount, 50000);
  assert.equal(p.error_code, null);
  assert.equal(p.fee, 1180);
  assert.equal(p.tax, 180);

  await h.sim.idle();
  assert.deepEqual(h.hooks.map((x) => x.event), [
    "payment.authorized",
    "payment.captured",
    "order.paid",
  ]);
  for (const hook of h.hooks) {
    assert.ok(hook.signature);
    assert.equal(validateWebhookSignature(hook.body, hook.signature, WEBHOOK_SECRET), true);
    assert.equal(validateWebhookSignature(hook.body, hook.signature, KEY_SECRET), false);
    assert.match(hook.eventId ?? "", /^evt_[A-Za-z0-9]{14}$/);
  }
  assert.equal(new Set(h.hooks.map((x) => x.eventId)).size, 3);
  const [authorized, captured, paid] = h.hooks.map((x) => JSON.parse(x.body));
  assert.equal(authorized.entity, "event");
  assert.equal(authorized.account_id, "acc_SettleSim00001");
  assert.deepEqual(authorized.contains, ["payment"]);
  assert.equal(authorized.payload.payment.entity.captured, false);
  assert.equal(authorized.payload.payment.entity.status, "authorized");
  assert.equal(captured.payload.payment.entity.status, "captured");
  assert.deepEqual(paid.contains, ["payment", "order"]);
  assert.equal(paid.payload.order.entity.status, "paid");
  assert.equal(paid.payload.payment.entity.id, pay.json.razorpay_payment_id);

  const events = (await h.call("GET", `/_sim/razorpay/events?order_id=${order.id}`)).json.events;
  assert.deepEqual(
    events.map((e: Json) => [e.event_id, e.body, e.signature]),
    h.hooks.map((x) => [x.eventId, x.body, x.signature]),
  );
  const deliveries = (await h.call("GET", "/_sim/razorpay/deliveries")).json.deliveries;
  assert.equal(deliveries.length, 3);
  assert.ok(deliveries.every((d: Json) => d.status === 200 && d.error === null));

  const again = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, {
    outcome: "success",
  });
  assert.equal(again.status, 400);
  const payments = (await h.call("GET", `/v1/orders/${order.id}/payments`)).json;
  assert.equal(payments.count, 1);
});

withHarness(
  "webhooks: duplicates share ids and bodies, reorder reverses, deliver:false only records",
  async (h) => {
    const first = await h.createOrder();
    await h.call("POST", `/_sim/razorpay/orders/${first.id}/pay`, {
      outcome: "success",
      webhooks: { duplicate: 2 },
    });
    await h.sim.idle();
    assert.equal(h.hooks.length, 9);
    const byId = Map.groupBy(h.hooks, (x) => x.eventId);
    assert.equal(byId.size, 3);
    for (const copies of byId.values()) {
      assert.equal(copies.length, 3);
      assert.equal(new Set(copies.map((c) => c.body)).size, 1);
      assert.equal(new Set(copies.map((c) => c.signature)).size, 1);
    }
    assert.deepEqual([...new Set(h.hooks.map((x) => x.event))], [
      "payment.authorized",
      "payment.captured",
      "order.paid",
    ]);

    h.hooks.length = 0;
    const second = await h.createOrder();
    await h.call("POST", `/_sim/razorpay/orders/${second.id}/pay`, {
      outcome: "success",
      webhooks: { reorder: true, delay_ms: 20 },
    });
    await h.sim.idle();
    assert.deepEqual(h.hooks.map((x) => x.event), [
      "order.paid",
      "payment.captured",
      "payment.authorized",
    ]);

    h.hooks.length = 0;
    const third = await h.createOrder();
    await h.call("POST", `/_sim/razorpay/orders/${third.id}/pay`, {
      outcome: "success",
      webhooks: { deliver: false },
    });
    const fourth = await h.createOrder();
    await h.call("POST", `/_sim/razorpay/orders/${fourth.id}/pay`, {
      outcome: "success",
      webhooks: { drop: true },
    });
    await h.sim.idle();
    assert.equal(h.hooks.length, 0);
    const recorded =
      (await h.call("GET", `/_sim/razorpay/events?order_id=${third.id}`)).json.events;
    assert.equal(recorded.length, 3);
    for (const e of recorded) {
      assert.equal(validateWebhookSignature(e.body, e.signature, WEBHOOK_SECRET), true);
    }
    const deliveries = (await h.call("GET", "/_sim/razorpay/deliveries")).json.deliveries;
    assert.equal(deliveries.filter((d: Json) => d.error === "dropped").length, 3);
  },
);

withHarness("pay failure, then a successful retry on the same order", async (h) => {
  const order = await h.createOrder();
  const failed = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, {
    outcome: "failure",
  });
  assert.equal(failed.status, 200);
  const failedPaymentId = failed.json.error.metadata.payment_id;
  assert.deepEqual(failed.json, {
    error: {
      code: "BAD_REQUEST_ERROR",
      description: "Payment failed",
      source: "customer",
      step: "payment_authorization",
      reason: "payment_failed",
      metadata: { payment_id: failedPaymentId, order_id: order.id },
    },
  });
  const attempted = (await h.call("GET", `/v1/orders/${order.id}`)).json;
  assert.equal(attempted.status, "attempted");
  assert.equal(attempted.attempts, 1);
  const fp = (await h.call("GET", `/v1/payments/${failedPaymentId}`)).json;
  assert.equal(fp.status, "failed");
  assert.equal(fp.error_reason, "payment_failed");
  assert.equal(fp.error_source, "customer");
  await h.sim.idle();
  assert.deepEqual(h.hooks.map((x) => x.event), ["payment.failed"]);

  const ok = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, { outcome: "success" });
  assert.equal(ok.status, 200);
  const paid = (await h.call("GET", `/v1/orders/${order.id}`)).json;
  assert.equal(paid.status, "paid");
  assert.equal(paid.attempts, 2);
  const payments = (await h.call("GET", `/v1/orders/${order.id}/payments`)).json;
  assert.equal(payments.count, 2);
  assert.deepEqual(payments.items.map((p: Json) => p.status).sort(), ["captured", "failed"]);
});

withHarness("manual capture: authorized until captured, amount must match", async (h) => {
  const order = await h.createOrder();
  const pay = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, {
    outcome: "success",
    capture: false,
  });
  const paymentId = pay.json.razorpay_payment_id;
  const p = (await h.call("GET", `/v1/payments/${paymentId}`)).json;
  assert.equal(p.status, "authorized");
  assert.equal(p.fee, null);
  assert.equal((await h.call("GET", `/v1/orders/${order.id}`)).json.status, "attempted");
  const refundEarly = await h.call("POST", `/v1/payments/${paymentId}/refund`, {});
  assert.equal(refundEarly.status, 400);

  const wrong = await h.call("POST", `/v1/payments/${paymentId}/capture`, {
    amount: 100,
    currency: "INR",
  });
  assert.equal(wrong.status, 400);
  const cap = await h.call("POST", `/v1/payments/${paymentId}/capture`, {
    amount: 50000,
    currency: "INR",
  });
  assert.equal(cap.status, 200);
  assert.equal(cap.json.status, "captured");
  assert.equal((await h.call("GET", `/v1/orders/${order.id}`)).json.status, "paid");
  const twice = await h.call("POST", `/v1/payments/${paymentId}/capture`, {
    amount: 50000,
    currency: "INR",
  });
  assert.equal(twice.status, 400);
  await h.sim.idle();
  assert.deepEqual(h.hooks.map((x) => x.event), [
    "payment.authorized",
    "payment.captured",
    "order.paid",
  ]);
});

withHarness("orders: the payment capture settings are validated as documented", async (h) => {
  const base = { amount: 50000, currency: "INR" };
  for (
    const [payment, field] of [
      ["automatic", "payment"],
      [{ capture: "sometimes" }, "payment.capture"],
      [{ capture: "automatic", capture_options: {} }, "automatic_expiry_period"],
      [
        { capture: "automatic", capture_options: { automatic_expiry_period: 11 } },
        "automatic_expiry_period",
      ],
      [
        { capture: "manual", capture_options: { manual_expiry_period: 7201 } },
        "manual_expiry_period",
      ],
      [
        {
          capture: "automatic",
          capture_options: { automatic_expiry_period: 60, manual_expiry_period: 30 },
        },
        "manual_expiry_period",
      ],
      [
        {
          capture: "automatic",
          capture_options: { automatic_expiry_period: 12, refund_speed: "x" },
        },
        "refund_speed",
      ],
    ] as const
  ) {
    const r = await h.call("POST", "/v1/orders", { ...base, payment });
    assert.equal(r.status, 400, JSON.stringify(payment));
    assert.equal(r.json.error.field, field, JSON.stringify(r.json));
  }
  const ok = await h.call("POST", "/v1/orders", {
    ...base,
    payment: {
      capture: "automatic",
      capture_options: {
        automatic_expiry_period: 12,
        manual_expiry_period: 7200,
        refund_speed: "optimum",
      },
    },
  });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  assert.equal("payment" in ok.json, false, "the order entity does not echo its capture settings");
});

withHarness(
  "capture settings: the order's win over the account's; late authorizations wait",
  async (h) => {
    const statusAfterPay = async (order: Json, pay: Json = {}) => {
      const r = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, {
        outcome: "success",
        ...pay,
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      return (await h.call("GET", `/v1/payments/${r.json.razorpay_payment_id}`)).json.status;
    };
    const automatic = (minutes: number) => ({
      amount: 50000,
      currency: "INR",
      payment: { capture: "automatic", capture_options: { automatic_expiry_period: minutes } },
    });
    // Razorpay's default account setting captures automatically.
    assert.equal(await statusAfterPay(await h.createOrder()), "captured");
    const cfg = await h.call("POST", "/_sim/razorpay/config", { account_capture: "manual" });
    assert.equal(cfg.json.account_capture, "manual");
    assert.equal(
      (await h.call("POST", "/_sim/razorpay/config", { account_capture: "x" })).status,
      400,
    );
    assert.equal(await statusAfterPay(await h.createOrder()), "authorized");
    assert.equal(await statusAfterPay(await h.createOrder(automatic(12))), "captured");
    assert.equal(
      await statusAfterPay(
        await h.createOrder({ amount: 50000, currency: "INR", payment: { capture: "automatic" } }),
      ),
      "captured",
    );
    // Authorized 30 minutes after the payment began: past a 12-minute automatic window.
    assert.equal(
      await statusAfterPay(await h.createOrder(automatic(12)), { authorized_after_minutes: 30 }),
      "authorized",
    );
    assert.equal(
      await statusAfterPay(await h.createOrder(automatic(60)), { authorized_after_minutes: 30 }),
      "captured",
    );
    await h.call("POST", "/_sim/razorpay/config", { account_capture: "automatic" });
    assert.equal(
      await statusAfterPay(
        await h.createOrder({ amount: 50000, currency: "INR", payment: { capture: "manual" } }),
      ),
      "authorized",
    );
    // The explicit capture:false outcome stays an authorization whatever the settings.
    assert.equal(
      await statusAfterPay(await h.createOrder(automatic(12)), { capture: false }),
      "authorized",
    );
  },
);

withHarness(
  "auto-refund: an uncaptured authorization is given back, with refund webhooks",
  async (h) => {
    const order = await h.createOrder({
      amount: 50000,
      currency: "INR",
      payment: { capture: "manual", capture_options: { refund_speed: "optimum" } },
    });
    const pay = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, {
      outcome: "success",
    });
    const paymentId = pay.json.razorpay_payment_id;
    const r = await h.call("POST", `/_sim/razorpay/payments/${paymentId}/auto-refund`, {});
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const p = (await h.call("GET", `/v1/payments/${paymentId}`)).json;
    assert.deepEqual(
      [p.status, p.captured, p.amount_refunded, p.refund_status, p.fee],
      ["refunded", false, 50000, "full", null],
    );
    assert.equal((await h.call("GET", `/v1/orders/${order.id}`)).json.status, "attempted");
    const refunds = (await h.call("GET", `/v1/payments/${paymentId}/refunds`)).json;
    assert.deepEqual(
      refunds.items.map((x: Json) => [x.amount, x.status, x.speed_requested]),
      [[50000, "processed", "optimum"]],
    );
    // Nothing left to capture, refund or give back again.
    const capture = await h.call("POST", `/v1/payments/${paymentId}/capture`, {
      amount: 50000,
      currency: "INR",
    });
    assert.equal(capture.status, 400);
    assert.equal(
      (await h.call("POST", `/_sim/razorpay/payments/${paymentId}/auto-refund`, {})).status,
      400,
    );
    await h.sim.idle();
    assert.deepEqual(h.hooks.map((x) => x.event), [
      "payment.authorized",
      "refund.created",
      "refund.processed",
    ]);
    for (const hook of h.hooks.slice(1)) {
      const body = JSON.parse(hook.body);
      assert.deepEqual(body.contains, ["refund", "payment"]);
      assert.equal(body.payload.payment.entity.captured, false);
      assert.equal(body.payload.payment.entity.status, "refunded");
      assert.equal(body.payload.refund.entity.payment_id, paymentId);
      assert.ok(validateWebhookSignature(hook.body, hook.signature!, WEBHOOK_SECRET));
    }
    // A captured payment is never auto-refunded.
    const paid = await h.createOrder();
    const done = await h.call("POST", `/_sim/razorpay/orders/${paid.id}/pay`, {
      outcome: "success",
    });
    const again = await h.call(
      "POST",
      `/_sim/razorpay/payments/${done.json.razorpay_payment_id}/auto-refund`,
      {},
    );
    assert.equal(again.status, 400);
  },
);

withHarness("refunds: idempotency replay, 409 on a changed body, over-refund 400", async (h) => {
  const order = await h.createOrder();
  const pay = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, { outcome: "success" });
  const paymentId = pay.json.razorpay_payment_id;
  await h.sim.idle();
  h.hooks.length = 0;

  const key = { "x-refund-idempotency": "refund-key-0001" };
  const first = await h.call("POST", `/v1/payments/${paymentId}/refund`, { amount: 20000 }, key);
  assert.equal(first.status, 200);
  assert.match(first.json.id, /^rfnd_[A-Za-z0-9]{14}$/);
  const { id: _id, created_at: _c, ...rest } = first.json;
  assert.deepEqual(rest, {
    entity: "refund",
    amount: 20000,
    currency: "INR",
    payment_id: paymentId,
    notes: [],
    receipt: null,
    acquirer_data: { arn: null },
    batch_id: null,
    status: "processed",
    speed_processed: "normal",
    speed_requested: "normal",
  });
  const replay = await h.call("POST", `/v1/payments/${paymentId}/refund`, { amount: 20000 }, key);
  assert.equal(replay.status, 200);
  assert.deepEqual(replay.json, first.json);
  const conflict = await h.call("POST", `/v1/payments/${paymentId}/refund`, { amount: 20100 }, key);
  assert.equal(conflict.status, 409);
  const badKey = await h.call("POST", `/v1/payments/${paymentId}/refund`, { amount: 100 }, {
    "x-refund-idempotency": "short",
  });
  assert.equal(badKey.status, 400);

  const partial = (await h.call("GET", `/v1/payments/${paymentId}`)).json;
  assert.equal(partial.amount_refunded, 20000);
  assert.equal(partial.refund_status, "partial");
  assert.equal(partial.status, "captured");

  const over = await h.call("POST", `/v1/payments/${paymentId}/refund`, { amount: 30001 });
  assert.equal(over.status, 400);
  const tiny = await h.call("POST", `/v1/payments/${paymentId}/refund`, { amount: 99 });
  assert.equal(tiny.status, 400);
  const frac = await h.call("POST", `/v1/payments/${paymentId}/refund`, { amount: 150.5 });
  assert.equal(frac.status, 400);

  const rest2 = await h.call("POST", `/v1/payments/${paymentId}/refund`, {
    speed: "optimum",
    notes: { why: "x" },
  });
  assert.equal(rest2.status, 200);
  assert.equal(rest2.json.amount, 30000);
  assert.equal(rest2.json.speed_requested, "optimum");
  const full = (await h.call("GET", `/v1/payments/${paymentId}`)).json;
  assert.equal(full.status, "refunded");
  assert.equal(full.refund_status, "full");
  assert.equal(full.amount_refunded, 50000);
  assert.equal((await h.call("GET", `/v1/orders/${order.id}`)).json.status, "paid");
  assert.equal((await h.call("POST", `/v1/payments/${paymentId}/refund`, {})).status, 400);

  assert.deepEqual((await h.call("GET", `/v1/refunds/${first.json.id}`)).json, first.json);
  const list = (await h.call("GET", `/v1/payments/${paymentId}/refunds`)).json;
  assert.equal(list.count, 2);

  await h.sim.idle();
  assert.deepEqual(h.hooks.map((x) => x.event), [
    "refund.created",
    "refund.processed",
    "refund.created",
    "refund.processed",
  ]);
  const processed = JSON.parse(h.hooks[3].body);
  assert.deepEqual(processed.contains, ["refund", "payment"]);
  assert.equal(processed.payload.payment.entity.refund_status, "full");
  assert.equal(processed.payload.refund.entity.id, rest2.json.id);
});

withHarness("refunds: the fail control gives the money back and sends refund.failed", async (h) => {
  const order = await h.createOrder();
  const pay = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, { outcome: "success" });
  const paymentId = pay.json.razorpay_payment_id;
  const part = await h.call("POST", `/v1/payments/${paymentId}/refund`, { amount: 10000 });
  const rest = await h.call("POST", `/v1/payments/${paymentId}/refund`, {});
  assert.equal(rest.json.amount, 40000);
  await h.sim.idle();
  h.hooks.length = 0;

  const failed = await h.call("POST", `/_sim/razorpay/refunds/${rest.json.id}/fail`, {});
  assert.equal(failed.status, 200, JSON.stringify(failed.json));
  assert.equal(failed.json.status, "failed");
  assert.equal((await h.call("GET", `/v1/refunds/${rest.json.id}`)).json.status, "failed");
  const p = (await h.call("GET", `/v1/payments/${paymentId}`)).json;
  assert.deepEqual([p.status, p.amount_refunded, p.refund_status], ["captured", 10000, "partial"]);
  await h.sim.idle();
  assert.deepEqual(h.hooks.map((x) => x.event), ["refund.failed"]);
  assert.equal(h.hooks[0].signature, razorpayHmacHex(WEBHOOK_SECRET, h.hooks[0].body));
  const event = JSON.parse(h.hooks[0].body);
  assert.deepEqual(event.contains, ["refund", "payment"]);
  assert.equal(event.payload.refund.entity.id, rest.json.id);
  assert.equal(event.payload.refund.entity.status, "failed");
  assert.equal(event.payload.payment.entity.amount_refunded, 10000);

  // Once only; unknown ids are Razorpay's 400; what came back can be refunded again.
  const twice = await h.call("POST", `/_sim/razorpay/refunds/${rest.json.id}/fail`, {});
  assert.equal(twice.status, 400);
  const unknown = await h.call("POST", "/_sim/razorpay/refunds/rfnd_NoSuchRefund00/fail", {});
  assert.equal(unknown.status, 400);
  const again = await h.call("POST", `/v1/payments/${paymentId}/refund`, { amount: 40000 });
  assert.equal(again.status, 200, JSON.stringify(again.json));
  const firstFailed = await h.call("POST", `/_sim/razorpay/refunds/${part.json.id}/fail`, {
    webhooks: { deliver: false },
  });
  assert.equal(firstFailed.status, 200);
  const after = (await h.call("GET", `/v1/payments/${paymentId}`)).json;
  assert.deepEqual([after.status, after.amount_refunded, after.refund_status], [
    "captured",
    40000,
    "partial",
  ]);
});

withHarness(
  "faults: error_500 once, reset, timeout honouring the client abort, reset_after",
  async (h) => {
    const set = await h.call("POST", "/_sim/razorpay/faults", {
      faults: [{ method: "POST", path: "/v1/orders", mode: "error_500", count: 1 }],
    });
    assert.equal(set.status, 200);
    const failed = await h.call("POST", "/v1/orders", { amount: 100, currency: "INR" });
    assert.equal(failed.status, 500);
    assert.equal(failed.json.error.code, "SERVER_ERROR");
    assert.equal(
      (await h.call("POST", "/v1/orders", { amount: 100, currency: "INR" })).status,
      200,
    );

    await h.call("POST", "/_sim/razorpay/faults", {
      faults: [{ path: "/v1/orders", mode: "reset" }],
    });
    await assert.rejects(
      () => h.call("POST", "/v1/orders", { amount: 100, currency: "INR" }),
      TypeError,
    );

    await h.call("POST", "/_sim/razorpay/faults", {
      faults: [{ method: "GET", path: "/v1/orders/*", mode: "timeout", hold_ms: 10_000 }],
    });
    const started = Date.now();
    await assert.rejects(
      () =>
        fetch(`${h.base}/v1/orders/order_x`, {
          headers: { authorization: AUTH },
          signal: AbortSignal.timeout(150),
        }),
    );
    assert.equal(h.inflight(), 1);
    // The held request must end with the client's abort, long before hold_ms.
    while (h.inflight() > 0 && Date.now() - started < 5000) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(h.inflight(), 0);
    assert.ok(Date.now() - started < 3000);

    const before = (await h.call("GET", "/v1/orders")).json.count;
    await h.call("POST", "/_sim/razorpay/faults", {
      faults: [{ path: "/v1/orders", mode: "reset_after" }],
    });
    await assert.rejects(
      () => h.call("POST", "/v1/orders", { amount: 100, currency: "INR" }),
      TypeError,
    );
    assert.equal((await h.call("GET", "/v1/orders")).json.count, before + 1);

    await h.call("POST", "/_sim/razorpay/faults", { faults: [{ mode: "error_503", count: 5 }] });
    assert.equal((await h.call("GET", "/v1/orders")).status, 503);
    assert.equal((await h.call("GET", "/_sim/razorpay/faults")).json.faults[0].count, 4);
    await h.call("DELETE", "/_sim/razorpay/faults");
    assert.equal((await h.call("GET", "/v1/orders")).status, 200);
  },
);

withHarness(
  "fail-late emits payment.failed for a captured payment without changing it",
  async (h) => {
    const order = await h.createOrder();
    const pay = await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, {
      outcome: "success",
    });
    const paymentId = pay.json.razorpay_payment_id;
    // Separate triggers deliver independently, so let the pay batch land first to make "late" true.
    await h.sim.idle();
    const late = await h.call("POST", `/_sim/razorpay/payments/${paymentId}/fail-late`);
    assert.equal(late.status, 200);
    assert.match(late.json.event_id, /^evt_/);
    await h.sim.idle();
    const last = h.hooks.at(-1)!;
    assert.equal(last.event, "payment.failed");
    assert.equal(last.eventId, late.json.event_id);
    const snapshot = JSON.parse(last.body).payload.payment.entity;
    assert.equal(snapshot.id, paymentId);
    assert.equal(snapshot.status, "failed");
    assert.equal(snapshot.error_reason, "payment_failed");
    assert.equal((await h.call("GET", `/v1/payments/${paymentId}`)).json.status, "captured");
    assert.equal((await h.call("GET", `/v1/orders/${order.id}`)).json.status, "paid");
  },
);

withHarness("control surface: CORS preflight, config and recorded delivery failures", async (h) => {
  const pre = await fetch(`${h.base}/_sim/razorpay/orders/order_x/pay`, {
    method: "OPTIONS",
    headers: { origin: "http://localhost:3000", "access-control-request-headers": "content-type" },
  });
  await pre.body?.cancel();
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);

  const cfg = await h.call("POST", "/_sim/razorpay/config", { webhook_url: null });
  assert.equal(cfg.json.webhook_url, null);
  const order = await h.createOrder();
  await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, { outcome: "success" });
  await h.sim.idle();
  assert.equal(h.hooks.length, 0);
  const deliveries = (await h.call("GET", "/_sim/razorpay/deliveries")).json.deliveries;
  assert.deepEqual(deliveries.map((d: Json) => [d.status, d.error]), [
    [null, "no webhook_url configured"],
    [null, "no webhook_url configured"],
    [null, "no webhook_url configured"],
  ]);
  const unknown = await h.call("POST", "/_sim/razorpay/orders/order_missing/pay", {
    outcome: "success",
  });
  assert.equal(unknown.status, 400);
  assert.equal(unknown.headers.get("access-control-allow-origin"), "*");
});

withHarness("webhook endpoint answering 500 is recorded, not thrown", async (h) => {
  const order = await h.createOrder();
  await h.call("POST", `/_sim/razorpay/orders/${order.id}/pay`, { outcome: "failure" });
  await h.sim.idle();
  assert.equal(h.hooks.length, 1);
  const deliveries = (await h.call("GET", "/_sim/razorpay/deliveries")).json.deliveries;
  assert.equal(deliveries[0].status, 500);
  assert.equal(deliveries[0].type, "payment.failed");
  assert.match(deliveries[0].error, /500/);
}, { hookStatus: 500 });

withHarness("the official razorpay SDK talks to the simulator", async (h) => {
  const rzp = new Razorpay({ key_id: KEY_ID, key_secret: KEY_SECRET });
  // No base URL option exists in the SDK (GATEWAY_FACTS A9); this axios default is the known workaround.
  // deno-lint-ignore no-explicit-any
  (rzp as any).api.rq.defaults.baseURL = h.base;
  const order = await rzp.orders.create({ amount: 50000, currency: "INR", receipt: "sdk-1" });
  assert.match(order.id, /^order_/);
  assert.equal((await rzp.orders.fetch(order.id)).status, "created");
  await assert.rejects(
    () => rzp.orders.create({ amount: 99, currency: "INR" }),
    (err: Json) => {
      assert.equal(err.statusCode, 400);
      assert.equal(err.error.field, "amount");
      return true;
    },
  );
});

Deno.test("lists: GET /v1/payments and /v1/refunds page by from/to, count (max 100) and skip, newest first", async () => {
  // One second per payment: each has its own created_at.
  const t0 = 1_900_000_000;
  let now = t0 * 1000;
  const sim = new RazorpaySimulator({
    keyId: KEY_ID,
    keySecret: KEY_SECRET,
    webhookSecret: WEBHOOK_SECRET,
    nowMs: () => now,
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await sim.fetch(
      new Request(`http://sim${path}`, {
        method,
        headers: { authorization: AUTH, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    );
    return { status: res.status, json: await res.json() as Json };
  };
  const payments: string[] = [];
  const refunds: string[] = [];
  for (let i = 0; i < 120; i++) {
    now = (t0 + i) * 1000;
    const order = await call("POST", "/v1/orders", { amount: 10000 + i, currency: "INR" });
    const paid = await call("POST", `/_sim/razorpay/orders/${order.json.id}/pay`, {
      outcome: "success",
      webhooks: { deliver: false },
    });
    payments.push(paid.json.razorpay_payment_id);
    const r = await call("POST", `/v1/payments/${paid.json.razorpay_payment_id}/refund`, {
      amount: 100,
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    refunds.push(r.json.id);
  }
  const window = `from=${t0 + 10}&to=${t0 + 114}`;
  for (const [path, ids] of [["/v1/payments", payments], ["/v1/refunds", refunds]] as const) {
    const expected = ids.slice(10, 115).reverse();
    const first = await call("GET", `${path}?${window}&count=100`);
    assert.equal(first.status, 200);
    assert.equal(first.json.entity, "collection");
    assert.equal(first.json.count, 100);
    assert.deepEqual(first.json.items.map((x: Json) => x.id), expected.slice(0, 100));
    const second = await call("GET", `${path}?${window}&count=100&skip=100`);
    assert.equal(second.json.count, 5);
    assert.deepEqual(second.json.items.map((x: Json) => x.id), expected.slice(100));
    const past = await call("GET", `${path}?${window}&count=100&skip=105`);
    assert.deepEqual(past.json, { entity: "collection", count: 0, items: [] });
    // The default page is 10; from/to are inclusive.
    const dflt = await call("GET", `${path}?from=${t0 + 3}&to=${t0 + 3}`);
    assert.deepEqual(dflt.json.items.map((x: Json) => x.id), [ids[3]]);
    assert.equal((await call("GET", path)).json.count, 10);
    const tooMany = await call("GET", `${path}?count=101`);
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.json.error.field, "count");
    const notInt = await call("GET", `${path}?from=soon`);
    assert.equal(notInt.status, 400);
    assert.equal(notInt.json.error.field, "from");
  }
  // The refunded payment says so: the list shows each entity as it is now.
  const some = await call("GET", `/v1/payments?from=${t0}&to=${t0}`);
  assert.equal(some.json.items[0].amount_refunded, 100);
  assert.equal(some.json.items[0].captured, true);
  await sim.idle();
});
