// PayPal's error bodies (name, message, debug_id, details[] of issues), as the API sends them.
import type { Json } from "./params.ts";

export type { Json };

export function jsonResponse(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

const debugId = () => crypto.randomUUID().replace(/-/g, "").slice(0, 13);

/** 422 UNPROCESSABLE_ENTITY with one issue (ORDER_NOT_APPROVED, REFUND_AMOUNT_EXCEEDED…). */
export function unprocessable(issue: string, description: string): Response {
  return jsonResponse(422, {
    name: "UNPROCESSABLE_ENTITY",
    message: "The requested action could not be performed, semantically incorrect, or failed " +
      "business validation.",
    debug_id: debugId(),
    details: [{ issue, description }],
  });
}

/** 400 INVALID_REQUEST naming the field (JSON pointer) and the issue. */
export function invalidRequest(issue: string, description: string, field?: string): Response {
  return jsonResponse(400, {
    name: "INVALID_REQUEST",
    message: "Request is not well-formed, syntactically incorrect, or violates schema.",
    debug_id: debugId(),
    details: [{ ...(field ? { field, location: "body" } : {}), issue, description }],
  });
}

export function notFound(what = "RESOURCE_NOT_FOUND"): Response {
  return jsonResponse(404, {
    name: "RESOURCE_NOT_FOUND",
    message: "The specified resource does not exist.",
    debug_id: debugId(),
    details: [{ issue: what, description: "The specified resource ID does not exist." }],
  });
}

export function unauthorized(): Response {
  return jsonResponse(401, {
    error: "invalid_token",
    error_description: "Token signature verification failed",
  });
}

export function serverError(status: number): Response {
  return jsonResponse(status, {
    name: "INTERNAL_SERVER_ERROR",
    message: "An internal server error occurred.",
    debug_id: debugId(),
  });
}
