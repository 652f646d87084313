// Hostile input at every public function: forged, replayed, truncated and reordered webhook
// signatures, forged and tampered JWTs, other users' ids, SQL-ish text, huge and deeply nested
// bodies, unicode edge cases, wrong methods and foreign origins. Each must get the contract's
// exact 4xx and change no row anywhere: every table in public, settle and auth is checksummed
// before and after each case (all but settle.rate_limits, whose counters a request is meant
// to move), and the gateways (simulators) must not have been asked to create anything.
//
// The costly inputs scale by environment for longer runs; CI uses the defaults:
//   ABUSE_BODY_MB  size of the oversized bodies (default 10)
//   ABUSE_DEPTH    nesting of the deep JSON sent to the webhook (default 100000)
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { base64url, exportJWK, generateKeyPair, SignJWT } from "jose";
import { FUNCTIONS, LOCAL_RAZORPAY, LOCAL_STRIPE } from "../dev/stack.ts";
import { LOCAL_JWT_SECRET, signJwt, userToken } from "../dev/keys.ts";
import {
  client,
  confirmAtStripe,
  confirmSetupAtStripe,
  createUser,
  idle,
  invoke,
  payAtSimulator,
  raw,
  type Reply,
  simEvents,
  stripeEvents,
  type TestStack,
  type TestUser,
  topupOrder,
  withStack,
} from "./support/stack.ts";
import { type Case, runCases, type Watch } from "./support/contract.ts";

const BODY_MB = Number(Deno.env.get("ABUSE_BODY_MB") ?? "10");
const DEPTH = Number(Deno.env.get("ABUSE_DEPTH") ?? "100000");
assert.ok(BODY_MB > 0 && DEPTH > 0, "ABUSE_BODY_MB and ABUSE_DEPTH are positive numbers");

const hmacHex = (secret: string, message: string) =>
  createHmac("sha256", secret).update(message, "utf8").digest("hex");
const stripeHeader = (body: string, t: number, secret = LOCAL_STRIPE.webhookSecret) =>
  `t=${t},v1=${hmacHex(secret, `${t}.${body}`)}`;

const encodeJson = (v: unknown) => base64url.encode(JSON.stringify(v));
const decodeJson = (part: string) => JSON.parse(new TextDecoder().decode(base64url.decode(part)));

/** `size` bytes of a JSON string value, streamed in 64 KiB chunks with no Content-Length. */
function streamed(size: number): ReadableStream<Uint8Array> {
  const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
  let sent = 0;
  return new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode('{"padding":"'));
    },
    pull(c) {
      if (sent >= size) {
        c.enqueue(new TextEncoder().encode('"}'));
        return c.close();
      }
      c.enqueue(chunk);
      sent += chunk.byteLength;
    },
  });
}

/** A JSON object padded to `size` bytes (sent whole, so with a Content-Length). */
function padded(size: number, fields: Record<string, unknown> = {}): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify({ ...fields, padding: "x".repeat(size) }));
}

const nested = (depth: number, open = "[", close = "]") => open.repeat(depth) + close.repeat(depth);
/** {"key": {"a": {"a": … 1 …}}} with `depth` levels under key. */
const nestedUnder = (key: string, depth: number) =>
  `{"${key}":${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`;

// ---------------------------------------------------------------- "no row changed anywhere"

/** Every table a request could touch: public, settle and auth, except the rate-limit counters. */
async function watchedTables(s: TestStack): Promise<string[]> {
  const rows = await s.db`select format('%I.%I', schemaname, tablename) as name
    from pg_tables
    where schemaname in ('public', 'settle', 'auth')
      and (schemaname, tablename) <> ('settle', 'rate_limits')
    order by 1`;
  return rows.map((r) => r.name as string);
}

/** count:md5 of every row's text per table: any insert, update or delete changes it. */
async function checksums(s: TestStack, tables: string[]): Promise<Record<string, string>> {
  const rows = await s.db.unsafe(
    tables.map((t) =>
      `select '${t}' as t, count(*)::text || ':' ||
       coalesce(md5(string_agg(x::text, '|' order by x::text)), '') as sum from ${t} x`
    ).join(" union all "),
  );
  return Object.fromEntries(rows.map((r) => [r.t, r.sum]));
}

/** What the gateways were asked to create: Razorpay orders and refunds, Stripe's events. */
async function gatewayState(s: TestStack) {
  const basic = "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`);
  const ids = async (path: string) => {
    const res = await fetch(`${s.simulatorUrl}/razorpay/v1/${path}?count=100`, {
      headers: { authorization: basic },
    });
    assert.equal(res.status, 200, `simulator ${path}`);
    return ((await res.json()) as { items: { id: string }[] }).items.map((i) => i.id);
  };
  const events = await fetch(`${s.stripeUrl}/_sim/stripe/events`);
  const stripe = ((await events.json()).events as { event_id: string }[]).map((e) => e.event_id);
  return { razorpayOrders: await ids("orders"), razorpayRefunds: await ids("refunds"), stripe };
}

/** No row of these tables was inserted, changed or deleted. */
const rowsUnchanged = (s: TestStack, tables: string[]): Watch => async () => {
  const before = await checksums(s, tables);
  return async () => {
    const after = await checksums(s, tables);
    const changed = tables.filter((t) => after[t] !== before[t]);
    assert.deepEqual(changed, [], `rows changed in ${changed.join(", ")}`);
  };
};

/** Neither gateway was asked to create anything. */
const gatewaysUnchanged = (s: TestStack): Watch => async () => {
  const before = await gatewayState(s);
  return async () =>
    assert.deepEqual(await gatewayState(s), before, "a gateway was asked to create something");
};

/** Sends a body the server refuses before reading it all (413); names the path on failure. */
async function sendBig(s: TestStack, path: string, init: RequestInit & { token?: string }) {
  try {
    return await raw(s, path, init);
  } catch (err) {
    throw new Error(`the upload to ${path} failed: ${err}`);
  }
}

Deno.test({
  name: "abuse: hostile input at every function gets the contract's 4xx and changes no row",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await withStack(async (s) => {
      // ------------------------------------------------------------ arrangement
      const alice = await createUser(s.db, "abuse-alice");
      const bob = await createUser(s.db, "abuse-bob");

      // Alice: a Razorpay order paid at the gateway whose webhooks are held back (proof and
      // signed events in hand, the order still created).
      const a1 = await topupOrder(s, alice, 50000);
      const pay1 = await payAtSimulator(s, a1.order.gateway_order_id, {
        webhooks: { deliver: false },
      });
      const a1Proof = {
        razorpay_order_id: pay1.razorpay_order_id as string,
        razorpay_payment_id: pay1.razorpay_payment_id as string,
        razorpay_signature: pay1.razorpay_signature as string,
      };
      const rzpEvents = await simEvents(s, a1.order.gateway_order_id);
      const captured = rzpEvents.find((e) => e.type === "payment.captured")!;
      assert.ok(captured, `simulator events: ${rzpEvents.map((e) => e.type)}`);

      // Alice: a Stripe intent that succeeded at Stripe, its signed event held back.
      const sOrder = await invoke(client(s, alice.token), "create-order", {
        gateway: "stripe",
        purpose: "wallet_topup",
        amount: 2500,
        currency: "USD",
      });
      assert.equal(sOrder.status, 201, JSON.stringify(sOrder.body));
      const pi = sOrder.body.checkout.payment_intent_id as string;
      await confirmAtStripe(s, pi, { webhooks: { deliver: false } });
      const succeeded = (await stripeEvents(s, pi)).find((e) =>
        e.type === "payment_intent.succeeded"
      )!;
      assert.ok(succeeded, "no payment_intent.succeeded event");

      // Bob: a paid Razorpay order (refundable) and a saved card.
      const b1 = await topupOrder(s, bob, 60000);
      await payAtSimulator(s, b1.order.gateway_order_id);
      await idle(s);
      const setup = await invoke(client(s, bob.token), "payment-methods/setup", {});
      assert.equal(setup.status, 200, JSON.stringify(setup.body));
      await confirmSetupAtStripe(s, setup.body.setup_intent_id, "5555555555554444");
      await idle(s);
      const [bobCard] = await s.db`select pm.id from public.payment_methods pm
        where pm.account_id = ${bob.accountId}`;
      assert.ok(bobCard, "bob's card was not saved");

      const statusOf = async (id: string) =>
        (await s.db`select status from public.orders where id = ${id}`)[0].status as string;
      assert.equal(await statusOf(a1.order.id), "created");
      assert.equal(await statusOf(sOrder.body.order.id), "created");
      assert.equal(await statusOf(b1.order.id), "paid");
      const a1StillCreated = async () => assert.equal(await statusOf(a1.order.id), "created");
      const piStillCreated = async () =>
        assert.equal(await statusOf(sOrder.body.order.id), "created");

      // ------------------------------------------------------------ tokens
      const claims = (u: TestUser) => ({
        sub: u.id,
        aud: "authenticated",
        role: "authenticated",
        email: u.email,
      });
      const [aliceHeader, alicePayload, aliceSig] = alice.token.split(".");
      const tamper = (change: Record<string, unknown>) =>
        `${aliceHeader}.${encodeJson({ ...decodeJson(alicePayload), ...change })}.${aliceSig}`;
      const secret = new TextEncoder().encode(LOCAL_JWT_SECRET);
      const rsa = await generateKeyPair("RS256");
      const nowSec = Math.floor(Date.now() / 1000);
      const tokens = {
        algNone: `${encodeJson({ alg: "none", typ: "JWT" })}.${alicePayload}.`,
        algNoneCaps: `${encodeJson({ alg: "NONE", typ: "JWT" })}.${alicePayload}.`,
        emptySignature: `${aliceHeader}.${alicePayload}.`,
        wrongKey: await userToken(alice.id, {
          secret: "attacker-chosen-secret-with-at-least-32-characters",
        }),
        expired: await signJwt(claims(alice), { expiresInSeconds: -1 }),
        audAnon: await signJwt({ ...claims(alice), aud: "anon" }),
        audOther: await signJwt({ ...claims(alice), aud: ["some-other-api"] }),
        tamperedSub: tamper({ sub: bob.id }),
        tamperedRole: tamper({ role: "service_role" }),
        tamperedExp: tamper({ exp: nowSec + 10 * 365 * 86400 }),
        forgedService: await signJwt({ role: "service_role" }, {
          secret: "attacker-chosen-secret-with-at-least-32-characters",
        }),
        rs256: await new SignJWT(claims(alice)).setProtectedHeader({
          alg: "RS256",
          jwk: await exportJWK(rsa.publicKey),
        }).setIssuedAt().setExpirationTime("1h").sign(rsa.privateKey),
        jku: await new SignJWT(claims(alice)).setProtectedHeader({
          alg: "HS256",
          jku: "https://evil.example/jwks.json",
          kid: "../../../../dev/null",
        }).setIssuedAt().setExpirationTime("1h").sign(
          new TextEncoder().encode("attacker-chosen-secret-with-at-least-32-characters"),
        ),
        notYetValid: await new SignJWT(claims(alice)).setProtectedHeader({ alg: "HS256" })
          .setIssuedAt().setNotBefore(nowSec + 3600).setExpirationTime("2h").sign(secret),
        subNotUuid: await signJwt({ ...claims(alice), sub: "' or 1=1 --" }),
      };
      assert.equal(decodeJson(tokens.tamperedSub.split(".")[1]).sub, bob.id);

      // ------------------------------------------------------------ request helpers
      const json = { "content-type": "application/json" };
      const post = (
        path: string,
        body: BodyInit,
        o: { token?: string; headers?: Record<string, string> } = {},
      ) =>
        raw(s, path, { method: "POST", token: o.token, headers: { ...json, ...o.headers }, body });
      const postJson = (path: string, body: unknown, token = alice.token) =>
        post(path, JSON.stringify(body), { token });
      const get = (path: string, token = alice.token, headers: Record<string, string> = {}) =>
        raw(s, path, { method: "GET", token, headers });
      const rzpWebhook = (body: string, headers: Record<string, string>) =>
        post("webhook/razorpay", body, { headers });
      const stripeWebhook = (body: string, signature: string) =>
        post("webhook/stripe", body, { headers: { "stripe-signature": signature } });
      const topup = {
        gateway: "razorpay",
        purpose: "wallet_topup",
        amount: 50000,
        currency: "INR",
      };
      const sqlish = "'; drop table public.orders; --";
      const sqlish2 = "1' or '1'='1";
      const big = BODY_MB * 1024 * 1024;
      // A deep body within the webhook limit is refused by its signature, a deeper one by size.
      const deepWebhook = 2 * DEPTH <= s.config.webhookBodyLimitBytes
        ? { status: 400, code: "invalid_signature" }
        : { status: 413, code: "payload_too_large" };

      // ------------------------------------------------------------ webhook/razorpay
      const body = captured.body;
      const sig = captured.signature;
      const evId = { "x-razorpay-event-id": captured.event_id };
      const reordered = JSON.stringify(
        Object.fromEntries(Object.entries(JSON.parse(body)).reverse()),
      );
      assert.notEqual(reordered, body, "reordering changed the bytes");
      const razorpayWebhook: Case[] = [
        {
          name: "truncated signature (63 hex digits)",
          status: 400,
          code: "invalid_signature",
          send: () => rzpWebhook(body, { ...evId, "x-razorpay-signature": sig.slice(0, 63) }),
          also: a1StillCreated,
        },
        {
          name: "truncated signature (first half)",
          status: 400,
          code: "invalid_signature",
          send: () => rzpWebhook(body, { ...evId, "x-razorpay-signature": sig.slice(0, 32) }),
        },
        {
          name: "signature with a digit appended",
          status: 400,
          code: "invalid_signature",
          send: () => rzpWebhook(body, { ...evId, "x-razorpay-signature": sig + "0" }),
        },
        {
          name: "right signature in upper case",
          status: 400,
          code: "invalid_signature",
          send: () => rzpWebhook(body, { ...evId, "x-razorpay-signature": sig.toUpperCase() }),
          also: a1StillCreated,
        },
        {
          name: 'right signature with a "sha256=" prefix',
          status: 400,
          code: "invalid_signature",
          send: () => rzpWebhook(body, { ...evId, "x-razorpay-signature": `sha256=${sig}` }),
        },
        {
          name: "right signature twice, comma-joined",
          status: 400,
          code: "invalid_signature",
          send: () => rzpWebhook(body, { ...evId, "x-razorpay-signature": `${sig},${sig}` }),
        },
        {
          name: "replayed onto the same event re-serialized with its keys reordered",
          status: 400,
          code: "invalid_signature",
          send: () => rzpWebhook(reordered, { ...evId, "x-razorpay-signature": sig }),
          also: a1StillCreated,
        },
        {
          name: "replayed onto the body plus a trailing newline",
          status: 400,
          code: "invalid_signature",
          send: () => rzpWebhook(body + "\n", { ...evId, "x-razorpay-signature": sig }),
        },
        {
          name: "the checkout signature presented as the webhook signature",
          status: 400,
          code: "invalid_signature",
          send: () =>
            rzpWebhook(body, { ...evId, "x-razorpay-signature": a1Proof.razorpay_signature }),
          also: a1StillCreated,
        },
        {
          name: "signature of an empty body",
          status: 400,
          code: "invalid_signature",
          send: () =>
            rzpWebhook(body, {
              ...evId,
              "x-razorpay-signature": hmacHex(LOCAL_RAZORPAY.webhookSecret, ""),
            }),
        },
        {
          name: "latin-1 bytes in the signature",
          status: 400,
          code: "invalid_signature",
          send: () => rzpWebhook(body, { ...evId, "x-razorpay-signature": "\u00ff".repeat(64) }),
        },
        {
          name: "SQL-ish event id with a forged signature",
          status: 400,
          code: "invalid_signature",
          send: () =>
            rzpWebhook(body, {
              "x-razorpay-event-id": sqlish,
              "x-razorpay-signature": hmacHex("guess", body),
            }),
        },
        {
          name: `JSON nested ${DEPTH} deep with a forged signature`,
          ...deepWebhook,
          send: () => {
            const deep = nested(DEPTH);
            return rzpWebhook(deep, { ...evId, "x-razorpay-signature": hmacHex("guess", deep) });
          },
        },
        ...([
          ["an empty body", ""],
          ["truncated JSON", body.slice(0, Math.floor(body.length / 2))],
          ["a JSON array of the event", `[${body}]`],
          ["an envelope without event", JSON.stringify({ ...JSON.parse(body), event: undefined })],
        ] as const).map(([what, signed]): Case => ({
          name: `correctly signed but not an event: ${what}`,
          status: 400,
          code: "invalid_request",
          send: () =>
            rzpWebhook(signed, {
              "x-razorpay-event-id": `evt_notanevent_${crypto.randomUUID()}`,
              "x-razorpay-signature": hmacHex(LOCAL_RAZORPAY.webhookSecret, signed),
            }),
        })),
        {
          name: `${BODY_MB} MB body with Content-Length`,
          status: 413,
          code: "payload_too_large",
          send: () =>
            sendBig(s, "webhook/razorpay", {
              method: "POST",
              headers: { ...json, ...evId, "x-razorpay-signature": sig },
              body: padded(big),
            }),
        },
        {
          name: `${BODY_MB} MB body streamed without Content-Length`,
          status: 413,
          code: "payload_too_large",
          send: () =>
            sendBig(s, "webhook/razorpay", {
              method: "POST",
              headers: { ...json, ...evId, "x-razorpay-signature": sig },
              body: streamed(big),
            }),
        },
      ];

      // ------------------------------------------------------------ webhook/stripe
      const sBody = succeeded.body;
      const realT = Number(succeeded.signature.match(/t=(\d+)/)![1]);
      const realV1 = succeeded.signature.match(/v1=([0-9a-f]+)/)![1];
      const now = Math.floor(Date.now() / 1000);
      const sReordered = JSON.stringify(
        Object.fromEntries(Object.entries(JSON.parse(sBody)).reverse()),
      );
      const stripeWebhookCases: Case[] = [
        {
          name: "replayed with the timestamp moved to now (signature kept)",
          status: 400,
          code: "invalid_signature",
          send: () => stripeWebhook(sBody, `t=${now + 1},v1=${realV1}`),
          also: piStillCreated,
        },
        {
          name: "correctly signed a day ago (replay outside 300 s)",
          status: 400,
          code: "invalid_signature",
          send: () => stripeWebhook(sBody, stripeHeader(sBody, now - 86400)),
          also: piStillCreated,
        },
        {
          name: "reordered header parts with a stale timestamp",
          status: 400,
          code: "invalid_signature",
          send: () => {
            const [tPart, v1Part] = stripeHeader(sBody, now - 301).split(",");
            return stripeWebhook(sBody, `${v1Part},${tPart}`);
          },
          also: piStillCreated,
        },
        {
          name: "signed payload parts reordered (body.t instead of t.body)",
          status: 400,
          code: "invalid_signature",
          send: () =>
            stripeWebhook(
              sBody,
              `t=${now},v1=${hmacHex(LOCAL_STRIPE.webhookSecret, `${sBody}.${now}`)}`,
            ),
          also: piStillCreated,
        },
        {
          name: "truncated v1 (63 hex digits)",
          status: 400,
          code: "invalid_signature",
          send: () => stripeWebhook(sBody, `t=${realT},v1=${realV1.slice(0, 63)}`),
          also: piStillCreated,
        },
        {
          name: "truncated header (cut inside v1=)",
          status: 400,
          code: "invalid_signature",
          send: () => stripeWebhook(sBody, succeeded.signature.slice(0, -40)),
        },
        {
          name: "v1 in upper case",
          status: 400,
          code: "invalid_signature",
          send: () => stripeWebhook(sBody, `t=${realT},v1=${realV1.toUpperCase()}`),
          also: piStillCreated,
        },
        {
          name: 'scheme "V1" in upper case',
          status: 400,
          code: "invalid_signature",
          send: () => stripeWebhook(sBody, `t=${realT},V1=${realV1}`),
        },
        {
          name: "timestamp in exponent notation",
          status: 400,
          code: "invalid_signature",
          send: () => stripeWebhook(sBody, `t=1e10,v1=${realV1}`),
        },
        {
          name: "negative timestamp",
          status: 400,
          code: "invalid_signature",
          send: () => stripeWebhook(sBody, stripeHeader(sBody, -1)),
        },
        {
          name: "v1 signed for the previous second",
          status: 400,
          code: "invalid_signature",
          send: () => {
            const v1 = hmacHex(LOCAL_STRIPE.webhookSecret, `${now - 1}.${sBody}`);
            return stripeWebhook(sBody, `t=${now},v1=${v1}`);
          },
        },
        {
          name: 'signed with the secret minus its "whsec_" prefix',
          status: 400,
          code: "invalid_signature",
          send: () =>
            stripeWebhook(
              sBody,
              stripeHeader(sBody, now, LOCAL_STRIPE.webhookSecret.replace(/^whsec_/, "")),
            ),
        },
        {
          name: "original signature on the body with its keys reordered",
          status: 400,
          code: "invalid_signature",
          send: () => stripeWebhook(sReordered, succeeded.signature),
          also: piStillCreated,
        },
        {
          name: `JSON nested ${DEPTH} deep with a forged signature`,
          ...deepWebhook,
          send: () => {
            const deep = nested(DEPTH);
            return stripeWebhook(deep, stripeHeader(deep, now, "whsec_guess"));
          },
        },
        ...([
          ["an empty body", ""],
          ["truncated JSON", sBody.slice(0, Math.floor(sBody.length / 2))],
          ["a JSON array of the event", `[${sBody}]`],
          ["an event without type", JSON.stringify({ ...JSON.parse(sBody), type: undefined })],
          ["an event without data.object", JSON.stringify({ ...JSON.parse(sBody), data: {} })],
        ] as const).map(([what, signed]): Case => ({
          name: `correctly signed but not an event: ${what}`,
          status: 400,
          code: "invalid_request",
          send: () => stripeWebhook(signed, stripeHeader(signed, Math.floor(Date.now() / 1000))),
          also: piStillCreated,
        })),
        {
          name: `${BODY_MB} MB body streamed without Content-Length`,
          status: 413,
          code: "payload_too_large",
          send: () =>
            sendBig(s, "webhook/stripe", {
              method: "POST",
              headers: { ...json, "stripe-signature": succeeded.signature },
              body: streamed(big),
            }),
        },
        {
          name: "PUT instead of POST",
          status: 405,
          code: "method_not_allowed",
          send: () =>
            raw(s, "webhook/stripe", {
              method: "PUT",
              headers: { ...json, "stripe-signature": succeeded.signature },
              body: sBody,
            }),
          also: piStillCreated,
        },
      ];

      // ------------------------------------------------------------ JWTs at every function
      const refundBody = { order_id: b1.order.id };
      const jwt: Case[] = [
        ...([
          ["alg none", tokens.algNone],
          ['alg "NONE"', tokens.algNoneCaps],
          ["HS256 header with the signature removed", tokens.emptySignature],
          ["signed with another key", tokens.wrongKey],
          ["expired a second ago", tokens.expired],
          ['audience "anon"', tokens.audAnon],
          ["audience of another API", tokens.audOther],
          ["claims tampered after signing (sub)", tokens.tamperedSub],
          ["claims tampered after signing (role service_role)", tokens.tamperedRole],
          ["claims tampered after signing (exp in ten years)", tokens.tamperedExp],
          ["service role forged with another key", tokens.forgedService],
          ["RS256 with its own embedded jwk", tokens.rs256],
          ["jku and kid headers pointing elsewhere", tokens.jku],
          ["not valid before an hour from now", tokens.notYetValid],
          ["sub that is not a user id", tokens.subNotUuid],
        ] as const).flatMap(([label, token], i): Case[] => {
          // Spread over the functions: each token meets two of them.
          const targets: [string, () => Promise<Reply>][] = [
            ["refunds", () => postJson("refunds", refundBody, token)],
            ["payment-methods", () => get("payment-methods", token)],
            ["subscriptions", () => get("subscriptions", token)],
            ["verify", () => postJson("verify", a1Proof, token)],
            ["create-order", () => postJson("create-order", topup, token)],
            ["payment-methods/setup", () => post("payment-methods/setup", "{}", { token })],
            ["subscriptions/cancel", () => post("subscriptions/cancel", "{}", { token })],
          ];
          return [targets[i % targets.length], targets[(i + 3) % targets.length]].map((
            [fn, send],
          ) => ({
            name: `${fn}: ${label}`,
            status: 401,
            code: "unauthorized",
            send,
            also: async () => {
              await a1StillCreated();
              assert.equal(await statusOf(b1.order.id), "paid");
            },
          }));
        }),
        {
          name: "refunds: no Authorization header",
          status: 401,
          code: "unauthorized",
          send: () => post("refunds", JSON.stringify(refundBody)),
        },
        {
          name: 'refunds: lower-case "bearer" scheme with a valid token',
          status: 401,
          code: "unauthorized",
          send: () =>
            post("refunds", JSON.stringify(refundBody), {
              headers: { authorization: `bearer ${bob.token}` },
            }),
        },
        {
          name: "subscriptions: two bearer tokens in one header",
          status: 401,
          code: "unauthorized",
          send: () =>
            raw(s, "subscriptions", {
              headers: { authorization: `Bearer ${alice.token}, Bearer ${bob.token}` },
            }),
        },
      ];

      // ------------------------------------------------------------ IDOR
      const idor: Case[] = [
        {
          name: "verify: bob's order id with alice's own payment and signature",
          status: 404,
          code: "not_found",
          send: () =>
            postJson("verify", { ...a1Proof, razorpay_order_id: b1.order.gateway_order_id }),
        },
        {
          name: "refunds: alice refunds bob's paid order",
          status: 404,
          code: "not_found",
          send: () => postJson("refunds", { order_id: b1.order.id }),
          also: async () => assert.equal(await statusOf(b1.order.id), "paid"),
        },
        {
          name: "refunds: alice refunds part of bob's paid order",
          status: 404,
          code: "not_found",
          send: () => postJson("refunds", { order_id: b1.order.id, amount: 100, reason: "mine" }),
        },
        {
          name: "refunds: alice lists bob's order's refunds",
          status: 404,
          code: "not_found",
          send: () => get(`refunds?order_id=${b1.order.id}`),
        },
        {
          name: "payment-methods: bob's card made default under alice's account_id",
          status: 404,
          code: "not_found",
          send: () =>
            post(`payment-methods/${bobCard.id}/default?account_id=${alice.accountId}`, "{}", {
              token: alice.token,
            }),
        },
        {
          name: "payment-methods: delete bob's card with bob's account_id in the query",
          status: 404,
          code: "not_found",
          send: () =>
            raw(s, `payment-methods/${bobCard.id}?account_id=${bob.accountId}`, {
              method: "DELETE",
              token: alice.token,
            }),
        },
        {
          name: "subscriptions: read bob's account",
          status: 404,
          code: "not_found",
          send: () => get(`subscriptions?account_id=${bob.accountId}`),
        },
        {
          name: "subscriptions: cancel bob's account",
          status: 404,
          code: "not_found",
          send: () => postJson("subscriptions/cancel", { account_id: bob.accountId }),
        },
        {
          name: "create-order: a product for bob's account",
          status: 404,
          code: "not_found",
          send: () =>
            postJson("create-order", {
              gateway: "stripe",
              purpose: "product",
              product_id: "ebook",
              account_id: bob.accountId,
            }),
        },
      ];

      // ------------------------------------------------------------ SQL-ish text in every field
      const sql: Case[] = [
        ...(["gateway", "purpose", "plan_id", "product_id", "currency", "account_id"] as const)
          .map((field): Case => ({
            name: `create-order: ${field} = ${sqlish}`,
            status: 400,
            code: "invalid_request",
            send: () =>
              postJson(
                "create-order",
                field === "plan_id"
                  ? { gateway: "razorpay", purpose: "plan", plan_id: sqlish }
                  : field === "product_id"
                  ? { gateway: "razorpay", purpose: "product", product_id: sqlish }
                  : { ...topup, [field]: sqlish },
              ),
          })),
        {
          name: "create-order: Idempotency-Key = '; drop table …",
          status: 400,
          code: "invalid_request",
          send: () =>
            post("create-order", JSON.stringify(topup), {
              token: alice.token,
              headers: { "idempotency-key": sqlish },
            }),
        },
        ...(["razorpay_order_id", "razorpay_payment_id", "razorpay_signature"] as const).map((
          field,
        ): Case => ({
          name: `verify: ${field} = ${sqlish2}`,
          status: 400,
          code: "invalid_request",
          send: () => postJson("verify", { ...a1Proof, [field]: sqlish2 }),
          also: a1StillCreated,
        })),
        {
          name: `verify: payment_intent_id = ${sqlish}`,
          status: 400,
          code: "invalid_request",
          send: () => postJson("verify", { payment_intent_id: sqlish }),
        },
        {
          name: "payment-methods: id in the path = '; drop …",
          status: 400,
          code: "invalid_request",
          send: () =>
            raw(s, `payment-methods/${encodeURIComponent(sqlish)}`, {
              method: "DELETE",
              token: alice.token,
            }),
        },
        {
          name: "payment-methods: account_id query = 1' or '1'='1",
          status: 400,
          code: "invalid_request",
          send: () => get(`payment-methods?account_id=${encodeURIComponent(sqlish2)}`),
        },
        {
          name: "payment-methods/setup: account_id = '; drop …",
          status: 400,
          code: "invalid_request",
          send: () => postJson("payment-methods/setup", { account_id: sqlish }),
        },
        {
          name: "refunds: order_id = '; drop …",
          status: 400,
          code: "invalid_request",
          send: () => postJson("refunds", { order_id: sqlish }),
        },
        {
          name: "refunds: SQL-ish reason on an order that is not alice's",
          status: 404,
          code: "not_found",
          send: () => postJson("refunds", { order_id: b1.order.id, reason: sqlish }),
        },
        {
          name: "refunds: order_id query = 1' or '1'='1",
          status: 400,
          code: "invalid_request",
          send: () => get(`refunds?order_id=${encodeURIComponent(sqlish2)}`),
        },
        {
          name: "subscriptions: account_id query = '; drop …",
          status: 400,
          code: "invalid_request",
          send: () => get(`subscriptions?account_id=${encodeURIComponent(sqlish)}`),
        },
        {
          name: "subscriptions/cancel: account_id = 1' or '1'='1",
          status: 400,
          code: "invalid_request",
          send: () => postJson("subscriptions/cancel", { account_id: sqlish2 }),
        },
      ];

      // ------------------------------------------------------------ huge and deep bodies
      const sizes: Case[] = [
        ...["create-order", "verify", "refunds", "payment-methods/setup", "subscriptions/cancel"]
          .map((path): Case => ({
            name: `${path}: ${BODY_MB} MB body`,
            status: 413,
            code: "payload_too_large",
            send: () =>
              sendBig(s, path, {
                method: "POST",
                token: alice.token,
                headers: json,
                body: padded(big, path === "verify" ? a1Proof : {}),
              }),
          })),
        {
          name: `refunds: ${BODY_MB} MB body streamed without Content-Length`,
          status: 413,
          code: "payload_too_large",
          send: () =>
            sendBig(s, "refunds", {
              method: "POST",
              token: alice.token,
              headers: json,
              body: streamed(big),
            }),
        },
        {
          name: "create-order: array nested 32000 deep (just under 64 KiB)",
          status: 400,
          code: "invalid_request",
          send: () => post("create-order", nested(32000), { token: alice.token }),
        },
        {
          name: "create-order: gateway nested 6000 objects deep",
          status: 400,
          code: "invalid_request",
          send: () => post("create-order", nestedUnder("gateway", 6000), { token: alice.token }),
        },
        {
          name: "verify: razorpay_order_id nested 6000 objects deep",
          status: 400,
          code: "invalid_request",
          send: () =>
            post("verify", nestedUnder("razorpay_order_id", 6000), { token: alice.token }),
        },
        {
          name: "refunds: order_id nested 6000 objects deep",
          status: 400,
          code: "invalid_request",
          send: () => post("refunds", nestedUnder("order_id", 6000), { token: alice.token }),
        },
        {
          name: `create-order: JSON nested ${DEPTH} deep (over the size limit)`,
          status: 413,
          code: "payload_too_large",
          send: () => post("create-order", nested(DEPTH, '{"a":', "}"), { token: alice.token }),
        },
      ];

      // ------------------------------------------------------------ unicode edge cases
      const rawJson = (path: string, text: string) => post(path, text, { token: alice.token });
      const unicode: Case[] = [
        {
          name: "create-order: full-width currency ＩＮＲ",
          status: 400,
          code: "invalid_request",
          send: () => postJson("create-order", { ...topup, currency: "ＩＮＲ" }),
        },
        {
          name: "create-order: currency with a NUL (INR\\u0000)",
          status: 400,
          code: "invalid_request",
          send: () =>
            rawJson("create-order", JSON.stringify(topup).replace('"INR"', '"INR\\u0000"')),
        },
        {
          name: "create-order: plan_id with a right-to-left override",
          status: 400,
          code: "invalid_request",
          send: () =>
            postJson("create-order", {
              gateway: "razorpay",
              purpose: "plan",
              plan_id: "pro_\u202Eylhtnom",
            }),
        },
        {
          name: "create-order: product_id that is a lone surrogate",
          status: 400,
          code: "invalid_request",
          send: () =>
            rawJson(
              "create-order",
              '{"gateway":"razorpay","purpose":"product","product_id":"\\ud800"}',
            ),
        },
        {
          // A leading BOM is dropped by the UTF-8 decoder (RFC 8259 allows ignoring it); one
          // inside the text is not JSON whitespace.
          name: "create-order: byte-order mark after the opening brace",
          status: 400,
          code: "invalid_json",
          send: () => rawJson("create-order", "{\uFEFF" + JSON.stringify(topup).slice(1)),
        },
        {
          name: "create-order: overlong UTF-8 (C0 AF for '/')",
          status: 400,
          code: "invalid_json",
          send: () =>
            post(
              "create-order",
              new Uint8Array([
                ...new TextEncoder().encode('{"gateway":"razorpay'),
                0xc0,
                0xaf,
                ...new TextEncoder().encode('"}'),
              ]),
              { token: alice.token },
            ),
        },
        {
          name: "create-order: Idempotency-Key with latin-1 bytes",
          status: 400,
          code: "invalid_request",
          send: () =>
            post("create-order", JSON.stringify(topup), {
              token: alice.token,
              headers: { "idempotency-key": "cl\u00e9-\u00ff" },
            }),
        },
        {
          name: "create-order: account_id with a zero-width space",
          status: 400,
          code: "invalid_request",
          send: () =>
            postJson("create-order", { ...topup, account_id: `${alice.accountId}\u200B` }),
        },
        {
          name: "create-order: plan_id of 60000 characters",
          status: 400,
          code: "invalid_request",
          send: () =>
            postJson("create-order", {
              gateway: "razorpay",
              purpose: "plan",
              plan_id: "p".repeat(60000),
            }),
        },
        {
          name: "verify: payment id that is a lone low surrogate",
          status: 400,
          code: "invalid_request",
          send: () =>
            rawJson(
              "verify",
              JSON.stringify(a1Proof).replace(
                a1Proof.razorpay_payment_id,
                "pay_\\udc00AAAAAAAAAAAAA",
              ),
            ),
          also: a1StillCreated,
        },
        {
          name: "verify: signature of 60000 characters",
          status: 400,
          code: "invalid_request",
          send: () => postJson("verify", { ...a1Proof, razorpay_signature: "a".repeat(60000) }),
          also: a1StillCreated,
        },
        {
          name: "verify: payment_intent_id with emoji",
          status: 400,
          code: "invalid_request",
          send: () => postJson("verify", { payment_intent_id: "pi_💸💸💸" }),
        },
        {
          name: "refunds: reason with a NUL",
          status: 400,
          code: "invalid_request",
          send: () =>
            rawJson("refunds", `{"order_id":"${b1.order.id}","reason":"refund\\u0000now"}`),
        },
        {
          name: "refunds: reason that is a lone surrogate",
          status: 400,
          code: "invalid_request",
          send: () => rawJson("refunds", `{"order_id":"${b1.order.id}","reason":"\\ud83d"}`),
        },
        {
          name: "refunds: reason of 501 characters",
          status: 400,
          code: "invalid_request",
          send: () => postJson("refunds", { order_id: b1.order.id, reason: "r".repeat(501) }),
        },
        {
          name: "refunds: order_id with a full-width digit",
          status: 400,
          code: "invalid_request",
          send: () => postJson("refunds", { order_id: b1.order.id.replace(/\d/, "１") }),
        },
        {
          name: "payment-methods: id in the path with an encoded NUL",
          status: 400,
          code: "invalid_request",
          send: () =>
            raw(s, `payment-methods/${bobCard.id}%00`, { method: "DELETE", token: alice.token }),
        },
        {
          name: "payment-methods: id in the path with broken percent-encoding",
          status: 400,
          code: "invalid_request",
          send: () => post(`payment-methods/%E0%A4%A/default`, "{}", { token: alice.token }),
        },
        {
          name: "webhook: gateway in the path with broken percent-encoding",
          status: 400,
          code: "invalid_request",
          send: () =>
            post("webhook/%ff", body, { headers: { ...evId, "x-razorpay-signature": sig } }),
          also: a1StillCreated,
        },
        {
          name: "subscriptions: account_id with a right-to-left override",
          status: 400,
          code: "invalid_request",
          send: () =>
            get(`subscriptions?account_id=${encodeURIComponent(`\u202E${alice.accountId}`)}`),
        },
      ];

      // ------------------------------------------------------------ wrong methods
      const methods: Case[] = [
        ...([
          ["verify", "PATCH"],
          ["refunds", "PUT"],
          ["refunds", "DELETE"],
          ["payment-methods", "PATCH"],
          ["payment-methods/setup", "PUT"],
          ["subscriptions", "DELETE"],
          ["subscriptions/cancel", "GET"],
          ["webhook/razorpay", "DELETE"],
        ] as const).map(([path, method]): Case => ({
          name: `${path}: ${method}`,
          status: 405,
          code: "method_not_allowed",
          send: () =>
            raw(s, path, {
              method,
              token: path.startsWith("webhook") ? undefined : alice.token,
              headers: method === "GET" || method === "DELETE" ? {} : json,
              body: method === "GET" || method === "DELETE" ? undefined : "{}",
            }),
        })),
      ];

      // ------------------------------------------------------------ CORS
      const origin = new URL(s.url);
      const cors: Case[] = [
        ...([
          ["refunds", "https://evil.example"],
          ["payment-methods", `${origin.origin}.evil.example`],
          ["subscriptions", `http://evil${origin.host}`],
          ["verify", `${origin.origin}:1`],
          ["create-order", origin.origin.replace("http:", "https:")],
        ] as const).map(([path, from]): Case => ({
          name: `${path}: request from ${from}`,
          status: 403,
          code: "forbidden",
          send: () =>
            path === "payment-methods" || path === "subscriptions"
              ? get(path, alice.token, { origin: from })
              : post(
                path,
                JSON.stringify(
                  path === "verify" ? a1Proof : path === "refunds" ? refundBody : topup,
                ),
                {
                  token: path === "refunds" ? bob.token : alice.token,
                  headers: { origin: from },
                },
              ),
          also: a1StillCreated,
        })),
        ...["refunds", "payment-methods/setup", "subscriptions/cancel"].map((path): Case => ({
          name: `${path}: preflight from an unknown origin`,
          status: 403,
          code: "forbidden",
          send: () =>
            raw(s, path, {
              method: "OPTIONS",
              headers: {
                origin: "https://evil.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
              },
            }),
        })),
      ];

      // ------------------------------------------------------------ service-role jobs
      // reconcile and outbox-dispatch run for the service role only (pg_cron calls them); a
      // valid call would do real work, so every case here must be refused before any.
      const mounted = new Set<string>(Object.keys(FUNCTIONS));
      const jobs: Case[] = ["reconcile", "outbox-dispatch", "gateway-audit"]
        .filter((fn) => mounted.has(fn))
        .flatMap((fn): Case[] => {
          const service = s.serviceRoleKey;
          return [
            {
              name: `${fn}: a user's JWT`,
              status: 403,
              code: "forbidden",
              send: () => post(fn, "{}", { token: alice.token }),
            },
            {
              name: `${fn}: no Authorization header`,
              status: 401,
              code: "unauthorized",
              send: () => post(fn, "{}"),
            },
            {
              name: `${fn}: service role forged with another key`,
              status: 401,
              code: "unauthorized",
              send: () => post(fn, "{}", { token: tokens.forgedService }),
            },
            {
              name: `${fn}: a user's JWT tampered to role service_role`,
              status: 401,
              code: "unauthorized",
              send: () => post(fn, "{}", { token: tokens.tamperedRole }),
            },
            {
              name: `${fn}: alg none`,
              status: 401,
              code: "unauthorized",
              send: () => post(fn, "{}", { token: tokens.algNone }),
            },
            {
              name: `${fn}: GET`,
              status: 405,
              code: "method_not_allowed",
              send: () => get(fn, service),
            },
            {
              name: `${fn}: SQL-ish limit`,
              status: 400,
              code: "invalid_request",
              send: () => postJson(fn, { limit: sqlish }, service),
            },
            {
              name: `${fn}: limit nested 6000 objects deep`,
              status: 400,
              code: "invalid_request",
              send: () => post(fn, nestedUnder("limit", 6000), { token: service }),
            },
            {
              name: `${fn}: ${BODY_MB} MB body`,
              status: 413,
              code: "payload_too_large",
              send: () =>
                sendBig(s, fn, {
                  method: "POST",
                  token: service,
                  headers: json,
                  body: padded(big),
                }),
            },
          ];
        });

      // gateway-audit's own body: a window of unix seconds and account ids, nothing else.
      const auditNow = Math.floor(Date.now() / 1000);
      const auditBodies: [string, unknown][] = [
        ["from after to", { from: auditNow, to: auditNow - 1 }],
        ["a window over 31 days", { from: auditNow - 32 * 86400, to: auditNow }],
        ["to without from", { to: auditNow }],
        ["from as a string", { from: String(auditNow - 60) }],
        ["from in milliseconds", { from: Date.now() }],
        ["a fractional from", { from: auditNow - 0.5 }],
        ["a negative from", { from: -1 }],
        ["SQL-ish account id", { from: auditNow - 60, account_ids: [sqlish] }],
        ["an empty account list", { from: auditNow - 60, account_ids: [] }],
        ["an unknown key", { from: auditNow - 60, gateway: "razorpay" }],
      ];
      if (mounted.has("gateway-audit")) {
        jobs.push(...auditBodies.map(([name, body]): Case => ({
          name: `gateway-audit: ${name}`,
          status: 400,
          code: "invalid_request",
          send: () => postJson("gateway-audit", body, s.serviceRoleKey),
        })));
      }

      // ------------------------------------------------------------ run
      const groups: [string, Case[]][] = [
        ["jobs", jobs],
        ["webhook/razorpay", razorpayWebhook],
        ["webhook/stripe", stripeWebhookCases],
        ["jwt", jwt],
        ["idor", idor],
        ["sql", sql],
        ["size", sizes],
        ["unicode", unicode],
        ["method", methods],
        ["cors", cors],
      ];
      const tables = await watchedTables(s);
      for (
        const must of ["public.orders", "public.refunds", "public.webhook_events", "auth.users"]
      ) {
        assert.ok(tables.includes(must), `${must} is not watched`);
      }
      await runCases(t, s, groups, {
        atLeast: 60,
        watches: [rowsUnchanged(s, tables), gatewaysUnchanged(s)],
      });

      // ------------------------------------------------------------ positive controls
      await t.step("control: the held-back proofs and events still work", async () => {
        const before = await checksums(s, tables);
        const v = await postJson("verify", a1Proof);
        assert.equal(v.status, 200, JSON.stringify(v.body));
        assert.equal(v.body.order.status, "paid");
        const w = await stripeWebhook(sBody, stripeHeader(sBody, Math.floor(Date.now() / 1000)));
        assert.equal(w.status, 200, JSON.stringify(w.body));
        assert.equal(await statusOf(sOrder.body.order.id), "paid");
        const r = await postJson("refunds", { order_id: b1.order.id, amount: 100 }, bob.token);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        await idle(s);
        // The checksums see real writes: the same comparison the cases pass now fails.
        const after = await checksums(s, tables);
        for (const changed of ["public.orders", "public.refunds", "public.ledger_entries"]) {
          assert.notEqual(after[changed], before[changed], `${changed} did not change`);
        }
      });
    });
  },
});
