// Wraps a function's logic with CORS, error mapping, rate limits and one JSON log line per request.
import type { App } from "./app.ts";
import type { Caller } from "./auth.ts";
import { checkCors, corsHeaders, errorResponse } from "./http.ts";
import { clientIp, type ConnInfo, takeRateLimit } from "./ratelimit.ts";

export type Handler = (req: Request, info?: ConnInfo) => Promise<Response>;

/**
 * What a handler may add to its request's log line. A closed list on purpose: ids and names
 * only, never tokens, signatures, card data or bodies.
 */
export type LogFields = {
  user_id?: string;
  order_id?: string | null;
  refund_id?: string | null;
  gateway?: string;
  event_type?: string;
  event_id?: string;
  outcome?: string;
};

export interface RequestContext {
  requestId: string;
  /** Filled by the handler and its services; written with the request's log line. */
  log: LogFields;
  /**
   * Verifies the caller's JWT and, for a rate-limited function, takes the request's token
   * (429 when spent). Handlers of rate-limited functions must authenticate through this.
   */
  authenticate(): Promise<Caller>;
}

export interface ServeOptions {
  /** Answer preflights and refuse unknown origins (default); webhooks turn it off. */
  cors?: boolean;
  /** Limit requests per user and per client IP under this scope (shared/ratelimit.ts). */
  rateLimit?: { scope: string };
}

// An incoming id is kept if it is a plain token (a proxy's or a client's trace id), else replaced.
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;

export function serveFunction(
  name: string,
  app: App,
  fn: (req: Request, ctx: RequestContext) => Promise<Response>,
  opts: ServeOptions = {},
): Handler {
  const cors = opts.cors !== false;
  return async (req, info) => {
    const started = performance.now();
    const incoming = req.headers.get("x-request-id");
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    const corsOut = cors ? corsHeaders(req, app.config.allowedOrigins) : {};
    const log: LogFields = {};
    let authenticated: Promise<Caller> | undefined;
    let limited = false;
    const ctx: RequestContext = {
      requestId,
      log,
      authenticate: () =>
        authenticated ??= (async () => {
          const caller = await app.authenticate(req);
          if (caller.userId) log.user_id = caller.userId;
          if (opts.rateLimit) {
            await takeRateLimit(
              app,
              opts.rateLimit.scope,
              caller,
              clientIp(req, info, app.config.rateLimit.trustedProxyHeader),
            );
            limited = true;
          }
          return caller;
        })(),
    };
    let res: Response;
    try {
      const preflight = cors ? checkCors(req, app.config.allowedOrigins) : undefined;
      if (preflight) {
        res = preflight;
      } else {
        res = await fn(req, ctx);
        if (opts.rateLimit && !limited && res.status < 400) {
          // A rate-limited function answered without authenticating through ctx: a bug that
          // would bypass the limit, so fail closed.
          throw new Error(`${name} answered without taking a rate-limit token`);
        }
      }
      for (const [k, v] of Object.entries(corsOut)) res.headers.set(k, v);
    } catch (err) {
      res = errorResponse(err, corsOut);
    }
    res.headers.set("x-request-id", requestId);
    if (!app.config.logRequests && res.status < 500) return res;
    const line: Record<string, unknown> = {
      level: res.status >= 500 ? "error" : "info",
      request_id: requestId,
      function: name,
      method: req.method,
      status: res.status,
      duration_ms: Math.round(performance.now() - started),
    };
    if (res.status >= 400) line.code = await errorCode(res);
    console.log(JSON.stringify({ ...line, ...log }));
    return res;
  };
}

/** The contract's error code from an error response (a small JSON body; read from a copy). */
async function errorCode(res: Response): Promise<string | null> {
  try {
    const body = await res.clone().json();
    return typeof body?.error?.code === "string" ? body.error.code : null;
  } catch {
    return null;
  }
}
