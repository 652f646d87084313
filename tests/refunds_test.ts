// Refunds on both gateways end to end (the API, the gateway's refund webhooks, failures and
// outages), and subscriptions bought, extended, refunded and cancelled. Every test ends with an
// empty settle.ledger_audit().
import assert from "node:assert/strict";
import { client, createUser, invoke, walletBalance, withStack } from "./support/stack.ts";
import {
  audit,
  clearFaults,
  createOrder,
  deliver,
  failAtGateway,
  fault,
  gatewayRefunds,
  GWS,
  idle,
  ledgerKeys,
  opts,
  orderState,
  outcomes,
  paidTopup,
  pay,
  paymentEvents,
  redeliver,
  refund,
  refundAtGateway,
  refundEvents,
  refundRows,
  sorted,
  subscription,
  webhooks,
} from "./support/refunds.ts";
// ------------------------------------------------------------------ refunds, per gateway

for (const { gw, currency, amount } of GWS) {
  Deno.test({
    name: `${gw}: partial then full refund of a top-up; redelivered refund webhooks change nothing`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-refund`);
        const p = await paidTopup(s, u, gw, amount, currency);
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount);

        const part = Math.round(amount * 0.4);
        const first = await refund(s, u.token, {
          order_id: p.orderId,
          amount: part,
          reason: "customer asked",
        });
        assert.equal(first.status, 201, JSON.stringify(first.body));
        const r1 = first.body.refund;
        assert.equal(r1.order_id, p.orderId);
        assert.equal(r1.status, "processed");
        assert.equal(r1.amount, part);
        assert.equal(r1.currency, currency);
        assert.equal(r1.gateway, gw);
        assert.equal(r1.source, "api");
        assert.equal(r1.reason, "customer asked");
        assert.equal(r1.failure_reason, null);
        assert.match(r1.gateway_refund_id, gw === "razorpay" ? /^rfnd_/ : /^re_/);
        assert.equal(first.body.order.status, "partially_refunded");
        await idle(s);
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount - part);
        assert.deepEqual(await orderState(s, p.orderId), {
          status: "partially_refunded",
          refunded: part,
        });

        // No amount: all that remains.
        const rest = await refund(s, u.token, { order_id: p.orderId });
        assert.equal(rest.status, 201, JSON.stringify(rest.body));
        const r2 = rest.body.refund;
        assert.equal(r2.amount, amount - part);
        assert.equal(r2.status, "processed");
        assert.equal(rest.body.order.status, "refunded");
        await idle(s);
        assert.equal(await walletBalance(s.db, u.accountId, currency), 0);
        assert.deepEqual(await orderState(s, p.orderId), { status: "refunded", refunded: amount });

        // Nothing is left to refund: a refunded order is no longer a paid one.
        const more = await refund(s, u.token, { order_id: p.orderId, amount: 100 });
        assert.equal(more.status, 409, JSON.stringify(more.body));
        assert.equal(more.body.error.code, "order_not_refundable");

        // The gateway holds exactly these two refunds, and settle has exactly one row for each.
        const atGateway = await gatewayRefunds(s, p);
        assert.deepEqual(
          sorted(atGateway.map((g) => `${g.id}:${g.amount}`)),
          sorted([`${r1.gateway_refund_id}:${part}`, `${r2.gateway_refund_id}:${amount - part}`]),
        );
        const events = await refundEvents(s, p);
        assert.ok(events.length >= 4, `${events.length} refund events`);
        await redeliver(s, gw, events);
        await idle(s);
        const rows = await refundRows(s, p.orderId);
        assert.deepEqual(rows.map((r) => [r.id, r.status, r.amount, r.gateway_refund_id]), [
          [r1.id, "processed", part, r1.gateway_refund_id],
          [r2.id, "processed", amount - part, r2.gateway_refund_id],
        ]);
        assert.deepEqual(
          await ledgerKeys(s, p.orderId),
          sorted([`order_paid:${p.orderId}`, `refund:${r1.id}`, `refund:${r2.id}`]),
        );
        assert.equal(await walletBalance(s.db, u.accountId, currency), 0);
        assert.deepEqual(await orderState(s, p.orderId), { status: "refunded", refunded: amount });
        // Stored once each, none of them a mismatch or a failed effect.
        const seen = await outcomes(s, events.map((e) => e.event_id));
        assert.equal(seen.size, events.length);
        for (const [id, outcome] of seen) {
          assert.ok(["applied", "no_effect", "ignored"].includes(outcome), `${id}: ${outcome}`);
        }

        // GET /refunds lists them for the owner.
        const listed = await invoke(
          client(s, u.token),
          `refunds?order_id=${p.orderId}`,
          undefined,
          { method: "GET" },
        );
        assert.equal(listed.status, 200, JSON.stringify(listed.body));
        assert.deepEqual(listed.body.refunds.map((r: { id: string }) => r.id), [r1.id, r2.id]);
        await audit(s);
      });
    },
  });

  Deno.test({
    name: `${gw}: refund webhooks racing the API answer converge to one refund each`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-race`);
        const p = await paidTopup(s, u, gw, amount, currency);
        // Each refund's webhooks go out ×5 concurrently the moment the gateway makes it, while
        // settle is still recording the gateway's answer; four refunds race on one order.
        await webhooks(s, { duplicate: 4 });
        const quarter = amount / 4;
        const replies = await Promise.all(
          [0, 1, 2, 3].map(() => refund(s, u.token, { order_id: p.orderId, amount: quarter })),
        );
        for (const r of replies) assert.equal(r.status, 201, JSON.stringify(r.body));
        await idle(s);
        const rows = await refundRows(s, p.orderId);
        assert.equal(rows.length, 4);
        assert.deepEqual(
          sorted(rows.map((r) => r.id)),
          sorted(replies.map((r) => r.body.refund.id)),
        );
        for (const r of rows) {
          assert.equal(r.status, "processed");
          assert.equal(r.amount, quarter);
          assert.equal(r.source, "api");
        }
        assert.deepEqual(
          sorted(rows.map((r) => r.gateway_refund_id!)),
          sorted((await gatewayRefunds(s, p)).map((g) => g.id)),
        );
        assert.deepEqual(await orderState(s, p.orderId), { status: "refunded", refunded: amount });
        assert.equal(await walletBalance(s.db, u.accountId, currency), 0);
        assert.equal(
          (await ledgerKeys(s, p.orderId)).filter((k) => k.startsWith("refund:")).length,
          4,
        );
        await audit(s);

        // The gateway's answer is lost (it made the refund, the connection dropped): 503 and
        // the refund stays pending; its webhook arrives first and completes it; the client's
        // retry under the same Idempotency-Key returns it without a second gateway refund.
        await webhooks(s, { deliver: false });
        const q = await paidTopup(s, u, gw, amount, currency);
        await fault(s, gw, "reset_after");
        const key = `lost-${crypto.randomUUID()}`;
        const lost = await refund(s, u.token, { order_id: q.orderId, amount: quarter }, key);
        await clearFaults(s);
        assert.equal(lost.status, 503, JSON.stringify(lost.body));
        assert.equal(lost.body.error.code, "gateway_unavailable");
        let [row] = await refundRows(s, q.orderId);
        assert.equal(row.status, "pending");
        assert.equal(row.gateway_refund_id, null);
        assert.deepEqual(await orderState(s, q.orderId), {
          status: "partially_refunded",
          refunded: quarter,
        });
        const made = await gatewayRefunds(s, q);
        assert.equal(made.length, 1);
        for (const e of await refundEvents(s, q)) await deliver(s, gw, e);
        [row] = await refundRows(s, q.orderId);
        assert.equal(row.status, "processed");
        assert.equal(row.gateway_refund_id, made[0].id);
        const retried = await refund(s, u.token, { order_id: q.orderId, amount: quarter }, key);
        assert.equal(retried.status, 200, JSON.stringify(retried.body));
        assert.equal(retried.body.refund.id, row.id);
        assert.equal(retried.body.refund.status, "processed");
        assert.equal((await gatewayRefunds(s, q)).length, 1);

        // The same, but the retry comes before the webhook: the gateway replays its refund for
        // settle's idempotency key, and the late webhooks find the row already complete.
        await fault(s, gw, "reset_after");
        const key2 = `lost-${crypto.randomUUID()}`;
        const lost2 = await refund(s, u.token, { order_id: q.orderId, amount: quarter }, key2);
        await clearFaults(s);
        assert.equal(lost2.status, 503, JSON.stringify(lost2.body));
        const retried2 = await refund(s, u.token, { order_id: q.orderId, amount: quarter }, key2);
        assert.equal(retried2.status, 200, JSON.stringify(retried2.body));
        assert.equal(retried2.body.refund.status, "processed");
        const atGateway = await gatewayRefunds(s, q);
        assert.equal(atGateway.length, 2);
        assert.ok(atGateway.some((g) => g.id === retried2.body.refund.gateway_refund_id));
        await redeliver(s, gw, await refundEvents(s, q), 3);
        const rows2 = await refundRows(s, q.orderId);
        assert.deepEqual(rows2.map((r) => r.status), ["processed", "processed"]);
        assert.deepEqual(await orderState(s, q.orderId), {
          status: "partially_refunded",
          refunded: 2 * quarter,
        });
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount - 2 * quarter);
        await audit(s);
      });
    },
  });

  Deno.test({
    name: `${gw}: a refund made at the gateway directly is counted once from its webhooks`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-direct`);
        const p = await paidTopup(s, u, gw, amount, currency);
        await webhooks(s, { duplicate: 3 });
        const direct = await refundAtGateway(s, p, amount / 5);
        await idle(s);
        let rows = await refundRows(s, p.orderId);
        assert.equal(rows.length, 1);
        assert.deepEqual(
          [rows[0].source, rows[0].status, rows[0].amount, rows[0].gateway_refund_id],
          ["gateway", "processed", amount / 5, direct.id],
        );
        assert.equal(rows[0].requested_by, null);
        await redeliver(s, gw, await refundEvents(s, p));
        rows = await refundRows(s, p.orderId);
        assert.equal(rows.length, 1);
        assert.deepEqual(
          await ledgerKeys(s, p.orderId),
          sorted([`order_paid:${p.orderId}`, `refund:${rows[0].id}`]),
        );
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount - amount / 5);
        assert.deepEqual(await orderState(s, p.orderId), {
          status: "partially_refunded",
          refunded: amount / 5,
        });

        // settle knows what is left: the rest through the API, and nothing more.
        const rest = await refund(s, u.token, { order_id: p.orderId });
        assert.equal(rest.status, 201, JSON.stringify(rest.body));
        assert.equal(rest.body.refund.amount, amount - amount / 5);
        assert.equal(rest.body.order.status, "refunded");
        await idle(s);
        assert.equal(await walletBalance(s.db, u.accountId, currency), 0);
        assert.equal((await gatewayRefunds(s, p)).length, 2);
        await audit(s);
      });
    },
  });

  Deno.test({
    name: `${gw}: a refund that fails at the gateway later is reversed exactly once`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-fail`);
        const p = await paidTopup(s, u, gw, amount, currency);
        const part = amount / 2;
        const r = await refund(s, u.token, { order_id: p.orderId, amount: part });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        await idle(s);
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount - part);

        await webhooks(s, { duplicate: 3 });
        await failAtGateway(s, gw, r.body.refund.gateway_refund_id);
        await idle(s);
        let [row] = await refundRows(s, p.orderId);
        assert.equal(row.id, r.body.refund.id);
        assert.equal(row.status, "failed");
        assert.ok(row.failure_reason, "a failure reason is kept");
        assert.deepEqual(await orderState(s, p.orderId), { status: "paid", refunded: 0 });
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount);
        const keys = sorted([
          `order_paid:${p.orderId}`,
          `refund:${row.id}`,
          `refund_reversed:${row.id}`,
        ]);
        assert.deepEqual(await ledgerKeys(s, p.orderId), keys);

        // Every refund event again, older states included, concurrently and reversed.
        await redeliver(s, gw, await refundEvents(s, p));
        [row] = await refundRows(s, p.orderId);
        assert.equal(row.status, "failed");
        assert.deepEqual(await orderState(s, p.orderId), { status: "paid", refunded: 0 });
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount);
        assert.deepEqual(await ledgerKeys(s, p.orderId), keys);
        await audit(s);

        // The money is refundable again, all of it.
        const again = await refund(s, u.token, { order_id: p.orderId });
        assert.equal(again.status, 201, JSON.stringify(again.body));
        assert.equal(again.body.refund.amount, amount);
        assert.equal(again.body.order.status, "refunded");
        await idle(s);
        assert.equal(await walletBalance(s.db, u.accountId, currency), 0);
        await audit(s);
      });
    },
  });

  Deno.test({
    name:
      `${gw}: gateway down gives 503 and a pending refund; the keyed retry refunds once at the gateway`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-down`);
        const p = await paidTopup(s, u, gw, amount, currency);
        const body = { order_id: p.orderId, amount: amount / 2 };
        const key = `down-${crypto.randomUUID()}`;
        await fault(s, gw, "error_503");
        const down = await refund(s, u.token, body, key);
        await clearFaults(s);
        assert.equal(down.status, 503, JSON.stringify(down.body));
        assert.equal(down.body.error.code, "gateway_unavailable");
        let [row] = await refundRows(s, p.orderId);
        assert.equal(row.status, "pending");
        assert.equal(row.gateway_refund_id, null);
        assert.equal(row.gateway_attempts, 1);
        // Counted while pending: the wallet cannot spend it meanwhile.
        assert.deepEqual(await orderState(s, p.orderId), {
          status: "partially_refunded",
          refunded: amount / 2,
        });
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount / 2);
        assert.equal((await gatewayRefunds(s, p)).length, 0);

        const retry = await refund(s, u.token, body, key);
        assert.equal(retry.status, 200, JSON.stringify(retry.body));
        assert.equal(retry.body.refund.id, row.id);
        assert.equal(retry.body.refund.status, "processed");
        const again = await refund(s, u.token, body, key);
        assert.equal(again.status, 200, JSON.stringify(again.body));
        assert.equal(again.body.refund.id, row.id);
        await idle(s);
        const atGateway = await gatewayRefunds(s, p);
        assert.equal(atGateway.length, 1);
        [row] = await refundRows(s, p.orderId);
        assert.equal(row.gateway_refund_id, atGateway[0].id);
        assert.equal(row.status, "processed");
        assert.equal(row.gateway_attempts, 2);

        // The key with another body is a conflict.
        const other = await refund(s, u.token, { ...body, amount: amount / 4 }, key);
        assert.equal(other.status, 409, JSON.stringify(other.body));
        assert.equal(other.body.error.code, "idempotency_conflict");

        // An error answer (500) does not say the refund was not made: it stays pending too.
        const key2 = `err500-${crypto.randomUUID()}`;
        await fault(s, gw, "error_500");
        const broken = await refund(s, u.token, { order_id: p.orderId, amount: 100 }, key2);
        await clearFaults(s);
        assert.equal(broken.status, 503, JSON.stringify(broken.body));
        assert.equal(broken.body.error.code, "gateway_unavailable");
        const pending = (await refundRows(s, p.orderId)).find((r) => r.amount === 100)!;
        assert.equal(pending.status, "pending");
        const fixed = await refund(s, u.token, { order_id: p.orderId, amount: 100 }, key2);
        assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
        assert.equal(fixed.body.refund.status, "processed");
        assert.equal((await gatewayRefunds(s, p)).length, 2);
        await audit(s);
      });
    },
  });

  Deno.test({
    name: `${gw}: the gateway refusing a refund gives 502; the refund is failed and reversed`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-refused`);
        const p = await paidTopup(s, u, gw, amount, currency);
        // Someone refunds most of it at the gateway; its webhooks are held, so settle still
        // thinks all of it is refundable and asks for more than the gateway has left.
        await webhooks(s, { deliver: false });
        const direct = await refundAtGateway(s, p, amount * 0.6);
        const r = await refund(s, u.token, { order_id: p.orderId, amount: amount * 0.8 });
        assert.equal(r.status, 502, JSON.stringify(r.body));
        assert.equal(r.body.error.code, "gateway_error");
        const [row] = await refundRows(s, p.orderId);
        assert.equal(row.status, "failed");
        assert.ok(row.failure_reason, "the gateway's refusal is kept");
        assert.equal(row.gateway_refund_id, null);
        assert.deepEqual(await orderState(s, p.orderId), { status: "paid", refunded: 0 });
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount);
        assert.deepEqual(
          await ledgerKeys(s, p.orderId),
          sorted([`order_paid:${p.orderId}`, `refund:${row.id}`, `refund_reversed:${row.id}`]),
        );
        await audit(s);

        // The held webhooks then count the gateway's own refund.
        await redeliver(s, gw, await refundEvents(s, p), 2);
        const rows = await refundRows(s, p.orderId);
        assert.equal(rows.length, 2);
        const counted = rows.find((x) => x.source === "gateway")!;
        assert.deepEqual(
          [counted.status, counted.amount, counted.gateway_refund_id],
          ["processed", amount * 0.6, direct.id],
        );
        assert.equal(await walletBalance(s.db, u.accountId, currency), amount * 0.4);
        assert.deepEqual(await orderState(s, p.orderId), {
          status: "partially_refunded",
          refunded: amount * 0.6,
        });
        await audit(s);
      });
    },
  });
}

Deno.test({
  name: "the service role can refund any account's order; members of other accounts cannot see it",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "svc-owner");
      const other = await createUser(s.db, "svc-other");
      const p = await paidTopup(s, u, "razorpay", 40000, "INR");
      const r = await refund(s, s.serviceRoleKey, { order_id: p.orderId, amount: 15000 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.refund.status, "processed");
      const [row] = await refundRows(s, p.orderId);
      assert.equal(row.requested_by, null);
      const q = await paidTopup(s, u, "stripe", 2000, "USD");
      const r2 = await refund(s, s.serviceRoleKey, { order_id: q.orderId });
      assert.equal(r2.status, 201, JSON.stringify(r2.body));
      assert.equal(r2.body.order.status, "refunded");
      await idle(s);
      assert.equal(await walletBalance(s.db, u.accountId, "INR"), 25000);
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);

      // The owner lists them; another user gets a 404 for both the refund and the listing.
      const mine = await invoke(client(s, u.token), `refunds?order_id=${p.orderId}`, undefined, {
        method: "GET",
      });
      assert.equal(mine.status, 200);
      assert.equal(mine.body.refunds.length, 1);
      const theirs = await invoke(
        client(s, other.token),
        `refunds?order_id=${p.orderId}`,
        undefined,
        { method: "GET" },
      );
      assert.equal(theirs.status, 404, JSON.stringify(theirs.body));
      const steal = await refund(s, other.token, { order_id: p.orderId, amount: 100 });
      assert.equal(steal.status, 404, JSON.stringify(steal.body));
      assert.equal(steal.body.error.code, "not_found");
      await audit(s);
    });
  },
});

// ------------------------------------------------------------------ subscriptions, per gateway

for (const { gw, plan } of GWS) {
  Deno.test({
    name:
      `${gw}: buying ${plan} activates a subscription, a second purchase extends it exactly once, refunds take the time back`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-sub`);
        const before = await subscription(s, u);
        assert.deepEqual(
          [before.account_id, before.plan, before.is_pro, before.subscription],
          [u.accountId, null, false, null],
        );
        const planBody = { gateway: gw, purpose: "plan", plan_id: plan };
        const first = await pay(s, u, gw, await createOrder(s, u, planBody));
        const one = await subscription(s, u);
        assert.equal(one.is_pro, true);
        assert.equal(one.plan, plan);
        assert.ok(one.subscription);
        assert.equal(one.subscription.status, "active");
        assert.equal(one.subscription.plan_id, plan);
        assert.equal(one.entitlement_ends_at, one.subscription.current_period_end);
        const [{ month }] = await s.db`select ${one.subscription.current_period_end}::timestamptz
          = ${one.subscription.current_period_start}::timestamptz + interval '1 month' as month`;
        assert.equal(month, true, "one month bought");

        // The second purchase's payment webhooks are held, then delivered ×5 and reversed,
        // racing nothing but each other: the period is extended once, from the current end.
        const secondOrder = await createOrder(s, u, planBody);
        const second = await pay(s, u, gw, secondOrder, { deliver: false });
        const two = await subscription(s, u);
        assert.equal(two.subscription!.id, one.subscription.id);
        assert.equal(two.subscription!.current_period_start, one.subscription.current_period_start);
        const [{ extended }] = await s.db`select ${
          two.subscription!.current_period_end
        }::timestamptz
          = ${one.subscription.current_period_end}::timestamptz + interval '1 month' as extended`;
        assert.equal(extended, true, "extended from the current period's end");
        await redeliver(s, gw, await paymentEvents(s, second));
        await redeliver(s, gw, await paymentEvents(s, first), 2);
        const still = await subscription(s, u);
        assert.deepEqual(still, two, "duplicate payment events extended it again");
        const [{ n }] = await s.db`select count(*)::int as n from public.subscription_periods
          where account_id = ${u.accountId}`;
        assert.equal(n, 2);

        // Refunding the second purchase in full gives its month back; the first still holds.
        const r2 = await refund(s, u.token, { order_id: second.orderId });
        assert.equal(r2.status, 201, JSON.stringify(r2.body));
        assert.equal(r2.body.order.status, "refunded");
        const back = await subscription(s, u);
        assert.equal(back.is_pro, true);
        assert.equal(back.subscription!.current_period_end, one.subscription.current_period_end);
        // A user's partial refund of the first takes the time it paid back from the period
        // (ceil(length * refunded / price)); still entitled. An operator refunds the rest,
        // which ends it.
        const half = await refund(s, u.token, {
          order_id: first.orderId,
          amount: first.amount / 2,
        });
        assert.equal(half.status, 201, JSON.stringify(half.body));
        const shorter = await subscription(s, u);
        assert.equal(shorter.is_pro, true);
        const [cut] = await s.db`
          select r.period_cut = settle.us_interval(
                   div(settle.interval_us(p.period_start, p.period_end + r.period_cut)::numeric + 1, 2)::bigint)
                   as half_the_period,
                 ${shorter.subscription!.current_period_end}::timestamptz
                   = ${
          back.subscription!.current_period_end
        }::timestamptz - r.period_cut as moved_end
          from public.refunds r join public.subscription_periods p on p.order_id = r.order_id
          where r.id = ${half.body.refund.id}`;
        assert.deepEqual({ ...cut }, { half_the_period: true, moved_end: true });
        const rest = await refund(s, s.serviceRoleKey, { order_id: first.orderId });
        assert.equal(rest.status, 201, JSON.stringify(rest.body));
        const ended = await subscription(s, u);
        assert.equal(ended.is_pro, false);
        assert.equal(ended.plan, null);
        assert.equal(ended.entitlement_ends_at, null);
        assert.equal(ended.subscription!.status, "canceled");
        // The refund webhooks arriving afterwards change nothing.
        await idle(s);
        await redeliver(s, gw, [
          ...await refundEvents(s, first),
          ...await refundEvents(s, second),
        ], 2);
        assert.deepEqual(await subscription(s, u), ended);

        // Buying again starts a fresh period from now.
        const third = await pay(s, u, gw, await createOrder(s, u, planBody));
        const fresh = await subscription(s, u);
        assert.equal(fresh.is_pro, true);
        assert.equal(fresh.subscription!.status, "active");
        assert.ok(
          new Date(fresh.subscription!.current_period_start) >
            new Date(one.subscription.current_period_start),
        );
        assert.ok(third.orderId);
        await audit(s);
      });
    },
  });
}

for (const { gw, plan } of GWS) {
  Deno.test({
    name: `${gw}: a full refund of ${plan} that then fails at the gateway gives the period back`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-sub-fail`);
        const bought = await pay(
          s,
          u,
          gw,
          await createOrder(s, u, { gateway: gw, purpose: "plan", plan_id: plan }),
        );
        const r = await refund(s, s.serviceRoleKey, { order_id: bought.orderId });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        await idle(s);
        assert.equal((await subscription(s, u)).is_pro, false);

        // The money stays with the merchant, so the customer is entitled again: once, however
        // often the failure is delivered.
        await webhooks(s, { duplicate: 3 });
        await failAtGateway(s, gw, r.body.refund.gateway_refund_id);
        await idle(s);
        await redeliver(s, gw, await refundEvents(s, bought), 2);
        assert.deepEqual(await orderState(s, bought.orderId), { status: "paid", refunded: 0 });
        const back = await subscription(s, u);
        assert.equal(back.is_pro, true);
        assert.equal(back.plan, plan);
        assert.equal(back.subscription!.status, "active");
        // What the refund took is given back: the month less the moments it was in use.
        const [{ month }] = await s.db`
          select e between st + interval '1 month' - interval '1 minute' and st + interval '1 month'
            as month
          from (select current_period_end as e, current_period_start as st
                from public.subscriptions where account_id = ${u.accountId}) x`;
        assert.equal(month, true, "one month, given back once");
        await audit(s);
      });
    },
  });
}

Deno.test({
  name:
    "cancel at period end keeps the entitlement until lapse_subscriptions runs past the end; immediate cancel ends it",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "cancel-end");
      await pay(
        s,
        u,
        "razorpay",
        await createOrder(s, u, { gateway: "razorpay", purpose: "plan", plan_id: "pro_monthly" }),
      );
      const c = client(s, u.token);
      const canceled = await invoke(c, "subscriptions/cancel", {});
      assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
      assert.equal(canceled.body.subscription.status, "active");
      assert.equal(canceled.body.subscription.cancel_at_period_end, true);
      const sub = await subscription(s, u);
      assert.equal(sub.is_pro, true);
      assert.equal(sub.subscription!.cancel_at_period_end, true);
      const end = sub.subscription!.current_period_end;

      // Before the end nothing lapses; one second after it, this subscription does.
      await s.db`select settle.lapse_subscriptions(${end}::timestamptz - interval '1 second')`;
      assert.equal((await subscription(s, u)).is_pro, true);
      const [{ lapsed }] = await s.db`select settle.lapse_subscriptions(
        ${end}::timestamptz + interval '1 second') as lapsed`;
      assert.ok(lapsed >= 1);
      const after = await subscription(s, u);
      assert.equal(after.is_pro, false);
      assert.equal(after.plan, null);
      assert.equal(after.subscription!.status, "canceled");
      // Without a cancel, a period that ran out unrenewed is past_due: no entitlement either.
      const x = await createUser(s.db, "lapse");
      await pay(
        s,
        x,
        "razorpay",
        await createOrder(s, x, { gateway: "razorpay", purpose: "plan", plan_id: "pro_monthly" }),
      );
      const xs = await subscription(s, x);
      assert.equal(xs.is_pro, true);
      await s.db`select settle.lapse_subscriptions(
        ${xs.subscription!.current_period_end}::timestamptz + interval '1 second')`;
      const xl = await subscription(s, x);
      assert.deepEqual(
        [xl.is_pro, xl.plan, xl.subscription!.status, xl.subscription!.canceled_at],
        [false, null, "past_due", null],
      );

      // Cancelling what is already canceled is a conflict.
      const twice = await invoke(c, "subscriptions/cancel", { at_period_end: false });
      assert.equal(twice.status, 409, JSON.stringify(twice.body));

      // Immediate cancel (Stripe plan, by the service role for the account).
      const v = await createUser(s.db, "cancel-now");
      await pay(
        s,
        v,
        "stripe",
        await createOrder(s, v, { gateway: "stripe", purpose: "plan", plan_id: "pro_monthly_usd" }),
      );
      assert.equal((await subscription(s, v)).is_pro, true);
      const now = await invoke(client(s, s.serviceRoleKey), "subscriptions/cancel", {
        account_id: v.accountId,
        at_period_end: false,
      });
      assert.equal(now.status, 200, JSON.stringify(now.body));
      assert.equal(now.body.subscription.status, "canceled");
      const gone = await subscription(s, v);
      assert.equal(gone.is_pro, false);
      assert.equal(gone.plan, null);
      assert.ok(new Date(gone.subscription!.current_period_end) <= new Date());
      const svc = await invoke(
        client(s, s.serviceRoleKey),
        `subscriptions?account_id=${v.accountId}`,
        undefined,
        { method: "GET" },
      );
      assert.equal(svc.status, 200, JSON.stringify(svc.body));
      assert.deepEqual(svc.body, gone);
      await audit(s);
    });
  },
});
