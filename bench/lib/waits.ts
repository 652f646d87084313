// What the database's client backends are doing during a phase, sampled from
// pg_stat_activity every 20 ms: running, waiting for the client (ClientRead: the connection
// pool's owner is the bottleneck), waiting on a lock (a hot row), or on WAL/IO (commit flush).
import type { Sql } from "../../dev/db.ts";

export type WaitShare = Record<string, number>;

export function waitWindow(admin: Sql, database: string, durationMs: number): Promise<WaitShare> {
  const counts = new Map<string, number>();
  let samples = 0;
  return new Promise((resolve) => {
    const start = performance.now();
    const tick = async () => {
      const elapsed = performance.now() - start;
      if (elapsed > durationMs * 0.9) {
        const out: WaitShare = {};
        // Average number of backends in each state (not a share of time).
        for (const [k, v] of [...counts.entries()].sort((a, b) => b[1] - a[1])) {
          out[k] = Math.round((v / Math.max(1, samples)) * 100) / 100;
        }
        resolve(out);
        return;
      }
      if (elapsed > durationMs * 0.1) {
        const rows = await admin`
          select case
                   when state = 'active' and wait_event is null then 'running'
                   when wait_event = 'ClientRead' then state || ': waiting for the client'
                   else coalesce(wait_event_type || ':' || wait_event, state)
                 end as what
          from pg_stat_activity
          where datname = ${database} and backend_type = 'client backend'
            and pid <> pg_backend_pid()`;
        samples++;
        for (const r of rows) counts.set(r.what, (counts.get(r.what) ?? 0) + 1);
      }
      setTimeout(tick, 20);
    };
    tick();
  });
}
