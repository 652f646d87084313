// PayPal's offline webhook verification pieces against the facts sheet's vectors (CRC-32, the
// signed string), a real RSA signature over a local certificate, the cert URL allow-list, the
// amount conversions and the OAuth token cache.
import assert from "node:assert/strict";
import {
  CertCache,
  certUrlAllowed,
  checkedSigningKey,
  crc32,
  signedMessage,
  verifyTransmission,
} from "../shared/gateways/paypal/signature.ts";
import {
  checkPayPalAmount,
  fromPayPalValue,
  toPayPalValue,
} from "../shared/gateways/paypal/amounts.ts";
import { PayPalClient } from "../shared/gateways/paypal/client.ts";
import { loadConfig } from "../shared/config.ts";
import { createLocalCa, issueSigner } from "../dev/simulator/paypal/certs.ts";
import { signDelivery } from "../dev/simulator/paypal/events.ts";

const VECTOR_BODY =
  '{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"id":"CAP1","amount":{"currency_code":"USD","value":"10.00"}}}';

Deno.test("paypal: CRC-32 and the signed string match the facts sheet's vectors", () => {
  assert.equal(crc32("The quick brown fox jumps over the lazy dog"), 1095738169);
  assert.equal(crc32(VECTOR_BODY), 1028524221);
  assert.equal(crc32(""), 0);
  assert.equal(crc32(new Uint8Array([0xff, 0xfe])), crc32(new Uint8Array([0xff, 0xfe])));
  assert.equal(
    signedMessage("tid-1", "2026-11-21T10:00:00Z", "WHID123", VECTOR_BODY),
    "tid-1|2026-11-21T10:00:00Z|WHID123|1028524221",
  );
  // Non-ASCII bodies are the UTF-8 bytes' CRC (what PayPal sends).
  assert.equal(crc32("é"), crc32(new Uint8Array([0xc3, 0xa9])));
});

Deno.test("paypal: SHA256withRSA over the vector message verifies with the certificate's key", async () => {
  const now = new Date();
  const ca = await createLocalCa(now);
  const signer = await issueSigner(ca, {
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 86_400_000),
  });
  const key = await checkedSigningKey(signer.pem, { timeoutMs: 1000, devCaPem: ca.pem }, now);
  const msg = new TextEncoder().encode("tid-1|2026-11-21T10:00:00Z|WHID123|1028524221");
  const sig = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", signer.keys.privateKey, msg);
  assert.equal(await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, sig, msg), true);
  const tampered = new TextEncoder().encode("tid-1|2026-11-21T10:00:00Z|WHID123|1028524222");
  assert.equal(await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, sig, tampered), false);
  // Without the dev CA, the same chain is still internally consistent; with another CA it is not.
  const other = await createLocalCa(now);
  await assert.rejects(
    () => checkedSigningKey(signer.pem, { timeoutMs: 1000, devCaPem: other.pem }, now),
    /trusted CA/,
  );
  await assert.rejects(
    () => checkedSigningKey(ca.pem, { timeoutMs: 1000 }, now),
    /not PayPal's webhook signing certificate/,
  );
});

Deno.test("paypal: the certificate URL allow-list is PayPal's hosts over https only", () => {
  for (
    const ok of [
      "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
      "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
      "https://api-m.paypal.com/v1/notifications/certs/CERT-1",
      "https://api-m.sandbox.paypal.com/v1/notifications/certs/CERT-1",
    ]
  ) assert.equal(certUrlAllowed(ok), true, ok);
  for (
    const bad of [
      "http://api.paypal.com/v1/notifications/certs/CERT-1",
      "https://api.paypal.com.evil.io/v1/notifications/certs/CERT-1",
      "https://evil.io/api.paypal.com/v1/notifications/certs/CERT-1",
      "https://user@api.paypal.com/v1/notifications/certs/CERT-1",
      "https://api.paypal.com:444/v1/notifications/certs/CERT-1",
      "https://api.paypal.com/v1/notifications/certs/../../oauth2/token",
      "https://api.paypal.com/v1/notifications/certs/CERT-1?x=1",
      "https://www.paypal.com/v1/notifications/certs/CERT-1",
      "not a url",
    ]
  ) assert.equal(certUrlAllowed(bad), false, bad);
  const dev = "http://127.0.0.1:54330/paypal/v1/notifications/certs/";
  assert.equal(certUrlAllowed(`${dev}CERT-1`, dev), true);
  assert.equal(certUrlAllowed(`${dev}../../x`, dev), false);
  assert.equal(certUrlAllowed(`${dev}CERT-1`), false, "dev URLs need the dev setting");
});

Deno.test("paypal: a verified delivery downloads its certificate once (cached by URL)", async () => {
  const now = new Date();
  const ca = await createLocalCa(now);
  const signer = await issueSigner(ca, {
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 86_400_000),
  });
  const prefix = "http://certs.local/v1/notifications/certs/";
  let downloads = 0;
  const fetchCert: typeof fetch = (input) => {
    downloads++;
    assert.equal(String(input), `${prefix}CERT-A`);
    return Promise.resolve(new Response(signer.pem));
  };
  const cache = new CertCache({
    devCertUrl: prefix,
    devCaPem: ca.pem,
    timeoutMs: 1000,
    fetch: fetchCert,
  });
  for (let i = 0; i < 5; i++) {
    const body = `{"id":"WH-${i}"}`;
    const headers = await signDelivery(body, signer.keys.privateKey, {
      certUrl: `${prefix}CERT-A`,
      webhookId: "WHID123",
      nowMs: now.getTime(),
    });
    await verifyTransmission(body, new Headers(headers), "WHID123", cache, now);
  }
  assert.equal(downloads, 1);
  // A year later the cached certificate has expired: refused without another download.
  await assert.rejects(async () => {
    const later = new Date(now.getTime() + 2 * 86_400_000);
    const headers = await signDelivery("{}", signer.keys.privateKey, {
      certUrl: `${prefix}CERT-A`,
      webhookId: "WHID123",
      nowMs: later.getTime(),
    });
    await verifyTransmission("{}", new Headers(headers), "WHID123", cache, later);
  }, /validity/);
  assert.equal(downloads, 1);
});

Deno.test("paypal: amounts are PayPal decimal strings from integer minor units", () => {
  assert.equal(toPayPalValue(1050, "USD"), "10.50");
  assert.equal(toPayPalValue(5, "EUR"), "0.05");
  assert.equal(toPayPalValue(100_000_000_000, "USD"), "1000000000.00");
  assert.equal(toPayPalValue(1200, "JPY"), "1200");
  assert.equal(toPayPalValue(250000, "HUF"), "2500");
  assert.equal(toPayPalValue(1500, "TWD"), "15");
  for (
    const [amount, currency] of [
      [250050, "HUF"],
      [1, "TWD"],
      [100, "INR"],
      [1000, "KWD"],
      [0, "USD"],
      [-5, "USD"],
      [1.5, "USD"],
    ] as const
  ) {
    assert.throws(
      () => checkPayPalAmount(amount, currency),
      { status: 400 },
      `${amount} ${currency}`,
    );
  }
  assert.equal(fromPayPalValue("10.50", "USD"), 1050);
  assert.equal(fromPayPalValue("10.5", "USD"), 1050);
  assert.equal(fromPayPalValue("10", "usd"), 1000);
  assert.equal(fromPayPalValue("2500", "HUF"), 250000);
  assert.equal(fromPayPalValue("1200", "JPY"), 1200);
  assert.equal(fromPayPalValue("10.001", "USD"), null);
  assert.equal(fromPayPalValue("2500.5", "HUF"), null);
  assert.equal(fromPayPalValue("-1.00", "USD"), null);
  assert.equal(fromPayPalValue("1e3", "USD"), null);
  assert.equal(fromPayPalValue(10, "USD"), null);
  assert.equal(fromPayPalValue("10.00", "INR"), null);
});

Deno.test("paypal: the OAuth token is cached until shortly before expires_in", async () => {
  let clock = 1_000_000;
  let issued = 0;
  const fakeFetch: typeof fetch = (input, init) => {
    const url = String(input);
    if (url.endsWith("/v1/oauth2/token")) {
      issued++;
      assert.equal(new Headers(init?.headers).get("authorization"), `Basic ${btoa("cid:sec")}`);
      assert.equal(init?.body, "grant_type=client_credentials");
      return Promise.resolve(Response.json({
        access_token: `tok-${issued}`,
        token_type: "Bearer",
        expires_in: 600,
      }));
    }
    return Promise.resolve(Response.json({ id: "ORDER1", status: "CREATED" }));
  };
  const c = new PayPalClient({
    clientId: "cid",
    clientSecret: "sec",
    apiUrl: "http://paypal.local",
    timeoutMs: 1000,
    fetch: fakeFetch,
    now: () => clock,
  });
  const tokens = await Promise.all(Array.from({ length: 10 }, () => c.token()));
  assert.deepEqual(new Set(tokens), new Set(["tok-1"]));
  clock += 530_000; // 530 s of 600: still inside the 60 s margin
  assert.equal(await c.token(), "tok-1");
  clock += 20_000; // 550 s: within a minute of expiry, refreshed
  assert.equal(await c.token(), "tok-2");
  assert.equal(issued, 2);
});

Deno.test("paypal: configuration is all or none; the dev certificate settings are refused live", () => {
  const base: Record<string, string> = {
    SUPABASE_DB_URL: "postgres://postgres@127.0.0.1:5432/x",
    SUPABASE_JWT_SECRET: "a-local-secret-with-at-least-32-characters",
  };
  const full = {
    PAYPAL_CLIENT_ID: "cid",
    PAYPAL_CLIENT_SECRET: "secret",
    PAYPAL_WEBHOOK_ID: "8PT597110X687430LKGECATA",
    PAYPAL_ENV: "sandbox",
  };
  const load = (env: Record<string, string>) => loadConfig((k) => ({ ...base, ...env })[k]);
  assert.equal(load({}).paypal, undefined);
  assert.equal(load(full).paypal?.apiUrl, "https://api-m.sandbox.paypal.com");
  assert.equal(load({ ...full, PAYPAL_ENV: "live" }).paypal?.apiUrl, "https://api-m.paypal.com");
  for (const key of Object.keys(full)) {
    const partial: Record<string, string> = { ...full };
    delete partial[key];
    assert.throws(() => load(partial), { name: "ConfigError", message: new RegExp(key) });
  }
  assert.throws(() => load({ PAYPAL_API_URL: "http://127.0.0.1:1" }), { name: "ConfigError" });
  assert.throws(() => load({ ...full, PAYPAL_ENV: "production" }), /sandbox or live/);
  assert.throws(() => load({ ...full, PAYPAL_WEBHOOK_ID: "not/an id" }), /PAYPAL_WEBHOOK_ID/);
  const dev = { PAYPAL_DEV_CERT_URL: "http://127.0.0.1:1/certs/", PAYPAL_DEV_CERT_CA: "pem" };
  assert.equal(load({ ...full, ...dev }).paypal?.devCertUrl, "http://127.0.0.1:1/certs/");
  assert.throws(() => load({ ...full, ...dev, PAYPAL_ENV: "live" }), /development only/);
  assert.throws(
    () => load({ ...full, PAYPAL_DEV_CERT_URL: dev.PAYPAL_DEV_CERT_URL }),
    /go together/,
  );
});
