// The migrations as the runner applies them (dev/db.ts migrate) and as scripts/schema_diff.ts
// compares them: a database recorded with files the tree no longer has is refused before anything
// is applied, and the dump's normalisation drops only the order objects were created in.
import assert from "node:assert/strict";
import { connect, migrate, migrationFiles } from "../dev/db.ts";
import { normalise } from "../scripts/schema_diff.ts";
import { ownDatabase } from "./support/isolated.ts";

Deno.test("migrate refuses a database that records migrations the tree does not have", async () => {
  const own = await ownDatabase("migrations_unknown");
  const sql = connect(own.url, 1);
  try {
    await sql`insert into supabase_migrations.schema_migrations (version, statements, name)
              values ('20261121000100', '{}', 'foundation')`;
    const before = await sql`select count(*)::int as n from pg_proc`;
    await assert.rejects(() => migrate(sql), /20261121000100.*before the v0\.1\.0 re-base/s);
    assert.deepEqual(await sql`select count(*)::int as n from pg_proc`, before, "nothing applied");
    await sql`delete from supabase_migrations.schema_migrations where version = '20261121000100'`;
    assert.deepEqual(
      await migrate(sql),
      [],
      "the same database with its own files applies nothing",
    );
  } finally {
    await sql.end();
    await own.drop();
  }
});

Deno.test("the migration files sort in the Supabase CLI's order, each version once", async () => {
  const files = await migrationFiles();
  const versions = files.map((f) => f.version);
  assert.deepEqual(versions, [...versions].sort(), "sorted by version");
  assert.equal(new Set(versions).size, versions.length, "no version twice");
  assert.ok(files.length > 0);
});

Deno.test("schema_diff's normalise: objects and grant lines sorted, column order kept", () => {
  const dump = (acl: string[], rows: string[], columns: string[]) =>
    [
      "\\restrict abc123",
      "SET statement_timeout = 0;",
      "--",
      "-- Name: t; Type: TABLE; Schema: public; Owner: postgres",
      "--",
      "CREATE TABLE public.t (",
      ...columns,
      ");",
      "--",
      "-- Name: TABLE t; Type: ACL; Schema: public; Owner: postgres",
      "--",
      ...acl,
      "--",
      "-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: postgres",
      "--",
      "COPY public.t (a, b) FROM stdin;",
      ...rows,
      "\\.",
      "\\unrestrict abc123",
    ].join("\n");
  const a = normalise(
    dump([
      "GRANT SELECT ON TABLE public.t TO anon;",
      "GRANT ALL ON TABLE public.t TO service_role;",
    ], [
      "1\tx",
      "2\ty",
    ], ["    a integer,", "    b text"]),
  );
  const sameInAnotherOrder = normalise(
    dump([
      "GRANT ALL ON TABLE public.t TO service_role;",
      "GRANT SELECT ON TABLE public.t TO anon;",
    ], [
      "2\ty",
      "1\tx",
    ], ["    a integer,", "    b text"]),
  );
  assert.deepEqual(sameInAnotherOrder, a);
  const columnsSwapped = normalise(
    dump([
      "GRANT SELECT ON TABLE public.t TO anon;",
      "GRANT ALL ON TABLE public.t TO service_role;",
    ], [
      "1\tx",
      "2\ty",
    ], ["    b text,", "    a integer"]),
  );
  assert.notDeepEqual(columnsSwapped, a, "column order is schema");
  assert.ok(!a.join("\n").includes("restrict"), "pg_dump's random \\restrict key is dropped");
});
