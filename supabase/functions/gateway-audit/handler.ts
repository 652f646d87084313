// POST /gateway-audit (service role): compares the gateways' own payments and refunds in a time
// window with settle's orders, refunds and ledger, and stores every discrepancy once. Called
// hourly by pg_cron (Supabase) or the dev timer; an operator may run it for any window.
import { z } from "zod";
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { requireServiceRole } from "../../../shared/auth.ts";
import { json, readOptionalJsonObject, requireMethod } from "../../../shared/http.ts";
import { gatewayAudit, MAX_WINDOW_SECONDS } from "../../../shared/services/gateway_audit.ts";

const unixSeconds = z.number().int("must be an integer").min(0).max(2 ** 31 - 1);

const auditBody = z.object({
  from: unixSeconds.optional(),
  to: unixSeconds.optional(),
  account_ids: z.array(z.uuid("must be a uuid")).min(1).max(1000).optional(),
}).strict()
  .refine((b) => b.from === undefined || b.to === undefined || b.from <= b.to, {
    message: "from must not be after to",
    path: ["from"],
  })
  .refine((b) => b.to === undefined || b.from !== undefined, {
    message: "to needs a from",
    path: ["to"],
  })
  .refine(
    (b) =>
      b.from === undefined ||
      (b.to ?? Math.floor(Date.now() / 1000)) - b.from <= MAX_WINDOW_SECONDS,
    { message: `the window may span at most ${MAX_WINDOW_SECONDS} seconds`, path: ["from"] },
  );

export function handler(app: App) {
  return serveFunction("gateway-audit", app, async (req, ctx) => {
    requireMethod(req, "POST");
    requireServiceRole(
      await ctx.authenticate(),
      "only the service role may run the gateway audit",
    );
    // The body is optional: a bare POST audits the default window.
    const body = auditBody.parse(await readOptionalJsonObject(req));
    return json(
      200,
      await gatewayAudit(app, { from: body.from, to: body.to, accountIds: body.account_ids }),
    );
  }, { cors: false });
}
