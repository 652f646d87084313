// Closed-loop load: N senders, each on its own keep-alive connection, each sending its next
// request as soon as the previous answer is read, until the time is up or the work runs out.
import { HttpConnection, type Reply } from "./http.ts";

export interface Job {
  bytes: Uint8Array;
  /** Checks the answer; returns an error message when it is wrong. */
  check(reply: Reply): string | undefined;
}

export interface LoadResult {
  requests: number;
  errors: number;
  firstErrors: string[];
  latenciesMs: number[];
  elapsedMs: number;
  /** True when the prepared work ran out before the time did. */
  exhausted: boolean;
}

/** One connection per sender; with several servers (isolates), senders take turns. */
function openAll(url: string | string[], n: number): Promise<HttpConnection[]> {
  const urls = Array.isArray(url) ? url : [url];
  return Promise.all(
    Array.from({ length: n }, (_, i) => HttpConnection.open(urls[i % urls.length])),
  );
}

function recordError(r: LoadResult, msg: string) {
  r.errors++;
  if (r.firstErrors.length < 5) r.firstErrors.push(msg);
}

export async function runLoad(
  url: string | string[],
  opts: { concurrency: number; seconds: number; next: (sender: number) => Job | undefined },
): Promise<LoadResult> {
  const conns = await openAll(url, opts.concurrency);
  const r: LoadResult = {
    requests: 0,
    errors: 0,
    firstErrors: [],
    latenciesMs: [],
    elapsedMs: 0,
    exhausted: false,
  };
  const start = performance.now();
  const deadline = start + opts.seconds * 1000;
  let last = start;
  await Promise.all(conns.map(async (conn, sender) => {
    while (performance.now() < deadline) {
      const job = opts.next(sender);
      if (!job) {
        r.exhausted = true;
        break;
      }
      const t0 = performance.now();
      let reply: Reply;
      try {
        reply = await conn.request(job.bytes);
      } catch (err) {
        recordError(r, String(err));
        break;
      }
      const t1 = performance.now();
      last = Math.max(last, t1);
      r.requests++;
      r.latenciesMs.push(t1 - t0);
      const problem = job.check(reply);
      if (problem) recordError(r, problem);
    }
  }));
  r.elapsedMs = last - start;
  for (const c of conns) c.close();
  return r;
}

/**
 * Rounds of one request sent by every sender at the same instant (the same webhook from 16
 * deliveries at once): a round ends when all answers are in.
 */
export async function runRounds(
  url: string | string[],
  opts: {
    concurrency: number;
    seconds: number;
    nextRound: () => Job | undefined;
  },
): Promise<LoadResult & { rounds: number }> {
  const conns = await openAll(url, opts.concurrency);
  const r = {
    requests: 0,
    errors: 0,
    firstErrors: [] as string[],
    latenciesMs: [] as number[],
    elapsedMs: 0,
    exhausted: false,
    rounds: 0,
  };
  const start = performance.now();
  const deadline = start + opts.seconds * 1000;
  while (performance.now() < deadline) {
    const job = opts.nextRound();
    if (!job) {
      r.exhausted = true;
      break;
    }
    await Promise.all(conns.map(async (conn) => {
      const t0 = performance.now();
      try {
        const reply = await conn.request(job.bytes);
        r.latenciesMs.push(performance.now() - t0);
        r.requests++;
        const problem = job.check(reply);
        if (problem) recordError(r, problem);
      } catch (err) {
        recordError(r, String(err));
      }
    }));
    r.rounds++;
  }
  r.elapsedMs = performance.now() - start;
  for (const c of conns) c.close();
  return r;
}
