// POST /webhook/{razorpay|stripe|razorpayx|stripe-connect}: no JWT, the gateway's signature on
// the raw body is the auth.
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { HttpError, json, requireMethod, subpath } from "../../../shared/http.ts";
import { ingestWebhook } from "../../../shared/services/webhooks.ts";
import { ingestPayoutWebhook } from "../../../shared/services/payouts.ts";

export function handler(app: App) {
  return serveFunction("webhook", app, async (req, ctx) => {
    const [gateway, ...rest] = subpath(req, "webhook");
    if (!gateway || rest.length) throw new HttpError(404, "not_found", "POST /webhook/{gateway}");
    requireMethod(req, "POST");
    // Payout gateways have their own endpoints, secrets and ingest (shared/services/payouts.ts).
    if (gateway === "razorpayx" || gateway === "stripe-connect") {
      return json(200, await ingestPayoutWebhook(app, gateway, req, ctx.log));
    }
    return json(200, await ingestWebhook(app, gateway, req, ctx.log));
  }, { cors: false });
}
