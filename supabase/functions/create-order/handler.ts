// POST /create-order: a local order first, then the gateway's; returns what checkout needs.
import type { App } from "../../../shared/app.ts";
import { requireUser } from "../../../shared/auth.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { json, readJsonObject, requireMethod } from "../../../shared/http.ts";
import { createOrder, createOrderBody } from "../../../shared/services/orders.ts";

export function handler(app: App) {
  return serveFunction("create-order", app, async (req) => {
    requireMethod(req, "POST");
    const caller = requireUser(await app.authenticate(req));
    const body = createOrderBody.parse(await readJsonObject(req));
    const result = await createOrder(app, caller, body, req.headers.get("idempotency-key"));
    return json(result.status, result.body);
  });
}
