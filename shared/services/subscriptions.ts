// Subscriptions: read the account's subscription; cancel it at the period's end or at once.
// Buying a plan (create-order with purpose "plan") is what starts or extends one; the database
// does that when the order is paid.
import { z } from "zod";
import type { App } from "../app.ts";
import type { Caller } from "../auth.ts";
import { asUser, type Tx } from "../db.ts";
import { HttpError } from "../http.ts";

interface SubscriptionRow {
  id: string;
  account_id: string;
  plan_id: string;
  status: "active" | "past_due" | "canceled";
  current_period_start: string | Date;
  current_period_end: string | Date;
  cancel_at_period_end: boolean;
  canceled_at: string | Date | null;
}

const accountId = z.uuid({ error: "account_id must be a uuid" });

export const cancelBody = z.object({
  account_id: accountId.optional(),
  at_period_end: z.boolean().optional(),
}).strict();

export function publicSubscription(r: SubscriptionRow) {
  const iso = (v: string | Date | null) => v === null ? null : new Date(v).toISOString();
  return {
    id: r.id,
    account_id: r.account_id,
    plan_id: r.plan_id,
    status: r.status,
    current_period_start: iso(r.current_period_start),
    current_period_end: iso(r.current_period_end),
    cancel_at_period_end: r.cancel_at_period_end,
    canceled_at: iso(r.canceled_at),
  };
}

async function accountFor(tx: Tx, caller: Caller, id: string | undefined): Promise<string> {
  const [row] = id
    ? await tx`select id from public.accounts where id = ${id}`
    : caller.userId
    ? await tx`select id from public.accounts where personal_owner_id = ${caller.userId}`
    : [];
  if (!row) throw new HttpError(404, "not_found", "account not found");
  return row.id;
}

/** GET /subscriptions[?account_id=]: the account's subscription and entitlement. */
export async function getSubscription(app: App, caller: Caller, params: URLSearchParams) {
  const id = accountId.optional().parse(params.get("account_id") ?? undefined);
  if (!id && !caller.userId) {
    throw new HttpError(400, "invalid_request", "account_id is required for the service role");
  }
  return await asUser(app.sql, caller, async (tx) => {
    const account = await accountFor(tx, caller, id);
    const [entitlement] = await tx`select plan, is_pro, entitlement_ends_at from public.accounts
                                   where id = ${account}`;
    const [sub] = await tx<SubscriptionRow[]>`select * from public.subscriptions
                                              where account_id = ${account}`;
    return {
      account_id: account,
      plan: entitlement.plan,
      is_pro: entitlement.is_pro,
      entitlement_ends_at: entitlement.entitlement_ends_at
        ? new Date(entitlement.entitlement_ends_at).toISOString()
        : null,
      subscription: sub ? publicSubscription(sub) : null,
    };
  });
}

/** POST /subscriptions/cancel: by default at the period's end (entitled until then). */
export async function cancelSubscription(app: App, caller: Caller, body: Record<string, unknown>) {
  const input = cancelBody.parse(body);
  if (!input.account_id && !caller.userId) {
    throw new HttpError(400, "invalid_request", "account_id is required for the service role");
  }
  const row = await asUser(app.sql, caller, async (tx) => {
    const account = input.account_id ??
      (await accountFor(tx, caller, undefined));
    const [r] = await tx`select settle.cancel_subscription(${account},
      ${input.at_period_end ?? true}) as result`;
    return r.result as SubscriptionRow;
  });
  return { subscription: publicSubscription(row) };
}
