// Wraps a function's logic with CORS, error mapping and one structured log line per request.
import type { App } from "./app.ts";
import { checkCors, corsHeaders, errorResponse } from "./http.ts";

export type Handler = (req: Request) => Promise<Response>;

export function serveFunction(
  name: string,
  app: App,
  fn: (req: Request) => Promise<Response>,
  opts: { cors?: boolean } = { cors: true },
): Handler {
  return async (req) => {
    const started = performance.now();
    const requestId = req.headers.get("x-request-id")?.slice(0, 100) || crypto.randomUUID();
    const cors = opts.cors === false ? {} : corsHeaders(req, app.config.allowedOrigins);
    let res: Response;
    try {
      const preflight = opts.cors === false ? undefined : checkCors(req, app.config.allowedOrigins);
      res = preflight ?? await fn(req);
      for (const [k, v] of Object.entries(cors)) res.headers.set(k, v);
    } catch (err) {
      res = errorResponse(err, cors);
    }
    res.headers.set("x-request-id", requestId);
    if (!app.config.logRequests && res.status < 500) return res;
    console.log(JSON.stringify({
      level: "info",
      request_id: requestId,
      function: name,
      method: req.method,
      status: res.status,
      duration_ms: Math.round(performance.now() - started),
    }));
    return res;
  };
}
