// Faults on real Postgres with the simulators: the gateway failing during create-order and
// verify, and the database connection cut in the middle of a webhook.
//
// Razorpay create-order faults (500, 503, reset, reset after creating, timeout after creating;
// a retry never makes a second gateway order) are covered in razorpay_flow_test.ts, and
// duplicated/racing webhooks in exactly_once_test.ts; here are their Stripe counterparts and
// the faults those suites do not reach.
import assert from "node:assert/strict";
import { CuttingProxy } from "./support/pgcut.ts";
import {
  clearFaults,
  credits,
  orderState,
  ownDatabase,
  razorpaySim,
  reconcileHttp,
  stackOn,
  stripeApi,
  stripeSim,
  stripeTopup,
} from "./support/isolated.ts";
import {
  client,
  confirmAtStripe,
  createUser,
  invoke,
  payAtSimulator,
  postWebhook,
  simEvents,
  snapshot,
  topupOrder,
  walletBalance,
} from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

// Each mode is armed for two requests: the Stripe SDK retries a failed request once, with the
// same idempotency key, so both the attempt and its retry fail.
const MODES = [
  ["error_500", {}],
  ["error_503", {}],
  ["reset", {}],
  // Stripe creates the intent, then the answer is lost: the retry must get the same one back.
  ["reset_after", {}],
  ["timeout_after", { hold_ms: 2000 }],
] as const;

Deno.test({
  name: "faults",
  ...opts,
  fn: async (t) => {
    const own = await ownDatabase("faults");
    try {
      const s = await stackOn(own.url, { RATE_LIMITS: "off", STRIPE_TIMEOUT_MS: "400" });
      try {
        await t.step(
          "stripe create-order: a gateway failure leaves the order retryable; the retry makes no second intent",
          async () => {
            const u = await createUser(s.db, "fault-create");
            const c = client(s, u.token);
            const body = {
              gateway: "stripe",
              purpose: "wallet_topup",
              amount: 3000,
              currency: "USD",
            };
            for (const [mode, extra] of MODES) {
              const headers = { "Idempotency-Key": `${mode}-${crypto.randomUUID()}` };
              await stripeSim(s, "faults", {
                faults: [{ method: "POST", path: "/v1/payment_intents", mode, count: 2, ...extra }],
              });
              const failed = await invoke(c, "create-order", body, { headers });
              assert.equal(failed.status, 503, `${mode}: ${JSON.stringify(failed.body)}`);
              assert.equal(failed.body.error.code, "gateway_unavailable");
              const [row] = await s.db`select id, status, gateway_order_id, gateway_attempts
              from public.orders where created_by = ${u.id}
                and idempotency_key = ${headers["Idempotency-Key"]}`;
              assert.deepEqual(
                [row.status, row.gateway_order_id, row.gateway_attempts],
                ["created", null, 1],
                mode,
              );

              await clearFaults(s);
              const retried = await invoke(c, "create-order", body, { headers });
              assert.equal(retried.status, 200, `${mode}: ${JSON.stringify(retried.body)}`);
              assert.equal(retried.body.order.id, row.id);
              const [{ customer_id }] = await s.db`select customer_id from public.gateway_customers
              where account_id = ${u.accountId}`;
              const list = await stripeApi(
                s,
                "GET",
                `/v1/payment_intents?customer=${customer_id}&limit=100`,
              );
              const intents = (list.body.data as { id: string; metadata: Record<string, string> }[])
                .filter((pi) => pi.metadata.settle_order_id === row.id);
              assert.equal(intents.length, 1, `${mode}: one intent for the order`);
              assert.equal(retried.body.order.gateway_order_id, intents[0].id);
            }
          },
        );

        await t.step(
          "stripe verify with the gateway down: 503, nothing changes; a later reconcile pays it once",
          async () => {
            const u = await createUser(s.db, "fault-verify");
            const c = client(s, u.token);
            const { order, checkout } = await stripeTopup(s, u, 4500, "EUR");
            const pi = checkout.payment_intent_id;
            // Paid at Stripe; its webhooks never arrive.
            await confirmAtStripe(s, pi, { webhooks: { drop: true } });
            // Deliveries still in flight from earlier steps (the simulators send asynchronously)
            // would land between the snapshots under load.
            await s.stripe.idle();
            await s.razorpay.idle();
            const before = await snapshot(s.db);
            for (
              const [mode, extra] of [
                ["error_503", {}],
                ["error_500", {}],
                ["reset", {}],
                ["timeout", { hold_ms: 2000 }],
              ] as const
            ) {
              await stripeSim(s, "faults", {
                faults: [{
                  method: "GET",
                  path: `/v1/payment_intents/${pi}`,
                  mode,
                  count: 2,
                  ...extra,
                }],
              });
              const r = await invoke(c, "verify", { payment_intent_id: pi });
              assert.equal(r.status, 503, `${mode}: ${JSON.stringify(r.body)}`);
              assert.equal(r.body.error.code, "gateway_unavailable");
              assert.deepEqual(await snapshot(s.db), before, `${mode} changed something`);
              await clearFaults(s);
            }
            assert.equal((await orderState(s.db, order.id)).status, "created");

            const rec = await reconcileHttp(s, { older_than_seconds: 0 });
            assert.equal(rec.status, 200, JSON.stringify(rec.body));
            assert.equal(rec.body.orders.paid, 1);
            assert.equal((await orderState(s.db, order.id)).status, "paid");
            const v = await invoke(c, "verify", { payment_intent_id: pi });
            assert.equal(v.status, 200);
            assert.equal(v.body.order.status, "paid");
            assert.equal(await credits(s.db, order.id), 1);
            assert.equal(await walletBalance(s.db, u.accountId, "EUR"), 4500);
          },
        );

        await t.step(
          "razorpay verify with the gateway down: authorized, never paid on the signature alone",
          async () => {
            const u = await createUser(s.db, "fault-rzp-verify");
            const { order, checkout } = await topupOrder(s, u, 8800);
            const proof = await payAtSimulator(s, checkout.order_id, { webhooks: { drop: true } });
            await razorpaySim(s, "faults", { faults: [{ mode: "error_503", count: 100 }] });
            try {
              // The signature proves an authorization; only Razorpay can say it was captured.
              const v = await invoke(client(s, u.token), "verify", proof);
              assert.equal(v.status, 200, JSON.stringify(v.body));
              assert.equal(v.body.order.status, "authorized");
              assert.equal(await credits(s.db, order.id), 0);
            } finally {
              await clearFaults(s);
            }
            const v = await invoke(client(s, u.token), "verify", proof);
            assert.equal(v.body.order.status, "paid");
            assert.equal(await credits(s.db, order.id), 1);
          },
        );
      } finally {
        await s.close();
      }

      await t.step(
        "the database connection cut mid-webhook: the gateway's retry applies it exactly once",
        async () => {
          const proxy = CuttingProxy.start(own.url);
          const s = await stackOn(proxy.url(own.url), { RATE_LIMITS: "off" }, own.url);
          try {
            for (const mode of ["before_send", "after_commit"] as const) {
              const u = await createUser(s.db, `cut-${mode}`);
              const { order, checkout } = await topupOrder(s, u, 9100);
              await payAtSimulator(s, checkout.order_id, { webhooks: { deliver: false } });
              const captured = (await simEvents(s, checkout.order_id))
                .find((e) => e.type === "payment.captured")!;
              const events = async () =>
                (await s.db`select count(*)::int as n from public.webhook_events
                          where gateway = 'razorpay' and event_id = ${captured.event_id}`)[0].n;

              const cut = proxy.arm("ingest_webhook", mode);
              const first = await postWebhook(s, captured);
              await cut;
              assert.equal(first.status, 500, `${mode}: ${JSON.stringify(first.body)}`);
              assert.equal(first.body.error.code, "internal_error");
              if (mode === "before_send") {
                // Never reached the database: nothing stored, nothing paid.
                assert.equal(await events(), 0);
                assert.equal((await orderState(s.db, order.id)).status, "created");
                assert.equal(await credits(s.db, order.id), 0);
              } else {
                // Committed, but the answer was lost: the gateway saw a 500 for work that is done.
                assert.equal(await events(), 1);
                assert.equal((await orderState(s.db, order.id)).status, "paid");
                assert.equal(await credits(s.db, order.id), 1);
              }

              const retry = await postWebhook(s, captured);
              assert.equal(retry.status, 200, `${mode}: ${JSON.stringify(retry.body)}`);
              assert.equal(await events(), 1);
              assert.equal((await orderState(s.db, order.id)).status, "paid");
              assert.equal(await credits(s.db, order.id), 1);
              assert.equal(await walletBalance(s.db, u.accountId), 9100);
            }

            // The simulator's own retry policy, end to end: its first delivery is cut after the
            // commit, it retries the same event, and the retry is a duplicate.
            const u = await createUser(s.db, "cut-sim");
            const { order, checkout } = await topupOrder(s, u, 9200);
            const cut = proxy.arm("ingest_webhook", "after_commit");
            await payAtSimulator(s, checkout.order_id, {
              webhooks: { retry: 3, retry_delay_ms: 20 },
            });
            await cut;
            await s.razorpay.idle();
            const res = await fetch(`${s.simulatorUrl}/razorpay/_sim/razorpay/deliveries`);
            const ours = new Set((await simEvents(s, checkout.order_id)).map((e) => e.event_id));
            const deliveries = ((await res.json()).deliveries as {
              event_id: string;
              status: number | null;
              attempt: number;
            }[]).filter((d) => ours.has(d.event_id));
            const retried = deliveries.filter((d) => d.attempt > 0);
            assert.equal(retried.length, 1, JSON.stringify(deliveries));
            const firstTry = deliveries.find((d) =>
              d.event_id === retried[0].event_id && d.attempt === 0
            )!;
            assert.equal(firstTry.status, 500);
            assert.equal(retried[0].status, 200);
            assert.equal(deliveries.filter((d) => d.status === 200).length, 3);
            assert.equal((await orderState(s.db, order.id)).status, "paid");
            assert.equal(await credits(s.db, order.id), 1);
            const [{ n }] = await s.db`select count(*)::int as n from public.webhook_events
            where gateway_order_id = ${checkout.order_id}`;
            assert.equal(n, 3);
            assert.equal(proxy.cuts, 3);
          } finally {
            // postgres.js keeps waiting for a connection cut under a query until end()'s
            // timeout: end the pool without one.
            await s.app.sql.end({ timeout: 0 });
            await s.close();
            proxy.close();
          }
        },
      );
    } finally {
      await own.drop();
    }
  },
});
