// `deno task bench`: webhook ingest, checkout latency and a hot wallet, each measured against
// pgbench on the same Postgres in the same run. Prints markdown tables and writes
// bench/results/latest.json. See bench/README.md.
//
//   deno task bench [--seconds N] [--quick] [--pool N] [--only a,b] [--out FILE] [--keep-db]
//
// The function server runs in a child process (bench/server.ts); this process is the load
// generator. Every phase is checked afterwards: every event applied once, balances exact.
import { connect, createDatabase, dropDatabase, migrate, type Sql } from "../dev/db.ts";
import { LOCAL_RAZORPAY, LOCAL_STRIPE } from "../dev/stack.ts";
import {
  checkEventsApplied,
  checkInvariants,
  checkOrdersPaid,
  walletBalance,
} from "./lib/checks.ts";
import type { SentEvent } from "./lib/checks.ts";
import {
  type CpuShare,
  cpuWindow,
  processCpuMs,
  setDatabasePrefix,
  setGatewayPid,
} from "./lib/cpu.ts";
import { type WaitShare, waitWindow } from "./lib/waits.ts";
import {
  type BenchUser,
  createUsers,
  ensureWallets,
  insertOrders,
  type PendingOrder,
  randomAmount,
} from "./lib/fixtures.ts";
import { encodeRequest, type Reply } from "./lib/http.ts";
import { type Job, type LoadResult, runLoad, runRounds } from "./lib/load.ts";
import { ensurePgbench, pgbenchInit, type PgbenchResult, pgbenchRun } from "./lib/pgbench.ts";
import { capturedEvent, paidOrders, payOrders, randomId } from "./lib/razorpay.ts";
import { stripeId, stripeSignature, succeededEvent, succeededTemplate } from "./lib/stripe.ts";
import {
  backendsTable,
  cpuTable,
  growthTable,
  machine,
  mainTable,
  memoryTable,
  peerTable,
  pgbenchTable,
  type Row,
} from "./lib/report.ts";
import { type ServerProcess, startServer } from "./lib/spawn.ts";
import { chargeJobs, checkChargesAndRefund, fundWallets } from "./lib/charges.ts";
import { serviceRoleKey } from "../dev/keys.ts";
import { latency, round } from "./lib/stats.ts";
import { checkPeerStored, ensurePeer, PEER_PACKAGE, startPeer } from "./lib/peer.ts";
import { preload, shapeProblems, tableCounts } from "./lib/growth.ts";
import { liveHeapMb, type MemoryChunk, startSampling, summarize } from "./lib/memory.ts";

// ---------------------------------------------------------------- options

interface Options {
  seconds: number;
  pool: number;
  adminUrl: string;
  out: string;
  keepDb: boolean;
  only?: Set<string>;
  concurrencies: number[];
  label: string;
  prepare: boolean;
  /** A second pass with the tuned configuration (prepared statements, a small pool). */
  tuned: boolean;
  tunedPool: number;
  tunedIsolates: number;
  gateways: ("razorpay" | "stripe")[];
  /** Paid orders preloaded by the growth phase. */
  growthOrders: number;
  /** Events sent by the memory phase. */
  memoryEvents: number;
  /** After each memory chunk, a forced full GC and the heap still reachable (diagnosis). */
  memoryLive: boolean;
}

// One flat switch over the flags: longer than 70 lines, and clearer whole.
function parseOptions(args: string[]): Options {
  const o: Options = {
    seconds: Number(Deno.env.get("BENCH_SECONDS") ?? 8),
    pool: Number(Deno.env.get("BENCH_POOL") ?? 0),
    adminUrl: Deno.env.get("SUPABASE_DB_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres",
    out: new URL("results/latest.json", import.meta.url).pathname,
    keepDb: false,
    concurrencies: [1, 8, 16, 32],
    label: "",
    prepare: false,
    tuned: true,
    tunedPool: Number(Deno.env.get("BENCH_TUNED_POOL") ?? 4),
    tunedIsolates: Number(Deno.env.get("BENCH_TUNED_ISOLATES") ?? 2),
    gateways: ["razorpay", "stripe"],
    growthOrders: Number(Deno.env.get("BENCH_GROWTH_ORDERS") ?? 1_000_000),
    memoryEvents: Number(Deno.env.get("BENCH_MEMORY_EVENTS") ?? 100_000),
    memoryLive: false,
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    const value = () => inline ?? args[++i];
    switch (flag) {
      case "--seconds":
        o.seconds = Number(value());
        break;
      case "--quick":
        o.seconds = 2;
        o.growthOrders = 100_000;
        o.memoryEvents = 20_000;
        break;
      case "--pool":
        o.pool = Number(value());
        break;
      case "--admin-url":
        o.adminUrl = value();
        break;
      case "--out":
        o.out = value();
        break;
      case "--prepare":
        o.prepare = true;
        break;
      case "--no-tuned":
        o.tuned = false;
        break;
      case "--tuned-pool":
        o.tunedPool = Number(value());
        break;
      case "--tuned-isolates":
        o.tunedIsolates = Number(value());
        break;
      case "--keep-db":
        o.keepDb = true;
        break;
      case "--only":
        o.only = new Set(value().split(","));
        break;
      case "--concurrency":
        o.concurrencies = value().split(",").map(Number);
        break;
      case "--growth-orders":
        o.growthOrders = Number(value());
        break;
      case "--memory-events":
        o.memoryEvents = Number(value());
        break;
      case "--memory-live":
        o.memoryLive = true;
        break;
      case "--label":
        o.label = value();
        break;
      case "--gateways": {
        const g = value().split(",");
        if (!g.length || g.some((x) => x !== "razorpay" && x !== "stripe")) {
          throw new Error("--gateways takes razorpay, stripe or both");
        }
        o.gateways = g as Options["gateways"];
        break;
      }
      case "--help":
        console.log(
          "deno task bench [--seconds N | --quick] [--only pgbench,floor,peer,ingest,hot,charges,checkout,sql,growth,memory]\n" +
            "                [--gateways razorpay,stripe] [--concurrency 1,8,16,32] [--pool N] [--prepare]\n" +
            "                [--no-tuned | --tuned-pool N --tuned-isolates N] [--admin-url URL]\n" +
            "                [--growth-orders N] [--memory-events N] [--memory-live]\n" +
            "                [--out FILE] [--label TEXT] [--keep-db]\n" +
            "deno task bench --profile [--seconds=N]   (where the time goes; results/profile.json)",
        );
        Deno.exit(0);
        break;
      default:
        throw new Error(`unknown flag ${args[i]} (try --help)`);
    }
  }
  if (!(o.seconds > 0)) throw new Error("--seconds must be positive");
  return o;
}

if (Deno.args.includes("--profile")) {
  const { runProfile } = await import("./profile.ts");
  const seconds = Deno.args.find((a) => a.startsWith("--seconds="))?.split("=")[1];
  await runProfile({
    adminUrl: Deno.env.get("SUPABASE_DB_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres",
    seconds: Number(seconds ?? 5),
    out: new URL("results/profile.json", import.meta.url).pathname,
  });
  Deno.exit(0);
}

const opts = parseOptions(Deno.args);
const want = (part: string) => !opts.only || opts.only.has(part);
const log = (msg: string) =>
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

// ---------------------------------------------------------------- set-up

// BENCH_DB_PREFIX keeps two runs on one server apart (their databases and their CPU).
const DB = Deno.env.get("BENCH_DB_PREFIX") ?? "settle_bench";
setDatabasePrefix(DB);
const PGB10 = `${DB}_pgbench_s10`;
const PGB1 = `${DB}_pgbench_s1`;
const admin = connect(opts.adminUrl, 1);
const [{ version, major }] = await admin`
  select version() as version, current_setting('server_version_num')::int / 10000 as major`;
const settings = Object.fromEntries(
  (await admin`select name, setting || coalesce(' ' || unit, '') as value from pg_settings
    where name in ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections',
                   'wal_level', 'full_page_writes', 'checkpoint_timeout', 'max_wal_size')`)
    .map((r) => [r.name, r.value]),
);
const host = await machine({ version, settings });
const pgbench = await ensurePgbench(major);
/** The simulator's payment_intent.succeeded, the mould of every Stripe event sent. */
const stripeTemplate = opts.gateways.includes("stripe") ? await succeededTemplate() : undefined;
log(`${host.cpus} CPUs, ${host.memoryGiB} GiB, ${version.split(" on ")[0]}, Deno ${host.deno}`);
log(`pgbench: ${pgbench}; ${opts.seconds} s per phase`);

const checkpoint = () => admin.unsafe("checkpoint");

/** The machine's load average (1, 5 and 15 minutes): others may share these cores. */
async function loadAverage(): Promise<string> {
  try {
    return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}
const loadBefore = await loadAverage();

/** The commit measured, and the files in the tree that differ from it (others' work too). */
async function codeState() {
  const git = async (...args: string[]) => {
    try {
      const o = await new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output();
      return new TextDecoder().decode(o.stdout).trim();
    } catch {
      return "";
    }
  };
  return {
    commit: await git("rev-parse", "--short", "HEAD"),
    uncommitted: (await git("status", "--short", "--", "shared", "supabase", "dev"))
      .split("\n").filter(Boolean),
  };
}
const code = await codeState();

/**
 * Before a settle phase: VACUUM ANALYZE the prepared rows' tables (pgbench -i and pgbench do
 * the same for theirs), so that the measurement does not include a first visit to each new row
 * setting its hint bits. Then CHECKPOINT, so every phase starts the same way. The tables that
 * the phase itself fills (webhook_events, ledger) are left alone. Analyzed while still nearly
 * empty, they would get cached plans that scan them sequentially, and those get slower as the
 * tables grow during the phase. Autovacuum re-analyzes a real database as it grows.
 */
async function settleDb() {
  await db.unsafe(
    "vacuum analyze public.orders, public.wallets, public.accounts, public.account_members, auth.users",
  );
  await checkpoint();
}

let dbUrl = "";
let db!: Sql;
let expectedPaid = 0;

/**
 * A new, empty bench database. Each server configuration and the SQL-only run get their own,
 * so a phase is not slowed by the rows that earlier phases left behind.
 */
async function freshDatabase() {
  await db?.end({ timeout: 5 });
  dbUrl = await createDatabase(opts.adminUrl, DB);
  db = connect(dbUrl, 4);
  await migrate(db);
  expectedPaid = 0;
  return db;
}
const rows: Row[] = [];
const pgbenchRuns: PgbenchResult[] = [];
const problems: string[] = [];
let server: ServerProcess | undefined;
/** Every running function server (isolate); server is the first. */
let servers: ServerProcess[] = [];
const urls = () => servers.map((s) => s.functionsUrl);
let sim: ServerProcess | undefined;

/** The server configuration the rows being measured belong to. */
let rowConfig = "default";
/** The gateway of the rows being measured (none for pgbench and the HTTP floor). */
let rowGateway: string | undefined;

/** CPU by process group, and what the database's backends wait on, over a phase. */
async function windows(
  seconds: number,
  pid: number | number[] = servers.map((s) => s.pid),
  database: string | null = DB,
) {
  const [cpu, waits] = await Promise.all([
    cpuWindow(seconds * 1000, pid),
    database ? waitWindow(admin, database, seconds * 1000) : Promise.resolve(undefined),
  ]);
  return { cpu, waits };
}

function baselineFor(label: string) {
  return pgbenchRuns.find((r) => r.label === label);
}

function makeRow(
  id: string,
  benchmark: string,
  concurrency: number,
  r: LoadResult,
  events: number,
  correctness: string[],
  win: { cpu?: CpuShare; waits?: WaitShare },
  baselineLabel?: string,
  note?: string,
): Row {
  const seconds = r.elapsedMs / 1000;
  const base = baselineLabel ? baselineFor(baselineLabel) : undefined;
  const eventsPerSec = events / seconds;
  const allProblems = [
    ...correctness,
    ...(r.errors ? [`${r.errors} bad answers, e.g. ${r.firstErrors.join(" | ")}`] : []),
  ];
  const what = rowGateway ? `${benchmark} [${rowGateway}]` : benchmark;
  if (allProblems.length) problems.push(`${what} c=${concurrency}: ${allProblems.join("; ")}`);
  const row: Row = {
    id,
    benchmark,
    gateway: rowGateway,
    concurrency,
    requests: r.requests,
    seconds: round(seconds, 2),
    requestsPerSec: round(r.requests / seconds, 1),
    eventsPerSec: round(eventsPerSec, 1),
    latencyMs: latency(r.latenciesMs),
    baseline: base?.label,
    baselineTps: base?.tps,
    ratio: base ? round(eventsPerSec / base.tps, 3) : undefined,
    baselineP99Ms: base?.latencyMs.p99,
    correctness: allProblems.length ? allProblems : "ok",
    config: rowConfig,
    cpu: win.cpu,
    backends: win.waits,
    note: [note, r.exhausted ? "prepared work ran out before the time did" : undefined]
      .filter(Boolean).join("; ") || undefined,
  };
  rows.push(row);
  log(
    `${what} c=${concurrency} [${rowConfig}]: ${row.requestsPerSec} req/s, ${row.eventsPerSec} events/s, ` +
      `p50 ${row.latencyMs.p50} p99 ${row.latencyMs.p99} ms` +
      (row.ratio !== undefined ? `, ${row.ratio}x ${row.baseline}` : "") +
      (row.correctness === "ok" ? ", correct" : `, WRONG: ${allProblems.join("; ")}`),
  );
  return row;
}

// ---------------------------------------------------------------- webhook events

interface QueuedEvent extends SentEvent {
  body: string;
  bytes: Uint8Array;
  /** When it was signed (Stripe refuses a Stripe-Signature more than 300 s old). */
  signedAt: number;
}

/** How one gateway's webhooks are made: its orders, its signed events, its endpoint. */
interface WebhookKit {
  gateway: "razorpay" | "stripe";
  orderId: () => string;
  event(url: string, order: PendingOrder): Promise<QueuedEvent>;
  /** Signs again with the current time, when the signature carries one. */
  resign?(url: string, e: QueuedEvent): QueuedEvent;
}

function post(url: string, path: string, headers: Record<string, string>, body: string) {
  return encodeRequest(new URL(url).host, "POST", path, headers, body);
}

const razorpayKit: WebhookKit = {
  gateway: "razorpay",
  orderId: () => randomId("order_"),
  async event(url, order) {
    const e = await capturedEvent(LOCAL_RAZORPAY.webhookSecret, order);
    return {
      ...e,
      signedAt: Date.now(),
      bytes: post(url, "/functions/v1/webhook/razorpay", {
        "content-type": "application/json",
        "x-razorpay-signature": e.signature,
        "x-razorpay-event-id": e.eventId,
      }, e.body),
    };
  },
};

function stripeKit(template: Record<string, unknown>): WebhookKit {
  const sign = (url: string, e: Omit<QueuedEvent, "bytes" | "signedAt">): QueuedEvent => ({
    ...e,
    signedAt: Date.now(),
    bytes: post(url, "/functions/v1/webhook/stripe", {
      "content-type": "application/json; charset=utf-8",
      "stripe-signature": stripeSignature(LOCAL_STRIPE.webhookSecret, e.body),
    }, e.body),
  });
  return {
    gateway: "stripe",
    orderId: () => stripeId("pi_"),
    event: (url, order) => Promise.resolve(sign(url, succeededEvent(template, order))),
    resign: (url, e) => sign(url, e),
  };
}

const webhookOk = (r: Reply) =>
  r.status === 200 && r.body.includes('"received":true')
    ? undefined
    : `webhook answered ${r.status} ${r.body.slice(0, 200)}`;

/** Signed, encoded payment-captured events for pending orders, topped up on demand. */
class EventQueue {
  items: QueuedEvent[] = [];
  constructor(
    readonly users: BenchUser[],
    readonly url: () => string,
    readonly kit: WebhookKit,
  ) {}
  async ensure(n: number) {
    // Stripe's signature carries its time: sign again what has waited for more than a minute.
    const { resign } = this.kit;
    if (resign) {
      const stale = Date.now() - 60_000;
      this.items = this.items.map((e) => e.signedAt < stale ? resign(this.url(), e) : e);
    }
    const missing = n - this.items.length;
    if (missing <= 0) return;
    const orders = await insertOrders(
      db,
      this.users,
      missing,
      randomAmount,
      this.kit.orderId,
      this.kit.gateway,
    );
    for (const o of orders) this.items.push(await this.kit.event(this.url(), o));
  }
}

let bestRate = 0;
const capacity = (seconds: number, floor = 1500) =>
  Math.ceil(seconds * Math.min(20_000, Math.max(floor, 1.6 * bestRate)));

async function sentChecks(sent: SentEvent[], gateway: string) {
  expectedPaid += sent.length;
  return [
    ...await checkEventsApplied(db, sent, gateway),
    ...await checkInvariants(db, expectedPaid),
  ];
}

async function webhookUnique(
  id: string,
  name: string,
  queue: EventQueue,
  c: number,
  seconds: number,
  baseline?: string,
) {
  await queue.ensure(capacity(seconds));
  const events = queue.items;
  let i = 0;
  await settleDb();
  const win = windows(seconds);
  const r = await runLoad(urls(), {
    concurrency: c,
    seconds,
    next: () => i < events.length ? { bytes: events[i++].bytes, check: webhookOk } : undefined,
  });
  const sent = events.slice(0, i);
  queue.items = events.slice(i);
  const row = makeRow(
    id,
    name,
    c,
    r,
    sent.length,
    await sentChecks(sent, queue.kit.gateway),
    await win,
    baseline,
  );
  bestRate = Math.max(bestRate, row.eventsPerSec);
  return row;
}

/** Half the requests repeat an event sent up to 16 requests earlier (often still in flight). */
async function webhookDuplicates(queue: EventQueue, c: number, seconds: number) {
  await queue.ensure(capacity(seconds));
  const events = queue.items;
  const seq: number[] = [];
  for (let k = 0; k < events.length; k++) {
    seq.push(k, Math.max(0, k - Math.floor(Math.random() * 17)));
  }
  let i = 0;
  await settleDb();
  const win = windows(seconds);
  const r = await runLoad(urls(), {
    concurrency: c,
    seconds,
    next: () => i < seq.length ? { bytes: events[seq[i++]].bytes, check: webhookOk } : undefined,
  });
  const sentIdx = new Set(seq.slice(0, i));
  const sent = events.filter((_, k) => sentIdx.has(k));
  queue.items = events.filter((_, k) => !sentIdx.has(k));
  makeRow(
    "webhook_dup50",
    "webhook ingest, 50% duplicates",
    c,
    r,
    sent.length,
    await sentChecks(sent, queue.kit.gateway),
    await win,
    `tpcb s10 c${c}`,
    "events/s counts distinct events; req/s includes the duplicates",
  );
}

/** Each event delivered by every sender at the same instant; one round per event. */
async function webhookSameEvent(queue: EventQueue, c: number, seconds: number) {
  await queue.ensure(capacity(seconds, 400));
  const events = queue.items;
  let i = 0;
  await settleDb();
  const win = windows(seconds);
  const r = await runRounds(urls(), {
    concurrency: c,
    seconds,
    nextRound: () => i < events.length ? { bytes: events[i++].bytes, check: webhookOk } : undefined,
  });
  const sent = events.slice(0, i);
  queue.items = events.slice(i);
  makeRow(
    "webhook_same_event",
    `webhook ingest, same event from ${c} senders`,
    c,
    r,
    sent.length,
    await sentChecks(sent, queue.kit.gateway),
    await win,
    `tpcb s10 c${c}`,
    `${r.rounds} rounds; events/s = distinct events (rounds) per second`,
  );
}

// ---------------------------------------------------------------- checkout

interface CheckoutPools {
  gateway: "razorpay" | "stripe";
  users: BenchUser[];
  /** Pending orders per user (gateway order ids), ready to verify. */
  pending: string[][];
  verified: string[];
  created: number;
  /** Stripe intents already paid at the simulator. */
  confirmed: Set<string>;
  /** Razorpay orders paid at the simulator: Checkout's answer for each. */
  proofs: Map<string, Record<string, string>>;
}

let bestCheckoutRate = 0;
const checkoutCapacity = (seconds: number) =>
  Math.ceil(seconds * Math.max(1000, 2.5 * bestCheckoutRate));

const checkoutCurrency = (g: CheckoutPools["gateway"]) => g === "stripe" ? "USD" : "INR";

/** What create-order must answer for each gateway: a pending order and what checkout needs. */
// deno-lint-ignore no-explicit-any
function createdOk(g: CheckoutPools["gateway"], b: Record<string, any>): boolean {
  const o = b.order;
  if (o?.status !== "created" || o?.gateway !== g) return false;
  if (g === "razorpay") {
    return /^order_[A-Za-z0-9]{14}$/.test(o.gateway_order_id) &&
      b.checkout?.order_id === o.gateway_order_id;
  }
  return /^pi_[A-Za-z0-9]{8,64}$/.test(o.gateway_order_id) &&
    b.checkout?.payment_intent_id === o.gateway_order_id &&
    typeof b.checkout?.client_secret === "string" &&
    b.checkout.client_secret.startsWith(`${o.gateway_order_id}_secret_`);
}

async function createOrderPhase(p: CheckoutPools, c: number, seconds: number) {
  const u = new URL(server!.functionsUrl);
  let n = 0;
  const body = () =>
    JSON.stringify({
      gateway: p.gateway,
      purpose: "wallet_topup",
      amount: randomAmount(),
      currency: checkoutCurrency(p.gateway),
    });
  const next = (sender: number): Job => {
    const user = sender % p.users.length;
    const key = `bench-${Date.now().toString(36)}-${n++}`;
    return {
      bytes: encodeRequest(u.host, "POST", "/functions/v1/create-order", {
        authorization: `Bearer ${p.users[user].token}`,
        "content-type": "application/json",
        "idempotency-key": key,
      }, body()),
      check(r) {
        if (r.status !== 201) return `create-order answered ${r.status} ${r.body.slice(0, 200)}`;
        const b = JSON.parse(r.body);
        if (!createdOk(p.gateway, b)) return `create-order answered ${r.body.slice(0, 300)}`;
        p.pending[user].push(b.order.gateway_order_id);
        p.created++;
      },
    };
  };
  const ids = db(p.users.map((x) => x.id));
  const count = () =>
    db`select count(*)::int as n from public.orders where created_by in ${ids}
       and idempotency_key is not null and gateway = ${p.gateway}
       and gateway_order_id is not null`;
  const before = await count();
  await settleDb();
  const win = windows(seconds);
  const createdBefore = p.created;
  const r = await runLoad(urls(), { concurrency: c, seconds, next });
  const createdNow = p.created - createdBefore;
  const after = await count();
  const correctness = [
    ...(after[0].n - before[0].n !== createdNow
      ? [
        `${
          after[0].n - before[0].n
        } orders with a gateway order in the database, ${createdNow} created`,
      ]
      : []),
    ...await checkInvariants(db, expectedPaid),
  ];
  const row = makeRow(
    "create_order",
    "create-order (simulator instant)",
    c,
    r,
    createdNow,
    correctness,
    await win,
    `tpcb s10 c${c}`,
  );
  bestCheckoutRate = Math.max(bestCheckoutRate, row.eventsPerSec);
}

/** Bench control of the Stripe simulator process (bench/server.ts sim). */
async function stripeSim(path: string, body: unknown) {
  const res = await fetch(`${sim!.stripeUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return await res.json();
}

/**
 * Orders ready to verify for one user: each needs a payment at its gateway's simulator (verify
 * asks the gateway), so the pending ones are paid there first and the missing ones created and
 * paid there, then inserted.
 */
async function readyToVerify(p: CheckoutPools, s: number, want: number): Promise<string[]> {
  const have = p.pending[s];
  const keep = (proofs: Record<string, string>[]) => {
    for (const proof of proofs) p.proofs.set(proof.razorpay_order_id, proof);
  };
  if (p.gateway === "razorpay") {
    keep(await payOrders(sim!.simulatorUrl!, have.filter((id) => !p.proofs.has(id))));
  } else {
    const unpaid = have.filter((id) => !p.confirmed.has(id));
    for (let i = 0; i < unpaid.length; i += 2000) {
      await stripeSim("/bench/stripe/confirm", { ids: unpaid.slice(i, i + 2000) });
    }
    for (const id of unpaid) p.confirmed.add(id);
  }
  if (have.length < want) {
    const amounts = Array.from({ length: want - have.length }, () => randomAmount());
    const currency = checkoutCurrency(p.gateway);
    let ids: string[] = [];
    if (p.gateway === "stripe") {
      for (let i = 0; i < amounts.length; i += 2000) {
        const items = amounts.slice(i, i + 2000).map((amount) => ({ amount, currency }));
        ids.push(...(await stripeSim("/bench/stripe/intents", { items, confirm: true })).ids);
      }
      for (const id of ids) p.confirmed.add(id);
    } else {
      const paid = await paidOrders(
        sim!.simulatorUrl!,
        amounts.map((amount) => ({ amount, currency })),
      );
      keep(paid.proofs);
      ids = paid.ids;
    }
    const extra = await insertOrders(
      db,
      [p.users[s]],
      amounts.length,
      (k) => amounts[k],
      (k) => ids[k],
      p.gateway,
    );
    have.push(...extra.map((o) => o.gatewayOrderId));
  }
  return have;
}

/** Per sender, the verify requests for orders ready to verify (paid at the gateway). */
async function verifyJobs(p: CheckoutPools, senders: number, perUser: number) {
  const u = new URL(server!.functionsUrl);
  const jobs: { order: string; bytes: Uint8Array }[][] = [];
  for (let s = 0; s < senders; s++) {
    const have = await readyToVerify(p, s, perUser);
    jobs.push(
      have.map((order) => ({
        order,
        bytes: encodeRequest(
          u.host,
          "POST",
          "/functions/v1/verify",
          {
            authorization: `Bearer ${p.users[s].token}`,
            "content-type": "application/json",
          },
          JSON.stringify(
            p.gateway === "razorpay" ? p.proofs.get(order) : { payment_intent_id: order },
          ),
        ),
      })),
    );
  }
  return jobs;
}

async function verifyPhase(p: CheckoutPools, c: number, seconds: number) {
  const senders = Math.min(c, p.users.length);
  const perUser = Math.ceil(checkoutCapacity(seconds) / senders);
  const jobs = await verifyJobs(p, senders, perUser);
  const used = jobs.map(() => 0);
  const verifiedNow: string[] = [];
  await settleDb();
  const win = windows(seconds);
  const r = await runLoad(urls(), {
    concurrency: c,
    seconds,
    next(sender) {
      const s = sender % senders;
      const job = jobs[s][used[s]++];
      if (!job) return undefined;
      return {
        bytes: job.bytes,
        check(reply) {
          if (reply.status !== 200) {
            return `verify answered ${reply.status} ${reply.body.slice(0, 200)}`;
          }
          const b = JSON.parse(reply.body);
          if (b.order?.status !== "paid" || b.order?.gateway_order_id !== job.order) {
            return `verify answered ${reply.body.slice(0, 200)}`;
          }
          verifiedNow.push(job.order);
        },
      };
    },
  });
  for (let s = 0; s < senders; s++) {
    p.pending[s] = p.pending[s].slice(Math.min(used[s], jobs[s].length));
  }
  p.verified.push(...verifiedNow);
  expectedPaid += verifiedNow.length;
  const correctness = [
    ...await checkOrdersPaid(db, verifiedNow, p.gateway),
    ...await checkInvariants(db, expectedPaid),
  ];
  makeRow(
    "verify",
    p.gateway === "razorpay"
      ? "verify (Checkout signature)"
      : "verify (payment_intent_id; settle reads the intent)",
    c,
    r,
    verifiedNow.length,
    correctness,
    await win,
    `tpcb s10 c${c}`,
  );
}

// ---------------------------------------------------------------- the SQL function alone

/** settle.ingest_webhook driven by pgbench itself: the database's ceiling for one event. */
async function sqlOnly(ingestUsers: BenchUser[], c: number, seconds: number) {
  const n = Math.ceil(seconds * Math.max(6000, 3 * bestRate));
  const id = (k: number) => `order_Q${String(k + 1).padStart(13, "0")}`;
  await insertOrders(db, ingestUsers, n, () => 50_000, id);
  await db.unsafe("drop sequence if exists bench_sql_only; create sequence bench_sql_only");
  const sample = await capturedEvent(LOCAL_RAZORPAY.webhookSecret, {
    gatewayOrderId: id(0),
    amount: 50_000,
    currency: "INR",
  });
  const script = await Deno.makeTempFile({ suffix: ".sql" });
  // An E'' literal with every ':' escaped: pgbench would read ":name" as a variable.
  const lit = (s: string) =>
    `E'${s.replaceAll("\\", "\\\\").replaceAll("'", "''").replaceAll(":", "\\x3a")}'`;
  await Deno.writeTextFile(
    script,
    `select settle.ingest_webhook(row('razorpay', 'evt_sql_' || n, ` +
      `'payment.captured', 'captured', 'order_Q' || lpad(n::text, 13, '0'), ` +
      `'pay_Q' || lpad(n::text, 13, '0'), 50000, 'INR', now(), ${lit(sample.body)}, ` +
      `null, null, null, null)::settle.incoming_event) ` +
      `from (select nextval('bench_sql_only') as n) s;\n`,
  );
  await settleDb();
  const win = windows(seconds, undefined);
  const res = await pgbenchRun(pgbench, dbUrl, {
    label: `settle.ingest_webhook c${c}`,
    scale: 0,
    clients: c,
    seconds,
    // The protocol storeEvent uses: its statement carries literals, sent as a simple query.
    mode: "simple",
    script,
  });
  await Deno.remove(script);
  const [chk] = await db`
    select count(*) filter (where outcome = 'applied')::int as applied,
           count(*) filter (where outcome <> 'applied')::int as other
    from public.webhook_events where event_id like 'evt\\_sql\\_%'`;
  expectedPaid += chk.applied;
  const correctness = [
    ...(chk.other ? [`${chk.other} events not applied (ran out of orders?)`] : []),
    ...(chk.applied !== res.transactions ? [`${chk.applied} applied of ${res.transactions}`] : []),
    ...await checkInvariants(db, expectedPaid),
  ];
  const base = baselineFor(`tpcb s10 c${c}`);
  const r: LoadResult = {
    requests: res.transactions,
    errors: 0,
    firstErrors: [],
    latenciesMs: [],
    elapsedMs: res.transactions / res.tps * 1000,
    exhausted: false,
  };
  const row = makeRow(
    "sql_ingest_webhook",
    "settle.ingest_webhook alone (pgbench -f, no HTTP)",
    c,
    r,
    res.transactions,
    correctness,
    await win,
    base?.label,
    "one SQL call per event, driven by pgbench -M simple (storeEvent's protocol: a statement of literals)",
  );
  row.latencyMs = { ...res.latencyMs, max: NaN };
}

// ---------------------------------------------------------------- floors

async function floor(mode: "echo" | "nodb", c: number, seconds: number, kit: WebhookKit) {
  const s = await startServer(mode);
  rowGateway = mode === "echo" ? undefined : kit.gateway;
  try {
    const events: QueuedEvent[] = [];
    for (let k = 0; k < 2000; k++) {
      events.push(
        await kit.event(s.functionsUrl, {
          gatewayOrderId: kit.orderId(),
          amount: randomAmount(),
          currency: kit.gateway === "stripe" ? "USD" : "INR",
          user: 0,
        }),
      );
    }
    let i = 0;
    await runLoad(s.functionsUrl, {
      concurrency: c,
      seconds: 1,
      next: () => ({ bytes: events[i++ % events.length].bytes, check: webhookOk }),
    });
    const win = windows(seconds, s.pid, null);
    const r = await runLoad(s.functionsUrl, {
      concurrency: c,
      seconds,
      next: () => ({ bytes: events[i++ % events.length].bytes, check: webhookOk }),
    });
    makeRow(
      `floor_${mode}`,
      mode === "echo"
        ? "HTTP floor: bare Deno.serve, no work"
        : "webhook function, SQL stubbed (HTTP + signature + JSON + zod)",
      c,
      r,
      r.requests,
      [],
      await win,
      `tpcb s10 c${c}`,
      "no database: what the HTTP server and the load generator alone can do on this machine",
    );
  } finally {
    await s.stop();
  }
}

// ---------------------------------------------------------------- the peer

const PEERDB = `${DB}_peer`;
let peerInfo: { version: string; node: string } | undefined;

/**
 * @supabase/stripe-sync-engine (pinned) on its own database, fed the same kind of signed
 * payment_intent.succeeded events by the same load generator at the same concurrencies. It
 * stores each intent (one upsert); settle's row does what settle does per event.
 */
async function peerPhases(template: Record<string, unknown>) {
  peerInfo = await ensurePeer();
  const url = await createDatabase(opts.adminUrl, PEERDB);
  const pdb = connect(url, 2);
  const peer = await startPeer(url, LOCAL_STRIPE.webhookSecret);
  log(`peer ${PEER_PACKAGE}@${peerInfo.version} on Node ${peerInfo.node} at ${peer.url}`);
  rowGateway = "stripe";
  rowConfig = `peer ${peerInfo.version}`;
  const sign = (e: ReturnType<typeof succeededEvent>): QueuedEvent => ({
    ...e,
    signedAt: Date.now(),
    bytes: post(peer.url, "/webhook", {
      "content-type": "application/json; charset=utf-8",
      "stripe-signature": stripeSignature(LOCAL_STRIPE.webhookSecret, e.body),
    }, e.body),
  });
  const make = (n: number) =>
    Array.from({ length: n }, () =>
      sign(succeededEvent(template, {
        gatewayOrderId: stripeId("pi_"),
        amount: randomAmount(),
        currency: "USD",
      })));
  const ok = (r: Reply) =>
    r.status === 200 && r.body.includes('"received":true')
      ? undefined
      : `peer answered ${r.status} ${r.body.slice(0, 200)}`;
  try {
    // Warm-up (JIT, the pool's connections), checked but not reported.
    const warm = make(3000);
    let w = 0;
    await runLoad(peer.url, {
      concurrency: 16,
      seconds: Math.min(2, opts.seconds),
      next: () => w < warm.length ? { bytes: warm[w++].bytes, check: ok } : undefined,
    });
    const warmProblems = await checkPeerStored(pdb, warm.slice(0, w));
    if (warmProblems.length) problems.push(`peer warm-up: ${warmProblems.join("; ")}`);
    for (const c of opts.concurrencies) {
      const events = make(capacity(opts.seconds, 3000));
      let i = 0;
      await pdb.unsafe("vacuum analyze stripe.payment_intents");
      await checkpoint();
      const win = windows(opts.seconds, peer.pid, PEERDB);
      const r = await runLoad(peer.url, {
        concurrency: c,
        seconds: opts.seconds,
        next: () => i < events.length ? { bytes: events[i++].bytes, check: ok } : undefined,
      });
      const sent = events.slice(0, i);
      makeRow(
        "peer_webhook_unique",
        `peer: ${PEER_PACKAGE} processWebhook, all unique`,
        c,
        r,
        sent.length,
        await checkPeerStored(pdb, sent),
        await win,
        `tpcb s10 c${c}`,
        "stores the intent (one upsert into stripe.payment_intents); no dedup, order, ledger or outbox",
      );
    }
  } finally {
    await peer.stop();
    await pdb.end({ timeout: 5 });
    if (!opts.keepDb) await dropDatabase(opts.adminUrl, PEERDB);
  }
}

// ---------------------------------------------------------------- growth and memory

/** A function server (default configuration) over the current bench database. */
async function startDefaultServer(sim: ServerProcess, v8Flags: string[] = []) {
  servers = [
    await startServer("stack", [
      dbUrl,
      `RAZORPAY_API_URL=${sim.simulatorUrl}/razorpay`,
      `STRIPE_API_URL=${sim.stripeUrl}`,
      "RATE_LIMITS=off",
    ], { v8Flags }),
  ];
  server = servers[0];
}

async function stopServers() {
  for (const s of servers) await s.stop();
  servers = [];
  server = undefined;
}

/** Ingest users for one gateway and a warmed-up server (JIT, pool, plan caches). */
async function warmQueue(kit: WebhookKit, label: string): Promise<EventQueue> {
  const users = await createUsers(db, 1024, `${label}-${kit.gateway}`);
  if (kit.gateway === "stripe") await ensureWallets(db, users, "USD");
  const queue = new EventQueue(users, () => server!.functionsUrl, kit);
  await queue.ensure(3000);
  let i = 0;
  const events = queue.items;
  await runLoad(urls(), {
    concurrency: 16,
    seconds: Math.min(2, opts.seconds),
    next: () => i < events.length ? { bytes: events[i++].bytes, check: webhookOk } : undefined,
  });
  const warm = await sentChecks(events.slice(0, i), kit.gateway);
  queue.items = events.slice(i);
  if (warm.length) problems.push(`warm-up [${kit.gateway}, ${label}]: ${warm.join("; ")}`);
  return queue;
}

interface GrowthResult {
  orders: number;
  accounts: number;
  preloadSeconds: number;
  auditSeconds: number;
  auditRows: number;
  ingest: { gateway: string; empty: number; full: number; ratio: number }[];
  stats: { who: string; rows: number; medianMs: number; runsMs: number[] }[];
}
let growth: GrowthResult | undefined;

/** A 30-day payment_stats query as a role (and user), timed: one warm-up, then five runs. */
async function timeStats(role: string, userId?: string) {
  const claims = JSON.stringify(userId ? { sub: userId, role } : { role });
  const runsMs: number[] = [];
  let rows = 0;
  for (let k = 0; k < 6; k++) {
    await db.begin(async (tx) => {
      await tx`select set_config('role', ${role}, true),
                      set_config('request.jwt.claims', ${claims}, true)`;
      const t0 = performance.now();
      const r = await tx`select * from public.payment_stats
        where day >= (now() at time zone 'UTC')::date - 30`;
      if (k > 0) runsMs.push(round(performance.now() - t0, 2));
      rows = r.length;
    });
  }
  const sorted = [...runsMs].sort((a, b) => a - b);
  return { rows, medianMs: sorted[2], runsMs };
}

/** Ingest at c16 before the preload, per gateway; what one real payment writes is checked. */
async function growthBefore() {
  const queues = [];
  const empty: Record<string, number> = {};
  for (const kit of kits()) {
    rowGateway = kit.gateway;
    const queue = await warmQueue(kit, "growth");
    await queue.ensure(capacity(opts.seconds));
    const before = await tableCounts(db);
    const row = await webhookUnique(
      "growth_empty",
      "growth: webhook ingest, all unique, before the preload",
      queue,
      16,
      opts.seconds,
      "tpcb s10 c16",
    );
    const shape = shapeProblems(before, await tableCounts(db), row.requests);
    if (shape.length) throw new Error(shape.join("; "));
    empty[kit.gateway] = row.eventsPerSec;
    queues.push(queue);
  }
  return { queues, empty };
}

/**
 * The 30-day payment_stats queries, as the phases left the database (every order change since
 * the preload still a pending delta), then after settle.compact_payment_stats() (what pg_cron
 * does every minute).
 */
async function growthStats(userId: string) {
  const stats = [];
  for (const compacted of [false, true]) {
    if (compacted) await db`select settle.compact_payment_stats(2147483647)`;
    const [{ n: pending }] = await db`
      select count(*)::int as n from settle.payment_stats_deltas`;
    const when = compacted ? "after compaction" : `${pending} deltas pending`;
    stats.push(
      {
        who: `one account (its owner, authenticated), ${when}`,
        ...await timeStats("authenticated", userId),
      },
      { who: `payment_analyst (every account), ${when}`, ...await timeStats("payment_analyst") },
    );
  }
  for (const s of stats) {
    log(`growth: payment_stats 30 days, ${s.who}: ${s.medianMs} ms (${s.rows} rows)`);
  }
  return stats;
}

/**
 * Ingest at c16 on an almost empty database, then again after a bulk preload of paid orders
 * (bench/lib/growth.ts), with the 30-day payment_stats queries over them.
 */
async function growthPhase(sim: ServerProcess) {
  rowConfig = "growth";
  await freshDatabase();
  await startDefaultServer(sim);
  try {
    const { queues, empty } = await growthBefore();
    const accounts = Math.max(1, Math.round(opts.growthOrders / 100));
    log(`growth: preloading ${opts.growthOrders} paid orders over ${accounts} accounts`);
    const pre = await preload(db, {
      orders: opts.growthOrders,
      accounts,
      days: 90,
      gateways: opts.gateways,
    }, log);
    expectedPaid += opts.growthOrders;
    await db.unsafe("vacuum analyze");
    const t0 = performance.now();
    const audit = await db`select * from settle.ledger_audit() limit 10`;
    const auditSeconds = (performance.now() - t0) / 1000;
    if (audit.length) problems.push(`growth: ledger_audit() ${JSON.stringify(audit)}`);
    const inv = await checkInvariants(db, expectedPaid);
    if (inv.length) problems.push(`growth: invariants after the preload: ${inv.join("; ")}`);
    log(`growth: preload ${round(pre.seconds, 1)} s, ledger_audit ${round(auditSeconds, 1)} s`);
    const ingest = [];
    for (const queue of queues) {
      rowGateway = queue.kit.gateway;
      await queue.ensure(capacity(opts.seconds));
      const row = await webhookUnique(
        "growth_full",
        `growth: webhook ingest, all unique, ${opts.growthOrders} paid orders preloaded`,
        queue,
        16,
        opts.seconds,
        "tpcb s10 c16",
      );
      const e = empty[queue.kit.gateway];
      ingest.push({
        gateway: queue.kit.gateway,
        empty: e,
        full: row.eventsPerSec,
        ratio: round(row.eventsPerSec / e, 3),
      });
    }
    const stats = await growthStats(pre.userIds[0]);
    growth = {
      orders: opts.growthOrders,
      accounts,
      preloadSeconds: round(pre.seconds, 1),
      auditSeconds: round(auditSeconds, 1),
      auditRows: audit.length,
      ingest,
      stats,
    };
  } finally {
    await stopServers();
  }
}

interface MemoryResult {
  events: number;
  chunk: number;
  /** Means (MB) sampled during each chunk of events, and after it. */
  chunks: MemoryChunk[];
  firstMb: number;
  lastMb: number;
  peakMb: number;
}
let memory: MemoryResult | undefined;

/** The function server's RSS over many Razorpay events at c16, chunk by chunk. */
async function memoryPhase(sim: ServerProcess) {
  rowConfig = "memory";
  rowGateway = "razorpay";
  await freshDatabase();
  await startDefaultServer(sim, opts.memoryLive ? ["--expose-gc"] : []);
  try {
    const queue = await warmQueue(razorpayKit, "memory");
    const chunk = Math.min(10_000, opts.memoryEvents);
    const chunks: MemoryResult["chunks"] = [];
    for (let done = 0; done < opts.memoryEvents; done += chunk) {
      await queue.ensure(chunk);
      const events = queue.items.slice(0, chunk);
      queue.items = queue.items.slice(chunk);
      let i = 0;
      const cpu0 = await processCpuMs(server!.pid);
      const sampling = startSampling(server!.pid, server!.memoryUrl!);
      const r = await runLoad(urls(), {
        concurrency: 16,
        seconds: 3600,
        next: () => i < events.length ? { bytes: events[i++].bytes, check: webhookOk } : undefined,
      });
      const samples = await sampling.stop();
      const cpuMs = await processCpuMs(server!.pid) - cpu0;
      const wrong = [
        ...await checkEventsApplied(db, events, "razorpay"),
        ...(r.errors ? [`${r.errors} bad answers, e.g. ${r.firstErrors.join(" | ")}`] : []),
      ];
      expectedPaid += events.length;
      if (wrong.length) {
        problems.push(`memory, events ${done}..${done + chunk}: ${wrong.join("; ")}`);
      }
      const c = summarize(done + chunk, samples, {
        eventsPerSec: r.requests / (r.elapsedMs / 1000),
        serverCpuUsPerEvent: cpuMs * 1000 / r.requests,
      });
      if (opts.memoryLive) c.liveHeapMb = await liveHeapMb(server!.memoryUrl!);
      chunks.push(c);
      log(
        `memory: ${c.events} events, RSS ${c.meanRssMb} MB, heap ${c.meanHeapUsedMb} of ` +
          `${c.meanHeapTotalMb} MB (new ${c.meanNewSpaceMb}, old ${c.meanOldSpaceMb}), ` +
          `external ${c.meanExternalMb} MB, server CPU ${c.serverCpuUsPerEvent} µs/event` +
          (c.liveHeapMb === undefined ? "" : `, live after a full GC ${c.liveHeapMb} MB`),
      );
    }
    const inv = await checkInvariants(db, expectedPaid);
    if (inv.length) problems.push(`memory: invariants: ${inv.join("; ")}`);
    memory = {
      events: opts.memoryEvents,
      chunk,
      chunks,
      firstMb: chunks[0].meanRssMb,
      lastMb: chunks.at(-1)!.meanRssMb,
      peakMb: Math.max(...chunks.map((c) => c.maxRssMb)),
    };
  } finally {
    await stopServers();
  }
}

// ---------------------------------------------------------------- one server's phases

const kits = (): WebhookKit[] =>
  opts.gateways.map((g) => g === "stripe" ? stripeKit(stripeTemplate!) : razorpayKit);

/**
 * Webhook ingest per gateway: all unique (every c when full), duplicates, the same event. The
 * warm-up runs even when ingest is not measured: the phases after it start on a warm server.
 */
async function ingestPhases(full: boolean) {
  for (const kit of kits()) {
    rowGateway = kit.gateway;
    // Warm-up (JIT, pool connections, plan caches); checked but not reported.
    const ingest = await warmQueue(kit, `ingest-${rowConfig}`);
    if (!want("ingest")) continue;
    for (const c of full ? opts.concurrencies : [16]) {
      await webhookUnique(
        "webhook_unique",
        "webhook ingest, all unique",
        ingest,
        c,
        opts.seconds,
        `tpcb s10 c${c}`,
      );
    }
    if (full) {
      await webhookDuplicates(ingest, 16, opts.seconds);
      await webhookSameEvent(ingest, 16, opts.seconds);
    }
  }
}

/** 16 senders credit one wallet; its balance must move by exactly the credits sent. */
async function hotWalletPhase() {
  rowGateway = "razorpay";
  const [hotUser] = await createUsers(db, 1, `hot-${rowConfig}`);
  const hot = new EventQueue([hotUser], () => server!.functionsUrl, razorpayKit);
  const before = await walletBalance(db, hotUser.walletId);
  await hot.ensure(capacity(opts.seconds));
  const events = hot.items;
  let i = 0;
  await settleDb();
  const win = windows(opts.seconds);
  const r = await runLoad(urls(), {
    concurrency: 16,
    seconds: opts.seconds,
    next: () => i < events.length ? { bytes: events[i++].bytes, check: webhookOk } : undefined,
  });
  const sent = events.slice(0, i);
  const correctness = await sentChecks(sent, "razorpay");
  const credited = sent.reduce((a, e) => a + e.amount, 0);
  const after = await walletBalance(db, hotUser.walletId);
  if (after - before !== credited) {
    correctness.push(`hot wallet balance moved by ${after - before}, credits sent ${credited}`);
  }
  makeRow(
    "hot_wallet",
    "hot wallet: 16 senders credit one wallet",
    16,
    r,
    sent.length,
    correctness,
    await win,
    "tpcb s1 c16",
    `final balance ${after} = the sum of the ${sent.length} credits: ${
      after - before === credited
    }`,
  );
}

/** wallet-charges on one wallet and over 256, each charge then checked and refunded. */
async function chargesPhases() {
  rowGateway = undefined;
  for (
    const [id, what, n, baseline] of [
      ["charge_hot", "wallet-charges: 16 senders charge one wallet", 1, "tpcb s1 c16"],
      ["charge_spread", "wallet-charges: 16 senders over 256 wallets", 256, "tpcb s10 c16"],
    ] as const
  ) {
    const users = await createUsers(db, n, `${id}-${rowConfig}`);
    const funded = 1_000_000_000;
    expectedPaid += await fundWallets(db, users, funded);
    const jobs = chargeJobs(server!.functionsUrl, await serviceRoleKey(), users);
    await settleDb();
    const win = windows(opts.seconds);
    const r = await runLoad(urls(), { concurrency: 16, seconds: opts.seconds, next: jobs.next });
    const correctness = await checkChargesAndRefund(db, users, jobs.made, funded);
    makeRow(id, what, 16, r, jobs.made.length, correctness, await win, baseline);
  }
}

/** create-order then verify per gateway, after a warm-up of both that is not reported. */
async function checkoutPhases(full: boolean) {
  for (const gateway of opts.gateways) {
    rowGateway = gateway;
    const users = await createUsers(db, 16, `checkout-${gateway}-${rowConfig}`);
    if (gateway === "stripe") await ensureWallets(db, users, "USD");
    const pools: CheckoutPools = {
      gateway,
      users,
      pending: users.map(() => []),
      verified: [],
      created: 0,
      confirmed: new Set(),
      proofs: new Map(),
    };
    // Warm the create-order and verify paths (and create each account's Stripe customer).
    await createOrderPhase(pools, 16, Math.min(1, opts.seconds));
    rows.pop();
    await verifyPhase(pools, 4, Math.min(1, opts.seconds));
    rows.pop();
    for (const c of full ? [1, 16] : [16]) await createOrderPhase(pools, c, opts.seconds);
    for (const c of full ? [1, 16] : [16]) await verifyPhase(pools, c, opts.seconds);
  }
}

/** Every phase against the running server (full), or only the c=16 ones the targets name. */
async function serverPhases(full: boolean) {
  await ingestPhases(full);
  if (want("hot")) await hotWalletPhase();
  if (want("charges")) await chargesPhases();
  if (want("checkout")) await checkoutPhases(full);
}

// ---------------------------------------------------------------- the run

const started = performance.now();
try {
  // 1. The baseline: pgbench tpcb-like at scale 10 (every concurrency) and scale 1 (one
  //    branch row that every transaction updates: the hot-row case).
  if (want("pgbench")) {
    for (const [name, scale] of [[PGB10, 10], [PGB1, 1]] as const) {
      const url = await createDatabase(opts.adminUrl, name);
      await pgbenchInit(pgbench, url, scale);
    }
    const s10 = new URL(opts.adminUrl);
    s10.pathname = `/${PGB10}`;
    const s1 = new URL(opts.adminUrl);
    s1.pathname = `/${PGB1}`;
    const runs: [string, string, number, number][] = [
      ...opts.concurrencies.map((c) =>
        [`tpcb s10 c${c}`, s10.toString(), 10, c] as [string, string, number, number]
      ),
      [`tpcb s1 c16`, s1.toString(), 1, 16],
    ];
    for (const [label, url, scale, c] of runs) {
      await checkpoint();
      const res = await pgbenchRun(pgbench, url, {
        label,
        scale,
        clients: c,
        seconds: opts.seconds,
        mode: "prepared",
      });
      pgbenchRuns.push(res);
      log(`pgbench ${label}: ${res.tps} tps, p50 ${res.latencyMs.p50} p99 ${res.latencyMs.p99} ms`);
    }
    await dropDatabase(opts.adminUrl, PGB10);
    await dropDatabase(opts.adminUrl, PGB1);
  }

  // 2. Floors without a database: the HTTP server alone, and the webhook function's own JS.
  if (want("floor")) {
    rowConfig = "no database";
    await floor("echo", 16, opts.seconds, razorpayKit);
    for (const kit of kits()) await floor("nodb", 16, opts.seconds, kit);
  }

  // 2b. The peer, @supabase/stripe-sync-engine, on the same Stripe events.
  if (want("peer") && stripeTemplate) await peerPhases(stripeTemplate);

  // 3. The function server over the bench database, as shipped (default), then tuned.
  //    The gateway simulators run in a process of their own: create-order's calls to the
  //    gateway cost settle a request and a response, not the gateway's work on settle's
  //    event loop.
  sim = await startServer("sim");
  setGatewayPid(sim.pid);
  const passes: {
    config: string;
    prepare: boolean;
    pool?: number;
    isolates: number;
    full: boolean;
  }[] = [
    {
      config: "default",
      prepare: opts.prepare,
      pool: opts.pool || undefined,
      isolates: 1,
      full: true,
    },
    ...(opts.tuned
      ? [{
        config: "tuned",
        prepare: true,
        pool: opts.tunedPool,
        isolates: opts.tunedIsolates,
        full: false,
      }]
      : []),
  ];
  const serverParts = ["ingest", "hot", "charges", "checkout"].some(want);
  for (const pass of serverParts ? passes : []) {
    rowConfig = pass.config;
    await freshDatabase();
    // Rate limits off: 16 bench users send thousands of requests a minute each, and the
    // figure is settle's own work per request.
    const env = [
      `RAZORPAY_API_URL=${sim.simulatorUrl}/razorpay`,
      `STRIPE_API_URL=${sim.stripeUrl}`,
      "RATE_LIMITS=off",
    ];
    if (pass.pool) env.push(`DB_POOL_MAX=${pass.pool}`);
    const url = pass.prepare ? `${dbUrl}?prepare=true` : dbUrl;
    servers = [];
    for (let i = 0; i < pass.isolates; i++) servers.push(await startServer("stack", [url, ...env]));
    server = servers[0];
    log(
      `[${pass.config}] ${servers.length} function server(s) ${urls().join(" ")} ` +
        `(prepared statements ${pass.prepare ? "on" : "off"}, pool ${pass.pool ?? "default 10"})`,
    );
    await serverPhases(pass.full);
    for (const s of servers) await s.stop();
    servers = [];
    server = undefined;
  }
  if (want("memory")) await memoryPhase(sim);
  if (want("growth")) await growthPhase(sim);
  await sim.stop();
  sim = undefined;

  if (want("sql")) {
    rowConfig = "SQL only";
    rowGateway = "razorpay";
    await freshDatabase();
    const users = await createUsers(db, 1024, "sqlonly");
    await sqlOnly(users, 16, opts.seconds);
  }

  const final = db ? await checkInvariants(db, expectedPaid) : [];
  if (final.length) problems.push(`final invariants: ${final.join("; ")}`);
} finally {
  for (const s of servers) await s.stop();
  await sim?.stop();
  await db?.end({ timeout: 5 });
  if (!opts.keepDb) await dropDatabase(opts.adminUrl, DB);
  await admin.end({ timeout: 5 });
}

// ---------------------------------------------------------------- report

const byId = (id: string, c: number, config: string, gateway: string) =>
  rows.find((r) =>
    r.id === id && r.concurrency === c && r.config === config && r.gateway === gateway
  );
type Target = {
  target: string;
  ratio?: number;
  p99Ms?: number;
  value?: number;
  met: boolean;
};
/** CPU per request (Postgres + server, µs) of create-order and verify before issue 16. */
const CHECKOUT_CPU_BEFORE: Record<string, number> = {
  "razorpay.create_order": 1675 + 1169,
  "razorpay.verify": 2347 + 904,
  "stripe.create_order": 2081 + 2112,
  "stripe.verify": 3192 + 2037,
};
const cpuPerRequestUs = (r?: Row) =>
  r?.cpu ? round((r.cpu.postgres + r.cpu.server) / r.eventsPerSec * 1e6, 0) : undefined;
const atLeast = (target: string, ratio: number | undefined, min: number): Target => ({
  target,
  ratio,
  met: (ratio ?? 0) >= min,
});
// The targets of issue 16, per server configuration.
const targetsFor = (config: string) => {
  const out: Record<string, Target> = {};
  for (const g of opts.gateways) {
    out[`${g}.webhookIngestC16`] = atLeast(
      ">= 0.35 x pgbench tpcb s10 c16",
      byId("webhook_unique", 16, config, g)?.ratio,
      0.35,
    );
    if (g === "stripe") {
      const peer = rows.find((r) => r.id === "peer_webhook_unique" && r.concurrency === 16);
      const mine = byId("webhook_unique", 16, config, g);
      out[`${g}.webhookVsPeerC16`] = atLeast(
        ">= 1.0 x stripe-sync-engine c16 (same run)",
        peer && mine ? round(mine.eventsPerSec / peer.eventsPerSec, 3) : undefined,
        1,
      );
    }
    if (g === "razorpay") {
      out[`${g}.hotWallet`] = atLeast(
        ">= 0.5 x pgbench tpcb s1 c16",
        byId("hot_wallet", 16, config, g)?.ratio,
        0.5,
      );
    }
    for (const [id, name] of [["create_order", "createOrder"], ["verify", "verify"]]) {
      const c1 = byId(id, 1, config, g);
      // The tuned pass runs checkout at c16 only.
      if (c1 || config === "default") {
        out[`${g}.${name}P99C1`] = {
          target: "p99 < 10 ms at c1",
          p99Ms: c1?.latencyMs.p99,
          met: (c1?.latencyMs.p99 ?? Infinity) < 10,
        };
      }
      const before = CHECKOUT_CPU_BEFORE[`${g}.${id}`];
      const cpu = cpuPerRequestUs(byId(id, 16, config, g));
      out[`${g}.${name}CpuPerRequestC16`] = {
        target: `Postgres + server CPU per request <= ${before / 2} µs (half of ${before})`,
        value: cpu,
        met: cpu !== undefined && cpu <= before / 2,
      };
    }
  }
  return out;
};
const globalTargets = (): Record<string, Target> => {
  const out: Record<string, Target> = {};
  const sql = rows.find((r) => r.id === "sql_ingest_webhook");
  if (sql) out["razorpay.sqlOnlyC16"] = atLeast(">= 0.6 x pgbench tpcb s10 c16", sql.ratio, 0.6);
  for (const g of growth?.ingest ?? []) {
    out[`${g.gateway}.growthIngest`] = atLeast(
      `ingest with ${growth!.orders} paid orders >= 0.8 x empty`,
      g.ratio,
      0.8,
    );
  }
  for (const [k, st] of (growth?.stats ?? []).entries()) {
    out[`growth.paymentStats30d.${k % 2 ? "analyst" : "account"}${k >= 2 ? "Compacted" : ""}`] = {
      target: `30-day payment_stats < 50 ms (${st.who})`,
      value: st.medianMs,
      met: st.medianMs < 50,
    };
  }
  if (memory) {
    out["memory.rss"] = {
      target: `function server RSS < 250 MB over ${memory.events} events (peak)`,
      value: memory.peakMb,
      met: memory.peakMb < 250,
    };
    out["memory.flat"] = {
      target: `RSS during the last ${memory.chunk} events <= 1.1 x the first ${memory.chunk}`,
      ratio: round(memory.lastMb / memory.firstMb, 3),
      met: memory.lastMb <= memory.firstMb * 1.1,
    };
  }
  return out;
};
const targets = {
  default: targetsFor("default"),
  ...(opts.tuned ? { tuned: targetsFor("tuned") } : {}),
  run: globalTargets(),
};

const report = {
  generatedAt: new Date().toISOString(),
  label: opts.label || undefined,
  gateways: opts.gateways,
  code,
  loadAverage: { before: loadBefore, after: await loadAverage() },
  machine: host,
  settings: {
    secondsPerPhase: opts.seconds,
    // BENCH_SERVER_NICE (bench/lib/spawn.ts): the nice value of settle's servers and the peer's.
    serverNice: Deno.env.get("BENCH_SERVER_NICE") || undefined,
    configs: {
      default: `as shipped: prepared statements ${opts.prepare ? "on" : "off"}, DB_POOL_MAX ${
        opts.pool || 10
      }`,
      ...(opts.tuned
        ? {
          tuned: `prepared statements on (?prepare=true), DB_POOL_MAX ${opts.tunedPool}, ` +
            `${opts.tunedIsolates} function server process(es) (isolates)`,
        }
        : {}),
    },
    pgbench: "tpcb-like, -M prepared, -j min(2, c), same server, CHECKPOINT before every phase",
    loadGenerator: "closed loop, one keep-alive HTTP/1.1 connection per sender, own process; " +
      "function server and the gateway simulators each in their own process",
  },
  totalSeconds: round((performance.now() - started) / 1000, 1),
  correct: problems.length === 0,
  problems,
  targets,
  peer: peerInfo ? { package: PEER_PACKAGE, ...peerInfo } : undefined,
  growth,
  memory,
  pgbench: pgbenchRuns,
  rows,
};

const targetLines = Object.entries(targets).flatMap(([config, ts]) =>
  Object.entries(ts).map(([k, t]) =>
    `- ${config}, ${k}: ${t.target}: ${t.ratio ?? t.p99Ms ?? t.value} → ${
      t.met ? "met" : "NOT met"
    }`
  )
);
const md = [
  `## settle benchmarks (${report.generatedAt.slice(0, 10)}, ${opts.seconds} s per phase)`,
  "",
  `${host.cpus} × ${host.cpuModel}, ${host.memoryGiB} GiB, ${host.os}; ${
    version.split(" on ")[0]
  }; Deno ${host.deno}. Gateways: ${
    opts.gateways.join(", ")
  }. Load average (1, 5, 15 min) ${report.loadAverage.before} before the run, ${report.loadAverage.after} after it.`,
  "",
  ...Object.entries(report.settings.configs).map(([k, v]) => `- ${k}: ${v}`),
  "",
  mainTable(rows),
  "",
  pgbenchTable(pgbenchRuns),
  "",
  peerTable(rows, pgbenchRuns),
  "",
  growthTable(growth),
  "",
  memoryTable(memory),
  "",
  "CPU cores busy during each phase (of " + host.cpus + "):",
  "",
  cpuTable(rows),
  "",
  "Database backends (average number in each state) during each phase:",
  "",
  backendsTable(rows),
  "",
  "Targets:",
  "",
  ...targetLines,
  "",
  problems.length
    ? `**Correctness problems:**\n${problems.map((p) => `- ${p}`).join("\n")}`
    : "Correctness: every phase checked, all events applied exactly once, balances exact.",
].join("\n");
console.log(md);
await Deno.mkdir(new URL("results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(opts.out, JSON.stringify(report, null, 2) + "\n");
log(`wrote ${opts.out} (${report.totalSeconds} s)`);
if (problems.length) Deno.exit(1);
