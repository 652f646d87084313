// The baseline: pgbench on the same server, installed from Debian when it is missing.
import { percentile, round } from "./stats.ts";

async function sh(cmd: string): Promise<{ code: number; out: string }> {
  const o = await new Deno.Command("sh", { args: ["-c", cmd], stdout: "piped", stderr: "piped" })
    .output();
  const d = new TextDecoder();
  return { code: o.code, out: d.decode(o.stdout) + d.decode(o.stderr) };
}

async function findPgbench(): Promise<string | undefined> {
  const onPath = await sh("command -v pgbench");
  if (onPath.code === 0 && onPath.out.trim()) return onPath.out.trim();
  // Debian keeps the binaries beside the server; the wrapper on PATH may be absent.
  const any = await sh("ls -1 /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -1");
  return any.out.trim() || undefined;
}

/**
 * pgbench, installed if absent. Debian ships it in postgresql-<major> (the server package), so
 * main-cluster creation is switched off first: the install must not start a second server.
 */
export async function ensurePgbench(serverMajor: number): Promise<string> {
  const found = await findPgbench();
  if (found) return found;
  console.error(`pgbench not found: installing postgresql-${serverMajor} from Debian packages`);
  const steps = [
    "mkdir -p /etc/postgresql-common/createcluster.d",
    "echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/settle-bench.conf",
    "apt-get update -qq",
    `DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-${serverMajor} ||` +
    " DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql",
  ];
  for (const s of steps) {
    const r = await sh(s);
    if (r.code !== 0) throw new Error(`installing pgbench failed at "${s}":\n${r.out}`);
  }
  const installed = await findPgbench();
  if (!installed) throw new Error("pgbench is still missing after installing postgresql");
  return installed;
}

export interface PgbenchResult {
  label: string;
  scale: number;
  clients: number;
  threads: number;
  mode: string;
  seconds: number;
  transactions: number;
  tps: number;
  latencyMs: { p50: number; p95: number; p99: number; mean: number };
}

function connArgs(dbUrl: string): { args: string[]; env: Record<string, string> } {
  const u = new URL(dbUrl);
  return {
    args: ["-h", u.hostname, "-p", u.port || "5432", "-U", decodeURIComponent(u.username)],
    env: {
      PGDATABASE: u.pathname.slice(1),
      ...(u.password ? { PGPASSWORD: decodeURIComponent(u.password) } : {}),
    },
  };
}

export async function pgbenchInit(bin: string, dbUrl: string, scale: number): Promise<void> {
  const c = connArgs(dbUrl);
  const o = await new Deno.Command(bin, {
    args: [...c.args, "-i", "-q", "-s", String(scale)],
    env: c.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (o.code !== 0) throw new Error(`pgbench -i failed: ${new TextDecoder().decode(o.stderr)}`);
}

/**
 * One timed pgbench run with per-transaction logs, so its latency percentiles are computed the
 * same way as settle's. script is a built-in (tpcb-like) or a file path.
 */
export async function pgbenchRun(bin: string, dbUrl: string, o: {
  label: string;
  scale: number;
  clients: number;
  seconds: number;
  mode: "prepared" | "extended" | "simple";
  script?: string;
}): Promise<PgbenchResult> {
  const c = connArgs(dbUrl);
  const threads = Math.min(2, o.clients);
  const dir = await Deno.makeTempDir({ prefix: "settle-pgbench-" });
  try {
    const args = [
      ...c.args,
      "-c",
      String(o.clients),
      "-j",
      String(threads),
      "-T",
      String(o.seconds),
      "-M",
      o.mode,
      "-l",
      `--log-prefix=${dir}/tx`,
      ...(o.script ? ["-n", "-f", o.script] : ["-b", "tpcb-like"]),
    ];
    const out = await new Deno.Command(bin, { args, env: c.env, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (out.code !== 0) throw new Error(`pgbench failed:\n${text}`);
    const tps = Number(text.match(/tps = ([\d.]+) \(without initial connection time\)/)?.[1]);
    const transactions = Number(
      text.match(/number of transactions actually processed: (\d+)/)?.[1],
    );
    const failed = Number(text.match(/number of failed transactions: (\d+)/)?.[1] ?? 0);
    if (!Number.isFinite(tps) || failed > 0) throw new Error(`pgbench run went wrong:\n${text}`);
    // Log lines: client_id transaction_no time_us script_no epoch epoch_us
    const lat: number[] = [];
    for await (const e of Deno.readDir(dir)) {
      for (const line of (await Deno.readTextFile(`${dir}/${e.name}`)).split("\n")) {
        const f = line.split(" ");
        if (f.length >= 3) lat.push(Number(f[2]) / 1000);
      }
    }
    const sorted = Float64Array.from(lat).sort();
    const mean = lat.reduce((a, b) => a + b, 0) / (lat.length || 1);
    return {
      label: o.label,
      scale: o.scale,
      clients: o.clients,
      threads,
      mode: o.mode,
      seconds: o.seconds,
      transactions,
      tps: round(tps, 1),
      latencyMs: {
        p50: round(percentile(sorted, 50), 2),
        p95: round(percentile(sorted, 95), 2),
        p99: round(percentile(sorted, 99), 2),
        mean: round(mean, 2),
      },
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
