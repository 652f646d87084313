// create-order's gateway work, counted at the Stripe simulator: the account's customer is made
// once and then comes with the order's own statement, and checkout needs no read-back of the
// intent. A new order is written already claimed; its claim ends when the gateway order lands.
import assert from "node:assert/strict";
import { client, createUser, invoke, type TestStack, withStack } from "./support/stack.ts";
import { LOCAL_STRIPE } from "../dev/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

interface SimRequest {
  method: string;
  path: string;
}

async function stripeRequests(s: TestStack): Promise<SimRequest[]> {
  const res = await fetch(`${s.stripeUrl}/_sim/stripe/requests?path=/v1/`);
  assert.equal(res.status, 200);
  return (await res.json()).requests;
}

const count = (rs: SimRequest[], method: string, prefix: string) =>
  rs.filter((r) => r.method === method && r.path.startsWith(prefix)).length;

async function intentCustomer(s: TestStack, id: string): Promise<string> {
  const res = await fetch(`${s.stripeUrl}/v1/payment_intents/${id}`, {
    headers: { authorization: `Bearer ${LOCAL_STRIPE.secretKey}` },
  });
  return (await res.json()).customer;
}

Deno.test({
  name:
    "stripe create-order: one customer per account, then from the order's statement; checkout without reading the intent back",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "checkout-customer");
      const c = client(s, u.token);
      const topup = (key: string) =>
        invoke(c, "create-order", {
          gateway: "stripe",
          purpose: "wallet_topup",
          amount: 2500,
          currency: "USD",
        }, { headers: { "Idempotency-Key": key } });
      const before = await stripeRequests(s);

      const first = await topup("checkout-1");
      assert.equal(first.status, 201, JSON.stringify(first.body));
      const second = await topup("checkout-2");
      assert.equal(second.status, 201, JSON.stringify(second.body));
      const [a, b] = [first, second].map((r) =>
        r.body as {
          order: { gateway_order_id: string };
          checkout: { payment_intent_id: string; client_secret: string };
        }
      );

      const [{ customer_id }] = await s.db`select customer_id from public.gateway_customers
        where account_id = (select id from public.accounts where personal_owner_id = ${u.id})
          and gateway = 'stripe'`;
      assert.equal(await intentCustomer(s, a.order.gateway_order_id), customer_id);
      assert.equal(await intentCustomer(s, b.order.gateway_order_id), customer_id);
      for (const x of [a, b]) {
        assert.equal(x.checkout.payment_intent_id, x.order.gateway_order_id);
        assert.match(x.checkout.client_secret, new RegExp(`^${x.order.gateway_order_id}_secret_`));
      }

      const made = (await stripeRequests(s)).slice(before.length);
      assert.equal(count(made, "POST", "/v1/customers"), 1, JSON.stringify(made));
      assert.equal(count(made, "POST", "/v1/payment_intents"), 2, JSON.stringify(made));
      assert.equal(count(made, "GET", "/v1/payment_intents"), 0, JSON.stringify(made));

      // A replay answers the same intent and secret, still without asking Stripe for it.
      const replay = await topup("checkout-1");
      assert.equal(replay.status, 200, JSON.stringify(replay.body));
      assert.deepEqual(replay.body, first.body);
      const after = (await stripeRequests(s)).slice(before.length + made.length);
      assert.equal(after.length, 0, JSON.stringify(after));
    });
  },
});

Deno.test({
  name:
    "create-order: a new order is written claimed for one gateway call; the claim ends with the gateway order",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "checkout-claim");
      const r = await invoke(client(s, u.token), "create-order", {
        gateway: "razorpay",
        purpose: "wallet_topup",
        amount: 50000,
        currency: "INR",
      }, { headers: { "Idempotency-Key": "checkout-claim-1" } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const { order } = r.body as { order: { id: string; gateway_order_id: string } };
      const [row] = await s.db`select gateway_order_id, gateway_attempts, gateway_claim_id,
          gateway_claimed_until, last_gateway_error
        from public.orders where id = ${order.id}`;
      assert.deepEqual({ ...row }, {
        gateway_order_id: order.gateway_order_id,
        gateway_attempts: 1,
        gateway_claim_id: null,
        gateway_claimed_until: null,
        last_gateway_error: null,
      });
      assert.match(order.gateway_order_id, /^order_[A-Za-z0-9]{14}$/);
    });
  },
});
