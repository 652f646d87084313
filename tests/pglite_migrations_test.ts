// `deno task dev` runs on embedded PGlite: every migration and the seed must apply there too,
// and the money path must work on it (guarded extensions skipped, roles and views created).
import assert from "node:assert/strict";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { connect, migrate } from "../dev/db.ts";

Deno.test({
  name: "every migration and the seed apply on embedded PGlite, and a top-up and refund post there",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const db = await PGlite.create();
    const server = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1", maxConnections: 2 });
    await server.start();
    const addr = server.getServerConn();
    const sql = connect(`postgres://postgres@${addr}/postgres`, 1);
    try {
      const applied = await migrate(sql, { seed: true });
      assert.ok(applied.length >= 7, `applied ${applied.join(", ")}`);
      assert.deepEqual(await migrate(sql), [], "a second run applies nothing");

      const alice = "00000000-0000-4000-8000-00000000a11c";
      const [{ id: account }] = await sql`select id from public.accounts
                                         where personal_owner_id = ${alice}`;
      const [{ id: order }] = await sql`insert into public.orders
        (account_id, created_by, gateway, purpose, amount, currency)
        values (${account}, ${alice}, 'razorpay', 'wallet_topup', 50000, 'INR') returning id`;
      await sql`update public.orders set gateway_order_id = 'order_PGLITE00000001'
                where id = ${order}`;
      await sql`select settle.apply_payment('razorpay', 'captured', 'order_PGLITE00000001',
                'pay_PGLITE00000001', 50000, 'INR')`;
      await sql`select settle.create_refund(${order}, 20000, 'test', null, null)`;
      const [w] = await sql`select balance from public.wallets
                            where account_id = ${account} and currency = 'INR'`;
      assert.equal(Number(w.balance), 30000);
      assert.deepEqual([...await sql`select * from settle.ledger_audit()`], []);
      const stats = await sql`select gross, refunded, net from public.payment_stats`;
      assert.deepEqual(stats.map((r) => [Number(r.gross), Number(r.refunded), Number(r.net)]), [[
        50000,
        20000,
        30000,
      ]]);
    } finally {
      await sql.end({ timeout: 5 });
      await server.stop();
      await db.close();
    }
  },
});
