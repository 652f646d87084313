// POST /verify: checks the gateway's proof of payment and marks the caller's order paid.
import type { App } from "../../../shared/app.ts";
import { requireUser } from "../../../shared/auth.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { json, readJsonObject, requireMethod } from "../../../shared/http.ts";
import { verifyPayment } from "../../../shared/services/orders.ts";

export function handler(app: App) {
  return serveFunction("verify", app, async (req, ctx) => {
    requireMethod(req, "POST");
    const caller = requireUser(await ctx.authenticate());
    const result = await verifyPayment(app, caller, await readJsonObject(req));
    ctx.log.order_id = result.order.id;
    ctx.log.gateway = result.order.gateway;
    return json(200, result);
  }, { rateLimit: { scope: "verify" } });
}
