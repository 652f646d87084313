// Stripe Connect payouts end to end against the real Postgres and the Stripe simulator (through
// the app's Stripe SDK client): Express onboarding made active by a signed account.updated on the
// Connect endpoint, payouts as transfers (processed on send), a transfer whose call times out
// retried under the same idempotency key, transfer.reversed duplicated and reordered, concurrent
// payouts against one wallet, wrong-secret signatures both ways, other accounts' payout accounts,
// bad input. Every test ends with an empty ledger_audit().
import assert from "node:assert/strict";
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
import { LOCAL_STRIPE } from "../dev/stack.ts";
import { stripeSignatureHeader } from "../dev/simulator/stripe/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
// The SDK's per-try timeout, short so the timeout case does not wait 5 s a try.
const FAST = { STRIPE_TIMEOUT_MS: "800" };

// ------------------------------------------------------------------ arranging

interface Payee {
  u: TestUser;
  walletId: string;
}

/** A payee with a USD wallet holding `amount` of earnings (as an escrow settlement credits). */
async function payee(s: TestStack, label: string, amount = 10000): Promise<Payee> {
  const u = await createUser(s.db, label);
  const [w] = await s.db`insert into public.wallets (account_id, currency)
    values (${u.accountId}, 'USD') returning id`;
  await s.db`select settle.post_transaction('escrow_settlement',
    ${`test-earn:${crypto.randomUUID()}`}, null, 'test earnings', ${
    s.db.json([
      { wallet_id: w.id, currency: "USD", amount },
      { system_account: "test:earnings", currency: "USD", amount: -amount },
    ])
  })`;
  return { u, walletId: w.id };
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

interface StripePayoutAccount {
  id: string;
  status: string;
  acct: string;
  onboardingUrl: string;
}

async function stripeAccount(s: TestStack, u: TestUser): Promise<StripePayoutAccount> {
  const r = await call(s, "POST", "payout-accounts", u.token, {
    gateway: "stripe",
    country: "US",
    email: `${u.email}`,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const [row] = await s.db`select gateway_account_id from public.payout_accounts
    where id = ${r.body.payout_account.id}`;
  return {
    id: r.body.payout_account.id,
    status: r.body.payout_account.status,
    acct: row.gateway_account_id,
    onboardingUrl: r.body.onboarding.url,
  };
}

// deno-lint-ignore no-explicit-any
async function sim(s: TestStack, path: string, body?: unknown): Promise<any> {
  const r = await fetch(`${s.stripeUrl}/_sim/stripe/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return await r.json();
}

/** The Stripe API as the platform (secret key), for reading what settle made. */
// deno-lint-ignore no-explicit-any
async function api(s: TestStack, path: string): Promise<any> {
  const r = await fetch(`${s.stripeUrl}${path}`, {
    headers: { authorization: `Bearer ${LOCAL_STRIPE.secretKey}` },
  });
  return await r.json();
}

/** The payee finishes onboarding at Stripe; account.updated reaches the Connect endpoint. */
async function onboard(s: TestStack, acct: string, body: Record<string, unknown> = {}) {
  const a = await sim(s, `accounts/${acct}/onboard`, body);
  assert.equal(a.id, acct, JSON.stringify(a));
  await s.stripe.idle();
}

async function activeAccount(s: TestStack, p: Payee) {
  const pa = await stripeAccount(s, p.u);
  await onboard(s, pa.acct);
  assert.equal(await accountStatus(s, pa.id), "active");
  return pa;
}

async function accountStatus(s: TestStack, id: string) {
  const [r] = await s.db`select status from public.payout_accounts where id = ${id}`;
  return r.status as string;
}

function payout(s: TestStack, u: TestUser, paId: string, amount: number, currency = "USD") {
  return call(s, "POST", "payouts", u.token, { payout_account_id: paId, amount, currency });
}

async function row(s: TestStack, id: string) {
  const [p] = await s.db`select * from public.payouts where id = ${id}`;
  return p;
}

async function usd(s: TestStack, p: Payee) {
  return await walletBalance(s.db, p.u.accountId, "USD");
}

/** A house account's USD balance (the run's database is shared: compare differences). */
async function house(s: TestStack, account: string) {
  const [r] = await s.db`select coalesce(sum(amount), 0)::bigint as total
    from public.ledger_entries where system_account = ${account} and currency = 'USD'`;
  return Number(r.total);
}

async function assertAuditClean(s: TestStack) {
  const audit = await s.db`select * from settle.ledger_audit()`;
  assert.deepEqual([...audit], [], `ledger_audit: ${JSON.stringify(audit)}`);
}

interface SimEvent {
  event_id: string;
  type: string;
  body: string;
  signature: string;
}

async function events(s: TestStack, query: string): Promise<SimEvent[]> {
  return (await sim(s, `events?${query}`)).events;
}

function postEvent(s: TestStack, endpoint: "stripe" | "stripe-connect", e: SimEvent) {
  return raw(s, `webhook/${endpoint}`, {
    method: "POST",
    headers: { "content-type": "application/json", "stripe-signature": e.signature },
    body: e.body,
  });
}

const resign = (e: SimEvent, secret: string): SimEvent => ({
  ...e,
  signature: stripeSignatureHeader(secret, Math.floor(Date.now() / 1000), e.body),
});

// ------------------------------------------------------------------ onboarding

Deno.test({
  ...opts,
  name: "stripe connect: an Express account is onboarding until a signed account.updated",
  fn: async () => {
    await withStack(async (s) => {
      const p = await payee(s, "connect-onboard");
      const pa = await stripeAccount(s, p.u);
      assert.equal(pa.status, "onboarding");
      assert.match(pa.onboardingUrl, /^https:\/\/connect\.stripe\.com\/setup\/e\/acct_/);
      const acct = await api(s, `/v1/accounts/${pa.acct}`);
      assert.equal(acct.type, "express");
      assert.equal(acct.controller.stripe_dashboard.type, "express");
      assert.equal(acct.capabilities.transfers, "inactive", "transfers requested");
      assert.equal(acct.metadata.settle_payout_account_id, pa.id);

      // Not usable yet: nothing is written, nothing is sent.
      const before = await snapshot(s.db);
      const early = await payout(s, p.u, pa.id, 1000);
      assert.equal(early.status, 409);
      assert.equal(early.body.error.code, "payout_account_not_ready");
      assert.deepEqual(await snapshot(s.db), before);
      assert.equal((await api(s, "/v1/transfers?destination=" + pa.acct)).data.length, 0);

      // A fresh link while onboarding (links expire); another user's account is 404.
      const link = await call(s, "POST", `payout-accounts/${pa.id}/onboarding`, p.u.token);
      assert.equal(link.status, 200, JSON.stringify(link.body));
      assert.notEqual(link.body.onboarding.url, pa.onboardingUrl);
      const other = await createUser(s.db, "connect-other");
      const theirs = await call(s, "POST", `payout-accounts/${pa.id}/onboarding`, other.token);
      assert.equal(theirs.status, 404);

      // Payouts enabled but the transfers capability still pending: not yet.
      await onboard(s, pa.acct, { transfers: "pending" });
      assert.equal(await accountStatus(s, pa.id), "onboarding");
      await onboard(s, pa.acct);
      assert.equal(await accountStatus(s, pa.id), "active");
      const [stored] = await s.db`select count(*)::int as n from public.webhook_events
        where gateway = 'stripe_connect' and gateway_payment_id = ${pa.acct}
          and event_type = 'account.updated'`;
      assert.equal(stored.n, 2);
      const done = await call(s, "POST", `payout-accounts/${pa.id}/onboarding`, p.u.token);
      assert.equal(done.status, 409);
      assert.equal(done.body.error.code, "conflict");

      // Every account.updated again, concurrently and in reverse: the account stays active
      // (each is deduplicated by event id; the state is read from Stripe, not the event).
      const updates = await events(s, `object_id=${pa.acct}&type=account.updated`);
      assert.equal(updates.length, 2);
      const replies = await Promise.all(
        [...updates].reverse().flatMap((
          e,
        ) => [postEvent(s, "stripe-connect", e), postEvent(s, "stripe-connect", e)]),
      );
      for (const r of replies) assert.equal(r.status, 200);
      assert.equal(await accountStatus(s, pa.id), "active");

      // Now it pays: a transfer to the connected account, processed at once.
      const r = await payout(s, p.u, pa.id, 2500);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.payout.status, "processed");
      assert.match(r.body.payout.gateway_payout_id, /^tr_/);
      const t = await api(s, `/v1/transfers/${r.body.payout.gateway_payout_id}`);
      assert.equal(t.destination, pa.acct);
      assert.equal(t.amount, 2500);
      assert.equal(t.currency, "usd");
      assert.equal(t.transfer_group, r.body.payout.id);
      assert.equal(t.metadata.settle_payout_id, r.body.payout.id);
      assert.equal(await usd(s, p), 7500);
      await s.stripe.idle();
      assert.equal((await row(s, r.body.payout.id)).status, "processed");
      await assertAuditClean(s);

      // The account disconnects from the platform: disabled for good, payouts refused.
      await sim(s, `accounts/${pa.acct}/deauthorize`, {});
      await s.stripe.idle();
      assert.equal(await accountStatus(s, pa.id), "disabled");
      await onboard(s, pa.acct);
      assert.equal(await accountStatus(s, pa.id), "disabled");
      const after = await payout(s, p.u, pa.id, 1000);
      assert.equal(after.status, 409);
      assert.equal(after.body.error.code, "payout_account_not_ready");
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ sending

Deno.test({
  ...opts,
  name: "stripe connect: a transfer whose call times out is retried under its key and pays once",
  fn: async () => {
    await withStack(FAST, async (s) => {
      const p = await payee(s, "connect-timeout");
      const pa = await activeAccount(s, p);
      const clearing = await house(s, "gateway:stripe");

      // Stripe makes the transfer but both tries of the SDK time out (and transfer.created,
      // which would settle it too, is lost this time).
      await sim(s, "config", { webhooks: { drop: true } });
      await sim(s, "faults", {
        faults: [{
          method: "POST",
          path: "/v1/transfers",
          mode: "timeout_after",
          count: 2,
          hold_ms: 3000,
        }],
      });
      const r = await payout(s, p.u, pa.id, 4000);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.payout.status, "pending");
      assert.equal(r.body.payout.gateway_payout_id, null);
      const id = r.body.payout.id;
      assert.ok((await row(s, id)).last_send_error);
      assert.equal(await usd(s, p), 6000, "the money is in flight, not back");
      await sim(s, "config", { webhooks: {} });

      const rec = await call(s, "POST", "reconcile", s.serviceRoleKey, { older_than_seconds: 0 });
      assert.equal(rec.status, 200, JSON.stringify(rec.body));
      assert.equal(rec.body.payouts.sent, 1, JSON.stringify(rec.body));
      const after = await row(s, id);
      assert.equal(after.status, "processed");
      const made = await api(s, `/v1/transfers?transfer_group=${id}`);
      assert.equal(made.data.length, 1, "Stripe made one transfer");
      assert.equal(made.data[0].id, after.gateway_payout_id);
      const tries = (await sim(s, "requests?path=/v1/transfers")).requests;
      assert.ok(tries.length >= 3, JSON.stringify(tries));
      assert.ok(tries.every((t: { idempotency_key: string }) => t.idempotency_key === id));
      assert.equal(tries.at(-1).replayed, true, "the retry was answered by the key's replay");
      assert.equal(await usd(s, p), 6000);
      assert.equal(await house(s, "gateway:stripe") - clearing, 4000);

      // One timed-out try only: the SDK's own retry under the same key gets the transfer.
      await sim(s, "faults", {
        faults: [{ method: "POST", path: "/v1/transfers", mode: "timeout_after", hold_ms: 3000 }],
      });
      const r2 = await payout(s, p.u, pa.id, 1000);
      assert.equal(r2.body.payout.status, "processed", JSON.stringify(r2.body));
      assert.equal(
        (await api(s, `/v1/transfers?transfer_group=${r2.body.payout.id}`)).data.length,
        1,
      );
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "stripe connect: a send retried after the key may have expired finds the transfer first",
  fn: async () => {
    await withStack(FAST, async (s) => {
      const p = await payee(s, "connect-expired");
      const pa = await activeAccount(s, p);
      await sim(s, "config", { webhooks: { drop: true } });
      await sim(s, "faults", {
        faults: [{
          method: "POST",
          path: "/v1/transfers",
          mode: "timeout_after",
          count: 2,
          hold_ms: 3000,
        }],
      });
      const r = await payout(s, p.u, pa.id, 3000);
      assert.equal(r.body.payout.status, "pending");
      // A day later (Stripe may have pruned the key): the payout is older than 23 h.
      await s.db.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`update public.payouts set created_at = now() - interval '25 hours'
          where id = ${r.body.payout.id}`;
      });
      const posts = (await sim(s, "requests?path=/v1/transfers")).requests.length;
      const rec = await call(s, "POST", "reconcile", s.serviceRoleKey, { older_than_seconds: 0 });
      assert.equal(rec.body.payouts.sent, 1, JSON.stringify(rec.body));
      assert.equal((await sim(s, "requests?path=/v1/transfers")).requests.length, posts, "no POST");
      const made = await api(s, `/v1/transfers?transfer_group=${r.body.payout.id}`);
      assert.equal(made.data.length, 1);
      assert.equal((await row(s, r.body.payout.id)).gateway_payout_id, made.data[0].id);
      assert.equal((await row(s, r.body.payout.id)).status, "processed");
      await assertAuditClean(s);
    });
  },
});

Deno.test({
  ...opts,
  name: "stripe connect: concurrent payouts against one wallet never overdraw it",
  fn: async () => {
    await withStack(async (s) => {
      const p = await payee(s, "connect-race", 10000);
      const pa = await activeAccount(s, p);
      const flight = await house(s, "payouts_in_flight:stripe");
      const replies = await Promise.all(
        Array.from({ length: 12 }, () => payout(s, p.u, pa.id, 3000)),
      );
      const ok = replies.filter((r) => r.status === 201);
      const refused = replies.filter((r) => r.status === 409);
      assert.equal(ok.length, 3, JSON.stringify(replies.map((r) => [r.status, r.body])));
      assert.equal(refused.length, 9);
      for (const r of refused) assert.equal(r.body.error.code, "insufficient_funds");
      for (const r of ok) assert.equal(r.body.payout.status, "processed");
      assert.equal(await usd(s, p), 1000);
      assert.equal(await house(s, "payouts_in_flight:stripe"), flight, "nothing left in flight");
      const made = await api(s, `/v1/transfers?destination=${pa.acct}&limit=100`);
      assert.equal(made.data.length, 3, "one transfer per accepted payout");
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ reversals

Deno.test({
  ...opts,
  name: "stripe connect: transfer.reversed returns the money once, duplicated and reordered",
  fn: async () => {
    await withStack(async (s) => {
      const p = await payee(s, "connect-reversed");
      const pa = await activeAccount(s, p);
      const clearing = await house(s, "gateway:stripe");
      const r = await payout(s, p.u, pa.id, 5000);
      const id = r.body.payout.id;
      const tr = r.body.payout.gateway_payout_id;
      assert.equal(await usd(s, p), 5000);

      // Reversed in the Dashboard; the platform event arrives three times at once.
      await sim(s, `transfers/${tr}/reverse`, { webhooks: { duplicate: 2 } });
      await s.stripe.idle();
      const p1 = await row(s, id);
      assert.equal(p1.status, "reversed");
      assert.ok(p1.processed_at, "it was processed before");
      assert.equal(await usd(s, p), 10000);
      assert.equal(await house(s, "gateway:stripe") - clearing, 0);

      // Everything again, reversed first then created, twice, concurrently: nothing moves.
      const all = await events(s, `object_id=${tr}`);
      assert.deepEqual(all.map((e) => e.type), ["transfer.created", "transfer.reversed"]);
      const replies = await Promise.all(
        [...all].reverse().flatMap((e) => [postEvent(s, "stripe", e), postEvent(s, "stripe", e)]),
      );
      for (const x of replies) assert.equal(x.status, 200);
      assert.equal((await row(s, id)).status, "reversed");
      assert.equal(await usd(s, p), 10000);
      const [n] = await s.db`select count(*)::int as n from public.ledger_transactions
        where idempotency_key = ${"payout_return:" + id}`;
      assert.equal(n.n, 1);
      const types = await s.db`select type from public.outbox_events
        where subject_id = ${id} order by created_at, id`;
      assert.deepEqual(types.map((t) => t.type), [
        "payout.created",
        "payout.processed",
        "payout.reversed",
      ]);
      const stored = await s.db`select outcome from public.webhook_events
        where gateway = 'stripe' and gateway_payment_id = ${tr} order by id`;
      assert.deepEqual(stored.map((x) => x.outcome).sort(), ["applied", "no_effect"]);

      // A partial reversal (the Dashboard's; settle never makes one) returns nothing.
      const r2 = await payout(s, p.u, pa.id, 4000);
      await sim(s, `transfers/${r2.body.payout.gateway_payout_id}/reverse`, { amount: 1000 });
      await s.stripe.idle();
      assert.equal((await row(s, r2.body.payout.id)).status, "processed");
      assert.equal(await usd(s, p), 6000);
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ signatures

Deno.test({
  ...opts,
  name: "stripe connect: an event signed with the other endpoint's secret is 400, stores nothing",
  fn: async () => {
    await withStack(async (s) => {
      const p = await payee(s, "connect-secret");
      const pa = await stripeAccount(s, p.u);
      // account.updated is recorded but not delivered, so it can be posted by hand.
      await onboard(s, pa.acct, { webhooks: { deliver: false } });
      const [updated] = await events(s, `object_id=${pa.acct}&type=account.updated`);
      assert.ok(
        updated.body.includes(`"account": "${pa.acct}"`),
        "Connect events name the account",
      );
      const before = await snapshot(s.db);
      // Signed with the platform secret, posted to the Connect endpoint.
      const wrong = await postEvent(
        s,
        "stripe-connect",
        resign(updated, LOCAL_STRIPE.webhookSecret),
      );
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.error.code, "invalid_signature");
      // Connect-signed, posted to the platform endpoint.
      const reverse = await postEvent(s, "stripe", updated);
      assert.equal(reverse.status, 400);
      assert.equal(reverse.body.error.code, "invalid_signature");
      assert.deepEqual(await snapshot(s.db), before);
      assert.equal(await accountStatus(s, pa.id), "onboarding");

      // Correctly signed, at its endpoint, it applies.
      assert.equal((await postEvent(s, "stripe-connect", updated)).status, 200);
      assert.equal(await accountStatus(s, pa.id), "active");

      // A platform transfer.reversed signed with the Connect secret: 400 as well.
      const r = await payout(s, p.u, pa.id, 2000);
      await s.stripe.idle();
      await sim(s, `transfers/${r.body.payout.gateway_payout_id}/reverse`, {
        webhooks: { deliver: false },
      });
      const [rev] = await events(
        s,
        `object_id=${r.body.payout.gateway_payout_id}&type=transfer.reversed`,
      );
      const mid = await snapshot(s.db);
      const forged = await postEvent(s, "stripe", resign(rev, LOCAL_STRIPE.connectWebhookSecret));
      assert.equal(forged.status, 400);
      assert.equal(forged.body.error.code, "invalid_signature");
      const atConnect = await postEvent(s, "stripe-connect", rev);
      assert.equal(atConnect.status, 400);
      assert.deepEqual(await snapshot(s.db), mid);
      assert.equal((await row(s, r.body.payout.id)).status, "processed");

      // Correctly signed, it applies.
      assert.equal((await postEvent(s, "stripe", rev)).status, 200);
      assert.equal((await row(s, r.body.payout.id)).status, "reversed");
      assert.equal(await usd(s, p), 10000);
      await assertAuditClean(s);
    });
  },
});

// ------------------------------------------------------------------ whose account, bad input

Deno.test({
  ...opts,
  name: "stripe connect: another account's payout account is 404; bad input writes nothing",
  fn: async (t) => {
    await withStack(async (s) => {
      const alice = await payee(s, "connect-alice");
      const pa = await activeAccount(s, alice);
      const bob = await payee(s, "connect-bob");
      const counts: Watch = async () => {
        const read = () =>
          s.db`select (select count(*) from public.payouts)::int as p,
            (select count(*) from public.payout_accounts)::int as a,
            (select count(*) from public.outbox_events)::int as o`;
        const before = await read();
        const posts = (await sim(s, "requests?path=/v1/")).requests.length;
        return async () => {
          assert.deepEqual(await read(), before);
          assert.equal((await sim(s, "requests?path=/v1/")).requests.length, posts, "sent nothing");
        };
      };
      const account = (b: Record<string, unknown>) => () =>
        call(s, "POST", "payout-accounts", bob.u.token, { gateway: "stripe", ...b });
      const out = (b: Record<string, unknown>, who = bob.u) => () =>
        call(s, "POST", "payouts", who.token, {
          payout_account_id: pa.id,
          amount: 1000,
          currency: "USD",
          ...b,
        });
      const unsignedConnect = () =>
        raw(s, "webhook/stripe-connect", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        });
      await runCases(t, s, [
        ["whose", [
          {
            name: "another account's payout account",
            status: 404,
            code: "not_found",
            send: out({}),
          },
          {
            name: "another account's onboarding link",
            status: 404,
            code: "not_found",
            send: () => call(s, "POST", `payout-accounts/${pa.id}/onboarding`, bob.u.token),
          },
          {
            name: "a Stripe account for another account",
            status: 404,
            code: "not_found",
            send: account({ account_id: alice.u.accountId }),
          },
        ]],
        ["payout-accounts", [
          { name: "India", status: 400, code: "invalid_request", send: account({ country: "IN" }) },
          {
            name: "lowercase country",
            status: 400,
            code: "invalid_request",
            send: account({ country: "us" }),
          },
          {
            name: "bad email",
            status: 400,
            code: "invalid_request",
            send: account({ email: "x@" }),
          },
          {
            name: "bank details",
            status: 400,
            code: "invalid_request",
            send: account({ bank_account: {} }),
          },
          {
            name: "wrong type",
            status: 400,
            code: "invalid_request",
            send: account({ type: "vpa" }),
          },
        ]],
        ["payouts", [
          {
            name: "INR at Stripe",
            status: 400,
            code: "invalid_request",
            send: out({ currency: "INR" }, alice.u),
          },
          {
            name: "below the minimum",
            status: 400,
            code: "invalid_request",
            send: out({ amount: 99 }, alice.u),
          },
          {
            name: "over the balance",
            status: 409,
            code: "insufficient_funds",
            send: out({ amount: 10001 }, alice.u),
          },
          {
            name: "fractional",
            status: 400,
            code: "invalid_request",
            send: out({ amount: 150.5 }, alice.u),
          },
          {
            name: "negative",
            status: 400,
            code: "invalid_request",
            send: out({ amount: -5 }, alice.u),
          },
          {
            name: "unknown currency",
            status: 400,
            code: "invalid_request",
            send: out({ currency: "XYZ" }, alice.u),
          },
        ]],
        ["webhook/stripe-connect", [
          { name: "unsigned", status: 400, code: "invalid_signature", send: unsignedConnect },
          {
            name: "signed, not an event",
            status: 400,
            code: "invalid_request",
            send: () => {
              const body = JSON.stringify({ hello: "world" });
              return raw(s, "webhook/stripe-connect", {
                method: "POST",
                headers: {
                  "content-type": "application/json",
                  "stripe-signature": stripeSignatureHeader(
                    LOCAL_STRIPE.connectWebhookSecret,
                    Math.floor(Date.now() / 1000),
                    body,
                  ),
                },
                body,
              });
            },
          },
          {
            name: "signed, without an account",
            status: 400,
            code: "invalid_request",
            send: () => {
              const body = JSON.stringify({
                id: "evt_NoAccount000001",
                object: "event",
                type: "account.updated",
                created: Math.floor(Date.now() / 1000),
                data: { object: { id: pa.acct, object: "account" } },
              });
              return raw(s, "webhook/stripe-connect", {
                method: "POST",
                headers: {
                  "content-type": "application/json",
                  "stripe-signature": stripeSignatureHeader(
                    LOCAL_STRIPE.connectWebhookSecret,
                    Math.floor(Date.now() / 1000),
                    body,
                  ),
                },
                body,
              });
            },
          },
        ]],
      ], {
        atLeast: 15,
        watches: [counts, async () => {
          const before = await snapshot(s.db);
          return async () => assert.deepEqual(await snapshot(s.db), before);
        }],
      });
      assert.equal(
        (await call(s, "GET", "payout-accounts", bob.u.token)).body.payout_accounts.length,
        0,
      );
      assert.equal(await usd(s, alice), 10000);
      await assertAuditClean(s);
    });
  },
});
