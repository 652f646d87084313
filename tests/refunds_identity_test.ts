// Refunds are linked by identity, never by amount (issue 10, section 2). A refund made in the
// gateway's dashboard while settle's own request for the same amount is unanswered is its own
// refund; the request the gateway then refuses fails alone. Afterwards settle's refunded amount
// per order is the gateway's, wallets plus the receivable match the money that moved, and
// settle.ledger_audit() is empty. Queries here avoid the new columns so they run on old code.
import assert from "node:assert/strict";
import { createUser, type TestStack, type TestUser, withStack } from "./support/stack.ts";
import {
  audit,
  type Gw,
  GWS,
  idle,
  opts,
  orderState,
  type Paid,
  paidTopup,
  refund,
  refundAtGateway,
  refundRows,
  RZP_AUTH,
  STRIPE_AUTH,
  webhooks,
} from "./support/refunds.ts";
import { submitRefund } from "../shared/services/refunds.ts";
import type { RefundRow } from "../shared/services/refunds.ts";

/** What the gateway counts as refunded on the payment (refunds not failed or canceled). */
async function gatewayRefunded(s: TestStack, p: Paid): Promise<number> {
  const res = p.gw === "razorpay"
    ? await fetch(`${s.simulatorUrl}/razorpay/v1/payments/${p.paymentId}/refunds?count=100`, {
      headers: { authorization: RZP_AUTH },
    })
    : await fetch(`${s.stripeUrl}/v1/refunds?payment_intent=${p.gatewayOrderId}&limit=100`, {
      headers: { authorization: STRIPE_AUTH },
    });
  const out = await res.json();
  assert.equal(res.status, 200, JSON.stringify(out));
  const items = (p.gw === "razorpay" ? out.items : out.data) as {
    amount: number;
    status: string;
  }[];
  return items.filter((r) => !["failed", "canceled"].includes(r.status))
    .reduce((sum, r) => sum + r.amount, 0);
}

/** A dashboard refund that the gateway may refuse (settle's own got there first). */
async function tryRefundAtGateway(s: TestStack, p: Paid, amount: number): Promise<boolean> {
  const res = p.gw === "razorpay"
    ? await fetch(`${s.simulatorUrl}/razorpay/v1/payments/${p.paymentId}/refund`, {
      method: "POST",
      headers: { authorization: RZP_AUTH, "content-type": "application/json" },
      body: JSON.stringify({ amount }),
    })
    : await fetch(`${s.stripeUrl}/v1/refunds`, {
      method: "POST",
      headers: { authorization: STRIPE_AUTH, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ payment_intent: p.gatewayOrderId, amount: String(amount) }),
    });
  const out = await res.json();
  assert.ok(res.status === 200 || res.status === 400, `${res.status} ${JSON.stringify(out)}`);
  return res.status === 200;
}

/** The receivable the platform advanced for the order's refunds (a positive amount). */
async function shortfallOf(s: TestStack, orderId: string): Promise<number> {
  const [r] = await s.db`select coalesce(-sum(e.amount), 0)::bigint as owed
    from public.ledger_entries e join public.ledger_transactions t on t.id = e.transaction_id
    where t.order_id = ${orderId} and e.system_account like 'receivable:%'`;
  return Number(r.owed);
}

async function wallet(s: TestStack, u: TestUser, currency: string): Promise<number> {
  const [w] = await s.db`select coalesce((select balance from public.wallets
    where account_id = ${u.accountId} and currency = ${currency}), 0)::bigint as b`;
  return Number(w.b);
}

/** The app spends part of the wallet (a purchase posted to the ledger). */
async function spend(s: TestStack, u: TestUser, currency: string, amount: number) {
  await s.db.begin(async (tx) => {
    const [w] = await tx`select settle.ensure_wallet(${u.accountId}, ${currency}) as id`;
    await tx`select settle.post_transaction('purchase', ${`spend:${crypto.randomUUID()}`}, null,
      'test spend', ${
      tx.json([
        { wallet_id: w.id, currency, amount: -amount },
        { system_account: "revenue:product", currency, amount },
      ])
    })`;
  });
}

for (const { gw, currency, amount } of GWS) {
  Deno.test({
    name:
      `${gw}: a dashboard refund while settle's own request is unanswered is its own refund; the refused request fails alone`,
    ...opts,
    fn: async () => {
      await withStack(async (s) => {
        const u = await createUser(s.db, `${gw}-issue`);
        const p = await paidTopup(s, u, gw, amount, currency);
        // 1. settle counts an operator's full refund (what POST /refunds does first) ...
        const [created] = await s.db`select settle.create_refund(${p.orderId}, null, 'operator',
          null, null) as r`;
        const mine = created.r.refund as RefundRow;
        // 2. ... the same amount is refunded in the gateway's dashboard, its webhooks arrive ...
        const dashboard = await refundAtGateway(s, p, amount);
        await idle(s);
        // 3. ... and settle's request reaches the gateway, which refuses it: nothing is left.
        const after = await submitRefund(s.app, mine, { throwOnError: false });
        assert.equal(after.status, "failed");
        await idle(s);

        assert.equal(await gatewayRefunded(s, p), amount, "the gateway refunded it all");
        assert.deepEqual(await orderState(s, p.orderId), { status: "refunded", refunded: amount });
        assert.equal(await wallet(s, u, currency), 0, "the buyer does not keep it twice");
        const rows = await refundRows(s, p.orderId);
        assert.deepEqual(
          rows.map((r) => [r.source, r.status, r.amount, r.gateway_refund_id]),
          [["api", "failed", amount, null], ["gateway", "processed", amount, dashboard.id]],
        );
        await audit(s);
      });
    },
  });
}

Deno.test({
  name:
    "24 orders on both gateways refunded through settle and in the dashboard at once: settle counts what the gateway refunded",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      await webhooks(s, { duplicate: 2 });
      // [api share, dashboard share] of the order, in tenths; every other wallet spent 60%.
      const shapes = [[10, 10], [5, 10], [10, 5], [4, 4], [10, 3], [6, 6]];
      const cases = await Promise.all(Array.from({ length: 24 }, async (_, i) => {
        const { gw, currency, amount } = GWS[i % 2];
        const u = await createUser(s.db, `${gw}-mix-${i}`);
        const p = await paidTopup(s, u, gw as Gw, amount, currency);
        const spent = i % 4 < 2 ? 0 : amount * 0.6;
        if (spent) await spend(s, u, currency, spent);
        const [a, d] = shapes[Math.floor(i / 2) % shapes.length];
        return { u, p, spent, api: (amount * a) / 10, dash: (amount * d) / 10 };
      }));
      await idle(s);

      const replies = await Promise.all(cases.flatMap((c) => [
        refund(s, c.u.token, { order_id: c.p.orderId, amount: c.api }, `mix-${c.p.orderId}`)
          .then((r) => ({ kind: "api", status: r.status, body: r.body })),
        tryRefundAtGateway(s, c.p, c.dash).then((ok) => ({ kind: "dash", status: ok ? 200 : 400 })),
      ]));
      for (const r of replies) {
        // The API call is counted (201), refused by the gateway (502) or refused by settle
        // before the gateway (409: the dashboard's refund or the spent wallet left no room).
        if (r.kind === "api") assert.ok([201, 409, 502].includes(r.status), JSON.stringify(r));
      }
      await idle(s);
      await idle(s);

      let advanced = 0;
      for (const c of cases) {
        const label = `${c.p.gw} order ${c.p.orderId} (api ${c.api}, dashboard ${c.dash})`;
        const atGateway = await gatewayRefunded(s, c.p);
        const { refunded } = await orderState(s, c.p.orderId);
        assert.equal(refunded, atGateway, `${label}: settle ${refunded}, gateway ${atGateway}`);
        // Money moved once: what left the wallet plus what the receivable advanced is what was
        // refunded, and the wallet never went below zero.
        const w = await wallet(s, c.u, c.p.currency);
        const owed = await shortfallOf(s, c.p.orderId);
        assert.equal(
          w - owed,
          c.p.amount - c.spent - refunded,
          `${label}: wallet ${w}, owed ${owed}`,
        );
        assert.ok(w >= 0);
        if (owed > 0) advanced++;
      }
      assert.ok(advanced > 0, "some dashboard refunds exceeded a spent wallet");
      await audit(s);
    });
  },
});
