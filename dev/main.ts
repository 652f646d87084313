// `deno task dev`: database (SUPABASE_DB_URL or an embedded PostgreSQL), migrations, seed, stack.
//   deno task dev          a fresh embedded database on every start (the simulators start empty
//                          too, so both forget the same things: README, Quick start)
//   deno task dev --keep   keep the embedded database's data from the last run
import { connect, migrate } from "./db.ts";
import { EMBEDDED_MAJOR, startEmbeddedPostgres } from "./embedded.ts";
import { devEnv, FUNCTIONS, startStack } from "./stack.ts";
import { userToken } from "./keys.ts";
import { startJob } from "./jobs.ts";

const DATA_DIR = ".settle/postgres";
const unknown = Deno.args.filter((a) => a !== "--keep");
if (unknown.length) {
  console.error(`unknown argument ${unknown[0]}; usage: deno task dev [--keep]`);
  Deno.exit(2);
}
const keep = Deno.args.includes("--keep");

const external = Deno.env.get("SUPABASE_DB_URL");
// The simulators keep their orders in memory: data from an earlier run would name gateway
// orders and payments they no longer know, so the database is reset with them by default.
const embedded = external ? undefined : await startEmbeddedPostgres({
  dataDir: DATA_DIR,
  port: Number(Deno.env.get("EMBEDDED_DB_PORT") ?? 54322),
  fresh: !keep,
});
const dbUrl = external ?? embedded!.url;

const sql = connect(dbUrl, 1);
const applied = await migrate(sql, { seed: true });
await sql.end();

const stack = await startStack({
  dbUrl,
  devPages: true,
  env: devEnv(Deno.env.toObject()),
});
const alice = await userToken("00000000-0000-4000-8000-00000000a11c", {
  email: "alice@example.com",
  expiresInSeconds: 24 * 3600,
  secret: stack.jwtSecret,
});

const where = embedded
  ? `embedded PostgreSQL ${EMBEDDED_MAJOR} (${DATA_DIR}, ${
    keep ? "kept from the last run" : "fresh: --keep keeps it"
  })`
  : "SUPABASE_DB_URL (not reset)";
console.log(`settle is running
  database      ${where}
                ${dbUrl}
  psql          psql '${dbUrl}'   (Operations SQL: payment_stats, ledger_audit, dead letters)
  migrations    ${applied.length ? applied.join(", ") : "up to date"}
  functions     ${stack.functionsUrl}/{${Object.keys(FUNCTIONS).join(",")}}
  simulators    ${stack.simulatorUrl}/razorpay  (Razorpay API + /_sim/razorpay controls)
                ${stack.stripeUrl}  (Stripe API, Connect + /_sim/stripe controls)
                ${stack.simulatorUrl}/paypal  (PayPal API + /_sim/paypal controls)
                ${stack.simulatorUrl}/razorpayx  (RazorpayX payouts + /_sim/razorpayx controls)
  demo page     ${stack.url}/
  anon key      ${stack.anonKey}
  service role  ${stack.serviceRoleKey}
  alice's JWT   ${alice}
`);

const n = (v: unknown) => typeof v === "number" ? v : 0;

// The dev server's stand-ins for pg_cron (supabase/migrations/*_schedule.sql), each never
// overlapping itself and quiet unless it did something. reconcile: anything changed, besides what
// it claimed or found unchanged. outbox-dispatch: something claimed. gateway-audit: a
// discrepancy found. escrow-settle: something settled, completed or refunded.
const timers = [
  startJob({
    fn: "reconcile",
    label: "reconcile",
    env: "RECONCILE_INTERVAL_SECONDS",
    defaultSeconds: 60,
    body: "{}",
    noteworthy: (summary) =>
      Object.values(summary).some((c) =>
        typeof c === "object" && Object.entries(c as Record<string, number>)
          .some(([k, n]) => k !== "claimed" && k !== "unchanged" && n > 0)
      ),
  }, stack),
  startJob({
    fn: "outbox-dispatch",
    label: "outbox",
    every: "dispatched every",
    env: "OUTBOX_DISPATCH_INTERVAL_SECONDS",
    defaultSeconds: 10,
    noteworthy: (summary) => n(summary.claimed) > 0,
  }, stack),
  startJob({
    fn: "gateway-audit",
    label: "gateway audit",
    env: "GATEWAY_AUDIT_INTERVAL_SECONDS",
    defaultSeconds: 3600,
    noteworthy: (summary) =>
      n((summary.discrepancies as Record<string, unknown> | undefined)?.found) > 0,
  }, stack),
  startJob({
    fn: "escrow-settle",
    label: "escrow settle",
    env: "ESCROW_SETTLE_INTERVAL_SECONDS",
    defaultSeconds: 60,
    noteworthy: (summary) =>
      n(summary.claimed) > 0 || n(summary.auto_completed) > 0 || n(summary.refunds_created) > 0,
  }, stack),
];

const stop = async () => {
  for (const t of timers) clearInterval(t);
  await stack.close();
  await embedded?.stop();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
