// POST /escrow-settle (service role): settles completed engagements whose hold has passed, in
// batches claimed with SKIP LOCKED, and refunds what is owed to payers. Called every minute by
// pg_cron (Supabase) or the dev timer.
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { json, readOptionalJsonObject, requireMethod } from "../../../shared/http.ts";
import { escrowSettle } from "../../../shared/services/engagements.ts";

export function handler(app: App) {
  return serveFunction("escrow-settle", app, async (req, ctx) => {
    requireMethod(req, "POST");
    const caller = await ctx.authenticate();
    // The body is optional: a bare POST settles with the default batch size.
    return json(200, await escrowSettle(app, caller, await readOptionalJsonObject(req)));
  }, { cors: false });
}
