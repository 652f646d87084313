// The server under test, in its own process so the load generator's CPU does not run on the
// server's event loop. Prints one JSON line with its URLs, then serves until its standard input
// closes (the harness exiting closes it too).
//
//   deno run -A bench/server.ts stack <database url> [KEY=VALUE env overrides ...]
//     the local stack: create-order, verify, webhook and the Razorpay simulator; memoryUrl
//     answers Deno.memoryUsage() of the server's process and the size of each V8 heap space
//   deno run -A bench/server.ts nodb
//     the webhook function with its SQL call stubbed out: HTTP + HMAC + JSON + zod, no database
//   deno run -A bench/server.ts echo
//     a bare Deno.serve reading the body and answering {"received":true}: the HTTP floor
//   deno run -A bench/server.ts sim
//     the gateway simulators alone, so that the gateway's share of a checkout runs outside the
//     function server's event loop (as the real gateways' would): Razorpay at <url>/razorpay,
//     Stripe at the root of a port of its own (the SDK always calls /v1/...). The Stripe port
//     also answers POST /bench/stripe/intents {items: [{amount, currency}], confirm} and
//     POST /bench/stripe/confirm {ids}: intents created and paid in bulk for the verify phase.
//     The Razorpay URL answers POST /bench/razorpay/orders {items: [{amount, currency}]} and
//     POST /bench/razorpay/pay {ids}: orders created, and paid (captured) with Checkout's
//     answer returned, in bulk: verify reads the payment from Razorpay.
import v8 from "node:v8";
import { LOCAL_RAZORPAY, LOCAL_STRIPE, startStack } from "../dev/stack.ts";
import { StripeSimulator } from "../dev/simulator/stripe/mod.ts";
import { confirmIntent, createIntent } from "./lib/stripe.ts";
import {
  RazorpaySimulator,
  SimulatedConnectionReset,
  simulatedResetResponse,
} from "../dev/simulator/razorpay/mod.ts";
import { createApp } from "../shared/app.ts";
import { loadConfig } from "../shared/config.ts";
import type { Sql } from "../shared/db.ts";
import { json } from "../shared/http.ts";
import { handler as webhook } from "../supabase/functions/webhook/handler.ts";

const [mode, ...rest] = Deno.args;

async function serve(fn: (req: Request) => Response | Promise<Response>) {
  const addr = await new Promise<Deno.NetAddr>((resolve) => {
    Deno.serve({
      port: 0,
      hostname: "127.0.0.1",
      onListen: (a) => resolve(a as Deno.NetAddr),
    }, fn);
  });
  return `http://127.0.0.1:${addr.port}`;
}

/** Bulk orders and Checkout payments at the Razorpay simulator, for the verify phase. */
async function benchRazorpay(sim: RazorpaySimulator, path: string, body: Record<string, unknown>) {
  const call = async (method: string, p: string, b: unknown) => {
    const res = await sim.fetch(
      new Request(`http://sim${p}`, {
        method,
        headers: {
          "content-type": "application/json",
          authorization: `Basic ${btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`)}`,
        },
        body: JSON.stringify(b),
      }),
    );
    const out = await res.json();
    if (res.status !== 200) throw new Error(`${p}: ${res.status} ${JSON.stringify(out)}`);
    return out;
  };
  if (path === "/bench/razorpay/orders") {
    const ids: string[] = [];
    for (const item of body.items as { amount: number; currency: string }[]) {
      ids.push((await call("POST", "/v1/orders", item)).id);
    }
    return { ids };
  }
  const proofs: Record<string, unknown>[] = [];
  for (const id of body.ids as string[]) {
    proofs.push(
      await call("POST", `/_sim/razorpay/orders/${id}/pay`, {
        outcome: "success",
        webhooks: { deliver: false },
      }),
    );
  }
  return { proofs };
}

let close = () => Promise.resolve();
let info: Record<string, unknown>;

if (mode === "stack") {
  const [dbUrl, ...pairs] = rest;
  if (!dbUrl) throw new Error("usage: bench/server.ts stack <database url> [KEY=VALUE ...]");
  const env = Object.fromEntries(
    pairs.map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]),
  );
  const stack = await startStack({
    dbUrl,
    port: 0,
    simulatorPort: 0,
    stripePort: 0,
    quiet: true,
    env,
  });
  // The harness's memory phase reads the isolate's heap here (its own port, not the router);
  // ?gc=1 runs a full collection first when the server was started with --expose-gc, so that
  // heapUsed is what is still reachable.
  const gc = (globalThis as { gc?: () => void }).gc;
  const memoryUrl = await serve((req) => {
    if (gc && new URL(req.url).searchParams.has("gc")) gc();
    const spaces = Object.fromEntries(
      v8.getHeapSpaceStatistics().map((sp) => [sp.space_name, sp.space_size]),
    );
    return json(200, { ...Deno.memoryUsage(), spaces });
  });
  info = {
    functionsUrl: stack.functionsUrl,
    simulatorUrl: stack.simulatorUrl,
    memoryUrl,
    poolMax: stack.config.dbPoolMax,
  };
  close = () => stack.close();
} else if (mode === "nodb") {
  const config = loadConfig((k) =>
    ({
      SUPABASE_DB_URL: "postgres://unused@127.0.0.1:1/unused",
      SUPABASE_JWT_SECRET: "unused-unused-unused-unused-unused-unused",
      RAZORPAY_KEY_ID: LOCAL_RAZORPAY.keyId,
      RAZORPAY_KEY_SECRET: LOCAL_RAZORPAY.keySecret,
      RAZORPAY_WEBHOOK_SECRET: LOCAL_RAZORPAY.webhookSecret,
      STRIPE_SECRET_KEY: LOCAL_STRIPE.secretKey,
      STRIPE_PUBLISHABLE_KEY: LOCAL_STRIPE.publishableKey,
      STRIPE_WEBHOOK_SECRET: LOCAL_STRIPE.webhookSecret,
      STRIPE_API_URL: "http://127.0.0.1:1",
      LOG_REQUESTS: "false",
    } as Record<string, string>)[k]
  );
  // Answers the one query the webhook path makes, as if the event had been applied: as a
  // tagged template or through unsafe (storeEvent sends its statement of literals that way).
  const answer = () =>
    Promise.resolve([{
      result: { outcome: "applied", order_id: null, duplicate: false },
    }]);
  const stub = Object.assign(answer, { unsafe: answer }) as unknown as Sql;
  const h = webhook(createApp(config, { sql: stub }));
  const url = await serve(h);
  info = { functionsUrl: `${url}/functions/v1` };
} else if (mode === "echo") {
  const url = await serve(async (req) => {
    await req.text();
    return json(200, { received: true });
  });
  info = { functionsUrl: `${url}/functions/v1` };
} else if (mode === "sim") {
  const razorpay = new RazorpaySimulator({ ...LOCAL_RAZORPAY });
  const url = await serve(async (req) => {
    const u = new URL(req.url);
    if (req.method === "POST" && u.pathname.startsWith("/bench/razorpay/")) {
      return json(200, await benchRazorpay(razorpay, u.pathname, await req.json()));
    }
    if (!u.pathname.startsWith("/razorpay/")) {
      return json(404, { error: "simulator: /razorpay/..." });
    }
    u.pathname = u.pathname.slice("/razorpay".length);
    try {
      return await razorpay.fetch(new Request(u, req));
    } catch (err) {
      if (err instanceof SimulatedConnectionReset) return simulatedResetResponse();
      throw err;
    }
  });
  const stripe = new StripeSimulator({ ...LOCAL_STRIPE });
  const stripeUrl = await serve(async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "POST" && path === "/bench/stripe/intents") {
      const { items, confirm } = await req.json() as {
        items: { amount: number; currency: string }[];
        confirm: boolean;
      };
      const ids: string[] = [];
      for (const item of items) {
        const id = await createIntent(stripe, item);
        if (confirm) await confirmIntent(stripe, id);
        ids.push(id);
      }
      return json(200, { ids });
    }
    if (req.method === "POST" && path === "/bench/stripe/confirm") {
      const { ids } = await req.json() as { ids: string[] };
      for (const id of ids) await confirmIntent(stripe, id);
      return json(200, { confirmed: ids.length });
    }
    try {
      return await stripe.fetch(req);
    } catch (err) {
      if (err instanceof SimulatedConnectionReset) return simulatedResetResponse();
      throw err;
    }
  });
  info = { simulatorUrl: url, stripeUrl, functionsUrl: "" };
  close = async () => {
    await razorpay.idle();
    await stripe.idle();
  };
} else {
  throw new Error("usage: bench/server.ts stack|nodb|echo|sim ...");
}

console.log(JSON.stringify({ ...info, pid: Deno.pid, mode }));
const buf = new Uint8Array(64);
while ((await Deno.stdin.read(buf)) !== null) { /* keep serving */ }
await close();
Deno.exit(0);
