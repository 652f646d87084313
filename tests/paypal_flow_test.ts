// PayPal end to end: orders, captures by verify and by webhook, races, declines, pending
// captures, refunds, zero-decimal currencies, reconcile and the gateway audit.
import assert from "node:assert/strict";
import {
  client,
  createUser,
  invoke,
  type TestStack,
  type TestUser,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { withOwnStack } from "./support/isolated.ts";
import {
  approve,
  assertLedgerHealthy,
  credits,
  events,
  gatewayOrder,
  holdWebhooks,
  opts,
  orderRow,
  paypalOrder,
  redeliver,
  simPost,
  verify,
} from "./support/paypal.ts";
import {
  complete,
  createEngagement,
  engagementRow,
  escrowAccount,
  houseBalance,
  settleRun,
} from "./support/escrow.ts";
import { LOCAL_PAYPAL } from "../dev/stack.ts";
import { reconcile } from "../shared/services/reconcile.ts";

Deno.test({
  name: "paypal: a top-up paid through verify credits once; the order is what PayPal needs",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pp-verify");
      const { order, checkout } = await paypalOrder(s, u, {
        purpose: "wallet_topup",
        amount: 1050,
        currency: "USD",
      });
      assert.equal(checkout.order_id, order.gateway_order_id);
      assert.equal(checkout.client_id, LOCAL_PAYPAL.clientId);
      assert.equal(
        checkout.approve_url,
        `${s.simulatorUrl}/paypal/checkoutnow?token=${order.gateway_order_id}`,
      );
      const pp = await gatewayOrder(s, order.gateway_order_id);
      assert.equal(pp.intent, "CAPTURE");
      assert.deepEqual(pp.purchase_units[0].amount, { currency_code: "USD", value: "10.50" });
      assert.equal(pp.purchase_units[0].custom_id, order.id);
      assert.equal(pp.purchase_units[0].reference_id, order.id);

      // Not approved yet: verify changes nothing.
      const early = await verify(s, u, order.gateway_order_id);
      assert.equal(early.status, 200, JSON.stringify(early.body));
      assert.equal(early.body.order.status, "created");

      await approve(s, order.gateway_order_id, "approve", { deliver: false });
      const v = await verify(s, u, order.gateway_order_id);
      assert.equal(v.status, 200, JSON.stringify(v.body));
      assert.equal(v.body.order.status, "paid");
      const again = await verify(s, u, order.gateway_order_id);
      assert.equal(again.body.order.status, "paid");
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 1050);
      assert.equal(await credits(s, order.id), 1);
      const captured = await gatewayOrder(s, order.gateway_order_id);
      assert.equal(captured.purchase_units[0].payments.captures.length, 1);
      assert.equal(
        (await orderRow(s, order.id)).gateway_payment_id,
        captured.purchase_units[0].payments.captures[0].id,
      );

      // Another user cannot verify it.
      const other = await createUser(s.db, "pp-other");
      assert.equal((await verify(s, other, order.gateway_order_id)).status, 404);
      await assertLedgerHealthy(s);
    });
  },
});

Deno.test({
  name: "paypal: a retried gateway order call returns the same PayPal order (PayPal-Request-Id)",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const gw = s.app.gateway("paypal");
      const terms = {
        orderId: crypto.randomUUID(),
        accountId: crypto.randomUUID(),
        amount: 2000,
        currency: "EUR",
        purpose: "wallet_topup",
        attempts: 0,
      };
      const [a, b] = await Promise.all([gw.createOrder(terms), gw.createOrder(terms)]);
      const c = await gw.createOrder({ ...terms, attempts: 1 });
      assert.equal(a.gatewayOrderId, b.gatewayOrderId);
      assert.equal(a.gatewayOrderId, c.gatewayOrderId);
      assert.equal(s.paypal.state.orders.size, 1);
    });
  },
});

Deno.test({
  name: "paypal: paid by webhook alone (CHECKOUT.ORDER.APPROVED is captured by settle)",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pp-hook");
      const { order } = await paypalOrder(s, u, { purpose: "product", product_id: "sticker_pack" });
      await approve(s, order.gateway_order_id);
      await s.paypal.idle();
      await s.paypal.idle();
      assert.equal((await orderRow(s, order.id)).status, "paid");
      assert.equal(await credits(s, order.id), 1);
      const types = events(s, order.gateway_order_id).map((e) => e.type);
      assert.deepEqual(types, ["CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.COMPLETED"]);
      const stored = await s.db`select event_type, outcome from public.webhook_events
        where gateway = 'paypal' and gateway_order_id = ${order.gateway_order_id}
        order by id`;
      assert.equal(stored.length, 2);
      await assertLedgerHealthy(s);
    });
  },
});

Deno.test({
  name: "paypal: verify ×10 racing approval ×20 and capture ×20 webhooks, reordered: one credit",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pp-race");
      const { order } = await paypalOrder(s, u, {
        purpose: "wallet_topup",
        amount: 7300,
        currency: "USD",
      });
      await holdWebhooks(s);
      await approve(s, order.gateway_order_id);
      const approved = events(s, order.gateway_order_id, "CHECKOUT.ORDER.APPROVED")[0];
      const first = await Promise.all([
        ...Array.from({ length: 10 }, () => verify(s, u, order.gateway_order_id)),
        ...Array.from({ length: 20 }, () => redeliver(s, approved)),
      ]);
      assert.deepEqual(new Set(first.map((r) => r.status)), new Set([200]));
      const completed = events(s, order.gateway_order_id, "PAYMENT.CAPTURE.COMPLETED");
      assert.equal(completed.length, 1, "one capture at PayPal");
      // The capture event, then the approval again: late and out of order.
      const second = await Promise.all([
        ...Array.from({ length: 20 }, () => redeliver(s, completed[0])),
        ...Array.from({ length: 5 }, () => redeliver(s, approved)),
      ]);
      assert.deepEqual(new Set(second.map((r) => r.status)), new Set([200]));
      assert.equal((await orderRow(s, order.id)).status, "paid");
      assert.equal(await credits(s, order.id), 1);
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 7300);
      const [{ n }] = await s.db`select count(*)::int as n from public.webhook_events
        where gateway = 'paypal' and gateway_order_id = ${order.gateway_order_id}`;
      assert.equal(n, 2, "each event stored once");
      await assertLedgerHealthy(s);
    });
  },
});

Deno.test({
  name: "paypal: a declined capture fails the order (by verify and by webhook); nothing credited",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pp-declined");
      const byVerify = await paypalOrder(s, u);
      await approve(s, byVerify.order.gateway_order_id, "deny", { deliver: false });
      const v = await verify(s, u, byVerify.order.gateway_order_id);
      assert.equal(v.status, 200, JSON.stringify(v.body));
      assert.equal(v.body.order.status, "failed");
      // The order at PayPal is COMPLETED: only the capture says the money did not move.
      const pp = await gatewayOrder(s, byVerify.order.gateway_order_id);
      assert.equal(pp.status, "COMPLETED");
      assert.equal(pp.purchase_units[0].payments.captures[0].status, "DECLINED");
      assert.equal((await orderRow(s, byVerify.order.id)).failure_code, "capture_declined");

      const byHook = await paypalOrder(s, u);
      await approve(s, byHook.order.gateway_order_id, "deny");
      await s.paypal.idle();
      await s.paypal.idle();
      assert.equal((await orderRow(s, byHook.order.id)).status, "failed");
      assert.deepEqual(events(s, byHook.order.gateway_order_id).map((e) => e.type), [
        "CHECKOUT.ORDER.APPROVED",
        "PAYMENT.CAPTURE.DENIED",
      ]);
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
      assert.equal(await credits(s, byVerify.order.id) + await credits(s, byHook.order.id), 0);
      await assertLedgerHealthy(s);
    });
  },
});

Deno.test({
  name: "paypal: a pending capture leaves the order authorized; completed later, it credits once",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pp-pending");
      const { order } = await paypalOrder(s, u, {
        purpose: "wallet_topup",
        amount: 4000,
        currency: "GBP",
      });
      await approve(s, order.gateway_order_id, "pending", { deliver: false });
      const v = await verify(s, u, order.gateway_order_id);
      assert.equal(v.body.order.status, "authorized");
      const pending = events(s, order.gateway_order_id, "PAYMENT.CAPTURE.PENDING");
      assert.equal(pending.length, 1);
      assert.equal((await redeliver(s, pending[0])).status, 200);
      assert.equal((await orderRow(s, order.id)).status, "authorized");
      const captureId = (await orderRow(s, order.id)).gateway_payment_id;
      await simPost(s, `captures/${captureId}/settle`, { outcome: "completed" });
      await s.paypal.idle();
      assert.equal((await orderRow(s, order.id)).status, "paid");
      // The pending event again, late: a paid order stays paid.
      assert.equal(
        (await redeliver(s, {
          ...pending[0],
          headers: await s.paypal.signWebhook(pending[0].body),
        })).status,
        200,
      );
      assert.equal((await orderRow(s, order.id)).status, "paid");
      assert.equal(await credits(s, order.id), 1);
      assert.equal(await walletBalance(s.db, u.accountId, "GBP"), 4000);
      await assertLedgerHealthy(s);
    });
  },
});

async function paidByVerify(
  s: TestStack,
  u: TestUser,
  body: Record<string, unknown>,
) {
  const p = await paypalOrder(s, u, body);
  await approve(s, p.order.gateway_order_id, "approve", { deliver: false });
  const v = await verify(s, u, p.order.gateway_order_id);
  assert.equal(v.body.order.status, "paid", JSON.stringify(v.body));
  return p;
}

Deno.test({
  name: "paypal: a partial and a full refund of a capture, linked by identity; webhooks converge",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pp-refund");
      const { order } = await paidByVerify(s, u, {
        purpose: "wallet_topup",
        amount: 5000,
        currency: "USD",
      });
      const service = client(s, s.serviceRoleKey);
      const part = await invoke(service, "refunds", { order_id: order.id, amount: 2000 });
      assert.equal(part.status, 201, JSON.stringify(part.body));
      assert.equal(part.body.refund.status, "processed");
      assert.equal(part.body.order.status, "partially_refunded");
      const rest = await invoke(service, "refunds", { order_id: order.id });
      assert.equal(rest.status, 201, JSON.stringify(rest.body));
      assert.equal(rest.body.refund.amount, 3000);
      assert.equal(rest.body.order.status, "refunded");
      await s.paypal.idle();

      const atPayPal = [...s.paypal.state.refunds.values()];
      assert.deepEqual(
        atPayPal.map((r) => [r.custom_id, r.amount.value]).sort(),
        [[part.body.refund.id, "20.00"], [rest.body.refund.id, "30.00"]].sort(),
      );
      const capture = [...s.paypal.state.captures.values()][0].capture;
      assert.equal(capture.status, "REFUNDED");
      // Both PAYMENT.CAPTURE.REFUNDED events found settle's refunds: no refund made "at PayPal".
      const refunded = events(s, order.gateway_order_id, "PAYMENT.CAPTURE.REFUNDED");
      assert.equal(refunded.length, 2);
      for (const e of refunded) assert.equal((await redeliver(s, e)).status, 200);
      const rows = await s.db`select origin, status, amount::int from public.refunds
        where order_id = ${order.id} order by amount`;
      assert.deepEqual(rows.map((r) => [r.origin, r.status, r.amount]), [
        ["settle", "processed", 2000],
        ["settle", "processed", 3000],
      ]);
      const [{ outcomes }] = await s.db`select array_agg(outcome order by id) as outcomes
        from public.webhook_events where gateway = 'paypal' and event_type = 'PAYMENT.CAPTURE.REFUNDED'
          and gateway_payment_id = ${capture.id}`;
      // Each REFUNDED event found a settle refund: "applied" when it beat the API answer's
      // recording (it links the refund), "no_effect" after it; never a refund of its own.
      assert.equal(outcomes.length, 2);
      for (const o of outcomes) assert.ok(["no_effect", "applied"].includes(o), outcomes.join(","));
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
      await assertLedgerHealthy(s);
    });
  },
});

Deno.test({
  name:
    "paypal: a capture PayPal reverses is stored and moves nothing (its dispute books the money)",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pp-reversed");
      const { order } = await paidByVerify(s, u, {
        purpose: "wallet_topup",
        amount: 2500,
        currency: "EUR",
      });
      const captureId = (await orderRow(s, order.id)).gateway_payment_id;
      await simPost(s, `captures/${captureId}/reverse`, {});
      await s.paypal.idle();
      const reversed = events(s, order.gateway_order_id, "PAYMENT.CAPTURE.REVERSED");
      assert.equal(reversed.length, 1);
      assert.equal((await redeliver(s, reversed[0])).status, 200);
      const stored = await s.db`select outcome, gateway_payment_id from public.webhook_events
        where gateway = 'paypal' and event_type = 'PAYMENT.CAPTURE.REVERSED'
          and gateway_payment_id = ${captureId}`;
      assert.deepEqual(stored.map((r) => [r.outcome, r.gateway_payment_id]), [
        ["ignored", captureId],
      ]);
      const rows = await s.db`select id from public.refunds where order_id = ${order.id}`;
      assert.equal(
        rows.length,
        0,
        "not a refund: a dispute takes it (tests/paypal_disputes_test.ts)",
      );
      assert.equal((await orderRow(s, order.id)).status, "paid");
      assert.equal(await walletBalance(s.db, u.accountId, "EUR"), 2500);
      await assertLedgerHealthy(s);
    });
  },
});

Deno.test({
  name: "paypal: JPY and HUF amounts go without decimals; HUF fractions and INR are refused",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pp-currency");
      const jpy = await paidByVerify(s, u, { purpose: "product", product_id: "tea_jp" });
      assert.deepEqual(
        (await gatewayOrder(s, jpy.order.gateway_order_id)).purchase_units[0].amount,
        {
          currency_code: "JPY",
          value: "1200",
        },
      );
      const huf = await paidByVerify(s, u, {
        purpose: "wallet_topup",
        amount: 250000,
        currency: "HUF",
      });
      assert.deepEqual(
        (await gatewayOrder(s, huf.order.gateway_order_id)).purchase_units[0].amount,
        {
          currency_code: "HUF",
          value: "2500",
        },
      );
      assert.equal(await walletBalance(s.db, u.accountId, "HUF"), 250000);
      const service = client(s, s.serviceRoleKey);
      const fraction = await invoke(service, "refunds", { order_id: huf.order.id, amount: 150 });
      assert.equal(fraction.status, 400, JSON.stringify(fraction.body));
      const refund = await invoke(service, "refunds", { order_id: huf.order.id, amount: 100000 });
      assert.equal(refund.status, 201, JSON.stringify(refund.body));
      const atPayPal = [...s.paypal.state.refunds.values()].map((r) => r.amount);
      assert.deepEqual(atPayPal, [{ currency_code: "HUF", value: "1000" }]);

      const [{ n: before }] = await s.db`select count(*)::int as n from public.orders`;
      const c = client(s, u.token);
      for (
        const body of [
          { purpose: "wallet_topup", amount: 250050, currency: "HUF" },
          { purpose: "wallet_topup", amount: 50000, currency: "INR" },
          { purpose: "plan", plan_id: "pro_monthly" },
          { purpose: "wallet_topup", amount: 5000, currency: "KWD" },
        ]
      ) {
        const r = await invoke(c, "create-order", { gateway: "paypal", ...body });
        assert.equal(r.status, 400, JSON.stringify([body, r.body]));
        assert.equal(r.body.error.code, "invalid_request");
      }
      const [{ n: after }] = await s.db`select count(*)::int as n from public.orders`;
      assert.equal(after, before, "refused orders write nothing");
      await assertLedgerHealthy(s);
    });
  },
});

Deno.test({
  name: "paypal: reconcile captures an approved order nobody captured; the audit reads PayPal back",
  ...opts,
  fn: async () => {
    await withOwnStack("paypal_reconcile", { RATE_LIMITS: "off" }, async (s) => {
      const u = await createUser(s.db, "pp-reconcile");
      await holdWebhooks(s);
      const lost = await paypalOrder(s, u);
      await approve(s, lost.order.gateway_order_id);
      const pending = await paypalOrder(s, u);
      await approve(s, pending.order.gateway_order_id, "pending");
      const r1 = await reconcile(s.app, { olderThanSeconds: 0, retrySeconds: 0 });
      assert.equal((r1.orders as Record<string, number>).paid, 1, JSON.stringify(r1));
      assert.equal((await orderRow(s, lost.order.id)).status, "paid");
      assert.equal((await orderRow(s, pending.order.id)).status, "authorized");
      assert.equal(await credits(s, lost.order.id), 1);

      // Captured at PayPal behind settle's back: the audit finds it, and nothing else.
      const behind = await paypalOrder(s, u);
      await approve(s, behind.order.gateway_order_id);
      const read = await s.app.gateway("paypal").fetchPayment({
        gatewayOrderId: behind.order.gateway_order_id,
        amount: 5000,
        currency: "USD",
      });
      assert.equal(read.kind, "captured");
      const now = Math.floor(Date.now() / 1000);
      const res = await invoke(client(s, s.serviceRoleKey), "gateway-audit", {
        from: now - 3600,
        to: now + 60,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.ok(res.body.gateways.paypal, JSON.stringify(res.body));
      const found = await s.db`select kind, gateway_object_id from public.gateway_discrepancies
        where gateway = 'paypal'`;
      assert.deepEqual(found.map((d) => [d.kind, d.gateway_object_id]), [
        ["missing_in_settle", behind.order.gateway_order_id],
      ]);
      await assertLedgerHealthy(s);
    });
  },
});

Deno.test({
  name:
    "paypal: an escrow engagement funded with PayPal settles, and its penalty is refunded there",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const payer = await createUser(s.db, "pp-escrow-payer");
      const payee = await createUser(s.db, "pp-escrow-payee");
      const e = await createEngagement(s, payer, payee, { currency: "USD", hold_hours: 0 });
      const { order } = await paidByVerify(s, payer, { purpose: "escrow", engagement_id: e.id });
      assert.equal(order.amount, 10000);
      assert.equal((await engagementRow(s, e.id)).status, "funded");
      assert.equal(await houseBalance(s, escrowAccount(e.id)), 10000);
      assert.equal(await walletBalance(s.db, payer.accountId, "USD"), 0);

      await complete(s, payer, e.id, 3);
      const run = await settleRun(s);
      assert.equal(run.settled, 1);
      assert.equal(run.refunds_created, 1);
      await s.paypal.idle();
      assert.equal(await walletBalance(s.db, payee.accountId, "USD"), 8100);
      const atPayPal = [...s.paypal.state.refunds.values()];
      assert.deepEqual(atPayPal.map((r) => [r.amount.value, r.status]), [["10.00", "COMPLETED"]]);
      const [refund] = await s
        .db`select id, status from public.refunds where order_id = ${order.id}`;
      assert.equal(refund.status, "processed");
      assert.equal(atPayPal[0].custom_id, refund.id);
      await assertLedgerHealthy(s);
    });
  },
});
