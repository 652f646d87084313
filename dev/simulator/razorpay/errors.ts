// Razorpay's error shape ({"error": {code, description, source, step, reason, metadata, field}})
// and the responses the handlers answer with.

export function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=UTF-8" },
  });
}

export interface ErrorFields {
  code?: string;
  field?: string | null;
  source?: string;
  step?: string;
  reason?: string;
  metadata?: Record<string, unknown>;
}

export function errorBody(description: string, f: ErrorFields = {}) {
  return {
    error: {
      code: f.code ?? "BAD_REQUEST_ERROR",
      description,
      source: f.source ?? "NA",
      step: f.step ?? "NA",
      reason: f.reason ?? "NA",
      metadata: f.metadata ?? {},
      field: f.field ?? null,
    },
  };
}

export function errorResponse(status: number, description: string, f: ErrorFields = {}): Response {
  return jsonResponse(status, errorBody(description, f));
}

/** Input validation failures, in the shape of GATEWAY_FACTS A2's documented 400. */
export function invalid(description: string, field: string | null = null): Response {
  return errorResponse(400, description, {
    field,
    source: "business",
    step: "payment_initiation",
    reason: "input_validation_failed",
  });
}

export const notFoundId = () => invalid("The id provided does not exist");
export const notFoundUrl = () =>
  errorResponse(404, "The requested URL was not found on the server.");

export function serverError(status: number): Response {
  return errorResponse(
    status,
    "The server encountered an error. The incident has been reported to admins.",
    {
      code: "SERVER_ERROR",
    },
  );
}

/** A request body that is not a JSON object; answered as Razorpay's 400. */
export class BadBody extends Error {}
