// Saved cards (the gateway with savedCards: Stripe): list through RLS, set up, make default,
// delete.
import { z } from "zod";
import type { App } from "../app.ts";
import type { Caller } from "../auth.ts";
import { asUser } from "../db.ts";
import { HttpError } from "../http.ts";
import type { GatewayName, SavedCards } from "../gateways/types.ts";
import { type CustomerGateway, customerGateway, ensureCustomer } from "./customers.ts";

interface MethodRow {
  id: string;
  account_id: string;
  gateway: GatewayName;
  gateway_payment_method_id: string;
  brand: string | null;
  last4: string | null;
  exp_month: number | null;
  exp_year: number | null;
  is_default: boolean;
}

const uuid = z.uuid({ error: "must be a payment method id (uuid)" });
const accountQuery = z.uuid({ error: "account_id must be a uuid" }).optional();

function publicMethod(r: MethodRow) {
  return {
    id: r.id,
    gateway: r.gateway,
    brand: r.brand,
    last4: r.last4,
    exp_month: r.exp_month,
    exp_year: r.exp_year,
    is_default: r.is_default,
  };
}

/** The account the caller acts for: the given one if they are a member, else 404. */
async function memberAccount(app: App, caller: Caller, accountId?: string): Promise<string> {
  const id = accountQuery.parse(accountId);
  const [row] = await asUser(
    app.sql,
    caller,
    (tx) =>
      id
        ? tx`select id from public.accounts where id = ${id}`
        : tx`select id from public.accounts where personal_owner_id = ${caller.userId!}`,
  );
  if (!row) throw new HttpError(404, "not_found", "account not found");
  return row.id;
}

export async function listMethods(app: App, caller: Caller, accountId?: string) {
  const account = await memberAccount(app, caller, accountId);
  const rows = await asUser(
    app.sql,
    caller,
    (tx) =>
      tx<MethodRow[]>`select * from public.payment_methods where account_id = ${account}
                    order by created_at, id`,
  );
  return { payment_methods: rows.map(publicMethod) };
}

type CardGateway = CustomerGateway & { readonly savedCards: SavedCards };

/** The gateway that keeps saved cards: the stored card's, or the configured one; 400 if none. */
function cardGateway(app: App, name?: GatewayName): CardGateway {
  const gateway = name ? app.gateway(name) : customerGateway(app);
  if (!gateway.savedCards || !gateway.createCustomer) {
    throw new HttpError(400, "invalid_request", `gateway ${gateway.name} keeps no saved cards`);
  }
  return gateway as CardGateway;
}

export async function setupMethod(app: App, caller: Caller, accountId?: string) {
  const account = await memberAccount(app, caller, accountId);
  const gateway = cardGateway(app);
  const customer = await ensureCustomer(app, account, gateway);
  const si = await gateway.savedCards.createSetupIntent(customer, account);
  return {
    setup_intent_id: si.id,
    client_secret: si.clientSecret,
    publishable_key: gateway.savedCards.publishableKey,
  };
}

/** A method of an account the caller belongs to (RLS), or 404 — also for other users' ids. */
async function ownMethod(app: App, caller: Caller, rawId: string): Promise<MethodRow> {
  const id = uuid.parse(rawId);
  const [row] = await asUser(
    app.sql,
    caller,
    (tx) => tx<MethodRow[]>`select * from public.payment_methods where id = ${id}`,
  );
  if (!row) throw new HttpError(404, "not_found", "payment method not found");
  return row;
}

export async function makeDefault(app: App, caller: Caller, rawId: string) {
  const method = await ownMethod(app, caller, rawId);
  const gateway = cardGateway(app, method.gateway);
  const customer = await ensureCustomer(app, method.account_id, gateway);
  // The gateway first: if it refuses, nothing changes locally.
  await gateway.savedCards.setDefaultPaymentMethod(customer, method.gateway_payment_method_id);
  await app.sql`select settle.set_default_payment_method(${method.gateway_payment_method_id})`;
  return await listMethods(app, caller, method.account_id);
}

export async function removeMethod(app: App, caller: Caller, rawId: string) {
  const method = await ownMethod(app, caller, rawId);
  await cardGateway(app, method.gateway).savedCards.detachPaymentMethod(
    method.gateway_payment_method_id,
  );
  await app.sql`select settle.remove_payment_method(${method.gateway_payment_method_id})`;
  return { deleted: true, ...(await listMethods(app, caller, method.account_id)) };
}
