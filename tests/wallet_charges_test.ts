// Spending the wallet end to end against the real Postgres: charges, holds (capture, void,
// expiry) racing each other, refunds of charges, who may charge and who may read, bad input,
// and paying plans and products from the balance. Every test ends with an empty ledger_audit().
import assert from "node:assert/strict";
import {
  client,
  createUser,
  invoke,
  raw,
  type Reply,
  snapshot,
  type TestStack,
  type TestUser,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { assertContractError } from "./support/contract.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

// ------------------------------------------------------------------ arranging

/** Credits a wallet as a paid top-up would (the ledger is the only way a balance moves). */
async function fund(s: TestStack, accountId: string, amount: number, currency = "INR") {
  await s.db`select settle.post_transaction('topup', ${`test-fund:${crypto.randomUUID()}`}, null,
    'test funding', ${
    s.db.json([
      { wallet_id: await walletId(s, accountId, currency), currency, amount },
      { system_account: "gateway:razorpay", currency, amount: -amount },
    ])
  })`;
}

async function walletId(s: TestStack, accountId: string, currency: string): Promise<string> {
  const [w] = await s.db`select settle.ensure_wallet(${accountId}, ${currency}) as id`;
  return w.id;
}

function post(
  s: TestStack,
  path: string,
  body?: unknown,
  opts: { key?: string; token?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (opts.key !== undefined) headers["idempotency-key"] = opts.key;
  return raw(s, path, {
    method: "POST",
    token: opts.token ?? s.serviceRoleKey,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const get = (s: TestStack, path: string, token: string) => raw(s, path, { method: "GET", token });

function charge(s: TestStack, body: Record<string, unknown>, key = crypto.randomUUID()) {
  return post(s, "wallet-charges", body, { key });
}

async function hold(s: TestStack, user: TestUser, amount: number, extra = {}) {
  const r = await charge(s, {
    account_id: user.accountId,
    amount,
    currency: "INR",
    capture: false,
    ...extra,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.equal(r.body.charge.status, "held");
  return r.body.charge as { id: string; amount: number; expires_at: string };
}

/** The signed sum of a house account's entries in a currency. */
async function houseBalance(s: TestStack, account: string, currency = "INR") {
  const [r] = await s.db`select coalesce(sum(amount), 0)::bigint as total from public.ledger_entries
    where system_account = ${account} and currency = ${currency}`;
  return Number(r.total);
}

const heldAccount = (u: TestUser) => `held:${u.accountId.replaceAll("-", "")}`;

async function assertAuditClean(s: TestStack) {
  const audit = await s.db`select * from settle.ledger_audit()`;
  assert.deepEqual([...audit], [], `ledger_audit: ${JSON.stringify(audit)}`);
}

async function events(s: TestStack, subjectId: string) {
  const rows = await s.db`select type from public.outbox_events where subject_id = ${subjectId}
    order by created_at`;
  return rows.map((r) => r.type as string);
}

async function chargeRows(s: TestStack, accountId: string) {
  const [r] = await s.db`select count(*)::int as n from public.wallet_charges
    where account_id = ${accountId}`;
  return r.n as number;
}

// ------------------------------------------------------------------ charges

Deno.test({
  ...opts,
  name:
    "a charge debits the wallet and credits revenue once per key; a too-small balance writes nothing",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "charge");
      await fund(s, u.accountId, 10000);
      const revenueBefore = await houseBalance(s, "revenue:wallet_charges");
      const body = { account_id: u.accountId, amount: 2500, currency: "inr", reference: "job-1" };
      const key = crypto.randomUUID();

      const first = await charge(s, body, key);
      assert.equal(first.status, 201, JSON.stringify(first.body));
      const c = first.body.charge;
      assert.equal(c.status, "captured");
      assert.equal(c.amount, 2500);
      assert.equal(c.currency, "INR");
      assert.equal(c.reference, "job-1");
      assert.equal(c.account_id, u.accountId);
      assert.equal(await walletBalance(s.db, u.accountId), 7500);
      assert.equal(await houseBalance(s, "revenue:wallet_charges") - revenueBefore, 2500);
      const [tx] = await s.db`select count(*)::int as entries, count(distinct e.transaction_id)::int
          as txs from public.ledger_entries e join public.ledger_transactions t
          on t.id = e.transaction_id where t.idempotency_key = ${"wallet_charge:" + c.id}`;
      assert.deepEqual({ ...tx }, { entries: 2, txs: 1 }, "one transaction, two entries");

      const again = await charge(s, body, key);
      assert.equal(again.status, 200);
      assert.equal(again.body.charge.id, c.id);
      assert.equal(await walletBalance(s.db, u.accountId), 7500, "a replay debits nothing");

      const other = await charge(s, { ...body, amount: 2600 }, key);
      assertContractError(other, 409, "idempotency_conflict");

      const before = await snapshot(s.db);
      const rowsBefore = await chargeRows(s, u.accountId);
      const tooMuch = await charge(s, { ...body, amount: 7501 });
      assertContractError(tooMuch, 409, "insufficient_funds");
      assert.deepEqual(await snapshot(s.db), before, "a refused charge writes nothing");
      assert.equal(await chargeRows(s, u.accountId), rowsBefore);
      assert.deepEqual(await events(s, c.id), ["wallet_charge.captured"]);
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name:
    "64 concurrent charges against one wallet never overdraw it; the successes sum to the debit",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "hot");
      await fund(s, u.accountId, 20000);
      // 64 charges asking for 32,000 in all against 20,000: some must be refused.
      const amounts = Array.from({ length: 64 }, (_, i) => 300 + (i % 5) * 50);
      const asked = amounts.reduce((a, b) => a + b, 0);
      assert.ok(asked > 20000);
      const replies = await Promise.all(
        amounts.map((amount) => charge(s, { account_id: u.accountId, amount, currency: "INR" })),
      );
      let charged = 0;
      let refused = 0;
      for (const [i, r] of replies.entries()) {
        if (r.status === 201) {
          charged += amounts[i];
        } else {
          assertContractError(r, 409, "insufficient_funds");
          refused++;
        }
      }
      assert.ok(refused > 0, "the balance ran out");
      assert.ok(charged <= 20000 && charged > 20000 - 400, `charged ${charged}`);
      assert.equal(await walletBalance(s.db, u.accountId), 20000 - charged);
      const [r] = await s.db`select count(*)::int as n, coalesce(sum(amount), 0)::bigint as total
        from public.wallet_charges where account_id = ${u.accountId}`;
      assert.equal(r.n, 64 - refused);
      assert.equal(Number(r.total), charged);
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "the same Idempotency-Key from 16 senders at once makes one charge",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "samekey");
      // Exactly enough for one: a sender that waited for the wallet while the first charged it
      // must get that charge back, not insufficient_funds.
      await fund(s, u.accountId, 1000);
      const key = crypto.randomUUID();
      const body = { account_id: u.accountId, amount: 1000, currency: "INR", capture: false };
      const replies = await Promise.all(Array.from({ length: 16 }, () => charge(s, body, key)));
      const statuses = replies.map((r) => r.status).sort();
      assert.deepEqual(statuses, [...Array(15).fill(200), 201], JSON.stringify(statuses));
      assert.equal(new Set(replies.map((r) => r.body.charge.id)).size, 1);
      assert.equal(await chargeRows(s, u.accountId), 1);
      assert.equal(await walletBalance(s.db, u.accountId), 0);
      assert.equal(await houseBalance(s, heldAccount(u)), 1000);
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ holds

Deno.test({
  ...opts,
  name: "capture, void and the expiry sweep race on a hold and exactly one wins, 12 times over",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "race");
      await fund(s, u.accountId, 100000);
      const wins: Record<string, number> = { capture: 0, void: 0, expiry: 0 };
      for (let round = 0; round < 12; round++) {
        // Due within the sweep's horizon below, not yet expired for capture.
        const h = await hold(s, u, 1000, { expires_in_seconds: 1 });
        // All three are in flight together; each round gives a different one a head start of some
        // milliseconds so that every path gets to win some rounds. The database decides.
        const after = (i: number) =>
          new Promise((r) => setTimeout(r, i === round % 3 ? 0 : 20 + 5 * (round % 4)));
        const [cap, voided, swept] = await Promise.all([
          after(0).then(() => post(s, `wallet-charges/${h.id}/capture`, { amount: 400 })),
          after(1).then(() => post(s, `wallet-charges/${h.id}/void`)),
          after(2).then(() =>
            s.db`select settle.expire_wallet_holds(now() + interval '2 seconds', 1000) as n`
          ).then((rows) => rows[0].n as number),
        ]);
        const won = [cap.status === 200, voided.status === 200, swept > 0];
        assert.equal(
          won.filter(Boolean).length,
          1,
          `round ${round}: ${cap.status} ${voided.status} ${swept}`,
        );
        for (const r of [cap, voided]) {
          if (r.status !== 200) assertContractError(r, 409, "charge_not_held");
        }
        const winner = won[0] ? "capture" : won[1] ? "void" : "expiry";
        wins[winner]++;
        const [row] = await s.db`select status, release_reason, amount_captured from
          public.wallet_charges where id = ${h.id}`;
        const want = winner === "capture"
          ? { status: "captured", release_reason: null, amount_captured: "400" }
          : {
            status: "released",
            release_reason: winner === "void" ? "voided" : "expired",
            amount_captured: "0",
          };
        assert.deepEqual({ ...row }, want);
        const [n] = await s.db`select count(*)::int as n from public.ledger_transactions
          where idempotency_key in (${"wallet_capture:" + h.id}, ${"wallet_release:" + h.id})`;
        assert.equal(n.n, 1, "one resolution posted");
      }
      console.log(`hold race winners: ${JSON.stringify(wins)}`);
      assert.equal(await houseBalance(s, heldAccount(u)), 0, "nothing left on hold");
      assert.equal(
        await walletBalance(s.db, u.accountId),
        100000 - 400 * wins.capture,
        JSON.stringify(wins),
      );
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name:
    "a partial capture returns the rest to the wallet; over the hold or after expiry is refused",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "partial");
      await fund(s, u.accountId, 10000);
      const revenueBefore = await houseBalance(s, "revenue:wallet_charges");
      const h = await hold(s, u, 3000, { description: "GPU minutes" });
      assert.equal(await walletBalance(s.db, u.accountId), 7000, "held is not spendable");
      assert.equal(await houseBalance(s, heldAccount(u)), 3000, "held is the account's");
      const expires = Date.parse(h.expires_at) - Date.now();
      assert.ok(Math.abs(expires - 86_400_000) < 60_000, "a hold lasts 24 hours by default");

      assertContractError(
        await post(s, `wallet-charges/${h.id}/capture`, { amount: 3001 }),
        409,
        "capture_exceeds_hold",
      );
      const cap = await post(s, `wallet-charges/${h.id}/capture`, { amount: 1200 });
      assert.equal(cap.status, 200, JSON.stringify(cap.body));
      assert.equal(cap.body.charge.status, "captured");
      assert.equal(cap.body.charge.amount_captured, 1200);
      assert.equal(await walletBalance(s.db, u.accountId), 8800, "the rest came back");
      assert.equal(await houseBalance(s, heldAccount(u)), 0);
      assert.equal(await houseBalance(s, "revenue:wallet_charges") - revenueBefore, 1200);
      assertContractError(await post(s, `wallet-charges/${h.id}/capture`), 409, "charge_not_held");
      assertContractError(await post(s, `wallet-charges/${h.id}/void`), 409, "charge_not_held");
      assert.deepEqual(await events(s, h.id), ["wallet_charge.held", "wallet_charge.captured"]);

      // A full capture without an amount; and a void.
      const full = await hold(s, u, 800);
      const all = await post(s, `wallet-charges/${full.id}/capture`);
      assert.equal(all.body.charge.amount_captured, 800);
      const v = await hold(s, u, 500);
      const voided = await post(s, `wallet-charges/${v.id}/void`);
      assert.equal(voided.status, 200);
      assert.equal(voided.body.charge.release_reason, "voided");
      assert.deepEqual(await events(s, v.id), ["wallet_charge.held", "wallet_charge.released"]);
      assert.equal(await walletBalance(s.db, u.accountId), 8000);

      // Past its expiry a hold cannot be captured, even before the sweep ran; the sweep (a
      // reconcile step) releases it.
      const short = await hold(s, u, 700, { expires_in_seconds: 1 });
      while (Date.now() <= Date.parse(short.expires_at) + 50) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assertContractError(
        await post(s, `wallet-charges/${short.id}/capture`),
        409,
        "hold_expired",
      );
      const run = await post(s, "reconcile", {});
      assert.equal(run.status, 200, JSON.stringify(run.body));
      assert.ok(run.body.holds.released >= 1, JSON.stringify(run.body));
      const [row] = await s.db`select status, release_reason from public.wallet_charges
        where id = ${short.id}`;
      assert.deepEqual({ ...row }, { status: "released", release_reason: "expired" });
      assert.equal(await walletBalance(s.db, u.accountId), 8000);
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "a refund credits a captured charge back, never beyond its amount; keyed refunds replay",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "refund");
      await fund(s, u.accountId, 5000);
      const c = (await charge(s, { account_id: u.accountId, amount: 1000, currency: "INR" })).body
        .charge;
      const key = crypto.randomUUID();
      const r1 = await post(s, `wallet-charges/${c.id}/refund`, { amount: 600 }, { key });
      assert.equal(r1.status, 201, JSON.stringify(r1.body));
      assert.equal(r1.body.refund.amount, 600);
      assert.equal(r1.body.charge.amount_refunded, 600);
      const replay = await post(s, `wallet-charges/${c.id}/refund`, { amount: 600 }, { key });
      assert.equal(replay.status, 200);
      assert.equal(replay.body.refund.id, r1.body.refund.id);
      assertContractError(
        await post(s, `wallet-charges/${c.id}/refund`, { amount: 700 }, { key }),
        409,
        "idempotency_conflict",
      );
      assert.equal(await walletBalance(s.db, u.accountId), 4600);

      const before = await snapshot(s.db);
      assertContractError(
        await post(s, `wallet-charges/${c.id}/refund`, { amount: 401 }),
        409,
        "refund_exceeds_charge",
      );
      assert.deepEqual(await snapshot(s.db), before);
      const rest = await post(s, `wallet-charges/${c.id}/refund`);
      assert.equal(rest.status, 201);
      assert.equal(rest.body.refund.amount, 400);
      assert.equal(rest.body.charge.status, "refunded");
      assertContractError(
        await post(s, `wallet-charges/${c.id}/refund`, { amount: 1 }),
        409,
        "refund_exceeds_charge",
      );
      assert.equal(await walletBalance(s.db, u.accountId), 5000);
      assert.deepEqual(await events(s, c.id), [
        "wallet_charge.captured",
        "wallet_charge.refunded",
        "wallet_charge.refunded",
      ]);

      // Only captured money can be refunded; a partial capture refunds at most what it took.
      const h = await hold(s, u, 900);
      assertContractError(
        await post(s, `wallet-charges/${h.id}/refund`),
        409,
        "charge_not_captured",
      );
      await post(s, `wallet-charges/${h.id}/capture`, { amount: 300 });
      assertContractError(
        await post(s, `wallet-charges/${h.id}/refund`, { amount: 301 }),
        409,
        "refund_exceeds_charge",
      );
      // 8 refunds of 200 racing against 300 captured: exactly one fits.
      const racing = await Promise.all(
        Array.from({ length: 8 }, () => post(s, `wallet-charges/${h.id}/refund`, { amount: 200 })),
      );
      assert.equal(racing.filter((r) => r.status === 201).length, 1);
      for (const r of racing.filter((r) => r.status !== 201)) {
        assertContractError(r, 409, "refund_exceeds_charge");
      }
      assert.equal(await walletBalance(s.db, u.accountId), 5000 - 100);
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ who may

Deno.test({
  ...opts,
  name: "a user token cannot charge (403); a member of another account sees none of it",
  fn: async () => {
    await withStack(async (s) => {
      const owner = await createUser(s.db, "owner");
      const stranger = await createUser(s.db, "stranger");
      await fund(s, owner.accountId, 5000);
      const before = await snapshot(s.db);
      const mine = await post(s, "wallet-charges", {
        account_id: owner.accountId,
        amount: 100,
        currency: "INR",
      }, { key: "k1", token: owner.token });
      assertContractError(mine, 403, "forbidden");
      assert.deepEqual(await snapshot(s.db), before, "a refused charge writes nothing");
      assert.equal(await chargeRows(s, owner.accountId), 0);

      const c = (await charge(s, { account_id: owner.accountId, amount: 100, currency: "INR" }))
        .body.charge;
      const h = await hold(s, owner, 200);
      for (const path of [`${h.id}/capture`, `${h.id}/void`, `${c.id}/refund`]) {
        assertContractError(
          await post(s, `wallet-charges/${path}`, undefined, { token: owner.token }),
          403,
          "forbidden",
        );
      }

      const listed = await get(s, "wallet-charges", owner.token);
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.body.charges.map((x: { id: string }) => x.id), [h.id, c.id]);
      const held = await get(s, "wallet-charges?status=held", owner.token);
      assert.deepEqual(held.body.charges.map((x: { id: string }) => x.id), [h.id]);
      const one = await get(s, `wallet-charges/${c.id}`, owner.token);
      assert.equal(one.body.charge.amount, 100);

      const theirs = await get(s, "wallet-charges", stranger.token);
      assert.equal(theirs.status, 200);
      assert.deepEqual(theirs.body.charges, []);
      const filtered = await get(s, `wallet-charges?account_id=${owner.accountId}`, stranger.token);
      assert.deepEqual(filtered.body.charges, []);
      assertContractError(await get(s, `wallet-charges/${c.id}`, stranger.token), 404, "not_found");
      assert.equal(await walletBalance(s.db, owner.accountId), 4700);
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ bad input

Deno.test({
  ...opts,
  name: "bad charge input gets the contract's 4xx and writes nothing",
  fn: async (t) => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "bad");
      await fund(s, u.accountId, 50000);
      const h = await hold(s, u, 1000);
      const ok = { account_id: u.accountId, amount: 100, currency: "INR" };
      const cases: [string, number, string, () => Promise<Reply>][] = [
        ["zero amount", 400, "invalid_request", () => charge(s, { ...ok, amount: 0 })],
        ["negative amount", 400, "invalid_request", () => charge(s, { ...ok, amount: -100 })],
        ["fractional amount", 400, "invalid_request", () => charge(s, { ...ok, amount: 10.5 })],
        ["amount as a string", 400, "invalid_request", () => charge(s, { ...ok, amount: "100" })],
        // INR's per-currency bound is 10,000,000 minor units (currencies.topup_max).
        [
          "over the INR bound",
          400,
          "invalid_request",
          () => charge(s, { ...ok, amount: 10_000_001 }),
        ],
        [
          "over any bound",
          400,
          "invalid_request",
          () => charge(s, { ...ok, amount: 100_000_000_001 }),
        ],
        ["unknown currency", 400, "invalid_request", () => charge(s, { ...ok, currency: "XYZ" })],
        [
          "not a currency code",
          400,
          "invalid_request",
          () => charge(s, { ...ok, currency: "RUPEES" }),
        ],
        [
          "a currency with no wallet",
          409,
          "insufficient_funds",
          () => charge(s, { ...ok, currency: "EUR" }),
        ],
        [
          "unknown account",
          404,
          "not_found",
          () => charge(s, { ...ok, account_id: crypto.randomUUID() }),
        ],
        [
          "account not a uuid",
          400,
          "invalid_request",
          () => charge(s, { ...ok, account_id: "acct_1" }),
        ],
        ["unknown field", 400, "invalid_request", () => charge(s, { ...ok, user_id: u.id })],
        [
          "expiry on a charge",
          400,
          "invalid_request",
          () => charge(s, { ...ok, expires_in_seconds: 60 }),
        ],
        [
          "expiry of zero",
          400,
          "invalid_request",
          () => charge(s, { ...ok, capture: false, expires_in_seconds: 0 }),
        ],
        [
          "capture not a boolean",
          400,
          "invalid_request",
          () => charge(s, { ...ok, capture: "false" }),
        ],
        [
          "metadata not an object",
          400,
          "invalid_request",
          () => charge(s, { ...ok, metadata: [1] }),
        ],
        [
          "metadata with U+0000 (jsonb cannot store it)",
          400,
          "invalid_request",
          () => charge(s, { ...ok, metadata: { note: "a\u0000b" } }),
        ],
        [
          "description with control characters",
          400,
          "invalid_request",
          () => charge(s, { ...ok, description: "a\u0000b" }),
        ],
        ["no Idempotency-Key", 400, "invalid_request", () => post(s, "wallet-charges", ok)],
        [
          "a bad Idempotency-Key",
          400,
          "invalid_request",
          () => post(s, "wallet-charges", ok, { key: "has space" }),
        ],
        ["not JSON", 400, "invalid_json", () =>
          raw(s, "wallet-charges", {
            method: "POST",
            token: s.serviceRoleKey,
            headers: { "content-type": "application/json", "idempotency-key": "x" },
            body: "{",
          })],
        [
          "no token",
          401,
          "unauthorized",
          () => raw(s, "wallet-charges", { method: "POST", body: "{}" }),
        ],
        [
          "capture of zero",
          400,
          "invalid_request",
          () => post(s, `wallet-charges/${h.id}/capture`, { amount: 0 }),
        ],
        [
          "fractional capture",
          400,
          "invalid_request",
          () => post(s, `wallet-charges/${h.id}/capture`, { amount: 1.5 }),
        ],
        [
          "capture of an unknown charge",
          404,
          "not_found",
          () => post(s, `wallet-charges/${crypto.randomUUID()}/capture`),
        ],
        [
          "capture of a non-uuid",
          400,
          "invalid_request",
          () => post(s, "wallet-charges/nope/capture"),
        ],
        [
          "void with options",
          400,
          "invalid_request",
          () => post(s, `wallet-charges/${h.id}/void`, { amount: 1 }),
        ],
        [
          "negative refund",
          400,
          "invalid_request",
          () => post(s, `wallet-charges/${h.id}/refund`, { amount: -1 }),
        ],
        ["an unknown route", 404, "not_found", () => post(s, `wallet-charges/${h.id}/settle`)],
        [
          "DELETE",
          405,
          "method_not_allowed",
          () => raw(s, "wallet-charges", { method: "DELETE", token: s.serviceRoleKey }),
        ],
        [
          "a bad list filter",
          400,
          "invalid_request",
          () => get(s, "wallet-charges?status=pending", u.token),
        ],
      ];
      for (const [name, status, code, send] of cases) {
        await t.step(name, async () => {
          const before = await snapshot(s.db);
          const rows = await chargeRows(s, u.accountId);
          assertContractError(await send(), status, code);
          assert.deepEqual(await snapshot(s.db), before);
          assert.equal(await chargeRows(s, u.accountId), rows);
        });
      }
      const [row] = await s.db`select status from public.wallet_charges where id = ${h.id}`;
      assert.equal(row.status, "held");
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ the SQL functions

Deno.test({
  ...opts,
  name: "the SQL functions give the same answers and only the service role may call them",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "sql");
      await fund(s, u.accountId, 3000);
      const asRole = (role: string, q: string) =>
        s.db.begin(async (tx) => {
          await tx`select set_config('role', ${role}, true),
            set_config('request.jwt.claims', ${JSON.stringify({ role, sub: u.id })}, true)`;
          return await tx.unsafe(q);
        });
      const call = `select settle.charge_wallet('${u.accountId}', 500, 'INR', 'sql-1') as r`;
      await assert.rejects(asRole("authenticated", call), /permission denied/);
      await assert.rejects(asRole("anon", call), /permission denied/);
      const [ok] = await asRole("service_role", call);
      assert.equal(ok.r.charge.status, "captured");
      assert.equal(ok.r.replayed, false);
      await assert.rejects(
        asRole(
          "service_role",
          `select settle.charge_wallet('${u.accountId}', 5000, 'INR', 'sql-2')`,
        ),
        (e: { code?: string; hint?: string }) =>
          e.code === "ST409" && e.hint === "insufficient_funds",
      );
      for (
        const fn of [
          `settle.capture_wallet_charge('${ok.r.charge.id}')`,
          `settle.void_wallet_charge('${ok.r.charge.id}')`,
          `settle.refund_wallet_charge('${ok.r.charge.id}')`,
          "settle.expire_wallet_holds()",
        ]
      ) {
        await assert.rejects(asRole("authenticated", `select ${fn}`), /permission denied/, fn);
      }
      // Members read their charges through RLS, and their spending statistics.
      const [seen] = await asRole(
        "authenticated",
        "select count(*)::int as n from public.wallet_charges",
      );
      assert.equal(seen.n, 1);
      const stats = await asRole(
        "authenticated",
        "select currency, charges, captured, net from public.wallet_spending_stats",
      );
      assert.deepEqual(stats.map((r) => ({ ...r })), [
        { currency: "INR", charges: "1", captured: "500", net: "500" },
      ]);
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "ledger_audit finds a held account that does not match the open holds",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "drift");
      await fund(s, u.accountId, 3000);
      await hold(s, u, 1000);
      await assertAuditClean(s);
      // Money put on the held account without a hold: the held account no longer equals the
      // open holds, though every transaction balances.
      const key = `drift:${crypto.randomUUID()}`;
      await s.db`select settle.post_transaction('adjustment', ${key}, null, 'forged hold', ${
        s.db.json([
          { wallet_id: u.walletId, currency: "INR", amount: -500 },
          { system_account: heldAccount(u), currency: "INR", amount: 500 },
        ])
      })`;
      const audit = await s.db`select invariant, subject from settle.ledger_audit()`;
      assert.deepEqual(audit.map((a) => ({ ...a })), [
        { invariant: "held_account_drift", subject: `${heldAccount(u)} INR` },
      ]);
      // Put it back so the shared database audits clean for the suites after this one.
      await s.db`select settle.post_transaction('adjustment', ${key + ":undo"}, null, 'undo', ${
        s.db.json([
          { system_account: heldAccount(u), currency: "INR", amount: -500 },
          { wallet_id: u.walletId, currency: "INR", amount: 500 },
        ])
      })`;
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ paying from the balance

async function teamWith(s: TestStack, owner: TestUser, member: TestUser) {
  const [a] = await s.db`insert into public.accounts (name) values ('team') returning id`;
  await s.db`insert into public.account_members (account_id, user_id, role) values
    (${a.id}, ${owner.id}, 'owner'), (${a.id}, ${member.id}, 'member')`;
  return a.id as string;
}

Deno.test({
  ...opts,
  name:
    "create-order with gateway wallet pays a plan from the balance, with a gateway payment's effects",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "payer");
      const c = client(s, u.token);
      const body = { gateway: "wallet", purpose: "plan", plan_id: "pro_monthly" };
      await fund(s, u.accountId, 29899); // one short of the plan's 29900

      const before = await snapshot(s.db);
      const short = await invoke(c, "create-order", body);
      assertContractError(short, 409, "insufficient_funds");
      assert.deepEqual(await snapshot(s.db), before, "a refused wallet payment writes nothing");

      await fund(s, u.accountId, 101);
      const key = crypto.randomUUID();
      // Eight copies at once under one key, with a balance that covers one: one pays, and the
      // copies that waited for the wallet are answered with that order, not insufficient_funds.
      const copies = await Promise.all(
        Array.from(
          { length: 8 },
          () => invoke(c, "create-order", body, { headers: { "Idempotency-Key": key } }),
        ),
      );
      const paid = copies.find((r) => r.status === 201)!;
      assert.ok(paid, JSON.stringify(copies.map((r) => r.body)));
      assert.deepEqual(copies.map((r) => r.status).sort(), [...Array(7).fill(200), 201]);
      const order = paid.body.order;
      for (const again of copies) assert.equal(again.body.order.id, order.id);
      assert.equal(order.status, "paid");
      assert.equal(order.gateway, "wallet");
      assert.equal(order.amount, 29900);
      assert.equal(paid.body.checkout, undefined, "no checkout: nothing to pay at a gateway");
      assert.deepEqual(paid.body.wallet, { currency: "INR", balance: 100 });
      assert.equal(await walletBalance(s.db, u.accountId), 100);
      const [sub] = await s.db`select status, plan_id from public.subscriptions
        where account_id = ${u.accountId}`;
      assert.deepEqual({ ...sub }, { status: "active", plan_id: "pro_monthly" });
      const [acct] = await s.db`select is_pro from public.accounts where id = ${u.accountId}`;
      assert.equal(acct.is_pro, true);
      assert.deepEqual(await events(s, order.id), ["order.paid"]);
      const [posting] = await s.db`select e.system_account, e.wallet_id, e.amount
        from public.ledger_entries e join public.ledger_transactions t on t.id = e.transaction_id
        where t.idempotency_key = ${"order_paid:" + order.id} order by e.amount`;
      assert.equal(posting.wallet_id, u.walletId, "the wallet paid, not a gateway's clearing");

      assert.equal(await walletBalance(s.db, u.accountId), 100, "a replay pays nothing");
      assertContractError(
        await invoke(c, "create-order", { ...body, gateway: "razorpay" }, {
          headers: { "Idempotency-Key": key },
        }),
        409,
        "idempotency_conflict",
      );

      const [stat] = await s.db.begin(async (tx) => {
        await tx`select set_config('role', 'service_role', true)`;
        return await tx`select orders_paid, gross from public.payment_stats
          where gateway = 'wallet' and currency = 'INR' and day = current_date`;
      });
      assert.ok(Number(stat.orders_paid) >= 1 && Number(stat.gross) >= 29900);

      // Reconciliation never claims it; a refund goes back to the wallet, no gateway asked.
      const run = await post(s, "reconcile", { older_than_seconds: 0 });
      assert.equal(run.status, 200, JSON.stringify(run.body));
      const [rec] = await s.db`select reconcile_attempts from public.orders where id = ${order.id}`;
      assert.equal(rec.reconcile_attempts, 0);
      const refund = await invoke(c, "refunds", { order_id: order.id, amount: 9900 });
      assert.equal(refund.status, 201, JSON.stringify(refund.body));
      assert.equal(refund.body.refund.status, "processed");
      assert.equal(refund.body.refund.gateway, "wallet");
      assert.equal(refund.body.order.status, "partially_refunded");
      assert.equal(await walletBalance(s.db, u.accountId), 10000);
      // The rest is an operator's refund: a buyer may refund only the plan's unused share.
      const full = await post(s, "refunds", { order_id: order.id });
      assert.equal(full.status, 201, JSON.stringify(full.body));
      assert.equal(full.body.order.status, "refunded");
      assert.equal(await walletBalance(s.db, u.accountId), 30000);
      const [after] = await s.db`select status from public.subscriptions
        where account_id = ${u.accountId}`;
      assert.equal(after.status, "canceled", "a refunded plan takes its period back");
      // No gateway was asked: a wallet refund records no gateway attempt and no gateway error.
      const asked = await s.db`select gateway_refund_id, gateway_attempts, last_gateway_error
        from public.refunds where order_id = ${order.id}`;
      assert.equal(asked.length, 2);
      for (const r of asked) {
        assert.match(r.gateway_refund_id, /^wallet_[0-9a-f]{32}$/);
        assert.equal(r.gateway_attempts, 0);
        assert.equal(r.last_gateway_error, null);
      }
      const refundEvents = await s.db`select type from public.outbox_events
        where subject_type = 'refund' and subject_id = ${full.body.refund.id} order by created_at`;
      assert.deepEqual(refundEvents.map((r) => r.type), ["refund.created", "refund.processed"]);
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "paying from the wallet: products, owners only, and what it refuses",
  fn: async () => {
    await withStack(async (s) => {
      const owner = await createUser(s.db, "teamowner");
      const member = await createUser(s.db, "teammember");
      const team = await teamWith(s, owner, member);
      await fund(s, team, 5000, "USD");
      const product = { gateway: "wallet", purpose: "product", product_id: "sticker_pack" };
      const before = await snapshot(s.db);
      assertContractError(
        await invoke(client(s, member.token), "create-order", { ...product, account_id: team }),
        403,
        "forbidden",
      );
      assertContractError(
        await invoke(client(s, owner.token), "create-order", product),
        409,
        "insufficient_funds", // the personal account has no USD wallet
      );
      assertContractError(
        await invoke(client(s, owner.token), "create-order", {
          gateway: "wallet",
          purpose: "wallet_topup",
          amount: 1000,
          currency: "INR",
        }),
        400,
        "invalid_request",
      );
      assertContractError(
        await invoke(client(s, owner.token), "create-order", {
          ...product,
          product_id: "no_such_thing",
          account_id: team,
        }),
        404,
        "not_found",
      );
      assertContractError(
        await invoke(client(s, member.token), "create-order", {
          ...product,
          account_id: crypto.randomUUID(),
        }),
        404,
        "not_found",
      );
      assert.deepEqual(await snapshot(s.db), before);

      const paid = await invoke(client(s, owner.token), "create-order", {
        ...product,
        account_id: team,
      });
      assert.equal(paid.status, 201, JSON.stringify(paid.body));
      assert.deepEqual(paid.body.wallet, { currency: "USD", balance: 3500 });
      // The member sees the order, as any of the account's orders.
      const [seen] = await s.db.begin(async (tx) => {
        await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims',
          ${JSON.stringify({ role: "authenticated", sub: member.id })}, true)`;
        return await tx`select count(*)::int as n from public.orders where account_id = ${team}`;
      });
      assert.equal(seen.n, 1);
      // A wallet order can never be left unpaid (so no gateway or reconciler ever sees one).
      await assert.rejects(
        s.db`insert into public.orders (account_id, created_by, gateway, purpose, product_id,
          amount, currency) values (${team}, ${owner.id}, 'wallet', 'product', 'sticker_pack',
          1500, 'USD')`,
        /a wallet order is paid in the transaction that creates it/,
      );
      await assertAuditClean(s);
    });
  },
});
