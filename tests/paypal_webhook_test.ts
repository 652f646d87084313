// PayPal webhooks verified offline: every forged delivery is a 400 that stores nothing (tampered
// body, wrong CRC, a certificate from another host, an expired or foreign certificate, a stale
// transmission time, a missing header), and correctly signed events of every kind are accepted.
import assert from "node:assert/strict";
import { createUser, type TestStack, withStack } from "./support/stack.ts";
import { type Case, runCases } from "./support/contract.ts";
import { approve, deliver, events, holdWebhooks, opts, paypalOrder } from "./support/paypal.ts";
import { LOCAL_PAYPAL } from "../dev/stack.ts";
import { crc32 } from "../shared/gateways/paypal/signature.ts";
import { createLocalCa, issueSigner } from "../dev/simulator/paypal/certs.ts";
import { isoSeconds } from "../dev/simulator/paypal/wire.ts";

async function rsaSign(key: CryptoKey, message: string): Promise<string> {
  const sig = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, new TextEncoder().encode(message));
  return btoa(String.fromCharCode(...new Uint8Array(sig)));
}

/** A correctly signed PAYMENT.CAPTURE.COMPLETED for the order, and its capture. */
async function capturedEvent(s: TestStack) {
  const u = await createUser(s.db, "pp-forged");
  const { order } = await paypalOrder(s, u);
  await holdWebhooks(s);
  await approve(s, order.gateway_order_id);
  // Captured at PayPal by the gateway directly (settle not told), so the event would pay it.
  await s.paypal.state.hooks.idle();
  const gw = s.app.gateway("paypal");
  await gw.fetchPayment({ gatewayOrderId: order.gateway_order_id, amount: 5000, currency: "USD" });
  const e = events(s, order.gateway_order_id, "PAYMENT.CAPTURE.COMPLETED")[0];
  assert.ok(e);
  return { order, e };
}

Deno.test({
  name: "paypal webhooks: forged deliveries are 400 invalid_signature and store nothing",
  ...opts,
  fn: async (t) => {
    await withStack(async (s) => {
      const { order, e } = await capturedEvent(s);
      const fresh = () => s.paypal.signWebhook(e.body);
      const tampered = e.body.replace('"value":"50.00"', '"value":"90.00"');
      assert.notEqual(tampered, e.body);
      const now = Date.now();
      const expired = await s.paypal.issueCert({
        notBefore: new Date(now - 3 * 86_400_000),
        notAfter: new Date(now - 86_400_000),
      });
      const notYet = await s.paypal.issueCert({
        notBefore: new Date(now + 86_400_000),
        notAfter: new Date(now + 3 * 86_400_000),
      });
      const misnamed = await s.paypal.issueCert({
        cn: "messageverificationcerts.evil.example",
        notBefore: new Date(now - 3_600_000),
        notAfter: new Date(now + 86_400_000),
      });
      // A certificate with PayPal's name from another CA, served at an allowed URL.
      const foreignCa = await createLocalCa(new Date());
      const foreign = await issueSigner(foreignCa, {
        notBefore: new Date(now - 3_600_000),
        notAfter: new Date(now + 86_400_000),
      });
      s.paypal.state.certs.set("CERT-foreign", {
        id: "CERT-foreign",
        pem: foreign.pem,
        privateKey: foreign.keys.privateKey,
      });
      const withHeaders = async (change: (h: Record<string, string>) => void, body = e.body) => {
        const h = await fresh();
        change(h);
        return deliver(s, body, h);
      };
      const wrongCrc = async () => {
        const h = await fresh();
        const message = `${h["paypal-transmission-id"]}|${h["paypal-transmission-time"]}|` +
          `${LOCAL_PAYPAL.webhookId}|${(crc32(e.body) + 1) >>> 0}`;
        h["paypal-transmission-sig"] = await rsaSign(s.paypal.state.signer.privateKey, message);
        return deliver(s, e.body, h);
      };
      const signedWith = async (o: Parameters<typeof s.paypal.signWebhook>[1]) =>
        deliver(s, e.body, await s.paypal.signWebhook(e.body, o));
      const hosts = [
        "https://evil.example.com/v1/notifications/certs/CERT-1",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
        "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
        "https://api.paypal.com/v1/other/CERT-1",
        `${s.simulatorUrl}/elsewhere/CERT-1`,
      ];
      const bad = (name: string, send: Case["send"]): Case => ({
        name,
        status: 400,
        code: "invalid_signature",
        send,
      });
      const cases: Case[] = [
        bad("tampered body", () => deliver(s, tampered, e.headers)),
        bad("wrong CRC in the signed string", wrongCrc),
        ...hosts.map((url) =>
          bad(`certificate from ${url}`, () => withHeaders((h) => (h["paypal-cert-url"] = url)))
        ),
        bad("expired certificate", () => signedWith({ certId: expired.id })),
        bad("certificate not valid yet", () => signedWith({ certId: notYet.id })),
        bad("certificate of another subject", () => signedWith({ certId: misnamed.id })),
        bad("certificate from another CA", () => signedWith({ certId: "CERT-foreign" })),
        bad(
          "stale transmission time",
          () => signedWith({ transmissionTime: isoSeconds(Date.now() - 11 * 60_000) }),
        ),
        bad(
          "transmission time in the future",
          () => signedWith({ transmissionTime: isoSeconds(Date.now() + 11 * 60_000) }),
        ),
        bad("another webhook's signature", () => signedWith({ webhookId: "OTHERWEBHOOK1" })),
        bad(
          "algorithm other than SHA256withRSA",
          () => withHeaders((h) => (h["paypal-auth-algo"] = "SHA1withRSA")),
        ),
        bad(
          "signature not base64",
          () => withHeaders((h) => (h["paypal-transmission-sig"] = "not base64!")),
        ),
        bad(
          "transmission id changed after signing",
          () => withHeaders((h) => (h["paypal-transmission-id"] = crypto.randomUUID())),
        ),
        ...[
          "paypal-transmission-id",
          "paypal-transmission-time",
          "paypal-transmission-sig",
          "paypal-cert-url",
          "paypal-auth-algo",
        ].map((name) => bad(`missing ${name}`, () => withHeaders((h) => delete h[name]))),
      ];
      await runCases(t, s, [["webhook/paypal", cases]], { atLeast: 20 });
      const [o] = await s.db`select status from public.orders where id = ${order.id}`;
      assert.equal(o.status, "created");

      // The same event, correctly signed, is accepted and pays the order.
      const ok = await deliver(s, e.body, await fresh());
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const [paid] = await s.db`select status from public.orders where id = ${order.id}`;
      assert.equal(paid.status, "paid");
    });
  },
});

Deno.test({
  name: "paypal webhooks: a second body under a signed transmission id, a non-event, unknown types",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const { e } = await capturedEvent(s);
      const first = await deliver(s, e.body, e.headers);
      assert.equal(first.status, 200);
      // Same transmission id, another event id: stored nothing (the body key is the transmission).
      const h = await s.paypal.signWebhook(e.body.replace(/"id":"WH-[^"]+"/, '"id":"WH-OTHER1"'), {
        transmissionId: e.headers["paypal-transmission-id"],
      });
      const replayed = await deliver(
        s,
        e.body.replace(/"id":"WH-[^"]+"/, '"id":"WH-OTHER1"'),
        h,
      );
      assert.equal(replayed.status, 200);
      const [{ n }] = await s.db`select count(*)::int as n from public.webhook_events
        where gateway = 'paypal' and event_id = 'WH-OTHER1'`;
      assert.equal(n, 0);

      const notEvent = JSON.stringify({ hello: "world" });
      const r = await deliver(s, notEvent, await s.paypal.signWebhook(notEvent));
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, "invalid_request");

      const unknown = JSON.stringify({
        id: "WH-UNKNOWN-1",
        event_version: "1.0",
        event_type: "CUSTOMER.DISPUTE.CREATED",
        resource: { dispute_id: "PP-D-1" },
      });
      const u = await deliver(s, unknown, await s.paypal.signWebhook(unknown));
      assert.equal(u.status, 200);
      const [stored] = await s.db`select outcome, kind from public.webhook_events
        where gateway = 'paypal' and event_id = 'WH-UNKNOWN-1'`;
      assert.deepEqual({ ...stored }, { outcome: "ignored", kind: null });
    });
  },
});

Deno.test({
  name: "paypal webhooks: the postback mode asks PayPal, with the raw body spliced in verbatim",
  ...opts,
  fn: async (t) => {
    await withStack({ PAYPAL_WEBHOOK_VERIFY: "postback" }, async (s) => {
      assert.equal(s.config.paypal?.verify, "postback");
      const { order, e } = await capturedEvent(s);
      const reencoded = JSON.stringify(JSON.parse(e.body), null, 1);
      const tampered = e.body.replace('"value":"50.00"', '"value":"90.00"');
      const bad = (name: string, send: Case["send"]): Case => ({
        name,
        status: 400,
        code: "invalid_signature",
        send,
      });
      await runCases(t, s, [["webhook/paypal postback", [
        bad("tampered body", () => deliver(s, tampered, e.headers)),
        bad("the same event re-encoded", () => deliver(s, reencoded, e.headers)),
        bad("not JSON", () => deliver(s, "{not json", e.headers)),
        bad("stale transmission time", async () =>
          deliver(
            s,
            e.body,
            await s.paypal.signWebhook(e.body, {
              transmissionTime: isoSeconds(Date.now() - 11 * 60_000),
            }),
          )),
        bad("missing PAYPAL-TRANSMISSION-SIG", () => {
          const h = { ...e.headers };
          delete h["paypal-transmission-sig"];
          return deliver(s, e.body, h);
        }),
      ]]]);
      const ok = await deliver(s, e.body, e.headers);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const [paid] = await s.db`select status from public.orders where id = ${order.id}`;
      assert.equal(paid.status, "paid");
    });
  },
});
