// The peer: @supabase/stripe-sync-engine, pinned in bench/peer/package.json (and its lock),
// installed with npm into .settle/bench-peer/ (gitignored) and run by bench/peer/server.mjs in a
// Node process of its own, on a database of its own on the same server.
import { applyServerNice } from "./spawn.ts";
import type { Sql } from "../../dev/db.ts";
import type { SentEvent } from "./checks.ts";

const root = new URL("../../", import.meta.url);
const source = new URL("bench/peer/", root);
export const PEER_DIR = new URL(".settle/bench-peer/", root).pathname;
export const PEER_PACKAGE = "@supabase/stripe-sync-engine";

async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    return (await Deno.readTextFile(a)) === (await Deno.readTextFile(b));
  } catch {
    return false;
  }
}

async function run(cmd: string, args: string[], cwd: string) {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).slice(-2000);
    throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}: ${err}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/**
 * Installs the pinned peer (npm ci from the committed lock) unless the same lock is installed
 * already. Returns the installed version, read from the package itself.
 */
export async function ensurePeer(): Promise<{ version: string; node: string }> {
  await Deno.mkdir(PEER_DIR, { recursive: true });
  const lock = new URL("package-lock.json", source).pathname;
  const installedLock = `${PEER_DIR}node_modules/.settle-lock.json`;
  if (!await sameFile(lock, installedLock)) {
    await Deno.copyFile(new URL("package.json", source).pathname, `${PEER_DIR}package.json`);
    await Deno.copyFile(lock, `${PEER_DIR}package-lock.json`);
    await run("npm", ["ci", "--no-audit", "--no-fund", "--ignore-scripts"], PEER_DIR);
    await Deno.copyFile(lock, installedLock);
  }
  const pkg = JSON.parse(
    await Deno.readTextFile(`${PEER_DIR}node_modules/${PEER_PACKAGE}/package.json`),
  );
  return { version: pkg.version, node: await run("node", ["--version"], PEER_DIR) };
}

export interface PeerProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts bench/peer/server.mjs; it migrates its database first, then prints its address. */
export async function startPeer(databaseUrl: string, webhookSecret: string): Promise<PeerProcess> {
  const child = new Deno.Command("node", {
    args: [new URL("server.mjs", source).pathname, PEER_DIR, databaseUrl, webhookSecret],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  while (!buffered.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("bench/peer/server.mjs exited before it was ready");
    buffered += decoder.decode(value, { stream: true });
  }
  const info = JSON.parse(buffered.slice(0, buffered.indexOf("\n")));
  await applyServerNice(info.pid);
  (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();
  const writer = child.stdin.getWriter();
  return {
    url: info.functionsUrl,
    pid: info.pid,
    async stop() {
      await writer.close();
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await child.status;
      clearTimeout(timer);
    },
  };
}

/** Every event the peer acknowledged is stored once: its intent, succeeded, with its amount. */
export async function checkPeerStored(db: Sql, sent: SentEvent[]): Promise<string[]> {
  if (sent.length === 0) return [];
  const rows = sent.map((s) => ({ o: s.gatewayOrderId, a: s.amount }));
  const [r] = await db`
    with s as (select * from jsonb_to_recordset(${db.json(rows)}::jsonb) as x(o text, a bigint))
    select count(*)::int as sent,
      count(p.id) filter (where p.status = 'succeeded' and p.amount = s.a
                           and p.amount_received = s.a)::int as stored
    from s left join stripe.payment_intents p on p.id = s.o`;
  return r.stored === r.sent ? [] : [`peer stored ${r.stored} of ${r.sent} intents as sent`];
}
