// `deno task dev`: database (SUPABASE_DB_URL or embedded PGlite), migrations, seed, stack.
import { connect, migrate } from "./db.ts";
import { FUNCTIONS, startStack } from "./stack.ts";
import { userToken } from "./keys.ts";

async function embeddedDatabase(): Promise<{ url: string; stop: () => Promise<void> }> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  await Deno.mkdir(".settle", { recursive: true });
  const db = await PGlite.create({ dataDir: ".settle/pglite" });
  const port = Number(Deno.env.get("EMBEDDED_DB_PORT") ?? 54322);
  // PGlite runs one transaction at a time; several client sockets share it.
  const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1", maxConnections: 8 });
  await server.start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}

const external = Deno.env.get("SUPABASE_DB_URL");
const embedded = external ? undefined : await embeddedDatabase();
const dbUrl = external ?? embedded!.url;

const sql = connect(dbUrl, 1);
const applied = await migrate(sql, { seed: true });
await sql.end();

const env: Record<string, string> = {};
for (const [k, v] of Object.entries(Deno.env.toObject())) {
  if (
    /^(RAZORPAY_|STRIPE_|ALLOWED_ORIGINS|LOG_REQUESTS|DB_POOL_MAX|WEBHOOK_|RECONCILE_|OUTBOX_)/
      .test(k)
  ) {
    env[k] = v;
  }
}
const stack = await startStack({
  dbUrl,
  devPages: true,
  // pglite-socket interleaves extended-protocol messages of concurrent sockets on its one
  // backend, so the embedded database gets exactly one pooled connection.
  env: { DB_POOL_MAX: embedded ? "1" : "10", ...env },
});
const alice = await userToken("00000000-0000-4000-8000-00000000a11c", {
  email: "alice@example.com",
  expiresInSeconds: 24 * 3600,
});

console.log(`settle is running
  database      ${embedded ? "embedded PGlite (.settle/pglite) at " : ""}${dbUrl}
  migrations    ${applied.length ? applied.join(", ") : "up to date"}
  functions     ${stack.functionsUrl}/{${Object.keys(FUNCTIONS).join(",")}}
  simulators    ${stack.simulatorUrl}/razorpay  (Razorpay API + /_sim/razorpay controls)
                ${stack.stripeUrl}  (Stripe API + /_sim/stripe controls)
  demo page     ${stack.url}/
  anon key      ${stack.anonKey}
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

// The dev server's stand-in for pg_cron's hourly gateway audit (migration 20261203000500):
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

const stop = async () => {
  clearInterval(auditTimer);
  clearInterval(dispatchTimer);
  clearInterval(reconcileTimer);
  await stack.close();
  await embedded?.stop();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
