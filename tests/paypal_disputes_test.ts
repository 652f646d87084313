// PayPal disputes (issue 13 with issue 15's gateway) against the real Postgres: the simulator's
// /_sim/paypal controls open a dispute on a completed capture and move it through its states,
// sending signed CUSTOMER.DISPUTE.* events (duplicated, reordered, dropped); they converge
// through settle.apply_dispute_event exactly once per state; PAYMENT.CAPTURE.REVERSED never
// takes the money a second time; reconcile reads GET /v1/customer/disputes for what was missed.
import assert from "node:assert/strict";
import {
  createUser,
  snapshot,
  type TestStack,
  type TestUser,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { assertContractError } from "./support/contract.ts";
import { audit, idle, refund } from "./support/refunds.ts";
import { heldAccount, houseBalance } from "./support/disputes.ts";
import {
  approve,
  deliver,
  opts,
  orderRow,
  paypalOrder,
  redeliver,
  simPost,
  verify,
} from "./support/paypal.ts";
import type { PayPalEvent } from "../dev/simulator/paypal/mod.ts";
import { reconcile } from "../shared/services/reconcile.ts";
import { disputeEffect, normalizeEvent } from "../shared/gateways/paypal/wire.ts";

interface Paid {
  orderId: string;
  gatewayOrderId: string;
  captureId: string;
}

async function paidTopup(s: TestStack, u: TestUser, amount: number, currency = "USD") {
  const { order } = await paypalOrder(s, u, { purpose: "wallet_topup", amount, currency });
  await approve(s, order.gateway_order_id, "approve", { deliver: false });
  const v = await verify(s, u, order.gateway_order_id);
  assert.equal(v.body.order.status, "paid", JSON.stringify(v.body));
  const captureId = (await orderRow(s, order.id)).gateway_payment_id as string;
  return { orderId: order.id, gatewayOrderId: order.gateway_order_id, captureId } as Paid;
}

async function dispute(s: TestStack, id: string) {
  const [row] = await s
    .db`select status, phase, gateway_status, amount_withdrawn, amount_reinstated,
      amount_lost, amount_held, fee from public.disputes where gateway = 'paypal' and gateway_dispute_id = ${id}`;
  return row
    ? {
      status: row.status as string,
      phase: row.phase as string,
      withdrawn: Number(row.amount_withdrawn),
      reinstated: Number(row.amount_reinstated),
      lost: Number(row.amount_lost),
      held: Number(row.amount_held),
      fee: Number(row.fee),
    }
    : null;
}

/** The stored outcomes of the PayPal events whose body mentions `text`, by event type. */
async function stored(s: TestStack, text: string) {
  const rows = await s.db`select event_type, outcome from public.webhook_events
    where gateway = 'paypal' and position(${text} in raw_body) > 0 order by id`;
  return rows.map((r) => `${r.event_type}:${r.outcome}`);
}

const open = (s: TestStack, p: Paid, body: Record<string, unknown>) =>
  simPost(s, `captures/${p.captureId}/dispute`, body);
const advance = (s: TestStack, id: string, body: Record<string, unknown>) =>
  simPost(s, `disputes/${id}/advance`, body);
const disputeEvents = (s: TestStack, p: Paid): PayPalEvent[] =>
  s.paypal.events(p.gatewayOrderId).filter((e) =>
    e.type.startsWith("CUSTOMER.DISPUTE.") || e.type === "PAYMENT.CAPTURE.REVERSED"
  );
const gatewayRefundCount = (s: TestStack, p: Paid) =>
  s.paypal.state.captures.get(p.captureId)!.refunds.length;

const messy = { duplicate: 3, reorder: true };

Deno.test({
  name:
    "paypal disputes: a claim holds the funds, refunds are 409 unasked, a win restores the wallet",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "ppd-won");
      const p = await paidTopup(s, u, 2500);
      const fees0 = await houseBalance(s, "expense:dispute_fees", "USD");
      const d = await open(s, p, { fee: "20.00", webhooks: messy });
      await idle(s);
      assert.deepEqual(await dispute(s, d.dispute_id), {
        status: "open",
        phase: "chargeback",
        withdrawn: 2500,
        reinstated: 0,
        lost: 0,
        held: 2500,
        fee: 2000,
      });
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
      assert.equal(await houseBalance(s, heldAccount(u.accountId), "USD"), 2500);
      assert.equal(await houseBalance(s, "expense:dispute_fees", "USD"), fees0 - 2000);

      // PayPal refuses refunds of a charged-back capture; settle refuses first, asking nothing.
      const before = await snapshot(s.db);
      assertContractError(await refund(s, u.token, { order_id: p.orderId }), 409, "order_disputed");
      assertContractError(
        await refund(s, s.serviceRoleKey, { order_id: p.orderId, amount: 100 }),
        409,
        "order_disputed",
      );
      assert.deepEqual(await snapshot(s.db), before, "a refused refund writes nothing");
      assert.equal(gatewayRefundCount(s, p), 0, "PayPal was never asked");

      await advance(s, d.dispute_id, { status: "UNDER_REVIEW", webhooks: messy });
      await idle(s);
      assert.equal((await dispute(s, d.dispute_id))?.status, "under_review");
      await advance(s, d.dispute_id, {
        status: "RESOLVED",
        outcome: "RESOLVED_SELLER_FAVOUR",
        webhooks: messy,
      });
      await idle(s);
      assert.deepEqual(await dispute(s, d.dispute_id), {
        status: "won",
        phase: "chargeback",
        withdrawn: 2500,
        reinstated: 2500,
        lost: 0,
        held: 0,
        fee: 2000,
      });
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 2500);
      assert.equal(await houseBalance(s, heldAccount(u.accountId), "USD"), 0);
      const [o] = await s.db`select dispute_status from public.orders where id = ${p.orderId}`;
      assert.equal(o.dispute_status, "won");
      // Each state applied once (every other copy changed nothing).
      const outcomes = await stored(s, d.dispute_id);
      assert.equal(outcomes.filter((x) => x.endsWith(":applied")).length, 3, outcomes.join());
      // Resolved: the order can be refunded again.
      const r = await refund(s, u.token, { order_id: p.orderId, amount: 500 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await audit(s);
    });
  },
});

Deno.test({
  name:
    "paypal disputes: lost leaves the wallet debited once; the capture's REVERSED takes nothing more",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "ppd-lost");
      const full = await paidTopup(s, u, 2500);
      const d = await open(s, full, { webhooks: messy });
      await advance(s, d.dispute_id, {
        status: "RESOLVED",
        outcome: "RESOLVED_BUYER_FAVOUR",
        webhooks: messy,
      });
      await idle(s);
      assert.deepEqual(await dispute(s, d.dispute_id), {
        status: "lost",
        phase: "chargeback",
        withdrawn: 2500,
        reinstated: 0,
        lost: 2500,
        held: 0,
        fee: 0,
      });
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
      const reversed = disputeEvents(s, full).filter((e) => e.type === "PAYMENT.CAPTURE.REVERSED");
      assert.equal(reversed.length, 1);
      assert.deepEqual(await stored(s, reversed[0].event_id), ["PAYMENT.CAPTURE.REVERSED:ignored"]);
      const refunds = await s.db`select id from public.refunds where order_id = ${full.orderId}`;
      assert.equal(refunds.length, 0, "the reversal is not a refund as well");
      // Every event again, concurrently: nothing moves twice.
      const again = await Promise.all(disputeEvents(s, full).map((e) => redeliver(s, e)));
      assert.ok(again.every((r) => r.status === 200));
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
      assertContractError(
        await refund(s, u.token, { order_id: full.orderId }),
        409,
        "order_disputed",
      );

      // A partial outcome: PayPal keeps 10.00 of a 25.00 claim and gives the rest back.
      const part = await paidTopup(s, u, 2500);
      const pd = await open(s, part, {});
      await advance(s, pd.dispute_id, {
        status: "RESOLVED",
        outcome: "RESOLVED_BUYER_FAVOUR",
        amount_refunded: "10.00",
      });
      await idle(s);
      assert.deepEqual(await dispute(s, pd.dispute_id), {
        status: "lost",
        phase: "chargeback",
        withdrawn: 2500,
        reinstated: 1500,
        lost: 1000,
        held: 0,
        fee: 0,
      });
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 1500);
      await audit(s);
    });
  },
});

Deno.test({
  name: "paypal disputes: resolved before created, every copy racing, converges to the same state",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "ppd-order");
      const results: unknown[] = [];
      for (const outcome of ["RESOLVED_SELLER_FAVOUR", "RESOLVED_BUYER_FAVOUR"]) {
        const p = await paidTopup(s, u, 4000, "EUR");
        const quiet = { deliver: false };
        const d = await open(s, p, { fee: "15.00", webhooks: quiet });
        await advance(s, d.dispute_id, { status: "UNDER_REVIEW", webhooks: quiet });
        await advance(s, d.dispute_id, { status: "RESOLVED", outcome, webhooks: quiet });
        const events = disputeEvents(s, p).reverse();
        assert.equal(events[events.length - 1].type, "CUSTOMER.DISPUTE.CREATED");
        const replies = await Promise.all(
          events.flatMap((e) => [e, e, e]).map((e) => deliver(s, e.body, e.headers)),
        );
        assert.ok(
          replies.every((r) => r.status === 200),
          JSON.stringify(replies.map((r) => r.body)),
        );
        const st = await dispute(s, d.dispute_id);
        results.push(st);
        const won = outcome === "RESOLVED_SELLER_FAVOUR";
        assert.deepEqual(st, {
          status: won ? "won" : "lost",
          phase: "chargeback",
          withdrawn: 4000,
          reinstated: won ? 4000 : 0,
          lost: won ? 0 : 4000,
          held: 0,
          fee: 1500,
        });
        // A late CREATED (the oldest state) changes nothing.
        const created = events[events.length - 1];
        assert.equal((await redeliver(s, created)).status, 200);
        assert.deepEqual(await dispute(s, d.dispute_id), st);
      }
      // Won restored the first top-up; lost kept the second.
      assert.equal(await walletBalance(s.db, u.accountId, "EUR"), 4000);
      assert.equal(results.length, 2);
      await audit(s);
    });
  },
});

Deno.test({
  name: "paypal disputes: reconcile converges a dropped resolution and a dispute never delivered",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "ppd-missed");
      const a = await paidTopup(s, u, 3000);
      const b = await paidTopup(s, u, 2000);
      const da = await open(s, a, {});
      await idle(s);
      assert.equal((await dispute(s, da.dispute_id))?.withdrawn, 3000);
      await advance(s, da.dispute_id, {
        status: "RESOLVED",
        outcome: "RESOLVED_SELLER_FAVOUR",
        webhooks: { drop: true },
      });
      const db_ = await open(s, b, { webhooks: { drop: true } });
      await advance(s, db_.dispute_id, {
        status: "RESOLVED",
        outcome: "ACCEPTED",
        webhooks: { drop: true },
      });
      await idle(s);
      assert.equal((await dispute(s, da.dispute_id))?.status, "open");
      assert.equal(await dispute(s, db_.dispute_id), null, "no webhook of it reached settle");

      // The list's items are summaries: settle reads each by id for its capture.
      const first = await reconcile(s.app);
      assert.deepEqual(first.disputes, {
        read: 2,
        applied: 2,
        unchanged: 0,
        ignored: 0,
        errors: 0,
      });
      assert.equal((await dispute(s, da.dispute_id))?.status, "won");
      assert.deepEqual(await dispute(s, db_.dispute_id), {
        status: "lost",
        phase: "chargeback",
        withdrawn: 2000,
        reinstated: 0,
        lost: 2000,
        held: 0,
        fee: 0,
      });
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 3000);
      const second = await reconcile(s.app);
      assert.equal((second.disputes as Record<string, number>).applied, 0);

      // An open dispute older than the listing window is read by id.
      const c = await paidTopup(s, u, 1000);
      const dc = await open(s, c, {});
      await idle(s);
      await advance(s, dc.dispute_id, {
        status: "RESOLVED",
        outcome: "CANCELED_BY_BUYER",
        webhooks: { drop: true },
      });
      s.paypal.state.disputes.get(dc.dispute_id)!.create_time = "2026-01-01T00:00:00Z";
      await s.db`update public.disputes set gateway_created_at = now() - interval '30 days'
        where gateway_dispute_id = ${dc.dispute_id}`;
      const third = await reconcile(s.app);
      assert.equal((third.disputes as Record<string, number>).applied, 1);
      assert.equal((await dispute(s, dc.dispute_id))?.status, "closed");
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 4000);
      await audit(s);
    });
  },
});

Deno.test({
  name:
    "paypal disputes: an inquiry moves no money and leaves the order refundable; escalated, it holds",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "ppd-inquiry");
      const p = await paidTopup(s, u, 2500);
      const d = await open(s, p, { stage: "INQUIRY" });
      await idle(s);
      assert.deepEqual(await dispute(s, d.dispute_id), {
        status: "open",
        phase: "inquiry",
        withdrawn: 0,
        reinstated: 0,
        lost: 0,
        held: 0,
        fee: 0,
      });
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 2500);
      const r = await refund(s, u.token, { order_id: p.orderId, amount: 500 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await advance(s, d.dispute_id, {
        status: "WAITING_FOR_SELLER_RESPONSE",
        stage: "CHARGEBACK",
      });
      await idle(s);
      const st = await dispute(s, d.dispute_id);
      assert.equal(st?.phase, "chargeback");
      assert.equal(st?.withdrawn, 2500);
      // The wallet gave what it had (2000); the rest is a shortfall the account owes.
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
      await advance(s, d.dispute_id, { status: "RESOLVED", outcome: "DENIED" });
      await idle(s);
      assert.equal((await dispute(s, d.dispute_id))?.status, "won");
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 2000);
      await audit(s);
    });
  },
});

Deno.test({
  name:
    "paypal disputes: an unknown capture is 200 stored ignored; a bare notification is read by id",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const body = (resource: Record<string, unknown>) =>
        JSON.stringify({
          id: `WH-${crypto.randomUUID().replaceAll("-", "").slice(0, 20).toUpperCase()}`,
          event_version: "1.0",
          create_time: new Date().toISOString(),
          resource_type: "dispute",
          event_type: "CUSTOMER.DISPUTE.CREATED",
          resource,
        });
      const stranger = body({
        dispute_id: "PP-D-NOTSETTLE1",
        disputed_transactions: [{ seller_transaction_id: "5NOTSETTLES00001X" }],
        status: "WAITING_FOR_SELLER_RESPONSE",
        dispute_amount: { currency_code: "USD", value: "25.00" },
        dispute_life_cycle_stage: "CHARGEBACK",
      });
      const before = await snapshot(s.db);
      const r = await deliver(s, stranger, await s.paypal.signWebhook(stranger));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(await stored(s, "PP-D-NOTSETTLE1"), ["CUSTOMER.DISPUTE.CREATED:ignored"]);
      const after = await snapshot(s.db);
      assert.equal(after["public.ledger_entries"], before["public.ledger_entries"]);
      assert.equal(after["public.disputes"], before["public.disputes"]);

      // PayPal's notification may carry little more than the dispute id: settle reads it.
      const u = await createUser(s.db, "ppd-bare");
      const p = await paidTopup(s, u, 1200);
      const d = await open(s, p, { webhooks: { deliver: false } });
      const bare = body({ dispute_id: d.dispute_id });
      const b = await deliver(s, bare, await s.paypal.signWebhook(bare));
      assert.equal(b.status, 200, JSON.stringify(b.body));
      assert.equal((await dispute(s, d.dispute_id))?.withdrawn, 1200);
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);

      // A forged signature is 400 and stores nothing.
      const forged = await s.paypal.signWebhook(bare);
      const n = await snapshot(s.db);
      const f = await deliver(s, bare.replace("CREATED", "RESOLVED"), forged);
      assert.equal(f.status, 400);
      assert.deepEqual(await snapshot(s.db), n);
      await audit(s);
    });
  },
});

Deno.test("paypal disputes: the wire mapping (status, outcome, stage, money, fees)", () => {
  const base = {
    dispute_id: "PP-D-1",
    update_time: "2026-12-01T10:00:00Z",
    disputed_transactions: [{ seller_transaction_id: "CAP1" }],
    dispute_amount: { currency_code: "JPY", value: "3000" },
    dispute_life_cycle_stage: "CHARGEBACK",
  };
  const fx = (o: Record<string, unknown>) => disputeEffect({ ...base, ...o }, 1);
  const pick = (e: Record<string, unknown>) => [e.status, e.phase, e.withdrawn, e.reinstated];
  assert.deepEqual(pick(fx({ status: "WAITING_FOR_BUYER_RESPONSE" })), [
    "open",
    "chargeback",
    3000,
    0,
  ]);
  assert.deepEqual(pick(fx({ status: "UNDER_REVIEW", dispute_life_cycle_stage: "INQUIRY" })), [
    "under_review",
    "inquiry",
    0,
    0,
  ]);
  const resolved = (code: string, refunded?: string) =>
    pick(fx({
      status: "RESOLVED",
      dispute_outcome: {
        outcome_code: code,
        ...(refunded ? { amount_refunded: { currency_code: "JPY", value: refunded } } : {}),
      },
    }));
  assert.deepEqual(resolved("RESOLVED_SELLER_FAVOUR"), ["won", "chargeback", 3000, 3000]);
  assert.deepEqual(resolved("RESOLVED_WITH_PAYOUT"), ["won", "chargeback", 3000, 3000]);
  assert.deepEqual(resolved("CANCELED_BY_BUYER"), ["closed", "chargeback", 3000, 3000]);
  assert.deepEqual(resolved("RESOLVED_BUYER_FAVOUR"), ["lost", "chargeback", 3000, 0]);
  assert.deepEqual(resolved("ACCEPTED", "1000"), ["lost", "chargeback", 3000, 2000]);
  // Resolved without a known outcome: not final (reconcile reads it again), money unmoved.
  assert.deepEqual(resolved("NONE"), ["under_review", "chargeback", 3000, 0]);
  const e = fx({
    status: "WAITING_FOR_SELLER_RESPONSE",
    money_movements: [
      {
        affected_party: "SELLER",
        type: "DEBIT",
        reason: "CHARGEBACK_FEE",
        amount: { currency_code: "JPY", value: "2000" },
        initiated_time: "t1",
      },
      {
        affected_party: "SELLER",
        type: "DEBIT",
        reason: "DISPUTE_SETTLEMENT",
        amount: { currency_code: "JPY", value: "3000" },
      },
      {
        affected_party: "BUYER",
        type: "CREDIT",
        reason: "DISPUTE_FEE",
        amount: { currency_code: "JPY", value: "5" },
      },
    ],
  });
  assert.deepEqual(e.balance_transactions, [{
    id: "PP-D-1:CHARGEBACK_FEE:DEBIT:t1",
    fee: 2000,
    currency: "JPY",
  }]);
  assert.equal(e.gateway_payment_id, "CAP1");
  assert.equal(e.occurred_at, Date.parse(base.update_time) / 1000);
  // A resource settle cannot link, or a REVERSED capture, has no effect of its own.
  const raw = (type: string, resource: unknown) =>
    JSON.stringify({ id: "WH-1", event_type: type, resource });
  assert.equal(
    normalizeEvent(raw("CUSTOMER.DISPUTE.CREATED", { dispute_id: "X" }), "t").effect,
    null,
  );
  const rev = normalizeEvent(
    raw("PAYMENT.CAPTURE.REVERSED", {
      id: "R1",
      status: "COMPLETED",
      amount: { currency_code: "USD", value: "1.00" },
      links: [{ rel: "up", href: "https://x/v2/payments/captures/CAP9" }],
    }),
    "t",
  );
  assert.deepEqual([rev.effect, rev.kind, rev.gatewayPaymentId, rev.amount], [
    null,
    null,
    "CAP9",
    100,
  ]);
});
