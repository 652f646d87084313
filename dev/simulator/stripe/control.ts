// The /_sim/stripe control pipeline and the controls every simulator has (deliveries, faults,
// config). Resource-specific controls live in their resource's file; routes.ts lists them all.
import { parseWebhookOptions, readSimConfig, type Router } from "../common/mod.ts";
import { ApiError, errorBody, invalid, jsonResponse, unrecognizedUrl } from "./errors.ts";
import { readJson } from "./params.ts";
import {
  type ControlCall,
  type ControlHandler,
  type Ctx,
  ok,
  type Res,
  type StripeState,
} from "./state.ts";
import type { Json } from "./wire.ts";

export async function handleControl(
  s: StripeState,
  routes: Router<ControlHandler>,
  req: Request,
  url: URL,
  path: string,
): Promise<Response> {
  try {
    const m = req.method.toUpperCase();
    const match = routes.match(m, path);
    if (!match) throw unrecognizedUrl(m, path);
    const res = await match.handler(s, { req, url, ids: match.ids });
    return jsonResponse(res.status, res.body);
  } catch (e) {
    if (!(e instanceof ApiError)) console.error("stripe simulator: internal error", e);
    const err = e instanceof ApiError
      ? e
      : new ApiError(500, { type: "api_error", message: "simulator internal error" });
    return jsonResponse(err.status, errorBody(err.fields, null, s.unix()));
  }
}

/**
 * A control that acts like an API call: its JSON body is read first, the events it emits go out
 * with the body's `webhooks` options over the defaults, and the handler's result is the 200 body.
 */
export function withCtx(
  fn: (s: StripeState, id: string, body: Json, ctx: Ctx) => unknown,
): ControlHandler {
  return async (s, { req, ids }) => {
    const body = await readJson(req);
    const ctx: Ctx = {
      request: { id: null, idempotency_key: null },
      hooks: { ...s.defaultWebhooks, ...parseWebhookOptions(body.webhooks) },
      events: [],
    };
    try {
      return ok(fn(s, ids.id, body, ctx));
    } finally {
      s.schedule(ctx.events, ctx.hooks);
    }
  };
}

/** The platform endpoint's deliveries; `?endpoint=connect` the Connect endpoint's. */
export function listDeliveries(s: StripeState, { url }: ControlCall): Res {
  const hooks = url.searchParams.get("endpoint") === "connect" ? s.connectHooks : s.hooks;
  return ok({ deliveries: hooks.deliveries });
}

/** The POSTs the API received, optionally those whose path starts with `?path=`. */
export function listRequests(s: StripeState, { url }: ControlCall): Res {
  const prefix = url.searchParams.get("path");
  return ok({ requests: s.requests.filter((r) => prefix === null || r.path.startsWith(prefix)) });
}

export function listFaults(s: StripeState): Res {
  return ok({ faults: s.faults.list() });
}

export function clearFaults(s: StripeState): Res {
  s.faults.clear();
  return ok({ faults: [] });
}

export async function addFaults(s: StripeState, { req }: ControlCall): Promise<Res> {
  const body = await readJson(req);
  const problem = s.faults.add(body.faults);
  if (problem) throw invalid(problem.message, problem.param);
  return ok({ faults: s.faults.list() });
}

export function getConfig(s: StripeState): Res {
  return ok({
    webhook_url: s.hooks.url ?? null,
    connect_webhook_url: s.connectHooks.url ?? null,
    webhooks: s.defaultWebhooks,
    ...s.hooks.chaos(),
  });
}

export async function setConfig(s: StripeState, { req }: ControlCall): Promise<Res> {
  const body = await readJson(req);
  const config = readSimConfig(body);
  if ("problem" in config) throw invalid(config.problem.message, config.problem.param);
  const connectUrl = body.connect_webhook_url;
  if ("connect_webhook_url" in body && connectUrl !== null && typeof connectUrl !== "string") {
    throw invalid("connect_webhook_url must be a string or null", "connect_webhook_url");
  }
  if (config.webhookUrl !== undefined) s.hooks.url = config.webhookUrl ?? undefined;
  if ("connect_webhook_url" in body) {
    s.connectHooks.url = (connectUrl as string | null) ?? undefined;
  }
  if (config.webhooks) s.defaultWebhooks = config.webhooks;
  if (config.chaos !== undefined) {
    s.hooks.setChaos(config.chaos);
    s.connectHooks.setChaos(config.chaos);
  }
  return getConfig(s);
}
