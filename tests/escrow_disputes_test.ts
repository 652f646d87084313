// Chargebacks on escrow funding payments (issues 12 x 13) against the real Postgres and the
// gateway simulators' dispute controls: the withdrawal comes out of the engagement's escrow
// account; settlement, resolution and cancellation wait while it is open; won, the engagement
// settles once as usual; lost, it ends (canceled, chargeback_lost) and the payee gets nothing;
// after settlement the platform bears it (expense:escrow_chargebacks) and the payee keeps its
// earnings. Events duplicated, reordered and racing 8 escrow-settle runs converge. Every test
// ends with an empty ledger_audit().
import assert from "node:assert/strict";
import {
  createUser,
  type TestStack,
  type TestUser,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { assertContractError } from "./support/contract.ts";
import { audit, idle, opts, type Paid, simPost } from "./support/refunds.ts";
import {
  complete,
  createEngagement,
  type Engagement,
  engagementRow,
  escrowAccount,
  fund,
  get,
  post,
  settleRun,
} from "./support/escrow.ts";
import {
  heldAccount,
  houseBalance,
  lifecycle,
  newDispute,
  send,
  type TestDispute,
} from "./support/disputes.ts";

type Gw = "razorpay" | "stripe";
const TERMS: Record<Gw, { amount: number; currency: string }> = {
  stripe: { amount: 5000, currency: "USD" },
  razorpay: { amount: 20000, currency: "INR" },
};
const messy = { duplicate: 3, reorder: true };

interface Deal {
  payer: TestUser;
  payee: TestUser;
  e: Engagement;
  paid: Paid;
  gw: Gw;
}

async function funded(s: TestStack, gw: Gw, extra: Record<string, unknown> = {}): Promise<Deal> {
  const payer = await createUser(s.db, `cb-payer-${gw}`);
  const payee = await createUser(s.db, `cb-payee-${gw}`);
  const e = await createEngagement(s, payer, payee, { ...TERMS[gw], hold_hours: 0, ...extra });
  const paid = await fund(s, payer, e, gw);
  return { payer, payee, e, paid, gw };
}

/** Opens a chargeback at the deal's gateway (its /_sim control); returns the dispute's id. */
async function chargeback(s: TestStack, d: Deal, body: Record<string, unknown> = {}) {
  const path = d.gw === "stripe"
    ? `/charges/${d.paid.paymentId}/dispute`
    : `/payments/${d.paid.paymentId}/dispute`;
  const r = await simPost(s, d.gw, path, { webhooks: messy, ...body });
  await idle(s);
  return r.id as string;
}

async function advance(s: TestStack, d: Deal, id: string, body: Record<string, unknown>) {
  await simPost(s, d.gw, `/disputes/${id}/advance`, { webhooks: messy, ...body });
  await idle(s);
}

/** Moves an open chargeback to its outcome the way each gateway does (evidence, then verdict). */
async function decide(s: TestStack, d: Deal, id: string, outcome: "won" | "lost") {
  if (d.gw === "razorpay") await advance(s, d, id, { status: "action_required" });
  await advance(s, d, id, { status: "under_review" });
  await advance(s, d, id, { status: outcome });
}

const escrowOf = (s: TestStack, d: Deal) =>
  houseBalance(s, escrowAccount(d.e.id), TERMS[d.gw].currency);

async function settlementPostings(s: TestStack, id: string) {
  const [r] = await s.db`select count(*)::int as n from public.ledger_transactions
    where idempotency_key = ${"escrow_settlement:" + id}`;
  return r.n as number;
}

async function engagementEvents(s: TestStack, id: string) {
  const rows = await s.db`select type, payload from public.outbox_events
    where subject_type = 'engagement' and subject_id = ${id} order by created_at, id`;
  return rows.map((r) => ({ type: r.type as string, payload: r.payload }));
}

const payeeWallet = (s: TestStack, d: Deal) =>
  walletBalance(s.db, d.payee.accountId, TERMS[d.gw].currency);

// The payee's share at rating 5 (no penalty) with the default 10% platform fee.
const payeeShare = (amount: number) => amount - Math.floor(amount * 1000 / 10000);

Deno.test({
  name:
    "escrow chargebacks: before completion and before release, at both gateways; won settles once, lost never settles",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const cases = [
        { gw: "stripe", when: "before_completion", outcome: "won" },
        { gw: "stripe", when: "before_release", outcome: "lost" },
        { gw: "razorpay", when: "before_completion", outcome: "lost" },
        { gw: "razorpay", when: "before_release", outcome: "won" },
      ] as const;
      for (const c of cases) {
        const label = `${c.gw} ${c.when} ${c.outcome}`;
        const d = await funded(s, c.gw);
        const { amount, currency } = TERMS[c.gw];
        if (c.when === "before_release") await complete(s, d.payer, d.e.id, 5);
        const id = await chargeback(s, d);
        // Stripe takes the money at once, from the engagement's escrow account (never from
        // revenue:escrow); Razorpay deducts nothing until the dispute is lost.
        const withdrawn = c.gw === "stripe" ? amount : 0;
        assert.equal(await escrowOf(s, d), amount - withdrawn, label);
        assert.equal(
          await houseBalance(s, heldAccount(d.payer.accountId), currency),
          withdrawn,
          label,
        );
        assert.equal(await houseBalance(s, "revenue:escrow", currency), 0, label);
        if (c.when === "before_completion") {
          const cancel = await post(s, `engagements/${d.e.id}/cancel`, d.payee.token);
          assertContractError(cancel, 409, "order_disputed");
          assert.match(cancel.body.error.message, /open chargeback/);
          assert.equal((await engagementRow(s, d.e.id)).status, "funded", "nothing changed");
          await complete(s, d.payer, d.e.id, 5);
        }
        const run = await settleRun(s);
        assert.ok(run.skipped >= 1, `${label}: skipped counted (${JSON.stringify(run)})`);
        assert.equal((await engagementRow(s, d.e.id)).status, "completed", label);
        assert.equal(await settlementPostings(s, d.e.id), 0, label);

        await decide(s, d, id, c.outcome);
        if (c.outcome === "won") {
          assert.equal(await escrowOf(s, d), amount, `${label}: the money is back in escrow`);
          await settleRun(s);
          await settleRun(s);
          const row = await engagementRow(s, d.e.id);
          assert.equal(row.status, "settled", label);
          assert.equal(await settlementPostings(s, d.e.id), 1, `${label}: settled once`);
          assert.equal(await payeeWallet(s, d), payeeShare(amount), label);
          assert.equal(await escrowOf(s, d), 0, label);
        } else {
          const row = await engagementRow(s, d.e.id);
          assert.deepEqual([row.status, row.cancel_reason], ["canceled", "chargeback_lost"], label);
          assert.equal(await escrowOf(s, d), 0, `${label}: the gateway kept it all`);
          await settleRun(s);
          assert.equal(await settlementPostings(s, d.e.id), 0, `${label}: never settled`);
          assert.equal(await payeeWallet(s, d), 0, `${label}: nothing for the payee`);
          assert.equal(await walletBalance(s.db, d.payer.accountId, currency), 0, label);
          const seen = await get(s, `engagements/${d.e.id}`, d.payee.token);
          assert.deepEqual(
            [seen.body.engagement.status, seen.body.engagement.cancel_reason],
            ["canceled", "chargeback_lost"],
          );
          assert.equal(seen.body.engagement.expected_payee_amount, 0);
          const events = await engagementEvents(s, d.e.id);
          assert.deepEqual(events.map((x) => x.type), [
            "engagement.funded",
            "engagement.completed",
            "engagement.canceled",
          ]);
          assert.deepEqual(
            [events[2].payload.cancel_reason, events[2].payload.previous_status],
            ["chargeback_lost", "completed"],
          );
        }
        assert.equal(await houseBalance(s, heldAccount(d.payer.accountId), currency), 0, label);
        await audit(s);
      }
    });
  },
});

Deno.test({
  name:
    "escrow chargebacks: after settlement the platform bears it and the payee keeps its earnings",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      for (const [gw, outcome] of [["stripe", "won"], ["razorpay", "lost"]] as const) {
        const { amount, currency } = TERMS[gw];
        const d = await funded(s, gw);
        // Rating 3: a 10% penalty, refunded to the payer by the settlement run.
        await complete(s, d.payer, d.e.id, 3);
        await settleRun(s);
        await idle(s);
        const row = await engagementRow(s, d.e.id);
        assert.equal(row.status, "settled");
        const earned = Number(row.payee_amount);
        assert.equal(await payeeWallet(s, d), earned);
        const expense0 = await houseBalance(s, "expense:escrow_chargebacks", currency);

        // The gateway disputes what is left of the charge (the penalty was refunded).
        const disputed = amount - Number(row.penalty_amount);
        const id = await chargeback(s, d);
        if (gw === "stripe") {
          assert.equal(
            await houseBalance(s, "expense:escrow_chargebacks", currency),
            expense0 - disputed,
            "the withdrawal is the platform's",
          );
        }
        await decide(s, d, id, outcome);
        assert.equal(await payeeWallet(s, d), earned, `${gw}: the payee's earnings untouched`);
        assert.equal(await escrowOf(s, d), 0);
        assert.equal(
          await houseBalance(s, "expense:escrow_chargebacks", currency),
          outcome === "won" ? expense0 : expense0 - disputed,
          `${gw} ${outcome}`,
        );
        const after = await engagementRow(s, d.e.id);
        assert.deepEqual([after.status, after.cancel_reason], ["settled", null]);
        assert.equal(await settlementPostings(s, d.e.id), 1);
        assert.equal(await houseBalance(s, "revenue:escrow", currency), 0);
        await audit(s);
      }
    });
  },
});

Deno.test({
  name:
    "escrow chargebacks: a partial loss returns the rest to the payer's wallet; a partial win's reinstatement too",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      // Razorpay: 5000 of 20000 disputed and lost; the 15000 left in escrow is the payer's.
      const r = await funded(s, "razorpay");
      const rid = await chargeback(s, r, { amount: 5000 });
      await decide(s, r, rid, "lost");
      const row = await engagementRow(s, r.e.id);
      assert.deepEqual([row.status, row.cancel_reason], ["canceled", "chargeback_lost"]);
      assert.equal(await escrowOf(s, r), 0);
      assert.equal(
        await houseBalance(s, `escrow_refund:${r.e.id.replaceAll("-", "")}`, "INR"),
        15000,
      );
      const run = await settleRun(s);
      assert.equal(run.refunds_created, 0, "the gateway refuses refunds of a charged-back payment");
      assert.equal(await walletBalance(s.db, r.payer.accountId, "INR"), 15000, "to the wallet");
      assert.equal(await payeeWallet(s, r), 0);
      const [refunds] = await s.db`select count(*)::int as n from public.refunds
        where order_id = ${r.paid.orderId}`;
      assert.equal(refunds.n, 0);

      // Stripe: the whole charge disputed, lost, then 1200 reinstated (a partial win): the
      // engagement stays canceled and the reinstated part goes back to the payer.
      const st = await funded(s, "stripe");
      const sid = await chargeback(s, st);
      await advance(s, st, sid, { status: "under_review" });
      await advance(s, st, sid, { status: "lost", reinstated: 1200 });
      const srow = await engagementRow(s, st.e.id);
      assert.deepEqual([srow.status, srow.cancel_reason], ["canceled", "chargeback_lost"]);
      await settleRun(s);
      assert.equal(await walletBalance(s.db, st.payer.accountId, "USD"), 1200);
      assert.equal(await payeeWallet(s, st), 0);
      assert.equal(await escrowOf(s, st), 0);
      await audit(s);
    });
  },
});

/** Every copy of every event at once, the list reversed: the order settle sees is arbitrary. */
async function storm(s: TestStack, d: TestDispute, outcome: "won" | "lost") {
  const events = lifecycle(d, outcome).reverse();
  await Promise.all(events.flatMap((e) => [0, 1, 2].map(() => send(s, d, e))));
}

Deno.test({
  name: "escrow chargebacks: dispute events duplicated and reordered converge",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      for (const gw of ["stripe", "razorpay"] as const) {
        for (const outcome of ["won", "lost"] as const) {
          const d = await funded(s, gw);
          await complete(s, d.payer, d.e.id, 5);
          const dispute = newDispute(d.paid);
          await storm(s, dispute, outcome);
          const row = await engagementRow(s, d.e.id);
          const [dr] = await s.db`select status, amount_held::int as held from public.disputes
            where gateway_dispute_id = ${dispute.id}`;
          assert.deepEqual([dr.status, dr.held], [outcome, 0], `${gw} ${outcome}`);
          if (outcome === "won") {
            assert.equal(row.status, "completed", `${gw}: waiting for its run`);
            assert.equal(await escrowOf(s, d), TERMS[gw].amount);
            await settleRun(s);
            assert.equal(await settlementPostings(s, d.e.id), 1);
          } else {
            assert.deepEqual([row.status, row.cancel_reason], ["canceled", "chargeback_lost"]);
            assert.equal(await escrowOf(s, d), 0);
            const canceled = (await engagementEvents(s, d.e.id)).filter((x) =>
              x.type === "engagement.canceled"
            );
            assert.equal(canceled.length, 1, "one engagement.canceled");
          }
          // The same events once more, in order: nothing changes.
          for (const e of lifecycle(dispute, outcome)) await send(s, dispute, e);
          assert.equal(
            (await engagementRow(s, d.e.id)).status,
            row.status === "completed" ? "settled" : row.status,
          );
          await audit(s);
        }
      }
    });
  },
});

Deno.test({
  name: "escrow chargebacks: 8 concurrent escrow-settle runs with chargebacks racing",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const deals: Deal[] = [];
      for (let i = 0; i < 8; i++) {
        const d = await funded(s, "stripe", { amount: 5000 + i * 100 });
        await complete(s, d.payer, d.e.id, 5);
        deals.push(d);
      }
      const disputed = deals.slice(0, 4);
      const expense0 = await houseBalance(s, "expense:escrow_chargebacks", "USD");
      // Two chargebacks open before the runs start (they must be skipped, then end the
      // engagement); two more arrive, every event at once, while the runs are settling.
      const lives = disputed.map((d) => {
        const dispute = newDispute(d.paid);
        return { dispute, events: lifecycle(dispute, "lost") };
      });
      for (const l of lives.slice(0, 2)) await send(s, l.dispute, l.events.shift()!);
      await Promise.all([
        ...Array.from({ length: 8 }, () => settleRun(s)),
        ...lives.map((l) => Promise.all(l.events.map((e) => send(s, l.dispute, e)))),
      ]);
      await idle(s);
      await settleRun(s);
      const [failed] = await s.db`select count(*)::int as n from public.webhook_events
        where gateway = 'stripe' and outcome = 'failed'
          and position('charge.dispute' in raw_body) > 0`;
      assert.equal(failed.n, 0, "no dispute event failed (no deadlock, no refusal)");
      let borne = 0;
      for (const d of deals) {
        const row = await engagementRow(s, d.e.id);
        const postings = await settlementPostings(s, d.e.id);
        if (!disputed.includes(d)) {
          assert.deepEqual([row.status, postings], ["settled", 1]);
          continue;
        }
        // Either settled before the chargeback (the platform bears it) or ended by it; those
        // charged back before the runs never settle.
        if (disputed.indexOf(d) < 2) assert.equal(row.status, "canceled");
        if (row.status === "settled") {
          assert.equal(postings, 1);
          assert.equal(await payeeWallet(s, d), payeeShare(d.e.amount));
          borne += d.e.amount;
        } else {
          assert.deepEqual([row.status, row.cancel_reason, postings], [
            "canceled",
            "chargeback_lost",
            0,
          ]);
          assert.equal(await payeeWallet(s, d), 0);
        }
        assert.equal(await escrowOf(s, d), 0);
      }
      assert.equal(await houseBalance(s, "expense:escrow_chargebacks", "USD"), expense0 - borne);
      await audit(s);
    });
  },
});

/** A Stripe chargeback effect as shared/gateways/stripe/wire.ts builds it: the money withdrawn. */
function withdrawal(d: Deal, id: string) {
  return {
    action: "dispute",
    gateway_dispute_id: id,
    gateway_payment_id: d.paid.paymentId,
    gateway_order_id: d.paid.gatewayOrderId,
    amount: d.e.amount,
    currency: d.e.currency,
    status: "open",
    phase: "chargeback",
    gateway_status: "needs_response",
    occurred_at: Math.floor(Date.now() / 1000),
    withdrawn: d.e.amount,
    reinstated: 0,
  };
}

Deno.test({
  name:
    "escrow chargebacks: a claim never waits for, nor settles under, a dispute event in progress",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      // A dispute event holds the funding order's lock (and the engagement's) in an open
      // transaction: escrow_settle neither waits (lock_timeout would fail it) nor settles it.
      const d = await funded(s, "stripe");
      await complete(s, d.payer, d.e.id, 5);
      let applied!: () => void;
      let commit!: () => void;
      const appliedP = new Promise<void>((r) => applied = r);
      const commitP = new Promise<void>((r) => commit = r);
      const event = s.db.begin(async (tx) => {
        await tx`select settle.apply_dispute_event('stripe',
          ${tx.json(withdrawal(d, "dp_LOCKORDER" + crypto.randomUUID().slice(0, 8)))})`;
        applied();
        await commitP;
      });
      await appliedP;
      await s.db.begin(async (tx) => {
        await tx`set local lock_timeout = '2s'`;
        await tx`select settle.escrow_settle(now(), 1000)`;
      });
      assert.equal((await engagementRow(s, d.e.id)).status, "completed", "not settled meanwhile");
      commit();
      await event;
      const [r] = await s.db`select settle.escrow_settle(now(), 1000) as r`;
      assert.ok(r.r.skipped >= 1);
      assert.equal((await engagementRow(s, d.e.id)).status, "completed", "skipped once visible");
      assert.equal(await escrowOf(s, d), 0, "the withdrawal came out of escrow");

      // A settling transaction holds the engagement: the dispute event waits for it, then takes
      // the money from the platform's expense, not from the settled escrow.
      const d2 = await funded(s, "stripe");
      await complete(s, d2.payer, d2.e.id, 5);
      const expense0 = await houseBalance(s, "expense:escrow_chargebacks", "USD");
      let settled!: () => void;
      let finish!: () => void;
      const settledP = new Promise<void>((r) => settled = r);
      const finishP = new Promise<void>((r) => finish = r);
      const run = s.db.begin(async (tx) => {
        await tx`select settle.escrow_settle(now(), 1000)`;
        settled();
        await finishP;
      });
      await settledP;
      const late = s.db`select settle.apply_dispute_event('stripe',
        ${s.db.json(withdrawal(d2, "dp_LOCKORDER" + crypto.randomUUID().slice(0, 8)))}) as r`
        .execute();
      // It is blocked on a lock held by the settling transaction (polled: an observation, the
      // outcome does not depend on it).
      for (let i = 0; i < 200; i++) {
        const [w] = await s.db`select count(*)::int as n from pg_stat_activity
          where wait_event_type = 'Lock' and query like '%apply_dispute_event%'
            and pid <> pg_backend_pid()`;
        if (w.n > 0) break;
        assert.ok(i < 199, "the dispute event never waited for the settling transaction");
        await new Promise((r) => setTimeout(r, 10));
      }
      finish();
      await run;
      assert.equal((await late)[0].r.outcome, "applied");
      assert.equal((await engagementRow(s, d2.e.id)).status, "settled");
      assert.equal(await escrowOf(s, d2), 0);
      assert.equal(
        await houseBalance(s, "expense:escrow_chargebacks", "USD"),
        expense0 - d2.e.amount,
      );
      assert.equal(await payeeWallet(s, d2), payeeShare(d2.e.amount));
      await audit(s);
    });
  },
});

Deno.test({
  name:
    "escrow chargebacks: a penalty owed when a chargeback opens waits for the outcome, then goes back at once",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      for (const [gw, outcome] of [["razorpay", "won"], ["stripe", "lost"]] as const) {
        const { amount, currency } = TERMS[gw];
        const d = await funded(s, gw);
        await complete(s, d.payer, d.e.id, 3);
        // Settled by the SQL job alone: the penalty is queued, not yet refunded.
        await s.db`select settle.escrow_settle(now(), 1000)`;
        const penalty = Number((await engagementRow(s, d.e.id)).penalty_amount);
        assert.equal(penalty, amount / 10);
        const owed = async () => {
          const [o] = await s.db`select settle.escrow_owed(o)::int as owed from public.orders o
            where o.id = ${d.paid.orderId}`;
          return o.owed as number;
        };
        const id = await chargeback(s, d);
        await settleRun(s);
        assert.equal(await owed(), penalty, `${gw}: the penalty waits for the outcome`);
        const [none] = await s.db`select count(*)::int as n from public.refunds
          where order_id = ${d.paid.orderId}`;
        assert.equal(none.n, 0, "no refund asked while the chargeback is open");
        const [q] = await s
          .db`select next_attempt_at > now() as later from settle.escrow_refund_queue
          where order_id = ${d.paid.orderId}`;
        assert.equal(q.later, true, "queued for later");
        await decide(s, d, id, outcome);
        await settleRun(s);
        await idle(s);
        assert.equal(await owed(), 0, `${gw} ${outcome}: returned right after the outcome`);
        const refunds = await s.db`select amount::int, status from public.refunds
          where order_id = ${d.paid.orderId}`;
        if (outcome === "won") {
          // An ordinary refund of the penalty, as without a chargeback.
          assert.deepEqual(refunds.map((r) => [r.amount, r.status]), [[penalty, "processed"]]);
        } else {
          // No refund of a charged-back payment: the payer's wallet gets it.
          assert.equal(refunds.length, 0);
          assert.equal(await walletBalance(s.db, d.payer.accountId, currency), penalty);
        }
        assert.equal(
          await payeeWallet(s, d),
          Number((await engagementRow(s, d.e.id)).payee_amount),
        );
        await audit(s);
      }
    });
  },
});
