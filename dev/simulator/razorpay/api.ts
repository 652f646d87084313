// The /v1 pipeline, the same for every resource: Basic auth with the key pair, dispatch through the
// route table, bad bodies as Razorpay's 400 and anything unexpected as its 500.
import type { Router } from "../common/mod.ts";
import { BadBody, errorResponse, invalid, notFoundUrl, serverError } from "./errors.ts";
import type { Handler, RazorpayState } from "./state.ts";

export async function handleApi(
  s: RazorpayState,
  routes: Router<Handler>,
  req: Request,
  url: URL,
  path: string,
): Promise<Response> {
  if (req.headers.get("authorization") !== s.expectedAuth) {
    return errorResponse(401, "The api key provided is invalid");
  }
  try {
    const match = routes.match(req.method.toUpperCase(), path);
    if (!match) return notFoundUrl();
    return await match.handler(s, { req, url, ids: match.ids });
  } catch (e) {
    if (e instanceof BadBody) return invalid(e.message);
    console.error("razorpay simulator: internal error", e);
    return serverError(500);
  }
}
