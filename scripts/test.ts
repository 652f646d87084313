// `deno task test`: fresh databases on a Postgres server, Deno tests, then pgTAP via pg_prove.
// The server is the one at SUPABASE_DB_URL (default 127.0.0.1:5432); when nothing answers there,
// or with --embedded, an embedded PostgreSQL 17 (dev/embedded.ts) started for this run only.
//   deno task test [--embedded] [test files…]   (files given: Deno tests only, no pgTAP)
import { connect, createDatabase, dropDatabase, migrate } from "../dev/db.ts";
import {
  EMBEDDED_MAJOR,
  type EmbeddedServer,
  freePort,
  reachable,
  startEmbeddedPostgres,
} from "../dev/embedded.ts";

const configuredUrl = Deno.env.get("SUPABASE_DB_URL") ??
  "postgres://postgres@127.0.0.1:5432/postgres";
let adminUrl = configuredUrl;
const forceEmbedded = Deno.args.includes("--embedded");
const suffix = `${Deno.pid}_${Date.now().toString(36)}`;
const testDb = `settle_test_${suffix}`;
const pgtapDb = `settle_pgtap_${suffix}`;

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "inherit" }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    const text = decoder.decode(chunk, { stream: true });
    output += text;
    await Deno.stdout.write(chunk);
  }
  const { code } = await child.status;
  return { code, output };
}

async function has(cmd: string): Promise<boolean> {
  try {
    const { code } = await new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`] }).output();
    return code === 0;
  } catch {
    return false;
  }
}

const sh = (s: string) => new Deno.Command("sh", { args: ["-c", s] }).output();

async function aptInstall(packages: string): Promise<boolean> {
  const update = await sh("apt-get update -qq");
  const install = await sh(`DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${packages}`);
  return update.code === 0 && install.code === 0;
}

/** pg_prove and psql (which pg_prove runs), from Debian when missing; no server comes with them. */
async function ensurePgProve() {
  if (await has("pg_prove") && await has("psql")) return;
  console.log("pg_prove or psql not found: installing them from Debian packages");
  const packages = "libtap-parser-sourcehandler-pgtap-perl postgresql-client";
  if (!(await aptInstall(packages)) || !(await has("pg_prove")) || !(await has("psql"))) {
    throw new Error(`could not install pg_prove and psql (${packages})`);
  }
}

async function pgtapAvailable(url: string): Promise<boolean> {
  const sql = connect(url, 1);
  try {
    return (await sql`select 1 from pg_available_extensions where name = 'pgtap'`).length > 0;
  } finally {
    await sql.end();
  }
}

/**
 * A directory with Debian's pgTAP extension files (pure SQL, no server code): the installed
 * package's, else postgresql-15-pgtap unpacked from its .deb without installing it (installing it
 * would pull in a PostgreSQL 15 server).
 */
async function debianPgTapDir(): Promise<string> {
  for (const major of [EMBEDDED_MAJOR, 16, 15]) {
    const dir = `/usr/share/postgresql/${major}/extension`;
    if (await exists(`${dir}/pgtap.control`)) return dir;
  }
  const work = ".settle/pgtap-deb";
  await Deno.mkdir(work, { recursive: true });
  const fetchDeb = `cd ${work} && apt-get download -qq postgresql-15-pgtap && ` +
    "dpkg -x postgresql-15-pgtap_*.deb root";
  if ((await sh(fetchDeb)).code !== 0) {
    await sh("apt-get update -qq");
    if ((await sh(fetchDeb)).code !== 0) throw new Error("could not fetch postgresql-15-pgtap");
  }
  return `${work}/root/usr/share/postgresql/15/extension`;
}

/**
 * pgTAP in the server the suite runs against. An embedded server gets Debian's extension files
 * copied into its share directory; a server of the machine's own gets Debian's package for its
 * major version; anything else must have pgTAP already.
 */
async function ensurePgTap(url: string, embedded?: EmbeddedServer) {
  await ensurePgProve();
  if (await pgtapAvailable(url)) return;
  if (embedded) {
    const from = await debianPgTapDir();
    const to = await embedded.extensionDir();
    for await (const e of Deno.readDir(from)) {
      if (e.name.startsWith("pgtap")) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
    }
    console.log(`pgTAP: Debian's extension files copied into the embedded PostgreSQL (${to})`);
  } else {
    const sql = connect(url, 1);
    const [v] = await sql`select current_setting('server_version_num')::int / 10000 as major`;
    await sql.end();
    console.log(`pgTAP not in the server: installing postgresql-${v.major}-pgtap`);
    await aptInstall(`postgresql-${v.major}-pgtap`);
  }
  if (!(await pgtapAvailable(url))) {
    throw new Error(`the server at ${url} has no pgtap extension; install pgTAP into it`);
  }
}

/** The server for this run: the configured one if it answers, else an embedded one. */
async function server(): Promise<EmbeddedServer | undefined> {
  if (!forceEmbedded && await reachable(adminUrl)) return undefined;
  const why = forceEmbedded ? "--embedded" : `nothing answers at ${new URL(adminUrl).host}`;
  console.log(`${why}: starting an embedded PostgreSQL ${EMBEDDED_MAJOR} for this run`);
  const started = performance.now();
  const embedded = await startEmbeddedPostgres({
    dataDir: `.settle/test-pg-${suffix}`,
    port: freePort(),
    fresh: true,
    persistent: false,
  });
  console.log(`embedded PostgreSQL up in ${Math.round(performance.now() - started)} ms`);
  adminUrl = embedded.url;
  return embedded;
}

/** Debian's Chromium for tests/browser_test.ts, installed only when missing (as pgTAP is). */
const CHROMIUM = "/usr/bin/chromium";
async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
async function ensureChromium() {
  if (await exists(CHROMIUM)) return;
  console.log(`${CHROMIUM} not found: installing Chromium from Debian packages`);
  const update = await sh("apt-get update -qq");
  const install = await sh(
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium",
  );
  if (update.code !== 0 || install.code !== 0 || !(await exists(CHROMIUM))) {
    const err = new TextDecoder().decode(install.stderr).trim();
    throw new Error(`could not install Chromium (Debian package chromium)${err ? `: ${err}` : ""}`);
  }
}

async function freshDatabase(name: string): Promise<string> {
  const url = await createDatabase(adminUrl, name);
  const sql = connect(url, 1);
  try {
    await migrate(sql, { seed: true });
  } finally {
    await sql.end();
  }
  return url;
}

const filters = Deno.args.filter((a) => a !== "--embedded");
let passed = 0;
let failed = 0;
let embedded: EmbeddedServer | undefined;
try {
  embedded = await server();
  if (!filters.length) await ensurePgTap(adminUrl, embedded);
  await ensureChromium();
  const testUrl = await freshDatabase(testDb);
  const deno = await run(Deno.execPath(), [
    "test",
    "-A",
    ...(filters.length ? filters : ["tests/"]),
  ], {
    SETTLE_TEST_DB_URL: testUrl,
    SETTLE_TEST_ADMIN_URL: adminUrl,
    NO_COLOR: "1",
  });
  const m = deno.output.match(
    /(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed/,
  );
  if (m) {
    // Steps are test cases too (the bad-input table runs one step per case).
    passed += Number(m[1]) + Number(m[2] ?? 0);
    failed += Number(m[3]);
  }
  if (deno.code !== 0 && !m) failed += 1;

  if (!filters.length) {
    const pgtapUrl = await freshDatabase(pgtapDb);
    const prove = await run("sh", [
      "-c",
      `pg_prove --dbname "$PGTAP_URL" supabase/tests/database/*.test.sql`,
    ], { PGTAP_URL: pgtapUrl });
    const files = prove.output.match(/Files=(\d+), Tests=(\d+)/);
    const bad = prove.output.match(/Failed (\d+)\/(\d+) subtests/g) ?? [];
    const badCount = bad.reduce((n, s) => n + Number(s.match(/Failed (\d+)/)![1]), 0);
    if (files) {
      passed += Number(files[2]) - badCount;
      failed += badCount;
    }
    if (prove.code !== 0 && badCount === 0) failed += 1;
  }
} finally {
  await dropDatabase(adminUrl, testDb).catch(() => {});
  await dropDatabase(adminUrl, pgtapDb).catch(() => {});
  await embedded?.stop();
}
console.log(`\nsettle tests: ${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 && passed > 0 ? 0 : 1);
