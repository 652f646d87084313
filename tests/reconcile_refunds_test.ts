// Reconciliation's refund and subscription steps: a refund left pending by a gateway outage is
// sent by the next run (once at the gateway), and ended periods lapse.
import assert from "node:assert/strict";
import {
  client,
  createUser,
  invoke,
  payAtSimulator,
  raw,
  type TestStack,
  topupOrder,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { LOCAL_RAZORPAY } from "../dev/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SIM = "/razorpay/_sim/razorpay";

async function reconcileNow(s: TestStack) {
  const r = await raw(s, "reconcile", {
    method: "POST",
    token: s.serviceRoleKey,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ older_than_seconds: 0 }),
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function gatewayRefunds(s: TestStack, paymentId: string) {
  const res = await fetch(`${s.simulatorUrl}/razorpay/v1/payments/${paymentId}/refunds`, {
    headers: {
      authorization: "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`),
    },
  });
  return (await res.json()).items as { id: string; amount: number }[];
}

Deno.test({
  name: "a refund left pending by a gateway outage is sent by reconcile, once at the gateway",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "rec-refund");
      const c = client(s, u.token);
      const { order } = await topupOrder(s, u, 40000);
      const paid = await payAtSimulator(s, order.gateway_order_id);
      assert.equal((await invoke(c, "verify", paid)).status, 200);

      const fault = await fetch(`${s.simulatorUrl}${SIM}/faults`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          faults: [{ method: "POST", path: "/v1/payments/*/refund", mode: "error_503", count: 1 }],
        }),
      });
      assert.equal(fault.status, 200);
      await fault.body?.cancel();

      const down = await invoke(c, "refunds", { order_id: order.id, amount: 15000 });
      assert.equal(down.status, 503, JSON.stringify(down.body));
      const [pending] = await s.db`select id, status from public.refunds
                                   where order_id = ${order.id}`;
      assert.equal(pending.status, "pending");
      assert.equal(await walletBalance(s.db, u.accountId), 25000, "counted while pending");

      const first = await reconcileNow(s);
      assert.deepEqual(first.refunds, { checked: 1, settled: 1, errors: 0 });
      const [done] = await s.db`select status, gateway_refund_id from public.refunds
                                where id = ${pending.id}`;
      assert.equal(done.status, "processed");
      const atGateway = await gatewayRefunds(s, paid.razorpay_payment_id);
      assert.deepEqual(atGateway.map((r) => [r.id, r.amount]), [[done.gateway_refund_id, 15000]]);

      // A second run finds nothing pending and sends nothing.
      const second = await reconcileNow(s);
      assert.deepEqual(second.refunds, { checked: 0, settled: 0, errors: 0 });
      assert.equal((await gatewayRefunds(s, paid.razorpay_payment_id)).length, 1);
      assert.equal(await walletBalance(s.db, u.accountId), 25000);
      assert.deepEqual([...await s.db`select * from settle.ledger_audit()`], []);
    });
  },
});

Deno.test({
  name: "reconcile lapses ended subscription periods and the entitlement follows",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "rec-lapse");
      const c = client(s, u.token);
      const created = await invoke(c, "create-order", {
        gateway: "razorpay",
        purpose: "plan",
        plan_id: "pro_monthly",
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const paid = await payAtSimulator(s, created.body.order.gateway_order_id);
      assert.equal((await invoke(c, "verify", paid)).status, 200);
      const before = await invoke(c, "subscriptions", undefined, { method: "GET" });
      assert.equal(before.body.is_pro, true);

      // The period ends (as time passing would make it): the next run lapses it.
      await s.db`update public.subscriptions
                 set current_period_start = now() - interval '31 days',
                     current_period_end = now() - interval '1 second'
                 where account_id = ${u.accountId}`;
      const run = await reconcileNow(s);
      assert.ok((run.subscriptions as { lapsed: number }).lapsed >= 1, JSON.stringify(run));
      const after = await invoke(c, "subscriptions", undefined, { method: "GET" });
      assert.equal(after.body.is_pro, false);
      assert.equal(after.body.plan, null);
      assert.equal(after.body.subscription.status, "past_due");
    });
  },
});
