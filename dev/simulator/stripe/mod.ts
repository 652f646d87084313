// Stateful in-memory Stripe simulator (real /v1 wire formats, /_sim/stripe controls) as a fetch handler.
//
// Mounting contract: the same as the Razorpay simulator's (paths relative to the mount point, a
// "reset" fault throws SimulatedConnectionReset, the "timeout" faults need the original request's
// signal). One difference: the stripe SDK's base path is fixed at "/v1/" (only host, port and
// protocol are configurable, GATEWAY_FACTS B1), so the official client reaches the simulator only
// when it is mounted at the root of its own port:
// new Stripe(secretKey, {host: "127.0.0.1", port, protocol: "http", ...}).
//
// Where the sources do not pin Stripe's behaviour down, the choices are marked "assumed".
// Layout: ../README.md.
import { simPath, withFaults } from "../common/mod.ts";
import { handleApi } from "./api.ts";
import { handleControl } from "./control.ts";
import { errorBody, jsonResponse, serverErrorBody, unrecognizedUrl } from "./errors.ts";
import { API_ROUTES, CONTROL_ROUTES } from "./routes.ts";
import { type StripeSimOptions, StripeState } from "./state.ts";
import { randomId } from "./util.ts";

export type {
  FaultMode,
  FaultSpec,
  SimDeliveryRecord,
  SimEventRecord,
  WebhookOptions,
} from "../common/mod.ts";
export { SimulatedConnectionReset, simulatedResetResponse } from "../common/mod.ts";
export { STRIPE_API_VERSION, stripeSignatureHeader } from "./events.ts";
export type { StripeSimOptions } from "./state.ts";

const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "Request-Id, Stripe-Version, Idempotent-Replayed",
};

export class StripeSimulator {
  readonly #s: StripeState;

  constructor(opts: StripeSimOptions) {
    this.#s = new StripeState(opts);
  }

  setWebhookUrl(url: string | undefined): void {
    this.#s.hooks.url = url;
  }

  /** Where Connect events (about connected accounts) are sent. */
  setConnectWebhookUrl(url: string | undefined): void {
    this.#s.connectHooks.url = url;
  }

  /** Resolves once every scheduled webhook delivery (both endpoints) has finished. */
  async idle(): Promise<void> {
    await Promise.all([this.#s.hooks.idle(), this.#s.connectHooks.idle()]);
    await Promise.all([this.#s.hooks.idle(), this.#s.connectHooks.idle()]);
  }

  async fetch(req: Request): Promise<Response> {
    const s = this.#s;
    const url = new URL(req.url);
    const path = simPath(url);
    const requestId = randomId("req_", 14);
    let res: Response;
    if (req.method === "OPTIONS") {
      res = new Response(null, {
        status: 204,
        headers: {
          "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
          "access-control-allow-headers": req.headers.get("access-control-request-headers") ??
            "authorization, content-type, idempotency-key, stripe-version",
          "access-control-max-age": "600",
        },
      });
    } else if (path.startsWith("/_sim/")) {
      res = await handleControl(s, CONTROL_ROUTES, req, url, path);
    } else if (path === "/v1" || path.startsWith("/v1/")) {
      res = await withFaults(
        s.faults,
        req,
        path,
        (status) => jsonResponse(status, serverErrorBody(status)),
        () => handleApi(s, API_ROUTES, req, url, path, requestId),
      );
    } else {
      const e = unrecognizedUrl(req.method, url.pathname);
      res = jsonResponse(e.status, errorBody(e.fields, requestId, s.unix()));
    }
    for (const [k, v] of Object.entries(CORS_HEADERS)) res.headers.set(k, v);
    res.headers.set("request-id", requestId);
    return res;
  }
}
