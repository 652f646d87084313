// The gateway audit's payouts (POST /gateway-audit) against the RazorpayX and Stripe simulators
// and the real database: a payout reversed at the gateway whose webhook was dropped, a payout
// made at the gateway outside settle (to a payee's own destination), and a Stripe transfer
// partly reversed in the Dashboard are each reported once, by concurrent runs and again by a
// later one; a clean run reports nothing. Runs are scoped to the test's accounts (the database
// is shared), which also proves an unknown gateway payout is attributed by its destination.
import assert from "node:assert/strict";
import { LOCAL_RAZORPAYX, LOCAL_STRIPE } from "../dev/stack.ts";
import {
  createUser,
  raw,
  type Reply,
  type TestStack,
  type TestUser,
  withStack,
} from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const nowSec = () => Math.floor(Date.now() / 1000);
const RZPX_AUTH = "Basic " + btoa(`${LOCAL_RAZORPAYX.keyId}:${LOCAL_RAZORPAYX.keySecret}`);

interface Row {
  kind: string;
  gateway: string;
  gateway_object_id: string;
  payout_id: string | null;
  settle_amount: number;
  gateway_amount: number;
  settle_status: string;
  gateway_status: string;
  times_seen: number;
}

// ------------------------------------------------------------------ arranging

function call(s: TestStack, method: "GET" | "POST", path: string, token: string, body?: unknown) {
  return raw(s, path, {
    method,
    token,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Earnings in `currency` (as an escrow settlement credits), in a wallet made if missing. */
async function earn(s: TestStack, u: TestUser, currency: string, amount: number) {
  const [w] = await s.db`insert into public.wallets (account_id, currency)
    values (${u.accountId}, ${currency})
    on conflict (account_id, currency) do update set currency = excluded.currency returning id`;
  await s.db`select settle.post_transaction('escrow_settlement',
    ${`test-earn:${crypto.randomUUID()}`}, null, 'test earnings', ${
    s.db.json([
      { wallet_id: w.id, currency, amount },
      { system_account: "test:earnings", currency, amount: -amount },
    ])
  })`;
}

async function payoutAccount(s: TestStack, u: TestUser, body: Record<string, unknown>) {
  const r = await call(s, "POST", "payout-accounts", u.token, body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const [pa] = await s.db`select id, gateway_account_id from public.payout_accounts
    where id = ${r.body.payout_account.id}`;
  return pa as { id: string; gateway_account_id: string };
}

async function payout(s: TestStack, u: TestUser, paId: string, amount: number, currency: string) {
  const r = await call(s, "POST", "payouts", u.token, {
    payout_account_id: paId,
    amount,
    currency,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const [p] = await s.db`select id, gateway_payout_id, amount - fee as sent from public.payouts
    where id = ${r.body.payout.id}`;
  return { id: p.id as string, gid: p.gateway_payout_id as string, sent: Number(p.sent) };
}

// deno-lint-ignore no-explicit-any
async function simPost(base: string, path: string, body: unknown): Promise<any> {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const out = await res.json();
  assert.equal(res.status, 200, `${path}: ${JSON.stringify(out)}`);
  return out;
}

const rzpxSim = (s: TestStack) => `${s.simulatorUrl}/razorpayx/_sim/razorpayx`;

async function transition(s: TestStack, gid: string, status: string, webhooks = {}) {
  await simPost(rzpxSim(s), `/payouts/${gid}/transition`, { status, webhooks });
  await s.razorpayx.idle();
}

function audit(s: TestStack, body: Record<string, unknown>): Promise<Reply> {
  return call(s, "POST", "gateway-audit", s.serviceRoleKey, body);
}

async function rowsFor(s: TestStack, objectIds: string[]): Promise<Row[]> {
  return [
    ...await s.db<Row[]>`select kind, gateway, gateway_object_id, payout_id::text,
      settle_amount::int, gateway_amount::int, settle_status, gateway_status, times_seen
    from public.gateway_discrepancies where gateway_object_id = any(${objectIds}::text[])
    order by gateway_object_id, kind`,
  ];
}

/** Four concurrent runs, then one more: each finding stored once, seen by every run. */
async function auditTwice(s: TestStack, window: Record<string, unknown>, expectNew: number) {
  const runs = await Promise.all([1, 2, 3, 4].map(() => audit(s, window)));
  for (const r of runs) assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(runs.reduce((n, r) => n + r.body.discrepancies.new, 0), expectNew);
  for (const r of runs) assert.equal(r.body.discrepancies.found, expectNew);
  const again = await audit(s, window);
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal(again.body.discrepancies.new, 0, "a later run adds nothing new");
  assert.equal(again.body.discrepancies.found, expectNew);
  return again.body;
}

// ------------------------------------------------------------------ RazorpayX

Deno.test({
  ...opts,
  name:
    "payout audit (razorpayx): a reversal whose webhook was dropped and a payout made outside settle",
  fn: async () => {
    await withStack(async (s) => {
      const from = nowSec() - 2;
      const u = await createUser(s.db, "audit-rzpx");
      await earn(s, u, "INR", 20000);
      const pa = await payoutAccount(s, u, {
        gateway: "razorpayx",
        type: "bank_account",
        bank_account: { name: "Asha Rao", ifsc: "HDFC0001234", account_number: "50100123456789" },
      });
      // A: processed, webhook delivered. B: processed, then reversed by the bank, webhook lost.
      const a = await payout(s, u, pa.id, 4000, "INR");
      await transition(s, a.gid, "processed");
      const b = await payout(s, u, pa.id, 3000, "INR");
      await transition(s, b.gid, "processed");
      await transition(s, b.gid, "reversed", { drop: true });
      const [bRow] = await s.db`select status from public.payouts where id = ${b.id}`;
      assert.equal(bRow.status, "processed", "settle never heard of the reversal");
      // C: made through the RazorpayX API by someone else, to the payee's own fund account.
      const res = await fetch(`${s.simulatorUrl}/razorpayx/v1/payouts`, {
        method: "POST",
        headers: {
          authorization: RZPX_AUTH,
          "content-type": "application/json",
          "x-payout-idempotency": crypto.randomUUID(),
        },
        body: JSON.stringify({
          account_number: LOCAL_RAZORPAYX.accountNumber,
          fund_account_id: pa.gateway_account_id,
          amount: 2500,
          currency: "INR",
          mode: "IMPS",
          purpose: "payout",
        }),
      });
      const c = await res.json();
      assert.equal(res.status, 200, JSON.stringify(c));
      await s.razorpayx.idle();
      await transition(s, c.id, "processed");

      const window = { from, to: nowSec() + 1, account_ids: [u.accountId] };
      const body = await auditTwice(s, window, 2);
      assert.ok(body.payouts.razorpayx >= 3, JSON.stringify(body.payouts));
      const rows = await rowsFor(s, [a.gid, b.gid, c.id]);
      const expected: Row[] = [
        {
          kind: "payout_status_mismatch",
          gateway: "razorpayx",
          gateway_object_id: b.gid,
          payout_id: b.id,
          settle_amount: b.sent,
          gateway_amount: 0,
          settle_status: "processed",
          gateway_status: "reversed",
          times_seen: 5,
        },
        {
          kind: "payout_missing_in_settle",
          gateway: "razorpayx",
          gateway_object_id: c.id,
          payout_id: null,
          settle_amount: 0,
          gateway_amount: 2500,
          settle_status: "missing",
          gateway_status: "processed",
          times_seen: 5,
        },
      ];
      const byId = (x: Row, y: Row) => x.gateway_object_id.localeCompare(y.gateway_object_id);
      assert.deepEqual(rows.sort(byId), expected.sort(byId));
    });
  },
});

Deno.test({
  ...opts,
  name: "payout audit: a clean run reports nothing; another account's destination is not theirs",
  fn: async () => {
    await withStack(async (s) => {
      const from = nowSec() - 2;
      const u = await createUser(s.db, "audit-clean");
      const other = await createUser(s.db, "audit-other");
      await earn(s, u, "INR", 10000);
      const pa = await payoutAccount(s, u, {
        gateway: "razorpayx",
        type: "vpa",
        vpa: { address: "asha@okbank" },
      });
      const a = await payout(s, u, pa.id, 4000, "INR");
      await transition(s, a.gid, "processed");
      const b = await payout(s, u, pa.id, 2000, "INR");
      await transition(s, b.gid, "failed");
      const window = { from, to: nowSec() + 1, account_ids: [u.accountId] };
      const r = await audit(s, window);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.discrepancies, { found: 0, new: 0 });
      assert.ok(r.body.payouts.razorpayx >= 2, JSON.stringify(r.body));
      // u's payouts, seen from a run for another account, are not that account's to report.
      const o = await audit(s, { ...window, account_ids: [other.accountId] });
      assert.equal(o.status, 200, JSON.stringify(o.body));
      assert.deepEqual(o.body.discrepancies, { found: 0, new: 0 });
      assert.deepEqual(await rowsFor(s, [a.gid, b.gid]), []);
    });
  },
});

// ------------------------------------------------------------------ Stripe Connect

async function activeStripeAccount(s: TestStack, u: TestUser) {
  const pa = await payoutAccount(s, u, { gateway: "stripe", country: "US", email: u.email });
  await simPost(`${s.stripeUrl}/_sim/stripe`, `/accounts/${pa.gateway_account_id}/onboard`, {});
  await s.stripe.idle();
  const [row] = await s.db`select status from public.payout_accounts where id = ${pa.id}`;
  assert.equal(row.status, "active");
  return pa;
}

Deno.test({
  ...opts,
  name:
    "payout audit (stripe): dropped transfer.reversed, a partial reversal, a transfer made outside settle",
  fn: async () => {
    await withStack(async (s) => {
      const from = nowSec() - 2;
      const u = await createUser(s.db, "audit-connect");
      await earn(s, u, "USD", 20000);
      const pa = await activeStripeAccount(s, u);
      const sim = `${s.stripeUrl}/_sim/stripe`;
      const a = await payout(s, u, pa.id, 5000, "USD"); // clean
      const b = await payout(s, u, pa.id, 4000, "USD");
      await simPost(sim, `/transfers/${b.gid}/reverse`, { webhooks: { drop: true } });
      const c = await payout(s, u, pa.id, 3000, "USD");
      await simPost(sim, `/transfers/${c.gid}/reverse`, { amount: 1000 });
      await s.stripe.idle();
      const res = await fetch(`${s.stripeUrl}/v1/transfers`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${LOCAL_STRIPE.secretKey}`,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({
          amount: "1500",
          currency: "usd",
          destination: pa.gateway_account_id,
        }),
      });
      const d = await res.json();
      assert.equal(res.status, 200, JSON.stringify(d));
      await s.stripe.idle();

      const window = { from, to: nowSec() + 1, account_ids: [u.accountId] };
      const body = await auditTwice(s, window, 3);
      assert.ok(body.payouts.stripe >= 4, JSON.stringify(body.payouts));
      const rows = await rowsFor(s, [a.gid, b.gid, c.gid, d.id]);
      const got = Object.fromEntries(rows.map((r) => [r.gateway_object_id, r]));
      assert.equal(rows.length, 3, JSON.stringify(rows));
      assert.deepEqual(
        [
          got[b.gid].kind,
          got[b.gid].payout_id,
          got[b.gid].settle_amount,
          got[b.gid].gateway_amount,
        ],
        ["payout_status_mismatch", b.id, b.sent, 0],
      );
      assert.equal(got[b.gid].gateway_status, "reversed");
      assert.deepEqual(
        [got[c.gid].kind, got[c.gid].settle_amount, got[c.gid].gateway_amount],
        ["payout_amount_mismatch", c.sent, c.sent - 1000],
      );
      assert.deepEqual(
        [got[d.id].kind, got[d.id].payout_id, got[d.id].settle_amount, got[d.id].gateway_amount],
        ["payout_missing_in_settle", null, 0, 1500],
      );
      assert.ok(rows.every((r) => r.gateway === "stripe" && r.times_seen === 5));
    });
  },
});
