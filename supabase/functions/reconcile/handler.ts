// POST /reconcile (service role): converges stuck orders with the gateway, expires unpaid ones and
// retries failed webhook events. Called every minute by pg_cron (Supabase) or the dev timer.
import { z } from "zod";
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { HttpError, json, readJsonObject, requireMethod } from "../../../shared/http.ts";
import { reconcile } from "../../../shared/services/reconcile.ts";

const reconcileBody = z.object({
  limit: z.number().int("must be an integer").min(1).max(1000).optional(),
  older_than_seconds: z.number().int("must be an integer").min(0).max(365 * 24 * 3600)
    .optional(),
}).strict();

export function handler(app: App) {
  return serveFunction("reconcile", app, async (req, ctx) => {
    requireMethod(req, "POST");
    const caller = await ctx.authenticate();
    if (caller.role !== "service_role") {
      throw new HttpError(403, "forbidden", "only the service role may run reconciliation");
    }
    // The body is optional: a bare POST runs with the configured settings.
    const sent = req.headers.has("content-type") ||
      (req.headers.get("content-length") ?? "0") !== "0";
    const body = reconcileBody.parse(sent ? await readJsonObject(req) : {});
    return json(
      200,
      await reconcile(app, { limit: body.limit, olderThanSeconds: body.older_than_seconds }),
    );
  }, { cors: false });
}
