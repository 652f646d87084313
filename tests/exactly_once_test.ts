// Exactly once: duplicates, races and out-of-order events credit a wallet once, on real Postgres.
import assert from "node:assert/strict";
import {
  client,
  createUser,
  invoke,
  payAtSimulator,
  postWebhook,
  simEvents,
  type TestStack,
  type TestUser,
  topupOrder,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { LOCAL_RAZORPAY } from "../dev/stack.ts";
import { hmacSha256Hex } from "../shared/crypto.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function creditsFor(s: TestStack, orderId: string) {
  const [{ n }] = await s.db`select count(*)::int as n from public.ledger_transactions
    where order_id = ${orderId}`;
  return n;
}

async function orderStatus(s: TestStack, orderId: string) {
  const [o] = await s.db`select status from public.orders where id = ${orderId}`;
  return o.status as string;
}

/** An order paid at the simulator with webhooks withheld, so the test delivers them. */
async function paidQuietly(s: TestStack, user: TestUser, amount: number) {
  const { order, checkout } = await topupOrder(s, user, amount);
  const proof = await payAtSimulator(s, checkout.order_id, { webhooks: { deliver: false } });
  const events = await simEvents(s, checkout.order_id);
  const captured = events.find((e) => e.type === "payment.captured")!;
  const orderPaid = events.find((e) => e.type === "order.paid")!;
  return { order, proof, events, captured, orderPaid };
}

Deno.test({
  name: "the same signed webhook 50 times at once: 50 × 200, one event row, one credit",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "dup50");
      const { order, captured } = await paidQuietly(s, u, 25000);
      const replies = await Promise.all(Array.from({ length: 50 }, () => postWebhook(s, captured)));
      assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
      assert.ok(replies.every((r) => r.body.received === true));
      const [{ n }] = await s.db`select count(*)::int as n from public.webhook_events
        where gateway = 'razorpay' and event_id = ${captured.event_id}`;
      assert.equal(n, 1);
      assert.equal(await creditsFor(s, order.id), 1);
      assert.equal(await walletBalance(s.db, u.accountId), 25000);
      assert.equal(await orderStatus(s, order.id), "paid");
    });
  },
});

Deno.test({
  name: "verify and webhooks racing (20 verifies, captured and order.paid ×10 each): one credit",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "race");
      const c = client(s, u.token);
      const { order, proof, captured, orderPaid } = await paidQuietly(s, u, 41000);
      const replies = await Promise.all([
        ...Array.from({ length: 20 }, () => invoke(c, "verify", proof)),
        ...Array.from({ length: 10 }, () => postWebhook(s, captured)),
        ...Array.from({ length: 10 }, () => postWebhook(s, orderPaid)),
      ]);
      assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
      assert.ok(replies.slice(0, 20).every((r) => r.body.order.status === "paid"));
      assert.equal(await creditsFor(s, order.id), 1);
      assert.equal(await walletBalance(s.db, u.accountId), 41000);
    });
  },
});

Deno.test({
  name: "webhooks before verify, in reverse order: paid once, verify still answers paid",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "early");
      const c = client(s, u.token);
      const { order, proof, events } = await paidQuietly(s, u, 9900);
      for (const e of [...events].reverse()) assert.equal((await postWebhook(s, e)).status, 200);
      assert.equal(await orderStatus(s, order.id), "paid");
      const v = await invoke(c, "verify", proof);
      assert.equal(v.status, 200);
      assert.equal(v.body.order.status, "paid");
      assert.equal(await creditsFor(s, order.id), 1);
      assert.equal(await walletBalance(s.db, u.accountId), 9900);
      // payment.authorized arriving after capture did not move the order backwards.
      const outcomes = await s.db`select event_type, outcome from public.webhook_events
        where order_id = ${order.id} order by id`;
      assert.deepEqual(outcomes.map((o) => [o.event_type, o.outcome]), [
        ["order.paid", "applied"],
        ["payment.captured", "no_effect"],
        ["payment.authorized", "no_effect"],
      ]);
    });
  },
});

Deno.test({
  name: "a late payment.failed after paid changes nothing",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "late");
      const c = client(s, u.token);
      const { order, proof } = await paidQuietly(s, u, 5000);
      assert.equal((await invoke(c, "verify", proof)).body.order.status, "paid");
      const res = await fetch(
        `${s.simulatorUrl}/razorpay/_sim/razorpay/payments/${proof.razorpay_payment_id}/fail-late`,
        { method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
      );
      const { event_id } = await res.json();
      await s.razorpay.idle();
      const [event] = await s.db`select event_type, outcome from public.webhook_events
        where event_id = ${event_id}`;
      assert.deepEqual({ ...event }, { event_type: "payment.failed", outcome: "no_effect" });
      assert.equal(await orderStatus(s, order.id), "paid");
      assert.equal(await creditsFor(s, order.id), 1);
      assert.equal(await walletBalance(s.db, u.accountId), 5000);
    });
  },
});

Deno.test({
  name: "unknown and unrelated events are stored and answered 200",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const sign = async (event: string, payload: unknown) => {
        const body = JSON.stringify({
          entity: "event",
          account_id: "acc_SettleSim00001",
          event,
          contains: [],
          payload,
          created_at: 1795000000,
        });
        return {
          event_id: `evt_${crypto.randomUUID().slice(0, 14)}`,
          body,
          signature: await hmacSha256Hex(LOCAL_RAZORPAY.webhookSecret, body),
        };
      };
      const cases = [
        [
          await sign("payment.dispute.created", { dispute: { entity: { id: "disp_1" } } }),
          "ignored",
        ],
        [await sign("refund.speed_changed", {}), "ignored"],
        [
          await sign("payment.captured", {
            payment: {
              entity: {
                id: "pay_ZZZZZZZZZZZZZZ",
                amount: 100,
                currency: "INR",
                status: "captured",
                captured: true,
                order_id: "order_NotOursAtAll00",
              },
            },
          }),
          "unknown_order",
        ],
      ] as const;
      for (const [e, outcome] of cases) {
        const r = await postWebhook(s, e);
        assert.equal(r.status, 200);
        assert.deepEqual(r.body, { received: true });
        const [row] = await s.db`select outcome, raw_body from public.webhook_events
          where event_id = ${e.event_id}`;
        assert.equal(row.outcome, outcome);
        assert.equal(row.raw_body, e.body);
      }
    });
  },
});

Deno.test({
  name: "an event whose amount differs from the order is recorded as a mismatch and never credits",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "mismatch");
      const { order, captured } = await paidQuietly(s, u, 60000);
      const body = captured.body.replaceAll('"amount":60000', '"amount":600');
      assert.notEqual(body, captured.body);
      const forged = {
        event_id: `${captured.event_id}x`,
        body,
        signature: await hmacSha256Hex(LOCAL_RAZORPAY.webhookSecret, body),
      };
      assert.equal((await postWebhook(s, forged)).status, 200);
      const [row] = await s.db`select outcome, detail from public.webhook_events
        where event_id = ${forged.event_id}`;
      assert.equal(row.outcome, "mismatch");
      assert.match(row.detail, /600 INR, order is 60000 INR/);
      assert.equal(await orderStatus(s, order.id), "created");
      assert.equal(await creditsFor(s, order.id), 0);
      assert.equal(await walletBalance(s.db, u.accountId), 0);
    });
  },
});

Deno.test({
  name:
    "30 orders across 3 users, webhooks duplicated ×4 and reordered, racing verifies: balances exact",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const users = await Promise.all([1, 2, 3].map((i) => createUser(s.db, `many${i}`)));
      const expected = new Map(users.map((u) => [u.accountId, 0]));
      await Promise.all(Array.from({ length: 30 }, async (_, i) => {
        const u = users[i % 3];
        const amount = 1000 + i * 137;
        const { checkout } = await topupOrder(s, u, amount);
        const proof = await payAtSimulator(s, checkout.order_id, {
          webhooks: { duplicate: 4, reorder: i % 2 === 0 },
        });
        if (i % 3 !== 0) await invoke(client(s, u.token), "verify", proof);
        expected.set(u.accountId, expected.get(u.accountId)! + amount);
      }));
      await s.razorpay.idle();
      for (const u of users) {
        assert.equal(await walletBalance(s.db, u.accountId), expected.get(u.accountId));
      }
      const [{ n }] = await s.db`select count(*)::int as n from public.orders o
        where o.account_id in ${s.db(users.map((u) => u.accountId))} and o.status = 'paid'
          and (select count(*) from public.ledger_transactions t where t.order_id = o.id) = 1`;
      assert.equal(n, 30);
    });
  },
});
