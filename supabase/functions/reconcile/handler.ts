// POST /reconcile (service role): converges stuck orders with the gateway, expires unpaid ones and
// retries failed webhook events. Called every minute by pg_cron (Supabase) or the dev timer.
import { z } from "zod";
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { requireServiceRole } from "../../../shared/auth.ts";
import { json, readOptionalJsonObject, requireMethod } from "../../../shared/http.ts";
import { reconcile } from "../../../shared/services/reconcile.ts";

const reconcileBody = z.object({
  limit: z.number().int("must be an integer").min(1).max(1000).optional(),
  older_than_seconds: z.number().int("must be an integer").min(0).max(365 * 24 * 3600)
    .optional(),
}).strict();

export function handler(app: App) {
  return serveFunction("reconcile", app, async (req, ctx) => {
    requireMethod(req, "POST");
    requireServiceRole(await ctx.authenticate(), "only the service role may run reconciliation");
    // The body is optional: a bare POST runs with the configured settings.
    const body = reconcileBody.parse(await readOptionalJsonObject(req));
    return json(
      200,
      await reconcile(app, { limit: body.limit, olderThanSeconds: body.older_than_seconds }),
    );
  }, { cors: false });
}
