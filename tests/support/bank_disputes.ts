// Disputes in the bank test (tests/bank_test.ts): a worker opens a chargeback on a paid top-up
// and drives it to won or lost with its signed events duplicated, shuffled and partly racing,
// while the other workers keep refunding, spending and charging the same wallets. What the
// model needs: which disputes were lost (their amount left the wallet for good, less what the
// account still owes of a shortfall), and at the end every dispute in the state its outcome
// says, holding nothing, with its outbox events once each.
import type { TestStack, TestUser } from "./stack.ts";
import {
  disputeEvents,
  disputeState,
  lifecycle,
  newDispute,
  send,
  type TestDispute,
} from "./disputes.ts";

/** The parts of the bank test's world this module reads (its types stay in bank_test.ts). */
interface BankOrder {
  id: string;
  user: TestUser;
  gw: "razorpay" | "stripe";
  currency: string;
  amount: number;
  gatewayOrderId: string;
  success: boolean;
  settled: boolean;
}

interface BankWorld {
  s: TestStack;
  model: {
    orders: BankOrder[];
    ops: Record<string, number>;
    count(t: Record<string, number>, k: string): void;
  };
}

interface BankRng {
  chance(p: number): boolean;
  int(lo: number, hi: number): number;
  pick<T>(xs: readonly T[]): T;
  shuffle<T>(xs: T[]): T[];
}

interface BankDispute {
  d: TestDispute;
  order: BankOrder;
  outcome: "won" | "lost";
  events: { id: string; body: string }[];
}

const runs = new WeakMap<BankWorld, BankDispute[]>();
const disputesOf = (w: BankWorld) => runs.get(w) ?? (runs.set(w, []), runs.get(w)!);

/** The refusal a refund of a disputed order gets (an open chargeback, or a lost one). */
export const DISPUTE_REFUSALS = ["409 order_disputed"];
/** What a wallet charge may answer while its account owes a dispute shortfall. */
export const DISPUTE_CHARGE_REFUSALS = ["spending_blocked"];

/** One event, or several copies at once, each answered 200. */
async function deliver(
  w: BankWorld,
  rng: BankRng,
  bd: BankDispute,
  e: { id: string; body: string },
) {
  const copies = rng.chance(0.3) ? rng.int(2, 3) : 1;
  await Promise.all(Array.from({ length: copies }, () => send(w.s, bd.d, e)));
}

/**
 * A chargeback on a paid top-up, driven to its outcome: its events in order, reversed or
 * shuffled, some copies racing. Falls back to `otherwise` when no order can be disputed.
 */
export async function opDispute(w: BankWorld, rng: BankRng, otherwise: () => Promise<void>) {
  const taken = new Set(disputesOf(w).map((bd) => bd.order.id));
  const candidates = w.model.orders.filter((o) => o.success && o.settled && !taken.has(o.id));
  if (candidates.length === 0) return await otherwise();
  const order = rng.pick(candidates);
  const [row] = await w.s
    .db`select status, gateway_payment_id from public.orders where id = ${order.id}`;
  if (!["paid", "partially_refunded", "refunded"].includes(row.status)) return await otherwise();
  const d = newDispute({
    gw: order.gw,
    orderId: order.id,
    gatewayOrderId: order.gatewayOrderId,
    paymentId: row.gateway_payment_id,
    amount: order.amount,
    currency: order.currency,
  }, { fee: 100 * rng.int(5, 25) });
  const outcome = rng.chance(0.5) ? "won" : "lost";
  const bd: BankDispute = { d, order, outcome, events: lifecycle(d, outcome) };
  disputesOf(w).push(bd);
  w.model.count(w.model.ops, `dispute:${order.gw}:${outcome}`);
  const order_ = rng.pick(["forward", "reverse", "shuffled"] as const);
  const events = order_ === "forward"
    ? bd.events
    : order_ === "reverse"
    ? [...bd.events].reverse()
    : rng.shuffle(bd.events);
  // Stripe sends a chargeback's created and funds_withdrawn together: race them.
  await Promise.all(events.slice(0, 2).map((e) => deliver(w, rng, bd, e)));
  for (const e of events.slice(2)) await deliver(w, rng, bd, e);
}

/** Every dispute event of the run once more, shuffled, a few disputes at a time. */
export async function quiesceDisputes(w: BankWorld, rng: BankRng) {
  const all = rng.shuffle(disputesOf(w));
  for (let i = 0; i < all.length; i += 4) {
    await Promise.all(
      all.slice(i, i + 4).map(async (bd) => {
        for (const e of rng.shuffle(bd.events)) await send(w.s, bd.d, e);
      }),
    );
  }
}

/**
 * How far the account's wallet in currency sits below the model's balance because of
 * disputes: each lost dispute's amount, less what the account still owes of its shortfall
 * (the wallet could not give it; the receivable advanced it).
 */
export async function disputeWalletGap(w: BankWorld, accountId: string, currency: string) {
  let gap = 0;
  for (const bd of disputesOf(w)) {
    if (bd.order.user.accountId !== accountId || bd.order.currency !== currency) continue;
    const st = await disputeState(w.s, bd.d);
    if (bd.outcome === "lost") gap += bd.d.amount;
    gap -= (st?.shortfall ?? 0) - (st?.shortfall_covered ?? 0);
  }
  return gap;
}

/** Each dispute ended as driven, holds nothing, and emitted each outbox event once. */
export async function checkDisputes(w: BankWorld): Promise<string[]> {
  const problems: string[] = [];
  for (const bd of disputesOf(w)) {
    const st = await disputeState(w.s, bd.d);
    const withdrawn = bd.d.gw === "stripe" || bd.outcome === "lost" ? bd.d.amount : 0;
    if (
      st?.status !== bd.outcome || st.amount_held !== 0 || st.amount_withdrawn !== withdrawn ||
      st.amount_lost !== (bd.outcome === "lost" ? bd.d.amount : 0) ||
      st.fee !== (bd.d.gw === "stripe" ? bd.d.fee : 0)
    ) {
      problems.push(`dispute ${bd.d.id} (${bd.outcome}): ${JSON.stringify(st)}`);
    }
    const types = await disputeEvents(w.s, bd.d);
    const want = [
      "dispute.opened",
      ...(withdrawn > 0 ? ["dispute.funds_withdrawn"] : []),
      `dispute.${bd.outcome}`,
      "dispute.closed",
    ];
    if (JSON.stringify([...types].sort()) !== JSON.stringify([...want].sort())) {
      problems.push(`dispute ${bd.d.id}: outbox ${types.join(",")}, want ${want.join(",")}`);
    }
  }
  return problems;
}
