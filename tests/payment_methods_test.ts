// Saved cards through supabase-js: setup, list, default, delete, isolation and races.
import assert from "node:assert/strict";
import {
  client,
  confirmSetupAtStripe,
  createUser,
  invoke,
  raw,
  snapshot,
  type TestStack,
  type TestUser,
  withStack,
} from "./support/stack.ts";
import { LOCAL_STRIPE } from "../dev/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function addCard(s: TestStack, u: TestUser, card: string) {
  const setup = await invoke(client(s, u.token), "payment-methods/setup", {});
  assert.equal(setup.status, 200, JSON.stringify(setup.body));
  assert.equal(setup.body.publishable_key, LOCAL_STRIPE.publishableKey);
  assert.match(setup.body.client_secret, /^seti_.+_secret_/);
  await confirmSetupAtStripe(s, setup.body.setup_intent_id, card);
  await s.stripe.idle();
}

async function list(s: TestStack, u: TestUser) {
  const r = await invoke(client(s, u.token), "payment-methods", undefined, { method: "GET" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.payment_methods as {
    id: string;
    brand: string;
    last4: string;
    is_default: boolean;
    exp_month: number;
    exp_year: number;
  }[];
}

async function stripeDefault(s: TestStack, accountId: string) {
  const [c] = await s.db`select customer_id from public.gateway_customers
    where account_id = ${accountId}`;
  const res = await fetch(`${s.stripeUrl}/v1/customers/${c.customer_id}`, {
    headers: { authorization: `Bearer ${LOCAL_STRIPE.secretKey}` },
  });
  return (await res.json()).invoice_settings?.default_payment_method ?? null;
}

Deno.test({
  name:
    "payment methods: two cards, one default, default moves, deleting the default stays consistent",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "cards");
      await addCard(s, u, "4242424242424242");
      await addCard(s, u, "5555555555554444");
      let methods = await list(s, u);
      assert.deepEqual(methods.map((m) => [m.last4, m.is_default]), [
        ["4242", true],
        ["4444", false],
      ]);
      assert.deepEqual(methods.map((m) => m.brand), ["visa", "mastercard"]);

      const mc = methods[1];
      const moved = await invoke(client(s, u.token), `payment-methods/${mc.id}/default`, {});
      assert.equal(moved.status, 200, JSON.stringify(moved.body));
      methods = await list(s, u);
      assert.deepEqual(methods.map((m) => [m.last4, m.is_default]), [
        ["4242", false],
        ["4444", true],
      ]);
      const [pm] = await s.db`select gateway_payment_method_id from public.payment_methods
        where id = ${mc.id}`;
      await s.stripe.idle();
      assert.equal(await stripeDefault(s, u.accountId), pm.gateway_payment_method_id);

      const del = await invoke(client(s, u.token), `payment-methods/${mc.id}`, undefined, {
        method: "DELETE",
      });
      assert.equal(del.status, 200, JSON.stringify(del.body));
      await s.stripe.idle();
      methods = await list(s, u);
      assert.deepEqual(methods.map((m) => [m.last4, m.is_default]), [["4242", true]]);
      const gone = await invoke(client(s, u.token), `payment-methods/${mc.id}/default`, {});
      assert.equal(gone.status, 404);
    });
  },
});

Deno.test({
  name: "payment methods: a non-member gets 404 and nothing changes",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const alice = await createUser(s.db, "pm-alice");
      const mallory = await createUser(s.db, "pm-mallory");
      await addCard(s, alice, "4242424242424242");
      await addCard(s, alice, "378282246310005");
      const [first, second] = await list(s, alice);
      const m = client(s, mallory.token);
      const before = await snapshot(s.db);
      const attempts = [
        await invoke(m, `payment-methods/${second.id}/default`, {}),
        await invoke(m, `payment-methods/${first.id}`, undefined, { method: "DELETE" }),
        await invoke(m, `payment-methods?account_id=${alice.accountId}`, undefined, {
          method: "GET",
        }),
        await invoke(m, `payment-methods/setup?account_id=${alice.accountId}`, {}),
      ];
      for (const a of attempts) {
        assert.equal(a.status, 404, JSON.stringify(a.body));
        assert.equal(a.body.error.code, "not_found");
      }
      await s.stripe.idle();
      assert.deepEqual(await snapshot(s.db), before);
      assert.deepEqual((await list(s, alice)).map((x) => x.is_default), [true, false]);
      assert.deepEqual(await list(s, mallory), []);
    });
  },
});

Deno.test({
  name: "payment methods: concurrent set-default calls leave exactly one default",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pm-race");
      for (const card of ["4242424242424242", "5555555555554444", "378282246310005"]) {
        await addCard(s, u, card);
      }
      const methods = await list(s, u);
      const c = client(s, u.token);
      const replies = await Promise.all(
        Array.from(
          { length: 24 },
          (_, i) => invoke(c, `payment-methods/${methods[i % 3].id}/default`, {}),
        ),
      );
      assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
      const [{ defaults }] = await s.db`select count(*)::int as defaults from public.payment_methods
        where account_id = ${u.accountId} and is_default`;
      assert.equal(defaults, 1);
    });
  },
});

Deno.test({
  name: "customers: concurrent first requests make one Stripe customer per account",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pm-customer");
      const c = client(s, u.token);
      const replies = await Promise.all(
        Array.from({ length: 10 }, () => invoke(c, "payment-methods/setup", {})),
      );
      assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
      const rows = await s.db`select customer_id from public.gateway_customers
        where account_id = ${u.accountId}`;
      assert.equal(rows.length, 1);
      const res = await fetch(`${s.stripeUrl}/v1/customers/${rows[0].customer_id}`, {
        headers: { authorization: `Bearer ${LOCAL_STRIPE.secretKey}` },
      });
      assert.equal((await res.json()).metadata.settle_account_id, u.accountId);
    });
  },
});

Deno.test({
  name: "payment methods: a bare POST /setup (no body, no content type) is accepted",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pm-bare");
      const r = await raw(s, "payment-methods/setup", { method: "POST", token: u.token });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.match(r.body.setup_intent_id, /^seti_/);
    });
  },
});
