// Payouts end to end against the real Postgres and the RazorpayX simulator: payout accounts
// (masked storage), payouts racing one wallet, a send that times out and is retried under the
// same key, failed / processed / reversed webhooks duplicated and reordered, other users' money
// and payout accounts, bad input, and webhooks signed with the wrong secret. Every test ends
// with an empty ledger_audit().
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  createUser,
  raw,
  type Reply,
  snapshot,
  type TestStack,
  type TestUser,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { runCases, type Watch } from "./support/contract.ts";
import { LOCAL_RAZORPAY, LOCAL_RAZORPAYX } from "../dev/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
// The send's timeout, short so the timeout case does not wait 5 s.
const FAST = { RAZORPAYX_TIMEOUT_MS: "800" };

// ------------------------------------------------------------------ arranging

/** Earnings: an escrow settlement credits the payee's wallet (as the escrow job would). */
async function earn(s: TestStack, u: TestUser, amount: number, kind = "escrow_settlement") {
  await s.db`select settle.post_transaction(${kind}, ${`test-earn:${crypto.randomUUID()}`}, null,
    'test earnings', ${
    s.db.json([
      { wallet_id: u.walletId, currency: "INR", amount },
      { system_account: "test:earnings", currency: "INR", amount: -amount },
    ])
  })`;
}

function call(
  s: TestStack,
  method: "GET" | "POST" | "DELETE",
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const h: Record<string, string> = { ...headers };
  if (body !== undefined) h["content-type"] = "application/json";
  return raw(s, path, {
    method,
    token,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

const BANK = { name: "Asha Rao", ifsc: "HDFC0001234", account_number: "50100123456789" };

async function bankAccount(s: TestStack, u: TestUser) {
  const r = await call(s, "POST", "payout-accounts", u.token, {
    gateway: "razorpayx",
    type: "bank_account",
    bank_account: BANK,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.payout_account as { id: string; status: string; display: string; type: string };
}

function payout(s: TestStack, u: TestUser, accountId: string, amount: number, key?: string) {
  return call(
    s,
    "POST",
    "payouts",
    u.token,
    { payout_account_id: accountId, amount, currency: "INR" },
    key ? { "idempotency-key": key } : {},
  );
}

const sim = (s: TestStack, path: string, body?: unknown) =>
  fetch(`${s.simulatorUrl}/razorpayx/_sim/razorpayx/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    // deno-lint-ignore no-explicit-any
  }).then((r) => r.json() as Promise<any>);

async function transition(s: TestStack, gatewayPayoutId: string, status: string, webhooks = {}) {
  const p = await sim(s, `payouts/${gatewayPayoutId}/transition`, { status, webhooks });
  assert.equal(p.status, status, JSON.stringify(p));
  await s.razorpayx.idle();
}

async function row(s: TestStack, id: string) {
  const [p] = await s.db`select * from public.payouts where id = ${id}`;
  return p;
}

/** A house account's INR balance (the run's database is shared: compare differences). */
async function house(s: TestStack, account: string) {
  const [r] = await s.db`select coalesce(sum(amount), 0)::bigint as total from public.ledger_entries
    where system_account = ${account} and currency = 'INR'`;
  return Number(r.total);
}

async function assertAuditClean(s: TestStack) {
  const audit = await s.db`select * from settle.ledger_audit()`;
  assert.deepEqual([...audit], [], `ledger_audit: ${JSON.stringify(audit)}`);
}

function reconcile(s: TestStack) {
  return call(s, "POST", "reconcile", s.serviceRoleKey, { older_than_seconds: 0 });
}

function postXWebhook(s: TestStack, e: { event_id: string; body: string; signature: string }) {
  return raw(s, "webhook/razorpayx", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-razorpay-signature": e.signature,
      "x-razorpay-event-id": e.event_id,
    },
    body: e.body,
  });
}

/** A paid-out-and-settled payee: earnings 10000, a bank payout account. */
async function payee(s: TestStack, label: string, earnings = 10000) {
  const u = await createUser(s.db, label);
  await earn(s, u, earnings);
  return { u, pa: await bankAccount(s, u) };
}

// ------------------------------------------------------------------ payout accounts

Deno.test({
  ...opts,
  name: "payout accounts: RazorpayX gets the details, settle keeps ids and a mask only",
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pa");
      const bank = await bankAccount(s, u);
      assert.equal(bank.status, "active");
      assert.equal(bank.type, "bank_account");
      assert.equal(bank.display, "•••• 6789");
      const vpa = await call(s, "POST", "payout-accounts", u.token, {
        gateway: "razorpayx",
        type: "vpa",
        vpa: { address: "asha.rao@okhdfc" },
      });
      assert.equal(vpa.status, 201, JSON.stringify(vpa.body));
      assert.equal(vpa.body.payout_account.display, "•••@okhdfc");

      const list = await call(s, "GET", "payout-accounts", u.token);
      assert.deepEqual(
        list.body.payout_accounts.map((a: { id: string }) => a.id).sort(),
        [
          bank.id,
          vpa.body.payout_account.id,
        ].sort(),
      );
      // The full number and address reached RazorpayX and nothing of settle's.
      const fa = await s.db`select gateway_account_id from public.payout_accounts
        where id = ${bank.id}`;
      const sims = await fetch(
        `${s.simulatorUrl}/razorpayx/v1/fund_accounts/${fa[0].gateway_account_id}`,
        {
          headers: {
            authorization: `Basic ${btoa(`${LOCAL_RAZORPAYX.keyId}:${LOCAL_RAZORPAYX.keySecret}`)}`,
          },
        },
      ).then((r) => r.json());
      assert.equal(sims.bank_account.account_number, BANK.account_number);
      const [hits] = await s.db`select count(*)::int as n from (
        select t::text as v from public.payout_accounts t union all
        select t::text from public.outbox_events t union all
        select t::text from public.webhook_events t union all
        select t::text from public.ledger_transactions t) x
        where v like ${"%" + BANK.account_number + "%"} or v like '%asha.rao%'`;
      assert.equal(hits.n, 0, "the account number or VPA is stored somewhere");

      const other = await createUser(s.db, "pa-other");
      assert.equal(
        (await call(s, "GET", "payout-accounts", other.token)).body.payout_accounts
          .length,
        0,
      );
      assert.equal(
        (await call(s, "DELETE", `payout-accounts/${bank.id}`, other.token)).status,
        404,
      );
      const off = await call(s, "DELETE", `payout-accounts/${bank.id}`, u.token);
      assert.equal(off.body.payout_account.status, "disabled");
      await earn(s, u, 1000);
      const r = await payout(s, u, bank.id, 500);
      assert.equal(r.status, 409);
      assert.equal(r.body.error.code, "payout_account_not_ready");
    });
  },
});

// ------------------------------------------------------------------ concurrency

Deno.test({
  ...opts,
  name: "concurrent payouts against one wallet never overdraw it",
  fn: async () => {
    await withStack(async (s) => {
      const { u, pa } = await payee(s, "race", 10000);
      const flight = await house(s, "payouts_in_flight:razorpayx");
      const replies = await Promise.all(
        Array.from({ length: 12 }, () => payout(s, u, pa.id, 3000)),
      );
      const ok = replies.filter((r) => r.status === 201);
      const refused = replies.filter((r) => r.status === 409);
      assert.equal(ok.length, 3, JSON.stringify(replies.map((r) => r.status)));
      assert.equal(refused.length, 9);
      for (const r of refused) assert.equal(r.body.error.code, "insufficient_funds");
      for (const r of ok) assert.equal(r.body.payout.status, "pending");
      assert.equal(await walletBalance(s.db, u.accountId), 1000);
      assert.equal(await house(s, "payouts_in_flight:razorpayx") - flight, 9000);
      const sent = await sim(s, "payouts");
      const mine = sent.payouts.filter((p: { reference_id: string }) =>
        ok.some((r) => r.body.payout.id === p.reference_id)
      );
      assert.equal(mine.length, 3, "each accepted payout reached RazorpayX once");
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "the same Idempotency-Key fired concurrently makes one payout",
  fn: async () => {
    await withStack(async (s) => {
      const { u, pa } = await payee(s, "samekey", 10000);
      const key = crypto.randomUUID();
      const replies = await Promise.all(
        Array.from({ length: 8 }, () => payout(s, u, pa.id, 2500, key)),
      );
      const ids = new Set(replies.map((r) => r.body.payout?.id));
      assert.equal(ids.size, 1, JSON.stringify(replies.map((r) => [r.status, r.body])));
      assert.equal(replies.filter((r) => r.status === 201).length, 1);
      assert.equal(await walletBalance(s.db, u.accountId), 7500);
      const conflict = await payout(s, u, pa.id, 2600, key);
      assert.equal(conflict.status, 409);
      assert.equal(conflict.body.error.code, "idempotency_conflict");
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ sending

Deno.test({
  ...opts,
  name: "a send that times out is retried with the same idempotency key and pays once",
  fn: async () => {
    await withStack(FAST, async (s) => {
      const { u, pa } = await payee(s, "timeout");
      const clearing = await house(s, "gateway:razorpayx");
      // RazorpayX makes the payout, but its answer never arrives (nor its webhook, this time).
      await sim(s, "config", { webhooks: { drop: true } });
      await sim(s, "faults", {
        faults: [{ method: "POST", path: "/v1/payouts", mode: "timeout_after", hold_ms: 3000 }],
      });
      const r = await payout(s, u, pa.id, 4000);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.payout.status, "pending");
      assert.equal(r.body.payout.gateway_payout_id, null);
      assert.match((await row(s, r.body.payout.id)).last_send_error, /timed out/);

      await sim(s, "config", { webhooks: {} });
      const rec = await reconcile(s);
      assert.equal(rec.status, 200, JSON.stringify(rec.body));
      assert.equal(rec.body.payouts.sent, 1, JSON.stringify(rec.body));
      const after = await row(s, r.body.payout.id);
      assert.ok(after.gateway_payout_id?.startsWith("pout_"));
      const sent = await sim(s, "payouts");
      const mine = sent.payouts.filter((p: { reference_id: string }) =>
        p.reference_id === r.body.payout.id
      );
      assert.equal(mine.length, 1, "RazorpayX made one payout");
      assert.equal(mine[0].id, after.gateway_payout_id);
      assert.deepEqual(
        sent.idempotency_keys.filter((k: { payout_id: string }) => k.payout_id === mine[0].id),
        [{ key: r.body.payout.id, payout_id: mine[0].id }],
        "both tries used the payout's one key",
      );
      assert.equal(sent.create_requests, 2);

      await transition(s, after.gateway_payout_id, "processed");
      assert.equal((await row(s, r.body.payout.id)).status, "processed");
      assert.equal(await walletBalance(s.db, u.accountId), 6000);
      assert.equal(await house(s, "gateway:razorpayx") - clearing, 4000);
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "a send RazorpayX refuses fails the payout and returns the money; a 5xx keeps it pending",
  fn: async () => {
    await withStack(FAST, async (s) => {
      const { u, pa } = await payee(s, "refused");
      await sim(s, "faults", {
        faults: [{ method: "POST", path: "/v1/payouts", mode: "error_500" }],
      });
      const pending = await payout(s, u, pa.id, 3000);
      assert.equal(pending.body.payout.status, "pending");
      assert.equal(await walletBalance(s.db, u.accountId), 7000);
      // A fund account RazorpayX no longer has: a 400, so no payout was made.
      const pa2 = await call(s, "POST", "payout-accounts", u.token, {
        gateway: "razorpayx",
        type: "vpa",
        vpa: { address: "asha@okaxis" },
      });
      await s.db.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`update public.payout_accounts set gateway_account_id = 'fa_Gone0000000001'
          where id = ${pa2.body.payout_account.id}`;
      });
      const refused = await payout(s, u, pa2.body.payout_account.id, 2000);
      assert.equal(refused.status, 201);
      assert.equal(refused.body.payout.status, "failed");
      assert.equal(await walletBalance(s.db, u.accountId), 7000);
      const rec = await reconcile(s);
      assert.equal(rec.body.payouts.sent, 1, JSON.stringify(rec.body));
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ webhooks

Deno.test({
  ...opts,
  name: "failed returns the money once, however often the webhook comes",
  fn: async () => {
    await withStack(async (s) => {
      const { u, pa } = await payee(s, "failed");
      const r = await payout(s, u, pa.id, 6000);
      const gid = (await row(s, r.body.payout.id)).gateway_payout_id;
      await transition(s, gid, "failed", { duplicate: 5 });
      const p = await row(s, r.body.payout.id);
      assert.equal(p.status, "failed");
      assert.ok(p.failure_reason);
      assert.equal(await walletBalance(s.db, u.accountId), 10000);
      // Every stored failed event again, concurrently: nothing moves.
      const events = (await sim(s, `events?payout_id=${gid}`)).events;
      const replays = await Promise.all(events.flatMap((e: never) => [postXWebhook(s, e)]));
      for (const x of replays) assert.equal(x.status, 200);
      assert.equal(await walletBalance(s.db, u.accountId), 10000);
      const [n] = await s.db`select count(*)::int as n from public.ledger_transactions
        where idempotency_key = ${"payout_return:" + r.body.payout.id}`;
      assert.equal(n.n, 1);
      const types = await s.db`select type from public.outbox_events
        where subject_id = ${r.body.payout.id} order by created_at`;
      // payout.processing too when payout.initiated came first (it usually does).
      const seen = types.map((t) => t.type as string).filter((t) => t !== "payout.processing");
      assert.deepEqual(seen, ["payout.created", "payout.failed"]);
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "processed then reversed returns the money once, in any order, duplicated",
  fn: async () => {
    await withStack(async (s) => {
      const { u, pa } = await payee(s, "reversed");
      const clearing = await house(s, "gateway:razorpayx");
      const r = await payout(s, u, pa.id, 5000);
      const id = r.body.payout.id;
      const gid = (await row(s, id)).gateway_payout_id;
      // processed is dropped; the late reversal arrives first, twice at once.
      await transition(s, gid, "processed", { drop: true });
      await transition(s, gid, "reversed", { duplicate: 2 });
      assert.equal((await row(s, id)).status, "reversed");
      assert.equal(await walletBalance(s.db, u.accountId), 10000);
      // Now processed and initiated arrive late, and everything is redelivered.
      const events = (await sim(s, `events?payout_id=${gid}`)).events;
      assert.deepEqual(events.map((e: { type: string }) => e.type), [
        "payout.initiated",
        "payout.processed",
        "payout.reversed",
      ]);
      await Promise.all([...events, ...events].map((e) => postXWebhook(s, e)));
      assert.equal((await row(s, id)).status, "reversed");
      assert.equal(await walletBalance(s.db, u.accountId), 10000);
      await assertAuditClean(s);

      // The usual order on a second payout: processed, then reversed days later.
      const r2 = await payout(s, u, pa.id, 3000);
      const gid2 = (await row(s, r2.body.payout.id)).gateway_payout_id;
      await transition(s, gid2, "processed", { duplicate: 3 });
      assert.equal(await walletBalance(s.db, u.accountId), 7000);
      assert.equal(await house(s, "gateway:razorpayx") - clearing, 3000);
      await transition(s, gid2, "reversed", { duplicate: 3 });
      const p2 = await row(s, r2.body.payout.id);
      assert.equal(p2.status, "reversed");
      assert.ok(p2.processed_at, "it was processed before");
      assert.equal(await walletBalance(s.db, u.accountId), 10000);
      assert.equal(await house(s, "gateway:razorpayx") - clearing, 0);
      const stats = await s.db`select * from public.payout_stats where gateway = 'razorpayx'`;
      assert.ok(stats.some((x) => Number(x.payouts_reversed) >= 2));
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "reconcile reads a payout whose webhooks were dropped",
  fn: async () => {
    await withStack(async (s) => {
      const { u, pa } = await payee(s, "dropped");
      const clearing = await house(s, "gateway:razorpayx");
      const r = await payout(s, u, pa.id, 2500);
      const gid = (await row(s, r.body.payout.id)).gateway_payout_id;
      await transition(s, gid, "processed", { drop: true });
      assert.equal((await row(s, r.body.payout.id)).status, "processing");
      const rec = await reconcile(s);
      assert.equal(rec.body.payouts.settled, 1, JSON.stringify(rec.body));
      assert.equal((await row(s, r.body.payout.id)).status, "processed");
      assert.equal(await house(s, "gateway:razorpayx") - clearing, 2500);
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ whose money

Deno.test({
  ...opts,
  name: "nobody pays out another account's money or into another's payout account",
  fn: async () => {
    await withStack(async (s) => {
      const { u: alice, pa } = await payee(s, "alice");
      const bob = await createUser(s.db, "bob");
      await earn(s, bob, 10000);
      const bobPa = await bankAccount(s, bob);
      const before = await snapshot(s.db);
      const theirs = await payout(s, bob, pa.id, 1000);
      assert.equal(theirs.status, 404);
      assert.equal(theirs.body.error.code, "not_found");
      const notMine = await call(s, "POST", "payouts", alice.token, {
        payout_account_id: bobPa.id,
        amount: 1000,
        currency: "INR",
      });
      assert.equal(notMine.status, 404);
      const account = await call(s, "POST", "payout-accounts", bob.token, {
        gateway: "razorpayx",
        type: "vpa",
        vpa: { address: "bob@okaxis" },
        account_id: alice.accountId,
      });
      assert.equal(account.status, 404);
      assert.deepEqual(await snapshot(s.db), before);
      assert.equal(await walletBalance(s.db, alice.accountId), 10000);

      const mine = await payout(s, alice, pa.id, 1000);
      assert.equal((await call(s, "GET", "payouts", bob.token)).body.payouts.length, 0);
      assert.equal((await call(s, "GET", `payouts/${mine.body.payout.id}`, bob.token)).status, 404);
      const list = await call(s, "GET", "payouts", alice.token);
      assert.deepEqual(list.body.payouts.map((p: { id: string }) => p.id), [mine.body.payout.id]);
      // Top-up money is not earnings: the default policy does not pay it out.
      await earn(s, bob, 5000, "topup");
      const topup = await payout(s, bob, bobPa.id, 12000);
      assert.equal(topup.status, 409);
      assert.equal(topup.body.error.code, "insufficient_funds");
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ bad input

Deno.test({
  ...opts,
  name: "bad payout and payout-account input gets the contract's 4xx and writes nothing",
  fn: async (t) => {
    await withStack(async (s) => {
      const { u, pa } = await payee(s, "bad", 10000);
      const payouts: Watch = async () => {
        const before = await s.db`select
          (select count(*) from public.payouts)::int as p,
          (select count(*) from public.payout_accounts)::int as a,
          (select count(*) from public.outbox_events)::int as o`;
        const sent = (await sim(s, "payouts")).create_requests;
        return async () => {
          const after = await s.db`select
            (select count(*) from public.payouts)::int as p,
            (select count(*) from public.payout_accounts)::int as a,
            (select count(*) from public.outbox_events)::int as o`;
          assert.deepEqual(after, before);
          assert.equal((await sim(s, "payouts")).create_requests, sent, "nothing was sent");
        };
      };
      const bank = (b: Record<string, unknown>) => () =>
        call(s, "POST", "payout-accounts", u.token, {
          gateway: "razorpayx",
          type: "bank_account",
          bank_account: { ...BANK, ...b },
        });
      const out = (b: Record<string, unknown>) => () =>
        call(s, "POST", "payouts", u.token, {
          payout_account_id: pa.id,
          amount: 1000,
          currency: "INR",
          ...b,
        });
      await runCases(t, s, [
        ["payout-accounts", [
          {
            name: "non-numeric IFSC",
            status: 400,
            code: "invalid_request",
            send: bank({ ifsc: "HDFC-ABC" }),
          },
          {
            name: "IFSC without the 0",
            status: 400,
            code: "invalid_request",
            send: bank({ ifsc: "HDFCX001234" }),
          },
          {
            name: "account number with letters",
            status: 400,
            code: "invalid_request",
            send: bank({ account_number: "5010012345ABC" }),
          },
          { name: "short name", status: 400, code: "invalid_request", send: bank({ name: "A" }) },
          {
            name: "VPA without @",
            status: 400,
            code: "invalid_request",
            send: () =>
              call(s, "POST", "payout-accounts", u.token, {
                gateway: "razorpayx",
                type: "vpa",
                vpa: { address: "asha.okhdfc" },
              }),
          },
          {
            name: "unknown gateway",
            status: 400,
            code: "invalid_request",
            send: () => call(s, "POST", "payout-accounts", u.token, { gateway: "paypal" }),
          },
          {
            name: "no JWT",
            status: 401,
            code: "unauthorized",
            send: () => raw(s, "payout-accounts", { method: "POST", body: "{}" }),
          },
          {
            name: "service role",
            status: 403,
            code: "forbidden",
            send: () =>
              call(s, "POST", "payout-accounts", s.serviceRoleKey, {
                gateway: "razorpayx",
                type: "vpa",
                vpa: { address: "asha@okhdfc" },
              }),
          },
        ]],
        ["payouts", [
          {
            name: "below the minimum",
            status: 400,
            code: "invalid_request",
            send: out({ amount: 99 }),
          },
          {
            name: "over the balance",
            status: 409,
            code: "insufficient_funds",
            send: out({ amount: 10001 }),
          },
          {
            name: "fractional",
            status: 400,
            code: "invalid_request",
            send: out({ amount: 100.5 }),
          },
          { name: "negative", status: 400, code: "invalid_request", send: out({ amount: -1000 }) },
          { name: "zero", status: 400, code: "invalid_request", send: out({ amount: 0 }) },
          {
            name: "a string amount",
            status: 400,
            code: "invalid_request",
            send: out({ amount: "1000" }),
          },
          {
            name: "unknown currency",
            status: 400,
            code: "invalid_request",
            send: out({ currency: "XYZ" }),
          },
          {
            name: "not INR at RazorpayX",
            status: 400,
            code: "invalid_request",
            send: out({ currency: "USD" }),
          },
          {
            name: "unknown payout account",
            status: 404,
            code: "not_found",
            send: out({ payout_account_id: crypto.randomUUID() }),
          },
          {
            name: "not a uuid",
            status: 400,
            code: "invalid_request",
            send: out({ payout_account_id: "pa_1" }),
          },
          {
            name: "extra field",
            status: 400,
            code: "invalid_request",
            send: out({ account_id: u.accountId }),
          },
          {
            name: "malformed JSON",
            status: 400,
            code: "invalid_json",
            send: () =>
              raw(s, "payouts", {
                method: "POST",
                token: u.token,
                headers: { "content-type": "application/json" },
                body: "{",
              }),
          },
          {
            name: "malformed JWT",
            status: 401,
            code: "unauthorized",
            send: () => call(s, "POST", "payouts", "e30.e30.e30", { amount: 1 }),
          },
        ]],
      ], {
        atLeast: 20,
        watches: [payouts, async () => {
          const before = await snapshot(s.db);
          return async () => assert.deepEqual(await snapshot(s.db), before);
        }],
      });
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ signatures

Deno.test({
  ...opts,
  name: "a payout webhook signed with another endpoint's secret is 400 and stores nothing",
  fn: async () => {
    await withStack(async (s) => {
      const { u, pa } = await payee(s, "secret");
      const r = await payout(s, u, pa.id, 2000);
      const gid = (await row(s, r.body.payout.id)).gateway_payout_id;
      await s.razorpayx.idle();
      const [initiated] = (await sim(s, `events?payout_id=${gid}`)).events;
      const sign = (secret: string, body: string) =>
        createHmac("sha256", secret).update(body).digest("hex");
      const body = initiated.body.replace('"payout.initiated"', '"payout.failed"')
        .replace('"status":"processing"', '"status":"failed"');
      const before = await snapshot(s.db);
      // Signed with Razorpay's (payments) webhook secret, posted to the RazorpayX endpoint.
      const wrong = await postXWebhook(s, {
        event_id: "evt_forged_1",
        body,
        signature: sign(LOCAL_RAZORPAY.webhookSecret, body),
      });
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.error.code, "invalid_signature");
      // And the reverse: a RazorpayX-signed event at the Razorpay endpoint.
      const reverse = await raw(s, "webhook/razorpay", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-razorpay-signature": sign(LOCAL_RAZORPAYX.webhookSecret, body),
          "x-razorpay-event-id": "evt_forged_2",
        },
        body,
      });
      assert.equal(reverse.status, 400);
      assert.equal(reverse.body.error.code, "invalid_signature");
      assert.deepEqual(await snapshot(s.db), before);
      assert.equal((await row(s, r.body.payout.id)).status, "processing");
      // Correctly signed, the same body applies.
      const right = await postXWebhook(s, {
        event_id: "evt_real_1",
        body,
        signature: sign(LOCAL_RAZORPAYX.webhookSecret, body),
      });
      assert.equal(right.status, 200);
      assert.equal((await row(s, r.body.payout.id)).status, "failed");
      assert.equal(await walletBalance(s.db, u.accountId), 10000);
      await assertAuditClean(s);
    });
  },
});
