// Stripe-Signature on node:crypto: the vectors (GATEWAY_FACTS B5), Stripe's rules (any v1,
// tolerance, future timestamps, rolling secrets), and the official SDK's verifier as an oracle
// on valid and tampered headers.
import assert from "node:assert/strict";
import Stripe from "stripe";
import { hmacSha256HexSync } from "../shared/crypto.ts";
import { checkStripeSignature, verifiedStripeSecret } from "../shared/gateways/stripe/signature.ts";

const SECRET = "whsec_test_secret";
const T = 1700000000;
const AT_T = T * 1000;
const COMPACT = '{"id":"evt_test_webhook","object":"event"}';
const PRETTY = JSON.stringify({ id: "evt_test_webhook", object: "event" }, null, 2);
// Derived vectors (GATEWAY_FACTS B5: stripe-node 23.1.0, checked with openssl).
const V1_COMPACT = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";
const V1_PRETTY = "4f1cd7feda9826e746b7d482c4badebb657398df1099e1046364f6196a230150";

// stripe-node's crypto provider vectors (test/crypto/helpers.ts), secret test_secret.
const HMAC_VECTORS: [string, string][] = [
  ["", "f7f9bd47fb987337b5796fdc1fdb9ba221d0d5396814bfcaf9521f43fd8927fd"],
  [
    '{"obj1":"hello","obj2":"world"}',
    "bebb1a643997f419b315ddba19e6f5411e1ce7f810ba6d3617ce72823092f363",
  ],
  ["\u{1F600}", "837da296d05c4fe31f61d5d7ead035099d9585a5bcde87de952012a78f0b0c43"],
];

Deno.test("stripe signature: the HMAC reproduces stripe-node's crypto vectors", () => {
  for (const [message, hex] of HMAC_VECTORS) {
    assert.equal(hmacSha256HexSync("test_secret", message), hex);
  }
});

Deno.test("stripe signature: the derived header vectors verify; any change does not", () => {
  assert.equal(checkStripeSignature(COMPACT, `t=${T},v1=${V1_COMPACT}`, SECRET, AT_T), "verified");
  assert.equal(checkStripeSignature(PRETTY, `t=${T},v1=${V1_PRETTY}`, SECRET, AT_T), "verified");
  // The same object, other bytes: Stripe signs the raw body.
  assert.equal(checkStripeSignature(PRETTY, `t=${T},v1=${V1_COMPACT}`, SECRET, AT_T), "no_match");
  assert.equal(
    checkStripeSignature(COMPACT + " ", `t=${T},v1=${V1_COMPACT}`, SECRET, AT_T),
    "no_match",
  );
  assert.equal(
    checkStripeSignature(COMPACT, `t=${T + 1},v1=${V1_COMPACT}`, SECRET, AT_T),
    "no_match",
  );
  assert.equal(
    checkStripeSignature(COMPACT, `t=${T},v1=${V1_COMPACT}`, "whsec_test_secres", AT_T),
    "no_match",
  );
  // The key is the secret exactly as given, whsec_ prefix included.
  assert.equal(
    checkStripeSignature(COMPACT, `t=${T},v1=${V1_COMPACT}`, "test_secret", AT_T),
    "no_match",
  );
  assert.equal(
    checkStripeSignature(COMPACT, `t=${T},v1=${V1_COMPACT.toUpperCase()}`, SECRET, AT_T),
    "no_match",
  );
  assert.equal(
    checkStripeSignature(COMPACT, `t=${T},v1=${V1_COMPACT.slice(0, 63)}`, SECRET, AT_T),
    "no_match",
  );
});

Deno.test("stripe signature: 300 s of tolerance, none for the future; tolerance 0 turns it off", () => {
  const h = `t=${T},v1=${V1_COMPACT}`;
  assert.equal(checkStripeSignature(COMPACT, h, SECRET, AT_T + 300_999), "verified");
  assert.equal(checkStripeSignature(COMPACT, h, SECRET, AT_T + 301_000), "too_old");
  assert.equal(checkStripeSignature(COMPACT, h, SECRET, AT_T - 86_400_000), "verified");
  assert.equal(checkStripeSignature(COMPACT, h, SECRET, AT_T + 86_400_000, 0), "verified");
  assert.equal(checkStripeSignature(COMPACT, h, SECRET, AT_T + 11_000, 10), "too_old");
  // A stale header with a wrong signature is a mismatch first, as in the SDK.
  assert.equal(
    checkStripeSignature(COMPACT, `t=${T},v1=${"0".repeat(64)}`, SECRET, AT_T + 301_000),
    "no_match",
  );
});

Deno.test("stripe signature: any one v1 is enough; other schemes are ignored; parts in any order", () => {
  const bad = "0".repeat(64);
  for (
    const h of [
      `t=${T},v1=${bad},v1=${V1_COMPACT}`,
      `t=${T},v1=${V1_COMPACT},v1=${bad}`,
      `v1=${V1_COMPACT},t=${T}`,
      `t=${T},v0=${bad},v1=${V1_COMPACT},x=y`,
      `t=1,t=${T},v1=${V1_COMPACT}`, // the last t counts
      `t=000${T},v1=${V1_COMPACT}`, // parsed as a number: signs "1700000000."
    ]
  ) assert.equal(checkStripeSignature(COMPACT, h, SECRET, AT_T), "verified", h);
  for (
    const h of [
      `t=${T},v0=${V1_COMPACT}`, // no v1 at all
      `t=${T},V1=${V1_COMPACT}`,
      `v1=${V1_COMPACT}`, // no timestamp
      `t=-1,v1=${V1_COMPACT}`,
      `t=abc,v1=${V1_COMPACT}`, // stricter than the SDK (which would sign "NaN.")
      `t=,v1=${V1_COMPACT}`,
      `t=${T},v1`,
      "",
    ]
  ) assert.equal(checkStripeSignature(COMPACT, h, SECRET, AT_T), "malformed", h);
  assert.equal(checkStripeSignature("", `t=${T},v1=${V1_COMPACT}`, SECRET, AT_T), "malformed");
  assert.equal(checkStripeSignature(COMPACT, `t=${T},v1=${V1_COMPACT}`, " \n", AT_T), "malformed");
  // "t=1e3" is parseInt's 1: a signature over "1." would be needed.
  assert.equal(checkStripeSignature(COMPACT, `t=1e3,v1=${V1_COMPACT}`, SECRET, 1000), "no_match");
});

Deno.test("stripe signature: rolling secrets: whichever of the endpoint's secrets signed it", () => {
  const h = `t=${T},v1=${V1_COMPACT}`;
  assert.equal(verifiedStripeSecret(COMPACT, h, ["whsec_old", SECRET], AT_T), SECRET);
  assert.equal(verifiedStripeSecret(COMPACT, h, [SECRET, "whsec_new"], AT_T), SECRET);
  assert.equal(verifiedStripeSecret(COMPACT, h, ["whsec_old", "whsec_new"], AT_T), undefined);
  assert.equal(verifiedStripeSecret(COMPACT, h, [SECRET], AT_T + 301_000), undefined);
  assert.equal(verifiedStripeSecret(COMPACT, null, [SECRET], AT_T), undefined);
});

/** The SDK's verdict: true when constructEventAsync accepts, false when it refuses the signature. */
async function sdkVerdict(body: string, header: string, nowMs: number): Promise<boolean> {
  const stripe = new Stripe("sk_test_oracle");
  try {
    await stripe.webhooks.constructEventAsync(
      body,
      header,
      SECRET,
      300,
      Stripe.createSubtleCryptoProvider(),
      nowMs,
    );
    return true;
  } catch (err) {
    if (err instanceof Stripe.errors.StripeSignatureVerificationError) return false;
    throw err;
  }
}

Deno.test("stripe signature: the official SDK agrees on 600 valid and tampered headers", async () => {
  const rnd = (n: number) => Math.floor(Math.random() * n);
  const hex = (n: number) => Array.from({ length: n }, () => "0123456789abcdef"[rnd(16)]).join("");
  let verified = 0;
  for (let i = 0; i < 600; i++) {
    const body = JSON.stringify({ id: `evt_${hex(8)}`, object: "event", n: i, s: "é😀" });
    const t = T + rnd(1000) - 500;
    const real = hmacSha256HexSync(SECRET, `${t}.${body}`);
    const candidates = [
      `t=${t},v1=${real}`,
      `t=${t},v1=${hex(64)},v1=${real}`,
      `v1=${real},t=${t}`,
      `t=${t + 1},v1=${real}`,
      `t=${t},v1=${real.slice(1)}`,
      `t=${t},v1=${hex(64)}`,
      `t=${t},v0=${real}`,
      `t=${t},v1=${real},v1=${hex(64)}`,
      `t=0${t},v1=${real}`,
      `t=${t}`,
    ];
    const header = candidates[rnd(candidates.length)];
    const tampered = rnd(5) === 0 ? body.replace("event", "Event") : body;
    const now = AT_T + rnd(800_000) - 200_000;
    const ours = checkStripeSignature(tampered, header, SECRET, now) === "verified";
    assert.equal(ours, await sdkVerdict(tampered, header, now), `${header} at ${now}`);
    if (ours) verified++;
  }
  // Both outcomes were exercised.
  assert.ok(verified > 50 && verified < 550, `${verified} of 600 verified`);
});
