// HTTP plumbing shared by every function: JSON responses, the error contract, CORS, body reading.
import { ZodError } from "zod";
import { GatewayError } from "./gateways/types.ts";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

export const MAX_JSON_BYTES = 64 * 1024;

const CORS_ALLOW_HEADERS = "authorization, x-client-info, apikey, content-type, idempotency-key";

export function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json; charset=utf-8");
  return new Response(JSON.stringify(body), { status, headers: h });
}

/** CORS headers for an allowed origin; none for requests that carry no Origin. */
export function corsHeaders(req: Request, allowedOrigins: string[]): Record<string, string> {
  const origin = req.headers.get("origin");
  if (!origin || !originAllowed(origin, allowedOrigins)) return {};
  return {
    "access-control-allow-origin": allowedOrigins.includes("*") ? "*" : origin,
    "access-control-allow-headers": CORS_ALLOW_HEADERS,
    "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
    "access-control-expose-headers": "x-request-id, retry-after",
    "access-control-max-age": "600",
    vary: "Origin",
  };
}

export function originAllowed(origin: string, allowedOrigins: string[]): boolean {
  return allowedOrigins.includes("*") || allowedOrigins.includes(origin);
}

/**
 * Answers a preflight, and refuses a browser request from an origin that is not allowed
 * (requests without Origin — servers, curl, gateways — pass).
 */
export function checkCors(req: Request, allowedOrigins: string[]): Response | undefined {
  const origin = req.headers.get("origin");
  if (origin && !originAllowed(origin, allowedOrigins)) {
    throw new HttpError(403, "forbidden", "origin not allowed");
  }
  if (req.method === "OPTIONS") {
    return new Response(null, { status: 204, headers: corsHeaders(req, allowedOrigins) });
  }
  return undefined;
}

export function requireMethod(req: Request, ...methods: string[]): void {
  if (!methods.includes(req.method)) {
    throw new HttpError(405, "method_not_allowed", `use ${methods.join(" or ")}`, undefined, {
      allow: methods.join(", "),
    });
  }
}

/** Reads the body as text without ever holding more than maxBytes of it. */
export async function readBodyText(req: Request, maxBytes: number): Promise<string> {
  const declared = req.headers.get("content-length");
  if (declared && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
    await req.body?.cancel();
    throw new HttpError(413, "payload_too_large", `body exceeds ${maxBytes} bytes`);
  }
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new HttpError(413, "payload_too_large", `body exceeds ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  } catch {
    throw new HttpError(400, "invalid_json", "body is not valid UTF-8");
  }
}

/** A JSON object body: 415 for another content type, 413 when too big, 400 when not JSON. */
export async function readJsonObject(
  req: Request,
  maxBytes = MAX_JSON_BYTES,
): Promise<Record<string, unknown>> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    await req.body?.cancel();
    throw new HttpError(415, "unsupported_media_type", "send the body as application/json");
  }
  const text = await readBodyText(req, maxBytes);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, "invalid_json", "body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError(400, "invalid_request", "body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/**
 * An optional JSON object body: a bare request (no Content-Type, no length, nothing sent) is {};
 * anything else follows readJsonObject (415 for another or no type, 413, 400).
 */
export async function readOptionalJsonObject(
  req: Request,
  maxBytes = MAX_JSON_BYTES,
): Promise<Record<string, unknown>> {
  if (req.headers.has("content-type") || (req.headers.get("content-length") ?? "0") !== "0") {
    return await readJsonObject(req, maxBytes);
  }
  // Nothing declared, but a chunked body may still come: refuse it rather than ignore it.
  if ((await readBodyText(req, maxBytes)) === "") return {};
  throw new HttpError(415, "unsupported_media_type", "send the body as application/json");
}

interface PgLikeError {
  code?: string;
  message?: string;
  hint?: string;
}

/**
 * A gateway's refusal (502 gateway_error) or outage (503 gateway_unavailable) in the error
 * contract; its cause goes to the log as a warning, never into the response.
 */
export function gatewayHttpError(err: GatewayError): HttpError {
  console.error(JSON.stringify({
    level: "warn",
    msg: "gateway error",
    gateway: err.gateway,
    error: err.message,
  }));
  return err.status === 503
    ? new HttpError(503, "gateway_unavailable", `${err.gateway} is unavailable; retry later`)
    : new HttpError(502, "gateway_error", `${err.gateway} refused the request`);
}

/** Maps anything thrown to the error contract. Causes stay in the log, never in the body. */
export function errorResponse(err: unknown, headers: Record<string, string> = {}): Response {
  if (err instanceof GatewayError) err = gatewayHttpError(err);
  if (err instanceof HttpError) {
    const body: Record<string, unknown> = { code: err.code, message: err.message };
    if (err.details !== undefined) body.details = err.details;
    return json(err.status, { error: body }, { ...headers, ...err.headers });
  }
  if (err instanceof ZodError) {
    const details = err.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    const first = details[0];
    const message = first ? `${first.path || "body"}: ${first.message}` : "invalid request";
    return json(400, { error: { code: "invalid_request", message, details } }, headers);
  }
  const pg = err as PgLikeError;
  if (typeof pg?.code === "string" && /^ST\d{3}$/.test(pg.code)) {
    return json(
      Number(pg.code.slice(2)),
      { error: { code: pg.hint ?? "invalid_request", message: pg.message ?? "" } },
      headers,
    );
  }
  console.error(JSON.stringify({ level: "error", msg: "unhandled", error: String(err) }));
  return json(500, { error: { code: "internal_error", message: "internal error" } }, headers);
}

/** The path segments after the function's own name ("/functions/v1/webhook/razorpay" → ["razorpay"]). */
export function subpath(req: Request, functionName: string): string[] {
  const parts = new URL(req.url).pathname.split("/").filter(Boolean);
  const at = parts.indexOf(functionName);
  try {
    return at === -1 ? [] : parts.slice(at + 1).map(decodeURIComponent);
  } catch {
    // decodeURIComponent throws URIError on broken escapes such as "%E0%A4%A" or "%ff".
    throw new HttpError(400, "invalid_request", "the path has a malformed percent-encoding");
  }
}
