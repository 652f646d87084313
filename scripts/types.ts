// `deno task types`: applies the migrations to a fresh database with the real Supabase CLI
// (`supabase db push`), generates the TypeScript types of the public schema from it
// (`supabase gen types`) and writes supabase/types.ts. `--check` (CI) fails instead of writing
// when the committed file differs, saying how to regenerate it.
//   SUPABASE_DB_URL: the server to make the database on (default 127.0.0.1:5432).
import { bootstrap, connect, createDatabase, dropDatabase } from "../dev/db.ts";

const CLI = "supabase@3.1.0";
const TIMEOUT_MS = 180_000;
const adminUrl = Deno.env.get("SUPABASE_DB_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";
const target = new URL("../supabase/types.ts", import.meta.url);
const check = Deno.args.includes("--check");

/** Runs a command with a time limit; its stdout, or an error with its stderr. */
async function run(cmd: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

const name = `settle_types_${Deno.pid}`;
let generated: string;
try {
  const url = new URL(await createDatabase(adminUrl, name));
  const sql = connect(url.toString(), 1);
  await bootstrap(sql); // supabase db push on a plain Postgres needs it first
  await sql.end();
  // The CLI speaks TLS unless told not to; without sslmode=disable gen types writes the warning
  // into the file.
  url.searchParams.set("sslmode", "disable");
  const remote = `--remote=${url}`;
  await run("npx", ["-y", CLI, "db", "push", remote, "--include-seed", "--yes"]);
  const types = await run("npx", [
    "-y",
    CLI,
    "gen",
    "types",
    "typescript",
    remote,
    "--schema",
    "public",
  ]);
  generated = await run(Deno.execPath(), ["fmt", "--ext=ts", "-"], types);
} finally {
  await dropDatabase(adminUrl, name).catch(() => {});
}

const current = await Deno.readTextFile(target).catch(() => "");
if (!check) {
  await Deno.writeTextFile(target, generated);
  console.log(
    current === generated ? "supabase/types.ts is up to date" : "wrote supabase/types.ts",
  );
} else if (current !== generated) {
  console.error(
    "supabase/types.ts does not match the migrations: run `npx deno@2.9.6 task types` and commit it",
  );
  Deno.exit(1);
} else {
  console.log("supabase/types.ts matches the migrations (applied by the Supabase CLI)");
}
