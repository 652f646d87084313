// Reconciliation on real Postgres: stuck orders converge with the gateway, unpaid ones expire,
// failed webhook events are retried; claims are bounded, leased and never shared.
import assert from "node:assert/strict";
import { createApp } from "../shared/app.ts";
import { failedWebhooks, reconcile, type ReconcileSummary } from "../shared/services/reconcile.ts";
import { signJwt } from "../dev/keys.ts";
import { assertContractError } from "./support/contract.ts";
import {
  clearFaults,
  credits,
  orderState,
  parkOpenOrders,
  razorpaySim,
  reconcileHttp,
  stripeApi,
  stripeSim,
  stripeTopup,
  untilClaimable,
  withOwnStack,
} from "./support/isolated.ts";
import {
  client,
  confirmAtStripe,
  createUser,
  invoke,
  payAtSimulator,
  raw,
  snapshot,
  type TestStack,
  type TestUser,
  topupOrder,
  walletBalance,
} from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

const orders = (r: ReconcileSummary) => r.orders as Record<string, number>;

/** A Razorpay top-up paid at the gateway whose webhooks never arrive. */
async function paidSilently(s: TestStack, u: TestUser, amount: number) {
  const { order, checkout } = await topupOrder(s, u, amount);
  await payAtSimulator(s, checkout.order_id, { webhooks: { drop: true } });
  return order;
}

/** A Stripe top-up confirmed at the gateway whose webhooks never arrive. */
async function stripePaidSilently(s: TestStack, u: TestUser, amount: number, currency = "USD") {
  const { order, checkout } = await stripeTopup(s, u, amount, currency);
  await confirmAtStripe(s, checkout.payment_intent_id, { webhooks: { drop: true } });
  return order;
}

Deno.test({
  name: "reconcile",
  ...opts,
  fn: async (t) => {
    await withOwnStack("reconcile", { RATE_LIMITS: "off" }, async (s) => {
      await t.step(
        "only the service role may run it; bad input is refused and changes nothing",
        async () => {
          await parkOpenOrders(s.db);
          const u = await createUser(s.db, "rec-auth");
          const order = await paidSilently(s, u, 7700);
          // Reachable by a run with older_than_seconds 0, so any accepted request would pay it.
          const before = await snapshot(s.db);
          const post = (body: string, headers: Record<string, string>, token?: string) =>
            raw(s, "reconcile", { method: "POST", headers, body, token });
          const json = { "content-type": "application/json" };
          const valid = JSON.stringify({ older_than_seconds: 0 });
          const cases: [string, Promise<Awaited<ReturnType<typeof raw>>>, number, string][] = [
            ["no token", post(valid, json), 401, "unauthorized"],
            ["a user's token", post(valid, json, u.token), 403, "forbidden"],
            ["the anon key", post(valid, json, s.anonKey), 401, "unauthorized"],
            [
              "a service token signed with another secret",
              post(
                valid,
                json,
                await signJwt({ role: "service_role" }, {
                  secret: "another-secret-another-secret-another-secret",
                }),
              ),
              401,
              "unauthorized",
            ],
            [
              "an expired service token",
              post(
                valid,
                json,
                await signJwt({ role: "service_role" }, {
                  nowSeconds: Math.floor(Date.now() / 1000) - 7200,
                }),
              ),
              401,
              "unauthorized",
            ],
            [
              "GET",
              raw(s, "reconcile", { method: "GET", token: s.serviceRoleKey }),
              405,
              "method_not_allowed",
            ],
            ["limit 0", reconcileHttp(s, { limit: 0 }), 400, "invalid_request"],
            ["limit 1001", reconcileHttp(s, { limit: 1001 }), 400, "invalid_request"],
            ["limit as a string", reconcileHttp(s, { limit: "5" }), 400, "invalid_request"],
            ["fractional limit", reconcileHttp(s, { limit: 2.5 }), 400, "invalid_request"],
            [
              "negative age",
              reconcileHttp(s, { older_than_seconds: -1 }),
              400,
              "invalid_request",
            ],
            [
              "an unknown field",
              reconcileHttp(s, { older_than_seconds: 0, expire_everything: true }),
              400,
              "invalid_request",
            ],
            ["an array body", reconcileHttp(s, [1]), 400, "invalid_request"],
            ["broken JSON", post("{", json, s.serviceRoleKey), 400, "invalid_json"],
            [
              "a text body",
              post(valid, { "content-type": "text/plain" }, s.serviceRoleKey),
              415,
              "unsupported_media_type",
            ],
          ];
          for (const [name, reply, status, code] of cases) {
            const r = await reply;
            try {
              assertContractError(r, status, code);
            } catch (err) {
              throw new Error(`${name}: ${(err as Error).message}`);
            }
          }
          assert.deepEqual(await snapshot(s.db), before);
          assert.equal((await orderState(s.db, order.id)).status, "created");

          // A bare POST (no body) is a run with the configured settings: not stuck for 600 s yet.
          const bare = await raw(s, "reconcile", { method: "POST", token: s.serviceRoleKey });
          assert.equal(bare.status, 200, JSON.stringify(bare.body));
          assert.equal(bare.body.orders.claimed, 0);
          assert.deepEqual(await snapshot(s.db), before);
        },
      );

      await t.step(
        "a Razorpay payment whose webhooks were lost is found and credited once",
        async () => {
          await parkOpenOrders(s.db);
          const u = await createUser(s.db, "rec-lost");
          const order = await paidSilently(s, u, 12300);
          assert.equal((await orderState(s.db, order.id)).status, "created");

          const r = await reconcileHttp(s, { older_than_seconds: 0 });
          assert.equal(r.status, 200, JSON.stringify(r.body));
          assert.deepEqual(r.body.orders, {
            claimed: 1,
            paid: 1,
            authorized: 0,
            failed: 0,
            expired: 0,
            unchanged: 0,
            mismatched: 0,
            errors: 0,
          });
          assert.deepEqual(Object.keys(r.body.webhooks).sort(), ["failed", "resolved", "retried"]);
          assert.equal(typeof r.body.duration_ms, "number");
          const state = await orderState(s.db, order.id);
          assert.equal(state.status, "paid");
          assert.equal(state.reconcile_attempts, 1);
          assert.equal(state.reconcile_claim, null, "the batch released its lease");
          assert.equal(await credits(s.db, order.id), 1);
          assert.equal(await walletBalance(s.db, u.accountId), 12300);

          // Once paid, nothing claims it again, and verify agrees without a second credit.
          const again = await reconcileHttp(s, { older_than_seconds: 0 });
          assert.equal(again.body.orders.claimed, 0);
          assert.equal(await credits(s.db, order.id), 1);
          const [{ n }] = await s.db`select count(*)::int as n from public.webhook_events
          where order_id = ${order.id}`;
          assert.equal(n, 0, "no webhook ever arrived: reconciliation alone paid it");
        },
      );

      await t.step(
        "each gateway answer converges: failed, authorized, paid, pending; unpaid orders expire only after the expiry age",
        async () => {
          await parkOpenOrders(s.db);
          const u = await createUser(s.db, "rec-matrix");
          await razorpaySim(s, "config", { webhooks: { drop: true } });
          await stripeSim(s, "config", { webhooks: { drop: true } });
          try {
            const rFail = await topupOrder(s, u, 1100);
            await payAtSimulator(s, rFail.checkout.order_id, { outcome: "failure" });
            const rAuth = await topupOrder(s, u, 1200);
            await fetch(
              `${s.simulatorUrl}/razorpay/_sim/razorpay/orders/${rAuth.checkout.order_id}/pay`,
              {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ outcome: "success", capture: false }),
              },
            ).then((r) => r.body?.cancel());
            // Razorpay refuses every capture in this step, so the authorization stays one
            // (reconcile captures an authorized payment otherwise: tests/capture_test.ts).
            await razorpaySim(s, "faults", {
              faults: [{
                method: "POST",
                path: "/v1/payments/*/capture",
                mode: "error_503",
                count: 1000,
              }],
            });
            const rAbandoned = await topupOrder(s, u, 1300);
            // The gateway is down when the order is created and the customer never retries.
            await razorpaySim(s, "faults", {
              faults: [{ method: "POST", path: "/v1/orders", mode: "error_503" }],
            });
            const noGateway = await invoke(client(s, u.token), "create-order", {
              gateway: "razorpay",
              purpose: "wallet_topup",
              amount: 1400,
              currency: "INR",
            });
            assert.equal(noGateway.status, 503);
            const [rNoGateway] = await s.db`select id from public.orders
            where created_by = ${u.id} and gateway_order_id is null`;
            const sPaid = await stripePaidSilently(s, u, 2000);
            const sCanceled = await stripeTopup(s, u, 2100);
            const cancel = await stripeApi(
              s,
              "POST",
              `/v1/payment_intents/${sCanceled.checkout.payment_intent_id}/cancel`,
            );
            assert.equal(cancel.status, 200);
            const sDeclined = await stripeTopup(s, u, 2200);
            await confirmAtStripe(s, sDeclined.checkout.payment_intent_id, {
              outcome: "failure",
              card: "4000000000000002",
            });

            const first = await reconcile(s.app, {
              olderThanSeconds: 0,
              expirySeconds: 3600,
              retrySeconds: 0,
            });
            assert.deepEqual(orders(first), {
              claimed: 6, // not the order without a gateway order: it is not due to expire
              paid: 1,
              authorized: 1,
              failed: 2,
              expired: 0,
              unchanged: 2,
              mismatched: 0,
              errors: 0,
            });
            const status = async (id: string) => (await orderState(s.db, id)).status;
            assert.equal(await status(rFail.order.id), "failed");
            assert.equal(
              (await orderState(s.db, rFail.order.id)).failure_code,
              "BAD_REQUEST_ERROR",
            );
            assert.equal(await status(rAuth.order.id), "authorized");
            assert.equal(await status(rAbandoned.order.id), "created");
            assert.equal(await status(rNoGateway.id), "created");
            assert.equal(await status(sPaid.id), "paid");
            assert.equal(await status(sCanceled.order.id), "failed");
            assert.equal(await status(sDeclined.order.id), "created");
            assert.equal(await walletBalance(s.db, u.accountId, "USD"), 2000);

            // Past the expiry age: unpaid and gateway-less orders expire; authorized money does not.
            const second = await reconcile(s.app, {
              olderThanSeconds: 0,
              expirySeconds: 0,
              retrySeconds: 0,
            });
            assert.deepEqual(orders(second), {
              claimed: 6, // the two failed ones are re-checked too
              paid: 0,
              authorized: 0,
              failed: 0,
              expired: 3,
              unchanged: 3,
              mismatched: 0,
              errors: 0,
            });
            assert.equal(await status(rAbandoned.order.id), "expired");
            assert.equal(await status(rNoGateway.id), "expired");
            assert.equal(await status(sDeclined.order.id), "expired");
            assert.equal(await status(rAuth.order.id), "authorized");

            // A customer who pays an expired order after all is still credited, once.
            await payAtSimulator(s, rAbandoned.checkout.order_id, { webhooks: { drop: false } });
            await s.razorpay.idle();
            assert.equal(await status(rAbandoned.order.id), "paid");
            assert.equal(await credits(s.db, rAbandoned.order.id), 1);
            assert.equal(await walletBalance(s.db, u.accountId, "INR"), 1300);
            for (const id of [rFail.order.id, rAuth.order.id, rNoGateway.id, sDeclined.order.id]) {
              assert.equal(await credits(s.db, id), 0);
            }

            // A failed order paid by a later attempt whose webhooks are lost: only asking the
            // gateway lands that money, so failed (and expired) orders are re-checked for a while.
            await payAtSimulator(s, rFail.checkout.order_id);
            const outsideWindow = await reconcile(s.app, {
              olderThanSeconds: 0,
              expirySeconds: 0,
              retrySeconds: 0,
              recheckSeconds: 0,
            });
            assert.equal(orders(outsideWindow).claimed, 1, "only the authorized order");
            assert.equal(await status(rFail.order.id), "failed");
            const third = await reconcile(s.app, {
              olderThanSeconds: 0,
              expirySeconds: 0,
              retrySeconds: 0,
            });
            assert.deepEqual([orders(third).claimed, orders(third).paid], [4, 1]);
            assert.equal(await status(rFail.order.id), "paid");
            assert.equal(await credits(s.db, rFail.order.id), 1);
            assert.equal(await walletBalance(s.db, u.accountId, "INR"), 1300 + 1100);
          } finally {
            await razorpaySim(s, "config", { webhooks: {} });
            await stripeSim(s, "config", { webhooks: {} });
            await clearFaults(s);
          }
        },
      );

      await t.step(
        "four reconcilers at once: every order claimed once, asked once, paid once",
        async () => {
          await parkOpenOrders(s.db);
          const users = await Promise.all([1, 2, 3, 4].map((i) => createUser(s.db, `rec-con${i}`)));
          const made = await Promise.all(Array.from({ length: 40 }, (_, i) => {
            const u = users[i % 4];
            return i % 4 === 3
              ? stripePaidSilently(s, u, 1000 + i, "USD")
              : paidSilently(s, u, 1000 + i);
          }));
          const asked = new Map<string, number>();
          const counting: typeof fetch = (input, init) => {
            const req = new Request(input, init);
            const m = new URL(req.url).pathname.match(
              /^\/(?:razorpay\/)?v1\/(?:orders\/([^/]+)\/payments|payment_intents\/([^/]+))$/,
            );
            if (m && req.method === "GET") {
              const id = m[1] ?? m[2];
              asked.set(id, (asked.get(id) ?? 0) + 1);
            }
            return fetch(input, init);
          };
          const apps = Array.from(
            { length: 4 },
            () => createApp({ ...s.config, supabaseUrl: undefined }, { fetch: counting }),
          );
          try {
            const runs = await Promise.all(
              apps.map((app) => reconcile(app, { olderThanSeconds: 0, limit: 15 })),
            );
            const claimed = runs.map((r) => orders(r).claimed);
            assert.equal(claimed.reduce((a, b) => a + b, 0), 40, `claims ${claimed}`);
            assert.equal(runs.reduce((a, r) => a + orders(r).paid, 0), 40);
            assert.equal(asked.size, 40);
            assert.deepEqual([...new Set(asked.values())], [1], "no order asked twice");
            for (const o of made) {
              assert.ok(asked.has(o.gateway_order_id));
              assert.equal((await orderState(s.db, o.id)).status, "paid");
              assert.equal(await credits(s.db, o.id), 1);
            }
          } finally {
            await Promise.all(apps.map((a) => a.sql.end({ timeout: 5 })));
          }
        },
      );

      await t.step(
        "a reconciler that dies mid-batch leaves its orders claimable after the lease",
        async () => {
          await parkOpenOrders(s.db);
          const u = await createUser(s.db, "rec-crash");
          const made = await Promise.all([3100, 3200, 3300].map((a) => paidSilently(s, u, a)));
          const ids = made.map((o) => o.id);
          // The crashed run: claimed with a 2 s lease, then never heard of again.
          const crashed = crypto.randomUUID();
          const claimed = await s.db`select order_id from settle.claim_stuck_orders(
          ${crashed}, array['razorpay', 'stripe'], 10, 0, 86400, 2, 86400)`;
          assert.deepEqual(claimed.map((r) => r.order_id).sort(), [...ids].sort());

          const during = await reconcile(s.app, { olderThanSeconds: 0 });
          assert.equal(orders(during).claimed, 0, "leased orders are not claimed again");
          for (const id of ids) assert.equal((await orderState(s.db, id)).status, "created");

          await untilClaimable(s.db, ids);
          const after = await reconcile(s.app, { olderThanSeconds: 0 });
          assert.equal(orders(after).claimed, 3);
          assert.equal(orders(after).paid, 3);
          // The dead run's release, should it ever come, touches nothing it no longer holds.
          const [{ released }] = await s.db`select settle.release_stuck_orders(
          ${crashed}, ${ids}::uuid[], 0) as released`;
          assert.equal(released, 0);
          for (const id of ids) {
            assert.equal((await orderState(s.db, id)).reconcile_attempts, 2);
            assert.equal(await credits(s.db, id), 1);
          }
        },
      );

      await t.step(
        "the gateway down during a run: an error, a doubling backoff, then paid",
        async () => {
          await parkOpenOrders(s.db);
          const u = await createUser(s.db, "rec-down");
          const order = await paidSilently(s, u, 4400);
          const path = `/v1/orders/${order.gateway_order_id}/payments`;

          await razorpaySim(s, "faults", { faults: [{ method: "GET", path, mode: "error_503" }] });
          const first = await reconcile(s.app, { olderThanSeconds: 0, retrySeconds: 1 });
          assert.equal(orders(first).claimed, 1);
          assert.equal(orders(first).errors, 1);
          let state = await orderState(s.db, order.id);
          assert.equal(state.status, "created");
          assert.match(state.last_gateway_error ?? "", /503/);
          assert.ok(state.wait_seconds! > 0 && state.wait_seconds! <= 1, `${state.wait_seconds}`);
          const soon = await reconcile(s.app, { olderThanSeconds: 0, retrySeconds: 1 });
          assert.equal(orders(soon).claimed, 0, "backing off");

          await untilClaimable(s.db, [order.id]);
          await razorpaySim(s, "faults", { faults: [{ method: "GET", path, mode: "reset" }] });
          const second = await reconcile(s.app, { olderThanSeconds: 0, retrySeconds: 1 });
          assert.equal(orders(second).errors, 1);
          state = await orderState(s.db, order.id);
          assert.equal(state.reconcile_attempts, 2);
          assert.ok(state.wait_seconds! > 1 && state.wait_seconds! <= 2, `${state.wait_seconds}`);
          assert.equal(await credits(s.db, order.id), 0);

          await untilClaimable(s.db, [order.id]);
          const third = await reconcile(s.app, { olderThanSeconds: 0, retrySeconds: 1 });
          assert.equal(orders(third).paid, 1);
          assert.equal(await credits(s.db, order.id), 1);
          assert.equal(await walletBalance(s.db, u.accountId), 4400);
        },
      );

      await t.step("batches are bounded and oldest first", async () => {
        await parkOpenOrders(s.db);
        const u = await createUser(s.db, "rec-batch");
        const made: { id: string }[] = [];
        for (const amount of [5100, 5200, 5300, 5400, 5500]) {
          made.push(await paidSilently(s, u, amount));
        }
        const paidSoFar = async () =>
          (await s.db`select id from public.orders where created_by = ${u.id} and status = 'paid'
                      order by created_at`).map((r) => r.id);
        for (const [expectedClaim, expectedPaid] of [[2, 2], [2, 4], [1, 5], [0, 5]]) {
          const r = await reconcileHttp(s, { older_than_seconds: 0, limit: 2 });
          assert.equal(r.body.orders.claimed, expectedClaim);
          assert.deepEqual(await paidSoFar(), made.slice(0, expectedPaid).map((o) => o.id));
        }
      });

      await t.step("failed webhook events are retried with backoff and applied once", async () => {
        await parkOpenOrders(s.db);
        // Any effect can fail (a bug, a lock timeout); here the ledger refuses postings on demand.
        await s.db.unsafe(`
          create schema if not exists test_inject;
          create table if not exists test_inject.switch (on_ boolean);
          create or replace function test_inject.fail() returns trigger language plpgsql as $$
          begin
            if exists (select 1 from test_inject.switch) then
              raise exception 'injected ledger failure';
            end if;
            return new;
          end $$;
          drop trigger if exists test_inject_fail on public.ledger_transactions;
          create trigger test_inject_fail before insert on public.ledger_transactions
            for each row execute function test_inject.fail();
          insert into test_inject.switch values (true);`);
        const on = () => s.db`insert into test_inject.switch values (true)`;
        const off = () => s.db`delete from test_inject.switch`;
        try {
          const u = await createUser(s.db, "rec-hooks");
          const { order, checkout } = await topupOrder(s, u, 6600);
          await payAtSimulator(s, checkout.order_id);
          await s.razorpay.idle();
          const events = () =>
            s.db`select event_type, outcome, attempts, detail from public.webhook_events
                 where gateway_order_id = ${checkout.order_id} order by id`;
          // authorized applied (no posting); captured and order.paid failed on the posting.
          assert.deepEqual((await events()).map((e) => [e.event_type, e.outcome]), [
            ["payment.authorized", "applied"],
            ["payment.captured", "failed"],
            ["order.paid", "failed"],
          ]);
          assert.equal((await orderState(s.db, order.id)).status, "authorized");
          const retry = (retrySeconds: number) =>
            reconcile(s.app, { retrySeconds }, [failedWebhooks]);

          assert.deepEqual((await retry(0)).webhooks, { retried: 2, resolved: 0, failed: 2 });
          assert.deepEqual(
            (await events()).slice(1).map((e) => [e.outcome, e.attempts, e.detail]),
            [["failed", 2, "injected ledger failure"], ["failed", 2, "injected ledger failure"]],
          );
          await off();
          assert.deepEqual((await retry(3600)).webhooks, { retried: 0, resolved: 0, failed: 0 });
          assert.deepEqual((await retry(0)).webhooks, { retried: 2, resolved: 2, failed: 0 });
          assert.deepEqual((await events()).map((e) => [e.outcome, e.attempts]), [
            ["applied", 1],
            ["applied", 3],
            ["no_effect", 3],
          ]);
          assert.equal((await orderState(s.db, order.id)).status, "paid");
          assert.equal(await credits(s.db, order.id), 1);
          assert.equal(await walletBalance(s.db, u.accountId), 6600);
          assert.deepEqual((await retry(0)).webhooks, { retried: 0, resolved: 0, failed: 0 });

          // Three retriers at once over 16 failed events: each event retried exactly once.
          await on();
          const many = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
            const { order, checkout } = await topupOrder(s, u, 7000 + i);
            await payAtSimulator(s, checkout.order_id);
            return order;
          }));
          await s.razorpay.idle();
          await off();
          const runs = await Promise.all([1, 2, 3].map(() => retry(0)));
          const retried = runs.map((r) => (r.webhooks as Record<string, number>).retried);
          assert.equal(retried.reduce((a, b) => a + b, 0), 16, `retried ${retried}`);
          assert.deepEqual(
            runs.map((r) => (r.webhooks as Record<string, number>).failed),
            [0, 0, 0],
            "retriers locking the same orders neither deadlock nor fail",
          );
          for (const o of many) {
            assert.equal((await orderState(s.db, o.id)).status, "paid");
            assert.equal(await credits(s.db, o.id), 1);
          }
          const [{ left }] = await s.db`select count(*)::int as left from public.webhook_events
            where outcome = 'failed'`;
          assert.equal(left, 0);
        } finally {
          await s.db.unsafe(`drop trigger if exists test_inject_fail on public.ledger_transactions;
                             drop schema test_inject cascade;`);
        }
      });

      await t.step(
        "scheduling: only the service role runs the SQL; pg_cron calls functions with the Vault's key",
        async () => {
          const denied = await s.db.begin(async (tx) => {
            await tx`set local role authenticated`;
            await tx`select settle.claim_stuck_orders(gen_random_uuid(), array['razorpay'],
              1, 0, 0, 1, 0)`;
          }).then(() => "allowed", (e) => e.code);
          assert.equal(denied, "42501");

          // No pg_cron here: the schedule migration applied as a no-op.
          const [m] = await s.db`select
            exists (select 1 from supabase_migrations.schema_migrations
                    where version = '20261201002400') as applied,
            to_regnamespace('cron') is null as no_cron`;
          assert.deepEqual({ ...m }, { applied: true, no_cron: true });

          // What each cron job runs, against stand-ins for pg_net and Vault (rolled back).
          const rollback = new Error("rollback");
          const seen = await s.db.begin(async (tx) => {
            await tx.unsafe(`
            create schema net;
            create table net.calls (url text, body jsonb, headers jsonb, timeout_ms int);
            create function net.http_post(url text, body jsonb default '{}', params jsonb default '{}',
              headers jsonb default '{}', timeout_milliseconds int default 5000) returns bigint
            language sql as $$
              insert into net.calls values (url, body, headers, timeout_milliseconds);
              select 42::bigint
            $$;
            create schema vault;
            create table vault.decrypted_secrets (name text, decrypted_secret text);`);
            const missing = await tx.savepoint((sp) =>
              sp`select settle.invoke_edge_function('reconcile')`
            ).then(() => "called", (e) => e.message);
            await tx`insert into vault.decrypted_secrets values
            ('settle_project_url', 'https://ref.supabase.co/'),
            ('settle_service_role_key', 'service-role-jwt')`;
            const [{ id }] = await tx`select settle.invoke_edge_function('reconcile') as id`;
            const calls = await tx`select url, body, headers, timeout_ms from net.calls`;
            throw Object.assign(rollback, {
              result: { missing, id, calls: calls.map((c) => ({ ...c })) },
            });
          }).catch((e) => {
            if (e !== rollback) throw e;
            return (e as unknown as { result: Record<string, unknown> }).result;
          });
          assert.match(String(seen.missing), /settle_project_url and settle_service_role_key/);
          assert.equal(Number(seen.id), 42);
          assert.deepEqual(seen.calls, [{
            url: "https://ref.supabase.co/functions/v1/reconcile",
            body: {},
            headers: {
              "Content-Type": "application/json",
              Authorization: "Bearer service-role-jwt",
            },
            timeout_ms: 60000,
          }]);
          const [{ gone }] = await s.db`select to_regnamespace('net') is null as gone`;
          assert.equal(gone, true);
        },
      );
    });
  },
});
