// The gateway audit (POST /gateway-audit) against the simulators and the real database: every
// state the old code left behind (an uncaptured Razorpay authorization credited; a dashboard
// refund linked by amount while settle's own refund was failed and reversed; a processed settle
// refund the gateway never had) is reported exactly once with both amounts, a normal flow is
// reported as nothing, and more than 100 gateway objects in the window are all read.
import assert from "node:assert/strict";
import { LOCAL_RAZORPAY, LOCAL_STRIPE } from "../dev/stack.ts";
import { paymentRecord } from "../shared/gateways/razorpay/wire.ts";
import type { RzpPayment } from "../shared/gateways/razorpay/wire.ts";
import {
  client,
  confirmAtStripe,
  createUser,
  invoke,
  payAtSimulator,
  raw,
  type Reply,
  type TestStack,
  type TestUser,
  withStack,
} from "./support/stack.ts";
import { withOwnStack } from "./support/isolated.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
type Gw = "razorpay" | "stripe";
const RZP_AUTH = "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`);
const STRIPE_AUTH = `Bearer ${LOCAL_STRIPE.secretKey}`;
const nowSec = () => Math.floor(Date.now() / 1000);

interface Order {
  id: string;
  gateway_order_id: string;
  amount: number;
  currency: string;
}

interface Row {
  kind: string;
  gateway: string;
  gateway_object_id: string;
  settle_amount: number | null;
  gateway_amount: number | null;
  settle_status: string | null;
  gateway_status: string | null;
  times_seen: number;
  reopened_count: number;
  resolved_at: Date | null;
  id: string;
}

// ------------------------------------------------------------------ arranging

async function simPost(s: TestStack, gw: Gw, path: string, body: unknown) {
  const base = gw === "razorpay"
    ? `${s.simulatorUrl}/razorpay/_sim/razorpay`
    : `${s.stripeUrl}/_sim/stripe`;
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const out = await res.json();
  assert.equal(res.status, 200, `${gw} ${path}: ${JSON.stringify(out)}`);
  return out;
}

/** The gateway API itself (its dashboard, another integration): Basic / Bearer auth. */
async function gatewayApi(s: TestStack, gw: Gw, path: string, body: Record<string, string>) {
  const res = gw === "razorpay"
    ? await fetch(`${s.simulatorUrl}/razorpay${path}`, {
      method: "POST",
      headers: { authorization: RZP_AUTH, "content-type": "application/json" },
      body: JSON.stringify(
        Object.fromEntries(Object.entries(body).map(([k, v]) => [k, /^\d+$/.test(v) ? +v : v])),
      ),
    })
    : await fetch(`${s.stripeUrl}${path}`, {
      method: "POST",
      headers: {
        authorization: STRIPE_AUTH,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams(body),
    });
  const out = await res.json();
  assert.equal(res.status, 200, `${gw} ${path}: ${JSON.stringify(out)}`);
  return out;
}

/** Webhooks off at both simulators: what settle learns, it learns from the test's writes. */
async function webhooksOff(s: TestStack) {
  for (const gw of ["razorpay", "stripe"] as const) {
    await simPost(s, gw, "/config", { webhooks: { deliver: false } });
  }
}

async function createOrder(s: TestStack, u: TestUser, gw: Gw): Promise<Order> {
  const [amount, currency] = gw === "razorpay" ? [50000, "INR"] : [5000, "USD"];
  const r = await invoke(client(s, u.token), "create-order", {
    gateway: gw,
    purpose: "wallet_topup",
    amount,
    currency,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.order;
}

/** Paid through checkout and verify, as today; returns the payment id settle stored. */
async function paid(s: TestStack, u: TestUser, gw: Gw): Promise<Order & { paymentId: string }> {
  const order = await createOrder(s, u, gw);
  const c = client(s, u.token);
  const v = gw === "razorpay"
    ? await invoke(c, "verify", await payAtSimulator(s, order.gateway_order_id))
    : (await confirmAtStripe(s, order.gateway_order_id),
      await invoke(c, "verify", { payment_intent_id: order.gateway_order_id }));
  assert.equal(v.status, 200, JSON.stringify(v.body));
  assert.equal(v.body.order.status, "paid");
  await s.razorpay.idle();
  await s.stripe.idle();
  const [row] = await s.db`select gateway_payment_id from public.orders where id = ${order.id}`;
  return { ...order, paymentId: row.gateway_payment_id };
}

/** What the old verify did with any valid Razorpay signature: paid, hence credited (trigger). */
async function markPaid(s: TestStack, orderId: string, paymentId: string | null) {
  await s.db`update public.orders set status = 'paid', paid_at = now(),
    gateway_payment_id = coalesce(${paymentId}, gateway_payment_id) where id = ${orderId}`;
}

async function insertRefund(
  s: TestStack,
  o: Order & { paymentId: string },
  r: { amount: number; status: "failed" | "processed"; gatewayRefundId: string | null },
): Promise<string> {
  const [row] = await s.db`insert into public.refunds (order_id, account_id, gateway,
      gateway_refund_id, gateway_payment_id, amount, currency, status, source, failure_reason,
      processed_at, failed_at)
    select id, account_id, gateway, ${r.gatewayRefundId}, ${o.paymentId}, ${r.amount}, currency,
      ${r.status}, 'api', ${r.status === "failed" ? "refused by the gateway" : null},
      ${r.status === "processed" ? new Date() : null}, ${r.status === "failed" ? new Date() : null}
    from public.orders where id = ${o.id}
    returning id`;
  return row.id;
}

function audit(s: TestStack, body: Record<string, unknown>, token = s.serviceRoleKey) {
  return raw(s, "gateway-audit", {
    method: "POST",
    token,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function rowsFor(s: TestStack, accounts: string[]): Promise<Row[]> {
  return [
    ...await s.db<Row[]>`select d.id::text, d.kind, d.gateway, d.gateway_object_id,
      d.settle_amount::int, d.gateway_amount::int, d.settle_status, d.gateway_status,
      d.times_seen, d.reopened_count, d.resolved_at
    from public.gateway_discrepancies d
    left join public.orders o on o.id = d.order_id
    where o.account_id = any(${accounts}::uuid[])
    order by d.kind, d.gateway, d.gateway_object_id`,
  ];
}

const key = (r: { kind: string; gateway: string; gateway_object_id: string }) =>
  `${r.kind} ${r.gateway} ${r.gateway_object_id}`;

// ------------------------------------------------------------------ tests

Deno.test("a Razorpay payment refunded without capture (an expired authorization) is not captured money", () => {
  const base = {
    id: "pay_AuditUncaptured1",
    entity: "payment",
    amount: 50000,
    currency: "inr",
    order_id: "order_AuditUncapture1",
    amount_refunded: 50000,
    refund_status: "full",
    error_code: null,
    error_description: null,
    created_at: 1_900_000_000,
  } as const;
  const expired = paymentRecord({ ...base, status: "refunded", captured: false } as RzpPayment);
  assert.equal(expired.captured, false);
  assert.equal(expired.status, "refunded");
  assert.equal(expired.currency, "INR");
  const refunded = paymentRecord({ ...base, status: "refunded", captured: true } as RzpPayment);
  assert.equal(refunded.captured, true);
});

Deno.test({
  name:
    "gateway audit: each old-behaviour scenario is stored once with both amounts; reruns add nothing; resolved ones recur",
  ...opts,
  async fn() {
    // Its own database: the states arranged here break ledger_audit() on purpose, and the
    // suites after this one end with ledger_audit() of their database empty.
    await withOwnStack("gateway_audit", { RATE_LIMITS: "off" }, async (s) => {
      const u = await createUser(s.db, "audit");
      const from = nowSec() - 2;
      const expected = new Map<string, [number, number, string]>();
      const expect = (
        kind: string,
        gw: Gw,
        id: string,
        settle: number,
        gateway: number,
        status: string,
      ) => expected.set(`${kind} ${gw} ${id}`, [settle, gateway, status]);

      // Section 1: a Razorpay payment only authorized (never captured), credited by the old
      // verify; a Stripe intent that never succeeded but is paid in settle.
      const o1 = await createOrder(s, u, "razorpay");
      const auth = await simPost(s, "razorpay", `/orders/${o1.gateway_order_id}/pay`, {
        outcome: "success",
        capture: false,
        webhooks: { deliver: false },
      });
      await markPaid(s, o1.id, auth.razorpay_payment_id);
      expect(
        "not_captured_at_gateway",
        "razorpay",
        o1.gateway_order_id,
        50000,
        0,
        "authorized (not captured)",
      );
      const o2 = await createOrder(s, u, "stripe");
      await markPaid(s, o2.id, null);
      expect(
        "not_captured_at_gateway",
        "stripe",
        o2.gateway_order_id,
        5000,
        0,
        "requires_payment_method (not captured)",
      );

      // Section 2: a dashboard refund linked by amount to settle's pending refund, whose own
      // refund call was then refused: settle's row carries the dashboard refund's id, failed.
      const p3 = await paid(s, u, "razorpay");
      const p4 = await paid(s, u, "stripe");
      await webhooksOff(s);
      const dash3 = await gatewayApi(s, "razorpay", `/v1/payments/${p3.paymentId}/refund`, {
        amount: "50000",
      });
      await insertRefund(s, p3, {
        amount: 50000,
        status: "failed",
        gatewayRefundId: dash3.id,
      });
      expect("refund_missing_in_settle", "razorpay", dash3.id, 0, 50000, "failed");
      const dash4 = await gatewayApi(s, "stripe", "/v1/refunds", {
        payment_intent: p4.gateway_order_id,
        amount: "5000",
      });
      await insertRefund(s, p4, {
        amount: 5000,
        status: "failed",
        gatewayRefundId: dash4.id,
      });
      expect("refund_missing_in_settle", "stripe", dash4.id, 0, 5000, "failed");

      // A processed settle refund the gateway never had (an unknown id; no id at all).
      const p5 = await paid(s, u, "razorpay");
      const ghost = "rfnd_" + crypto.randomUUID().replaceAll("-", "").slice(0, 14);
      await insertRefund(s, p5, {
        amount: 10000,
        status: "processed",
        gatewayRefundId: ghost,
      });
      expect("refund_not_at_gateway", "razorpay", ghost, 10000, 0, "processed");
      const p6 = await paid(s, u, "stripe");
      const noId = await insertRefund(s, p6, {
        amount: 1000,
        status: "processed",
        gatewayRefundId: null,
      });
      expect("refund_not_at_gateway", "stripe", noId, 1000, 0, "processed");

      // Captured at the gateway while settle's order stayed created (verify and webhooks lost).
      const o7 = await createOrder(s, u, "razorpay");
      await simPost(s, "razorpay", `/orders/${o7.gateway_order_id}/pay`, { outcome: "success" });
      expect("missing_in_settle", "razorpay", o7.gateway_order_id, 0, 50000, "created");
      const o8 = await createOrder(s, u, "stripe");
      await confirmAtStripe(s, o8.gateway_order_id);
      expect("missing_in_settle", "stripe", o8.gateway_order_id, 0, 5000, "created");

      // A settle order for a gateway order of another amount, then paid as the old verify did.
      const other = await gatewayApi(s, "razorpay", "/v1/orders", {
        amount: "60000",
        currency: "INR",
      });
      const [o9] = await s.db`insert into public.orders (account_id, created_by, gateway, purpose,
          amount, currency, gateway_order_id)
        values (${u.accountId}, ${u.id}, 'razorpay', 'wallet_topup', 50000, 'INR', ${other.id})
        returning id`;
      const pay9 = await simPost(s, "razorpay", `/orders/${other.id}/pay`, { outcome: "success" });
      await markPaid(s, o9.id, pay9.razorpay_payment_id);
      expect("amount_mismatch", "razorpay", other.id, 50000, 60000, "paid");

      // A paid order credited twice (a second posting for the same order).
      const p10 = await paid(s, u, "razorpay");
      await s.db`select settle.post_transaction('topup', ${"audit-double:" + p10.id}, ${p10.id},
        'a second credit', jsonb_build_array(
          jsonb_build_object('wallet_id', ${u.walletId}::uuid, 'currency', 'INR', 'amount', 50000),
          jsonb_build_object('system_account', 'gateway:razorpay', 'currency', 'INR',
            'amount', -50000)))`;
      expect("credit_count", "razorpay", p10.gateway_order_id, 100000, 0, "paid");

      // A settle refund processed that the bank later failed at the gateway (webhook lost).
      const p11 = await paid(s, u, "razorpay");
      const r11 = await invoke(client(s, u.token), "refunds", { order_id: p11.id, amount: 15000 });
      assert.equal(r11.status, 201, JSON.stringify(r11.body));
      const g11 = r11.body.refund.gateway_refund_id as string;
      await simPost(s, "razorpay", `/refunds/${g11}/fail`, {});
      expect("refund_not_at_gateway", "razorpay", g11, 15000, 0, "processed");

      // The same gateway refund with another amount in settle.
      const p12 = await paid(s, u, "stripe");
      const dash12 = await gatewayApi(s, "stripe", "/v1/refunds", {
        payment_intent: p12.gateway_order_id,
        amount: "2000",
      });
      await insertRefund(s, p12, { amount: 1500, status: "processed", gatewayRefundId: dash12.id });
      expect("refund_amount_mismatch", "stripe", dash12.id, 1500, 2000, "processed");

      // A settle order in USD for a Razorpay order in INR.
      const inr = await gatewayApi(s, "razorpay", "/v1/orders", {
        amount: "50000",
        currency: "INR",
      });
      const [o13] = await s.db`insert into public.orders (account_id, created_by, gateway, purpose,
          amount, currency, gateway_order_id)
        values (${u.accountId}, ${u.id}, 'razorpay', 'wallet_topup', 50000, 'USD', ${inr.id})
        returning id`;
      const pay13 = await simPost(s, "razorpay", `/orders/${inr.id}/pay`, { outcome: "success" });
      await markPaid(s, o13.id, pay13.razorpay_payment_id);
      expect("currency_mismatch", "razorpay", inr.id, 50000, 50000, "paid");
      await s.razorpay.idle();
      await s.stripe.idle();

      // Four audits at once: each discrepancy is stored once and counted new by one of them.
      const window = { from, to: nowSec() + 1, account_ids: [u.accountId] };
      const runs = await Promise.all([1, 2, 3, 4].map(() => audit(s, window)));
      for (const r of runs) {
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.discrepancies.found, expected.size, JSON.stringify(r.body));
      }
      assert.equal(runs.reduce((n, r) => n + r.body.discrepancies.new, 0), expected.size);
      assert.deepEqual(runs[0].body.window, { from: window.from, to: window.to });
      assert.ok(runs[0].body.gateways.razorpay.payments >= 6, JSON.stringify(runs[0].body));
      assert.ok(runs[0].body.gateways.stripe.refunds >= 1, JSON.stringify(runs[0].body));

      const rows = await rowsFor(s, [u.accountId]);
      assert.deepEqual(rows.map(key).sort(), [...expected.keys()].sort());
      for (const r of rows) {
        const [settleAmount, gatewayAmount, status] = expected.get(key(r))!;
        const k = key(r);
        assert.equal(r.settle_amount, settleAmount, k);
        if (r.kind !== "credit_count") assert.equal(r.gateway_amount, gatewayAmount, k);
        const which = r.kind.startsWith("refund") || r.kind === "missing_in_settle" ||
            r.kind.endsWith("_mismatch") || r.kind === "credit_count"
          ? r.settle_status
          : r.gateway_status;
        assert.equal(which, status, k);
        assert.equal(r.times_seen, 4, k);
      }

      // A second run finds the same and adds nothing new.
      const again = await audit(s, window);
      assert.equal(again.body.discrepancies.found, expected.size);
      assert.equal(again.body.discrepancies.new, 0);
      assert.equal((await rowsFor(s, [u.accountId])).length, expected.size);

      // The operator query lists them; resolving one hides it until an audit sees it again.
      const target = rows.find((r) => r.kind === "missing_in_settle" && r.gateway === "razorpay")!;
      const open = await s.db`select id from public.gateway_discrepancies_open
        where id = any(${rows.map((r) => r.id)}::bigint[])`;
      assert.equal(open.length, expected.size);
      await s.db`select settle.resolve_gateway_discrepancy(${target.id}, 'checked by hand')`;
      await assert.rejects(
        s.db`select settle.resolve_gateway_discrepancy(${target.id}, 'twice')`,
        /already resolved/,
      );
      await assert.rejects(
        s.db`select settle.resolve_gateway_discrepancy(${target.id}, '  ')`,
        /resolution note/,
      );
      const hidden = await s.db`select 1 from public.gateway_discrepancies_open
        where id = ${target.id}`;
      assert.equal(hidden.length, 0);
      const recur = await audit(s, window);
      assert.equal(recur.body.discrepancies.new, 1);
      const [back] = await s.db`select reopened_count, resolved_at, resolution
        from public.gateway_discrepancies where id = ${target.id}`;
      assert.deepEqual(back, { reopened_count: 1, resolved_at: null, resolution: null });
    });
  },
});

Deno.test({
  name:
    "gateway audit: a normal flow on both gateways (pay, refund through settle) reports nothing",
  ...opts,
  async fn() {
    await withStack(async (s) => {
      const u = await createUser(s.db, "audit-clean");
      const from = nowSec() - 2;
      for (const gw of ["razorpay", "stripe"] as const) {
        const p = await paid(s, u, gw);
        for (const amount of gw === "razorpay" ? [10000, 40000] : [1000, 4000]) {
          const r = await invoke(client(s, u.token), "refunds", { order_id: p.id, amount });
          assert.equal(r.status, 201, JSON.stringify(r.body));
          assert.equal(r.body.refund.status, "processed");
        }
        await paid(s, u, gw); // and one paid order left unrefunded
      }
      await s.razorpay.idle();
      await s.stripe.idle();
      const r = await audit(s, { from, to: nowSec() + 1, account_ids: [u.accountId] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.gateways.razorpay.payments, 2);
      assert.equal(r.body.gateways.razorpay.refunds, 2);
      assert.equal(r.body.gateways.stripe.payments, 2);
      assert.equal(r.body.gateways.stripe.refunds, 2);
      assert.deepEqual(r.body.discrepancies, { found: 0, new: 0 });
      assert.deepEqual(await rowsFor(s, [u.accountId]), []);

      // A window that holds only an order's failed first attempt, not its later capture: the
      // order is read whole from the gateway, not reported as uncaptured.
      // The window is whole seconds: it starts after everything above and ends before the capture.
      const retried = await createOrder(s, u, "razorpay");
      const nextSecond = async (after: number) => {
        while (nowSec() <= after) await new Promise((ok) => setTimeout(ok, 50));
      };
      await nextSecond(nowSec());
      const failedFrom = nowSec();
      await simPost(s, "razorpay", `/orders/${retried.gateway_order_id}/pay`, {
        outcome: "failure",
      });
      const failedAt = nowSec();
      await nextSecond(failedAt);
      const ok = await invoke(
        client(s, u.token),
        "verify",
        await payAtSimulator(s, retried.gateway_order_id),
      );
      assert.equal(ok.body.order.status, "paid", JSON.stringify(ok.body));
      await s.razorpay.idle();
      const early = await audit(s, { from: failedFrom, to: failedAt, account_ids: [u.accountId] });
      assert.equal(early.status, 200, JSON.stringify(early.body));
      assert.equal(early.body.gateways.razorpay.payments, 1);
      assert.deepEqual(early.body.discrepancies, { found: 0, new: 0 });
    });
  },
});

Deno.test({
  name: "gateway audit: more than 100 gateway objects in the window are all read (every page)",
  ...opts,
  async fn() {
    await withStack(async (s) => {
      const u = await createUser(s.db, "audit-pages");
      const from = nowSec() - 2;
      await webhooksOff(s);
      // The oldest objects are settle's (on the last page, newest first): one captured payment
      // settle never learned of and one refund made at the gateway settle never heard of, on
      // each gateway.
      const lost: Record<Gw, Order> = {
        razorpay: await createOrder(s, u, "razorpay"),
        stripe: await createOrder(s, u, "stripe"),
      };
      await simPost(s, "razorpay", `/orders/${lost.razorpay.gateway_order_id}/pay`, {
        outcome: "success",
      });
      await confirmAtStripe(s, lost.stripe.gateway_order_id);
      const p = { razorpay: await paid(s, u, "razorpay"), stripe: await paid(s, u, "stripe") };
      const dashR = await gatewayApi(s, "razorpay", `/v1/payments/${p.razorpay.paymentId}/refund`, {
        amount: "20000",
      });
      const dashS = await gatewayApi(s, "stripe", "/v1/refunds", {
        payment_intent: p.stripe.gateway_order_id,
        amount: "2000",
      });
      // Then 105 payments and refunds of another integration on each gateway.
      const N = 105;
      for (let i = 0; i < N; i++) {
        const o = await gatewayApi(s, "razorpay", "/v1/orders", {
          amount: "10000",
          currency: "INR",
        });
        const pay = await simPost(s, "razorpay", `/orders/${o.id}/pay`, { outcome: "success" });
        await gatewayApi(s, "razorpay", `/v1/payments/${pay.razorpay_payment_id}/refund`, {
          amount: "100",
        });
        const pi = await gatewayApi(s, "stripe", "/v1/payment_intents", {
          amount: "1000",
          currency: "usd",
          payment_method: "pm_card_visa",
          confirm: "true",
        });
        await gatewayApi(s, "stripe", "/v1/refunds", { payment_intent: pi.id, amount: "100" });
      }
      await s.razorpay.idle();
      await s.stripe.idle();
      const r = await audit(s, { from, to: nowSec() + 1, account_ids: [u.accountId] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.gateways, {
        razorpay: { payments: N + 2, refunds: N + 1 },
        stripe: { payments: N + 2, refunds: N + 1 },
      });
      const rows = await rowsFor(s, [u.accountId]);
      assert.deepEqual(
        rows.map(key).sort(),
        [
          `missing_in_settle razorpay ${lost.razorpay.gateway_order_id}`,
          `missing_in_settle stripe ${lost.stripe.gateway_order_id}`,
          `refund_missing_in_settle razorpay ${dashR.id}`,
          `refund_missing_in_settle stripe ${dashS.id}`,
        ].sort(),
      );
      const refundRows = rows.filter((x) => x.kind === "refund_missing_in_settle");
      assert.deepEqual(
        refundRows.map((x) => [x.gateway, x.settle_amount, x.gateway_amount, x.settle_status]),
        [["razorpay", 0, 20000, "missing"], ["stripe", 0, 2000, "missing"]],
      );
    });
  },
});

Deno.test({
  name:
    "gateway audit: the default window follows the last scheduled run; a gateway outage is a 503; a user's token is refused",
  ...opts,
  async fn() {
    await withStack(async (s) => {
      const u = await createUser(s.db, "audit-window");
      const bare = await raw(s, "gateway-audit", { method: "POST", token: s.serviceRoleKey });
      assert.equal(bare.status, 200, JSON.stringify(bare.body));
      const w = bare.body.window as { from: number; to: number };
      assert.ok(w.to <= nowSec() - 299 && w.to >= nowSec() - 310, JSON.stringify(w));
      const [last] = await s.db`select extract(epoch from window_to)::int as to
        from settle.gateway_audit_runs where scheduled order by finished_at desc limit 1`;
      assert.equal(last.to, w.to);
      const next = await raw(s, "gateway-audit", { method: "POST", token: s.serviceRoleKey });
      assert.equal(next.body.window.from, w.to - 3600);
      // Razorpay down: 503, what Stripe showed is still stored, and the run is not recorded
      // (the next default window still starts from the last complete run).
      const runs = async () =>
        (await s.db`select count(*)::int as n from settle.gateway_audit_runs`)[0].n;
      const before = await runs();
      await simPost(s, "razorpay", "/faults", {
        faults: [{ method: "GET", path: "/v1/payments", mode: "error_503", count: 1 }],
      });
      const lost = await createOrder(s, u, "stripe");
      await confirmAtStripe(s, lost.gateway_order_id, { webhooks: { deliver: false } });
      const down = await audit(s, {
        from: nowSec() - 60,
        to: nowSec() + 1,
        account_ids: [u.accountId],
      });
      assert.equal(down.status, 503, JSON.stringify(down.body));
      assert.equal(down.body.error.code, "gateway_unavailable");
      assert.equal(await runs(), before);
      assert.deepEqual((await rowsFor(s, [u.accountId])).map(key), [
        `missing_in_settle stripe ${lost.gateway_order_id}`,
      ]);

      const user: Reply = await audit(s, {}, u.token);
      assert.equal(user.status, 403);
      assert.equal(user.body.error.code, "forbidden");
    });
  },
});
