// POST /payout-accounts (owner): a RazorpayX bank account or UPI address, or a Stripe Connect
// account (with its onboarding link). GET /payout-accounts: the caller's (RLS).
// DELETE /payout-accounts/{id} (owner): disables one. POST /payout-accounts/{id}/onboarding
// (owner): a fresh Stripe onboarding link for an account still onboarding.
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { HttpError, json, readJsonObject, requireMethod, subpath } from "../../../shared/http.ts";
import {
  createPayoutAccount,
  disablePayoutAccount,
  listPayoutAccounts,
  onboardingLink,
} from "../../../shared/services/payouts.ts";

export function handler(app: App) {
  return serveFunction("payout-accounts", app, async (req, ctx) => {
    const path = subpath(req, "payout-accounts");
    if (path.length === 0) {
      requireMethod(req, "GET", "POST");
      const caller = await ctx.authenticate();
      if (req.method === "GET") return json(200, await listPayoutAccounts(app, caller));
      const origin = new URL(req.url).origin;
      return json(201, await createPayoutAccount(app, caller, await readJsonObject(req), origin));
    }
    if (path.length === 1) {
      requireMethod(req, "DELETE");
      return json(200, await disablePayoutAccount(app, await ctx.authenticate(), path[0]));
    }
    if (path.length === 2 && path[1] === "onboarding") {
      requireMethod(req, "POST");
      const caller = await ctx.authenticate();
      return json(200, await onboardingLink(app, caller, path[0], new URL(req.url).origin));
    }
    throw new HttpError(404, "not_found", "no such payout-accounts route");
  }, { rateLimit: { scope: "payout-accounts" } });
}
