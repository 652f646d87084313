// The embedded PostgreSQL behind `deno task dev` (and `deno task test` without a server): a real
// PostgreSQL 17 where every migration, the seed and the money path work, that keeps its data
// across a restart unless asked for a fresh one; and the probe that decides whether a test run
// needs it (CI's server at 127.0.0.1:5432 keeps the fast path).
import assert from "node:assert/strict";
import { connect, migrate, type Sql } from "../dev/db.ts";
import { EMBEDDED_MAJOR, freePort, reachable, startEmbeddedPostgres } from "../dev/embedded.ts";
import { testDbUrl } from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "reachable: the run's server answers, an unused port does not",
  ...opts,
  fn: async () => {
    assert.equal(await reachable(await testDbUrl()), true);
    assert.equal(await reachable(`postgres://postgres@127.0.0.1:${freePort()}/postgres`), false);
  },
});

/** What `deno task dev` does first, then a top-up and a partial refund through the SQL API. */
async function migrateAndPay(sql: Sql) {
  const applied = await migrate(sql, { seed: true });
  assert.ok(applied.length >= 7, `applied ${applied.join(", ")}`);
  assert.deepEqual(await migrate(sql), [], "a second run applies nothing");
  const alice = "00000000-0000-4000-8000-00000000a11c";
  const [{ id: account }] = await sql`select id from public.accounts
                                     where personal_owner_id = ${alice}`;
  const [{ id: order }] = await sql`insert into public.orders
    (account_id, created_by, gateway, purpose, amount, currency, gateway_order_id)
    values (${account}, ${alice}, 'razorpay', 'wallet_topup', 50000, 'INR', 'order_EMBED000000001')
    returning id`;
  await sql`select settle.apply_payment('razorpay', 'captured', 'order_EMBED000000001',
            'pay_EMBED000000001', 50000, 'INR')`;
  await sql`select settle.create_refund(${order}, 20000, 'test', null, null)`;
  const [w] = await sql`select balance from public.wallets
                        where account_id = ${account} and currency = 'INR'`;
  assert.equal(Number(w.balance), 30000);
  assert.deepEqual([...await sql`select * from settle.ledger_audit()`], []);
}

Deno.test({
  name:
    "embedded PostgreSQL: migrations and payments work, data kept across a restart, fresh on request",
  ...opts,
  fn: async () => {
    const dataDir = `.settle/embedded-test-${Deno.pid}`;
    const start = (fresh: boolean) =>
      startEmbeddedPostgres({ dataDir, port: freePort(), fresh, persistent: true });
    const count = async (url: string) => {
      const sql = connect(url, 2);
      try {
        const [v] = await sql`select current_setting('server_version_num')::int / 10000 as major`;
        assert.equal(v.major, EMBEDDED_MAJOR);
        await sql`create table if not exists kept (n int)`;
        await sql`insert into kept values (1)`;
        // Two connections at once: a real pool, not one shared backend.
        const pids = await Promise.all([1, 2].map(() =>
          sql.begin(async (tx) => {
            await tx`select pg_sleep(0.05)`;
            return (await tx`select pg_backend_pid() as pid`)[0].pid;
          })
        ));
        assert.notEqual(pids[0], pids[1]);
        return (await sql`select count(*)::int as n from kept`)[0].n;
      } finally {
        await sql.end();
      }
    };
    try {
      let pg = await start(true);
      const sql = connect(pg.url, 1);
      await migrateAndPay(sql).finally(() => sql.end());
      assert.equal(await count(pg.url), 1);
      await pg.stop();
      pg = await start(false);
      assert.equal(await count(pg.url), 2, "the rows of the first run are still there");
      const again = connect(pg.url, 1);
      assert.deepEqual(await migrate(again).finally(() => again.end()), [], "migrations kept");
      await pg.stop();
      pg = await start(true);
      assert.equal(await count(pg.url), 1, "fresh: the earlier rows are gone");
      await pg.stop();
    } finally {
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
