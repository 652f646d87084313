// A slow gateway must not stall everyone: create-order holds no transaction, row lock or pooled
// connection while it waits on the gateway, and still makes exactly one gateway order per local
// order (the gateway call is claimed in the database, then made with nothing held).
import assert from "node:assert/strict";
import { LOCAL_RAZORPAY, LOCAL_STRIPE, type Stack } from "../dev/stack.ts";
import { connect } from "../dev/db.ts";
import { startServer } from "../bench/lib/spawn.ts";
import { clearFaults, razorpaySim, stripeSim } from "./support/isolated.ts";
import {
  createUser,
  raw,
  type Reply,
  testDbUrl,
  type TestStack,
  type TestUser,
  withStack,
} from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** withStack that clears the simulators' faults before the stack closes, however fn ends. */
function withClearedFaults(env: Record<string, string>, fn: (s: TestStack) => Promise<void>) {
  return withStack(env, async (s) => {
    try {
      await fn(s);
    } finally {
      await clearFaults(s);
    }
  });
}

const TOPUP = {
  razorpay: { gateway: "razorpay", purpose: "wallet_topup", amount: 30000, currency: "INR" },
  stripe: { gateway: "stripe", purpose: "wallet_topup", amount: 3000, currency: "USD" },
} as const;

type Gateway = keyof typeof TOPUP;

/** A stack, or a function server in a process of its own. */
type Functions = Pick<Stack, "functionsUrl">;

function createOrder(s: Functions, u: TestUser, gateway: Gateway, key?: string) {
  return raw(s as Stack, "create-order", {
    method: "POST",
    token: u.token,
    headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
    body: JSON.stringify(TOPUP[gateway]),
  });
}

/** Every API call at both simulators waits ms before it is answered (normally). */
async function stallGateways(s: Pick<Stack, "simulatorUrl" | "stripeUrl">, ms: number) {
  const faults = [{ mode: "delay", hold_ms: ms, count: 100_000 }];
  await razorpaySim(s as Stack, "faults", { faults });
  await stripeSim(s as Stack, "faults", { faults });
}

/** The gateway orders the simulators hold for a local order (by receipt / metadata). */
async function gatewayOrders(s: TestStack, orderId: string, customer: string | null) {
  if (customer === null) {
    const res = await fetch(`${s.simulatorUrl}/razorpay/v1/orders?receipt=${orderId}&count=100`, {
      headers: {
        authorization: "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`),
      },
    });
    return ((await res.json()).items as { id: string }[]).map((o) => o.id);
  }
  const res = await fetch(`${s.stripeUrl}/v1/payment_intents?customer=${customer}&limit=100`, {
    headers: { authorization: `Bearer ${LOCAL_STRIPE.secretKey}` },
  });
  const list = (await res.json()).data as { id: string; metadata: Record<string, string> }[];
  return list.filter((pi) => pi.metadata.settle_order_id === orderId).map((pi) => pi.id);
}

async function stripeCustomer(s: TestStack, u: TestUser): Promise<string> {
  const [row] = await s.db`select customer_id from public.gateway_customers
    where account_id = ${u.accountId} and gateway = 'stripe'`;
  return row.customer_id;
}

async function timed(send: () => Promise<Reply>): Promise<Reply & { ms: number }> {
  const started = performance.now();
  const r = await send();
  return { ...r, ms: performance.now() - started };
}

Deno.test({
  name: "simulators: a delay fault holds the call, then answers it normally",
  ...opts,
  fn: async () => {
    await withClearedFaults({}, async (s) => {
      const u = await createUser(s.db, "stall-sim");
      await stallGateways(s, 400);
      for (const gateway of ["razorpay", "stripe"] as const) {
        const r = await timed(() => createOrder(s, u, gateway));
        assert.equal(r.status, 201, JSON.stringify(r.body));
        // Stripe's first order also creates the customer: two held calls.
        assert.ok(r.ms >= 400, `${gateway}: answered after ${r.ms} ms`);
      }
    });
  },
});

Deno.test({
  name:
    "create-order holds no transaction, row lock or pooled connection while the gateway is slow",
  ...opts,
  fn: async () => {
    await withClearedFaults({}, async (s) => {
      const u = await createUser(s.db, "stall-held");
      // The customer exists already: the only gateway call left is the order itself.
      assert.equal((await createOrder(s, u, "stripe")).status, 201);
      await stallGateways(s, 1500);
      for (const gateway of ["razorpay", "stripe"] as const) {
        const known = (await s.db`select id from public.orders where created_by = ${u.id}`)
          .map((r) => r.id as string);
        const pending = createOrder(s, u, gateway);
        // Wait for the local order, then watch the database while the gateway holds the call.
        let orderId: string | undefined;
        for (let i = 0; i < 100 && !orderId; i++) {
          const [row] = await s.db`select id from public.orders
            where created_by = ${u.id} and not (id = any(${known}::uuid[]))`;
          if (row) orderId = row.id;
          else await new Promise((r) => setTimeout(r, 20));
        }
        assert.ok(orderId, `${gateway}: the local order appears`);
        // Statements take the row and a connection for milliseconds; what must not happen is
        // a transaction left open, or the row kept locked, while the gateway holds the call.
        for (let i = 0; i < 10; i++) {
          const held = await s.db`select state, left(query, 60) as query from pg_stat_activity
            where datname = current_database() and application_name = 'settle'
              and state like 'idle in transaction%'
              and state_change < clock_timestamp() - interval '200 milliseconds'`;
          assert.deepEqual(
            [...held],
            [],
            `${gateway}: a transaction is open during the gateway call`,
          );
          const locked = await s.db.begin(async (tx) => {
            await tx`set local lock_timeout = '300ms'`;
            await tx`select id from public.orders where id = ${orderId!} for update`;
          }).then(() => false, (err) => err?.code === "55P03" || Promise.reject(err));
          assert.equal(locked, false, `${gateway}: the order's row is locked during the call`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const r = await pending;
        assert.equal(r.status, 201, JSON.stringify(r.body));
        assert.equal(r.body.order.id, orderId);
      }
    });
  },
});

Deno.test({
  name:
    "20 concurrent create-orders under one Idempotency-Key make one order and one gateway order",
  ...opts,
  fn: async (t) => {
    await withClearedFaults({}, async (s) => {
      for (const stall of [0, 1000]) {
        for (const gateway of ["razorpay", "stripe"] as const) {
          await t.step(`${gateway}, gateway stalled ${stall} ms`, async () => {
            const u = await createUser(s.db, `stall-key-${gateway}`);
            await clearFaults(s);
            if (stall) await stallGateways(s, stall);
            const key = `same-${crypto.randomUUID()}`;
            const replies = await Promise.all(
              Array.from({ length: 20 }, () => createOrder(s, u, gateway, key)),
            );
            await clearFaults(s);
            for (const r of replies) {
              assert.ok([200, 201].includes(r.status), JSON.stringify(r.body));
            }
            assert.equal(replies.filter((r) => r.status === 201).length, 1);
            const ids = new Set(replies.map((r) => r.body.order.id));
            const gatewayIds = new Set(replies.map((r) => r.body.order.gateway_order_id));
            assert.equal(ids.size, 1, "one local order");
            assert.equal(gatewayIds.size, 1, "one gateway order id in every answer");
            const [orderId] = ids;
            const [{ n, attempts }] = await s.db`select count(*)::int as n,
                max(gateway_attempts) as attempts
              from public.orders where created_by = ${u.id}`;
            assert.equal(n, 1);
            assert.equal(attempts, 1, "the gateway was asked once");
            const customer = gateway === "stripe" ? await stripeCustomer(s, u) : null;
            assert.deepEqual(await gatewayOrders(s, orderId, customer), [...gatewayIds]);
          });
        }
      }
    });
  },
});

Deno.test({
  name:
    "a claim left by a request that died is waited for, then taken over: the retry finds the gateway order",
  ...opts,
  fn: async (t) => {
    await withClearedFaults({ RAZORPAY_TIMEOUT_MS: "400", STRIPE_TIMEOUT_MS: "400" }, async (s) => {
      for (const gateway of ["razorpay", "stripe"] as const) {
        await t.step(gateway, async () => {
          const u = await createUser(s.db, `stall-dead-${gateway}`);
          const key = `dead-${crypto.randomUUID()}`;
          // The gateway makes the order but its answer is lost (the SDK's retry too).
          const sim = gateway === "razorpay" ? razorpaySim : stripeSim;
          const path = gateway === "razorpay" ? "/v1/orders" : "/v1/payment_intents";
          await sim(s, "faults", {
            faults: [{ method: "POST", path, mode: "reset_after", count: 2 }],
          });
          const lost = await createOrder(s, u, gateway, key);
          await clearFaults(s);
          assert.equal(lost.status, 503, JSON.stringify(lost.body));
          const [order] = await s.db`select id, gateway_attempts from public.orders
            where created_by = ${u.id} and idempotency_key = ${key}`;
          const customer = gateway === "stripe" ? await stripeCustomer(s, u) : null;
          const made = await gatewayOrders(s, order.id, customer);
          assert.equal(made.length, 1, "the lost answer's gateway order exists");
          // Another request claimed the call since, and died: its claim has 1 s left.
          await s.db`update public.orders set gateway_claim_id = ${crypto.randomUUID()},
              gateway_claimed_until = clock_timestamp() + interval '1 second',
              gateway_attempts = gateway_attempts + 1
            where id = ${order.id}`;

          const retried = await timed(() => createOrder(s, u, gateway, key));
          assert.equal(retried.status, 200, JSON.stringify(retried.body));
          assert.ok(retried.ms >= 900, `answered after ${Math.round(retried.ms)} ms, in the lease`);
          assert.equal(retried.body.order.id, order.id);
          assert.deepEqual([retried.body.order.gateway_order_id], made, "the same gateway order");
          assert.deepEqual(await gatewayOrders(s, order.id, customer), made, "no second one");
          const [after] = await s.db`select gateway_attempts, gateway_claim_id,
              gateway_claimed_until from public.orders where id = ${order.id}`;
          assert.deepEqual(
            [after.gateway_attempts, after.gateway_claim_id, after.gateway_claimed_until],
            [order.gateway_attempts + 2, null, null],
          );
        });
      }
    });
  },
});

interface Round {
  /** Status of each create-order, and when the slowest finished after the burst began. */
  statuses: number[];
  slowestMs: number;
  reads: number;
  worstRead: { path: string; status: number; ms: number };
}

/** 40 concurrent create-orders (a mix of users and gateways) while the bystander reads. */
async function burstRound(s: Functions, users: TestUser[], bystander: TestUser): Promise<Round> {
  let done = false;
  const started = performance.now();
  const burst = Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const r = await createOrder(s, users[i % users.length], i % 2 === 0 ? "razorpay" : "stripe");
      return { status: r.status, ms: performance.now() - started };
    }),
  ).finally(() => (done = true));
  // The bystander's DB-only requests, one after another while the burst is in flight.
  const reads: { path: string; status: number; ms: number }[] = [];
  while (!done) {
    for (const path of ["subscriptions", "payment-methods"]) {
      const r = await timed(() => raw(s as Stack, path, { method: "GET", token: bystander.token }));
      reads.push({ path, status: r.status, ms: Math.round(r.ms) });
    }
  }
  const replies = await burst;
  return {
    statuses: replies.map((r) => r.status),
    slowestMs: Math.round(Math.max(...replies.map((r) => r.ms))),
    reads: reads.length,
    worstRead: reads.reduce((a, b) => (b.ms > a.ms || b.status !== 200 ? b : a)),
  };
}

Deno.test({
  name:
    "gateway holding every call 1 s: 40 concurrent create-orders on DB_POOL_MAX=10 finish < 3 s; another user's reads stay < 200 ms",
  ...opts,
  fn: async () => {
    // Three processes, as in production: the gateways, the function server (its event loop
    // does only its own work) and the clients (this test).
    const gateways = await startServer("sim");
    const remote = { simulatorUrl: gateways.simulatorUrl!, stripeUrl: gateways.stripeUrl! };
    const dbUrl = await testDbUrl();
    const server = await startServer("stack", [
      dbUrl,
      "DB_POOL_MAX=10",
      `RAZORPAY_API_URL=${remote.simulatorUrl}/razorpay`,
      `STRIPE_API_URL=${remote.stripeUrl}`,
      // Limits this burst never reaches, as in ./support/stack.ts: the check still runs.
      "RATE_LIMIT_PER_USER_PER_MINUTE=1000000",
      "RATE_LIMIT_PER_IP_PER_MINUTE=1000000",
    ]);
    const db = connect(dbUrl, 2);
    try {
      const users = await Promise.all(
        Array.from({ length: 8 }, (_, i) => createUser(db, `stall-${i}`)),
      );
      const bystander = await createUser(db, "stall-bystander");
      const s: Functions = server;
      const read = (path: string) =>
        raw(s as Stack, path, { method: "GET", token: bystander.token });
      // Warm up: every user's Stripe customer exists, the pool is open, the code paths are hot.
      for (let i = 0; i < 2; i++) {
        const warm = await Promise.all(users.flatMap((u) => [
          createOrder(s, u, "razorpay"),
          createOrder(s, u, "stripe"),
          read("subscriptions"),
          read("payment-methods"),
        ]));
        for (const r of warm) assert.ok([200, 201].includes(r.status), JSON.stringify(r.body));
      }

      await stallGateways(remote, 1000);
      // This machine's other work alone makes an idle read take over 200 ms now and then
      // (seen: 240 ms with two cores shared by several test runs), so a round that misses only
      // by such noise is run again, at most three rounds. Holding a connection across the
      // gateway call misses every round by seconds (the 40 orders took 4.4 s, the reads 4.3 s).
      const rounds: Round[] = [];
      for (let i = 0; i < 3; i++) {
        const round = await burstRound(s, users, bystander);
        rounds.push(round);
        for (const status of round.statuses) assert.equal(status, 201);
        // Each call waits 1 s at the gateway: a faster burst means the stall was not armed.
        assert.ok(round.slowestMs >= 1000, `the gateway was not stalled: ${round.slowestMs} ms`);
        if (round.slowestMs < 3000 && round.worstRead.ms < 200) break;
      }
      console.log(JSON.stringify(rounds.map(({ statuses: _, ...r }) => r)));
      const last = rounds.at(-1)!;
      assert.ok(last.slowestMs < 3000, `the slowest of 40 create-orders took ${last.slowestMs} ms`);
      assert.ok(last.reads >= 2, `only ${last.reads} reads during the burst`);
      assert.equal(last.worstRead.status, 200);
      assert.ok(
        last.worstRead.ms < 200,
        `another user's GET ${last.worstRead.path} took ${last.worstRead.ms} ms`,
      );
    } finally {
      await clearFaults(remote as Stack);
      await db.end({ timeout: 5 });
      await server.stop();
      await gateways.stop();
    }
  },
});
