// POST /webhook/{razorpay|stripe}: no JWT, the gateway's signature on the raw body is the auth.
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { HttpError, json, requireMethod, subpath } from "../../../shared/http.ts";
import { ingestWebhook } from "../../../shared/services/webhooks.ts";

export function handler(app: App) {
  return serveFunction("webhook", app, async (req, ctx) => {
    const [gateway, ...rest] = subpath(req, "webhook");
    if (!gateway || rest.length) throw new HttpError(404, "not_found", "POST /webhook/{gateway}");
    requireMethod(req, "POST");
    return json(200, await ingestWebhook(app, gateway, req, ctx.log));
  }, { cors: false });
}
