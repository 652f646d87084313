// A small fetch-based Razorpay API client: configurable base URL, timeouts, typed errors.
import type {
  RzpCaptureSettings,
  RzpCollection,
  RzpErrorBody,
  RzpOrder,
  RzpPayment,
  RzpRefund,
} from "./wire.ts";
import { GatewayError } from "../types.ts";
import { BasicAuthJsonClient, type BasicAuthOptions, unavailable } from "../http_client.ts";

export type RazorpayClientOptions = BasicAuthOptions;

/** Razorpay answered with an error body. */
export class RazorpayApiError extends GatewayError {
  constructor(readonly httpStatus: number, readonly body: RzpErrorBody | undefined) {
    super(
      // A gateway outage is "unavailable"; anything else it said is a gateway error.
      httpStatus === 503 || httpStatus === 504 ? 503 : 502,
      "razorpay",
      `razorpay answered ${httpStatus}: ${body?.error?.description ?? "no error body"}`,
      body,
    );
  }
}

/** Razorpay's answer for an id it does not have (400 BAD_REQUEST_ERROR, or a 404). */
export function isNoSuchId(err: unknown): boolean {
  return err instanceof RazorpayApiError &&
    (err.httpStatus === 404 ||
      (err.httpStatus === 400 && /does not exist/i.test(err.body?.error?.description ?? "")));
}

export class RazorpayClient extends BasicAuthJsonClient {
  async #request<T>(method: string, path: string, body?: unknown, headers: HeadersInit = {}) {
    const { res, parsed } = await this.send(method, path, body, headers, unavailable("razorpay"));
    if (!res.ok) throw new RazorpayApiError(res.status, parsed as RzpErrorBody | undefined);
    if (parsed === undefined) {
      throw new GatewayError(502, "razorpay", "razorpay answered without a JSON body");
    }
    return parsed as T;
  }

  createOrder(params: {
    amount: number;
    currency: string;
    receipt: string;
    notes?: Record<string, string>;
    payment?: RzpCaptureSettings;
  }): Promise<RzpOrder> {
    return this.#request("POST", "/v1/orders", params);
  }

  /** Orders carrying a receipt: how a retry finds an order an earlier, failed attempt created. */
  async ordersByReceipt(receipt: string): Promise<RzpOrder[]> {
    const q = new URLSearchParams({ receipt, count: "10" });
    return (await this.#request<RzpCollection<RzpOrder>>("GET", `/v1/orders?${q}`)).items;
  }

  fetchOrder(orderId: string): Promise<RzpOrder> {
    return this.#request("GET", `/v1/orders/${encodeURIComponent(orderId)}`);
  }

  async orderPayments(orderId: string): Promise<RzpPayment[]> {
    const path = `/v1/orders/${encodeURIComponent(orderId)}/payments`;
    return (await this.#request<RzpCollection<RzpPayment>>("GET", path)).items;
  }

  fetchPayment(paymentId: string): Promise<RzpPayment> {
    return this.#request("GET", `/v1/payments/${encodeURIComponent(paymentId)}`);
  }

  /** POST /v1/payments/:id/capture: the amount must equal the authorized amount (A4). */
  capture(paymentId: string, body: { amount: number; currency: string }): Promise<RzpPayment> {
    return this.#request("POST", `/v1/payments/${encodeURIComponent(paymentId)}/capture`, body);
  }

  /**
   * POST /v1/payments/:id/refund with X-Refund-Idempotency (the SDK cannot send it): a retry
   * with the same key and the same body returns the first refund instead of making another.
   */
  refund(
    paymentId: string,
    body: { amount: number; notes?: Record<string, string> },
    idempotencyKey: string,
  ): Promise<RzpRefund> {
    return this.#request(
      "POST",
      `/v1/payments/${encodeURIComponent(paymentId)}/refund`,
      body,
      { "x-refund-idempotency": idempotencyKey },
    );
  }

  fetchRefund(refundId: string): Promise<RzpRefund> {
    return this.#request("GET", `/v1/refunds/${encodeURIComponent(refundId)}`);
  }

  /**
   * Every item of a list endpoint created in [from, to] (unix seconds), 100 a page by `skip`
   * (GATEWAY_FACTS A1). Newest first: an item created meanwhile can shift a page, so ids seen
   * twice are dropped.
   */
  async listAll<T extends { id: string }>(
    path: "/v1/payments" | "/v1/refunds",
    from: number,
    to: number,
  ): Promise<T[]> {
    const seen = new Map<string, T>();
    for (let skip = 0;; skip += 100) {
      const q = new URLSearchParams({
        from: String(from),
        to: String(to),
        count: "100",
        skip: String(skip),
      });
      const page = await this.#request<RzpCollection<T>>("GET", `${path}?${q}`);
      for (const item of page.items) if (!seen.has(item.id)) seen.set(item.id, item);
      if (page.items.length < 100) return [...seen.values()];
    }
  }

  /**
   * GET /v1/disputes, newest first, 100 a page by `skip` (the SDK sends only count and skip,
   * DISPUTE_FACTS 2.5), until a page ends before `from`; those created in [from, to].
   */
  async listDisputes<T extends { id: string; created_at: number }>(
    from: number,
    to: number,
  ): Promise<T[]> {
    const seen = new Map<string, T>();
    for (let skip = 0;; skip += 100) {
      const q = new URLSearchParams({ count: "100", skip: String(skip) });
      const page = await this.#request<RzpCollection<T>>("GET", `/v1/disputes?${q}`);
      for (const item of page.items) {
        if (item.created_at >= from && item.created_at <= to) seen.set(item.id, item);
      }
      const oldest = page.items.at(-1)?.created_at ?? 0;
      if (page.items.length < 100 || oldest < from) return [...seen.values()];
    }
  }

  fetchDispute<T>(disputeId: string): Promise<T> {
    return this.#request("GET", `/v1/disputes/${encodeURIComponent(disputeId)}`);
  }
}
