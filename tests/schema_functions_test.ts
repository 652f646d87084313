// scripts/schema_functions.ts: the live schema's functions one file each, for a scan of repeated
// code over what is deployed (docs/decisions.md, "SQL helpers after v0.1.0: one piece in the live
// schema").
import assert from "node:assert/strict";
import { connect } from "../dev/db.ts";
import { fileNames, liveFunctions, writeFunctions } from "../scripts/schema_functions.ts";
import { testDbUrl } from "./support/stack.ts";

Deno.test("overloads get numbered file names, in the order given", () => {
  const f = (schema: string, name: string, args: string) => ({
    schema,
    name,
    args,
    definition: "",
  });
  assert.deepEqual(
    fileNames([
      f("public", "x", ""),
      f("settle", "create_order", "a text"),
      f("settle", "create_order", "a text, b text"),
      f("settle", "create_order", "c uuid"),
      f("settle", "fail", "p integer"),
    ]),
    [
      "public.x.sql",
      "settle.create_order.sql",
      "settle.create_order.2.sql",
      "settle.create_order.3.sql",
      "settle.fail.sql",
    ],
  );
});

Deno.test("every live function of settle and public is written once, as pg_get_functiondef has it", async () => {
  const sql = connect(await testDbUrl(), 1);
  const dir = await Deno.makeTempDir({ prefix: "schema_functions_test_" });
  try {
    const functions = await liveFunctions(sql);
    // Extension members (pgTAP's functions, where pgTAP is installed) are not the schema's.
    const [{ n }] = await sql`
      select count(*)::int as n from pg_proc p
      where p.pronamespace in ('settle'::regnamespace, 'public'::regnamespace)
        and p.prokind in ('f', 'p')
        and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass
                        and d.objid = p.oid and d.deptype = 'e')`;
    assert.equal(functions.length, n, "one entry per function and procedure");
    assert.ok(n > 100, "the migrated schema's functions");
    await Deno.writeTextFile(`${dir}/settle.gone.sql`, "a function of an earlier run");
    await Deno.writeTextFile(`${dir}/notes.txt`, "kept");
    await writeFunctions(functions, dir);
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.equal(files.length, n + 1, "a file per function, and the non-SQL file kept");
    assert.ok(!files.includes("settle.gone.sql"), "SQL files of an earlier run are removed");
    assert.ok(files.includes("notes.txt"));
    assert.ok(
      files.includes("settle.create_order.sql") && files.includes("settle.create_order.2.sql"),
    );
    const helper = await Deno.readTextFile(`${dir}/settle.caller_account.sql`);
    assert.match(
      helper,
      /^CREATE OR REPLACE FUNCTION settle\.caller_account\(p_account_id uuid, p_forbidden text\)\n RETURNS uuid\n/,
    );
    assert.match(helper, /perform settle\.fail\(403, 'forbidden', p_forbidden\);/);
    assert.ok(!files.includes("settle.wallet_order_replay.sql"), "the renamed function is gone");
  } finally {
    await sql.end();
    await Deno.remove(dir, { recursive: true });
  }
});
