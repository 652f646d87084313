// Stateful in-memory PayPal simulator (Orders v2, Payments v2, OAuth, webhook signing with its
// own local CA; /_sim controls) as a fetch handler. Mount it anywhere: paths are relative to the
// mount point ("/v2/checkout/orders", "/_sim/paypal/..."); setBaseUrl tells it where it lives.
import {
  holdUntilAbort,
  readSimConfig,
  SimulatedConnectionReset,
  WebhookDispatcher,
} from "../common.ts";
import {
  BadBody,
  invalidRequest,
  type Json,
  jsonResponse,
  readJson,
  serverError,
  unauthorized,
} from "./errors.ts";
import { authorized, issueToken } from "./oauth.ts";
import { API_ROUTES, match, SIM_ROUTES } from "./routes.ts";
import { type PayPalSimOptions, PayPalState } from "./state.ts";
import { type PayPalEvent, signDelivery } from "./webhooks.ts";

export type { PayPalSimOptions } from "./state.ts";
export type { PayPalEvent } from "./webhooks.ts";

const WEBHOOK_TIMEOUT_MS = 10_000;

export class PayPalSimulator {
  private constructor(readonly state: PayPalState) {}

  static async create(opts: PayPalSimOptions): Promise<PayPalSimulator> {
    const state = await PayPalState.create(opts);
    state.hooks = new WebhookDispatcher<PayPalEvent>({
      label: "paypal",
      timeoutMs: WEBHOOK_TIMEOUT_MS,
      url: opts.webhookUrl,
      headers: (e) => e.headers,
    });
    return new PayPalSimulator(state);
  }

  /** The URL this simulator is served at (no trailing slash): links and certificate URLs. */
  setBaseUrl(url: string): void {
    this.state.baseUrl = url.replace(/\/$/, "");
  }

  setWebhookUrl(url: string | undefined): void {
    this.state.hooks.url = url;
  }

  idle(): Promise<void> {
    return this.state.hooks.idle();
  }

  /** The local CA's certificate (PAYPAL_DEV_CERT_CA). */
  get caPem(): string {
    return this.state.ca.pem;
  }

  /** The prefix of every certificate URL this simulator serves (PAYPAL_DEV_CERT_URL). */
  get certUrlPrefix(): string {
    return `${this.state.baseUrl}/v1/notifications/certs/`;
  }

  get tokenRequests(): number {
    return this.state.tokenRequests;
  }

  events(orderId?: string): PayPalEvent[] {
    return this.state.events.filter((e) => orderId === undefined || e.orderId === orderId);
  }

  /** A new signing certificate from the local CA (expired, misnamed…), served at its URL. */
  async issueCert(o: { cn?: string; notBefore: Date; notAfter: Date }) {
    const c = await this.state.issueCert(o);
    return { id: c.id, url: this.state.certUrl(c.id), pem: c.pem };
  }

  /**
   * The transmission headers for any body, signed as PayPal signs: with the default signing
   * certificate or another one issued here, at a given transmission time (tests forge with it).
   */
  async signWebhook(
    body: string,
    o: { certId?: string; transmissionTime?: string; transmissionId?: string; webhookId?: string } =
      {},
  ): Promise<Record<string, string>> {
    const cert = this.state.certs.get(o.certId ?? this.state.signer.id)!;
    return await signDelivery(body, cert.privateKey, {
      certUrl: this.state.certUrl(cert.id),
      webhookId: o.webhookId ?? this.state.opts.webhookId,
      transmissionId: o.transmissionId,
      transmissionTime: o.transmissionTime,
      nowMs: this.state.now(),
    });
  }

  async fetch(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const cert = /^\/v1\/notifications\/certs\/([A-Za-z0-9-]+)$/.exec(path);
    if (cert && req.method === "GET") {
      const c = this.state.certs.get(cert[1]);
      return c
        ? new Response(c.pem, { headers: { "content-type": "application/x-pem-file" } })
        : new Response("not found", { status: 404 });
    }
    if (path === "/checkoutnow" && req.method === "GET") {
      return approvalPage(url.searchParams.get("token") ?? "");
    }
    if (path.startsWith("/_sim/")) return await this.#control(req, url, path);
    if (path === "/v1/oauth2/token" || path.startsWith("/v2/")) return await this.#api(req, path);
    return jsonResponse(404, { name: "NOT_FOUND", message: `no route ${path}` });
  }

  async #api(req: Request, path: string): Promise<Response> {
    const fault = this.state.faults.take(req.method, path);
    if (fault) {
      if (fault.mode === "error_500") return serverError(500);
      if (fault.mode === "error_502") return serverError(502);
      if (fault.mode === "error_503") return serverError(503);
      if (fault.mode === "reset") throw new SimulatedConnectionReset();
      if (fault.mode === "timeout" || fault.mode === "delay") {
        await holdUntilAbort(req.signal, fault.holdMs);
        if (fault.mode === "timeout") return serverError(504);
      }
    }
    const res = await this.#handled(req, path);
    // The *_after modes: the side effect happened, the client never learns it.
    if (fault?.mode === "reset_after") {
      await res.body?.cancel();
      throw new SimulatedConnectionReset();
    }
    if (fault?.mode === "timeout_after") {
      await res.body?.cancel();
      await holdUntilAbort(req.signal, fault.holdMs);
      return serverError(504);
    }
    return res;
  }

  async #handled(req: Request, path: string): Promise<Response> {
    if (path === "/v1/oauth2/token" && req.method === "POST") {
      return await issueToken(this.state, req);
    }
    if (!authorized(this.state, req)) return unauthorized();
    const m = match(API_ROUTES, req.method.toUpperCase(), path);
    if (!m) return jsonResponse(404, { name: "NOT_FOUND", message: `no route ${path}` });
    try {
      return await m.route.handler(this.state, req, m.params);
    } catch (e) {
      if (e instanceof BadBody) return invalidRequest("MALFORMED_REQUEST_JSON", e.message);
      console.error("paypal simulator: internal error", e);
      return serverError(500);
    }
  }

  async #control(req: Request, url: URL, path: string): Promise<Response> {
    let res: Response;
    try {
      res = await this.#controlRoute(req, url, path);
    } catch (e) {
      res = e instanceof BadBody
        ? invalidRequest("MALFORMED_REQUEST_JSON", e.message)
        : serverError(500);
      if (!(e instanceof BadBody)) console.error("paypal simulator: internal error", e);
    }
    res.headers.set("access-control-allow-origin", "*");
    return res;
  }

  async #controlRoute(req: Request, url: URL, path: string): Promise<Response> {
    const method = req.method.toUpperCase();
    const m = match(SIM_ROUTES, method, path);
    if (m) return await m.route.handler(this.state, req, m.params);
    const s = this.state;
    switch (`${method} ${path}`) {
      case "GET /_sim/paypal/events": {
        const orderId = url.searchParams.get("order_id") ?? undefined;
        const events = this.events(orderId).map(({ event_id, type, body, headers }) => ({
          event_id,
          type,
          body,
          headers,
        }));
        return jsonResponse(200, { events });
      }
      case "GET /_sim/paypal/deliveries":
        return jsonResponse(200, { deliveries: s.hooks.deliveries });
      case "GET /_sim/paypal/faults":
        return jsonResponse(200, { faults: s.faults.list() });
      case "DELETE /_sim/paypal/faults":
        s.faults.clear();
        return jsonResponse(200, { faults: [] });
      case "POST /_sim/paypal/faults": {
        const problem = s.faults.add((await readJson(req)).faults);
        return problem
          ? invalidRequest("INVALID_PARAMETER_VALUE", problem.message, problem.param)
          : jsonResponse(200, { faults: s.faults.list() });
      }
      case "POST /_sim/paypal/config":
        return this.#configure(await readJson(req));
      case "GET /_sim/paypal/config":
        return this.#configure({});
    }
    return jsonResponse(404, { name: "NOT_FOUND", message: `no route ${path}` });
  }

  #configure(body: Json): Response {
    const s = this.state;
    const config = readSimConfig(body);
    if ("problem" in config) {
      return invalidRequest(
        "INVALID_PARAMETER_VALUE",
        config.problem.message,
        config.problem.param,
      );
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
    if (config.webhookUrl !== undefined) this.setWebhookUrl(config.webhookUrl ?? undefined);
    if (config.webhooks) s.defaultWebhooks = config.webhooks;
    if (config.chaos !== undefined) s.hooks.setChaos(config.chaos);
    return jsonResponse(200, {
      webhook_url: s.hooks.url ?? null,
      webhooks: s.defaultWebhooks,
      refund_status: s.refundStatus,
      token_seconds: s.tokenSeconds,
      ...s.hooks.chaos(),
    });
  }
}

/** Stands in for PayPal's approval page: the payer approves, denies or leaves it pending. */
function approvalPage(token: string): Response {
  const safe = token.replace(/[^A-Z0-9]/g, "");
  const button = (outcome: string) =>
    `<button onclick="fetch('_sim/paypal/orders/${safe}/approve',{method:'POST',` +
    `body:JSON.stringify({outcome:'${outcome}'})}).then(r=>r.json()).then(j=>` +
    `document.body.append(JSON.stringify(j.order?.status??j)))">${outcome}</button>`;
  return new Response(
    `<!doctype html><title>PayPal simulator</title><h1>Order ${safe}</h1>` +
      ["approve", "deny", "pending"].map(button).join(" "),
    { headers: { "content-type": "text/html; charset=utf-8" } },
  );
}
