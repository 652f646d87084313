// The gateway boundary under races (the orders and refunds migrations): a refund's API answer and a refund
// webhook of the same payment are applied one at a time, and a gateway call that timed out keeps
// its claim, so a retry finds the order the late call made instead of making a second one.
import assert from "node:assert/strict";
import { connect, type Sql } from "../dev/db.ts";
import { createApp } from "../shared/app.ts";
import type { Caller } from "../shared/auth.ts";
import { GatewayError } from "../shared/gateways/types.ts";
import { createOrder, createOrderBody } from "../shared/services/orders.ts";
import { createUser, testDbUrl, type TestUser, withStack } from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const why = (x: PromiseSettledResult<unknown>) => x.status === "rejected" ? String(x.reason) : "";

/** A paid Stripe top-up (charge ch) with a settle refund of 3000 asked and not answered yet. */
async function paidWithPendingRefund(db: Sql, u: TestUser, tag: string) {
  const pi = `pi_BND${tag}`;
  const ch = `ch_BND${tag}`;
  const [o] = await db`insert into public.orders (account_id, created_by, gateway, purpose, amount,
      currency, gateway_order_id)
    values (${u.accountId}, ${u.id}, 'stripe', 'wallet_topup', 10000, 'USD', ${pi}) returning id`;
  await db`select settle.apply_payment('stripe', 'captured', ${pi}, ${ch}, 10000, 'USD')`;
  const [r] = await db`select (settle.create_refund(${o.id}, 3000, 'asked', null, null)
    -> 'refund' ->> 'id') as id`;
  return { orderId: o.id as string, refundId: r.id as string, pi, ch };
}

/**
 * Stripe's charge.refunded listing a dashboard refund (counted first: it locks the order) and then
 * settle's refund, failed (it locks settle's refund row).
 */
function chargeRefunded(
  db: Sql,
  f: { refundId: string; pi: string; ch: string },
  tag: string,
) {
  const item = (id: string, amount: number, status: string, settleId: string | null) => ({
    action: "refund",
    gateway_refund_id: id,
    gateway_payment_id: f.ch,
    gateway_order_id: f.pi,
    amount,
    currency: "USD",
    status,
    settle_refund_id: settleId,
    failure_reason: status === "failed" ? "declined" : null,
  });
  const effect = {
    action: "refunds",
    gateway_payment_id: f.ch,
    gateway_order_id: f.pi,
    refunds: [
      item(`re_BNDG${tag}`, 2000, "processed", null),
      item(`re_BNDS${tag}`, 3000, "failed", f.refundId),
    ],
  };
  return db`select settle.ingest_webhook(row('stripe', ${`evt_bnd_${tag}`}, 'charge.refunded', null,
    ${f.pi}, ${f.ch}, 5000, 'USD', now(), '{}', null, null, ${db.json(effect)},
    null)::settle.incoming_event) as result`;
}

/** Waits until the backend is blocked on a lock (a row or advisory lock), never longer than 10 s. */
async function untilWaiting(db: Sql, pid: number) {
  for (let i = 0; i < 1000; i++) {
    const [row] = await db`select wait_event_type from pg_stat_activity where pid = ${pid}`;
    if (row?.wait_event_type === "Lock") return;
    await pause(10);
  }
  throw new Error(`backend ${pid} never waited on a lock`);
}

async function pidOf(sql: Sql): Promise<number> {
  const [row] = await sql`select pg_backend_pid() as pid`;
  return row.pid;
}

/** After a run: the refund failed once, the dashboard refund is counted, the ledger agrees. */
async function assertSettled(
  db: Sql,
  f: { orderId: string; refundId: string },
  tag: string,
  note: string,
) {
  const [order] = await db`select status, amount_refunded from public.orders
    where id = ${f.orderId}`;
  assert.equal(`${order.status}/${order.amount_refunded}`, "partially_refunded/2000", note);
  const refunds = await db`select gateway_refund_id, status, origin from public.refunds
    where order_id = ${f.orderId} order by origin, gateway_refund_id`;
  assert.deepEqual(refunds.map((r) => `${r.gateway_refund_id}:${r.status}:${r.origin}`), [
    `re_BNDG${tag}:processed:gateway`,
    `re_BNDS${tag}:failed:settle`,
  ], note);
  const [event] = await db`select outcome, detail from public.webhook_events
    where gateway = 'stripe' and event_id = ${`evt_bnd_${tag}`}`;
  assert.notEqual(event.outcome, "failed", `${note}: webhook ${event.detail}`);
  const audit = await db`select * from settle.ledger_audit() where subject = ${f.orderId}
    or invariant in ('unbalanced_transaction', 'wallet_balance_drift', 'refunds_exceed_payment')`;
  assert.deepEqual([...audit], [], note);
}

Deno.test({
  name: "a refund's API answer and a refund webhook of its payment never deadlock",
  ...opts,
  fn: async (t) => {
    const url = await testDbUrl();
    const db = connect(url, 4);
    const [a, b, c] = [connect(url, 1), connect(url, 1), connect(url, 1)];
    try {
      const u = await createUser(db, "boundary-lock");
      const [pidA, pidB] = [await pidOf(a), await pidOf(b)];

      await t.step(
        "the webhook queued on the order first, the answer second (10 runs)",
        async () => {
          for (let run = 0; run < 10; run++) {
            const tag = `Q${run}${crypto.randomUUID().slice(0, 6)}`;
            const f = await paidWithPendingRefund(db, u, tag);
            // A third session holds the order so both queue behind it in a known order: the
            // webhook (which will lock the order, then settle's refund) before the answer (which
            // locks settle's refund, then the order).
            let release!: () => void;
            const released = new Promise<void>((r) => release = r);
            let locked!: () => void;
            const isLocked = new Promise<void>((r) => locked = r);
            const holder = c.begin(async (tx) => {
              await tx`select 1 from public.orders where id = ${f.orderId} for update`;
              locked();
              await released;
            });
            let w: PromiseSettledResult<unknown>, r: PromiseSettledResult<unknown>;
            try {
              await isLocked;
              // postgres.js sends a query when it is awaited: execute() sends it now.
              const webhook = chargeRefunded(b, f, tag).execute();
              await untilWaiting(db, pidB);
              const answer = a`select settle.record_refund_result(${f.refundId},
              ${`re_BNDS${tag}`}, 'failed', 'declined', null) as result`.execute();
              await untilWaiting(db, pidA);
              release();
              await holder;
              [w, r] = await Promise.allSettled([webhook, answer]);
            } finally {
              release();
            }
            assert.equal(w.status, "fulfilled", `run ${run}: webhook ${why(w)}`);
            assert.equal(r.status, "fulfilled", `run ${run}: answer ${why(r)}`);
            await assertSettled(db, f, tag, `run ${run}`);
          }
        },
      );

      await t.step("both at once, free running (25 runs)", async () => {
        for (let run = 0; run < 25; run++) {
          const tag = `F${run}${crypto.randomUUID().slice(0, 6)}`;
          const f = await paidWithPendingRefund(db, u, tag);
          const [w, r] = await Promise.allSettled([
            chargeRefunded(b, f, tag),
            a`select settle.record_refund_result(${f.refundId}, ${`re_BNDS${tag}`}, 'failed',
              'declined', null) as result`,
          ]);
          assert.equal(w.status, "fulfilled", `run ${run}: webhook ${why(w)}`);
          assert.equal(r.status, "fulfilled", `run ${run}: answer ${why(r)}`);
          await assertSettled(db, f, tag, `run ${run}`);
        }
      });
    } finally {
      await Promise.all([a, b, c, db].map((x) => x.end({ timeout: 5 })));
    }
  },
});

/** Razorpay orders the simulator holds under a receipt (settle's order id). */
async function ordersByReceipt(simulatorUrl: string, keyAuth: string, receipt: string) {
  const res = await fetch(`${simulatorUrl}/razorpay/v1/orders?receipt=${receipt}&count=100`, {
    headers: { authorization: keyAuth },
  });
  return ((await res.json()).items as { id: string }[]).map((o) => o.id);
}

Deno.test({
  name: "create-order: a timed-out Razorpay call keeps its claim; the retry finds its late order",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "boundary-timeout");
      const rzp = s.config.razorpay!;
      // The first order request reaches Razorpay only after settle gave up on it (a slow network
      // or gateway): the caller times out at 300 ms, the gateway makes the order at 800 ms.
      let late: Promise<Response> | undefined;
      const slowFirst: typeof fetch = async (input, init) => {
        const req = new Request(input, init);
        if (late || req.method !== "POST" || !new URL(req.url).pathname.endsWith("/v1/orders")) {
          return await fetch(input, init);
        }
        const body = await req.text();
        late = pause(800).then(() =>
          fetch(req.url, { method: "POST", headers: req.headers, body })
        );
        return await new Promise<Response>((_, reject) => {
          const signal = init?.signal;
          signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      };
      const app = createApp({
        ...s.config,
        supabaseUrl: undefined,
        razorpay: { ...rzp, timeoutMs: 300 },
      }, { fetch: slowFirst });
      const caller: Caller = {
        role: "authenticated",
        userId: u.id,
        claims: { sub: u.id, role: "authenticated", aud: "authenticated" },
      };
      const body = createOrderBody.parse({
        gateway: "razorpay",
        purpose: "wallet_topup",
        amount: 30000,
        currency: "INR",
      });
      const key = `boundary-${crypto.randomUUID()}`;
      try {
        await assert.rejects(
          createOrder(app, caller, body, key),
          (e) => e instanceof GatewayError && e.status === 503,
        );
        const [order] = await s.db`select id, gateway_order_id from public.orders
          where created_by = ${u.id}`;
        assert.equal(order.gateway_order_id, null);
        // The client retries at once with the same key.
        const retried = await createOrder(app, caller, body, key);
        assert.equal(retried.status, 200);
        await late;
        const auth = "Basic " + btoa(`${rzp.keyId}:${rzp.keySecret}`);
        const atGateway = await ordersByReceipt(s.simulatorUrl, auth, order.id);
        assert.equal(atGateway.length, 1, `gateway orders for one order: ${atGateway}`);
        const [after] = await s.db`select gateway_order_id, gateway_claim_id from public.orders
          where id = ${order.id}`;
        assert.equal(after.gateway_order_id, atGateway[0]);
        assert.equal(after.gateway_claim_id, null);
        assert.equal(
          (retried.body as { order: { gateway_order_id: string } }).order.gateway_order_id,
          atGateway[0],
        );
      } finally {
        await app.sql.end({ timeout: 5 });
      }
    });
  },
});
