// One gateway customer per account, created on first need and remembered.
import type { App } from "../app.ts";

/**
 * Concurrent first requests both ask Stripe with the same idempotency key (derived from the
 * account id), get the same customer, and the insert keeps one row.
 */
export async function ensureCustomer(app: App, accountId: string): Promise<string> {
  const [known] = await app.sql`select customer_id from public.gateway_customers
    where account_id = ${accountId} and gateway = 'stripe'`;
  if (known) return known.customer_id;
  const customerId = await app.stripe().createCustomer(accountId);
  await app.sql`insert into public.gateway_customers (account_id, gateway, customer_id)
    values (${accountId}, 'stripe', ${customerId}) on conflict do nothing`;
  const [row] = await app.sql`select customer_id from public.gateway_customers
    where account_id = ${accountId} and gateway = 'stripe'`;
  return row.customer_id;
}
