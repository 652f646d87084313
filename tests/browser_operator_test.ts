// The local operator page (dev/public/operator.html) in headless Chromium: payment_stats as a
// chart, the ledger audit, a dead letter replayed, reconciliation run on demand; checked against
// the database. Also: the service role key never reaches the user's page or a user's token.
import assert from "node:assert/strict";
import type { Sql } from "../dev/db.ts";
import {
  client,
  createUser,
  invoke,
  payAtSimulator,
  type TestStack,
  type TestUser,
  topupOrder,
  withStack,
} from "./support/stack.ts";
import { waitFor, waitStatus, waitText, withPage } from "./support/browser.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function paidOrder(s: TestStack, user: TestUser) {
  const { checkout } = await topupOrder(s, user, 25000);
  const proof = await payAtSimulator(s, checkout.order_id);
  const r = await invoke(client(s, user.token), "verify", proof);
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

async function failedOrder(s: TestStack, user: TestUser) {
  const { order, checkout } = await topupOrder(s, user, 10000);
  await payAtSimulator(s, checkout.order_id, { outcome: "failure" });
  await s.razorpay.idle();
  const [row] = await s.db`select status from public.orders where id = ${order.id}`;
  assert.equal(row.status, "failed");
}

/** A delivery that ran out of attempts, to a subscriber of this test's own. */
async function deadLetter(db: Sql, user: TestUser) {
  const [sub] = await db`insert into public.outbox_subscribers (name, url, event_types)
    values (${`operator-page-${crypto.randomUUID()}`}, 'http://127.0.0.1:9/hooks', ${[
    "order.*",
  ]})
    returning id`;
  const [event] = await db`insert into public.outbox_events (type, account_id, subject_type,
      subject_id, payload)
    values ('order.paid', ${user.accountId}, 'order', ${crypto.randomUUID()}, '{}')
    returning id`;
  const [delivery] = await db`update public.outbox_deliveries
    set status = 'dead', attempts = 8, last_error = 'connection refused'
    where event_id = ${event.id} and subscriber_id = ${sub.id} returning id::text as id`;
  return { subscriberId: sub.id as string, deliveryId: delivery.id as string };
}

/** What the service role reads from payment_stats for today, all gateways together. */
async function todaysStats(db: Sql) {
  return await db.begin(async (tx) => {
    await tx`set local role service_role`;
    const [today] = await tx`select (now() at time zone 'UTC')::date::text as day`;
    const [t] = await tx`select coalesce(sum(orders_paid), 0)::int as paid,
        coalesce(sum(orders_failed), 0)::int as failed
      from public.payment_stats where day = ${today.day}::date`;
    const [rows] = await tx`select count(*)::int as n from public.payment_stats
      where day > current_date - 14`;
    const [audit] = await tx`select count(*)::int as n from settle.ledger_audit()`;
    return {
      day: today.day as string,
      paid: t.paid as number,
      failed: t.failed as number,
      rows: rows.n as number,
      audit: audit.n as number,
    };
  });
}

Deno.test({
  name: "browser: the operator page charts payment_stats, audits the ledger, replays a dead letter",
  ...opts,
  fn: () =>
    withPage(async (s, { page }) => {
      const user = await createUser(s.db, "operator");
      await paidOrder(s, user);
      await failedOrder(s, user);
      const dead = await deadLetter(s.db, user);
      try {
        const stats = await todaysStats(s.db);
        assert.ok(stats.paid >= 1 && stats.failed >= 1, JSON.stringify(stats));

        await page.goto(`${s.url}/operator`);
        await waitStatus(page, "overview-status", "success", /^loaded /);
        const bar = (kind: string, n: number) =>
          page.locator(`#chart rect.${kind}[data-day="${stats.day}"][data-count="${n}"]`);
        await waitFor(page, bar("paid", stats.paid), `${stats.paid} paid today`);
        await waitFor(page, bar("failed", stats.failed), `${stats.failed} failed today`);
        assert.equal(await page.locator("#stats tr").count(), stats.rows);
        assert.equal(stats.audit, 0, "the ledger is healthy");
        await waitText(page, page.locator('#audit[data-count="0"]'), /^healthy: /);

        const row = page.locator(`#dead tr[data-delivery="${dead.deliveryId}"]`);
        await waitText(page, row, /connection refused/);
        await row.locator(".replay").click();
        await waitStatus(page, "dead-status", "success", /is pending again$/);
        assert.equal(await row.count(), 0, "no longer dead");
        const [d] = await s.db`select status, attempts, replays from public.outbox_deliveries
          where id = ${dead.deliveryId}::bigint`;
        assert.deepEqual({ ...d }, { status: "pending", attempts: 0, replays: 1 });

        await page.locator("#reconcile").click();
        await waitStatus(page, "reconcile-status", "success", /^done in \d+ ms$/);
        await waitText(page, page.locator("#reconcile-result"), /^last run .+"orders": \{/s);
      } finally {
        await s.db`delete from public.outbox_subscribers where id = ${dead.subscriberId}`;
      }
    }),
});

Deno.test({
  name: "operator pages: only the service role reads them; the demo page never holds its key",
  ...opts,
  fn: () =>
    withPage(async (s) => {
      const user = await createUser(s.db, "operator-denied");
      const demo = await (await fetch(`${s.url}/`)).text();
      assert.ok(demo.includes(s.anonKey), "the demo page has the anon key");
      assert.ok(!demo.includes(s.serviceRoleKey), "but never the service role key");

      for (const [token, status] of [[user.token, 403], [s.anonKey, 401]] as const) {
        const res = await fetch(`${s.url}/dev/operator/overview`, {
          headers: { authorization: `Bearer ${token}` },
        });
        const body = await res.json();
        assert.equal(res.status, status, JSON.stringify(body));
        assert.equal(typeof body.error.message, "string");
      }
      const replay = await fetch(`${s.url}/dev/operator/deliveries/1/replay`, {
        method: "POST",
        headers: { authorization: `Bearer ${user.token}` },
      });
      assert.equal(replay.status, 403);
      await replay.body?.cancel();
    }),
});

Deno.test({
  name: "dev reads run as the caller: RLS keeps another user's orders and wallets out",
  ...opts,
  fn: async () => {
    await withStack({}, { devPages: true }, async (s) => {
      const alice = await createUser(s.db, "dev-reads-a");
      const bob = await createUser(s.db, "dev-reads-b");
      const { order } = await topupOrder(s, alice, 5000);
      const read = async (path: string, user: TestUser) => {
        const res = await fetch(`${s.url}/dev/${path}`, {
          headers: { authorization: `Bearer ${user.token}` },
        });
        assert.equal(res.status, 200);
        return await res.json();
      };
      const mine = await read("orders", alice);
      assert.deepEqual(mine.orders.map((o: { id: string }) => o.id), [order.id]);
      assert.equal(mine.orders[0].amount, 5000, "an integer of minor units");
      assert.deepEqual((await read("orders", bob)).orders, []);
      const wallets = await read("wallets", bob);
      assert.deepEqual(
        wallets.wallets.map((w: { account_id: string }) => w.account_id),
        [bob.accountId],
      );
      const anonymous = await fetch(`${s.url}/dev/orders`);
      assert.equal(anonymous.status, 401);
      await anonymous.body?.cancel();
    });
  },
});
