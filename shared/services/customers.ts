// One gateway customer per account and gateway, created on first need and remembered.
import type { App } from "../app.ts";
import type { PaymentGateway } from "../gateways/types.ts";

/**
 * The account's customer at a gateway that has customers (PaymentGateway.createCustomer;
 * Stripe by default). Concurrent first requests both ask the gateway with the same idempotency
 * key (derived from the account id), get the same customer, and the insert keeps one row.
 */
export async function ensureCustomer(
  app: App,
  accountId: string,
  gateway: Pick<PaymentGateway, "name" | "createCustomer"> = app.stripe(),
): Promise<string> {
  const [known] = await app.sql`select customer_id from public.gateway_customers
    where account_id = ${accountId} and gateway = ${gateway.name}`;
  if (known) return known.customer_id;
  if (!gateway.createCustomer) throw new Error(`${gateway.name} has no customers`);
  const customerId = await gateway.createCustomer(accountId);
  await app.sql`insert into public.gateway_customers (account_id, gateway, customer_id)
    values (${accountId}, ${gateway.name}, ${customerId}) on conflict do nothing`;
  const [row] = await app.sql`select customer_id from public.gateway_customers
    where account_id = ${accountId} and gateway = ${gateway.name}`;
  return row.customer_id;
}
