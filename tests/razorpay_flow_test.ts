// End to end through supabase-js: create-order → Checkout (simulator) → verify → webhooks.
import assert from "node:assert/strict";
import {
  client,
  createUser,
  invoke,
  payAtSimulator,
  type TestStack,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { LOCAL_RAZORPAY } from "../dev/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function simOrdersWithReceipt(s: TestStack, receipt: string) {
  const res = await fetch(`${s.simulatorUrl}/razorpay/v1/orders?receipt=${receipt}`, {
    headers: {
      authorization: "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`),
    },
  });
  return (await res.json()).items as { id: string; amount: number }[];
}

async function fault(s: TestStack, mode: string, extra: Record<string, unknown> = {}) {
  const res = await fetch(`${s.simulatorUrl}/razorpay/_sim/razorpay/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      faults: [{ method: "POST", path: "/v1/orders", mode, count: 1, ...extra }],
    }),
  });
  assert.equal(res.status, 200);
  await res.body?.cancel();
}

Deno.test({
  name: "a wallet top-up is paid, verified and webhooked, and credits the wallet exactly once",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const alice = await createUser(s.db, "alice");
      const c = client(s, alice.token);

      const created = await invoke(c, "create-order", {
        gateway: "razorpay",
        purpose: "wallet_topup",
        amount: 123456,
        currency: "INR",
      });
      assert.equal(created.status, 201);
      const { order, checkout } = created.body;
      assert.equal(order.status, "created");
      assert.equal(order.amount, 123456);
      assert.equal(order.account_id, alice.accountId);
      assert.deepEqual(checkout, {
        key_id: LOCAL_RAZORPAY.keyId,
        order_id: order.gateway_order_id,
        amount: 123456,
        currency: "INR",
      });
      // The gateway order carries our order id as its receipt.
      assert.deepEqual((await simOrdersWithReceipt(s, order.id)).map((o) => o.id), [
        order.gateway_order_id,
      ]);

      const paid = await payAtSimulator(s, checkout.order_id);
      assert.equal(paid.razorpay_order_id, checkout.order_id);
      const verified = await invoke(c, "verify", paid);
      assert.equal(verified.status, 200);
      assert.equal(verified.body.order.status, "paid");
      assert.equal(verified.body.order.id, order.id);
      await s.razorpay.idle();

      assert.equal(await walletBalance(s.db, alice.accountId), 123456);
      const tx = await s.db`select t.kind, e.amount, e.system_account
        from public.ledger_transactions t join public.ledger_entries e on e.transaction_id = t.id
        where t.order_id = ${order.id} order by e.amount`;
      assert.deepEqual(tx.map((r) => [r.kind, Number(r.amount), r.system_account]), [
        ["topup", -123456, "gateway:razorpay"],
        ["topup", 123456, null],
      ]);
      const events = await s.db`select event_type, outcome, raw_body from public.webhook_events
        where order_id = ${order.id} order by id`;
      assert.deepEqual(
        events.map((e) => e.event_type).sort(),
        ["order.paid", "payment.authorized", "payment.captured"],
      );
      assert.equal(events.filter((e) => e.outcome === "applied").length <= 2, true);
      assert.ok(events.every((e) => e.raw_body.startsWith('{"entity":"event"')));

      // Verifying again is harmless: still paid, still one credit.
      const again = await invoke(c, "verify", paid);
      assert.equal(again.status, 200);
      assert.equal(await walletBalance(s.db, alice.accountId), 123456);
    });
  },
});

Deno.test({
  name: "plan and product prices come from the catalog and do not touch the wallet",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "buyer");
      const c = client(s, u.token);
      for (
        const [body, amount, currency] of [
          [{ purpose: "plan", plan_id: "pro_monthly" }, 29900, "INR"],
          [{ purpose: "product", product_id: "sticker_pack" }, 1500, "USD"],
        ] as const
      ) {
        const r = await invoke(c, "create-order", { gateway: "razorpay", ...body });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        assert.equal(r.body.order.amount, amount);
        assert.equal(r.body.order.currency, currency);
        const paid = await payAtSimulator(s, r.body.checkout.order_id);
        const v = await invoke(c, "verify", paid);
        assert.equal(v.body.order.status, "paid");
      }
      await s.razorpay.idle();
      assert.equal(await walletBalance(s.db, u.accountId), 0);
      const revenue = await s.db`select e.system_account, e.currency, sum(e.amount)::bigint as total
        from public.ledger_entries e join public.orders o on o.id = (
          select order_id from public.ledger_transactions where id = e.transaction_id)
        where o.account_id = ${u.accountId} and e.system_account like 'revenue:%'
        group by 1, 2 order by 1`;
      assert.deepEqual(revenue.map((r) => [r.system_account, r.currency, Number(r.total)]), [
        ["revenue:plan", "INR", 29900],
        ["revenue:product", "USD", 1500],
      ]);
    });
  },
});

Deno.test({
  name: "Idempotency-Key: the same request returns the same order, concurrently too",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "idem");
      const c = client(s, u.token);
      const body = { gateway: "razorpay", purpose: "wallet_topup", amount: 20000, currency: "INR" };
      const headers = { "Idempotency-Key": `key-${crypto.randomUUID()}` };
      const first = await invoke(c, "create-order", body, { headers });
      const second = await invoke(c, "create-order", body, { headers });
      assert.equal(first.status, 201);
      assert.equal(second.status, 200);
      assert.deepEqual(second.body, first.body);

      const racing = { "Idempotency-Key": `race-${crypto.randomUUID()}` };
      const replies = await Promise.all(
        Array.from({ length: 12 }, () => invoke(c, "create-order", body, { headers: racing })),
      );
      const ids = new Set(replies.map((r) => r.body.order.id));
      assert.equal(ids.size, 1);
      assert.deepEqual(replies.map((r) => r.status).sort(), [
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        200,
        201,
      ]);
      const [orderId] = ids;
      assert.equal((await simOrdersWithReceipt(s, orderId)).length, 1);
      const [{ n }] = await s
        .db`select count(*)::int as n from public.orders where created_by = ${u.id}`;
      assert.equal(n, 2);
    });
  },
});

Deno.test({
  name:
    "a gateway failure leaves the order retryable and a retry never makes a second gateway order",
  ...opts,
  fn: async () => {
    await withStack({ RAZORPAY_TIMEOUT_MS: "400" }, async (s) => {
      const u = await createUser(s.db, "retry");
      const c = client(s, u.token);
      const body = { gateway: "razorpay", purpose: "wallet_topup", amount: 30000, currency: "INR" };

      for (
        const [mode, status, code] of [
          ["error_500", 502, "gateway_error"],
          ["error_503", 503, "gateway_unavailable"],
          ["reset", 503, "gateway_unavailable"],
          // The gateway creates the order, then the answer is lost: the retry must find it.
          ["reset_after", 503, "gateway_unavailable"],
          ["timeout_after", 503, "gateway_unavailable"],
        ] as const
      ) {
        const headers = { "Idempotency-Key": `${mode}-${crypto.randomUUID()}` };
        await fault(s, mode, mode.startsWith("timeout") ? { hold_ms: 2000 } : {});
        const failed = await invoke(c, "create-order", body, { headers });
        assert.equal(failed.status, status, `${mode}: ${JSON.stringify(failed.body)}`);
        assert.equal(failed.body.error.code, code);
        assert.doesNotMatch(JSON.stringify(failed.body), /stack|at \w+ \(/);

        const [row] = await s.db`select id, status, gateway_order_id, gateway_attempts
          from public.orders where created_by = ${u.id} and idempotency_key = ${
          headers["Idempotency-Key"]
        }`;
        assert.equal(row.status, "created");
        assert.equal(row.gateway_order_id, null);
        assert.equal(row.gateway_attempts, 1);

        const retried = await invoke(c, "create-order", body, { headers });
        assert.equal(retried.status, 200, `${mode}: ${JSON.stringify(retried.body)}`);
        assert.equal(retried.body.order.id, row.id);
        const atGateway = await simOrdersWithReceipt(s, row.id);
        assert.equal(atGateway.length, 1, `${mode}: one gateway order`);
        assert.equal(retried.body.order.gateway_order_id, atGateway[0].id);
      }
    });
  },
});

Deno.test({
  name: "a failed payment marks the order failed; a later successful attempt still pays it once",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "retrypay");
      const c = client(s, u.token);
      const r = await invoke(c, "create-order", {
        gateway: "razorpay",
        purpose: "wallet_topup",
        amount: 7700,
        currency: "INR",
      });
      const failure = await payAtSimulator(s, r.body.checkout.order_id, { outcome: "failure" });
      assert.equal(failure.error.code, "BAD_REQUEST_ERROR");
      await s.razorpay.idle();
      const [failed] = await s.db`select status, failure_reason from public.orders
        where id = ${r.body.order.id}`;
      assert.equal(failed.status, "failed");
      assert.equal(failed.failure_reason, "Payment failed");

      const paid = await payAtSimulator(s, r.body.checkout.order_id);
      const v = await invoke(c, "verify", paid);
      assert.equal(v.body.order.status, "paid");
      await s.razorpay.idle();
      assert.equal(await walletBalance(s.db, u.accountId), 7700);
    });
  },
});
