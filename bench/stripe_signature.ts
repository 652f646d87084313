// Micro-benchmark: verifying one Stripe webhook, before (the SDK's constructEventAsync with
// SubtleCrypto, as settle's Stripe gateway did) and after (shared/gateways/stripe/signature.ts on
// node:crypto, then JSON.parse: the same work). The event is the simulator's 2.3 KB
// payment_intent.succeeded, signed with the stack's secret. Interleaved rounds; medians of the
// process's CPU time per event (all its threads: SubtleCrypto works off the main thread), which
// a shared machine distorts less than wall time (also reported).
//
//   deno run -A bench/stripe_signature.ts [--events N] [--rounds N] [--out FILE]
import process from "node:process";
import Stripe from "stripe";
import { LOCAL_STRIPE } from "../dev/stack.ts";
import { checkStripeSignature } from "../shared/gateways/stripe/signature.ts";
import { stripeId, stripeSignature, succeededEvent, succeededTemplate } from "./lib/stripe.ts";
import { percentile, round } from "./lib/stats.ts";

const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

const arg = (name: string, d: number) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : d;
};
const N = arg("--events", 4000);
const ROUNDS = arg("--rounds", 5);
const outIdx = Deno.args.indexOf("--out");
const out = outIdx >= 0
  ? Deno.args[outIdx + 1]
  : new URL("results/stripe_signature.json", import.meta.url).pathname;

const template = await succeededTemplate();
const secret = LOCAL_STRIPE.webhookSecret;
const events = Array.from({ length: N }, () => {
  const e = succeededEvent(template, {
    gatewayOrderId: stripeId("pi_"),
    amount: 5000,
    currency: "USD",
  });
  return { body: e.body, header: stripeSignature(secret, e.body) };
});
const stripe = new Stripe("sk_test_bench");
const subtle = Stripe.createSubtleCryptoProvider();

/** CPU µs (user + system, every thread of the process) and wall µs per event of fn. */
async function measure(fn: () => Promise<void> | void): Promise<{ cpu: number; wall: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const wall = (performance.now() - t0) * 1000 / N;
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / N, wall };
}

async function sdk(inFlight: number): Promise<void> {
  for (let i = 0; i < N; i += inFlight) {
    await Promise.all(
      events.slice(i, i + inFlight).map((e) =>
        stripe.webhooks.constructEventAsync(e.body, e.header, secret, 300, subtle, Date.now())
      ),
    );
  }
}

function nodeCrypto(): void {
  for (const e of events) {
    if (checkStripeSignature(e.body, e.header, secret, Date.now()) !== "verified") {
      throw new Error("a bench event did not verify");
    }
    JSON.parse(e.body);
  }
}

const runs: Record<string, { cpu: number; wall: number }[]> = { sdk1: [], sdk16: [], node: [] };
await sdk(1); // warm-up
nodeCrypto();
for (let r = 0; r < ROUNDS; r++) {
  runs.sdk1.push(await measure(() => sdk(1)));
  runs.node.push(await measure(nodeCrypto));
  runs.sdk16.push(await measure(() => sdk(16)));
}
const med = (k: string, f: "cpu" | "wall") => round(median(runs[k].map((x) => x[f])), 1);
const load = (await Deno.readTextFile("/proc/loadavg").catch(() => "")).split(" ").slice(0, 3);
const result = {
  generatedAt: new Date().toISOString(),
  loadAverage: load.join(" "),
  bodyBytes: new TextEncoder().encode(events[0].body).length,
  events: N,
  rounds: ROUNDS,
  cpuMicrosecondsPerEvent: {
    "before: SDK constructEventAsync, SubtleCrypto, 1 in flight": med("sdk1", "cpu"),
    "before: SDK constructEventAsync, SubtleCrypto, 16 in flight": med("sdk16", "cpu"),
    "after: checkStripeSignature (node:crypto) + JSON.parse": med("node", "cpu"),
  },
  wallMicrosecondsPerEvent: {
    "before, 1 in flight": med("sdk1", "wall"),
    "before, 16 in flight": med("sdk16", "wall"),
    "after": med("node", "wall"),
  },
  runs,
};
console.log(
  JSON.stringify({ cpu: result.cpuMicrosecondsPerEvent, wall: result.wallMicrosecondsPerEvent }),
  `load ${result.loadAverage}`,
);
await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");
