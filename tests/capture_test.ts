// Only captured money is counted: a Razorpay checkout signature proves an authorization, so
// verify and reconcile capture what is only authorized, and an authorization Razorpay refunds
// (never captured) is a failure. Stripe credits a PaymentIntent only once it succeeded in full.
import assert from "node:assert/strict";
import { reconcile, type ReconcileSummary } from "../shared/services/reconcile.ts";
import { hmacSha256Hex } from "../shared/crypto.ts";
import { LOCAL_RAZORPAY } from "../dev/stack.ts";
import {
  clearFaults,
  credits,
  orderState,
  parkOpenOrders,
  razorpaySim,
  stripeApi,
  withOwnStack,
} from "./support/isolated.ts";
import {
  client,
  confirmAtStripe,
  createUser,
  invoke,
  postWebhook,
  simEvents,
  snapshot,
  type TestStack,
  type TestUser,
  topupOrder,
  walletBalance,
} from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** The customer pays at the simulator's Checkout; `capture: false` leaves it authorized. */
async function pay(s: TestStack, gatewayOrderId: string, body: Json = {}) {
  const res = await fetch(`${s.simulatorUrl}/razorpay/_sim/razorpay/orders/${gatewayOrderId}/pay`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ outcome: "success", ...body }),
  });
  assert.equal(res.status, 200);
  return await res.json() as {
    razorpay_order_id: string;
    razorpay_payment_id: string;
    razorpay_signature: string;
  };
}

/** The payment as Razorpay's API shows it. */
async function gatewayPayment(s: TestStack, paymentId: string): Promise<Json> {
  const res = await fetch(`${s.simulatorUrl}/razorpay/v1/payments/${paymentId}`, {
    headers: {
      authorization: "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`),
    },
  });
  return await res.json();
}

function failCapture(s: TestStack, mode: string, count = 1) {
  return razorpaySim(s, "faults", {
    faults: [{ method: "POST", path: "/v1/payments/*/capture", mode, count }],
  });
}

async function autoRefund(s: TestStack, paymentId: string, webhooks: Json = {}) {
  const res = await fetch(
    `${s.simulatorUrl}/razorpay/_sim/razorpay/payments/${paymentId}/auto-refund`,
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ webhooks }),
    },
  );
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

const capturedEvents = async (s: TestStack, gatewayOrderId: string) =>
  (await simEvents(s, gatewayOrderId)).filter((e) => e.type === "payment.captured").length;

const orders = (r: ReconcileSummary) => r.orders as Record<string, number>;

async function verify(s: TestStack, u: TestUser, body: Json) {
  return await invoke(client(s, u.token), "verify", body);
}

Deno.test({
  name: "capture",
  ...opts,
  fn: async (t) => {
    await withOwnStack("capture", { RATE_LIMITS: "off" }, async (s) => {
      await t.step("an authorization is captured by verify: paid, one credit", async () => {
        const u = await createUser(s.db, "cap-verify");
        const { order, checkout } = await topupOrder(s, u, 31000);
        const proof = await pay(s, checkout.order_id, { capture: false });
        await s.razorpay.idle();
        // payment.authorized arrived: the order is authorized, nothing is credited yet.
        assert.equal((await orderState(s.db, order.id)).status, "authorized");
        assert.equal(await walletBalance(s.db, u.accountId), 0);

        const v = await verify(s, u, proof);
        assert.equal(v.status, 200, JSON.stringify(v.body));
        assert.equal(v.body.order.status, "paid");
        const p = await gatewayPayment(s, proof.razorpay_payment_id);
        assert.deepEqual([p.status, p.captured], ["captured", true], "settle captured it");
        await s.razorpay.idle();
        assert.equal(await credits(s.db, order.id), 1);
        assert.equal(await walletBalance(s.db, u.accountId), 31000);
        assert.equal(await capturedEvents(s, checkout.order_id), 1);
      });

      await t.step(
        "20 verifies of one authorization at once: one capture, one credit",
        async () => {
          const u = await createUser(s.db, "cap-race");
          const { order, checkout } = await topupOrder(s, u, 42000);
          const proof = await pay(s, checkout.order_id, {
            capture: false,
            webhooks: { drop: true },
          });
          const replies = await Promise.all(Array.from({ length: 20 }, () => verify(s, u, proof)));
          assert.deepEqual(
            [...new Set(replies.map((r) => `${r.status} ${r.body.order?.status}`))],
            ["200 paid"],
          );
          assert.equal(await capturedEvents(s, checkout.order_id), 1, "captured once at Razorpay");
          assert.equal(await credits(s.db, order.id), 1);
          assert.equal(await walletBalance(s.db, u.accountId), 42000);
        },
      );

      await t.step(
        "Razorpay refuses the capture: verify answers authorized and credits nothing; reconcile captures it once",
        async () => {
          await parkOpenOrders(s.db);
          const u = await createUser(s.db, "cap-down");
          const { order, checkout } = await topupOrder(s, u, 53000);
          // No webhook arrives (not even for settle's own capture): reconcile alone lands it.
          await razorpaySim(s, "config", { webhooks: { drop: true } });
          const proof = await pay(s, checkout.order_id, { capture: false });
          try {
            await failCapture(s, "error_503");
            const v = await verify(s, u, proof);
            assert.equal(v.status, 200, JSON.stringify(v.body));
            assert.equal(v.body.order.status, "authorized");
            assert.equal((await gatewayPayment(s, proof.razorpay_payment_id)).status, "authorized");
            assert.equal(await credits(s.db, order.id), 0);
            assert.equal(await walletBalance(s.db, u.accountId), 0);
          } finally {
            await clearFaults(s);
          }

          let r: ReconcileSummary;
          try {
            r = await reconcile(s.app, { olderThanSeconds: 0, retrySeconds: 0 });
          } finally {
            await razorpaySim(s, "config", { webhooks: {} });
          }
          assert.equal(orders(r).paid, 1, JSON.stringify(r));
          assert.equal((await gatewayPayment(s, proof.razorpay_payment_id)).status, "captured");
          assert.equal(await credits(s.db, order.id), 1);
          const again = await verify(s, u, proof);
          assert.equal(again.body.order.status, "paid");
          assert.equal(await credits(s.db, order.id), 1);
          assert.equal(await walletBalance(s.db, u.accountId), 53000);
        },
      );

      await t.step(
        "Razorpay unreachable after a valid signature: authorized, not paid",
        async () => {
          const u = await createUser(s.db, "cap-unreach");
          const { order, checkout } = await topupOrder(s, u, 12000);
          const proof = await pay(s, checkout.order_id, { webhooks: { drop: true } });
          try {
            await razorpaySim(s, "faults", {
              faults: [{ method: "GET", path: "/v1/payments/*", mode: "reset" }],
            });
            const v = await verify(s, u, proof);
            assert.equal(v.status, 200, JSON.stringify(v.body));
            assert.equal(v.body.order.status, "authorized");
            assert.equal(await credits(s.db, order.id), 0);
          } finally {
            await clearFaults(s);
          }
          // Razorpay captured it (automatic capture): the next verify reads that and credits.
          const v = await verify(s, u, proof);
          assert.equal(v.body.order.status, "paid");
          assert.equal(await credits(s.db, order.id), 1);
        },
      );

      await t.step("a capture whose answer is lost is read back: paid once", async () => {
        const u = await createUser(s.db, "cap-lost");
        const { order, checkout } = await topupOrder(s, u, 24000);
        const proof = await pay(s, checkout.order_id, { capture: false, webhooks: { drop: true } });
        try {
          await failCapture(s, "reset_after");
          const v = await verify(s, u, proof);
          assert.equal(v.status, 200, JSON.stringify(v.body));
          assert.equal(v.body.order.status, "paid");
        } finally {
          await clearFaults(s);
        }
        assert.equal((await gatewayPayment(s, proof.razorpay_payment_id)).captured, true);
        assert.equal(await capturedEvents(s, checkout.order_id), 1);
        assert.equal(await credits(s.db, order.id), 1);
      });

      await t.step(
        "a signature over another order's payment is refused: 409, nothing changes",
        async () => {
          const u = await createUser(s.db, "cap-other");
          const mine = await topupOrder(s, u, 19000);
          const other = await topupOrder(s, u, 19000);
          const paid = await pay(s, other.checkout.order_id, { webhooks: { drop: true } });
          // Only the key secret can make this signature: the gateway's record must still agree.
          const forged = {
            razorpay_order_id: mine.checkout.order_id,
            razorpay_payment_id: paid.razorpay_payment_id,
            razorpay_signature: await hmacSha256Hex(
              LOCAL_RAZORPAY.keySecret,
              `${mine.checkout.order_id}|${paid.razorpay_payment_id}`,
            ),
          };
          const before = await snapshot(s.db);
          const v = await verify(s, u, forged);
          assert.equal(v.status, 409, JSON.stringify(v.body));
          assert.equal(v.body.error.code, "payment_mismatch");
          assert.deepEqual(await snapshot(s.db), before);
        },
      );

      await t.step(
        "an authorization Razorpay auto-refunds fails the order by webhook, never credits",
        async () => {
          const u = await createUser(s.db, "cap-refund-hook");
          const { order, checkout } = await topupOrder(s, u, 15000);
          const proof = await pay(s, checkout.order_id, { capture: false });
          await s.razorpay.idle();
          assert.equal((await orderState(s.db, order.id)).status, "authorized");
          const p = await autoRefund(s, proof.razorpay_payment_id);
          assert.deepEqual([p.status, p.captured, p.amount_refunded], ["refunded", false, 15000]);
          await s.razorpay.idle();
          const [row] = await s.db`select status, failure_code from public.orders
            where id = ${order.id}`;
          assert.deepEqual([row.status, row.failure_code], ["failed", "authorization_refunded"]);
          const events = await s.db`select event_type, outcome from public.webhook_events
            where order_id = ${order.id} order by id`;
          assert.deepEqual(events.map((e) => [e.event_type, e.outcome]), [
            ["payment.authorized", "applied"],
            ["refund.created", "applied"],
            ["refund.processed", "no_effect"],
          ]);
          // Verifying the (valid) signature now reads the refunded authorization: still failed.
          const v = await verify(s, u, proof);
          assert.equal(v.status, 200, JSON.stringify(v.body));
          assert.equal(v.body.order.status, "failed");
          assert.equal(await credits(s.db, order.id), 0);
          assert.equal(await walletBalance(s.db, u.accountId), 0);
          const [{ n }] = await s.db`select count(*)::int as n from public.refunds
            where order_id = ${order.id}`;
          assert.equal(n, 0, "no settle refund is counted for money never received");
        },
      );

      await t.step(
        "an auto-refunded authorization whose webhooks are lost: reconcile fails it, no credit",
        async () => {
          await parkOpenOrders(s.db);
          const u = await createUser(s.db, "cap-refund-rec");
          const { order, checkout } = await topupOrder(s, u, 16000);
          const drop = { drop: true };
          const proof = await pay(s, checkout.order_id, { capture: false, webhooks: drop });
          await autoRefund(s, proof.razorpay_payment_id, drop);
          const r = await reconcile(s.app, { olderThanSeconds: 0, retrySeconds: 0 });
          assert.deepEqual([orders(r).claimed, orders(r).failed, orders(r).paid], [1, 1, 0]);
          assert.equal((await orderState(s.db, order.id)).status, "failed");
          assert.equal(await credits(s.db, order.id), 0);
          assert.equal(await walletBalance(s.db, u.accountId), 0);
        },
      );

      await t.step(
        "create-order asks for automatic capture: captured even where the account captures manually",
        async () => {
          const u = await createUser(s.db, "cap-auto");
          try {
            const cfg = await razorpaySim(s, "config", { account_capture: "manual" });
            assert.equal(cfg.account_capture, "manual");
            const { order, checkout } = await topupOrder(s, u, 27000);
            const proof = await pay(s, checkout.order_id, { webhooks: { drop: true } });
            const p = await gatewayPayment(s, proof.razorpay_payment_id);
            assert.deepEqual([p.status, p.captured], ["captured", true]);
            assert.equal(await capturedEvents(s, checkout.order_id), 1);
            const v = await verify(s, u, proof);
            assert.equal(v.body.order.status, "paid");
            assert.equal(await credits(s.db, order.id), 1);
          } finally {
            await razorpaySim(s, "config", { account_capture: "automatic" });
          }
        },
      );

      await t.step(
        "webhooks: payment.authorized and a payment.captured saying captured:false never credit",
        async () => {
          const u = await createUser(s.db, "cap-hooks");
          const { order, checkout } = await topupOrder(s, u, 18000);
          await pay(s, checkout.order_id, { capture: false, webhooks: { drop: true } });
          const [authorized] = await simEvents(s, checkout.order_id);
          assert.equal(authorized.type, "payment.authorized");
          assert.equal((await postWebhook(s, authorized)).status, 200);
          assert.equal((await orderState(s.db, order.id)).status, "authorized");

          // Signed with the real webhook secret: only the entity's own word counts.
          for (const event of ["payment.captured", "order.paid"]) {
            const parsed = JSON.parse(authorized.body);
            parsed.event = event;
            parsed.payload.payment.entity.status = "captured";
            const body = JSON.stringify(parsed);
            const forged = {
              event_id: `evt_${crypto.randomUUID().replaceAll("-", "").slice(0, 14)}`,
              body,
              signature: await hmacSha256Hex(LOCAL_RAZORPAY.webhookSecret, body),
            };
            assert.equal((await postWebhook(s, forged)).status, 200);
            const [row] = await s.db`select outcome from public.webhook_events
              where event_id = ${forged.event_id}`;
            assert.equal(row.outcome, "ignored", event);
          }
          assert.equal((await orderState(s.db, order.id)).status, "authorized");
          assert.equal(await credits(s.db, order.id), 0);
        },
      );

      await t.step(
        "Stripe: requires_capture is authorized, a partial capture is a mismatch, a full one pays once",
        async () => {
          const u = await createUser(s.db, "cap-stripe");
          const manualOrder = async (amount: number) => {
            const pi = await stripeApi(s, "POST", "/v1/payment_intents", {
              amount: String(amount),
              currency: "usd",
              capture_method: "manual",
            });
            assert.equal(pi.status, 200, JSON.stringify(pi.body));
            const [o] = await s.db`insert into public.orders
              (account_id, created_by, gateway, purpose, amount, currency, gateway_order_id)
              values (${u.accountId}, ${u.id}, 'stripe', 'wallet_topup', ${amount}, 'USD',
                ${pi.body.id}) returning id`;
            const confirmed = await confirmAtStripe(s, pi.body.id, { webhooks: { drop: true } });
            assert.equal(confirmed.status, "requires_capture");
            return { id: o.id as string, pi: pi.body.id as string };
          };
          const partial = await manualOrder(4000);
          const v1 = await verify(s, u, { payment_intent_id: partial.pi });
          assert.equal(v1.status, 200, JSON.stringify(v1.body));
          assert.equal(v1.body.order.status, "authorized");
          const cap = await stripeApi(s, "POST", `/v1/payment_intents/${partial.pi}/capture`, {
            amount_to_capture: "1000",
          });
          assert.deepEqual([cap.body.status, cap.body.amount_received], ["succeeded", 1000]);
          const v2 = await verify(s, u, { payment_intent_id: partial.pi });
          assert.equal(v2.status, 409, JSON.stringify(v2.body));
          assert.equal(v2.body.error.code, "payment_mismatch");
          assert.equal((await orderState(s.db, partial.id)).status, "authorized");
          assert.equal(await credits(s.db, partial.id), 0);

          const full = await manualOrder(5000);
          await stripeApi(s, "POST", `/v1/payment_intents/${full.pi}/capture`, {});
          const v3 = await verify(s, u, { payment_intent_id: full.pi });
          assert.equal(v3.body.order.status, "paid");
          assert.equal(await credits(s.db, full.id), 1);
          assert.equal(await walletBalance(s.db, u.accountId, "USD"), 5000);
        },
      );
    });
  },
});
