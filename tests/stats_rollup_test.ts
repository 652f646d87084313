// payment_stats' rollups under concurrency (20261201001300_payment_stats.sql): orders created,
// paid, failed and refunded by many connections at once while several compactors fold the
// deltas in small batches. Every delta must be counted exactly once: the figures payment_stats
// shows equal the aggregate over the orders at the end, and the stats audit finds nothing.
import assert from "node:assert/strict";
import { connect } from "../dev/db.ts";
import { ownDatabase } from "./support/isolated.ts";

Deno.test("payment_stats rollups: concurrent payments, refunds and compactions count each change once", async () => {
  const own = await ownDatabase("stats_rollup");
  const db = connect(own.url, 16);
  try {
    const users = await db`
      insert into auth.users (id, email)
      select gen_random_uuid(), 'rollup-' || g || '@example.test' from generate_series(1, 8) g
      returning id`;
    let compactions = 0;
    let working = true;
    // Four compactors, 7 deltas at a time, as long as the writers write (and once more after).
    const compactors = Array.from({ length: 4 }, async () => {
      while (working) {
        const [r] = await db`select settle.compact_payment_stats(7) as n`;
        if (r.n > 0) compactions++;
      }
    });
    // Eight writers, one per user: 30 orders each, across two days and two gateways; two
    // thirds paid (a third of those partly refunded), the rest failed.
    const writers = users.map(async ({ id }, w) => {
      for (let k = 0; k < 30; k++) {
        const gateway = k % 2 ? "stripe" : "razorpay";
        const currency = gateway === "stripe" ? "USD" : "INR";
        const ref = `${gateway === "stripe" ? "pi_RC" : "order_RC"}${w}x${k}`;
        await db`
          insert into public.orders (account_id, created_by, gateway, purpose, amount, currency,
                                     gateway_order_id, created_at)
          select a.id, ${id}, ${gateway}, 'wallet_topup', ${1000 + k}, ${currency}, ${ref},
                 now() - make_interval(days => ${k % 2})
          from public.accounts a where a.personal_owner_id = ${id}`;
        if (k % 3 === 2) {
          await db`select settle.apply_payment(${gateway}, 'failed', ${ref}, null, null, null,
                                               'declined', 'test')`;
          continue;
        }
        await db`select settle.apply_payment(${gateway}, 'captured', ${ref}, ${`pay_${ref}`},
                                             ${1000 + k}, ${currency})`;
        if (k % 3 === 1) {
          await db`select settle.create_refund(o.id, 100, 'partial', null, null)
                   from public.orders o where o.gateway_order_id = ${ref}`;
        }
      }
    });
    await Promise.all(writers);
    working = false;
    await Promise.all(compactors);
    assert.ok(compactions > 0, "the compactors folded deltas while the writers wrote");

    const shown = async () =>
      await db.begin(async (tx) => {
        await tx`select set_config('role', 'payment_analyst', true)`;
        return await tx`select day::text, gateway, currency, orders_created::int,
                               orders_paid::int, orders_failed::int, gross::bigint,
                               refunded::bigint, average_paid_amount::bigint
                        from public.payment_stats order by 1, 2, 3`;
      });
    const fromOrders = async () =>
      await db`select day::text, gateway, currency, orders_created::int, orders_paid::int,
                      orders_failed::int, gross::bigint, refunded::bigint,
                      round(gross::numeric / nullif(orders_paid, 0))::bigint as average_paid_amount
               from settle.payment_stats_from_orders order by 1, 2, 3`;
    const expected = await fromOrders();
    assert.equal(expected.reduce((n, r) => n + r.orders_created, 0), 240);
    assert.equal(expected.reduce((n, r) => n + r.orders_paid, 0), 160);
    assert.equal(expected.reduce((n, r) => n + Number(r.refunded), 0), 80 * 100);
    assert.deepEqual([...await shown()], [...expected], "with some deltas still pending");
    assert.deepEqual([...await db`select * from settle.ledger_audit_stats()`], []);

    await db`select settle.compact_payment_stats(2147483647)`;
    const [{ n }] = await db`select count(*)::int as n from settle.payment_stats_deltas`;
    assert.equal(n, 0);
    assert.deepEqual([...await shown()], [...expected], "from the rollups alone");
    assert.deepEqual([...await db`select * from settle.ledger_audit()`], []);
  } finally {
    await db.end();
    await own.drop();
  }
});
