// POST /refunds (an owner of the order's account, or the service role): full or partial refund.
// GET /refunds?order_id=: the order's refunds, for its account's members.
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { HttpError, json, readJsonObject, requireMethod, subpath } from "../../../shared/http.ts";
import { createRefund, listRefunds } from "../../../shared/services/refunds.ts";

export function handler(app: App) {
  return serveFunction("refunds", app, async (req, ctx) => {
    if (subpath(req, "refunds").length !== 0) {
      throw new HttpError(404, "not_found", "no such refunds route");
    }
    requireMethod(req, "GET", "POST");
    const caller = await ctx.authenticate();
    if (req.method === "GET") {
      return json(200, await listRefunds(app, caller, new URL(req.url).searchParams));
    }
    const body = await readJsonObject(req);
    // Logged only once it has an id's shape: the log never carries what a client typed.
    if (typeof body.order_id === "string" && /^[0-9a-f-]{36}$/i.test(body.order_id)) {
      ctx.log.order_id = body.order_id;
    }
    const result = await createRefund(app, caller, body, req.headers.get("idempotency-key"));
    const out = result.body as { refund: { id: string; gateway: string } };
    ctx.log.refund_id = out.refund.id;
    ctx.log.gateway = out.refund.gateway;
    return json(result.status, result.body);
  }, { rateLimit: { scope: "refunds" } });
}
