// Writes the live schema's functions one file each, so that a scan for repeated code reads the
// functions as deployed rather than the migration history (which keeps every superseded body:
// landed migrations are immutable). A fresh database gets a revision's bootstrap and migrations
// (the way scripts/schema_diff.ts builds one), and pg_get_functiondef of every function and
// procedure in the schemas settle and public (none an extension brings) is written to
// <dir>/<schema>.<name>.sql (an overload adds .2, .3, … by its arguments). The directory is
// emptied of .sql files first.
//   deno run -A scripts/schema_functions.ts <git-rev> <dir>   (rev "." is the working tree)
//   duplicates --repo <dir> --min-lines 10                      (the live schema's repeats)
//   SUPABASE_DB_URL: the server to make the database on (default 127.0.0.1:5432).
import type { Sql } from "../dev/db.ts";
import { withMigrated } from "./schema_diff.ts";

export type LiveFunction = { schema: string; name: string; args: string; definition: string };

/** Every function and procedure of settle and public, in name and argument order. */
export async function liveFunctions(sql: Sql): Promise<LiveFunction[]> {
  const rows = await sql<LiveFunction[]>`
    select n.nspname as schema, p.proname as name,
           pg_get_function_identity_arguments(p.oid) as args,
           pg_get_functiondef(p.oid) as definition
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('settle', 'public') and p.prokind in ('f', 'p')
      and not exists (select 1 from pg_depend d
                      where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
    order by n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)`;
  return [...rows];
}

/** File names: schema.name.sql, and for the second and later overloads schema.name.N.sql. */
export function fileNames(functions: LiveFunction[]): string[] {
  const seen = new Map<string, number>();
  return functions.map((f) => {
    const base = `${f.schema}.${f.name}`;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return n === 1 ? `${base}.sql` : `${base}.${n}.sql`;
  });
}

export async function writeFunctions(functions: LiveFunction[], dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".sql")) await Deno.remove(`${dir}/${entry.name}`);
  }
  const names = fileNames(functions);
  for (const [i, f] of functions.entries()) {
    await Deno.writeTextFile(`${dir}/${names[i]}`, f.definition.trimEnd() + "\n");
  }
}

if (import.meta.main) {
  const [rev, dir] = Deno.args;
  if (!rev || !dir) {
    console.error("usage: deno run -A scripts/schema_functions.ts <git-rev> <dir>");
    Deno.exit(2);
  }
  const name = `schema_functions_${Deno.pid}_${Date.now().toString(36)}`;
  const count = await withMigrated(rev, name, async (sql) => {
    const functions = await liveFunctions(sql);
    await writeFunctions(functions, dir);
    return functions.length;
  });
  console.log(`${rev}: ${count} functions written to ${dir}`);
}
