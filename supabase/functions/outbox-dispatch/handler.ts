// POST /outbox-dispatch (service role): delivers due outbox events to their subscribers.
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { requireServiceRole } from "../../../shared/auth.ts";
import { json, readOptionalJsonObject, requireMethod } from "../../../shared/http.ts";
import { dispatchOutbox, DispatchRequest } from "../../../shared/services/outbox.ts";

export function handler(app: App) {
  return serveFunction("outbox-dispatch", app, async (req) => {
    requireMethod(req, "POST");
    requireServiceRole(
      await app.authenticate(req),
      "only the service role may dispatch the outbox",
    );
    const body = DispatchRequest.parse(await readOptionalJsonObject(req));
    return json(200, await dispatchOutbox(app, body));
  });
}
