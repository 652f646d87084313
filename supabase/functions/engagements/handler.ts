// POST /engagements (payer's JWT): an engagement awaiting payment. GET /engagements and
// GET /engagements/{id}: members of the payer or payee account. POST /engagements/{id}/complete
// | /dispute | /cancel (the parties, as the SQL functions allow) and /resolve (service role).
import type { App } from "../../../shared/app.ts";
import { serveFunction } from "../../../shared/handler.ts";
import {
  HttpError,
  json,
  readJsonObject,
  readOptionalJsonObject,
  requireMethod,
  subpath,
} from "../../../shared/http.ts";
import {
  createEngagement,
  engagementAction,
  getEngagement,
  listEngagements,
} from "../../../shared/services/engagements.ts";

const ACTIONS = ["complete", "dispute", "cancel", "resolve"] as const;
type Action = typeof ACTIONS[number];

export function handler(app: App) {
  return serveFunction("engagements", app, async (req, ctx) => {
    const path = subpath(req, "engagements");
    if (path.length === 0) {
      requireMethod(req, "GET", "POST");
      const caller = await ctx.authenticate();
      if (req.method === "GET") {
        return json(200, await listEngagements(app, caller, new URL(req.url).searchParams));
      }
      const key = req.headers.get("idempotency-key");
      const result = await createEngagement(app, caller, await readJsonObject(req), key);
      return json(result.status, result.body);
    }
    if (path.length === 1) {
      requireMethod(req, "GET");
      return json(200, await getEngagement(app, await ctx.authenticate(), path[0]));
    }
    if (path.length === 2 && (ACTIONS as readonly string[]).includes(path[1])) {
      requireMethod(req, "POST");
      const caller = await ctx.authenticate();
      // cancel takes no body; the others need theirs (a bare POST is {} and fails validation).
      const body = await readOptionalJsonObject(req);
      return json(200, await engagementAction(app, caller, path[0], path[1] as Action, body));
    }
    throw new HttpError(404, "not_found", "no such engagements route");
  }, { rateLimit: { scope: "engagements" } });
}
