// What the REST gateway clients (Razorpay, RazorpayX, PayPal) share on the wire: one fetch with a
// deadline, the body read whole and parsed when it is JSON. Each client turns failures and error
// answers into its own errors; nothing here retries.
import { GatewayError, type GatewayName } from "./types.ts";

/**
 * Where a call failed before there was an answer to read: "connect" (no connection, or no answer
 * before the deadline) or "read" (the answer's body was cut off).
 */
export type TransportPhase = "connect" | "read";

export interface JsonAnswer {
  res: Response;
  /** The body as JSON; undefined when it was empty or not JSON. */
  parsed: unknown;
}

/** AbortSignal.timeout's error: the deadline passed. */
export function isTimeout(err: unknown): boolean {
  return (err as Error)?.name === "TimeoutError";
}

/**
 * A payment gateway's failure before an answer: unavailable (503), "<gateway> timed out" or
 * "unreachable", or "connection dropped" when the body was cut off; the cause as its detail.
 */
export function unavailable(gateway: GatewayName) {
  return (phase: TransportPhase, err: unknown): GatewayError => {
    const what = phase === "read"
      ? "connection dropped"
      : isTimeout(err)
      ? "timed out"
      : "unreachable";
    return new GatewayError(503, gateway, `${gateway} ${what}`, String(err));
  };
}

/** "Basic base64(key_id:key_secret)", exactly as Razorpay and RazorpayX require it. */
export function basicAuth(id: string, secret: string): string {
  return "Basic " + btoa(`${id}:${secret}`);
}

export interface RequestParts {
  method: string;
  headers: HeadersInit;
  body?: string;
}

/**
 * A JSON call: the extra headers, the authorization, and the body as JSON with its content type
 * when there is one.
 */
export function jsonRequest(
  method: string,
  authorization: string,
  body?: unknown,
  extra: HeadersInit = {},
): RequestParts {
  const headers = new Headers(extra);
  headers.set("authorization", authorization);
  if (body !== undefined) headers.set("content-type", "application/json");
  return { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
}

/**
 * One request under a deadline of timeoutMs, its answer read whole. A failure before the answer
 * could be read throws what `failed` makes of it.
 */
export async function fetchJson(
  fetchFn: typeof fetch,
  url: string,
  init: RequestParts,
  timeoutMs: number,
  failed: (phase: TransportPhase, err: unknown) => Error,
): Promise<JsonAnswer> {
  let res: Response;
  try {
    res = await fetchFn(url, {
      method: init.method,
      headers: init.headers,
      body: init.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw failed("connect", err);
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    throw failed("read", err);
  }
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { res, parsed };
}

export interface BasicAuthOptions {
  keyId: string;
  keySecret: string;
  apiUrl: string;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/** A JSON API behind Basic auth with a key pair (Razorpay, RazorpayX): what their clients share. */
export class BasicAuthJsonClient {
  readonly #auth: string;
  readonly #fetch: typeof fetch;

  constructor(readonly opts: BasicAuthOptions) {
    this.#auth = basicAuth(opts.keyId, opts.keySecret);
    this.#fetch = opts.fetch ?? fetch;
  }

  /** One call, its body sent as JSON; the answer whatever its status. */
  protected send(
    method: string,
    path: string,
    body: unknown,
    headers: HeadersInit,
    failed: (phase: TransportPhase, err: unknown) => Error,
  ): Promise<JsonAnswer> {
    const parts = jsonRequest(method, this.#auth, body, headers);
    return fetchJson(this.#fetch, this.opts.apiUrl + path, parts, this.opts.timeoutMs, failed);
  }
}
