// Marketplace escrow end to end against the real Postgres and the gateway simulators: the
// contract, funding once under racing verify and webhooks, settlement with the rating split and
// the penalty refund, 8 concurrent escrow-settle runs, disputes and resolve, cancellation
// refunding once, who may do what (403 for the payee, 404 for anyone else), a gateway outage on
// the penalty refund, and bad input writing nothing. Every test ends with an empty audit.
import assert from "node:assert/strict";
import {
  client,
  confirmAtStripe,
  createUser,
  idle,
  invoke,
  payAtSimulator,
  raw,
  type TestStack,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { type Case, runCases } from "./support/contract.ts";
import { refundablePart } from "../shared/services/engagements.ts";
import type { PaymentGateway } from "../shared/gateways/types.ts";
import { clearFaults, createOrder, fault, opts, pay } from "./support/refunds.ts";
import {
  audit,
  complete,
  createEngagement,
  type Engagement,
  engagementRow,
  escrowAccount,
  fund,
  get,
  houseBalance,
  post,
  settleRun,
} from "./support/escrow.ts";

async function refundsOf(s: TestStack, orderId: string) {
  const rows = await s.db`select amount::int, status from public.refunds where order_id = ${orderId}
    order by created_at`;
  return rows.map((r) => ({ amount: r.amount, status: r.status }));
}

Deno.test(
  "escrow: create, fund, complete with a rating, settle the split, refund the penalty",
  opts,
  () =>
    withStack(async (s) => {
      const payer = await createUser(s.db, "payer");
      const payee = await createUser(s.db, "payee");
      const r = await invoke(client(s, payer.token), "engagements", {
        payee_account_id: payee.accountId,
        amount: 10000,
        currency: "inr",
        title: "Logo design",
        reference: "job-42",
        hold_hours: 0,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const e = r.body.engagement;
      for (
        const k of [
          "id",
          "status",
          "payer_account_id",
          "payee_account_id",
          "amount",
          "currency",
          "title",
          "reference",
          "hold_hours",
          "rating",
          "completed_at",
          "release_at",
          "created_at",
        ]
      ) assert.ok(k in e, `engagement.${k}`);
      assert.deepEqual(
        [e.status, e.payer_account_id, e.payee_account_id, e.amount, e.currency, e.hold_hours],
        ["awaiting_payment", payer.accountId, payee.accountId, 10000, "INR", 0],
      );
      assert.equal(e.expected_payee_amount, 9000, "the payee sees what they will receive");

      const paid = await fund(s, payer, e);
      const funded = await engagementRow(s, e.id);
      assert.equal(funded.status, "funded");
      assert.equal(funded.funding_order_id, paid.orderId);
      assert.equal(await houseBalance(s, escrowAccount(e.id)), 10000, "the money is in escrow");
      assert.equal(await walletBalance(s.db, payer.accountId), 0, "not in the payer's wallet");
      assert.equal(await walletBalance(s.db, payee.accountId), 0, "nor in the payee's");

      const done = await complete(s, payer, e.id, 3);
      assert.equal(done.status, "completed");
      assert.equal(done.release_at, done.completed_at, "hold_hours 0: released when completed");
      const run = await settleRun(s);
      assert.equal(run.settled, 1);
      assert.equal(run.refunds_created, 1);
      await idle(s);

      const seen = await get(s, `engagements/${e.id}`, payee.token);
      assert.equal(seen.status, 200);
      assert.deepEqual(
        [seen.body.engagement.status, seen.body.engagement.penalty_amount],
        ["settled", 1000],
      );
      assert.deepEqual(
        [seen.body.engagement.fee_amount, seen.body.engagement.payee_amount],
        [900, 8100],
      );
      assert.equal(await walletBalance(s.db, payee.accountId), 8100, "the payee's wallet credited");
      const [fee] = await s.db`select e.amount::int from public.ledger_entries e
      join public.ledger_transactions t on t.id = e.transaction_id
      where t.idempotency_key = ${"escrow_settlement:" + e.id}
        and e.system_account = 'revenue:escrow_fee'`;
      assert.equal(fee.amount, 900, "the platform fee credited to revenue:escrow_fee");
      assert.equal(await houseBalance(s, escrowAccount(e.id)), 0, "a settled escrow is empty");
      assert.deepEqual(await refundsOf(s, paid.orderId), [{ amount: 1000, status: "processed" }]);
      const types = await s.db`select type from public.outbox_events
      where subject_type = 'engagement' and subject_id = ${e.id} order by created_at`;
      assert.deepEqual(types.map((t) => t.type), [
        "engagement.funded",
        "engagement.completed",
        "engagement.settled",
      ]);
      const listed = await get(s, "engagements?role=payee", payee.token);
      assert.deepEqual(listed.body.engagements.map((x: Engagement) => x.id), [e.id]);
      assert.deepEqual(await audit(s), []);
    }),
);

Deno.test(
  "escrow: verify and 6x duplicated, reordered webhooks racing fund the engagement once",
  opts,
  () =>
    withStack(async (s) => {
      const payer = await createUser(s.db, "payer");
      const payee = await createUser(s.db, "payee");
      const c = client(s, payer.token);
      for (const gw of ["razorpay", "stripe"] as const) {
        const e = await createEngagement(s, payer, payee, {
          amount: gw === "stripe" ? 5000 : 20000,
          currency: gw === "stripe" ? "USD" : "INR",
        });
        const order = await createOrder(s, payer, {
          gateway: gw,
          purpose: "escrow",
          engagement_id: e.id,
        });
        const hooks = { duplicate: 5, reorder: true };
        let proof: Record<string, unknown>;
        if (gw === "razorpay") {
          proof = await payAtSimulator(s, order.gateway_order_id, { webhooks: hooks });
        } else {
          await confirmAtStripe(s, order.gateway_order_id, { webhooks: hooks });
          proof = { payment_intent_id: order.gateway_order_id };
        }
        // Six verifies racing the webhooks the simulator is delivering.
        const verifies = await Promise.all(
          Array.from({ length: 6 }, () => invoke(c, "verify", proof)),
        );
        assert.ok(verifies.every((v) => v.status === 200), JSON.stringify(verifies));
        await idle(s);
        const [tx] = await s.db`select count(*)::int as n from public.ledger_transactions
        where idempotency_key = ${"order_paid:" + order.id}`;
        assert.equal(tx.n, 1, `${gw}: one funding posting`);
        assert.equal(await houseBalance(s, escrowAccount(e.id)), e.amount);
        const row = await engagementRow(s, e.id);
        assert.deepEqual([row.status, row.funding_order_id], ["funded", order.id]);
        const [events] = await s.db`select count(*)::int as n from public.outbox_events
        where type = 'engagement.funded' and subject_id = ${e.id}`;
        assert.equal(events.n, 1, "one engagement.funded");
      }
      assert.deepEqual(await audit(s), []);
    }),
);

Deno.test(
  "escrow: 8 concurrent escrow-settle runs settle each engagement once",
  opts,
  () =>
    withStack(async (s) => {
      const payer = await createUser(s.db, "payer");
      const payee = await createUser(s.db, "payee");
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) {
        const e = await createEngagement(s, payer, payee, {
          amount: 10000 + i * 100,
          hold_hours: 0,
        });
        await fund(s, payer, e);
        await complete(s, payer, e.id, (i % 5) + 1);
        ids.push(e.id);
      }
      const runs = await Promise.all(Array.from({ length: 8 }, () => settleRun(s)));
      await idle(s);
      // (Other suites' engagements may be due too: each of ours is checked below.)
      assert.ok(runs.reduce((n, r) => n + r.settled, 0) >= ids.length, "all of them settled");
      const rows = await s.db`select e.id, e.status, e.penalty_amount::int as penalty,
        (select count(*)::int from public.ledger_transactions t
         where t.idempotency_key = 'escrow_settlement:' || e.id) as postings,
        (select count(*)::int from public.refunds r where r.order_id = e.funding_order_id) as refunds,
        (select coalesce(sum(r.amount), 0)::int from public.refunds r
         where r.order_id = e.funding_order_id and r.status = 'processed') as refunded
      from public.engagements e where e.id in ${s.db(ids)}`;
      for (const r of rows) {
        assert.equal(r.status, "settled");
        assert.equal(r.postings, 1, "one settlement posting");
        assert.equal(r.refunds, r.penalty > 0 ? 1 : 0, "one penalty refund, when there is one");
        assert.equal(r.refunded, r.penalty);
      }
      const [w] = await s.db`select coalesce(sum(payee_amount), 0)::int as total
      from public.engagements where id in ${s.db(ids)}`;
      assert.equal(await walletBalance(s.db, payee.accountId), w.total);
      assert.equal((await settleRun(s)).settled, 0, "nothing left to settle");
      assert.deepEqual(await audit(s), []);
    }),
);

Deno.test("escrow: the hold boundary with an injected clock", opts, () =>
  withStack(async (s) => {
    const payer = await createUser(s.db, "payer");
    const payee = await createUser(s.db, "payee");
    const e = await createEngagement(s, payer, payee, { hold_hours: 24 });
    await fund(s, payer, e);
    await complete(s, payer, e.id, 4);
    // The database's own release_at (microseconds), one second before and exactly.
    await s.db`select settle.escrow_settle(release_at - interval '1 second', 100)
      from public.engagements where id = ${e.id}`;
    assert.equal(
      (await engagementRow(s, e.id)).status,
      "completed",
      "one second before: not settled",
    );
    await settleRun(s);
    assert.equal((await engagementRow(s, e.id)).status, "completed", "escrow-settle now: neither");
    await s.db`select settle.escrow_settle(release_at, 100) from public.engagements
      where id = ${e.id}`;
    assert.equal((await engagementRow(s, e.id)).status, "settled", "at release_at: settled");
    assert.equal((await engagementRow(s, e.id)).payee_amount, "9000");
    assert.equal((await settleRun(s)).refunds_created, 0, "rating 4: no penalty to refund");
    assert.deepEqual(await audit(s), []);
  }));

Deno.test(
  "escrow: a dispute blocks settlement until an operator resolves it",
  opts,
  () =>
    withStack(async (s) => {
      const payer = await createUser(s.db, "payer");
      const payee = await createUser(s.db, "payee");
      const e = await createEngagement(s, payer, payee, { amount: 30000, hold_hours: 1 });
      const paid = await fund(s, payer, e);
      await complete(s, payer, e.id, 2);
      const byPayee = await post(s, `engagements/${e.id}/dispute`, payee.token, { reason: "no" });
      assert.equal(byPayee.status, 403, "the payee cannot dispute");
      const d = await post(s, `engagements/${e.id}/dispute`, payer.token, { reason: "not done" });
      assert.equal(d.status, 200, JSON.stringify(d.body));
      assert.equal(d.body.engagement.status, "disputed");
      const [late] = await s.db`select settle.escrow_settle(now() + interval '30 days', 100) as r`;
      assert.equal(late.r.settled, 0, "time does not settle a dispute");
      const asPayee = await post(s, `engagements/${e.id}/resolve`, payee.token, {
        payee_share_bps: 10000,
      });
      assert.equal(asPayee.status, 403, "the payee cannot resolve");
      const asPayer = await post(s, `engagements/${e.id}/resolve`, payer.token, {
        payee_share_bps: 0,
      });
      assert.equal(asPayer.status, 403, "nor the payer");
      const r = await post(s, `engagements/${e.id}/resolve`, s.serviceRoleKey, {
        payee_share_bps: 7000,
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(
        [
          r.body.engagement.status,
          r.body.engagement.penalty_amount,
          r.body.engagement.payee_amount,
        ],
        ["settled", 9000, 18900],
      );
      assert.equal(r.body.refund.amount, 9000);
      await idle(s);
      assert.deepEqual(await refundsOf(s, paid.orderId), [{ amount: 9000, status: "processed" }]);
      assert.equal(await walletBalance(s.db, payee.accountId), 18900);
      const again = await post(s, `engagements/${e.id}/resolve`, s.serviceRoleKey, {
        payee_share_bps: 7000,
      });
      assert.equal(again.status, 409, "resolved once");
      assert.deepEqual(await audit(s), []);
    }),
);

Deno.test(
  "escrow: cancel after funding refunds once, whatever runs concurrently",
  opts,
  () =>
    withStack(async (s) => {
      const payer = await createUser(s.db, "payer");
      const payee = await createUser(s.db, "payee");
      const e = await createEngagement(s, payer, payee, { amount: 40000 });
      const paid = await fund(s, payer, e, "stripe");
      const byPayer = await post(s, `engagements/${e.id}/cancel`, payer.token);
      assert.equal(byPayer.status, 409, "the payer cannot cancel once funded");
      const replies = await Promise.all([
        ...Array.from({ length: 4 }, () => post(s, `engagements/${e.id}/cancel`, payee.token)),
        ...Array.from({ length: 4 }, () => post(s, "escrow-settle", s.serviceRoleKey)),
      ]);
      const cancels = replies.slice(0, 4);
      assert.equal(cancels.filter((r) => r.status === 200).length, 1, JSON.stringify(cancels));
      assert.ok(cancels.every((r) => r.status === 200 || r.status === 409));
      await settleRun(s);
      await idle(s);
      assert.deepEqual(await refundsOf(s, paid.orderId), [{ amount: 40000, status: "processed" }]);
      assert.equal(await houseBalance(s, escrowAccount(e.id)), 0);
      const [o] = await s.db`select status from public.orders where id = ${paid.orderId}`;
      assert.equal(o.status, "refunded");
      assert.equal((await engagementRow(s, e.id)).status, "canceled");
      assert.deepEqual(await audit(s), []);
    }),
);

Deno.test(
  "escrow: a second paid funding order is refunded in full, once",
  opts,
  () =>
    withStack(async (s) => {
      const payer = await createUser(s.db, "payer");
      const payee = await createUser(s.db, "payee");
      const e = await createEngagement(s, payer, payee, { amount: 25000 });
      const first = await createOrder(s, payer, {
        gateway: "razorpay",
        purpose: "escrow",
        engagement_id: e.id,
      });
      const second = await createOrder(s, payer, {
        gateway: "razorpay",
        purpose: "escrow",
        engagement_id: e.id,
      });
      await pay(s, payer, "razorpay", first);
      await pay(s, payer, "razorpay", second);
      assert.equal(await houseBalance(s, escrowAccount(e.id)), 25000, "funded once");
      assert.deepEqual(await audit(s), [], "the second payment waits, accounted for");
      await Promise.all(Array.from({ length: 4 }, () => settleRun(s)));
      await idle(s);
      assert.deepEqual(await refundsOf(s, second.id), [{ amount: 25000, status: "processed" }]);
      assert.deepEqual(await refundsOf(s, first.id), []);
      assert.deepEqual(await audit(s), []);
    }),
);

Deno.test(
  "escrow: a gateway outage on the penalty refund never blocks the payee's credit",
  opts,
  () =>
    withStack(async (s) => {
      const payer = await createUser(s.db, "payer");
      const payee = await createUser(s.db, "payee");
      const e = await createEngagement(s, payer, payee, { hold_hours: 0 });
      const paid = await fund(s, payer, e);
      await complete(s, payer, e.id, 1);
      await fault(s, "razorpay", "error_503", 10);
      const run = await settleRun(s);
      assert.equal(run.settled, 1);
      assert.equal(await walletBalance(s.db, payee.accountId), 4500, "credited at once");
      assert.deepEqual(await refundsOf(s, paid.orderId), [{ amount: 5000, status: "pending" }]);
      await clearFaults(s);
      const rec = await post(s, "reconcile", s.serviceRoleKey, { older_than_seconds: 0 });
      assert.equal(rec.status, 200, JSON.stringify(rec.body));
      await idle(s);
      assert.deepEqual(await refundsOf(s, paid.orderId), [{ amount: 5000, status: "processed" }]);

      // A refusal fails the refund (money back in refund clearing); a later run refunds again.
      const e2 = await createEngagement(s, payer, payee, { hold_hours: 0 });
      const paid2 = await fund(s, payer, e2);
      await complete(s, payer, e2.id, 2);
      await s.db`select settle.escrow_settle(now(), 100)`;
      // Counted but not sent, as if the run died before the gateway call; then the gateway refuses.
      await s.db`select settle.escrow_return_owed(c.order_id, c.owed, c.owed)
      from settle.escrow_claim_refunds(now(), 100) c where c.order_id = ${paid2.orderId}`;
      const [refund] = await s.db`select id from public.refunds where order_id = ${paid2.orderId}`;
      await s.db`select settle.record_refund_result(${refund.id}, null, 'failed', 'refused', null)`;
      assert.deepEqual(await audit(s), [], "the refused penalty is back in refund clearing");
      await s
        .db`update settle.escrow_refund_queue set next_attempt_at = now() - interval '1 second'`;
      assert.equal((await settleRun(s)).refunds_created, 1, "retried after the pause");
      await idle(s);
      assert.deepEqual(await refundsOf(s, paid2.orderId), [
        { amount: 2500, status: "failed" },
        { amount: 2500, status: "processed" },
      ]);
      assert.deepEqual(await audit(s), []);
    }),
);

Deno.test(
  "escrow: a penalty below the gateway's refund minimum goes to the payer's wallet",
  opts,
  () =>
    withStack(async (s) => {
      const payer = await createUser(s.db, "payer");
      const payee = await createUser(s.db, "payee");
      // 150 paise at rating 3: penalty 15 paise, below Razorpay's 1-rupee minimum refund.
      const e = await createEngagement(s, payer, payee, { amount: 150, hold_hours: 0 });
      const paid = await fund(s, payer, e);
      await complete(s, payer, e.id, 3);
      const run = await settleRun(s);
      assert.equal(run.settled, 1);
      assert.deepEqual(await refundsOf(s, paid.orderId), []);
      assert.equal(await walletBalance(s.db, payer.accountId), 15);
      assert.equal(await walletBalance(s.db, payee.accountId), 150 - 15 - 13);
      assert.deepEqual(await audit(s), []);
    }),
);

Deno.test(
  "escrow: the payee cannot complete, dispute or resolve; anyone else gets 404",
  opts,
  () =>
    withStack(async (s) => {
      const payer = await createUser(s.db, "payer");
      const payee = await createUser(s.db, "payee");
      const other = await createUser(s.db, "other");
      const e = await createEngagement(s, payer, payee, { hold_hours: 2 });
      await fund(s, payer, e);
      const c = await post(s, `engagements/${e.id}/complete`, payee.token, { rating: 5 });
      assert.equal(c.status, 403);
      assert.equal(c.body.error.code, "forbidden");
      await complete(s, payer, e.id, 5);
      for (
        const [path, body] of [
          [`engagements/${e.id}/complete`, { rating: 5 }],
          [`engagements/${e.id}/dispute`, { reason: "x" }],
          [`engagements/${e.id}/cancel`, undefined],
        ] as const
      ) {
        const r = await post(s, path, other.token, body);
        assert.equal(r.status, 404, `${path}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, "not_found");
      }
      assert.equal((await get(s, `engagements/${e.id}`, other.token)).status, 404);
      assert.deepEqual((await get(s, "engagements", other.token)).body.engagements, []);
      const order = await post(s, "create-order", other.token, {
        gateway: "razorpay",
        purpose: "escrow",
        engagement_id: e.id,
      });
      assert.equal(order.status, 404);
      assert.equal(
        (await post(s, `engagements/${e.id}/dispute`, payee.token, { reason: "x" })).status,
        403,
      );
      assert.equal((await get(s, `engagements/${e.id}`, payee.token)).status, 200);
      assert.deepEqual(await audit(s), []);
    }),
);

Deno.test("escrow: bad input gets the contract's 4xx and writes nothing", opts, async (t) => {
  await withStack(async (s) => {
    const payer = await createUser(s.db, "payer");
    const payee = await createUser(s.db, "payee");
    const other = await createUser(s.db, "other");
    const funded = await createEngagement(s, payer, payee);
    const paid = await fund(s, payer, funded);
    const foreign = await createEngagement(s, other, payee);
    const unfunded = await createEngagement(s, payer, payee);
    const base = { payee_account_id: payee.accountId, amount: 10000, currency: "INR" };
    const create = (body: unknown): Case["send"] => () => post(s, "engagements", payer.token, body);
    const rate = (rating: unknown, id = funded.id): Case["send"] => () =>
      post(s, `engagements/${id}/complete`, payer.token, { rating });
    const bad = (
      name: string,
      send: Case["send"],
      status = 400,
      code = "invalid_request",
    ): Case => ({
      name,
      status,
      code,
      send,
    });
    await runCases(t, s, [
      ["create", [
        bad("amount as a string", create({ ...base, amount: "10000" })),
        bad("fractional amount", create({ ...base, amount: 100.5 })),
        bad("negative amount", create({ ...base, amount: -100 })),
        bad("below the currency's minimum", create({ ...base, amount: 99 })),
        bad("above the currency's maximum", create({ ...base, amount: 10000001 })),
        bad("unknown currency", create({ ...base, currency: "XXX" })),
        bad("hold_hours 721", create({ ...base, hold_hours: 721 })),
        bad("hold_hours 1.5", create({ ...base, hold_hours: 1.5 })),
        bad("payee = payer", create({ ...base, payee_account_id: payer.accountId })),
        bad("payee not a uuid", create({ ...base, payee_account_id: "acct" })),
        bad("unknown field", create({ ...base, price: 1 })),
        bad("title too long", create({ ...base, title: "x".repeat(201) })),
        bad(
          "unknown payee",
          create({ ...base, payee_account_id: crypto.randomUUID() }),
          404,
          "not_found",
        ),
        bad(
          "another user's paying account",
          create({ ...base, account_id: other.accountId }),
          404,
          "not_found",
        ),
        bad(
          "malformed JSON",
          () =>
            raw(s, "engagements", {
              method: "POST",
              token: payer.token,
              headers: { "content-type": "application/json" },
              body: "{",
            }),
          400,
          "invalid_json",
        ),
        bad(
          "no JWT",
          () => raw(s, "engagements", { method: "POST", body: "{}" }),
          401,
          "unauthorized",
        ),
      ]],
      ["complete", [
        bad("rating 0", rate(0)),
        bad("rating 6", rate(6)),
        bad("rating 3.5", rate(3.5)),
        bad("rating as a string", rate("5")),
        bad("no rating", () => post(s, `engagements/${funded.id}/complete`, payer.token, {})),
        bad("unknown engagement", rate(5, crypto.randomUUID()), 404, "not_found"),
        bad("foreign engagement", rate(5, foreign.id), 404, "not_found"),
        bad("malformed id", rate(5, "not-a-uuid")),
        bad("before funding", rate(5, unfunded.id), 409, "invalid_engagement_state"),
      ]],
      ["funding and refunds", [
        bad(
          "a funding order for an engagement already funded",
          () =>
            post(s, "create-order", payer.token, {
              gateway: "razorpay",
              purpose: "escrow",
              engagement_id: funded.id,
            }),
          409,
          "invalid_engagement_state",
        ),
        bad("escrow with an amount", () =>
          post(s, "create-order", payer.token, {
            gateway: "razorpay",
            purpose: "escrow",
            engagement_id: funded.id,
            amount: 1,
          })),
        bad(
          "escrow without engagement_id",
          () => post(s, "create-order", payer.token, { gateway: "razorpay", purpose: "escrow" }),
        ),
        bad("escrow from the wallet", () =>
          post(s, "create-order", payer.token, {
            gateway: "wallet",
            purpose: "escrow",
            engagement_id: funded.id,
          })),
        bad(
          "POST /refunds of an escrow order",
          () => post(s, "refunds", payer.token, { order_id: paid.orderId, amount: 100 }),
          409,
          "escrow_refund_not_allowed",
        ),
        bad(
          "POST /refunds of an escrow order as the service role",
          () => post(s, "refunds", s.serviceRoleKey, { order_id: paid.orderId }),
          409,
          "escrow_refund_not_allowed",
        ),
        bad(
          "resolve a funded engagement",
          () =>
            post(s, `engagements/${funded.id}/resolve`, s.serviceRoleKey, {
              payee_share_bps: 5000,
            }),
          409,
          "invalid_engagement_state",
        ),
        bad(
          "resolve with 10001 bps",
          () =>
            post(s, `engagements/${funded.id}/resolve`, s.serviceRoleKey, {
              payee_share_bps: 10001,
            }),
        ),
        bad(
          "escrow-settle as a user",
          () => post(s, "escrow-settle", payer.token),
          403,
          "forbidden",
        ),
      ]],
    ], { atLeast: 30 });
  });
});

Deno.test({
  name:
    "escrow: the part of a penalty refunded at the gateway follows the gateway's own rule; the rest goes to the wallet",
  ...opts,
  fn: async () => {
    await withStack((s) => {
      const razorpay = s.app.gateway("razorpay");
      const paypal = s.app.gateway("paypal");
      const stripe = s.app.gateway("stripe");
      // [gateway, owed, currency, refunded at the gateway]
      const cases: [PaymentGateway, number, string, number][] = [
        [razorpay, 1000, "INR", 1000],
        [razorpay, 1234, "KWD", 1230], // three decimals: a multiple of 10
        [razorpay, 99, "INR", 0], // below Razorpay's one-rupee minimum
        [paypal, 12345, "HUF", 12300], // PayPal takes HUF in whole forints
        [paypal, 99, "TWD", 0], // under one whole unit
        [paypal, 1001, "USD", 1001],
        [stripe, 1001, "USD", 1001],
        [paypal, 1000, "INR", 0], // PayPal does not take INR at all
      ];
      for (const [gw, owed, currency, want] of cases) {
        assert.equal(refundablePart(gw, owed, currency), want, `${gw.name} ${owed} ${currency}`);
      }
      return Promise.resolve();
    });
  },
});
