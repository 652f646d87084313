// Bench users and pending top-up orders, inserted in bulk with SQL (the way create-order
// leaves them: status created, the gateway's order id, purpose wallet_topup: a Razorpay order
// in INR, or a Stripe PaymentIntent in USD).
import type { Sql } from "../../dev/db.ts";
import { userToken } from "../../dev/keys.ts";
import { randomId } from "./razorpay.ts";

export interface BenchUser {
  id: string;
  accountId: string;
  walletId: string;
  token: string;
}

export interface PendingOrder {
  gatewayOrderId: string;
  amount: number;
  currency: string;
  user: number;
}

/** n auth users; the database trigger gives each an account and an INR wallet. */
export async function createUsers(db: Sql, n: number, label: string): Promise<BenchUser[]> {
  // Two statements: the accounts and wallets come from a trigger, which the inserting
  // statement's own snapshot cannot see.
  const ids = await db`
    insert into auth.users (id, email)
    select gen_random_uuid(), ${label} || '-' || g || '-' || substr(md5(random()::text), 1, 8)
           || '@bench.local'
    from generate_series(1, ${n}) g
    returning id`;
  const rows = await db`
    select u.id, a.id as account_id, w.id as wallet_id
    from jsonb_array_elements_text(${db.json(ids.map((r) => r.id))}::jsonb) as u(id)
    join public.accounts a on a.personal_owner_id = u.id::uuid
    join public.wallets w on w.account_id = a.id and w.currency = 'INR'`;
  if (rows.length !== n) throw new Error(`created ${rows.length} of ${n} bench users`);
  return await Promise.all(rows.map(async (r) => ({
    id: r.id as string,
    accountId: r.account_id as string,
    walletId: r.wallet_id as string,
    token: await userToken(r.id as string, { expiresInSeconds: 6 * 3600 }),
  })));
}

/** A wallet in the currency for every user (Stripe top-ups are in USD; INR comes with the user). */
export async function ensureWallets(db: Sql, users: BenchUser[], currency: string) {
  await db`select settle.ensure_wallet(a::uuid, ${currency})
    from jsonb_array_elements_text(${db.json(users.map((u) => u.accountId))}::jsonb) as a`;
}

/** Random top-up amount in minor units (1 .. 1,000 rupees or dollars), so a lost or doubled credit shows. */
export function randomAmount(): number {
  return 100 + Math.floor(Math.random() * 99_901);
}

/** count pending orders spread round-robin over users (order k belongs to user k % n). */
export async function insertOrders(
  db: Sql,
  users: BenchUser[],
  count: number,
  amount: (k: number) => number = randomAmount,
  id: (k: number) => string = () => randomId("order_"),
  gateway: "razorpay" | "stripe" = "razorpay",
  currency = gateway === "stripe" ? "USD" : "INR",
): Promise<PendingOrder[]> {
  const orders: PendingOrder[] = Array.from({ length: count }, (_, k) => ({
    gatewayOrderId: id(k),
    amount: amount(k),
    currency,
    user: k % users.length,
  }));
  const batch = 20_000;
  for (let i = 0; i < orders.length; i += batch) {
    const rows = orders.slice(i, i + batch).map((o) => ({
      g: o.gatewayOrderId,
      a: o.amount,
      acct: users[o.user].accountId,
      uid: users[o.user].id,
    }));
    await db`
      insert into public.orders (account_id, created_by, gateway, purpose, amount, currency,
                                 gateway_order_id, gateway_attempts)
      select r.acct, r.uid, ${gateway}, 'wallet_topup', r.a, ${currency}, r.g, 1
      from jsonb_to_recordset(${db.json(rows)}::jsonb) as r(g text, a bigint, acct uuid, uid uuid)`;
  }
  return orders;
}
