// Paying an order from the wallet: create-order with gateway "wallet" pays a plan or a product
// at once from the account's balance (settle.pay_order_from_wallet): no gateway, no checkout,
// no webhook, and the same downstream effects (ledger, subscription, outbox) as a payment.
import type { App } from "../app.ts";
import type { Caller } from "../auth.ts";
import { asUser } from "../db.ts";
import { optionalIdempotencyKey, orderRequestHash } from "../idempotency.ts";
import { HttpError } from "../http.ts";
import { minorFromDb } from "../money.ts";
import { type CreateOrderBody, type OrderRow, publicOrder } from "./orders.ts";

export async function payOrderFromWallet(
  app: App,
  caller: Caller,
  body: CreateOrderBody,
  rawKey: string | null,
): Promise<{ status: 200 | 201; body: unknown }> {
  if (body.purpose === "wallet_topup") {
    throw new HttpError(
      400,
      "invalid_request",
      "purpose: the wallet pays for a plan or a product; a top-up needs a gateway",
    );
  }
  const key = optionalIdempotencyKey(rawKey);
  // The same normalized request hash as a gateway order's, so one key cannot name both.
  const requestHash = orderRequestHash(body);
  const { result, balance } = await asUser(app.sql, caller, async (tx) => {
    const [r] = await tx`select settle.pay_order_from_wallet(${body.purpose},
      ${body.plan_id ?? null}, ${body.product_id ?? null}, ${body.account_id ?? null}, ${key},
      ${requestHash}) as result`;
    const paid = r.result as { order: OrderRow; replayed: boolean };
    const [w] = await tx`select balance from public.wallets
      where account_id = ${paid.order.account_id} and currency = ${paid.order.currency}`;
    return { result: paid, balance: w ? minorFromDb(w.balance) : 0 };
  });
  const order = result.order;
  return {
    status: result.replayed ? 200 : 201,
    body: {
      order: publicOrder(order),
      wallet: { currency: order.currency, balance },
    },
  };
}
