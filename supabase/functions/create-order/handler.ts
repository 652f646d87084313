// POST /create-order: a local order first, then the gateway's; returns what checkout needs.
import type { App } from "../../../shared/app.ts";
import { requireUser } from "../../../shared/auth.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { json, readJsonObject, requireMethod } from "../../../shared/http.ts";
import { createOrder, createOrderBody } from "../../../shared/services/orders.ts";

export function handler(app: App) {
  return serveFunction("create-order", app, async (req, ctx) => {
    requireMethod(req, "POST");
    const caller = requireUser(await ctx.authenticate());
    const body = createOrderBody.parse(await readJsonObject(req));
    ctx.log.gateway = body.gateway;
    const result = await createOrder(app, caller, body, req.headers.get("idempotency-key"));
    ctx.log.order_id = (result.body as { order: { id: string } }).order.id;
    return json(result.status, result.body);
  }, { rateLimit: { scope: "create-order" } });
}
