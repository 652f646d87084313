// What the simulator suites (tests/simulator_*_test.ts) share: a webhook receiver, a simulator
// served on a free port, JSON replies, and one test per fresh harness.
import {
  SimulatedConnectionReset,
  simulatedResetResponse,
} from "../../dev/simulator/common/mod.ts";

export interface HarnessOpts {
  /** The status the webhook receiver answers with (200 unless a test wants retries). */
  hookStatus?: number;
}

/** A local webhook endpoint that keeps every delivery, as `record` reads it, in order. */
export function hookReceiver<H>(record: (req: Request, body: string) => H, status = 200) {
  const hooks: H[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const body = await req.text();
    hooks.push(record(req, body));
    return new Response("ok", { status });
  });
  return { hooks, server, url: (path: string) => `http://127.0.0.1:${server.addr.port}${path}` };
}

/**
 * Serves a simulator's handler on a free port, counting requests in flight, with a simulated
 * connection reset answered the way the dev server answers it.
 */
export function serveSimulator(handle: (req: Request) => Promise<Response>) {
  let inflight = 0;
  const server = Deno.serve(
    {
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      onError: () => new Response(null, { status: 500 }),
    },
    async (req) => {
      inflight += 1;
      try {
        return await handle(req);
      } catch (e) {
        if (e instanceof SimulatedConnectionReset) return simulatedResetResponse();
        throw e;
      } finally {
        inflight -= 1;
      }
    },
  );
  return { server, port: server.addr.port, inflight: () => inflight };
}

// deno-lint-ignore no-explicit-any
export type Json = Record<string, any>;

/** Status, parsed JSON body (null when empty) and headers of a reply. */
export async function jsonReply(
  res: Response,
): Promise<{ status: number; json: Json; headers: Headers }> {
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
}

/** Lets the simulator's deliveries finish, then stops the servers. */
export async function stopHarness(sim: { idle(): Promise<void> }, ...servers: Deno.HttpServer[]) {
  await sim.idle();
  for (const s of servers) await s.shutdown();
}

/** `withHarness(name, fn, opts)`: a Deno test that runs fn on a fresh harness and closes it. */
export function harnessTests<H extends { close(): Promise<void> }>(
  start: (opts: HarnessOpts) => H,
) {
  return (name: string, fn: (h: H) => Promise<void>, opts: HarnessOpts = {}) => {
    Deno.test(name, async () => {
      const h = start(opts);
      try {
        await fn(h);
      } finally {
        await h.close();
      }
    });
  };
}
