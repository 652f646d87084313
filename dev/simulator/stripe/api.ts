// The /v1 pipeline, the same for every resource: authenticate, read parameters, replay or run
// under the Idempotency-Key, dispatch through the route table, expand, schedule the call's webhooks.
import type { Router } from "../common/mod.ts";
import { authenticate, publishableRoute } from "./auth.ts";
import { ApiError, errorBody, jsonResponse, unrecognizedUrl } from "./errors.ts";
import { STRIPE_API_VERSION } from "./events.ts";
import { type KeyedRequest, remember, replayOrReject } from "./idempotency.ts";
import { expand } from "./lists.ts";
import { expandPaths, type Params, readParams } from "./params.ts";
import type { ApiHandler, Auth, Ctx, Res, StripeState } from "./state.ts";

export async function handleApi(
  s: StripeState,
  routes: Router<ApiHandler>,
  req: Request,
  url: URL,
  path: string,
  requestId: string,
): Promise<Response> {
  const headers = { "stripe-version": STRIPE_API_VERSION };
  const fail = (e: ApiError) =>
    jsonResponse(e.status, errorBody(e.fields, requestId, s.unix()), headers);
  const method = req.method.toUpperCase();
  const auth = authenticate(s, req.headers.get("authorization"));
  if (auth instanceof ApiError) return fail(auth);

  let params: Params;
  try {
    params = await readParams(req, url, method);
  } catch (e) {
    if (e instanceof ApiError) return fail(e);
    throw e;
  }

  const key = method === "POST" ? req.headers.get("idempotency-key") : null;
  const keyed: KeyedRequest | null = key === null
    ? null
    : { key, scopedKey: `${auth.key}\n${key}`, method, path, params };
  if (keyed) {
    const early = replayOrReject(s, keyed, fail, headers);
    if (early) {
      record(s, method, path, key, early.headers.has("idempotent-replayed"), early.status);
      return early;
    }
  }

  const ctx: Ctx = {
    request: { id: requestId, idempotency_key: key },
    hooks: s.defaultWebhooks,
    events: [],
  };
  const { status, body } = run(s, routes, { method, path, params, auth, ctx });
  s.schedule(ctx.events, ctx.hooks);
  if (method === "POST") record(s, method, path, key, false, status);
  if (keyed) remember(s, keyed, status, body, requestId);
  return jsonResponse(
    status,
    body,
    key === null ? headers : { ...headers, "idempotency-key": key },
  );
}

function record(
  s: StripeState,
  method: string,
  path: string,
  key: string | null,
  replayed: boolean,
  status: number,
): void {
  s.requests.push({ method, path, idempotency_key: key, replayed, status });
}

interface Dispatch {
  method: string;
  path: string;
  params: Params;
  auth: Auth;
  ctx: Ctx;
}

/** The handler's answer serialized (expanded first), or the error it threw as Stripe's body. */
function run(s: StripeState, routes: Router<ApiHandler>, d: Dispatch): {
  status: number;
  body: string;
} {
  try {
    const paths = expandPaths(d.params);
    // Handlers are synchronous from here on, so two requests with one key cannot interleave
    // (Stripe's 409 idempotency_key_in_use has no counterpart here).
    const res = dispatch(s, routes, d);
    const out = res.status === 200 && paths.length > 0 ? expand(s, res.body, paths) : res.body;
    return { status: res.status, body: JSON.stringify(out) };
  } catch (e) {
    if (!(e instanceof ApiError)) console.error("stripe simulator: internal error", e);
    const err = e instanceof ApiError
      ? e
      : new ApiError(500, { type: "api_error", message: "An unknown error occurred." });
    return {
      status: err.status,
      body: JSON.stringify(errorBody(err.fields, d.ctx.request.id, s.unix())),
    };
  }
}

function dispatch(s: StripeState, routes: Router<ApiHandler>, d: Dispatch): Res {
  if (d.auth.kind === "publishable") return publishableRoute(s, d.method, d.path, d.params);
  const match = routes.match(d.method, d.path);
  if (!match) throw unrecognizedUrl(d.method, d.path);
  return match.handler(s, { ids: match.ids, params: d.params, ctx: d.ctx, path: d.path });
}
