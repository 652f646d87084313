// The PayPal simulator on its own: PayPal's wire rules (OAuth, request-id replays, one capture
// per order, refund limits, zero-decimal currencies), its certificates and the fault book.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { PayPalSimulator } from "../dev/simulator/paypal/mod.ts";
import { type Json, jsonReply, serveSimulator } from "./support/simharness.ts";

const CLIENT = { clientId: "cid", clientSecret: "secret", webhookId: "WH123" };

async function harness() {
  const sim = await PayPalSimulator.create(CLIENT);
  const served = serveSimulator((req) => sim.fetch(req));
  const base = `http://127.0.0.1:${served.port}`;
  sim.setBaseUrl(base);
  const tokenRes = await fetch(`${base}/v1/oauth2/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${btoa("cid:secret")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: "grant_type=client_credentials",
  });
  const token = (await tokenRes.json()).access_token as string;
  const call = (method: string, path: string, body?: unknown, requestId?: string) =>
    fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        ...(requestId ? { "paypal-request-id": requestId } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(jsonReply);
  const sim_ = (path: string, body: Json = {}) =>
    fetch(`${base}/_sim/paypal/${path}`, { method: "POST", body: JSON.stringify(body) }).then(
      jsonReply,
    );
  return {
    sim,
    base,
    call,
    simPost: sim_,
    async close() {
      await sim.idle();
      await served.server.shutdown();
    },
  };
}

const order = (value: string, currency = "USD") => ({
  intent: "CAPTURE",
  purchase_units: [{
    reference_id: "o1",
    custom_id: "o1",
    amount: { currency_code: currency, value },
  }],
});

Deno.test("paypal simulator: OAuth, request-id replays, one capture per approved order", async () => {
  const h = await harness();
  try {
    const bad = await fetch(`${h.base}/v1/oauth2/token`, {
      method: "POST",
      headers: { authorization: `Basic ${btoa("cid:wrong")}` },
      body: "grant_type=client_credentials",
    }).then(jsonReply);
    assert.equal(bad.status, 401);
    const noToken = await fetch(`${h.base}/v2/checkout/orders/X`).then(jsonReply);
    assert.equal(noToken.status, 401);

    const created = await h.call("POST", "/v2/checkout/orders", order("10.50"), "req-1");
    assert.equal(created.status, 201);
    const again = await h.call("POST", "/v2/checkout/orders", order("10.50"), "req-1");
    assert.equal(again.status, 200);
    assert.equal(again.json.id, created.json.id);
    assert.ok(created.json.links.some((l: Json) => l.rel === "approve"));

    const early = await h.call("POST", `/v2/checkout/orders/${created.json.id}/capture`, {});
    assert.equal(early.status, 422);
    assert.equal(early.json.details[0].issue, "ORDER_NOT_APPROVED");
    await h.simPost(`orders/${created.json.id}/approve`, { outcome: "approve" });
    const cap = await h.call("POST", `/v2/checkout/orders/${created.json.id}/capture`, {}, "c-1");
    assert.equal(cap.status, 201);
    assert.equal(cap.json.status, "COMPLETED");
    const c = cap.json.purchase_units[0].payments.captures[0];
    assert.equal(c.status, "COMPLETED");
    assert.equal(c.supplementary_data.related_ids.order_id, created.json.id);
    const replayed = await h.call(
      "POST",
      `/v2/checkout/orders/${created.json.id}/capture`,
      {},
      "c-1",
    );
    assert.equal(replayed.status, 200);
    const second = await h.call(
      "POST",
      `/v2/checkout/orders/${created.json.id}/capture`,
      {},
      "c-2",
    );
    assert.equal(second.json.details[0].issue, "ORDER_ALREADY_CAPTURED");

    const over = await h.call("POST", `/v2/payments/captures/${c.id}/refund`, {
      amount: { currency_code: "USD", value: "10.51" },
    });
    assert.equal(over.json.details[0].issue, "REFUND_AMOUNT_EXCEEDED");
    const part = await h.call("POST", `/v2/payments/captures/${c.id}/refund`, {
      amount: { currency_code: "USD", value: "4.00" },
      custom_id: "r1",
    }, "r-1");
    assert.equal(part.status, 201);
    assert.equal(
      (await h.call("POST", `/v2/payments/captures/${c.id}/refund`, {
        amount: { currency_code: "USD", value: "4.00" },
      }, "r-1")).json.id,
      part.json.id,
    );
    const rest = await h.call("POST", `/v2/payments/captures/${c.id}/refund`, {});
    assert.equal(rest.json.amount.value, "6.50");
    assert.equal((await h.call("GET", `/v2/payments/captures/${c.id}`)).json.status, "REFUNDED");
    const types = h.sim.events(created.json.id).map((e) => e.type);
    assert.deepEqual(types, [
      "CHECKOUT.ORDER.APPROVED",
      "PAYMENT.CAPTURE.COMPLETED",
      "PAYMENT.CAPTURE.REFUNDED",
      "PAYMENT.CAPTURE.REFUNDED",
    ]);
  } finally {
    await h.close();
  }
});

Deno.test("paypal simulator: currencies, decimals, certificates and faults", async () => {
  const h = await harness();
  try {
    const issue = async (value: string, currency: string) =>
      (await h.call("POST", "/v2/checkout/orders", order(value, currency))).json.details?.[0]
        ?.issue ?? "ok";
    assert.equal(await issue("2500", "HUF"), "ok");
    assert.equal(await issue("2500.50", "HUF"), "DECIMALS_NOT_SUPPORTED");
    assert.equal(await issue("1200", "JPY"), "ok");
    assert.equal(await issue("10.001", "USD"), "DECIMAL_PRECISION");
    assert.equal(await issue("500.00", "INR"), "CURRENCY_NOT_SUPPORTED");
    assert.equal(await issue("0.00", "USD"), "INVALID_PARAMETER_VALUE");

    // Every event's headers carry a certificate URL the simulator serves, from its own CA.
    const created = await h.call("POST", "/v2/checkout/orders", order("5.00"));
    await h.simPost(`orders/${created.json.id}/approve`, { webhooks: { deliver: false } });
    const e = h.sim.events(created.json.id)[0];
    assert.ok(e.headers["paypal-cert-url"].startsWith(h.sim.certUrlPrefix));
    const pem = await (await fetch(e.headers["paypal-cert-url"])).text();
    const [leaf] = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
    const cert = new X509Certificate(leaf);
    assert.match(cert.subject, /CN=messageverificationcerts\.sandbox\.paypal\.com/);
    assert.ok(cert.verify(new X509Certificate(h.sim.caPem).publicKey));
    assert.equal(e.headers["paypal-auth-algo"], "SHA256withRSA");

    const armed = await h.simPost("faults", {
      faults: [{ method: "POST", path: "/v2/checkout/orders", mode: "error_503", count: 1 }],
    });
    assert.equal(armed.status, 200);
    assert.equal((await h.call("POST", "/v2/checkout/orders", order("5.00"))).status, 503);
    assert.equal((await h.call("POST", "/v2/checkout/orders", order("5.00"))).status, 201);
  } finally {
    await h.close();
  }
});
