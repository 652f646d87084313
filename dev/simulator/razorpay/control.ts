// The /_sim/razorpay control pipeline (CORS, errors) and the controls every simulator has
// (deliveries, faults, config). Resource-specific controls live in their resource's file;
// routes.ts lists them all.
import { readSimConfig, type Router } from "../common/mod.ts";
import { BadBody, invalid, jsonResponse, notFoundUrl, serverError } from "./errors.ts";
import { readBody } from "./params.ts";
import type { Call, Handler, RazorpayState } from "./state.ts";

export async function handleControl(
  s: RazorpayState,
  routes: Router<Handler>,
  req: Request,
  url: URL,
  path: string,
): Promise<Response> {
  if (req.method === "OPTIONS") {
    return new Response(null, {
      status: 204,
      headers: {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
        "access-control-allow-headers": req.headers.get("access-control-request-headers") ??
          "content-type",
        "access-control-max-age": "600",
      },
    });
  }
  let res: Response;
  try {
    res = await route(s, routes, req, url, path);
  } catch (e) {
    res = e instanceof BadBody ? invalid(e.message) : serverError(500);
    if (!(e instanceof BadBody)) console.error("razorpay simulator: internal error", e);
  }
  res.headers.set("access-control-allow-origin", "*");
  return res;
}

async function route(
  s: RazorpayState,
  routes: Router<Handler>,
  req: Request,
  url: URL,
  path: string,
): Promise<Response> {
  if (!path.startsWith("/_sim/razorpay")) return notFoundUrl();
  // Matched on what follows the first 3 segments, as "/_sim/razorpay/..." always was.
  const rest = path.split("/").slice(3);
  const match = routes.match(req.method.toUpperCase(), ["", "_sim", "razorpay", ...rest].join("/"));
  if (!match) return notFoundUrl();
  return await match.handler(s, { req, url, ids: match.ids });
}

export function listDeliveries(s: RazorpayState): Response {
  return jsonResponse(200, { deliveries: s.hooks.deliveries });
}

export function listFaults(s: RazorpayState): Response {
  return jsonResponse(200, { faults: s.faults.list() });
}

export function clearFaults(s: RazorpayState): Response {
  s.faults.clear();
  return jsonResponse(200, { faults: [] });
}

export async function addFaults(s: RazorpayState, { req }: Call): Promise<Response> {
  const body = await readBody(req);
  const problem = s.faults.add(body.faults);
  if (problem) return invalid(problem.message, problem.param);
  return jsonResponse(200, { faults: s.faults.list() });
}

export function getConfig(s: RazorpayState): Response {
  return jsonResponse(200, {
    webhook_url: s.hooks.url ?? null,
    webhooks: s.defaultWebhooks,
    account_capture: s.accountCapture,
    ...s.hooks.chaos(),
  });
}

/** Webhook URL and options, chaos, and the account-level capture setting (A2). */
export async function setConfig(s: RazorpayState, { req }: Call): Promise<Response> {
  const body = await readBody(req);
  const config = readSimConfig(body);
  if ("problem" in config) return invalid(config.problem.message, config.problem.param);
  if ("account_capture" in body) {
    const v = body.account_capture;
    if (v !== "automatic" && v !== "manual") {
      return invalid('account_capture must be "automatic" or "manual"', "account_capture");
    }
    s.accountCapture = v;
  }
  if (config.webhookUrl !== undefined) s.hooks.url = config.webhookUrl ?? undefined;
  if (config.webhooks) s.defaultWebhooks = config.webhooks;
  if (config.chaos !== undefined) s.hooks.setChaos(config.chaos);
  return getConfig(s);
}
