// /payment-methods: list, POST /setup, POST /{id}/default, DELETE /{id} (Stripe saved cards).
import type { App } from "../../../shared/app.ts";
import { requireUser } from "../../../shared/auth.ts";
import { serveFunction } from "../../../shared/handler.ts";
import {
  HttpError,
  json,
  readOptionalJsonObject,
  requireMethod,
  subpath,
} from "../../../shared/http.ts";
import {
  listMethods,
  makeDefault,
  removeMethod,
  setupMethod,
} from "../../../shared/services/payment_methods.ts";

export function handler(app: App) {
  return serveFunction("payment-methods", app, async (req, ctx) => {
    const path = subpath(req, "payment-methods");
    const account = new URL(req.url).searchParams.get("account_id") ?? undefined;
    if (path.length === 0) {
      requireMethod(req, "GET");
      const caller = requireUser(await ctx.authenticate());
      return json(200, await listMethods(app, caller, account));
    }
    if (path.length === 1 && path[0] === "setup") {
      requireMethod(req, "POST");
      const caller = requireUser(await ctx.authenticate());
      // The body is optional: a bare POST (no type, no length) means "no options".
      const body = await readOptionalJsonObject(req);
      const accountId = body.account_id ?? account;
      if (accountId !== undefined && typeof accountId !== "string") {
        throw new HttpError(400, "invalid_request", "account_id must be a uuid");
      }
      return json(200, await setupMethod(app, caller, accountId));
    }
    if (path.length === 2 && path[1] === "default") {
      requireMethod(req, "POST");
      const caller = requireUser(await ctx.authenticate());
      return json(200, await makeDefault(app, caller, path[0]));
    }
    if (path.length === 1) {
      requireMethod(req, "DELETE");
      const caller = requireUser(await ctx.authenticate());
      return json(200, await removeMethod(app, caller, path[0]));
    }
    throw new HttpError(404, "not_found", "no such payment-methods route");
  }, { rateLimit: { scope: "payment-methods" } });
}
