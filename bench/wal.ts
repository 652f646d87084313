// WAL per webhook event: what one captured payment writes to the write-ahead log, by relation.
// Deterministic where throughput is not: the bytes do not depend on the machine's load, so this
// measures a change to the hot path's rows and indexes on a shared machine.
//
//   deno run -A bench/wal.ts [--events 2000] [--preload 0] [--clients 4]
//
// A fresh database (migrated), `--preload` paid orders first (bulk, as the growth phase does),
// then `--events` pending Razorpay top-ups ingested through `settle.ingest_webhook` by pgbench
// (the SQL-only phase's call), twice: right after a CHECKPOINT (every page's first change writes
// a full-page image) and again straight after (the same pages already imaged). pg_waldump reads
// the LSN range of each pass; only this database's records (and the commit records of its
// transactions) count.
import { parseArgs } from "node:util";
import { connect, createDatabase, dropDatabase, migrate } from "../dev/db.ts";
import { LOCAL_RAZORPAY } from "../dev/stack.ts";
import { createUsers, insertOrders } from "./lib/fixtures.ts";
import { preload } from "./lib/growth.ts";
import { capturedEvent } from "./lib/razorpay.ts";
import { ensurePgbench } from "./lib/pgbench.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    events: { type: "string", default: "2000" },
    preload: { type: "string", default: "0" },
    clients: { type: "string", default: "4" },
    db: { type: "string", default: "settle_wal_probe" },
    admin: { type: "string", default: "postgres://postgres@127.0.0.1:5432/postgres" },
    keep: { type: "boolean", default: false },
    apply: { type: "string" },
    "cpu-seconds": { type: "string", default: "8" },
    // Extra pending orders beyond the passes' own (for probes run later against a --keep database).
    "extra-orders": { type: "string", default: "0" },
    "cpu-rounds": { type: "string", default: "3" },
  },
});
const events = Number(values.events);
const preloadCount = Number(values.preload);
const clients = Number(values.clients);
const cpuSeconds = Number(values["cpu-seconds"]);

const url = await createDatabase(values.admin, values.db);
const db = connect(url, 4);
await migrate(db);
// --apply: SQL run after the migrations (an experiment measured against the same probe).
if (values.apply) await db.unsafe(await Deno.readTextFile(values.apply)).simple();
const users = await createUsers(db, 200, "wal");
const id = (k: number) => `order_W${String(k + 1).padStart(13, "0")}`;
const cpuRounds = Number(values["cpu-rounds"]);
await insertOrders(
  db,
  users,
  2 * events + cpuRounds * cpuSeconds * 2000 + Number(values["extra-orders"]),
  () => 50_000,
  id,
);
if (preloadCount) {
  // Paid orders with their ledger, events and outbox rows, in bulk (the growth phase's preload).
  await preload(db, {
    orders: preloadCount,
    accounts: Math.max(1, Math.round(preloadCount / 100)),
    days: 90,
    gateways: ["razorpay"],
  }, (msg) => console.error(msg));
}
await db.unsafe("vacuum analyze");
await db.unsafe("drop sequence if exists wal_probe; create sequence wal_probe");
const sample = await capturedEvent(LOCAL_RAZORPAY.webhookSecret, {
  gatewayOrderId: id(0),
  amount: 50_000,
  currency: "INR",
});
const lit = (s: string) =>
  `E'${s.replaceAll("\\", "\\\\").replaceAll("'", "''").replaceAll(":", "\\x3a")}'`;
const script = await Deno.makeTempFile({ suffix: ".sql" });
await Deno.writeTextFile(
  script,
  `select settle.ingest_webhook(row('razorpay', 'evt_wal_' || n, ` +
    `'payment.captured', 'captured', 'order_W' || lpad(n::text, 13, '0'), ` +
    `'pay_W' || lpad(n::text, 13, '0'), 50000, 'INR', now(), ${lit(sample.body)}, ` +
    `null, null, null, null)::settle.incoming_event) ` +
    `from (select nextval('wal_probe') as n) s;\n`,
);
const [{ oid, datadir }] = await db`
  select (select oid from pg_database where datname = current_database())::int as oid,
         current_setting('data_directory') as datadir`;
const rels = new Map<number, string>(
  (await db`select pg_relation_filenode(c.oid)::int as node, c.relname
            from pg_class c where pg_relation_filenode(c.oid) is not null`)
    .map((r) => [r.node as number, r.relname as string]),
);
const pgbench = await ensurePgbench(15);
const [{ major }] = await db`select current_setting('server_version_num')::int / 10000 as major`;
const waldump = `/usr/lib/postgresql/${major}/bin/pg_waldump`;

async function pass(label: string, checkpoint: boolean) {
  if (checkpoint) await db`checkpoint`;
  const [{ start }] = await db`select pg_current_wal_insert_lsn()::text as start`;
  const per = Math.floor(events / clients);
  const run = await new Deno.Command(pgbench, {
    args: ["-n", "-M", "extended", "-c", String(clients), "-t", String(per), "-f", script, url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!run.success) throw new Error(new TextDecoder().decode(run.stderr));
  const [{ end }] = await db`select pg_current_wal_insert_lsn()::text as end`;
  const n = per * clients;
  const dump = await new Deno.Command(waldump, {
    args: ["-p", `${datadir}/pg_wal`, "-s", start, "-e", end],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(dump.stdout).split("\n");
  const byRel = new Map<string, { records: number; bytes: number; fpi: number }>();
  const ours = new Set<string>();
  const add = (key: string, bytes: number, fpi: boolean) => {
    const e = byRel.get(key) ?? { records: 0, bytes: 0, fpi: 0 };
    e.records++;
    e.bytes += bytes;
    if (fpi) e.fpi++;
    byRel.set(key, e);
  };
  const commits: [string, number][] = [];
  for (const line of lines) {
    const m = line.match(/^rmgr: (\S+)\s+len \(rec\/tot\):\s+\d+\/\s*(\d+), tx:\s+(\d+),/);
    if (!m) continue;
    const [, rmgr, tot, tx] = m;
    const rel = line.match(/rel \d+\/(\d+)\/(\d+)/);
    if (rel) {
      if (Number(rel[1]) !== oid) continue;
      ours.add(tx);
      add(rels.get(Number(rel[2])) ?? `rel ${rel[2]}`, Number(tot), /FPW|FPI/.test(line));
    } else if (rmgr === "Transaction") {
      commits.push([tx, Number(tot)]);
    }
  }
  for (const [tx, tot] of commits) if (ours.has(tx)) add("(commit records)", tot, false);
  const total = [...byRel.values()].reduce((s, e) => s + e.bytes, 0);
  const fpi = [...byRel.values()].reduce((s, e) => s + e.fpi, 0);
  console.log(
    `\n## ${label}: ${n} events, ${(total / n).toFixed(0)} bytes of WAL per event, ` +
      `${(fpi / n).toFixed(2)} full-page images per event`,
  );
  console.log("| relation | records/event | bytes/event | FPI/event |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const [k, e] of [...byRel].sort((a, b) => b[1].bytes - a[1].bytes)) {
    console.log(
      `| ${k} | ${(e.records / n).toFixed(2)} | ${(e.bytes / n).toFixed(0)} | ${
        (e.fpi / n).toFixed(2)
      } |`,
    );
  }
}

/** Backend CPU per event of one pgbench client (utime + stime of its backend, middle of the run). */
async function cpuPass() {
  const run = new Deno.Command(pgbench, {
    args: ["-n", "-M", "extended", "-c", "1", "-T", String(cpuSeconds), "-f", script, url],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const sample = async () => {
    const [r] = await db`select pid, (select last_value from wal_probe) as n from pg_stat_activity
                         where datname = current_database() and application_name = 'pgbench'`;
    const stat = (await Deno.readTextFile(`/proc/${r.pid}/stat`)).split(") ")[1].split(" ");
    return { ticks: Number(stat[11]) + Number(stat[12]), n: Number(r.n) };
  };
  await new Promise((r) => setTimeout(r, 1500));
  const a = await sample();
  await new Promise((r) => setTimeout(r, (cpuSeconds - 3) * 1000));
  const b = await sample();
  await run.output();
  const us = ((b.ticks - a.ticks) * 10_000) / (b.n - a.n);
  console.log(`\n## one client: ${b.n - a.n} events, ${us.toFixed(0)} µs of backend CPU per event`);
}

try {
  if (cpuSeconds > 0) {
    for (let i = 0; i < cpuRounds; i++) await cpuPass();
  }
  await pass("after a checkpoint", true);
  await pass("straight after", false);
  const [chk] = await db`select count(*)::int as n from public.webhook_events
                         where event_id like 'evt\\_wal\\_%' and outcome = 'applied'`;
  console.log(
    `\napplied: ${chk.n}; ledger_audit rows: ${
      (await db`select * from settle.ledger_audit()`).length
    }`,
  );
} finally {
  if (values.keep) console.log(`kept ${url}; pgbench script ${script}`);
  else await Deno.remove(script);
  await db.end();
  if (!values.keep) await dropDatabase(values.admin, values.db);
}
