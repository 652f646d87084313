// The /_sim/paypal pipeline (CORS for the demo page) and the controls every simulator has:
// deliveries, faults, config; plus certificates and signing for tests.
import { readSimConfig, type Router } from "../common/mod.ts";
import { invalidRequest, jsonResponse, notFound, serverError } from "./errors.ts";
import { BadBody, readJson, requestIdOf } from "./params.ts";
import type { Call, Handler, PayPalState } from "./state.ts";

export async function handleControl(
  s: PayPalState,
  routes: Router<Handler>,
  req: Request,
  path: string,
): Promise<Response> {
  let res: Response;
  try {
    const m = routes.match(req.method.toUpperCase(), path);
    if (!m) {
      res = notFound();
    } else {
      const body = req.method === "GET" || req.method === "DELETE" ? {} : await readJson(req);
      res = await m.handler(s, { req, ids: m.ids, requestId: requestIdOf(req), body });
    }
  } catch (e) {
    res = e instanceof BadBody
      ? invalidRequest("MALFORMED_REQUEST_JSON", e.message)
      : serverError(500);
    if (!(e instanceof BadBody)) console.error("paypal simulator: internal error", e);
  }
  res.headers.set("access-control-allow-origin", "*");
  return res;
}

export const listDeliveries = (s: PayPalState) =>
  jsonResponse(200, { deliveries: s.hooks.deliveries });

export const listFaults = (s: PayPalState) => jsonResponse(200, { faults: s.faults.list() });

export function clearFaults(s: PayPalState): Response {
  s.faults.clear();
  return jsonResponse(200, { faults: [] });
}

export function addFaults(s: PayPalState, { body }: Call): Response {
  const problem = s.faults.add(body.faults);
  return problem
    ? invalidRequest("INVALID_PARAMETER_VALUE", problem.message, problem.param)
    : jsonResponse(200, { faults: s.faults.list() });
}

export const getConfig = (s: PayPalState) => configReply(s);

/**
 * POST /_sim/paypal/config: webhook_url, webhooks, chaos (as every simulator), and
 * refund_status (COMPLETED|PENDING) and token_seconds (expires_in of new tokens).
 */
export function setConfig(s: PayPalState, { body }: Call): Response {
  const config = readSimConfig(body);
  if ("problem" in config) {
    return invalidRequest("INVALID_PARAMETER_VALUE", config.problem.message, config.problem.param);
  }
  const status = body.refund_status;
  if (status !== undefined && status !== "COMPLETED" && status !== "PENDING") {
    return invalidRequest("INVALID_PARAMETER_VALUE", "refund_status: COMPLETED|PENDING");
  }
  const ttl = body.token_seconds;
  if (ttl !== undefined && (!Number.isInteger(ttl) || (ttl as number) < 1)) {
    return invalidRequest("INVALID_PARAMETER_VALUE", "token_seconds: a positive integer");
  }
  if (status) s.refundStatus = status;
  if (ttl) s.tokenSeconds = ttl as number;
  if (config.webhookUrl !== undefined) s.hooks.url = config.webhookUrl ?? undefined;
  if (config.webhooks) s.defaultWebhooks = config.webhooks;
  if (config.chaos !== undefined) s.hooks.setChaos(config.chaos);
  return configReply(s);
}

function configReply(s: PayPalState): Response {
  return jsonResponse(200, {
    webhook_url: s.hooks.url ?? null,
    webhooks: s.defaultWebhooks,
    refund_status: s.refundStatus,
    token_seconds: s.tokenSeconds,
    ...s.hooks.chaos(),
  });
}
