// Stripe end to end through supabase-js: intents paid by verify, by webhook, racing, duplicated.
import assert from "node:assert/strict";
import {
  client,
  confirmAtStripe,
  createUser,
  invoke,
  postStripeWebhook,
  stripeEvents,
  type TestStack,
  type TestUser,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { LOCAL_STRIPE } from "../dev/stack.ts";
import { hmacSha256Hex } from "../shared/crypto.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function stripeTopup(s: TestStack, u: TestUser, amount: number, currency: string) {
  const r = await invoke(client(s, u.token), "create-order", {
    gateway: "stripe",
    purpose: "wallet_topup",
    amount,
    currency,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body as {
    order: { id: string; gateway_order_id: string; amount: number; currency: string };
    checkout: { publishable_key: string; payment_intent_id: string; client_secret: string };
  };
}

async function credits(s: TestStack, orderId: string) {
  const [{ n }] = await s.db`select count(*)::int as n from public.ledger_transactions
    where order_id = ${orderId}`;
  return n as number;
}

async function stripeIntent(s: TestStack, id: string) {
  const res = await fetch(`${s.stripeUrl}/v1/payment_intents/${id}`, {
    headers: { authorization: `Bearer ${LOCAL_STRIPE.secretKey}` },
  });
  return await res.json();
}

Deno.test({
  name:
    "stripe: a top-up paid and verified credits the wallet once; checkout is what Stripe.js needs",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "stripe-verify");
      const { order, checkout } = await stripeTopup(s, u, 5000, "USD");
      assert.equal(checkout.publishable_key, LOCAL_STRIPE.publishableKey);
      assert.equal(checkout.payment_intent_id, order.gateway_order_id);
      assert.match(checkout.client_secret, new RegExp(`^${checkout.payment_intent_id}_secret_`));
      const pi = await stripeIntent(s, checkout.payment_intent_id);
      assert.equal(pi.amount, 5000);
      assert.equal(pi.currency, "usd");
      assert.equal(pi.metadata.settle_order_id, order.id);
      assert.match(pi.customer, /^cus_/);

      await confirmAtStripe(s, checkout.payment_intent_id, { webhooks: { deliver: false } });
      const v = await invoke(client(s, u.token), "verify", {
        payment_intent_id: checkout.payment_intent_id,
      });
      assert.equal(v.status, 200, JSON.stringify(v.body));
      assert.equal(v.body.order.status, "paid");
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 5000);
      assert.equal(await credits(s, order.id), 1);
    });
  },
});

Deno.test({
  name: "stripe: paid by webhook alone; a declined card fails the order",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "stripe-hook");
      const paid = await stripeTopup(s, u, 2500, "EUR");
      await confirmAtStripe(s, paid.checkout.payment_intent_id);
      const declined = await stripeTopup(s, u, 2600, "EUR");
      await confirmAtStripe(s, declined.checkout.payment_intent_id, {
        outcome: "failure",
        card: "4000000000000002",
      });
      await s.stripe.idle();
      const rows = await s.db`select id, status, failure_code from public.orders
        where id in ${s.db([paid.order.id, declined.order.id])}`;
      const byId = new Map(rows.map((r) => [r.id, r]));
      assert.equal(byId.get(paid.order.id)!.status, "paid");
      assert.equal(byId.get(declined.order.id)!.status, "failed");
      assert.equal(byId.get(declined.order.id)!.failure_code, "card_declined");
      assert.equal(await walletBalance(s.db, u.accountId, "EUR"), 2500);
    });
  },
});

Deno.test({
  name: "stripe: verify ×10 racing payment_intent.succeeded ×50 (duplicates): one credit",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "stripe-race");
      const c = client(s, u.token);
      const { order, checkout } = await stripeTopup(s, u, 7300, "USD");
      await confirmAtStripe(s, checkout.payment_intent_id, { webhooks: { deliver: false } });
      const succeeded = (await stripeEvents(s, checkout.payment_intent_id))
        .find((e) => e.type === "payment_intent.succeeded")!;
      assert.ok(succeeded);
      const replies = await Promise.all([
        ...Array.from(
          { length: 10 },
          () => invoke(c, "verify", { payment_intent_id: checkout.payment_intent_id }),
        ),
        ...Array.from({ length: 50 }, () => postStripeWebhook(s, succeeded)),
      ]);
      assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
      assert.equal(await credits(s, order.id), 1);
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 7300);
      const [{ n }] = await s.db`select count(*)::int as n from public.webhook_events
        where gateway = 'stripe' and event_id = ${succeeded.event_id}`;
      assert.equal(n, 1);
    });
  },
});

Deno.test({
  name: "stripe: zero- and three-decimal currencies keep their minor units (JPY, KWD, BHD)",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "stripe-ccy");
      for (const [amount, currency] of [[500, "JPY"], [5120, "KWD"], [1230, "BHD"]] as const) {
        const { checkout } = await stripeTopup(s, u, amount, currency);
        const pi = await stripeIntent(s, checkout.payment_intent_id);
        assert.deepEqual([pi.amount, pi.currency], [amount, currency.toLowerCase()]);
        await confirmAtStripe(s, checkout.payment_intent_id);
      }
      await s.stripe.idle();
      assert.equal(await walletBalance(s.db, u.accountId, "JPY"), 500);
      assert.equal(await walletBalance(s.db, u.accountId, "KWD"), 5120);
      assert.equal(await walletBalance(s.db, u.accountId, "BHD"), 1230);
      // A three-decimal amount Stripe cannot take is refused before any gateway call.
      const bad = await invoke(client(s, u.token), "create-order", {
        gateway: "stripe",
        purpose: "wallet_topup",
        amount: 5125,
        currency: "KWD",
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, "invalid_request");
    });
  },
});

Deno.test({
  name:
    "stripe webhook signatures: valid, tampered, wrong secret, stale, several v1 with one match",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "stripe-sig");
      const { checkout } = await stripeTopup(s, u, 1800, "USD");
      await confirmAtStripe(s, checkout.payment_intent_id, { webhooks: { deliver: false } });
      const e = (await stripeEvents(s, checkout.payment_intent_id))
        .find((x) => x.type === "payment_intent.succeeded")!;
      const now = Math.floor(Date.now() / 1000);
      const sign = async (body: string, t: number, secret = LOCAL_STRIPE.webhookSecret) =>
        `t=${t},v1=${await hmacSha256Hex(secret, `${t}.${body}`)}`;
      const tampered = e.body.replace(/"amount_received": ?1800/, '"amount_received": 18');
      assert.notEqual(tampered, e.body);
      const rejected = [
        { body: tampered, signature: e.signature },
        { body: e.body, signature: await sign(e.body, now, "whsec_wrong") },
        { body: e.body, signature: await sign(e.body, now - 301) },
        { body: e.body, signature: "" },
        { body: e.body, signature: `t=${now}` },
      ];
      for (const r of rejected) {
        const reply = await postStripeWebhook(s, r);
        assert.equal(reply.status, 400, r.signature);
        assert.equal(reply.body.error.code, "invalid_signature");
      }
      const [{ n: stored }] = await s.db`select count(*)::int as n from public.webhook_events
        where gateway = 'stripe' and event_id = ${e.event_id}`;
      assert.equal(stored, 0, "nothing stored after bad signatures");

      const good = await sign(e.body, now);
      const multi = `t=${now},v1=${"0".repeat(64)},v1=${good.split("v1=")[1]},v0=abc`;
      const ok = await postStripeWebhook(s, { body: e.body, signature: multi });
      assert.equal(ok.status, 200);
      const [order] = await s.db`select status from public.orders
        where gateway_order_id = ${checkout.payment_intent_id}`;
      assert.equal(order.status, "paid");
    });
  },
});

Deno.test({
  name: "stripe: a canceled intent fails its order; verify then changes nothing",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "stripe-cancel");
      const { order, checkout } = await stripeTopup(s, u, 4100, "USD");
      const res = await fetch(
        `${s.stripeUrl}/v1/payment_intents/${checkout.payment_intent_id}/cancel`,
        { method: "POST", headers: { authorization: `Bearer ${LOCAL_STRIPE.secretKey}` } },
      );
      assert.equal(res.status, 200);
      await res.body?.cancel();
      await s.stripe.idle();
      const [row] = await s.db`select status, failure_code from public.orders
        where id = ${order.id}`;
      assert.deepEqual({ ...row }, { status: "failed", failure_code: "canceled" });
      assert.equal(await credits(s, order.id), 0);
      // verify reads the canceled intent and leaves the order failed, crediting nothing.
      const v = await invoke(client(s, u.token), "verify", {
        payment_intent_id: checkout.payment_intent_id,
      });
      assert.equal(v.status, 200);
      assert.equal(v.body.order.status, "failed");
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
    });
  },
});
