// The machine description and the markdown tables printed at the end of a run.
import type { MemoryChunk } from "./memory.ts";
import type { CpuShare } from "./cpu.ts";
import type { PgbenchResult } from "./pgbench.ts";
import type { Latency } from "./stats.ts";

export interface Row {
  id: string;
  benchmark: string;
  /** razorpay or stripe; absent for rows that involve no gateway. */
  gateway?: string;
  concurrency: number;
  requests: number;
  seconds: number;
  requestsPerSec: number;
  /** Distinct events (or orders, or checkouts) completed per second. */
  eventsPerSec: number;
  latencyMs: Latency;
  /** The pgbench run this row is compared with, by label. */
  baseline?: string;
  baselineTps?: number;
  ratio?: number;
  baselineP99Ms?: number;
  correctness: "ok" | string[];
  /** default, or the tuned server configuration. */
  config: string;
  cpu?: CpuShare;
  /** Average number of the database's client backends in each state during the phase. */
  backends?: Record<string, number>;
  note?: string;
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  kernel: string;
  postgres: string;
  postgresSettings: Record<string, string>;
  deno: string;
  v8: string;
}

async function read(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

export async function machine(pg: { version: string; settings: Record<string, string> }) {
  const meminfo = await read("/proc/meminfo");
  const memKb = Number(meminfo.match(/MemTotal:\s+(\d+)/)?.[1] ?? 0);
  const cpuinfo = await read("/proc/cpuinfo");
  const osRelease = await read("/etc/os-release");
  return {
    cpus: navigator.hardwareConcurrency,
    cpuModel: cpuinfo.match(/model name\s*:\s*(.+)/)?.[1]?.trim() ?? "unknown",
    memoryGiB: Math.round(memKb / 1024 / 1024 * 10) / 10,
    os: osRelease.match(/PRETTY_NAME="?([^"\n]+)/)?.[1] ?? Deno.build.os,
    kernel: Deno.osRelease(),
    postgres: pg.version,
    postgresSettings: pg.settings,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
  } satisfies Machine;
}

const f = (v: number | undefined, d = 1) =>
  v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(d);

export function mainTable(rows: Row[]): string {
  const out = [
    "| benchmark | gateway | config | c | req/s | events/s | p50 ms | p95 ms | p99 ms | pgbench (same c) | tps | × pgbench | pgbench p99 ms | correct |",
    "| --- | --- | --- | --: | --: | --: | --: | --: | --: | --- | --: | --: | --: | --- |",
  ];
  for (const r of rows) {
    out.push(
      `| ${r.benchmark} | ${r.gateway ?? "–"} | ${r.config} | ${r.concurrency} | ${
        f(r.requestsPerSec, 0)
      } | ${f(r.eventsPerSec, 0)} | ${f(r.latencyMs.p50, 2)} | ${f(r.latencyMs.p95, 2)} | ${
        f(r.latencyMs.p99, 2)
      } | ${r.baseline ?? "–"} | ${f(r.baselineTps, 0)} | ${f(r.ratio, 2)} | ${
        f(r.baselineP99Ms, 2)
      } | ${r.correctness === "ok" ? "ok" : "**FAILED**"} |`,
    );
  }
  return out.join("\n");
}

export function pgbenchTable(runs: PgbenchResult[]): string {
  const out = [
    "| pgbench run | scale | c | j | mode | tps | p50 ms | p95 ms | p99 ms |",
    "| --- | --: | --: | --: | --- | --: | --: | --: | --: |",
  ];
  for (const r of runs) {
    out.push(
      `| ${r.label} | ${r.scale} | ${r.clients} | ${r.threads} | ${r.mode} | ${f(r.tps, 0)} | ${
        f(r.latencyMs.p50, 2)
      } | ${f(r.latencyMs.p95, 2)} | ${f(r.latencyMs.p99, 2)} |`,
    );
  }
  return out.join("\n");
}

export function cpuTable(rows: Row[]): string {
  const out = [
    "| benchmark | gateway | config | c | server | gateway sim | load generator | postgres | pgbench client | other | idle |",
    "| --- | --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |",
  ];
  for (const r of rows) {
    if (!r.cpu) continue;
    const c = r.cpu;
    out.push(
      `| ${r.benchmark} | ${r.gateway ?? "–"} | ${r.config} | ${r.concurrency} | ${
        f(c.server, 2)
      } | ${f(c.gateway, 2)} | ${f(c.loadgen, 2)} | ${f(c.postgres, 2)} | ${f(c.pgbench, 2)} | ${
        f(c.other, 2)
      } | ${f(c.idle, 2)} |`,
    );
  }
  return out.join("\n");
}

export function backendsTable(rows: Row[]): string {
  const states = [
    "running",
    "idle: waiting for the client",
    "idle in transaction: waiting for the client",
  ];
  const out = [
    "| benchmark | gateway | config | c | running | idle, waiting for the client | in transaction, waiting for the client | waiting on other things |",
    "| --- | --- | --- | --: | --: | --: | --: | --- |",
  ];
  for (const r of rows) {
    if (!r.backends) continue;
    const b = r.backends;
    const other = Object.entries(b).filter(([k]) => !states.includes(k))
      .map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ") || "–";
    out.push(
      `| ${r.benchmark} | ${r.gateway ?? "–"} | ${r.config} | ${r.concurrency} | ${
        f(b[states[0]] ?? 0, 2)
      } | ${f(b[states[1]] ?? 0, 2)} | ${f(b[states[2]] ?? 0, 2)} | ${other} |`,
    );
  }
  return out.join("\n");
}

/** settle's Stripe ingest, the peer's and pgbench's, side by side per concurrency. */
export function peerTable(rows: Row[], runs: PgbenchResult[]): string {
  const peer = rows.filter((r) => r.id === "peer_webhook_unique");
  if (!peer.length) return "";
  const out = [
    "| c | settle stripe (default) events/s | settle stripe (tuned) events/s | stripe-sync-engine events/s | settle ÷ peer | pgbench tpcb s10 tps | settle ÷ pgbench | peer ÷ pgbench | settle p99 ms | peer p99 ms |",
    "| --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
  ];
  for (const p of peer) {
    const mine = (config: string) =>
      rows.find((r) =>
        r.id === "webhook_unique" && r.gateway === "stripe" && r.config === config &&
        r.concurrency === p.concurrency
      );
    const d = mine("default");
    const t = mine("tuned");
    const base = runs.find((b) => b.label === `tpcb s10 c${p.concurrency}`);
    out.push(
      `| ${p.concurrency} | ${f(d?.eventsPerSec, 0)} | ${f(t?.eventsPerSec, 0)} | ${
        f(p.eventsPerSec, 0)
      } | ${d ? f(d.eventsPerSec / p.eventsPerSec, 2) : "–"} | ${f(base?.tps, 0)} | ${
        f(d?.ratio, 2)
      } | ${f(p.ratio, 2)} | ${f(d?.latencyMs.p99, 1)} | ${f(p.latencyMs.p99, 1)} |`,
    );
  }
  return out.join("\n");
}

export function growthTable(g?: {
  orders: number;
  accounts: number;
  preloadSeconds: number;
  auditSeconds: number;
  auditRows: number;
  ingest: { gateway: string; empty: number; full: number; ratio: number }[];
  stats: { who: string; rows: number; medianMs: number }[];
}): string {
  if (!g) return "";
  return [
    `Growth: ${g.orders} paid orders over ${g.accounts} accounts preloaded in ${g.preloadSeconds} s; ` +
    `settle.ledger_audit() took ${g.auditSeconds} s and returned ${g.auditRows} rows.`,
    "",
    "| gateway | ingest c16, before the preload (events/s) | after (events/s) | after ÷ before |",
    "| --- | --: | --: | --: |",
    ...g.ingest.map((i) =>
      `| ${i.gateway} | ${f(i.empty, 0)} | ${f(i.full, 0)} | ${f(i.ratio, 2)} |`
    ),
    "",
    "| 30-day payment_stats query | rows | median ms |",
    "| --- | --: | --: |",
    ...g.stats.map((s) => `| ${s.who} | ${s.rows} | ${f(s.medianMs, 1)} |`),
  ].join("\n");
}

export function memoryTable(m?: { events: number; chunks: MemoryChunk[] }): string {
  if (!m) return "";
  const live = m.chunks.some((c) => c.liveHeapMb !== undefined);
  const cols = [
    "events sent",
    "mean RSS MB",
    "max RSS MB",
    "V8 heap MB",
    "young gen MB",
    "old gen MB",
    "heap used MB",
    ...(live ? ["live after GC MB"] : []),
    "external MB",
    "events/s",
    "server CPU µs/event",
  ];
  return [
    `Function server memory over ${m.events} Razorpay events at c16 (means during each chunk):`,
    "",
    `| ${cols.join(" | ")} |`,
    `| ${cols.map(() => "--:").join(" | ")} |`,
    ...m.chunks.map((c) =>
      `| ${
        [
          c.events,
          f(c.meanRssMb, 1),
          f(c.maxRssMb, 1),
          f(c.meanHeapTotalMb, 1),
          f(c.meanNewSpaceMb, 1),
          f(c.meanOldSpaceMb, 1),
          f(c.meanHeapUsedMb, 1),
          ...(live ? [f(c.liveHeapMb, 1)] : []),
          f(c.meanExternalMb, 1),
          f(c.eventsPerSec, 0),
          f(c.serverCpuUsPerEvent, 0),
        ].join(" | ")
      } |`
    ),
  ].join("\n");
}
