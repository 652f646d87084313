// A small fetch-based PayPal REST client (token, orders, captures, refunds): configurable base
// URL, an OAuth token cached until shortly before it expires, timeouts and typed errors. The
// official SDK has no base-URL option and no webhook support (docs/decisions.md, PayPal).
import { GatewayError } from "../types.ts";
import { fetchJson, unavailable } from "../http_client.ts";
import type { PpDispute, PpErrorBody, PpLink, PpOrder, PpRefund, PpToken } from "./wire.ts";

export interface PayPalClientOptions {
  clientId: string;
  clientSecret: string;
  apiUrl: string;
  timeoutMs: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/** PayPal answered with an error body. */
export class PayPalApiError extends GatewayError {
  constructor(readonly httpStatus: number, readonly body: PpErrorBody | undefined) {
    super(
      httpStatus === 503 || httpStatus === 504 ? 503 : 502,
      "paypal",
      `paypal answered ${httpStatus}: ${
        body?.details?.[0]?.issue ?? body?.name ?? "no error body"
      }${body?.message ? ` (${body.message})` : ""}`,
      { statusCode: httpStatus, body },
    );
  }

  get issue(): string | null {
    return this.body?.details?.[0]?.issue ?? null;
  }
}

/** Refresh this long before expires_in runs out (facts 1.1: about a minute). */
export const TOKEN_MARGIN_MS = 60_000;

export class PayPalClient {
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  #token: { value: string; expiresAt: number } | null = null;
  #pending: Promise<string> | null = null;

  constructor(readonly opts: PayPalClientOptions) {
    this.#fetch = opts.fetch ?? fetch;
    this.#now = opts.now ?? Date.now;
  }

  /** One token per client, shared by concurrent requests, refreshed before it expires. */
  token(): Promise<string> {
    if (this.#token && this.#now() < this.#token.expiresAt) {
      return Promise.resolve(this.#token.value);
    }
    return this.#pending ??= this.#fetchToken().finally(() => (this.#pending = null));
  }

  async #fetchToken(): Promise<string> {
    const t = await this.#send<PpToken>("POST", "/v1/oauth2/token", {
      authorization: "Basic " + btoa(`${this.opts.clientId}:${this.opts.clientSecret}`),
      "content-type": "application/x-www-form-urlencoded",
    }, "grant_type=client_credentials");
    if (typeof t.access_token !== "string" || !Number.isFinite(t.expires_in)) {
      throw new GatewayError(502, "paypal", "paypal answered the token request without a token");
    }
    const lifetime = Math.max(0, t.expires_in * 1000 - TOKEN_MARGIN_MS);
    this.#token = { value: t.access_token, expiresAt: this.#now() + lifetime };
    return t.access_token;
  }

  async #send<T>(method: string, path: string, headers: HeadersInit, body?: string): Promise<T> {
    const { res, parsed } = await fetchJson(
      this.#fetch,
      this.opts.apiUrl + path,
      { method, headers, body },
      this.opts.timeoutMs,
      unavailable("paypal"),
    );
    if (!res.ok) throw new PayPalApiError(res.status, parsed as PpErrorBody | undefined);
    if (parsed === undefined || parsed === null || typeof parsed !== "object") {
      throw new GatewayError(502, "paypal", "paypal answered without a JSON body");
    }
    return parsed as T;
  }

  /** An API call with the bearer token; a 401 (token revoked early) refreshes it once. */
  #request<T>(method: string, path: string, body?: unknown, requestId?: string): Promise<T> {
    return this.#authorized(
      method,
      path,
      body === undefined ? undefined : JSON.stringify(body),
      requestId,
    );
  }

  async #authorized<T>(
    method: string,
    path: string,
    text?: string,
    requestId?: string,
  ): Promise<T> {
    for (let attempt = 0;; attempt++) {
      const headers: Record<string, string> = {
        authorization: `Bearer ${await this.token()}`,
        "content-type": "application/json",
        prefer: "return=representation",
      };
      if (requestId) headers["paypal-request-id"] = requestId;
      try {
        return await this.#send<T>(method, path, headers, text);
      } catch (err) {
        if (!(err instanceof PayPalApiError && err.httpStatus === 401 && attempt === 0)) throw err;
        this.#token = null;
      }
    }
  }

  createOrder(body: unknown, requestId: string): Promise<PpOrder> {
    return this.#request("POST", "/v2/checkout/orders", body, requestId);
  }

  getOrder(id: string): Promise<PpOrder> {
    return this.#request("GET", `/v2/checkout/orders/${encodeURIComponent(id)}`);
  }

  /** An empty JSON body, as the SDK sends it (facts 1.9). */
  captureOrder(id: string, requestId: string): Promise<PpOrder> {
    return this.#request(
      "POST",
      `/v2/checkout/orders/${encodeURIComponent(id)}/capture`,
      {},
      requestId,
    );
  }

  refundCapture(captureId: string, body: unknown, requestId: string): Promise<PpRefund> {
    return this.#request(
      "POST",
      `/v2/payments/captures/${encodeURIComponent(captureId)}/refund`,
      body,
      requestId,
    );
  }

  /**
   * POST /v1/notifications/verify-webhook-signature. The body is the text given: the caller
   * splices the delivered bytes in as webhook_event, since a re-encoded event fails (facts 1.6).
   */
  verifyWebhookSignature(rawRequest: string): Promise<{ verification_status?: string }> {
    return this.#authorized("POST", "/v1/notifications/verify-webhook-signature", rawRequest);
  }

  getRefund(id: string): Promise<PpRefund> {
    return this.#request("GET", `/v2/payments/refunds/${encodeURIComponent(id)}`);
  }

  /** GET /v1/customer/disputes: one page (start_time, page_size, next_page_token). */
  listDisputes(
    query: Record<string, string>,
  ): Promise<{ items?: PpDispute[]; links?: PpLink[] }> {
    return this.#request("GET", `/v1/customer/disputes?${new URLSearchParams(query)}`);
  }

  getDispute(id: string): Promise<PpDispute> {
    return this.#request("GET", `/v1/customer/disputes/${encodeURIComponent(id)}`);
  }
}
