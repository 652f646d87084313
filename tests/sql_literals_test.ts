// Statements that carry their values as literals (shared/db.ts sqlValue and sqlCall; storeEvent's
// ingestStatement): on a real Postgres, each value reads back exactly as the parameter postgres.js
// would have bound, every field of a stored event as the gateway sent it, whatever the body holds;
// and what cannot be a literal is refused before anything is sent.
import assert from "node:assert/strict";
import { connect } from "../dev/db.ts";
import { sqlCall, sqlLiteral, type SqlValue, sqlValue } from "../shared/db.ts";
import { ingestStatement, storeEvent } from "../shared/services/ingest.ts";
import type { NormalizedEvent } from "../shared/gateways/types.ts";
import { testDbUrl } from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

// Quotes, backslashes, dollar quotes, statement breaks, escapes, newlines, characters outside the
// BMP: in a body a gateway signed, and in the fields read from it.
const HOSTILE = "O'Brien '' \\ \\' E'\\\\' '); drop table public.orders; -- $$ $x$ $$ " +
  "\\u0027 \\x27 \\047 tab\tnew\nline\r emoji 💳 é :name ?";

function event(n: string, over: Partial<NormalizedEvent> = {}): NormalizedEvent {
  return {
    gateway: "razorpay",
    eventId: `evt_lit_${n}_${crypto.randomUUID()}`,
    type: "payment.captured",
    kind: "captured",
    gatewayOrderId: `order_lit_${n}'${HOSTILE}`,
    gatewayPaymentId: `pay_lit_${n}\\'`,
    amount: 12_345,
    currency: "INR",
    occurredAt: new Date("2026-12-08T01:02:03.456Z"),
    failureCode: `code'${HOSTILE}`.slice(0, 150),
    failureReason: HOSTILE,
    raw: JSON.stringify({ entity: "event", note: HOSTILE, nul: "\u0000" }),
    bodyKey: `key'${n}\\`,
    ...over,
  };
}

Deno.test("ingestStatement: a stored event reads back exactly as sent", opts, async () => {
  const sql = connect(await testDbUrl(), 1);
  try {
    const e = event("exact");
    const effect = { action: "ignore", note: HOSTILE, nested: { q: "'", b: "\\" } };
    const { result } = await storeEvent(sql, e, effect);
    // No order has this gateway order id, and an 'ignore' effect changes nothing: stored as such.
    assert.equal(result.duplicate, false);
    const [row] = await sql`
      select gateway, event_type, kind, gateway_order_id, gateway_payment_id, amount::int,
             currency, occurred_at, raw_body, failure_code, failure_reason, effect, body_key
      from public.webhook_events where event_id = ${e.eventId}`;
    assert.deepEqual(
      { ...row, occurred_at: (row.occurred_at as Date).toISOString() },
      {
        gateway: e.gateway,
        event_type: e.type,
        kind: e.kind,
        gateway_order_id: e.gatewayOrderId,
        gateway_payment_id: e.gatewayPaymentId,
        amount: e.amount,
        currency: e.currency,
        occurred_at: e.occurredAt!.toISOString(),
        raw_body: e.raw,
        failure_code: e.failureCode,
        failure_reason: e.failureReason,
        effect,
        body_key: e.bodyKey,
      },
    );
    // The same event again is a duplicate, found by the same literals.
    assert.equal((await storeEvent(sql, e, effect)).result.outcome, "duplicate");
  } finally {
    await sql.end({ timeout: 5 });
  }
});

Deno.test(
  "ingestStatement: nulls stay null, with standard_conforming_strings off too",
  opts,
  async () => {
    const sql = connect(await testDbUrl(), 1);
    try {
      const e = event("nulls", {
        kind: null,
        gatewayOrderId: null,
        gatewayPaymentId: null,
        amount: null,
        currency: null,
        occurredAt: null,
        failureCode: null,
        failureReason: null,
        bodyKey: null,
      });
      const [{ result }] = await sql.begin(async (tx) => {
        await tx.unsafe("set local standard_conforming_strings = off");
        return await tx.unsafe(ingestStatement(e, null, true));
      });
      assert.equal(result.outcome, "ignored");
      const [row] = await sql`
      select kind, gateway_order_id, gateway_payment_id, amount, currency, occurred_at,
             failure_code, failure_reason, effect, body_key, raw_body
      from public.webhook_events where event_id = ${e.eventId}`;
      assert.equal(row.raw_body, e.raw);
      const { raw_body: _, ...rest } = row;
      assert.ok(Object.values(rest).every((v) => v === null), JSON.stringify(rest));
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
);

Deno.test("ingestStatement: refuses what cannot be a literal, before sending", () => {
  assert.throws(() => ingestStatement(event("frac", { amount: 12.5 }), null, true), TypeError);
  assert.throws(() => ingestStatement(event("nan", { amount: NaN }), null, true), TypeError);
  assert.throws(() => ingestStatement(event("big", { amount: 2 ** 60 }), null, true), TypeError);
  assert.throws(
    () => ingestStatement(event("nul", { eventId: "evt_\u0000x" }), null, true),
    TypeError,
  );
  assert.throws(() => sqlLiteral("a\u0000b"), /NUL/);
  // The gateway's failure texts are diagnostics: a NUL is dropped from them, not the event.
  const diag = ingestStatement(
    event("diag", { failureCode: "card\u0000declined", failureReason: "no\u0000funds" }),
    null,
    true,
  );
  assert.match(diag, /E'carddeclined', E'nofunds'/);
  // Only literals and the fixed SQL around them: no parameter placeholder to bind.
  assert.doesNotMatch(ingestStatement(event("text"), { a: 1 }, false), /\$\d/);
});

Deno.test("sqlValue: each value is what the bound parameter was", opts, async () => {
  const sql = connect(await testDbUrl(), 1);
  try {
    const values: SqlValue[] = [
      HOSTILE,
      "",
      "  padded  ",
      "null",
      "1; select 1",
      0,
      -42,
      9_007_199_254_740_991,
      true,
      false,
      new Date("2026-12-08T01:02:03.456Z"),
      null,
      undefined,
    ];
    for (const v of values) {
      // The same expression, once with the value bound and once with it written in (undefined
      // is bound as null: postgres.js refuses undefined).
      const [bound] = await sql.unsafe(
        "select $1::text as t",
        [(v ?? null) as string],
      );
      const [written] = await sql.unsafe(
        `select ${sqlValue(v)}::text as t`,
      );
      assert.deepEqual(written, bound, `value ${String(v)}`);
    }
    // A function resolved by its signature from untyped literals, as from untyped parameters.
    const [{ result }] = await sql.unsafe(sqlCall("pg_catalog.left", [HOSTILE, 12]));
    const [{ same }] = await sql`select left(${HOSTILE}, ${12}) as same`;
    assert.equal(result, HOSTILE.slice(0, 12));
    assert.equal(result, same);
  } finally {
    await sql.end({ timeout: 5 });
  }
});

Deno.test("sqlCall: only a schema-qualified function name", () => {
  for (
    const fn of ["orders", "settle.x; drop table t", "settle.f()", "Settle.F", "a.b.c", "", "1a.b"]
  ) {
    assert.throws(() => sqlCall(fn, []), TypeError, fn);
  }
  assert.match(sqlCall("settle.uuid_v7", []), /^select settle\.uuid_v7\(\) as result$/);
  assert.equal(
    sqlCall("settle.apply_payment", ["it's", 5, null, false]),
    "select settle.apply_payment(E'it''s', E'5', null, false) as result",
  );
});
