// The API pipeline (/v1/oauth2/token, /v2/...): the token endpoint, then bearer auth, the JSON
// body, dispatch; a bad body is PayPal's 400, a crash a 500.
import type { Router } from "../common/mod.ts";
import { invalidRequest, jsonResponse, serverError, unauthorized } from "./errors.ts";
import { authorized } from "./oauth.ts";
import { BadBody, parseJson, requestIdOf } from "./params.ts";
import type { Handler, PayPalState } from "./state.ts";

/** The token endpoint takes a form, read by its handler; everything else JSON. */
const TOKEN_PATH = "/v1/oauth2/token";

export async function handleApi(
  s: PayPalState,
  routes: Router<Handler>,
  req: Request,
  path: string,
): Promise<Response> {
  const m = routes.match(req.method.toUpperCase(), path);
  if (!m) return jsonResponse(404, { name: "NOT_FOUND", message: `no route ${path}` });
  if (path !== TOKEN_PATH && !authorized(s, req)) return unauthorized();
  try {
    const raw = req.method === "GET" || path === TOKEN_PATH ? "" : await req.text();
    const body = parseJson(raw);
    return await m.handler(s, { req, ids: m.ids, requestId: requestIdOf(req), body, raw });
  } catch (e) {
    if (e instanceof BadBody) return invalidRequest("MALFORMED_REQUEST_JSON", e.message);
    console.error("paypal simulator: internal error", e);
    return serverError(500);
  }
}
