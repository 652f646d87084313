// `deno task test`: fresh databases on the Postgres server, Deno tests, then pgTAP via pg_prove.
import { connect, createDatabase, dropDatabase, migrate } from "../dev/db.ts";

const adminUrl = Deno.env.get("SUPABASE_DB_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";
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

/** pgTAP from Debian, installed only when missing (CI machines start without it). */
async function ensurePgTap() {
  if (await has("pg_prove")) return;
  console.log("pg_prove not found: installing pgTAP from Debian packages");
  const sh = (s: string) => new Deno.Command("sh", { args: ["-c", s] }).output();
  const update = await sh("apt-get update -qq");
  const install = await sh(
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl",
  );
  if (update.code !== 0 || install.code !== 0 || !(await has("pg_prove"))) {
    throw new Error(
      "could not install pgTAP (postgresql-15-pgtap, libtap-parser-sourcehandler-pgtap-perl)",
    );
  }
}

/** Debian's Chromium for tests/browser_test.ts, installed only when missing (as pgTAP is). */
const CHROMIUM = "/usr/bin/chromium";
async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
async function ensureChromium() {
  if (await exists(CHROMIUM)) return;
  console.log(`${CHROMIUM} not found: installing Chromium from Debian packages`);
  const sh = (s: string) => new Deno.Command("sh", { args: ["-c", s] }).output();
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

const filters = Deno.args;
let passed = 0;
let failed = 0;
try {
  await ensurePgTap();
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
}
console.log(`\nsettle tests: ${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 && passed > 0 ? 0 : 1);
