// Proves two revisions' migrations build the same database: for each revision, a fresh database
// gets that revision's supabase/bootstrap/local.sql and supabase/migrations/*.sql (the way
// `deno task test` applies them, dev/db.ts migrate), then `pg_dump --schema-only --no-owner` and
// `pg_dump --data-only` (the rows migrations insert: currencies, order transitions, …; the
// Supabase CLI's own bookkeeping left out). The dumps are split into pg_dump's objects and sorted,
// so only the order objects were created in drops out; column order, constraint names, defaults,
// grants, policies, comments and function bodies must all match. Prints a unified diff and exits
// 1 when they differ, 0 when they are the same.
//   deno run -A scripts/schema_diff.ts <git-rev-a> <git-rev-b>   (rev "." is the working tree)
//   SUPABASE_DB_URL: the server to make the databases on (default 127.0.0.1:5432); pg_dump on
//   PATH must be of its major version or newer.
import {
  connect,
  createDatabase,
  dropDatabase,
  migrate,
  type Migration,
  type Sql,
} from "../dev/db.ts";

const adminUrl = Deno.env.get("SUPABASE_DB_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";
const MIGRATION = /^supabase\/migrations\/(\d{14})_(.+)\.sql$/;

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** A revision's bootstrap and migrations, in the order the Supabase CLI applies them. */
async function sources(
  rev: string,
): Promise<{ bootstrap: string; migrations: Migration[] }> {
  const read = (path: string) =>
    rev === "." ? Deno.readTextFile(path) : run("git", ["show", `${rev}:${path}`]);
  const paths = rev === "."
    ? [...Deno.readDirSync("supabase/migrations")].map((e) => `supabase/migrations/${e.name}`)
    : (await run("git", ["ls-tree", "--name-only", rev, "supabase/migrations/"])).split("\n");
  const migrations: Migration[] = [];
  for (const path of paths.sort()) {
    const m = path.match(MIGRATION);
    if (m) migrations.push({ version: m[1], name: m[2], text: await read(path) });
  }
  return { bootstrap: await read("supabase/bootstrap/local.sql"), migrations };
}

/**
 * pg_dump's output as sorted objects. An object starts at its "-- Name: …; Type: …" header;
 * blank and comment lines go, and so does the random key of `\restrict` (pg_dump 15.14+). The
 * lines of a grant list (ACL) and the rows of a table's data are sorted too: the order grants
 * were given and rows were written is history, not schema.
 */
export function normalise(dump: string): string[] {
  const objects: string[][] = [[]];
  for (const line of dump.split("\n")) {
    const header = line.match(/^-- (?:Data for )?Name: (.*); Owner: .*$/);
    if (header) objects.push([`-- ${line.slice(3).replace(/; Owner: .*$/, "")}`]);
    else if (line.trim() === "" || line.startsWith("--") || /^\\(un)?restrict /.test(line)) {
      continue;
    } else objects[objects.length - 1].push(line);
  }
  return objects.filter((o) => o.length > 0).map((lines) => {
    const [head, ...body] = lines;
    if (/Type: (DEFAULT )?ACL;/.test(head)) body.sort();
    if (/Type: TABLE DATA;/.test(head) && body.length > 2 && body.at(-1) === "\\.") {
      const rows = body.slice(1, -1).sort();
      return [head, body[0], ...rows, "\\."].join("\n");
    }
    return [head, ...body].join("\n");
  }).sort();
}

const started = Date.now() - 60_000;
const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g;
const TIMESTAMP = /\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d(?::\d\d)?\b/g;

/**
 * A data row with what the database generated while migrating masked: uuids that no migration
 * spells (gen_random_uuid() defaults) and timestamps of this run (now() defaults).
 */
function maskGenerated(row: string, migrationText: string): string {
  return row
    .replace(UUID, (u) => migrationText.includes(u) ? u : "<generated uuid>")
    .replace(TIMESTAMP, (t) => {
      const ms = Date.parse(t.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00"));
      return ms >= started ? "<time of migrating>" : t;
    });
}

async function dump(url: string, migrationText: string): Promise<string[]> {
  const schema = await run("pg_dump", ["--schema-only", "--no-owner", `--dbname=${url}`]);
  const data = await run("pg_dump", [
    "--data-only",
    "--no-owner",
    "--exclude-schema=supabase_migrations",
    `--dbname=${url}`,
  ]);
  const rows = data.split("\n").map((row) => maskGenerated(row, migrationText)).join("\n");
  return [...normalise(schema), ...normalise(rows).map((o) => `${o}\n-- (data)`)];
}

/**
 * Runs fn on a fresh database migrated from a revision's bootstrap and migrations (with their
 * text, joined), then drops the database, however fn ends.
 */
export async function withMigrated<T>(
  rev: string,
  name: string,
  fn: (sql: Sql, url: string, migrationText: string) => Promise<T>,
): Promise<T> {
  const from = await sources(rev);
  const url = await createDatabase(adminUrl, name);
  try {
    const sql = connect(url, 1);
    try {
      await migrate(sql, { from });
      return await fn(sql, url, from.migrations.map((m) => m.text).join("\n"));
    } finally {
      await sql.end();
    }
  } finally {
    await dropDatabase(adminUrl, name).catch(() => {});
  }
}

function build(rev: string, name: string): Promise<string[]> {
  return withMigrated(rev, name, (_sql, url, migrationText) => dump(url, migrationText));
}

if (import.meta.main) {
  const [a, b] = Deno.args;
  if (!a || !b) {
    console.error("usage: deno run -A scripts/schema_diff.ts <git-rev-a> <git-rev-b>");
    Deno.exit(2);
  }
  const tag = `${Deno.pid}_${Date.now().toString(36)}`;
  const [left, right] = [
    await build(a, `schema_diff_a_${tag}`),
    await build(b, `schema_diff_b_${tag}`),
  ];
  const dir = await Deno.makeTempDir({ prefix: "schema_diff_" });
  let same: boolean;
  try {
    await Deno.writeTextFile(`${dir}/a.sql`, left.join("\n\n") + "\n");
    await Deno.writeTextFile(`${dir}/b.sql`, right.join("\n\n") + "\n");
    const diff = await new Deno.Command("diff", {
      args: ["-u", `--label=${a}`, `--label=${b}`, `${dir}/a.sql`, `${dir}/b.sql`],
      stdout: "piped",
    }).output();
    same = diff.code === 0;
    if (!same) console.log(new TextDecoder().decode(diff.stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  if (same) {
    console.log(`${a} and ${b}: the same schema and migration data (${left.length} objects)`);
  } else console.error(`${a} and ${b} differ (${left.length} and ${right.length} objects)`);
  Deno.exit(same ? 0 : 1);
}
