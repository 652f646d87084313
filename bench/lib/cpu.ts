// Where the machine's CPU went during a phase, from /proc: the function server, the load
// generator, Postgres backends, the pgbench client, and everything else (Linux only).

const TICK_MS = 10; // USER_HZ is 100 on Linux.

export interface CpuSample {
  at: number;
  total: number;
  idle: number;
  byGroup: Record<string, number>;
}

export interface CpuShare {
  /** Cores busy, on average, per group (2.0 = both cores of a 2-core machine). */
  server: number;
  /** The gateway simulator's process (the stand-in for Razorpay). */
  gateway: number;
  loadgen: number;
  postgres: number;
  pgbench: number;
  other: number;
  idle: number;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

async function procTicks(pid: string): Promise<{ comm: string; ticks: number } | undefined> {
  const stat = await readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const close = stat.lastIndexOf(")");
  const comm = stat.slice(stat.indexOf("(") + 1, close);
  const f = stat.slice(close + 2).split(" ");
  // After ")": state(0) ppid(1) ... utime(11) stime(12)
  return { comm, ticks: Number(f[11]) + Number(f[12]) };
}

/** CPU time (user + system, ms) one process has used so far. */
export async function processCpuMs(pid: number): Promise<number> {
  const t = await procTicks(String(pid));
  if (!t) throw new Error(`no process ${pid}`);
  return t.ticks * TICK_MS;
}

let gatewayPid: number | undefined;

/** The run's databases (their names' prefix): other databases' backends count as "other". */
let databasePrefix: string | undefined;
export function setDatabasePrefix(prefix: string | undefined) {
  databasePrefix = prefix;
}

// "postgres: 15/main: postgres settle_bench 127.0.0.1(43638) idle", "... autovacuum worker db".
const BACKEND =
  /^postgres: (?:[^:]+: )?(?:autovacuum worker (\S+)|\S+ (\S+) (?:\[local\]|\S+\(\d+\)))/;

/**
 * Whether a postgres process works for this run: a backend (or autovacuum worker) of one of
 * its databases, or a server-wide process (WAL writer, checkpointer...). A backend of another
 * database is someone else's load on the shared server.
 */
async function ours(pid: string): Promise<boolean> {
  if (!databasePrefix) return true;
  const cmd = (await readText(`/proc/${pid}/cmdline`))?.replaceAll("\0", " ").trim() ?? "";
  const m = cmd.match(BACKEND);
  return !m || (m[1] ?? m[2]).startsWith(databasePrefix);
}

/** The simulator's process, counted apart from the server and from "other". */
export function setGatewayPid(pid: number | undefined) {
  gatewayPid = pid;
}

export async function cpuSample(
  serverPid?: number | number[],
): Promise<CpuSample | undefined> {
  const servers = new Set([serverPid ?? []].flat());
  const stat = await readText("/proc/stat");
  if (!stat) return undefined;
  const cpu = stat.split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = cpu[3] + cpu[4];
  const byGroup: Record<string, number> = {
    server: 0,
    gateway: 0,
    loadgen: 0,
    postgres: 0,
    pgbench: 0,
  };
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const p = await procTicks(e.name);
    if (!p) continue;
    const pid = Number(e.name);
    if (servers.has(pid)) byGroup.server += p.ticks;
    else if (pid === gatewayPid) byGroup.gateway += p.ticks;
    else if (pid === Deno.pid) byGroup.loadgen += p.ticks;
    else if (p.comm === "postgres" && await ours(e.name)) byGroup.postgres += p.ticks;
    else if (p.comm === "pgbench") byGroup.pgbench += p.ticks;
  }
  return { at: performance.now(), total, idle, byGroup };
}

export function cpuShare(a?: CpuSample, b?: CpuSample): CpuShare | undefined {
  if (!a || !b) return undefined;
  const ms = b.at - a.at;
  const cores = (ticks: number) => Math.round((ticks * TICK_MS / ms) * 100) / 100;
  const g = (k: string) => Math.max(0, (b.byGroup[k] ?? 0) - (a.byGroup[k] ?? 0));
  const busy = (b.total - b.idle) - (a.total - a.idle);
  const known = g("server") + g("gateway") + g("loadgen") + g("postgres") + g("pgbench");
  return {
    server: cores(g("server")),
    gateway: cores(g("gateway")),
    loadgen: cores(g("loadgen")),
    postgres: cores(g("postgres")),
    pgbench: cores(g("pgbench")),
    other: cores(Math.max(0, busy - known)),
    idle: cores(b.idle - a.idle),
  };
}

/**
 * Samples between 10% and 90% of a phase that is starting now and lasts about durationMs, so
 * processes that start or exit at its edges (pgbench and its backends) are still counted.
 */
export function cpuWindow(
  durationMs: number,
  serverPid?: number | number[],
): Promise<CpuShare | undefined> {
  return new Promise((resolve) => {
    let first: CpuSample | undefined;
    setTimeout(async () => {
      first = await cpuSample(serverPid);
      setTimeout(
        async () => resolve(cpuShare(first, await cpuSample(serverPid))),
        durationMs * 0.8,
      );
    }, durationMs * 0.1);
  });
}
