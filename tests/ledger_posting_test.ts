// Ledger postings fired at once against the real Postgres (20261201000500_ledger.sql: one
// statement-level trigger moves each wallet once per posting). Many concurrent postings to one
// wallet keep its balance exact; concurrent debits that together overdraw succeed exactly as far
// as the balance goes; opposite transfers between two wallets do not deadlock. Every test ends
// with each wallet equal to its entries and an empty ledger_audit().
import assert from "node:assert/strict";
import { connect, type Sql } from "../dev/db.ts";
import { createUser, testDbUrl, type TestUser } from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

type Leg = { wallet_id: string; currency: string; amount: number } | {
  system_account: string;
  currency: string;
  amount: number;
};

const wallet = (u: TestUser, amount: number): Leg => ({
  wallet_id: u.walletId,
  currency: "INR",
  amount,
});
const house = (amount: number, account = "gateway:razorpay"): Leg => ({
  system_account: account,
  currency: "INR",
  amount,
});

function post(db: Sql, kind: string, legs: Leg[]) {
  return db`select settle.post_transaction(${kind}, ${`posting-test:${crypto.randomUUID()}`},
    null, 'ledger posting test', ${db.json(legs)}) as id`;
}

/** The wallet's balance and the sum of its entries. */
async function balanceAndEntries(db: Sql, u: TestUser) {
  const [r] = await db`select w.balance::bigint as balance,
      (select coalesce(sum(e.amount), 0)::bigint from public.ledger_entries e
       where e.wallet_id = w.id) as entries
    from public.wallets w where w.id = ${u.walletId}`;
  return { balance: Number(r.balance), entries: Number(r.entries) };
}

async function withDb(fn: (db: Sql) => Promise<void>) {
  const db = connect(await testDbUrl(), 16);
  try {
    await fn(db);
    const audit = await db`select invariant, subject, detail from settle.ledger_audit()`;
    assert.deepEqual([...audit], [], "ledger_audit() is empty");
  } finally {
    await db.end({ timeout: 5 });
  }
}

Deno.test("64 concurrent postings to one wallet keep its balance exact", opts, async () => {
  await withDb(async (db) => {
    const u = await createUser(db, "posting-hot");
    await post(db, "topup", [wallet(u, 100_000), house(-100_000)]);
    const credits = Array.from({ length: 32 }, (_, k) => 1_000 + k);
    const debits = Array.from({ length: 32 }, () => 300);
    await Promise.all([
      ...credits.map((a) => post(db, "topup", [wallet(u, a), house(-a)])),
      ...debits.map((a) => post(db, "purchase", [wallet(u, -a), house(a, "revenue:product")])),
    ]);
    const want = 100_000 + credits.reduce((s, a) => s + a, 0) - 32 * 300;
    assert.deepEqual(await balanceAndEntries(db, u), { balance: want, entries: want });
  });
});

Deno.test(
  "concurrent debits that together overdraw succeed exactly as far as the balance goes",
  opts,
  async () => {
    await withDb(async (db) => {
      const u = await createUser(db, "posting-overdraw");
      await post(db, "topup", [wallet(u, 1_000), house(-1_000)]);
      const results = await Promise.allSettled(
        Array.from(
          { length: 20 },
          () => post(db, "purchase", [wallet(u, -100), house(100, "revenue:product")]),
        ),
      );
      const ok = results.filter((r) => r.status === "fulfilled").length;
      const refused = results.filter((r) =>
        r.status === "rejected" && (r.reason as { code?: string }).code === "ST409"
      ).length;
      assert.equal(ok, 10, "ten debits of 100 fit a balance of 1000");
      assert.equal(refused, 10, "the other ten are refused as insufficient funds");
      assert.deepEqual(await balanceAndEntries(db, u), { balance: 0, entries: 0 });
    });
  },
);

Deno.test(
  "opposite transfers between two wallets, all at once, neither deadlock nor drift",
  opts,
  async () => {
    await withDb(async (db) => {
      const a = await createUser(db, "posting-a");
      const b = await createUser(db, "posting-b");
      await post(db, "topup", [wallet(a, 10_000), wallet(b, 10_000), house(-20_000)]);
      await Promise.all(
        Array.from(
          { length: 40 },
          (_, k) =>
            k % 2
              ? post(db, "adjustment", [wallet(a, -100 - k), wallet(b, 100 + k)])
              : post(db, "adjustment", [wallet(b, -50 - k), wallet(a, 50 + k)]),
        ),
      );
      const toB = Array.from({ length: 20 }, (_, i) => 100 + 2 * i + 1).reduce((s, x) => s + x, 0);
      const toA = Array.from({ length: 20 }, (_, i) => 50 + 2 * i).reduce((s, x) => s + x, 0);
      assert.deepEqual(await balanceAndEntries(db, a), {
        balance: 10_000 - toB + toA,
        entries: 10_000 - toB + toA,
      });
      assert.deepEqual(await balanceAndEntries(db, b), {
        balance: 10_000 + toB - toA,
        entries: 10_000 + toB - toA,
      });
    });
  },
);
