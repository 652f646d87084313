// asUser sets the caller's role and claims in one statement without parameters (the claims as a
// literal): whatever the claims hold, Postgres reads back exactly the JSON the server verified,
// and the policies see that user, on a real Postgres with and without prepared statements.
import assert from "node:assert/strict";
import { asUser, createPool, sqlLiteral } from "../shared/db.ts";
import type { Caller } from "../shared/auth.ts";
import { createUser, testDbUrl } from "./support/stack.ts";
import { connect } from "../dev/db.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

// What a user can put in their own token (user_metadata): quotes, backslashes, dollar quotes,
// statement breaks, unicode escapes and characters outside the BMP.
const HOSTILE = [
  "O'Brien",
  "''",
  "\\",
  "\\'",
  "E'\\\\'",
  "'); drop table public.orders; --",
  "$$ $x$ $$",
  "\\u0027 \\x27 \\047",
  "tab\tnew\nline\r",
  "emoji 💳 and é",
];
// Text JSON can carry but jsonb (auth.uid() reads the claims as jsonb) refuses: literal only.
const NOT_JSONB = ["\u0000 nul escaped by JSON", "\ud800 lone surrogate"];

Deno.test("sqlLiteral: every hostile text reads back unchanged", opts, async () => {
  const sql = connect(await testDbUrl(), 1);
  try {
    for (const s of [...HOSTILE, ...NOT_JSONB]) {
      const json = JSON.stringify(s);
      const [{ v }] = await sql.unsafe(`select ${sqlLiteral(json)}::text as v`);
      assert.equal(v, json);
    }
    // Also with standard_conforming_strings off, where a plain '…' literal would differ.
    const [{ v }] = await sql.begin(async (tx) => {
      await tx.unsafe("set local standard_conforming_strings = off");
      return await tx.unsafe(`select ${sqlLiteral(JSON.stringify(HOSTILE))}::text as v`);
    });
    assert.equal(v, JSON.stringify(HOSTILE));
  } finally {
    await sql.end({ timeout: 5 });
  }
});

Deno.test(
  "asUser: the claims Postgres sees are the caller's, exactly; RLS sees the user",
  opts,
  async () => {
    const url = await testDbUrl();
    const db = connect(url, 1);
    const u = await createUser(db, "claims");
    const other = await createUser(db, "claims-other");
    const claims = {
      sub: u.id,
      role: "authenticated",
      aud: "authenticated",
      exp: 4102444800,
      user_metadata: Object.fromEntries(HOSTILE.map((s, i) => [`k${i}`, s])),
    };
    for (const prepare of [false, true]) {
      const pool = createPool(prepare ? `${url}?prepare=true` : url, 2);
      try {
        for (const frozen of [false, true]) {
          const c = structuredClone(claims);
          const caller: Caller = { role: "authenticated", userId: u.id, claims: c };
          if (frozen) Object.freeze(c);
          for (let i = 0; i < 2; i++) {
            const [row] = await asUser(
              pool,
              caller,
              (tx) =>
                tx`select current_setting('request.jwt.claims') as claims, current_user as role,
              auth.uid() as uid,
              (select count(*)::int from public.accounts where id = ${u.accountId}) as mine,
              (select count(*)::int from public.accounts where id = ${other.accountId}) as theirs`,
            );
            assert.deepEqual(JSON.parse(row.claims), claims);
            assert.deepEqual(
              { role: row.role, uid: row.uid, mine: row.mine, theirs: row.theirs },
              { role: "authenticated", uid: u.id, mine: 1, theirs: 0 },
            );
          }
        }
        // A failing statement still reports its own error and leaves the connection usable.
        await assert.rejects(
          asUser(pool, { role: "authenticated", userId: u.id, claims }, (tx) => tx`select 1 / 0`),
          /division by zero/,
        );
        const [{ n }] = await pool`select 1 as n`;
        assert.equal(n, 1);
      } finally {
        await pool.end({ timeout: 5 });
      }
    }
    await db.end({ timeout: 5 });
  },
);
