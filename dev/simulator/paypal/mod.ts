// Stateful in-memory PayPal simulator (OAuth, Orders v2, Payments v2, webhooks signed with its
// own local CA; /_sim/paypal controls) as a fetch handler.
//
// Mounting contract as for the others (../README.md): paths are relative to the mount point
// ("/v2/checkout/orders", "/_sim/paypal/..."), a "reset" fault throws SimulatedConnectionReset.
// setBaseUrl tells it where it is mounted: links, the approval page and certificate URLs use it.
import { dispatch, simPath } from "../common/mod.ts";
import { handleApi } from "./api.ts";
import { newCertRecord } from "./certs.ts";
import { handleControl } from "./control.ts";
import { jsonResponse, serverError } from "./errors.ts";
import { type PayPalEvent, serveCert, signDelivery } from "./events.ts";
import { API_ROUTES, CONTROL_ROUTES } from "./routes.ts";
import { type PayPalSimOptions, PayPalState } from "./state.ts";

export type { PayPalSimOptions } from "./state.ts";
export type { PayPalEvent } from "./events.ts";

export class PayPalSimulator {
  private constructor(readonly state: PayPalState) {}

  /** Async: the local CA's keys are made first (once per process). */
  static async create(opts: PayPalSimOptions): Promise<PayPalSimulator> {
    return new PayPalSimulator(await PayPalState.create(opts));
  }

  /** The URL this simulator is served at (no trailing slash). */
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
    const c = await newCertRecord(this.state.ca, o);
    this.state.certs.set(c.id, c);
    return { id: c.id, url: this.state.certUrl(c.id), pem: c.pem };
  }

  /**
   * Transmission headers for any body, signed as PayPal signs: with the default certificate or
   * one issued here, at a given transmission time (tests forge deliveries with it).
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
    const s = this.state;
    const url = new URL(req.url);
    const path = simPath(url);
    const cert = /^\/v1\/notifications\/certs\/([A-Za-z0-9-]+)$/.exec(path);
    if (cert && req.method === "GET") {
      return serveCert(s, { req, ids: { id: cert[1] }, requestId: null, body: {} });
    }
    if (path === "/checkoutnow" && req.method === "GET") {
      return approvalPage(url.searchParams.get("token") ?? "");
    }
    return await dispatch(
      {
        faults: s.faults,
        serverError,
        control: {
          when: (path) => path.startsWith("/_sim/"),
          handle: (req, _url, path) => handleControl(s, CONTROL_ROUTES, req, path),
        },
        api: {
          when: (path) => path.startsWith("/v1/") || path.startsWith("/v2/"),
          handle: (req, _url, path) => handleApi(s, API_ROUTES, req, path),
        },
        notFound: (path) => jsonResponse(404, { name: "NOT_FOUND", message: `no route ${path}` }),
      },
      req,
      url,
      path,
    );
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
