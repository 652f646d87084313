// One gateway customer per account, created on first need and remembered.
import type { App } from "../app.ts";
import { HttpError } from "../http.ts";
import type { GatewayCustomers, PaymentGateway } from "../gateways/types.ts";

/** A gateway with customers (GatewayCustomers). */
export type CustomerGateway = PaymentGateway & Required<GatewayCustomers>;

/** The configured gateway that keeps customers (Stripe); 400 when none is configured. */
export function customerGateway(app: App): CustomerGateway {
  for (const name of app.configuredGateways()) {
    const gateway = app.gateway(name);
    if (gateway.createCustomer) return gateway as CustomerGateway;
  }
  throw new HttpError(400, "invalid_request", "no configured gateway keeps customers");
}

/**
 * Concurrent first requests both ask the gateway with the same idempotency key (derived from the
 * account id), get the same customer, and the insert keeps one row.
 */
export async function ensureCustomer(
  app: App,
  accountId: string,
  gateway: CustomerGateway = customerGateway(app),
): Promise<string> {
  const [known] = await app.sql`select customer_id from public.gateway_customers
    where account_id = ${accountId} and gateway = ${gateway.name}`;
  if (known) return known.customer_id;
  const customerId = await gateway.createCustomer(accountId);
  await app.sql`insert into public.gateway_customers (account_id, gateway, customer_id)
    values (${accountId}, ${gateway.name}, ${customerId}) on conflict do nothing`;
  const [row] = await app.sql`select customer_id from public.gateway_customers
    where account_id = ${accountId} and gateway = ${gateway.name}`;
  return row.customer_id;
}
