// The shared test helpers themselves: what they must catch, they catch (a helper that passed
// everything would leave every suite built on it asserting nothing).
import assert from "node:assert/strict";
import { connect } from "../dev/db.ts";
import { PgProxy } from "../bench/lib/pgproxy.ts";
import { type Case, runCase, type Watch } from "./support/contract.ts";
import { Framer } from "./support/pgwire.ts";
import { createUser, testDbUrl, withStack } from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const refused = { status: 400, body: { error: { code: "invalid_body", message: "no" } } };

Deno.test({
  name: "runCase: passes a clean refusal, fails a case that writes a row or answers off-contract",
  ...opts,
  fn: () =>
    withStack(async (s) => {
      const clean: Case = {
        name: "clean",
        status: 400,
        code: "invalid_body",
        send: () => Promise.resolve(refused),
      };
      await runCase(s, clean);
      const writes: Case = {
        ...clean,
        name: "writes",
        send: async () => {
          await createUser(s.db, "support-writes");
          return refused;
        },
      };
      await assert.rejects(runCase(s, writes), /the database changed/);
      const offContract: Case = {
        ...clean,
        send: () => Promise.resolve({ status: 400, body: { error: "no" } }),
      };
      await assert.rejects(runCase(s, offContract), /error is not an object/);
      let reads = 0;
      const drifting: Watch = () => {
        const before = reads++;
        return Promise.resolve(() =>
          Promise.resolve(assert.equal(reads, before + 1, "the watched state moved"))
        );
      };
      await runCase(s, clean, [drifting]);
      await assert.rejects(
        runCase(s, { ...clean, send: () => Promise.resolve((reads++, refused)) }, [drifting]),
        /the watched state moved/,
      );
    }),
});

Deno.test({
  name: "withStack: hands back fn's value, passes fn's error on, and closes the stack either way",
  ...opts,
  fn: async () => {
    let url = "";
    assert.equal(await withStack((s) => Promise.resolve((url = s.url, 7))), 7);
    await assert.rejects(fetch(url), "the stack still answers after withStack returned");
    await assert.rejects(
      withStack({ RAZORPAY_TIMEOUT_MS: "400" }, async (s) => {
        url = s.url;
        await (await fetch(s.url)).body?.cancel(); // it answers while fn runs
        throw new Error("from fn");
      }),
      /from fn/,
    );
    await assert.rejects(fetch(url), "the stack still answers after fn threw");
  },
});

Deno.test("Framer: messages split across chunks, after SSLRequest and startup packets", () => {
  const int32 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  const ssl = [...int32(8), ...int32(80877103)];
  const startup = [...int32(9), ...int32(196608), 0];
  const msg = (type: string, payload: number[]) => [
    type.charCodeAt(0),
    ...int32(payload.length + 4),
    ...payload,
  ];
  const bytes = new Uint8Array([
    ...ssl,
    ...startup,
    ...msg("P", [1, 2, 3]),
    ...msg("B", []),
    ...msg("E", [0, 0, 0, 0, 0]),
    ...msg("S", []),
  ]);
  const f = new Framer(true);
  const seen: string[] = [];
  for (let i = 0; i < bytes.length; i += 3) seen.push(...f.types(bytes.subarray(i, i + 3)));
  assert.deepEqual(seen, ["P", "B", "E", "S"]);
});

Deno.test({
  name: "PgProxy (bench) relays queries and counts their statements, parses and round trips",
  ...opts,
  fn: async () => {
    const url = await testDbUrl();
    const proxy = PgProxy.start(url);
    const sql = connect(proxy.url(url), 1);
    try {
      await sql`select 1`;
      proxy.reset();
      const [a] = await sql`select ${41}::int + 1 as x`;
      const [b] = await sql`select ${2}::int * 3 as x`;
      assert.deepEqual([a.x, b.x], [42, 6]);
      assert.equal(proxy.counts.statements, 2);
      assert.ok(proxy.counts.parses <= 2, `parses ${proxy.counts.parses}`);
      assert.ok(proxy.counts.roundTrips >= 2, `round trips ${proxy.counts.roundTrips}`);
      assert.ok(proxy.counts.bytesToServer > 0 && proxy.counts.bytesToClient > 0);
    } finally {
      await sql.end();
      proxy.close();
    }
  },
});
