// The /_sim/razorpayx control pipeline and the controls every simulator has (deliveries, faults,
// config). Resource-specific controls live in their resource's file; routes.ts lists them all.
import { readSimConfig, type Router } from "../common/mod.ts";
import { invalid, jsonResponse, notFoundControl } from "./errors.ts";
import { readBody } from "./params.ts";
import type { Call, Handler, RazorpayXState } from "./state.ts";

export async function handleControl(
  s: RazorpayXState,
  routes: Router<Handler>,
  req: Request,
  url: URL,
  path: string,
): Promise<Response> {
  const match = routes.match(req.method.toUpperCase(), path);
  if (!match) return notFoundControl();
  return await match.handler(s, { req, url, ids: match.ids });
}

export function listDeliveries(s: RazorpayXState): Response {
  return jsonResponse(200, { deliveries: s.hooks.deliveries });
}

/** GET lists the armed faults, POST adds {faults:[...]}, DELETE clears them. */
export async function faults(s: RazorpayXState, { req }: Call): Promise<Response> {
  const m = req.method.toUpperCase();
  if (m === "DELETE") s.faults.clear();
  if (m === "POST") {
    const problem = s.faults.add((await readBody(req)).faults);
    if (problem) return invalid(problem.message, problem.param);
  }
  return jsonResponse(200, { faults: s.faults.list() });
}

/** GET reads, POST sets the webhook URL, default webhook options and chaos. */
export async function config(s: RazorpayXState, { req }: Call): Promise<Response> {
  if (req.method.toUpperCase() === "POST") {
    const config = readSimConfig(await readBody(req));
    if ("problem" in config) return invalid(config.problem.message, config.problem.param);
    if (config.webhookUrl !== undefined) s.hooks.url = config.webhookUrl ?? undefined;
    if (config.webhooks) s.defaultWebhooks = config.webhooks;
    if (config.chaos !== undefined) s.hooks.setChaos(config.chaos);
  }
  return jsonResponse(200, {
    webhook_url: s.hooks.url ?? null,
    webhooks: s.defaultWebhooks,
    ...s.hooks.chaos(),
  });
}
