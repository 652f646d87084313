// The wallet-charge phase's fixtures and checks: wallets funded by paid top-ups (so the
// bench's balance invariant, balance = paid top-ups, holds again once the charges are refunded),
// charge requests under unique Idempotency-Keys, and what must be true afterwards.
import type { Sql } from "../../dev/db.ts";
import { type BenchUser, insertOrders } from "./fixtures.ts";
import { encodeRequest, type Reply } from "./http.ts";
import type { Job } from "./load.ts";

/** One paid top-up of `amount` per user, through settle.apply_payment as a webhook would. */
export async function fundWallets(db: Sql, users: BenchUser[], amount: number): Promise<number> {
  const orders = await insertOrders(db, users, users.length, () => amount);
  await db`select settle.apply_payment('razorpay', 'captured', g, 'pay_' || substr(g, 7), ${amount},
    'INR') from jsonb_array_elements_text(${
    db.json(orders.map((o) => o.gatewayOrderId))
  }::jsonb) g`;
  return orders.length;
}

/** Charge jobs: sender s charges users[s % users.length] a random 1.00 .. 10.00. */
export function chargeJobs(functionsUrl: string, serviceKey: string, users: BenchUser[]) {
  const u = new URL(functionsUrl);
  const made: { accountId: string; amount: number }[] = [];
  let n = 0;
  const run = `${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
  const next = (sender: number): Job => {
    const user = users[sender % users.length];
    const amount = 100 + Math.floor(Math.random() * 901);
    return {
      bytes: encodeRequest(u.host, "POST", "/functions/v1/wallet-charges", {
        authorization: `Bearer ${serviceKey}`,
        "content-type": "application/json",
        "idempotency-key": `bench-charge-${run}-${n++}`,
      }, JSON.stringify({ account_id: user.accountId, amount, currency: "INR" })),
      check(r: Reply) {
        if (r.status !== 201) return `wallet-charges answered ${r.status} ${r.body.slice(0, 200)}`;
        const c = JSON.parse(r.body).charge;
        if (c?.status !== "captured" || c.amount !== amount) {
          return `charged ${r.body.slice(0, 200)}`;
        }
        made.push({ accountId: user.accountId, amount });
      },
    };
  };
  return { next, made };
}

/** Charges made = rows written = what left the wallets; then every charge is refunded. */
export async function checkChargesAndRefund(
  db: Sql,
  users: BenchUser[],
  made: { accountId: string; amount: number }[],
  funded: number,
): Promise<string[]> {
  const accounts = db.json(users.map((u) => u.accountId));
  const [r] = await db`
    select (select count(*)::int from public.wallet_charges c
            where c.account_id in (select a::uuid from jsonb_array_elements_text(${accounts}::jsonb) a))
             as charges,
           (select coalesce(sum(${funded}::bigint - w.balance), 0)::bigint from public.wallets w
            where w.currency = 'INR'
              and w.account_id in (select a::uuid from jsonb_array_elements_text(${accounts}::jsonb) a))
             as debited`;
  const problems: string[] = [];
  const sum = made.reduce((a, c) => a + c.amount, 0);
  if (r.charges !== made.length) {
    problems.push(`${r.charges} charge rows, ${made.length} charges made`);
  }
  if (Number(r.debited) !== sum) {
    problems.push(`wallets debited ${r.debited}, charges sum to ${sum}`);
  }
  const audit = await db`select * from settle.ledger_audit_holds()`;
  for (const a of audit) problems.push(`audit: ${a.invariant} ${a.subject}`);
  // Back to balance = paid top-ups, which the later phases' checks expect.
  await db`select settle.refund_wallet_charge(c.id) from public.wallet_charges c
    where c.status = 'captured'`;
  return problems;
}
