// Database set-up for local and test runs: bootstrap, migrations, seed, fresh databases.
import postgres from "postgres";

const root = new URL("../", import.meta.url);
const migrationsDir = new URL("supabase/migrations/", root);

export type Sql = postgres.Sql;

export function connect(url: string, max = 4): Sql {
  return postgres(url, { prepare: false, max, onnotice: () => {} });
}

/** Migration files in the order the Supabase CLI applies them (by timestamp prefix). */
export async function migrationFiles(): Promise<{ version: string; name: string; path: URL }[]> {
  const files: { version: string; name: string; path: URL }[] = [];
  for await (const entry of Deno.readDir(migrationsDir)) {
    const m = entry.name.match(/^(\d{14})_(.+)\.sql$/);
    if (entry.isFile && m) {
      files.push({ version: m[1], name: m[2], path: new URL(entry.name, migrationsDir) });
    }
  }
  return files.sort((a, b) => a.version.localeCompare(b.version));
}

/**
 * What a vanilla Postgres needs before settle's migrations (roles, the auth schema, Supabase's
 * default privileges): `supabase db push` to a plain server fails without it.
 */
export async function bootstrap(sql: Sql, text?: string): Promise<void> {
  text ??= await Deno.readTextFile(new URL("supabase/bootstrap/local.sql", root));
  await sql.unsafe(text).simple();
}

/** A migration's version, name and SQL: the working tree's, or another revision's. */
export type Migration = { version: string; name: string; text: string };

/**
 * Applies the local bootstrap, every migration not yet recorded (in the Supabase CLI's own
 * bookkeeping table, so `supabase migration list` agrees), and optionally the seed. `from`
 * replaces the working tree's bootstrap and migrations (scripts/schema_diff.ts applies another
 * revision's).
 */
export async function migrate(
  sql: Sql,
  opts: { seed?: boolean; from?: { bootstrap: string; migrations: Migration[] } } = {},
): Promise<string[]> {
  await bootstrap(sql, opts.from?.bootstrap);
  await sql.unsafe(`
    create schema if not exists supabase_migrations;
    create table if not exists supabase_migrations.schema_migrations (
      version text primary key, statements text[], name text
    );`).simple();
  const done = new Set(
    (await sql`select version from supabase_migrations.schema_migrations`).map((r) => r.version),
  );
  const files = opts.from?.migrations ?? await migrationFiles();
  const unknown = [...done].filter((v) => !files.some((f) => f.version === v)).sort();
  if (unknown.length) {
    // Applying the files on top would fail half-way (or skip what the database lacks).
    throw new Error(
      `the database records ${unknown.length} migration(s) that are not in supabase/migrations ` +
        `(${unknown.slice(0, 3).join(", ")}${unknown.length > 3 ? ", …" : ""}): it was migrated ` +
        "before the v0.1.0 re-base (docs/decisions.md) or by another branch; recreate it " +
        "(`deno task dev` without --keep starts a fresh one)",
    );
  }
  const applied: string[] = [];
  for (const file of files) {
    if (done.has(file.version)) continue;
    const text = "text" in file ? file.text : await Deno.readTextFile(file.path);
    await sql.begin(async (tx) => {
      await tx.unsafe(text).simple();
      await tx`insert into supabase_migrations.schema_migrations (version, statements, name)
               values (${file.version}, ${[text]}, ${file.name})`;
    });
    applied.push(`${file.version}_${file.name}`);
  }
  if (opts.seed) {
    await sql.unsafe(await Deno.readTextFile(new URL("supabase/seed.sql", root))).simple();
  }
  return applied;
}

/** Creates an empty database beside the one at adminUrl and returns its URL. */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
  const admin = connect(adminUrl, 1);
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
  const admin = connect(adminUrl, 1);
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end();
  }
}
