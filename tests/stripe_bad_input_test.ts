// Bad input at the Stripe edges (create-order with Stripe's amount rules, verify with a
// payment_intent_id, webhook/stripe signatures) and at payment-methods: each request must get the
// contract's exact status and error code, a clean JSON error, and must change nothing.
import assert from "node:assert/strict";
import { LOCAL_STRIPE } from "../dev/stack.ts";
import { signJwt } from "../dev/keys.ts";
import { hmacSha256Hex } from "../shared/crypto.ts";
import {
  client,
  confirmAtStripe,
  confirmSetupAtStripe,
  createUser,
  idle,
  invoke,
  postStripeWebhook,
  raw,
  stripeEvents,
  type TestStack,
  type TestUser,
  withStack,
} from "./support/stack.ts";
import { type Case, runCases } from "./support/contract.ts";

async function orderStatus(s: TestStack, paymentIntentId: string): Promise<string> {
  const [row] = await s.db`select status from public.orders
    where gateway = 'stripe' and gateway_order_id = ${paymentIntentId}`;
  return row.status;
}

async function stripeTopup(s: TestStack, u: TestUser, amount: number, currency: string) {
  const r = await invoke(client(s, u.token), "create-order", {
    gateway: "stripe",
    purpose: "wallet_topup",
    amount,
    currency,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body as {
    order: { id: string; gateway_order_id: string };
    checkout: { payment_intent_id: string };
  };
}

async function addCard(s: TestStack, u: TestUser, card: string) {
  const setup = await invoke(client(s, u.token), "payment-methods/setup", {});
  assert.equal(setup.status, 200, JSON.stringify(setup.body));
  await confirmSetupAtStripe(s, setup.body.setup_intent_id, card);
  await s.stripe.idle();
}

async function methods(s: TestStack, u: TestUser) {
  const r = await invoke(client(s, u.token), "payment-methods", undefined, { method: "GET" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.payment_methods as { id: string; last4: string; is_default: boolean }[];
}

const sign = async (body: string, t: number, secret = LOCAL_STRIPE.webhookSecret) =>
  `t=${t},v1=${await hmacSha256Hex(secret, `${t}.${body}`)}`;

Deno.test({
  name: "stripe and payment-methods bad input gets the contract's 4xx and changes nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await withStack(async (s) => {
      // ------------------------------------------------------------ arrangement
      const alice = await createUser(s.db, "sbad-alice");
      const bob = await createUser(s.db, "sbad-bob");
      const asAlice = client(s, alice.token);

      // Bob's intent, paid at Stripe with no webhook delivered: his order stays created, and the
      // signed payment_intent.succeeded event is in hand.
      const bobOrder = await stripeTopup(s, bob, 1800, "USD");
      const bobPi = bobOrder.checkout.payment_intent_id;
      await confirmAtStripe(s, bobPi, { webhooks: { deliver: false } });
      const succeeded = (await stripeEvents(s, bobPi))
        .find((e) => e.type === "payment_intent.succeeded");
      assert.ok(succeeded, "no payment_intent.succeeded event");
      await idle(s);
      assert.equal(await orderStatus(s, bobPi), "created");
      const stillCreated = async () => {
        assert.equal(await orderStatus(s, bobPi), "created", "the order moved on");
      };

      // One saved card each.
      await addCard(s, alice, "4242424242424242");
      await addCard(s, bob, "5555555555554444");
      const [aliceCard] = await methods(s, alice);
      const [bobCard] = await methods(s, bob);
      assert.ok(aliceCard && bobCard);
      const aliceDefaultBefore = aliceCard.is_default;

      const expired = await signJwt({
        sub: alice.id,
        aud: "authenticated",
        role: "authenticated",
        email: alice.email,
      }, { expiresInSeconds: -60 });

      const order = (body: unknown) => invoke(asAlice, "create-order", body);
      const stripeTopupBody = { gateway: "stripe", purpose: "wallet_topup" };
      const verify = (body: unknown) => invoke(asAlice, "verify", body);
      const webhook = (body: string, headers: Record<string, string>) =>
        raw(s, "webhook/stripe", {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body,
        });
      const pm = (
        path: string,
        init: { method: string; body?: BodyInit; headers?: Record<string, string> },
        token: string | null = alice.token,
      ) => raw(s, path, { ...init, token: token ?? undefined });

      // ------------------------------------------------------------ create-order (stripe)
      const createOrder: Case[] = [
        {
          name: "KWD amount not ending in 0 (5125)",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...stripeTopupBody, amount: 5125, currency: "KWD" }),
        },
        {
          name: "BHD amount not ending in 0 (1231)",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...stripeTopupBody, amount: 1231, currency: "BHD" }),
        },
        {
          name: "JPY amount beyond Stripe's 8 digits (100000000)",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...stripeTopupBody, amount: 100_000_000, currency: "JPY" }),
        },
        {
          name: "ISK amount that is 9 digits at Stripe (x100)",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...stripeTopupBody, amount: 1_000_000, currency: "ISK" }),
        },
        {
          name: "unknown currency XYZ",
          status: 400,
          code: "invalid_request",
          send: () => order({ ...stripeTopupBody, amount: 5000, currency: "XYZ" }),
        },
        {
          name: "another user's account_id",
          status: 404,
          code: "not_found",
          send: () =>
            order({ ...stripeTopupBody, amount: 5000, currency: "USD", account_id: bob.accountId }),
        },
      ];

      // ------------------------------------------------------------ verify (stripe)
      const verifyCases: Case[] = [
        {
          name: "malformed payment_intent_id pi_123",
          status: 400,
          code: "invalid_request",
          send: () => verify({ payment_intent_id: "pi_123" }),
        },
        {
          name: "setup intent id instead of a payment intent id",
          status: 400,
          code: "invalid_request",
          send: () => verify({ payment_intent_id: "seti_1234567890abcdef" }),
        },
        {
          name: "unknown but well-formed payment_intent_id",
          status: 404,
          code: "not_found",
          send: () => verify({ payment_intent_id: "pi_" + "Zz9".repeat(8) }),
        },
        {
          name: "another user's real payment_intent_id",
          status: 404,
          code: "not_found",
          send: () => verify({ payment_intent_id: bobPi }),
          also: stillCreated,
        },
        {
          name: "payment_intent_id plus an extra field",
          status: 400,
          code: "invalid_request",
          send: () => verify({ payment_intent_id: bobPi, amount: 1 }),
          also: stillCreated,
        },
        {
          name: "payment_intent_id of the wrong type (number)",
          status: 400,
          code: "invalid_request",
          send: () => verify({ payment_intent_id: 12345678 }),
        },
        {
          name: "payment_intent_id null",
          status: 400,
          code: "invalid_request",
          send: () => verify({ payment_intent_id: null }),
        },
      ];

      // ------------------------------------------------------------ webhook/stripe
      const now = Math.floor(Date.now() / 1000);
      const e = succeeded;
      const tampered = e.body.replace(/"amount_received": ?1800/, '"amount_received": 18');
      assert.notEqual(tampered, e.body, "tampering changed nothing");
      const otherBody = e.body.replace(/"livemode": ?false/, '"livemode": true');
      assert.notEqual(otherBody, e.body);
      const realV1 = (await sign(e.body, now)).split("v1=")[1];
      const webhookCases: Case[] = [
        {
          name: "missing Stripe-Signature",
          status: 400,
          code: "invalid_signature",
          send: () => webhook(e.body, {}),
          also: stillCreated,
        },
        {
          name: "empty Stripe-Signature",
          status: 400,
          code: "invalid_signature",
          send: () => postStripeWebhook(s, { body: e.body, signature: "" }),
        },
        {
          name: "header without v1",
          status: 400,
          code: "invalid_signature",
          send: () => postStripeWebhook(s, { body: e.body, signature: `t=${now}` }),
        },
        {
          name: "v1 without a timestamp",
          status: 400,
          code: "invalid_signature",
          send: () => postStripeWebhook(s, { body: e.body, signature: `v1=${realV1}` }),
        },
        {
          name: "v0 only (right HMAC, wrong scheme)",
          status: 400,
          code: "invalid_signature",
          send: () => postStripeWebhook(s, { body: e.body, signature: `t=${now},v0=${realV1}` }),
        },
        {
          name: "timestamp 301 s old",
          status: 400,
          code: "invalid_signature",
          send: async () =>
            postStripeWebhook(s, { body: e.body, signature: await sign(e.body, now - 301) }),
          also: stillCreated,
        },
        {
          name: "future-dated signature with the wrong secret",
          status: 400,
          code: "invalid_signature",
          send: async () =>
            postStripeWebhook(s, {
              body: e.body,
              signature: await sign(e.body, now + 3600, "whsec_not_the_secret"),
            }),
        },
        {
          name: "signed with the API secret key",
          status: 400,
          code: "invalid_signature",
          send: async () =>
            postStripeWebhook(s, {
              body: e.body,
              signature: await sign(e.body, now, LOCAL_STRIPE.secretKey),
            }),
        },
        {
          name: "signature over a different body",
          status: 400,
          code: "invalid_signature",
          send: async () =>
            postStripeWebhook(s, { body: e.body, signature: await sign(otherBody, now) }),
          also: stillCreated,
        },
        {
          name: "tampered body with the simulator's real signature",
          status: 400,
          code: "invalid_signature",
          send: () => postStripeWebhook(s, { body: tampered, signature: e.signature }),
          also: stillCreated,
        },
      ];

      // ------------------------------------------------------------ payment-methods
      const paymentMethods: Case[] = [
        {
          name: "GET with a malformed account_id",
          status: 400,
          code: "invalid_request",
          send: () => pm("payment-methods?account_id=not-a-uuid", { method: "GET" }),
        },
        {
          name: "GET with another user's account_id",
          status: 404,
          code: "not_found",
          send: () => pm(`payment-methods?account_id=${bob.accountId}`, { method: "GET" }),
        },
        {
          name: "GET with an unknown account_id",
          status: 404,
          code: "not_found",
          send: () => pm(`payment-methods?account_id=${crypto.randomUUID()}`, { method: "GET" }),
        },
        {
          name: "POST /setup with another user's account_id in the body",
          status: 404,
          code: "not_found",
          send: () => invoke(asAlice, "payment-methods/setup", { account_id: bob.accountId }),
        },
        {
          name: "POST /setup with another user's account_id in the query",
          status: 404,
          code: "not_found",
          send: () => invoke(asAlice, `payment-methods/setup?account_id=${bob.accountId}`, {}),
        },
        {
          name: "POST /setup with account_id of the wrong type",
          status: 400,
          code: "invalid_request",
          send: () => invoke(asAlice, "payment-methods/setup", { account_id: 42 }),
        },
        {
          name: "POST /setup with a malformed account_id",
          status: 400,
          code: "invalid_request",
          send: () => invoke(asAlice, "payment-methods/setup", { account_id: "acct-1" }),
        },
        {
          name: "POST /setup with text/plain and a body",
          status: 415,
          code: "unsupported_media_type",
          send: () =>
            pm("payment-methods/setup", {
              method: "POST",
              headers: { "content-type": "text/plain" },
              body: "{}",
            }),
        },
        {
          name: "POST /setup with malformed JSON",
          status: 400,
          code: "invalid_json",
          send: () =>
            pm("payment-methods/setup", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: '{"account_id":',
            }),
        },
        {
          name: "POST /setup with a JSON array",
          status: 400,
          code: "invalid_request",
          send: () =>
            pm("payment-methods/setup", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: "[]",
            }),
        },
        {
          name: "GET /setup",
          status: 405,
          code: "method_not_allowed",
          send: () => pm("payment-methods/setup", { method: "GET" }),
        },
        {
          name: "POST /{id}/default with a malformed id",
          status: 400,
          code: "invalid_request",
          send: () => invoke(asAlice, "payment-methods/not-a-uuid/default", {}),
        },
        {
          name: "POST /{id}/default with an unknown uuid",
          status: 404,
          code: "not_found",
          send: () => invoke(asAlice, `payment-methods/${crypto.randomUUID()}/default`, {}),
        },
        {
          name: "POST /{id}/default with another user's method",
          status: 404,
          code: "not_found",
          send: () => invoke(asAlice, `payment-methods/${bobCard.id}/default`, {}),
        },
        {
          name: "DELETE another user's method",
          status: 404,
          code: "not_found",
          send: () =>
            invoke(asAlice, `payment-methods/${bobCard.id}`, undefined, { method: "DELETE" }),
        },
        {
          name: "DELETE with a malformed id",
          status: 400,
          code: "invalid_request",
          send: () => pm("payment-methods/not-a-uuid", { method: "DELETE" }),
        },
        {
          name: "DELETE without an id",
          status: 405,
          code: "method_not_allowed",
          send: () => pm("payment-methods", { method: "DELETE" }),
        },
        {
          name: "PUT on /{id}",
          status: 405,
          code: "method_not_allowed",
          send: () =>
            pm(`payment-methods/${aliceCard.id}`, {
              method: "PUT",
              headers: { "content-type": "application/json" },
              body: "{}",
            }),
        },
        {
          name: "GET on /{id}/default",
          status: 405,
          code: "method_not_allowed",
          send: () => pm(`payment-methods/${aliceCard.id}/default`, { method: "GET" }),
        },
        {
          name: "unknown sub-route a/b/c",
          status: 404,
          code: "not_found",
          send: () => pm("payment-methods/a/b/c", { method: "GET" }),
        },
        {
          name: "no JWT",
          status: 401,
          code: "unauthorized",
          send: () => pm("payment-methods", { method: "GET" }, null),
        },
        {
          name: "no JWT on DELETE /{id}",
          status: 401,
          code: "unauthorized",
          send: () => pm(`payment-methods/${aliceCard.id}`, { method: "DELETE" }, null),
        },
        {
          name: "service_role key",
          status: 403,
          code: "forbidden",
          send: () => pm("payment-methods", { method: "GET" }, s.serviceRoleKey),
        },
        {
          name: "service_role key on POST /setup",
          status: 403,
          code: "forbidden",
          send: () =>
            pm("payment-methods/setup", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: "{}",
            }, s.serviceRoleKey),
        },
        {
          name: "expired JWT",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, expired), "payment-methods", undefined, { method: "GET" }),
        },
        {
          name: "expired JWT on POST /{id}/default",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s, expired), `payment-methods/${aliceCard.id}/default`, {}),
        },
      ];

      const groups: [string, Case[]][] = [
        ["create-order", createOrder],
        ["verify", verifyCases],
        ["webhook/stripe", webhookCases],
        ["payment-methods", paymentMethods],
      ];
      await runCases(t, s, groups, { atLeast: 22 });

      // ------------------------------------------------------------ positive controls
      await t.step("control: the fixtures are untouched and still work", async () => {
        assert.equal(await orderStatus(s, bobPi), "created");
        const [a] = await methods(s, alice);
        const [b] = await methods(s, bob);
        assert.deepEqual([a.id, a.is_default], [aliceCard.id, aliceDefaultBefore]);
        assert.equal(b.id, bobCard.id);
        const ok = await postStripeWebhook(s, succeeded);
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        await idle(s);
        assert.equal(await orderStatus(s, bobPi), "paid");
      });
    });
  },
});
