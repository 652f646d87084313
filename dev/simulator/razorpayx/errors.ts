// RazorpayX's error bodies and the responses every handler answers with.

export class BadBody extends Error {}

export function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=UTF-8" },
  });
}

/** RazorpayX's 400: {"error":{"code":"BAD_REQUEST_ERROR","description","field",...}}. */
export function invalid(description: string, field: string | null = null): Response {
  return jsonResponse(400, {
    error: {
      code: "BAD_REQUEST_ERROR",
      description,
      source: "business",
      step: "NA",
      reason: "input_validation_failed",
      metadata: {},
      field,
    },
  });
}

export function serverError(status: number): Response {
  return jsonResponse(status, {
    error: {
      code: "SERVER_ERROR",
      description: "The server encountered an error. The incident has been reported to admins.",
      source: "NA",
      step: "NA",
      reason: "NA",
      metadata: {},
      field: null,
    },
  });
}

export const notFoundId = () => invalid("The id provided does not exist");

export const notFoundUrl = () =>
  jsonResponse(404, { error: { code: "NOT_FOUND", description: "no such URL" } });

export const notFoundControl = () =>
  jsonResponse(404, { error: { code: "NOT_FOUND", description: "no such control" } });

export const unauthorized = () =>
  jsonResponse(401, { error: { code: "BAD_REQUEST_ERROR", description: "Unauthorized" } });
