// `deno task dev`: database (SUPABASE_DB_URL or an embedded PostgreSQL), migrations, seed, stack.
//   deno task dev          a fresh embedded database on every start (the simulators start empty
//                          too, so both forget the same things: README, Quick start)
//   deno task dev --keep   keep the embedded database's data from the last run
import { connect, migrate } from "./db.ts";
import { EMBEDDED_MAJOR, startEmbeddedPostgres } from "./embedded.ts";
import { devEnv, FUNCTIONS, startStack } from "./stack.ts";
import { userToken } from "./keys.ts";

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

// The dev server's stand-in for pg_cron (supabase/migrations/*_schedule.sql): POST reconcile
// with the service role key every RECONCILE_INTERVAL_SECONDS (default 60, 0 turns it off). A
// run still going when the next is due is not overlapped.
const reconcileEvery = Number(Deno.env.get("RECONCILE_INTERVAL_SECONDS")?.trim() || "60");
if (!Number.isInteger(reconcileEvery) || reconcileEvery < 0) {
  console.error("RECONCILE_INTERVAL_SECONDS must be a whole number of seconds (0 turns it off)");
  Deno.exit(1);
}
let reconciling = false;
const reconcileTimer = reconcileEvery === 0 ? undefined : setInterval(async () => {
  if (reconciling) return;
  reconciling = true;
  try {
    const res = await fetch(`${stack.functionsUrl}/reconcile`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${stack.serviceRoleKey}`,
        "content-type": "application/json",
      },
      body: "{}",
    });
    const summary = await res.json();
    const changed = res.status !== 200 ||
      Object.values(summary).some((c) =>
        typeof c === "object" && Object.entries(c as Record<string, number>)
          .some(([k, n]) => k !== "claimed" && k !== "unchanged" && n > 0)
      );
    if (changed) console.log(JSON.stringify({ job: "reconcile", status: res.status, ...summary }));
  } catch (err) {
    console.error(JSON.stringify({ job: "reconcile", error: String(err) }));
  } finally {
    reconciling = false;
  }
}, reconcileEvery * 1000);
console.log(
  reconcileTimer
    ? `  reconcile     every ${reconcileEvery} s (RECONCILE_INTERVAL_SECONDS; 0 turns it off)\n`
    : "  reconcile     timer off (RECONCILE_INTERVAL_SECONDS=0)\n",
);

// The dev server's stand-in for pg_cron, for the outbox: POST outbox-dispatch every
// OUTBOX_DISPATCH_INTERVAL_SECONDS (default 10, 0 turns it off), never overlapping itself. Quiet
// unless something was claimed.
const dispatchEvery = Number(Deno.env.get("OUTBOX_DISPATCH_INTERVAL_SECONDS")?.trim() || "10");
if (!Number.isInteger(dispatchEvery) || dispatchEvery < 0) {
  console.error(
    "OUTBOX_DISPATCH_INTERVAL_SECONDS must be a whole number of seconds (0 turns it off)",
  );
  Deno.exit(1);
}
let dispatching = false;
const dispatchTimer = dispatchEvery === 0 ? undefined : setInterval(async () => {
  if (dispatching) return;
  dispatching = true;
  try {
    const res = await fetch(`${stack.functionsUrl}/outbox-dispatch`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    const summary = await res.json();
    if (res.status !== 200 || summary.claimed > 0) {
      console.log(JSON.stringify({ job: "outbox-dispatch", status: res.status, ...summary }));
    }
  } catch (err) {
    console.error(JSON.stringify({ job: "outbox-dispatch", error: String(err) }));
  } finally {
    dispatching = false;
  }
}, dispatchEvery * 1000);
console.log(
  dispatchTimer
    ? `  outbox        dispatched every ${dispatchEvery} s (OUTBOX_DISPATCH_INTERVAL_SECONDS; 0 turns it off)\n`
    : "  outbox        timer off (OUTBOX_DISPATCH_INTERVAL_SECONDS=0)\n",
);

// The dev server's stand-in for pg_cron's hourly gateway audit (20261201002400_schedule.sql):
// POST gateway-audit every GATEWAY_AUDIT_INTERVAL_SECONDS (default 3600, 0 turns it off).
const auditEvery = Number(Deno.env.get("GATEWAY_AUDIT_INTERVAL_SECONDS")?.trim() || "3600");
if (!Number.isInteger(auditEvery) || auditEvery < 0) {
  console.error(
    "GATEWAY_AUDIT_INTERVAL_SECONDS must be a whole number of seconds (0 turns it off)",
  );
  Deno.exit(1);
}
let auditing = false;
const auditTimer = auditEvery === 0 ? undefined : setInterval(async () => {
  if (auditing) return;
  auditing = true;
  try {
    const res = await fetch(`${stack.functionsUrl}/gateway-audit`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    const summary = await res.json();
    if (res.status !== 200 || summary.discrepancies?.found > 0) {
      console.log(JSON.stringify({ job: "gateway-audit", status: res.status, ...summary }));
    }
  } catch (err) {
    console.error(JSON.stringify({ job: "gateway-audit", error: String(err) }));
  } finally {
    auditing = false;
  }
}, auditEvery * 1000);
console.log(
  auditTimer
    ? `  gateway audit every ${auditEvery} s (GATEWAY_AUDIT_INTERVAL_SECONDS; 0 turns it off)\n`
    : "  gateway audit timer off (GATEWAY_AUDIT_INTERVAL_SECONDS=0)\n",
);

// The dev server's stand-in for pg_cron's escrow settlement (20261201002400_schedule.sql): POST
// escrow-settle every ESCROW_SETTLE_INTERVAL_SECONDS (default 60, 0 turns it off), never
// overlapping itself. Quiet unless something was settled, completed or refunded.
const escrowEvery = Number(Deno.env.get("ESCROW_SETTLE_INTERVAL_SECONDS")?.trim() || "60");
if (!Number.isInteger(escrowEvery) || escrowEvery < 0) {
  console.error(
    "ESCROW_SETTLE_INTERVAL_SECONDS must be a whole number of seconds (0 turns it off)",
  );
  Deno.exit(1);
}
let settlingEscrow = false;
const escrowTimer = escrowEvery === 0 ? undefined : setInterval(async () => {
  if (settlingEscrow) return;
  settlingEscrow = true;
  try {
    const res = await fetch(`${stack.functionsUrl}/escrow-settle`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    const summary = await res.json();
    if (
      res.status !== 200 || summary.claimed > 0 || summary.auto_completed > 0 ||
      summary.refunds_created > 0
    ) {
      console.log(JSON.stringify({ job: "escrow-settle", status: res.status, ...summary }));
    }
  } catch (err) {
    console.error(JSON.stringify({ job: "escrow-settle", error: String(err) }));
  } finally {
    settlingEscrow = false;
  }
}, escrowEvery * 1000);
console.log(
  escrowTimer
    ? `  escrow settle every ${escrowEvery} s (ESCROW_SETTLE_INTERVAL_SECONDS; 0 turns it off)\n`
    : "  escrow settle timer off (ESCROW_SETTLE_INTERVAL_SECONDS=0)\n",
);

const stop = async () => {
  clearInterval(escrowTimer);
  clearInterval(auditTimer);
  clearInterval(dispatchTimer);
  clearInterval(reconcileTimer);
  await stack.close();
  await embedded?.stop();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
