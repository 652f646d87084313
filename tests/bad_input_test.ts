// Bad input at every public edge (create-order, verify, webhook, CORS): each request must get the
// contract's exact status and error code, a clean JSON error without internals, and must change
// nothing: not one database row, not one gateway order.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { base64url, SignJWT } from "jose";
import { LOCAL_RAZORPAY } from "../dev/stack.ts";
import { LOCAL_JWT_SECRET, signJwt, userToken } from "../dev/keys.ts";
import {
  client,
  createUser,
  invoke,
  payAtSimulator,
  postWebhook,
  raw,
  simEvents,
  type TestStack,
  type TestUser,
  topupOrder,
  withStack,
} from "./support/stack.ts";
import { type Case, databaseUnchanged, runCases, type Watch } from "./support/contract.ts";

const RAZORPAY_BASIC = "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`);
const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A well-formed but never issued Razorpay id ("order_" or "pay_" and 14 alphanumerics). */
function fakeRazorpayId(prefix: "order_" | "pay_"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(14));
  return prefix + Array.from(bytes, (b) => ALNUM[b % ALNUM.length]).join("");
}

function hmacHex(secret: string, message: string): string {
  return createHmac("sha256", secret).update(message, "utf8").digest("hex");
}

/** A body sent in 8 KiB chunks with no Content-Length, so only the streaming limit can stop it. */
function chunked(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + 8192));
      at += 8192;
    },
  });
}

const encodeJson = (v: unknown) => base64url.encode(JSON.stringify(v));
const decodeJson = (part: string) => JSON.parse(new TextDecoder().decode(base64url.decode(part)));

/** The ids of every order the simulator holds (newest first): a new gateway order shows here. */
async function simulatorOrderIds(s: TestStack): Promise<string[]> {
  const res = await fetch(`${s.simulatorUrl}/razorpay/v1/orders?count=100`, {
    headers: { authorization: RAZORPAY_BASIC },
  });
  assert.equal(res.status, 200, "simulator order list");
  const list = await res.json() as { items: { id: string }[] };
  return list.items.map((o) => o.id);
}

async function orderStatus(s: TestStack, gatewayOrderId: string): Promise<string> {
  const [row] = await s.db`select status from public.orders
    where gateway = 'razorpay' and gateway_order_id = ${gatewayOrderId}`;
  return row.status;
}

/** No order was created at the gateway (simulator). */
const simulatorOrdersUnchanged = (s: TestStack): Watch => async () => {
  const before = await simulatorOrderIds(s);
  return async () =>
    assert.deepEqual(await simulatorOrderIds(s), before, "the gateway (simulator) got a new order");
};

Deno.test({
  name: "bad input gets the contract's 4xx and changes nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await withStack(async (s) => {
      // ------------------------------------------------------------ arrangement
      const alice = await createUser(s.db, "alice");
      const bob = await createUser(s.db, "bob");
      const asAlice = client(s, alice.token);
      const topup = {
        gateway: "razorpay",
        purpose: "wallet_topup",
        amount: 50000,
        currency: "INR",
      };

      // An order made under an Idempotency-Key; the conflicting replay is a case below.
      const idemKey = `bad-input-${crypto.randomUUID()}`;
      const first = await invoke(asAlice, "create-order", topup, {
        headers: { "Idempotency-Key": idemKey },
      });
      assert.equal(first.status, 201, JSON.stringify(first.body));

      // Two of alice's orders paid at the gateway whose webhooks are never delivered: the real
      // checkout results and signed events are in hand, the local orders stay created.
      const a1 = await topupOrder(s, alice, 50000);
      const a2 = await topupOrder(s, alice, 70000);
      const pay1 = await payAtSimulator(s, a1.order.gateway_order_id, {
        webhooks: { deliver: false },
      }) as { razorpay_order_id: string; razorpay_payment_id: string; razorpay_signature: string };
      const pay2 = await payAtSimulator(s, a2.order.gateway_order_id, {
        webhooks: { deliver: false },
      }) as typeof pay1;
      assert.equal(pay1.razorpay_order_id, a1.order.gateway_order_id);
      assert.match(pay1.razorpay_signature, /^[0-9a-f]{64}$/);
      const events = await simEvents(s, a1.order.gateway_order_id);
      const captured = events.find((e) => e.type === "payment.captured");
      const authorized = events.find((e) => e.type === "payment.authorized");
      assert.ok(captured && authorized, `simulator events: ${events.map((e) => e.type)}`);
      await s.razorpay.idle();
      assert.equal(await orderStatus(s, a1.order.gateway_order_id), "created");
      assert.equal(await orderStatus(s, a2.order.gateway_order_id), "created");
      // The gateway-order check below would see a new order: the fixtures' are listed.
      const simOrders = await simulatorOrderIds(s);
      for (const o of [first.body.order, a1.order, a2.order]) {
        assert.ok(simOrders.includes(o.gateway_order_id), `simulator lacks ${o.gateway_order_id}`);
      }
      const stillCreated = (gatewayOrderId: string) => async () => {
        assert.equal(await orderStatus(s, gatewayOrderId), "created", "the order moved on");
      };

      // Tokens that must not pass.
      const userClaims = (u: TestUser) => ({
        sub: u.id,
        aud: "authenticated",
        role: "authenticated",
        email: u.email,
      });
      const secret = new TextEncoder().encode(LOCAL_JWT_SECRET);
      const [aliceHeader, alicePayload] = alice.token.split(".");
      const tokens = {
        expired: await signJwt(userClaims(alice), { expiresInSeconds: -60 }),
        expiredLongAgo: await signJwt(userClaims(alice), {
          nowSeconds: Math.floor(Date.now() / 1000) - 7 * 24 * 3600,
        }),
        audAnon: await signJwt({ ...userClaims(alice), aud: "anon" }),
        otherSecret: await userToken(alice.id, {
          secret: "another-project-secret-with-at-least-32-characters",
        }),
        algNone: `${encodeJson({ alg: "none", typ: "JWT" })}.${alicePayload}.`,
        tampered: (() => {
          const claims = decodeJson(alicePayload);
          const forged = encodeJson({ ...claims, sub: bob.id });
          return `${aliceHeader}.${forged}.${alice.token.split(".")[2]}`;
        })(),
        noExp: await new SignJWT(userClaims(alice)).setProtectedHeader({ alg: "HS256" })
          .setIssuedAt().sign(secret),
        hs512: await new SignJWT(userClaims(alice)).setProtectedHeader({ alg: "HS512" })
          .setIssuedAt().setExpirationTime("1h").sign(secret),
      };
      assert.notEqual(decodeJson(tokens.tampered.split(".")[1]).sub, alice.id);

      const post = (
        path: string,
        body: BodyInit,
        opts: { token?: string; headers?: Record<string, string> } = {},
      ) =>
        raw(s, path, {
          method: "POST",
          token: opts.token,
          headers: { "content-type": "application/json", ...opts.headers },
          body,
        });
      const order = (body: unknown, opts: { headers?: Record<string, string> } = {}) =>
        invoke(asAlice, "create-order", body, opts);
      const verifyAs = (u: TestUser, body: unknown) => invoke(client(s, u.token), "verify", body);
      const a1Proof = {
        razorpay_order_id: pay1.razorpay_order_id,
        razorpay_payment_id: pay1.razorpay_payment_id,
        razorpay_signature: pay1.razorpay_signature,
      };
      const webhook = (
        body: string,
        headers: Record<string, string>,
        path = "webhook/razorpay",
      ) =>
        raw(s, path, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body,
        });
      const signedWebhook = (body: string) => ({
        "x-razorpay-signature": hmacHex(LOCAL_RAZORPAY.webhookSecret, body),
        "x-razorpay-event-id": fakeRazorpayId("pay_").replace("pay_", "evt_"),
      });

      // ------------------------------------------------------------ create-order: body
      const oversizedOrder = JSON.stringify({ ...topup, note: "x".repeat(65 * 1024) });
      const createOrderBody: Case[] = [
        {
          name: "malformed JSON",
          status: 400,
          code: "invalid_json",
          send: () => post("create-order", '{"gateway":', { token: alice.token }),
        },
        {
          name: "empty body",
          status: 400,
          code: "invalid_json",
          send: () => post("create-order", "", { token: alice.token }),
        },
        {
          name: "body that is not UTF-8",
          status: 400,
          code: "invalid_json",
          send: () =>
            post("create-order", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), {
              token: alice.token,
            }),
        },
        {
          name: "JSON array",
          status: 400,
          code: "invalid_request",
          send: () => order([topup]),
        },
        {
          name: "JSON null",
          status: 400,
          code: "invalid_request",
          send: () => post("create-order", "null", { token: alice.token }),
        },
        {
          name: "JSON string",
          status: 400,
          code: "invalid_request",
          send: () => post("create-order", '"wallet_topup"', { token: alice.token }),
        },
        {
          name: "body over 64 KiB",
          status: 413,
          code: "payload_too_large",
          send: () => order(JSON.parse(oversizedOrder)),
        },
        {
          name: "body over 64 KiB streamed without Content-Length",
          status: 413,
          code: "payload_too_large",
          send: () => post("create-order", chunked(oversizedOrder), { token: alice.token }),
        },
        {
          name: "text/plain content type",
          status: 415,
          code: "unsupported_media_type",
          send: () => order(JSON.stringify(topup)),
        },
        {
          name: "no content type",
          status: 415,
          code: "unsupported_media_type",
          send: () =>
            raw(s, "create-order", {
              method: "POST",
              token: alice.token,
              body: new TextEncoder().encode(JSON.stringify(topup)),
            }),
        },
        {
          name: "GET method",
          status: 405,
          code: "method_not_allowed",
          send: () => invoke(asAlice, "create-order", undefined, { method: "GET" }),
        },
        {
          name: "PUT method",
          status: 405,
          code: "method_not_allowed",
          send: () =>
            raw(s, "create-order", {
              method: "PUT",
              token: alice.token,
              headers: { "content-type": "application/json" },
              body: JSON.stringify(topup),
            }),
        },
        {
          name: "missing gateway",
          status: 400,
          code: "invalid_request",
          send: () => order({ purpose: "wallet_topup", amount: 50000, currency: "INR" }),
        },
        {
          name: "unknown gateway adyen",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, gateway: "adyen" }),
        },
        {
          name: "missing purpose",
          status: 400,
          code: "invalid_request",
          send: () => order({ gateway: "razorpay", amount: 50000, currency: "INR" }),
        },
        {
          name: "unknown purpose",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, purpose: "donation" }),
        },
        {
          name: "unknown field (ammount typo)",
          status: 400,
          code: "invalid_request",
          send: () =>
            order({
              gateway: "razorpay",
              purpose: "wallet_topup",
              ammount: 50000,
              currency: "INR",
            }),
        },
        {
          name: "__proto__ key (strict schema)",
          status: 400,
          code: "invalid_request",
          send: () =>
            post(
              "create-order",
              '{"gateway":"razorpay","purpose":"wallet_topup","amount":50000,"currency":"INR","__proto__":{"amount":1}}',
              { token: alice.token },
            ),
        },
        {
          name: "top-up without currency",
          status: 400,
          code: "invalid_request",
          send: () => order({ gateway: "razorpay", purpose: "wallet_topup", amount: 50000 }),
        },
        {
          name: "negative amount",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, amount: -50000 }),
        },
        {
          name: "zero amount",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, amount: 0 }),
        },
        {
          name: "fractional amount 12.5",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, amount: 12.5 }),
        },
        {
          name: 'amount as a string ("50000")',
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, amount: "50000" }),
        },
        {
          name: "huge amount 1e15",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, amount: 1e15 }),
        },
        {
          name: "amount 2**53+2 (beyond safe integers)",
          status: 400,
          code: "invalid_request",
          send: () =>
            post(
              "create-order",
              '{"gateway":"razorpay","purpose":"wallet_topup","amount":9007199254740994,"currency":"INR"}',
              { token: alice.token },
            ),
        },
        {
          name: "amount below the INR top-up minimum (99)",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, amount: 99 }),
        },
        {
          name: "amount above the INR top-up maximum (10000001)",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, amount: 10_000_001 }),
        },
        {
          name: "JPY below its top-up minimum (49)",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, amount: 49, currency: "JPY" }),
        },
        {
          name: "unknown currency XYZ",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, currency: "XYZ" }),
        },
        {
          name: "malformed currency RUPEES",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, currency: "RUPEES" }),
        },
        {
          name: "KWD top-up not ending in 0 (1005) for razorpay",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, amount: 1005, currency: "KWD" }),
        },
        {
          name: "unknown plan_id",
          status: 404,
          code: "not_found",
          send: () => order({ gateway: "razorpay", purpose: "plan", plan_id: "gold_forever" }),
        },
        {
          name: "malformed plan_id",
          status: 400,
          code: "invalid_request",
          send: () => order({ gateway: "razorpay", purpose: "plan", plan_id: "Gold Forever!" }),
        },
        {
          name: "plan without plan_id",
          status: 400,
          code: "invalid_request",
          send: () => order({ gateway: "razorpay", purpose: "plan" }),
        },
        {
          name: "plan carrying an amount (price comes from the catalog)",
          status: 400,
          code: "invalid_request",
          send: () =>
            order({ gateway: "razorpay", purpose: "plan", plan_id: "pro_monthly", amount: 100 }),
        },
        {
          name: "plan carrying a currency",
          status: 400,
          code: "invalid_request",
          send: () =>
            order({
              gateway: "razorpay",
              purpose: "plan",
              plan_id: "pro_monthly",
              currency: "USD",
            }),
        },
        {
          name: "product with plan_id",
          status: 400,
          code: "invalid_request",
          send: () =>
            order({
              gateway: "razorpay",
              purpose: "product",
              product_id: "ebook",
              plan_id: "pro_monthly",
            }),
        },
        {
          name: "unknown product_id",
          status: 404,
          code: "not_found",
          send: () => order({ gateway: "razorpay", purpose: "product", product_id: "golden_tea" }),
        },
        {
          name: "top-up with product_id",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, product_id: "ebook" }),
        },
        {
          name: "another user's account_id",
          status: 404,
          code: "not_found",
          send: () => order({ ...topup, account_id: bob.accountId }),
        },
        {
          name: "another user's account_id for a plan",
          status: 404,
          code: "not_found",
          send: () =>
            order({
              gateway: "razorpay",
              purpose: "plan",
              plan_id: "pro_monthly",
              account_id: bob.accountId,
            }),
        },
        {
          name: "non-existent account_id",
          status: 404,
          code: "not_found",
          send: () => order({ ...topup, account_id: crypto.randomUUID() }),
        },
        {
          name: "malformed account_id",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...topup, account_id: "not-a-uuid" }),
        },
        {
          name: "Idempotency-Key reused with a different body",
          status: 409,
          code: "idempotency_conflict",
          send: () =>
            order({ ...topup, amount: 60000 }, { headers: { "Idempotency-Key": idemKey } }),
        },
        {
          name: "Idempotency-Key reused for another purpose",
          status: 409,
          code: "idempotency_conflict",
          send: () =>
            order(
              { gateway: "razorpay", purpose: "product", product_id: "ebook" },
              { headers: { "Idempotency-Key": idemKey } },
            ),
        },
        {
          name: "Idempotency-Key of 300 characters",
          status: 400,
          code: "invalid_request",
          send: () => order(topup, { headers: { "Idempotency-Key": "k".repeat(300) } }),
        },
        {
          name: "Idempotency-Key with a space",
          status: 400,
          code: "invalid_request",
          send: () => order(topup, { headers: { "Idempotency-Key": "order one" } }),
        },
      ];

      // ------------------------------------------------------------ auth
      const auth: Case[] = [
        {
          name: "create-order: supabase-js without a session (sends the anon key)",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s), "create-order", topup),
        },
        {
          name: "create-order: no Authorization header",
          status: 401,
          code: "unauthorized",
          send: () => post("create-order", JSON.stringify(topup)),
        },
        {
          name: "create-order: the anon key as bearer",
          status: 401,
          code: "unauthorized",
          send: () => post("create-order", JSON.stringify(topup), { token: s.anonKey }),
        },
        {
          name: "create-order: expired user JWT",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, tokens.expired), "create-order", topup),
        },
        {
          name: "create-order: user JWT that expired a week ago",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, tokens.expiredLongAgo), "create-order", topup),
        },
        {
          name: "create-order: user JWT without exp",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, tokens.noExp), "create-order", topup),
        },
        {
          name: 'create-order: wrong audience "anon"',
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, tokens.audAnon), "create-order", topup),
        },
        {
          name: "create-order: token signed with another secret",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, tokens.otherSecret), "create-order", topup),
        },
        {
          name: "create-order: alg none token",
          status: 401,
          code: "unauthorized",
          send: () => post("create-order", JSON.stringify(topup), { token: tokens.algNone }),
        },
        {
          name: "create-order: HS512 token with the right secret (algorithm not allowed)",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, tokens.hs512), "create-order", topup),
        },
        {
          name: "create-order: tampered claims (sub changed, signature kept)",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, tokens.tampered), "create-order", topup),
        },
        {
          name: "create-order: service_role key (the function acts for a user)",
          status: 403,
          code: "forbidden",
          send: () => invoke(client(s, s.serviceRoleKey), "create-order", topup),
        },
        {
          name: 'create-order: garbage "Bearer abc"',
          status: 401,
          code: "unauthorized",
          send: () => post("create-order", JSON.stringify(topup), { token: "abc" }),
        },
        {
          name: "create-order: Basic credentials instead of a bearer token",
          status: 401,
          code: "unauthorized",
          send: () =>
            post("create-order", JSON.stringify(topup), {
              headers: { authorization: `Basic ${btoa(`${alice.email}:password`)}` },
            }),
        },
        {
          name: "verify: no Authorization header",
          status: 401,
          code: "unauthorized",
          send: () => post("verify", JSON.stringify(a1Proof)),
        },
        {
          name: "verify: supabase-js without a session (anon key)",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s), "verify", a1Proof),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "verify: expired user JWT with a valid proof",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, tokens.expired), "verify", a1Proof),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "verify: alg none token with a valid proof",
          status: 401,
          code: "unauthorized",
          send: () => post("verify", JSON.stringify(a1Proof), { token: tokens.algNone }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "verify: token signed with another secret",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, tokens.otherSecret), "verify", a1Proof),
        },
        {
          name: "verify: service_role key",
          status: 403,
          code: "forbidden",
          send: () => invoke(client(s, s.serviceRoleKey), "verify", a1Proof),
          also: stillCreated(a1.order.gateway_order_id),
        },
      ];

      // ------------------------------------------------------------ verify
      const verify: Case[] = [
        {
          name: "forged signature (right format, wrong HMAC)",
          status: 400,
          code: "invalid_signature",
          send: () =>
            verifyAs(alice, {
              ...a1Proof,
              razorpay_signature: hmacHex("not-the-key-secret", `${a1Proof.razorpay_order_id}|x`),
            }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "signature of a different payment id",
          status: 400,
          code: "invalid_signature",
          send: () =>
            verifyAs(alice, {
              ...a1Proof,
              razorpay_signature: hmacHex(
                LOCAL_RAZORPAY.keySecret,
                `${a1Proof.razorpay_order_id}|${fakeRazorpayId("pay_")}`,
              ),
            }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "another order's valid payment and signature",
          status: 400,
          code: "invalid_signature",
          send: () =>
            verifyAs(alice, {
              razorpay_order_id: a1.order.gateway_order_id,
              razorpay_payment_id: pay2.razorpay_payment_id,
              razorpay_signature: pay2.razorpay_signature,
            }),
          also: async () => {
            await stillCreated(a1.order.gateway_order_id)();
            await stillCreated(a2.order.gateway_order_id)();
          },
        },
        {
          name: "missing razorpay_signature",
          status: 400,
          code: "invalid_request",
          send: () =>
            verifyAs(alice, {
              razorpay_order_id: a1Proof.razorpay_order_id,
              razorpay_payment_id: a1Proof.razorpay_payment_id,
            }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "malformed razorpay_payment_id",
          status: 400,
          code: "invalid_request",
          send: () => verifyAs(alice, { ...a1Proof, razorpay_payment_id: "pay_1" }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "unknown field beside a valid proof",
          status: 400,
          code: "invalid_request",
          send: () => verifyAs(alice, { ...a1Proof, status: "paid" }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "wrong-format order id",
          status: 400,
          code: "invalid_request",
          send: () => verifyAs(alice, { ...a1Proof, razorpay_order_id: "order_123" }),
        },
        {
          name: "order id with a NUL character",
          status: 400,
          code: "invalid_request",
          send: () =>
            verifyAs(alice, { ...a1Proof, razorpay_order_id: "order_\u0000AAAAAAAAAAAAA" }),
        },
        {
          name: "order id that is not a string",
          status: 400,
          code: "invalid_request",
          send: () => verifyAs(alice, { ...a1Proof, razorpay_order_id: 12345 }),
        },
        {
          name: "another user's order with its real valid signature",
          status: 404,
          code: "not_found",
          send: () => verifyAs(bob, a1Proof),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "unknown order id of the right format",
          status: 404,
          code: "not_found",
          send: () => verifyAs(alice, { ...a1Proof, razorpay_order_id: fakeRazorpayId("order_") }),
        },
        {
          name: "empty object",
          status: 400,
          code: "invalid_request",
          send: () => verifyAs(alice, {}),
        },
        {
          name: "malformed JSON",
          status: 400,
          code: "invalid_json",
          send: () => post("verify", '{"razorpay_order_id":', { token: alice.token }),
        },
        {
          name: "text/plain content type",
          status: 415,
          code: "unsupported_media_type",
          send: () => invoke(client(s, alice.token), "verify", JSON.stringify(a1Proof)),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "DELETE method",
          status: 405,
          code: "method_not_allowed",
          send: () => invoke(client(s, alice.token), "verify", undefined, { method: "DELETE" }),
        },
      ];

      // ------------------------------------------------------------ webhook/razorpay
      const tamperedBody = captured.body.replace('"amount":50000,', '"amount":90000,');
      assert.notEqual(tamperedBody, captured.body, "the captured event carries amount 50000");
      assert.equal(tamperedBody.length, captured.body.length);
      const oversized = (() => {
        const body = JSON.stringify({
          ...JSON.parse(captured.body),
          padding: "x".repeat(256 * 1024),
        });
        return { body, headers: signedWebhook(body) };
      })();
      const realHeaders = (e: { event_id: string; signature: string }) => ({
        "x-razorpay-signature": e.signature,
        "x-razorpay-event-id": e.event_id,
      });
      const webhooks: Case[] = [
        {
          name: "missing X-Razorpay-Signature",
          status: 400,
          code: "invalid_signature",
          send: () => webhook(captured.body, { "x-razorpay-event-id": captured.event_id }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "empty X-Razorpay-Signature",
          status: 400,
          code: "invalid_signature",
          send: () =>
            webhook(captured.body, {
              "x-razorpay-signature": "",
              "x-razorpay-event-id": captured.event_id,
            }),
        },
        {
          name: "forged signature",
          status: 400,
          code: "invalid_signature",
          send: () =>
            postWebhook(s, {
              ...captured,
              signature: hmacHex("not-the-webhook-secret", captured.body),
            }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "tampered body (one byte of the amount changed)",
          status: 400,
          code: "invalid_signature",
          send: () => postWebhook(s, { ...captured, body: tamperedBody }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "signature of another event's body",
          status: 400,
          code: "invalid_signature",
          send: () => postWebhook(s, { ...captured, signature: authorized.signature }),
        },
        {
          name: "signed with the key secret instead of the webhook secret",
          status: 400,
          code: "invalid_signature",
          send: () =>
            postWebhook(s, {
              ...captured,
              signature: hmacHex(LOCAL_RAZORPAY.keySecret, captured.body),
            }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: "correctly signed body over 256 KiB",
          status: 413,
          code: "payload_too_large",
          send: () => webhook(oversized.body, oversized.headers),
        },
        {
          name: "unknown gateway path webhook/adyen",
          status: 404,
          code: "not_found",
          send: () => webhook(captured.body, realHeaders(captured), "webhook/adyen"),
        },
        {
          name: "no gateway in the path",
          status: 404,
          code: "not_found",
          send: () => webhook(captured.body, realHeaders(captured), "webhook"),
        },
        {
          name: "extra path segment webhook/razorpay/extra",
          status: 404,
          code: "not_found",
          send: () => webhook(captured.body, realHeaders(captured), "webhook/razorpay/extra"),
        },
        {
          name: "GET method",
          status: 405,
          code: "method_not_allowed",
          send: () => raw(s, "webhook/razorpay", { method: "GET", headers: realHeaders(captured) }),
        },
      ];

      // ------------------------------------------------------------ CORS
      const evil = { origin: "https://evil.example" };
      const cors: Case[] = [
        {
          name: "create-order from a foreign origin with a valid token and body",
          status: 403,
          code: "forbidden",
          send: () =>
            post("create-order", JSON.stringify(topup), { token: alice.token, headers: evil }),
        },
        {
          name: "preflight from a foreign origin",
          status: 403,
          code: "forbidden",
          send: () =>
            raw(s, "create-order", {
              method: "OPTIONS",
              headers: {
                ...evil,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
              },
            }),
        },
        {
          name: "verify from a foreign origin with a valid proof",
          status: 403,
          code: "forbidden",
          send: () =>
            post("verify", JSON.stringify(a1Proof), { token: alice.token, headers: evil }),
          also: stillCreated(a1.order.gateway_order_id),
        },
        {
          name: 'create-order from the opaque origin "null"',
          status: 403,
          code: "forbidden",
          send: () =>
            post("create-order", JSON.stringify(topup), {
              token: alice.token,
              headers: { origin: "null" },
            }),
        },
      ];

      const groups: [string, Case[]][] = [
        ["create-order", createOrderBody],
        ["auth", auth],
        ["verify", verify],
        ["webhook", webhooks],
        ["cors", cors],
      ];
      await runCases(t, s, groups, {
        atLeast: 30,
        watches: [databaseUnchanged(s), simulatorOrdersUnchanged(s)],
      });

      // ------------------------------------------------------------ positive controls
      await t.step("control: preflight from the stack's own origin is answered", async () => {
        const res = await fetch(`${s.functionsUrl}/create-order`, {
          method: "OPTIONS",
          headers: {
            origin: s.url,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, idempotency-key",
          },
        });
        await res.body?.cancel();
        assert.equal(res.status, 204);
        assert.equal(res.headers.get("access-control-allow-origin"), s.url);
        const allowed = res.headers.get("access-control-allow-headers") ?? "";
        for (const h of ["authorization", "content-type", "idempotency-key"]) {
          assert.ok(allowed.includes(h), `preflight does not allow ${h}: ${allowed}`);
        }
      });

      await t.step("control: the fixtures are untouched and still verifiable", async () => {
        assert.equal(await orderStatus(s, a1.order.gateway_order_id), "created");
        assert.equal(await orderStatus(s, a2.order.gateway_order_id), "created");
        const same = await invoke(asAlice, "create-order", topup, {
          headers: { "Idempotency-Key": idemKey },
        });
        assert.equal(same.status, 200, JSON.stringify(same.body));
        assert.equal(same.body.order.id, first.body.order.id);
        const ok = await verifyAs(alice, a1Proof);
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        assert.equal(ok.body.order.status, "paid");
      });
    });
  },
});
