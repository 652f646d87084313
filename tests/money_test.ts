// Currency exponents have one source in code (shared/money.ts); the database's public.currencies
// must hold exactly the same currencies with the same exponents, and an unknown currency is an
// error, never a default.
import assert from "node:assert/strict";
import { connect } from "../dev/db.ts";
import { CURRENCY_EXPONENTS, currencyExponent, formatMinor } from "../shared/money.ts";
import { createRazorpayGateway } from "../shared/gateways/razorpay/mod.ts";
import { testDbUrl } from "./support/stack.ts";

Deno.test("public.currencies and CURRENCY_EXPONENTS list the same currencies and exponents", async () => {
  const sql = connect(await testDbUrl(), 1);
  try {
    const rows = await sql<{ code: string; exponent: number }[]>`
      select code, exponent from public.currencies order by code`;
    const db = Object.fromEntries(rows.map((r) => [r.code, Number(r.exponent)]));
    const code = Object.fromEntries(Object.entries(CURRENCY_EXPONENTS).sort());
    assert.ok(rows.length >= 13, `only ${rows.length} currencies in the database`);
    const onlyDb = Object.keys(db).filter((c) => !(c in code));
    const onlyCode = Object.keys(code).filter((c) => !(c in db));
    assert.deepEqual({ onlyDb, onlyCode }, { onlyDb: [], onlyCode: [] });
    assert.deepEqual(db, code);
  } finally {
    await sql.end();
  }
});

Deno.test("an unknown currency has no exponent: an error, not two decimals", () => {
  assert.equal(currencyExponent("JPY"), 0);
  assert.equal(currencyExponent("KWD"), 3);
  assert.equal(formatMinor(123456, "KWD"), "123.456 KWD");
  assert.equal(formatMinor(-5, "INR"), "-0.05 INR");
  for (const c of ["XYZ", "inr", "", "constructor", "toString"]) {
    assert.throws(() => currencyExponent(c), /unknown currency/, c);
    assert.throws(() => formatMinor(100, c), /unknown currency/, c);
  }
});

Deno.test("razorpay's refund minimum comes from the currency's exponent, none for an unknown one", () => {
  const gw = createRazorpayGateway({
    keyId: "rzp_test_x",
    keySecret: "key-secret",
    webhookSecrets: ["hook-secret"],
    apiUrl: "http://127.0.0.1:9",
    timeoutMs: 100,
  });
  gw.checkRefundAmount(100, "INR");
  gw.checkRefundAmount(1, "JPY");
  assert.throws(() => gw.checkRefundAmount(99, "INR"), /at least 100 minor units of INR/);
  assert.throws(() => gw.checkRefundAmount(990, "KWD"), /at least 1000 minor units of KWD/);
  assert.throws(() => gw.checkRefundAmount(100, "XYZ"), /unknown currency XYZ/);
});
