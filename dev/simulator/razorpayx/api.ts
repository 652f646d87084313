// The /v1 pipeline, the same for every resource: Basic auth with the key pair, then dispatch
// through the route table (faults are applied around it by mod.ts).
import type { Router } from "../common/mod.ts";
import { notFoundUrl, unauthorized } from "./errors.ts";
import type { Handler, RazorpayXState } from "./state.ts";

export async function handleApi(
  s: RazorpayXState,
  routes: Router<Handler>,
  req: Request,
  url: URL,
  path: string,
): Promise<Response> {
  if (req.headers.get("authorization") !== s.expectedAuth) return unauthorized();
  const match = routes.match(req.method.toUpperCase(), path);
  if (!match) return notFoundUrl();
  return await match.handler(s, { req, url, ids: match.ids });
}
