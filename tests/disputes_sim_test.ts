// Disputes driven by the gateway simulators: their /_sim controls open a dispute on a paid
// payment and move it through its states, sending the signed events (duplicated and reordered
// by the webhook options); reconcile reads the gateways' disputes (GET /v1/disputes) and
// converges the events it never received. The Stripe SDK and settle's Razorpay client read the
// simulators exactly as they read the gateways.
import assert from "node:assert/strict";
import Stripe from "stripe";
import { LOCAL_STRIPE } from "../dev/stack.ts";
import { reconcile } from "../shared/services/reconcile.ts";
import { createUser, type TestStack, walletBalance, withStack } from "./support/stack.ts";
import {
  audit,
  gatewayRefunds,
  idle,
  opts,
  type Paid,
  paidTopup,
  refund,
  simPost,
} from "./support/refunds.ts";
import { houseBalance } from "./support/disputes.ts";
import { assertContractError } from "./support/contract.ts";

async function dispute(s: TestStack, gatewayDisputeId: string) {
  const [row] = await s.db`select status, phase, amount_withdrawn, amount_reinstated, amount_lost,
      fee from public.disputes where gateway_dispute_id = ${gatewayDisputeId}`;
  return row
    ? {
      status: row.status as string,
      phase: row.phase as string,
      withdrawn: Number(row.amount_withdrawn),
      reinstated: Number(row.amount_reinstated),
      lost: Number(row.amount_lost),
      fee: Number(row.fee),
    }
    : null;
}

function open(s: TestStack, p: Paid, body: Record<string, unknown>) {
  return p.gw === "stripe"
    ? simPost(s, "stripe", `/charges/${p.paymentId}/dispute`, body)
    : simPost(s, "razorpay", `/payments/${p.paymentId}/dispute`, body);
}

function advance(s: TestStack, p: Paid, id: string, body: Record<string, unknown>) {
  return simPost(s, p.gw, `/disputes/${id}/advance`, body);
}

const messy = { duplicate: 3, reorder: true };

Deno.test({
  name:
    "disputes (simulators): a chargeback driven at each gateway, its webhooks duplicated and reordered",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "sim");
      // Stripe: a chargeback withdraws the amount and the fee at once; a win gives the amount back.
      const st = await paidTopup(s, u, "stripe", 2500, "USD");
      const fees0 = await houseBalance(s, "expense:dispute_fees", "USD");
      const dp = await open(s, st, { fee: 1900, webhooks: messy });
      await idle(s);
      assert.deepEqual(await dispute(s, dp.id), {
        status: "open",
        phase: "chargeback",
        withdrawn: 2500,
        reinstated: 0,
        lost: 0,
        fee: 1900,
      });
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
      assert.equal(await houseBalance(s, "expense:dispute_fees", "USD"), fees0 - 1900);
      // Stripe refuses to refund a charged-back payment, and settle never asks it.
      assertContractError(
        await refund(s, u.token, { order_id: st.orderId }),
        409,
        "order_disputed",
      );
      assert.deepEqual(await gatewayRefunds(s, st), []);
      await advance(s, st, dp.id, { status: "under_review", webhooks: messy });
      await advance(s, st, dp.id, { status: "won", webhooks: messy });
      await idle(s);
      assert.equal((await dispute(s, dp.id))?.status, "won");
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 2500);

      // Razorpay: nothing is deducted until the dispute is lost.
      const rp = await paidTopup(s, u, "razorpay", 50000, "INR");
      const before = await walletBalance(s.db, u.accountId, "INR");
      const disp = await open(s, rp, { webhooks: messy });
      await idle(s);
      assert.equal((await dispute(s, disp.id))?.withdrawn, 0);
      assert.equal(await walletBalance(s.db, u.accountId, "INR"), before);
      await advance(s, rp, disp.id, { status: "action_required", webhooks: messy });
      await advance(s, rp, disp.id, { status: "under_review", webhooks: messy });
      await advance(s, rp, disp.id, { status: "lost", webhooks: messy });
      await idle(s);
      assert.deepEqual(await dispute(s, disp.id), {
        status: "lost",
        phase: "chargeback",
        withdrawn: 50000,
        reinstated: 0,
        lost: 50000,
        fee: 0,
      });
      assert.equal(await walletBalance(s.db, u.accountId, "INR"), before - 50000);
      await audit(s);
    });
  },
});

Deno.test({
  name: "disputes (simulators): reconcile converges dispute events that were never delivered",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "missed");
      const st = await paidTopup(s, u, "stripe", 2500, "USD");
      const rp = await paidTopup(s, u, "razorpay", 50000, "INR");
      const quiet = { deliver: false };
      const dp = await open(s, st, { webhooks: quiet });
      const disp = await open(s, rp, { webhooks: quiet });
      await advance(s, rp, disp.id, { status: "lost", webhooks: quiet });
      await idle(s);
      assert.equal(await dispute(s, dp.id), null, "no webhook reached settle");

      const first = await reconcile(s.app);
      assert.deepEqual(first.disputes, {
        read: 2,
        applied: 2,
        unchanged: 0,
        ignored: 0,
        errors: 0,
      });
      assert.equal((await dispute(s, dp.id))?.withdrawn, 2500);
      assert.equal((await dispute(s, disp.id))?.status, "lost");
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
      assert.equal(await walletBalance(s.db, u.accountId, "INR"), 0);

      // The win is never delivered either; settle's open dispute is older than reconcile's
      // listing window, so it is read by id.
      await advance(s, st, dp.id, { status: "won", webhooks: quiet });
      await s.db`update public.disputes set gateway_created_at = now() - interval '30 days'
        where gateway_dispute_id = ${dp.id}`;
      const second = await reconcile(s.app);
      assert.equal((second.disputes as Record<string, number>).applied, 1);
      assert.equal((await dispute(s, dp.id))?.status, "won");
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 2500);
      // Reading everything again changes nothing.
      const third = await reconcile(s.app);
      assert.equal((third.disputes as Record<string, number>).applied, 0);
      await audit(s);
    });
  },
});

Deno.test({
  name: "disputes (simulators): the Stripe SDK lists and closes disputes at the simulator",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "sdk");
      const st = await paidTopup(s, u, "stripe", 2500, "USD");
      const dp = await open(s, st, {});
      const url = new URL(s.stripeUrl);
      const stripe = new Stripe(LOCAL_STRIPE.secretKey, {
        host: url.hostname,
        port: Number(url.port),
        protocol: "http",
        httpClient: Stripe.createFetchHttpClient(),
      });
      const listed = await stripe.disputes.list({ charge: st.paymentId });
      assert.deepEqual(listed.data.map((d) => [d.id, d.status]), [[dp.id, "needs_response"]]);
      assert.equal(listed.data[0].balance_transactions[0].reporting_category, "dispute");
      const closed = await stripe.disputes.close(dp.id);
      assert.equal(closed.status, "lost");
      await idle(s);
      assert.equal((await dispute(s, dp.id))?.status, "lost");
      await assert.rejects(stripe.disputes.close(dp.id), /already lost/);
      await audit(s);
    });
  },
});

Deno.test({
  name: "disputes (simulators): controls refuse what the gateways would not do",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "sim-bad");
      const st = await paidTopup(s, u, "stripe", 2500, "USD");
      const rp = await paidTopup(s, u, "razorpay", 50000, "INR");
      const post = (gw: "razorpay" | "stripe", path: string, body: unknown) =>
        fetch(
          gw === "stripe"
            ? `${s.stripeUrl}/_sim/stripe${path}`
            : `${s.simulatorUrl}/razorpay/_sim/razorpay${path}`,
          {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          },
        ).then(async (r) => ({ status: r.status, body: await r.json() }));
      assert.equal((await post("stripe", "/charges/ch_nope/dispute", {})).status, 404);
      assert.equal(
        (await post("stripe", `/charges/${st.paymentId}/dispute`, { amount: -1 })).status,
        400,
      );
      const dp = await open(s, st, {});
      assert.equal(
        (await post("stripe", `/disputes/${dp.id}/advance`, { status: "warning_closed" })).status,
        400,
      );
      assert.equal(
        (await post("razorpay", `/payments/${rp.paymentId}/dispute`, { phase: "x" })).status,
        400,
      );
      const disp = await open(s, rp, {});
      await advance(s, rp, disp.id, { status: "won" });
      const again = await post("razorpay", `/disputes/${disp.id}/advance`, { status: "lost" });
      assert.equal(again.status, 400);
      assert.match(again.body.error.description, /won status/);
      await idle(s);
      await audit(s);
    });
  },
});
