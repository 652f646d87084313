// The bank test's escrow operations (tests/bank_test.ts hooks them in): engagements between the
// bank's users, funded by verify (the bank holds webhooks), then completed with a random rating
// and settled, cancelled by the payee, disputed and resolved at a random share, or charged back
// at the gateway (won or lost, its signed events reordered and racing), all racing the other
// workers' escrow-settle runs (a chargeback may land before or after settlement). What lands in wallets (payee amounts, penalties too
// small for a gateway refund) is told to the model, so the bank's balance check still holds.
import assert from "node:assert/strict";
import {
  client,
  invoke,
  payAtSimulator,
  type Reply,
  type TestStack,
  type TestUser,
} from "./stack.ts";
import { post } from "./escrow.ts";
import { disputeState, lifecycle, newDispute, send, type TestDispute } from "./disputes.ts";

export interface EscrowWorld {
  s: TestStack;
  users: TestUser[];
  model: {
    /** Money leaving (positive) or coming back to (negative) a wallet other than by orders. */
    spend(accountId: string, currency: string, amount: number): void;
    count(t: Record<string, number>, k: string): void;
    accepted: Record<string, number>;
  };
}

export interface EscrowRng {
  int(lo: number, hi: number): number;
  pick<T>(xs: readonly T[]): T;
}

async function retry(send: () => Promise<Reply>, status: number): Promise<Reply> {
  let r = await send();
  for (let i = 0; i < 8 && r.status !== status; i++) {
    await new Promise((res) => setTimeout(res, 50));
    r = await send();
  }
  assert.equal(r.status, status, JSON.stringify(r.body));
  return r;
}

async function settleUntil(w: EscrowWorld, id: string, orderId: string) {
  for (let i = 0; i < 40; i++) {
    const r = await post(w.s, "escrow-settle", w.s.serviceRoleKey);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const [row] = await w.s.db`select e.status, settle.escrow_owed(o) as owed
      from public.engagements e join public.orders o on o.id = ${orderId} where e.id = ${id}`;
    if (["settled", "canceled"].includes(row.status) && Number(row.owed) === 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`engagement ${id} did not settle and return what it owed`);
}

/** What the engagement put into wallets: the payee's amount, the payer's wallet returns. */
async function tellModel(w: EscrowWorld, id: string, orderId: string) {
  const [e] = await w.s.db`select payer_account_id, payee_account_id, currency,
      coalesce(payee_amount, 0)::bigint as payee,
      (select coalesce(sum(amount), 0)::bigint from settle.escrow_wallet_returns
       where order_id = ${orderId}) as returned
    from public.engagements where id = ${id}`;
  w.model.spend(e.payee_account_id, e.currency, -Number(e.payee));
  w.model.spend(e.payer_account_id, e.currency, -Number(e.returned));
}

export async function opEscrow(w: EscrowWorld, rng: EscrowRng) {
  const payer = rng.pick(w.users);
  const payee = rng.pick(w.users.filter((u) => u !== payer));
  const path = rng.pick(["settle", "settle", "cancel", "dispute", "chargeback"] as const);
  const c = client(w.s, payer.token);
  const created = await invoke(c, "engagements", {
    payee_account_id: payee.accountId,
    amount: rng.int(100, 50000),
    currency: "INR",
    hold_hours: path === "dispute" ? 1 : 0,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.engagement.id;
  // Chaos faults make gateway calls fail now and then: retried, as a client would.
  const order = await retry(
    () => invoke(c, "create-order", { gateway: "razorpay", purpose: "escrow", engagement_id: id }),
    201,
  );
  const paid = await payAtSimulator(w.s, order.body.order.gateway_order_id, {
    webhooks: { deliver: false },
  });
  const v = await retry(() => invoke(c, "verify", paid), 200);
  assert.equal(v.body.order.status, "paid");
  if (path === "cancel") {
    assert.equal((await post(w.s, `engagements/${id}/cancel`, payee.token)).status, 200);
  } else {
    const rating = rng.int(1, 5);
    const done = await post(w.s, `engagements/${id}/complete`, payer.token, { rating });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    if (path === "dispute") {
      assert.equal(
        (await post(w.s, `engagements/${id}/dispute`, payer.token, { reason: "late" })).status,
        200,
      );
      const share = rng.int(0, 10000);
      const r = await post(w.s, `engagements/${id}/resolve`, w.s.serviceRoleKey, {
        payee_share_bps: share,
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    if (path === "chargeback") await chargeback(w, rng, order.body.order);
  }
  await settleUntil(w, id, order.body.order.id);
  await tellModel(w, id, order.body.order.id);
  w.model.count(w.model.accepted, `escrow_${path}`);
}

const chargebacks = new WeakMap<EscrowWorld, { d: TestDispute; outcome: "won" | "lost" }[]>();

/**
 * A Razorpay chargeback on the funding payment, driven to won or lost by its signed events
 * (forward or reversed, the first two racing). Whether the engagement settled first is the
 * race's: either way it ends settled (won, or lost after settlement: the platform's expense)
 * or canceled with nothing for the payee, and the model needs nothing more (tellModel).
 */
async function chargeback(
  w: EscrowWorld,
  rng: EscrowRng,
  order: { id: string; gateway_order_id: string; amount: number; currency: string },
) {
  const [row] = await w.s.db`select gateway_payment_id from public.orders where id = ${order.id}`;
  const d = newDispute({
    gw: "razorpay",
    orderId: order.id,
    gatewayOrderId: order.gateway_order_id,
    paymentId: row.gateway_payment_id,
    amount: order.amount,
    currency: order.currency,
  });
  const outcome = rng.pick(["won", "lost"] as const);
  const list = chargebacks.get(w) ?? (chargebacks.set(w, []), chargebacks.get(w)!);
  list.push({ d, outcome });
  const events = lifecycle(d, outcome);
  if (rng.pick([true, false])) events.reverse();
  await Promise.all(events.slice(0, 2).map((e) => send(w.s, d, e)));
  for (const e of events.slice(2)) await send(w.s, d, e);
}

/** At the end: escrow refunds a fault left pending are sent again, and every run has settled. */
export async function quiesceEscrow(s: TestStack) {
  assert.equal((await post(s, "escrow-settle", s.serviceRoleKey)).status, 200);
  const r = await post(s, "reconcile", s.serviceRoleKey, { older_than_seconds: 0 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

/**
 * Problems with the bank's engagements (other suites share the database): any left funded or
 * completed, or money still owed back.
 */
export async function checkEscrow(
  s: TestStack,
  users: TestUser[],
  w?: EscrowWorld,
): Promise<string[]> {
  const problems: string[] = [];
  for (const { d, outcome } of (w && chargebacks.get(w)) ?? []) {
    const st = await disputeState(s, d);
    if (st?.status !== outcome || st.amount_held !== 0) {
      problems.push(`escrow chargeback ${d.id} (${outcome}): ${JSON.stringify(st)}`);
    }
  }
  const rows = await s.db`select e.id, e.status, settle.escrow_owed(o) as owed,
      (select count(*)::int from public.refunds r where r.order_id = o.id and r.status = 'pending')
        as pending
    from public.engagements e join public.orders o on o.engagement_id = e.id
    where o.status in ('paid', 'partially_refunded', 'refunded')
      and e.payer_account_id in ${s.db(users.map((u) => u.accountId))}`;
  return problems.concat(
    rows.filter((r) =>
      !["settled", "canceled"].includes(r.status) || Number(r.owed) !== 0 || r.pending > 0
    ).map((r) => `escrow: ${r.id} ${r.status}, owed ${r.owed}, ${r.pending} refunds pending`),
  );
}
