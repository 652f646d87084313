// POST /wallet-charges (service role, Idempotency-Key): charge or hold a wallet.
// POST /wallet-charges/{id}/capture | /void | /refund (service role). GET /wallet-charges and
// GET /wallet-charges/{id}: the charges the caller may read (members of the account, RLS).
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
  captureCharge,
  createCharge,
  getCharge,
  listCharges,
  refundCharge,
  voidCharge,
} from "../../../shared/services/wallet_charges.ts";

export function handler(app: App) {
  return serveFunction("wallet-charges", app, async (req, ctx) => {
    const path = subpath(req, "wallet-charges");
    const key = req.headers.get("idempotency-key");
    if (path.length === 0) {
      requireMethod(req, "GET", "POST");
      const caller = await ctx.authenticate();
      if (req.method === "GET") {
        return json(200, await listCharges(app, caller, new URL(req.url).searchParams));
      }
      const result = await createCharge(app, caller, await readJsonObject(req), key);
      return json(result.status, result.body);
    }
    if (path.length === 1) {
      requireMethod(req, "GET");
      return json(200, await getCharge(app, await ctx.authenticate(), path[0]));
    }
    if (path.length === 2 && ["capture", "void", "refund"].includes(path[1])) {
      requireMethod(req, "POST");
      const caller = await ctx.authenticate();
      // The body is optional on capture, void and refund: a bare POST means "no options".
      const body = await readOptionalJsonObject(req);
      if (path[1] === "capture") return json(200, await captureCharge(app, caller, path[0], body));
      if (path[1] === "void") {
        if (Object.keys(body).length > 0) {
          throw new HttpError(400, "invalid_request", "void takes no options");
        }
        return json(200, await voidCharge(app, caller, path[0]));
      }
      const result = await refundCharge(app, caller, path[0], body, key);
      return json(result.status, result.body);
    }
    throw new HttpError(404, "not_found", "no such wallet-charges route");
  }, { rateLimit: { scope: "wallet-charges" } });
}
