// Who may refund what (issue 10, section 3), end to end on both gateways: a buyer refunds a
// plan's unused share inside its window (a partial refund shortens the period in the same
// transaction), more is a 409 refund_not_allowed that writes nothing, concurrent requests
// cannot each take the same allowance, and the service role may refund any paid order.
import assert from "node:assert/strict";
import { createUser, snapshot, type TestStack, type TestUser, withStack } from "./support/stack.ts";
import { assertContractError } from "./support/contract.ts";
import {
  audit,
  createOrder,
  gatewayRefunds,
  GWS,
  idle,
  opts,
  orderState,
  type Paid,
  pay,
  refund,
  subscription,
} from "./support/refunds.ts";

/** Time passes: the account's periods, subscription and payments move p_days into the past. */
async function age(s: TestStack, u: TestUser, days: number) {
  const ago = `${days} days`;
  await s.db.begin(async (tx) => {
    await tx`update public.subscription_periods
      set period_start = period_start - ${ago}::interval, period_end = period_end - ${ago}::interval
      where account_id = ${u.accountId}`;
    await tx`update public.subscriptions
      set current_period_start = current_period_start - ${ago}::interval,
          current_period_end = current_period_end - ${ago}::interval
      where account_id = ${u.accountId}`;
    await tx`update public.orders set paid_at = paid_at - ${ago}::interval
      where account_id = ${u.accountId}`;
  });
}

/** What the buyer may refund of the order now: floor(price * unused / bought length). */
async function allowance(s: TestStack, p: Paid): Promise<number> {
  const [r] = await s.db`select a.refundable from public.orders o,
    settle.user_refund_allowance(o) a where o.id = ${p.orderId}`;
  return Number(r.refundable);
}

for (const { gw, plan } of GWS) {
  Deno.test({
    name:
      `${gw}: a buyer refunds only the unused share of ${plan}, concurrently too; the period shrinks with it`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-policy`);
        const p = await pay(
          s,
          u,
          gw,
          await createOrder(s, u, { gateway: gw, purpose: "plan", plan_id: plan }),
        );
        await age(s, u, 10);
        const allowed = await allowance(s, p);
        assert.ok(allowed > p.amount / 2 && allowed < p.amount, `allowance ${allowed}`);
        const [{ endBefore }] = await s.db`select current_period_end::text as "endBefore"
          from public.subscriptions where account_id = ${u.accountId}`;

        // One minor unit more than the unused share: a clear 409 that writes nothing.
        const before = await snapshot(s.db);
        const over = await refund(s, u.token, { order_id: p.orderId, amount: allowed + 1 });
        assertContractError(over, 409, "refund_not_allowed");
        assert.match(
          over.body.error.message,
          /^you may refund at most \d+ (INR|USD) of this plan order/,
        );
        assert.deepEqual(await snapshot(s.db), before);
        assert.equal((await gatewayRefunds(s, p)).length, 0);

        // Eight concurrent requests of 30% of the allowance: each takes the time it pays back
        // under the order's lock, so exactly three fit.
        const part = Math.floor(allowed * 0.3);
        const replies = await Promise.all(Array.from(
          { length: 8 },
          (_, i) =>
            refund(s, u.token, { order_id: p.orderId, amount: part }, `part-${i}-${p.orderId}`),
        ));
        const accepted = replies.filter((r) => r.status === 201);
        for (const r of replies.filter((r) => r.status !== 201)) {
          assertContractError(r, 409, "refund_not_allowed");
        }
        assert.equal(accepted.length, 3, replies.map((r) => r.status).join(","));
        await idle(s);
        assert.deepEqual(await orderState(s, p.orderId), {
          status: "partially_refunded",
          refunded: 3 * part,
        });
        assert.equal((await gatewayRefunds(s, p)).length, 3);
        const [{ moved }] = await s.db`
          -- (text: a timestamptz parameter would go through a JS Date and lose its microseconds)
          select (${endBefore}::text::timestamptz - sum(r.period_cut)) = min(s.current_period_end) as moved
          from public.refunds r join public.subscriptions s on s.account_id = r.account_id
          where r.order_id = ${p.orderId}`;
        assert.equal(moved, true, "the subscription ends earlier by the time the refunds took");
        assert.equal((await subscription(s, u)).is_pro, true);

        // After the 14-day window the buyer may not refund anything; an operator may.
        await age(s, u, 5);
        const late = await refund(s, u.token, { order_id: p.orderId, amount: 100 });
        assertContractError(late, 409, "refund_not_allowed");
        const op = await refund(s, s.serviceRoleKey, { order_id: p.orderId });
        assert.equal(op.status, 201, JSON.stringify(op.body));
        assert.equal(op.body.order.status, "refunded");
        assert.equal(op.body.refund.origin, "settle");
        const ended = await subscription(s, u);
        assert.equal(ended.is_pro, false);
        assert.equal(ended.subscription!.status, "canceled");
        await audit(s);
      });
    },
  });
}
