// The peer in the benchmark: @supabase/stripe-sync-engine's processWebhook behind a plain Node
// HTTP server, in a process of its own, on a database of its own. bench/lib/peer.ts installs the
// package (pinned in bench/peer/package.json) into .settle/bench-peer/ and starts this file as
//
//   node bench/peer/server.mjs <install dir> <database url> <webhook secret>
//
// It applies the package's migrations with the package's own runner, then answers every POST
// with processWebhook(raw body, Stripe-Signature): 200 {"received":true} once the event is
// stored, 400 when it is refused. It prints one JSON line when ready ({functionsUrl, pid}) and
// exits when its standard input closes, as bench/server.ts does.
import { Buffer } from "node:buffer";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import process from "node:process";

const [dir, databaseUrl, webhookSecret] = process.argv.slice(2);
if (!dir || !databaseUrl || !webhookSecret) {
  console.error("usage: node bench/peer/server.mjs <install dir> <database url> <webhook secret>");
  process.exit(2);
}

// The package's CommonJS build, resolved from the install directory. Its ESM build's
// runMigrations resolves the migrations folder with __dirname, which ES modules do not have:
// it logs the ReferenceError and returns as if it had migrated. The CommonJS build is the same
// code with __dirname defined.
const require = createRequire(join(dir, "package.json"));
const { StripeSync, runMigrations } = require("@supabase/stripe-sync-engine");

const errors = [];
const logger = {
  info() {},
  warn() {},
  debug() {},
  error(...args) {
    errors.push(args.map(String).join(" "));
  },
};
await runMigrations({ databaseUrl, schema: "stripe", logger });
if (errors.length) {
  console.error(`stripe-sync-engine migrations failed: ${errors.join("; ")}`);
  process.exit(1);
}

// As shipped: the default pool (10), no backfill of related objects, no re-fetch from Stripe
// (a succeeded intent is final, so the webhook's copy is stored).
const sync = new StripeSync({
  poolConfig: { connectionString: databaseUrl },
  stripeSecretKey: "sk_test_bench_never_called",
  stripeWebhookSecret: webhookSecret,
});

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const reply = (status, body) => {
      const bytes = Buffer.from(JSON.stringify(body));
      res.writeHead(status, { "content-type": "application/json", "content-length": bytes.length });
      res.end(bytes);
    };
    if (req.method !== "POST") return reply(405, { error: "POST only" });
    try {
      await sync.processWebhook(Buffer.concat(chunks), req.headers["stripe-signature"]);
      reply(200, { received: true });
    } catch (err) {
      reply(400, { error: String(err?.message ?? err).slice(0, 300) });
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  process.stdout.write(
    JSON.stringify({ functionsUrl: `http://127.0.0.1:${port}`, pid: process.pid }) + "\n",
  );
});

process.stdin.resume();
process.stdin.on("end", async () => {
  server.close();
  await sync.close();
  process.exit(0);
});
