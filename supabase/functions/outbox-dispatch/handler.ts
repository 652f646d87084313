// POST /outbox-dispatch (service role): delivers due outbox events to their subscribers.
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import { HttpError, json, requireMethod } from "../../../shared/http.ts";
import { dispatchOutbox, readDispatchRequest } from "../../../shared/services/outbox.ts";

export function handler(app: App) {
  return serveFunction("outbox-dispatch", app, async (req) => {
    requireMethod(req, "POST");
    const caller = await app.authenticate(req);
    if (caller.role !== "service_role") {
      throw new HttpError(403, "forbidden", "only the service role may dispatch the outbox");
    }
    return json(200, await dispatchOutbox(app, await readDispatchRequest(req)));
  });
}
