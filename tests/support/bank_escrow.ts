// The bank test's escrow operations (tests/bank_test.ts hooks them in): engagements between the
// bank's users, funded by verify (the bank holds webhooks), then completed with a random rating
// and settled, cancelled by the payee, or disputed and resolved at a random share, all racing
// the other workers' escrow-settle runs. What lands in wallets (payee amounts, penalties too
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
  const path = rng.pick(["settle", "settle", "cancel", "dispute"] as const);
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
  }
  await settleUntil(w, id, order.body.order.id);
  await tellModel(w, id, order.body.order.id);
  w.model.count(w.model.accepted, `escrow_${path}`);
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
export async function checkEscrow(s: TestStack, users: TestUser[]): Promise<string[]> {
  const rows = await s.db`select e.id, e.status, settle.escrow_owed(o) as owed,
      (select count(*)::int from public.refunds r where r.order_id = o.id and r.status = 'pending')
        as pending
    from public.engagements e join public.orders o on o.engagement_id = e.id
    where o.status in ('paid', 'partially_refunded', 'refunded')
      and e.payer_account_id in ${s.db(users.map((u) => u.accountId))}`;
  return rows.filter((r) =>
    !["settled", "canceled"].includes(r.status) || Number(r.owed) !== 0 || r.pending > 0
  ).map((r) => `escrow: ${r.id} ${r.status}, owed ${r.owed}, ${r.pending} refunds pending`);
}
