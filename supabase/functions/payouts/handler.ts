// POST /payouts (owner, optional Idempotency-Key): money out of a wallet to a payout account.
// GET /payouts and GET /payouts/{id}: the payouts the caller may read (members, RLS).
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { HttpError, json, readJsonObject, requireMethod, subpath } from "../../../shared/http.ts";
import { createPayout, getPayout, listPayouts } from "../../../shared/services/payouts.ts";

export function handler(app: App) {
  return serveFunction("payouts", app, async (req, ctx) => {
    const path = subpath(req, "payouts");
    if (path.length === 0) {
      requireMethod(req, "GET", "POST");
      const caller = await ctx.authenticate();
      if (req.method === "GET") {
        return json(200, await listPayouts(app, caller, new URL(req.url).searchParams));
      }
      const key = req.headers.get("idempotency-key");
      const result = await createPayout(app, caller, await readJsonObject(req), key);
      return json(result.status, result.body);
    }
    if (path.length === 1) {
      requireMethod(req, "GET");
      return json(200, await getPayout(app, await ctx.authenticate(), path[0]));
    }
    throw new HttpError(404, "not_found", "no such payouts route");
  }, { rateLimit: { scope: "payouts" } });
}
