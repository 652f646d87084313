// GET /subscriptions[?account_id=]: the account's subscription and entitlement.
// POST /subscriptions/cancel {account_id?, at_period_end?}: an owner (or the service role) cancels.
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import {
  HttpError,
  json,
  readOptionalJsonObject,
  requireMethod,
  subpath,
} from "../../../shared/http.ts";
import { cancelSubscription, getSubscription } from "../../../shared/services/subscriptions.ts";

export function handler(app: App) {
  return serveFunction("subscriptions", app, async (req, ctx) => {
    const path = subpath(req, "subscriptions");
    if (path.length === 0) {
      requireMethod(req, "GET");
      const caller = await ctx.authenticate();
      return json(200, await getSubscription(app, caller, new URL(req.url).searchParams));
    }
    if (path.length === 1 && path[0] === "cancel") {
      requireMethod(req, "POST");
      const caller = await ctx.authenticate();
      // The body is optional: a bare POST cancels the caller's personal account's subscription.
      return json(200, await cancelSubscription(app, caller, await readOptionalJsonObject(req)));
    }
    throw new HttpError(404, "not_found", "no such subscriptions route");
  }, { rateLimit: { scope: "subscriptions" } });
}
