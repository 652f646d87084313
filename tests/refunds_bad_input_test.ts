// Bad input at POST/GET /refunds and at /subscriptions: each request must get the contract's exact
// status and error code, a clean JSON error, and must change nothing (refunds, orders, wallets,
// ledger, subscriptions) - nor reach the gateway.
import assert from "node:assert/strict";
import { LOCAL_RAZORPAY, LOCAL_STRIPE } from "../dev/stack.ts";
import { signJwt } from "../dev/keys.ts";
import {
  client,
  confirmAtStripe,
  createUser,
  idle,
  invoke,
  payAtSimulator,
  raw,
  type Reply,
  type TestStack,
  type TestUser,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { type Case, runCases } from "./support/contract.ts";

const RZP_AUTH = "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`);

interface Order {
  id: string;
  gateway_order_id: string;
  amount: number;
  currency: string;
}

async function createOrder(s: TestStack, u: TestUser, body: Record<string, unknown>) {
  const r = await invoke(client(s, u.token), "create-order", body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.order as Order;
}

async function payRazorpay(s: TestStack, u: TestUser, o: Order) {
  const paid = await payAtSimulator(s, o.gateway_order_id);
  const v = await invoke(client(s, u.token), "verify", paid);
  assert.equal(v.status, 200, JSON.stringify(v.body));
  await idle(s);
  return o;
}

async function paidRazorpay(s: TestStack, u: TestUser, amount: number, currency = "INR") {
  const o = await createOrder(s, u, {
    gateway: "razorpay",
    purpose: "wallet_topup",
    amount,
    currency,
  });
  return await payRazorpay(s, u, o);
}

async function paidStripe(s: TestStack, u: TestUser, amount: number, currency: string) {
  const o = await createOrder(s, u, {
    gateway: "stripe",
    purpose: "wallet_topup",
    amount,
    currency,
  });
  await confirmAtStripe(s, o.gateway_order_id);
  const v = await invoke(client(s, u.token), "verify", { payment_intent_id: o.gateway_order_id });
  assert.equal(v.status, 200, JSON.stringify(v.body));
  await idle(s);
  return o;
}

async function razorpayRefundsOf(s: TestStack, orderId: string) {
  const [o] = await s.db`select gateway_payment_id from public.orders where id = ${orderId}`;
  const res = await fetch(
    `${s.simulatorUrl}/razorpay/v1/payments/${o.gateway_payment_id}/refunds`,
    { headers: { authorization: RZP_AUTH } },
  );
  assert.equal(res.status, 200);
  return (await res.json()).items as unknown[];
}

async function stripeRefundCount(s: TestStack) {
  const res = await fetch(`${s.stripeUrl}/v1/refunds?limit=100`, {
    headers: { authorization: `Bearer ${LOCAL_STRIPE.secretKey}` },
  });
  assert.equal(res.status, 200);
  return ((await res.json()).data as unknown[]).length;
}

async function orderStatus(s: TestStack, id: string) {
  const [o] = await s.db`select status, amount_refunded from public.orders where id = ${id}`;
  return `${o.status}:${o.amount_refunded}`;
}

Deno.test({
  name: "refunds and subscriptions bad input gets the contract's 4xx and changes nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await withStack(async (s) => {
      // ------------------------------------------------------------ arrangement
      const alice = await createUser(s.db, "rbad-alice");
      const bob = await createUser(s.db, "rbad-bob");
      const carol = await createUser(s.db, "rbad-carol"); // a member (not owner) of alice's account
      const dave = await createUser(s.db, "rbad-dave"); // a wallet too short to refund
      const eve = await createUser(s.db, "rbad-eve"); // a subscription cancelled already
      await s.db`insert into public.account_members (account_id, user_id, role)
                 values (${alice.accountId}, ${carol.id}, 'member')`;

      const paid = await paidRazorpay(s, alice, 50000);
      const kwd = await paidRazorpay(s, alice, 20000, "KWD");
      const usd = await paidStripe(s, alice, 5000, "USD");
      const bobPaid = await paidRazorpay(s, bob, 30000);
      const created = await createOrder(s, alice, {
        gateway: "razorpay",
        purpose: "wallet_topup",
        amount: 10000,
        currency: "INR",
      });
      const failed = await createOrder(s, alice, {
        gateway: "razorpay",
        purpose: "wallet_topup",
        amount: 12000,
        currency: "INR",
      });
      await payAtSimulator(s, failed.gateway_order_id, { outcome: "failure" });
      await idle(s);
      assert.equal(await orderStatus(s, failed.id), "failed:0");

      // A keyed partial refund on the USD order: 3000 of 5000 remain.
      const keyed = `rbad-${crypto.randomUUID()}`;
      const first = await invoke(
        client(s, alice.token),
        "refunds",
        { order_id: usd.id, amount: 2000 },
        { headers: { "Idempotency-Key": keyed } },
      );
      assert.equal(first.status, 201, JSON.stringify(first.body));

      // Dave: top-ups x (30000) and y (20000), then the app spends 40000 of the wallet (a
      // purchase posted to the ledger): 10000 remain. Without spending, a wallet always holds at
      // least what any one of its top-ups has left to refund.
      const x = await paidRazorpay(s, dave, 30000);
      const y = await paidRazorpay(s, dave, 20000);
      await s.db`select settle.post_transaction('purchase', ${`spend:${crypto.randomUUID()}`}, null,
        'wallet purchase', ${
        s.db.json([
          { wallet_id: dave.walletId, currency: "INR", amount: -40000 },
          { system_account: "revenue:product", currency: "INR", amount: 40000 },
        ])
      })`;
      assert.equal(await walletBalance(s.db, dave.accountId), 10000);
      const stripeRefundsBefore = await stripeRefundCount(s);

      // Eve's plan, cancelled at once.
      const evePlan = await createOrder(s, eve, {
        gateway: "razorpay",
        purpose: "plan",
        plan_id: "pro_monthly",
      });
      await payRazorpay(s, eve, evePlan);
      const eveCancel = await invoke(client(s, eve.token), "subscriptions/cancel", {
        at_period_end: false,
      });
      assert.equal(eveCancel.status, 200, JSON.stringify(eveCancel.body));

      const expired = await signJwt({
        sub: alice.id,
        aud: "authenticated",
        role: "authenticated",
        email: alice.email,
      }, { expiresInSeconds: -60 });

      const asAlice = client(s, alice.token);
      const refund = (body: unknown, token = alice.token, headers?: Record<string, string>) =>
        invoke(client(s, token), "refunds", body, { headers });
      const post = (
        path: string,
        body: BodyInit | undefined,
        init: { token?: string | null; type?: string | null; method?: string } = {},
      ): Promise<Reply> => {
        const headers: Record<string, string> = {};
        if (init.type !== null) headers["content-type"] = init.type ?? "application/json";
        return raw(s, path, {
          method: init.method ?? "POST",
          headers,
          body,
          token: init.token === null ? undefined : init.token ?? alice.token,
        });
      };
      const get = (path: string, token: string | null = alice.token) =>
        raw(s, path, { method: "GET", token: token ?? undefined });
      const noGatewayRefundFor = (orderId: string) => async () => {
        assert.deepEqual(await razorpayRefundsOf(s, orderId), [], "the gateway was called");
      };
      const noStripeRefund = async () => {
        assert.equal(await stripeRefundCount(s), stripeRefundsBefore, "stripe was called");
      };

      // ------------------------------------------------------------ POST /refunds: the order
      const orderCases: Case[] = [
        {
          name: "over-refund of a paid order (50001 of 50000)",
          status: 409,
          code: "refund_exceeds_payment",
          send: () => refund({ order_id: paid.id, amount: 50001 }),
          also: noGatewayRefundFor(paid.id),
        },
        {
          name: "over-refund after a partial refund (3001 of the 3000 left)",
          status: 409,
          code: "refund_exceeds_payment",
          send: () => refund({ order_id: usd.id, amount: 3001 }),
          also: noStripeRefund,
        },
        {
          name: "over-refund by the service role",
          status: 409,
          code: "refund_exceeds_payment",
          send: () => refund({ order_id: bobPaid.id, amount: 30100 }, s.serviceRoleKey),
          also: noGatewayRefundFor(bobPaid.id),
        },
        {
          name: "refund of a created (unpaid) order",
          status: 409,
          code: "order_not_refundable",
          send: () => refund({ order_id: created.id, amount: 1000 }),
        },
        {
          name: "full refund of a created order (no amount)",
          status: 409,
          code: "order_not_refundable",
          send: () => refund({ order_id: created.id }),
        },
        {
          name: "refund of a failed order",
          status: 409,
          code: "order_not_refundable",
          send: () => refund({ order_id: failed.id }),
        },
        {
          name: "refund of a created order by the service role",
          status: 409,
          code: "order_not_refundable",
          send: () => refund({ order_id: created.id, amount: 1000 }, s.serviceRoleKey),
        },
        {
          name: "top-up refund larger than the wallet holds (20000 of y, 10000 held)",
          status: 409,
          code: "insufficient_funds",
          send: () => refund({ order_id: y.id, amount: 20000 }, dave.token),
          also: noGatewayRefundFor(y.id),
        },
        {
          name: "full refund of a top-up (no amount) larger than the wallet",
          status: 409,
          code: "insufficient_funds",
          send: () => refund({ order_id: x.id }, dave.token),
          also: noGatewayRefundFor(x.id),
        },
        {
          name: "insufficient_funds by the service role (10001 of x)",
          status: 409,
          code: "insufficient_funds",
          send: () => refund({ order_id: x.id, amount: 10001 }, s.serviceRoleKey),
          also: noGatewayRefundFor(x.id),
        },
      ];

      // ------------------------------------------------------------ POST /refunds: who
      const whoCases: Case[] = [
        {
          name: "a member who is not an owner",
          status: 403,
          code: "forbidden",
          send: () => refund({ order_id: paid.id, amount: 1000 }, carol.token),
          also: noGatewayRefundFor(paid.id),
        },
        {
          name: "another user's order",
          status: 404,
          code: "not_found",
          send: () => refund({ order_id: bobPaid.id, amount: 1000 }),
          also: noGatewayRefundFor(bobPaid.id),
        },
        {
          name: "an order that does not exist",
          status: 404,
          code: "not_found",
          send: () => refund({ order_id: crypto.randomUUID(), amount: 1000 }),
        },
        {
          name: "an order that does not exist (service role)",
          status: 404,
          code: "not_found",
          send: () => refund({ order_id: crypto.randomUUID() }, s.serviceRoleKey),
        },
        {
          name: "no JWT",
          status: 401,
          code: "unauthorized",
          send: () => post("refunds", JSON.stringify({ order_id: paid.id }), { token: null }),
        },
        {
          name: "anon key only",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s), "refunds", { order_id: paid.id, amount: 1000 }),
        },
        {
          name: "expired JWT",
          status: 401,
          code: "unauthorized",
          send: () => refund({ order_id: paid.id, amount: 1000 }, expired),
        },
        {
          name: "garbage bearer token",
          status: 401,
          code: "unauthorized",
          send: () => refund({ order_id: paid.id, amount: 1000 }, "not.a.jwt"),
        },
      ];

      // ------------------------------------------------------------ POST /refunds: the body
      const bodyCases: Case[] = [
        ...([
          ["amount 0", 0],
          ["amount -1", -1],
          ["amount 1.5", 1.5],
          ['amount "100"', "100"],
          ["amount 1e12", 1e12],
          ["amount null", null],
          ["amount true", true],
          ["amount below razorpay's minimum (99 paise)", 99],
          ["amount 1 paisa", 1],
        ] as const).map(([name, amount]): Case => ({
          name,
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: paid.id, amount }),
          also: noGatewayRefundFor(paid.id),
        })),
        {
          name: "KWD amount not ending in 0 (1005)",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: kwd.id, amount: 1005 }),
          also: noGatewayRefundFor(kwd.id),
        },
        {
          name: "KWD amount below razorpay's minimum (990 fils)",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: kwd.id, amount: 990 }),
        },
        {
          name: "KWD amount not ending in 0 by the service role",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: kwd.id, amount: 12345 }, s.serviceRoleKey),
        },
        {
          name: "order_id not a uuid",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: "order_123", amount: 1000 }),
        },
        {
          name: "order_id a number",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: 42, amount: 1000 }),
        },
        {
          name: "order_id missing",
          status: 400,
          code: "invalid_request",
          send: () => refund({ amount: 1000 }),
        },
        {
          name: "empty object",
          status: 400,
          code: "invalid_request",
          send: () => refund({}),
        },
        {
          name: "unknown field (currency)",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: paid.id, amount: 1000, currency: "INR" }),
        },
        {
          name: "unknown field (status)",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: paid.id, status: "processed" }),
        },
        {
          name: "reason with a NUL byte",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: paid.id, amount: 1000, reason: "a\u0000b" }),
        },
        {
          name: "reason with an escape character",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: paid.id, amount: 1000, reason: "\u001b[31mred" }),
        },
        {
          name: "reason with a newline",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: paid.id, amount: 1000, reason: "two\nlines" }),
        },
        {
          name: "reason of 501 characters",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: paid.id, amount: 1000, reason: "r".repeat(501) }),
        },
        {
          name: "reason empty",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: paid.id, amount: 1000, reason: "   " }),
        },
        {
          name: "reason a number",
          status: 400,
          code: "invalid_request",
          send: () => refund({ order_id: paid.id, amount: 1000, reason: 7 }),
        },
        {
          name: "malformed JSON",
          status: 400,
          code: "invalid_json",
          send: () => post("refunds", `{"order_id": "${paid.id}", "amount": 1000`),
        },
        {
          name: "a JSON array",
          status: 400,
          code: "invalid_request",
          send: () => post("refunds", JSON.stringify([{ order_id: paid.id }])),
        },
        {
          name: "JSON null",
          status: 400,
          code: "invalid_request",
          send: () => post("refunds", "null"),
        },
        {
          name: "text/plain content type",
          status: 415,
          code: "unsupported_media_type",
          send: () =>
            post("refunds", JSON.stringify({ order_id: paid.id, amount: 1000 }), {
              type: "text/plain",
            }),
        },
        {
          name: "form content type",
          status: 415,
          code: "unsupported_media_type",
          send: () =>
            post("refunds", `order_id=${paid.id}&amount=1000`, {
              type: "application/x-www-form-urlencoded",
            }),
        },
        {
          name: "no content type",
          status: 415,
          code: "unsupported_media_type",
          send: () => post("refunds", JSON.stringify({ order_id: paid.id }), { type: null }),
        },
        {
          name: "Idempotency-Key reused with another amount",
          status: 409,
          code: "idempotency_conflict",
          send: () =>
            refund({ order_id: usd.id, amount: 2500 }, alice.token, {
              "Idempotency-Key": keyed,
            }),
          also: noStripeRefund,
        },
        {
          name: "Idempotency-Key reused with another reason",
          status: 409,
          code: "idempotency_conflict",
          send: () =>
            refund({ order_id: usd.id, amount: 2000, reason: "other" }, alice.token, {
              "Idempotency-Key": keyed,
            }),
        },
        {
          name: "Idempotency-Key of 256 characters",
          status: 400,
          code: "invalid_request",
          send: () =>
            refund({ order_id: paid.id, amount: 1000 }, alice.token, {
              "Idempotency-Key": "k".repeat(256),
            }),
        },
        {
          name: "Idempotency-Key with a space",
          status: 400,
          code: "invalid_request",
          send: () =>
            refund({ order_id: paid.id, amount: 1000 }, alice.token, {
              "Idempotency-Key": "two words",
            }),
        },
      ];

      // ------------------------------------------------------------ routes and methods
      const routeCases: Case[] = [
        {
          name: "PUT /refunds",
          status: 405,
          code: "method_not_allowed",
          send: () => post("refunds", JSON.stringify({ order_id: paid.id }), { method: "PUT" }),
        },
        {
          name: "DELETE /refunds",
          status: 405,
          code: "method_not_allowed",
          send: () => post("refunds", undefined, { method: "DELETE", type: null }),
        },
        {
          name: "PATCH /refunds",
          status: 405,
          code: "method_not_allowed",
          send: () => post("refunds", "{}", { method: "PATCH" }),
        },
        {
          name: "unknown sub-route /refunds/x",
          status: 404,
          code: "not_found",
          send: () => post("refunds/x", JSON.stringify({ order_id: paid.id })),
        },
        {
          name: "GET /refunds without order_id",
          status: 400,
          code: "invalid_request",
          send: () => get("refunds"),
        },
        {
          name: "GET /refunds?order_id=not-a-uuid",
          status: 400,
          code: "invalid_request",
          send: () => get("refunds?order_id=not-a-uuid"),
        },
        {
          name: "GET /refunds of another user's order",
          status: 404,
          code: "not_found",
          send: () => get(`refunds?order_id=${bobPaid.id}`),
        },
        {
          name: "GET /refunds without a JWT",
          status: 401,
          code: "unauthorized",
          send: () => get(`refunds?order_id=${paid.id}`, null),
        },
      ];

      // ------------------------------------------------------------ subscriptions
      const subCases: Case[] = [
        {
          name: "cancel without a subscription",
          status: 404,
          code: "not_found",
          send: () => invoke(asAlice, "subscriptions/cancel", {}),
        },
        {
          name: "cancel without a subscription (bare POST)",
          status: 404,
          code: "not_found",
          send: () => post("subscriptions/cancel", undefined, { type: null }),
        },
        {
          name: "cancel by a member who is not an owner",
          status: 403,
          code: "forbidden",
          send: () =>
            invoke(client(s, carol.token), "subscriptions/cancel", {
              account_id: alice.accountId,
            }),
        },
        {
          name: "cancel another user's account",
          status: 404,
          code: "not_found",
          send: () => invoke(asAlice, "subscriptions/cancel", { account_id: eve.accountId }),
        },
        {
          name: "cancel an already cancelled subscription",
          status: 409,
          code: "conflict",
          send: () => invoke(client(s, eve.token), "subscriptions/cancel", {}),
        },
        {
          name: "cancel by the service role without account_id",
          status: 400,
          code: "invalid_request",
          send: () => invoke(client(s, s.serviceRoleKey), "subscriptions/cancel", {}),
        },
        {
          name: "cancel by the service role of an account without one",
          status: 404,
          code: "not_found",
          send: () =>
            invoke(client(s, s.serviceRoleKey), "subscriptions/cancel", {
              account_id: bob.accountId,
            }),
        },
        {
          name: "cancel with at_period_end a string",
          status: 400,
          code: "invalid_request",
          send: () => invoke(client(s, eve.token), "subscriptions/cancel", { at_period_end: "no" }),
        },
        {
          name: "cancel with account_id not a uuid",
          status: 400,
          code: "invalid_request",
          send: () => invoke(asAlice, "subscriptions/cancel", { account_id: "acct_1" }),
        },
        {
          name: "cancel with an unknown field",
          status: 400,
          code: "invalid_request",
          send: () => invoke(client(s, eve.token), "subscriptions/cancel", { now: true }),
        },
        {
          name: "cancel with malformed JSON",
          status: 400,
          code: "invalid_json",
          send: () => post("subscriptions/cancel", "{", { token: eve.token }),
        },
        {
          name: "cancel with a JSON array",
          status: 400,
          code: "invalid_request",
          send: () => post("subscriptions/cancel", "[]", { token: eve.token }),
        },
        {
          name: "cancel with text/plain",
          status: 415,
          code: "unsupported_media_type",
          send: () => post("subscriptions/cancel", "{}", { token: eve.token, type: "text/plain" }),
        },
        {
          name: "cancel without a JWT",
          status: 401,
          code: "unauthorized",
          send: () => post("subscriptions/cancel", "{}", { token: null }),
        },
        {
          name: "cancel with the anon key",
          status: 401,
          code: "unauthorized",
          send: () => invoke(client(s), "subscriptions/cancel", {}),
        },
        {
          name: "GET /subscriptions/cancel",
          status: 405,
          code: "method_not_allowed",
          send: () => get("subscriptions/cancel", eve.token),
        },
        {
          name: "POST /subscriptions",
          status: 405,
          code: "method_not_allowed",
          send: () => post("subscriptions", "{}", { token: eve.token }),
        },
        {
          name: "unknown sub-route /subscriptions/pause",
          status: 404,
          code: "not_found",
          send: () => post("subscriptions/pause", "{}", { token: eve.token }),
        },
        {
          name: "GET /subscriptions?account_id=not-a-uuid",
          status: 400,
          code: "invalid_request",
          send: () => get("subscriptions?account_id=not-a-uuid"),
        },
        {
          name: "GET /subscriptions of another user's account",
          status: 404,
          code: "not_found",
          send: () => get(`subscriptions?account_id=${bob.accountId}`),
        },
        {
          name: "GET /subscriptions by the service role without account_id",
          status: 400,
          code: "invalid_request",
          send: () => get("subscriptions", s.serviceRoleKey),
        },
        {
          name: "GET /subscriptions without a JWT",
          status: 401,
          code: "unauthorized",
          send: () => get("subscriptions", null),
        },
      ];

      const groups: [string, Case[]][] = [
        ["refunds/order", orderCases],
        ["refunds/who", whoCases],
        ["refunds/body", bodyCases],
        ["refunds/route", routeCases],
        ["subscriptions", subCases],
      ];
      await runCases(t, s, groups);

      // ------------------------------------------------------------ positive controls
      await t.step("control: the fixtures are untouched and refundable", async () => {
        assert.equal(await orderStatus(s, paid.id), "paid:0");
        assert.equal(await orderStatus(s, usd.id), "partially_refunded:2000");
        assert.equal(await orderStatus(s, created.id), "created:0");
        const replay = await refund({ order_id: usd.id, amount: 2000 }, alice.token, {
          "Idempotency-Key": keyed,
        });
        assert.equal(replay.status, 200, JSON.stringify(replay.body));
        assert.equal(replay.body.refund.id, first.body.refund.id);
        assert.equal(await stripeRefundCount(s), stripeRefundsBefore);
        const ok = await refund({ order_id: paid.id, amount: 100, reason: "a valid reason" });
        assert.equal(ok.status, 201, JSON.stringify(ok.body));
        const kwdOk = await refund({ order_id: kwd.id, amount: 1000 });
        assert.equal(kwdOk.status, 201, JSON.stringify(kwdOk.body));
        // Exactly the balance is fine, and the gateway is called for it.
        const exact = await refund({ order_id: y.id, amount: 10000 }, dave.token);
        assert.equal(exact.status, 201, JSON.stringify(exact.body));
        await idle(s);
        assert.equal(await walletBalance(s.db, dave.accountId), 0);
        assert.equal((await razorpayRefundsOf(s, y.id)).length, 1);
        const rows = await s.db`select * from settle.ledger_audit()`;
        assert.deepEqual(rows.map((r) => ({ ...r })), []);
      });
    });
  },
});
