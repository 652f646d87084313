// `deno task bench --profile`: where an event's time goes. Microbenchmarks of the JS steps
// (HMAC, JSON + zod, JWT), statements and round trips per request counted on the wire, calls
// and time per SQL function (track_functions), the cost of each SQL step inside one transaction,
// and V8 CPU profiles of the server under load. Writes bench/results/profile.json.
import { connect, createDatabase, dropDatabase, migrate, type Sql } from "../dev/db.ts";
import { LOCAL_JWT_SECRET, userToken } from "../dev/keys.ts";
import { LOCAL_RAZORPAY, LOCAL_STRIPE } from "../dev/stack.ts";
import { createAuthenticator } from "../shared/auth.ts";
import { hmacSha256HexSync, timingSafeEqual } from "../shared/crypto.ts";
import Stripe from "stripe";
import { stripeId, stripeSignature, succeededEvent, succeededTemplate } from "./lib/stripe.ts";
import { verifyWebhookSignature } from "../shared/gateways/razorpay/signature.ts";
import { normalizeWebhook } from "../shared/gateways/razorpay/wire.ts";
import { createOrderBody } from "../shared/services/orders.ts";
import { type CpuShare, cpuWindow } from "./lib/cpu.ts";
import { InspectorSession, type ProfileSummary, summarise } from "./lib/cpuprof.ts";
import { type BenchUser, createUsers, insertOrders, randomAmount } from "./lib/fixtures.ts";
import { encodeRequest, type Reply } from "./lib/http.ts";
import { type Job, runLoad } from "./lib/load.ts";
import { PgProxy, type WireCounts } from "./lib/pgproxy.ts";
import { capturedEvent, paidOrders } from "./lib/razorpay.ts";
import { type ServerProcess, startServer } from "./lib/spawn.ts";
import { round } from "./lib/stats.ts";

const log = (msg: string) =>
  console.error(`[profile ${new Date().toISOString().slice(11, 19)}] ${msg}`);

function micro(name: string, n: number, fn: () => unknown): { name: string; usPerOp: number } {
  for (let i = 0; i < Math.min(2000, n); i++) fn(); // warm the JIT
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  return { name, usPerOp: round(((performance.now() - t0) * 1000) / n, 2) };
}

async function microAsync(name: string, n: number, fn: () => Promise<unknown>) {
  for (let i = 0; i < Math.min(2000, n); i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return { name, usPerOp: round(((performance.now() - t0) * 1000) / n, 2) };
}

type Kind = "webhook" | "create-order" | "verify";

type Sample = Awaited<ReturnType<typeof capturedEvent>>;

const topup = { gateway: "razorpay", purpose: "wallet_topup", amount: 50000, currency: "INR" };

/** 1. The JS steps alone: HMAC, JSON + zod, JWT, the create-order body. */
async function jsMicrobench(sample: Sample) {
  const auth = createAuthenticator({ hsSecret: LOCAL_JWT_SECRET });
  const authNoCache = createAuthenticator({ hsSecret: LOCAL_JWT_SECRET, cacheSize: 0 });
  const token = await userToken(crypto.randomUUID());
  const authReq = new Request("http://x/", { headers: { authorization: `Bearer ${token}` } });
  // The WebCrypto HMAC this change replaced, key imported once as shared/crypto.ts did.
  const webcryptoKey = crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(LOCAL_RAZORPAY.webhookSecret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const body = new TextEncoder().encode(sample.body);
  const toHex = (b: ArrayBuffer) =>
    Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
  return [
    await microAsync(
      `HMAC-SHA256 verify of a ${sample.body.length}-byte webhook (node:crypto)`,
      20_000,
      () => verifyWebhookSignature(sample.body, sample.signature, [LOCAL_RAZORPAY.webhookSecret]),
    ),
    micro(
      "JSON.parse + zod envelope (normalizeWebhook)",
      20_000,
      () => normalizeWebhook(sample.body, sample.eventId),
    ),
    micro("JSON.parse alone", 20_000, () => JSON.parse(sample.body)),
    await microAsync(
      "HMAC-SHA256 of the same webhook with WebCrypto (before)",
      20_000,
      async () => {
        const sig = await crypto.subtle.sign("HMAC", await webcryptoKey, body);
        return timingSafeEqual(toHex(sig), sample.signature);
      },
    ),
    await microAsync("JWT verify, HS256 (jose, cache off)", 20_000, () => authNoCache(authReq)),
    await microAsync("JWT verify, HS256 (a cached token)", 20_000, () => auth(authReq)),
    micro("create-order body: zod parse", 20_000, () => createOrderBody.parse(topup)),
  ];
}

/** 1b. Stripe's webhook check: the SDK's SubtleCrypto against node:crypto on the same bytes. */
async function stripeMicrobench() {
  const stripeEvent = succeededEvent(await succeededTemplate(), {
    gatewayOrderId: stripeId("pi_"),
    amount: 5000,
    currency: "USD",
  });
  const stripeSdk = new Stripe(LOCAL_STRIPE.secretKey);
  const subtle = Stripe.createSubtleCryptoProvider();
  return [
    await microAsync(
      `Stripe webhook: constructEventAsync (SubtleCrypto) of a ${stripeEvent.body.length}-byte event`,
      5_000,
      () =>
        stripeSdk.webhooks.constructEventAsync(
          stripeEvent.body,
          stripeSignature(LOCAL_STRIPE.webhookSecret, stripeEvent.body),
          LOCAL_STRIPE.webhookSecret,
          300,
          subtle,
        ),
    ),
    micro(
      "Stripe webhook: HMAC with node:crypto of the same bytes (for comparison)",
      20_000,
      () => hmacSha256HexSync(LOCAL_STRIPE.webhookSecret, `1800000000.${stripeEvent.body}`),
    ),
  ];
}

/** What the load phases share: the profile database, its users, the simulator process. */
interface Ctx {
  db: Sql;
  dbUrl: string;
  users: BenchUser[];
  checkoutUsers: BenchUser[];
  sim: ServerProcess;
  gatewayEnv: string;
  sample: Sample;
}

const expect = (kind: Kind, status: number) => (r: Reply) =>
  r.status === status ? undefined : `${kind} answered ${r.status} ${r.body.slice(0, 200)}`;

async function webhookJobs(ctx: Ctx, host: string, n: number): Promise<Job[]> {
  const orders = await insertOrders(ctx.db, ctx.users, n);
  return await Promise.all(orders.map(async (o) => {
    const e = await capturedEvent(LOCAL_RAZORPAY.webhookSecret, o);
    return {
      bytes: encodeRequest(host, "POST", "/functions/v1/webhook/razorpay", {
        "content-type": "application/json",
        "x-razorpay-signature": e.signature,
        "x-razorpay-event-id": e.eventId,
      }, e.body),
      check: expect("webhook", 200),
    };
  }));
}

function createOrderJobs(ctx: Ctx, host: string, n: number): Job[] {
  return ctx.checkoutUsers.flatMap((u, i) =>
    Array.from({ length: Math.ceil(n / ctx.checkoutUsers.length) }, (_, k) => ({
      bytes: encodeRequest(host, "POST", "/functions/v1/create-order", {
        authorization: `Bearer ${u.token}`,
        "content-type": "application/json",
        "idempotency-key": `prof-${i}-${k}-${crypto.randomUUID()}`,
      }, JSON.stringify({ ...topup, amount: randomAmount() })),
      check: expect("create-order", 201),
    }))
  );
}

async function verifyJobs(ctx: Ctx, host: string, n: number): Promise<Job[]> {
  const per = Math.ceil(n / ctx.checkoutUsers.length);
  const out: Job[] = [];
  for (const u of ctx.checkoutUsers) {
    const amounts = Array.from({ length: per }, () => randomAmount());
    const paid = await paidOrders(
      ctx.sim.simulatorUrl!,
      amounts.map((amount) => ({ amount, currency: "INR" })),
    );
    await insertOrders(ctx.db, [u], per, (k) => amounts[k], (k) => paid.ids[k]);
    for (const proof of paid.proofs) {
      out.push({
        bytes: encodeRequest(host, "POST", "/functions/v1/verify", {
          authorization: `Bearer ${u.token}`,
          "content-type": "application/json",
        }, JSON.stringify(proof)),
        check: expect("verify", 200),
      });
    }
  }
  return out;
}

function jobsFor(ctx: Ctx, kind: Kind, url: string, n: number): Promise<Job[]> {
  const host = new URL(url).host;
  if (kind === "webhook") return webhookJobs(ctx, host, n);
  if (kind === "create-order") return Promise.resolve(createOrderJobs(ctx, host, n));
  return verifyJobs(ctx, host, n);
}

/** Interleave users so concurrent requests do not share a wallet. */
function interleave(jobs: Job[], users: number) {
  const per = Math.ceil(jobs.length / users);
  const out: Job[] = [];
  for (let k = 0; k < per; k++) {
    for (let u = 0; u < users; u++) if (jobs[u * per + k]) out.push(jobs[u * per + k]);
  }
  return out;
}

async function drive(url: string, jobs: Job[], c: number, seconds: number) {
  let i = 0;
  return await runLoad(url, {
    concurrency: c,
    seconds,
    next: () => (i < jobs.length ? jobs[i++] : undefined),
  });
}

// Statistics reach pg_stat_user_functions up to a second after a transaction ends.
const settle = () => new Promise((res) => setTimeout(res, 1500));

/** Calls and time per SQL function over the last counted requests (track_functions). */
async function functionStats(db: Sql, requests: number) {
  await settle();
  // Per call: the statistics of the last requests may not have arrived yet, so calls per
  // request is indicative only.
  return await db`
    select schemaname || '.' || funcname as fn,
      round(calls::numeric / ${requests}, 2)::float as calls_per_request,
      round(self_time::numeric * 1000 / calls, 1)::float as self_us_per_call,
      round(total_time::numeric * 1000 / calls, 1)::float as total_us_per_call
    from pg_stat_user_functions where calls > 0 order by total_time desc`;
}

/** One kind of request at c=1 through the counting proxy: 200 to warm, the rest counted. */
async function countOnWire(ctx: Ctx, proxy: PgProxy, functionsUrl: string, kind: Kind) {
  const jobs = await jobsFor(ctx, kind, functionsUrl, 700);
  await drive(functionsUrl, jobs.slice(0, 200), 1, 60);
  await settle();
  proxy.reset();
  await ctx.db`select pg_stat_reset()`;
  const r = await drive(functionsUrl, jobs.slice(200), 1, 60);
  if (r.errors) throw new Error(`${kind}: ${r.firstErrors.join("; ")}`);
  const c: WireCounts = proxy.counts;
  return {
    r,
    wire: {
      requests: r.requests,
      statementsPerRequest: round(c.statements / r.requests, 2),
      parsesPerRequest: round(c.parses / r.requests, 2),
      roundTripsPerRequest: round(c.roundTrips / r.requests, 2),
      bytesToServerPerRequest: Math.round(c.bytesToServer / r.requests),
      bytesToClientPerRequest: Math.round(c.bytesToClient / r.requests),
      meanLatencyMsThroughProxy: round(r.latenciesMs.reduce((a, b) => a + b, 0) / r.requests, 3),
    },
  };
}

/** 3. Statements and round trips per request, default and with prepared statements. */
async function onTheWire(ctx: Ctx) {
  log("statements and round trips per request (c=1, through a counting proxy)");
  const proxy = PgProxy.start(ctx.dbUrl);
  const wire: Record<string, Record<string, unknown>> = {};
  const functions: Record<string, unknown> = {};
  try {
    for (const prepare of [false, true]) {
      const config = prepare ? "prepared statements" : "default";
      wire[config] = {};
      const url = proxy.url(ctx.dbUrl) + (prepare ? "?prepare=true" : "");
      const s = await startServer("stack", [url, ctx.gatewayEnv, "RATE_LIMITS=off"]);
      try {
        for (const kind of ["webhook", "create-order", "verify"] as Kind[]) {
          const { r, wire: w } = await countOnWire(ctx, proxy, s.functionsUrl, kind);
          wire[config][kind] = w;
          if (!prepare) functions[kind] = await functionStats(ctx.db, r.requests);
          log(
            `  ${config}, ${kind}: ${w.statementsPerRequest} statements ` +
              `(${w.parsesPerRequest} parsed), ${w.roundTripsPerRequest} round trips per request`,
          );
        }
      } finally {
        await s.stop();
      }
    }
  } finally {
    proxy.close();
  }
  return { wire, functions };
}

/** 4. The cost of each SQL step inside one transaction (rolled back). */
async function sqlSteps(ctx: Ctx) {
  log("SQL steps inside one transaction (rolled back)");
  const { db, users, sample } = ctx;
  const steps: { step: string; us: number }[] = [];
  const pending = await insertOrders(db, users, 3000);
  await db.begin(async (tx) => {
    const ids = pending.map((o) => o.gatewayOrderId);
    // Each step runs n times over distinct rows in one statement; one round trip in n.
    const time = async (step: string, n: number, sql: string) => {
      const t0 = performance.now();
      await tx.unsafe(`select count(*) from (${sql}) x`);
      steps.push({ step, us: round(((performance.now() - t0) * 1000) / n, 1) });
    };
    const list = (from: number, n: number) =>
      ids.slice(from, from + n).map((g) => `('${g}')`).join(",");
    await tx.unsafe("set local client_min_messages = warning");
    await tx.unsafe(`create temporary table t_ids (g text, n int) on commit drop`);
    await tx.unsafe(
      `insert into t_ids select g, row_number() over () from (values ${list(0, 3000)}) v(g)`,
    );
    await time(
      "settle.ingest_webhook, new event, pending order (whole effect)",
      1000,
      `select settle.ingest_webhook(row('razorpay', 'evt_prof_' || n, 'payment.captured', 'captured',
         g, 'pay_prof_' || n, o.amount, 'INR', now(), ${
        "'" + sample.body.replaceAll("'", "''") + "'"
      },
         null, null, null, null)::settle.incoming_event)
       from t_ids join public.orders o on o.gateway = 'razorpay' and o.gateway_order_id = g
       where n <= 1000`,
    );
    await time(
      "settle.ingest_webhook, duplicate event",
      1000,
      `select settle.ingest_webhook(row('razorpay', 'evt_prof_' || n, 'payment.captured', 'captured',
         g, 'pay_prof_' || n, 1, 'INR', now(), '{}', null, null, null,
         null)::settle.incoming_event) from t_ids where n <= 1000`,
    );
    await time(
      "settle.ingest_webhook, unknown order (store only)",
      1000,
      `select settle.ingest_webhook(row('razorpay', 'evt_prof_unknown_' || n, 'payment.captured',
         'captured', 'order_none_' || n, 'pay_x', 1, 'INR', now(), ${
        "'" + sample.body.replaceAll("'", "''") + "'"
      }, null, null, null, null)::settle.incoming_event)
       from t_ids where n <= 1000`,
    );
    await time(
      "settle.apply_payment alone (lock, paid, ledger, wallet)",
      1000,
      `select settle.apply_payment('razorpay', 'captured', g, 'pay_prof2_' || n, o.amount, 'INR')
       from t_ids join public.orders o on o.gateway = 'razorpay' and o.gateway_order_id = g
       where n > 1000 and n <= 2000`,
    );
    throw new RollbackSignal();
  }).catch((err) => {
    if (!(err instanceof RollbackSignal)) throw err;
  });
  for (const s of steps) log(`  ${s.step}: ${s.us} µs`);
  return steps;
}

// The functions the CPU profile reports by name.
const PROFILED =
  /^(ingestWebhook|parseWebhook|verifyWebhookSignature|hmacSha256Hex|normalizeWebhook|createOrder|verifyPayment|ensureGatewayOrder|asUser|findOwnOrder|applyPayment|authenticate|jwtVerify|readBodyText|readJsonObject|serveFunction|json|handler|fetch|parse|safeParse)$/;

/** 5. V8 CPU profiles of the server under load (c=16), one per kind of request. */
async function cpuProfiles(ctx: Ctx, seconds: number) {
  const out: Record<string, { requestsPerSec: number; cpu?: CpuShare; profile: ProfileSummary }> =
    {};
  const s = await startServer("stack", [ctx.dbUrl, ctx.gatewayEnv, "RATE_LIMITS=off"], {
    inspect: true,
  });
  const inspector = await InspectorSession.connect(s.inspectorUrl!);
  try {
    for (const kind of ["webhook", "create-order", "verify"] as Kind[]) {
      log(`V8 profile of the server: ${kind} at c=16`);
      const jobs = interleave(
        await jobsFor(ctx, kind, s.functionsUrl, Math.ceil(seconds * 3000) + 500),
        kind === "webhook" ? ctx.users.length : ctx.checkoutUsers.length,
      );
      await drive(s.functionsUrl, jobs.splice(0, 500), 16, 30);
      await inspector.start();
      const cpu = cpuWindow(seconds * 1000, s.pid);
      const r = await drive(s.functionsUrl, jobs, 16, seconds);
      const prof = await inspector.stop();
      if (r.errors) throw new Error(`${kind}: ${r.firstErrors.join("; ")}`);
      out[kind] = {
        requestsPerSec: round(r.requests / (r.elapsedMs / 1000), 1),
        cpu: await cpu,
        profile: summarise(prof, PROFILED),
      };
      const origins = out[kind].profile.byOrigin.slice(0, 6).map((o) => `${o.origin} ${o.pct}%`);
      log(`  ${out[kind].requestsPerSec} req/s; by origin: ${origins.join(", ")}`);
    }
  } finally {
    inspector.close();
    await s.stop();
  }
  return out;
}

export async function runProfile(opts: { adminUrl: string; seconds: number; out: string }) {
  log("microbenchmarks");
  const sample = await capturedEvent(LOCAL_RAZORPAY.webhookSecret, {
    gatewayOrderId: "order_Prof0000000001",
    amount: 50_000,
    currency: "INR",
  });
  const microbench = [...await jsMicrobench(sample), ...await stripeMicrobench()];
  for (const m of microbench) log(`  ${m.name}: ${m.usPerOp} µs`);

  // ---------------------------------------------------------------- 2. a database to profile
  const name = `${Deno.env.get("BENCH_DB_PREFIX") ?? "settle_bench"}_profile`;
  const dbUrl = await createDatabase(opts.adminUrl, name);
  const db = connect(dbUrl, 4);
  const result: Record<string, unknown> = { generatedAt: new Date().toISOString(), microbench };
  try {
    await migrate(db);
    await db.unsafe(`alter database ${name} set track_functions = 'all'`);
    const users = await createUsers(db, 256, "prof");
    // The Razorpay simulator in its own process, as in the benchmark.
    const sim = await startServer("sim");
    const ctx: Ctx = {
      db,
      dbUrl,
      users,
      checkoutUsers: users.slice(0, 16),
      sim,
      gatewayEnv: `RAZORPAY_API_URL=${sim.simulatorUrl}/razorpay`,
      sample,
    };
    const { wire, functions } = await onTheWire(ctx);
    result.wire = wire;
    result.sqlFunctions = functions;
    await db.unsafe(`alter database ${name} reset track_functions`);
    result.sqlSteps = await sqlSteps(ctx);
    result.cpuProfiles = await cpuProfiles(ctx, opts.seconds);
    await sim.stop();
  } finally {
    await db.end({ timeout: 5 });
    await dropDatabase(opts.adminUrl, name);
  }
  await Deno.writeTextFile(opts.out, JSON.stringify(result, null, 2) + "\n");
  log(`wrote ${opts.out}`);
  return result;
}

class RollbackSignal extends Error {}

if (import.meta.main) {
  const seconds = Number(Deno.args.find((a) => a.startsWith("--seconds="))?.split("=")[1] ?? 5);
  await runProfile({
    adminUrl: Deno.env.get("SUPABASE_DB_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres",
    seconds,
    out: new URL("results/profile.json", import.meta.url).pathname,
  });
}
