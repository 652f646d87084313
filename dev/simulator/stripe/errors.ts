// Stripe's error shapes: ApiError (thrown by handlers and parameter readers), the helpers that build
// the usual ones, and the JSON bodies and responses they become.
import type { Json } from "./wire.ts";

export interface StripeErrorFields {
  type: "invalid_request_error" | "card_error" | "idempotency_error" | "api_error";
  message: string;
  code?: string;
  param?: string;
  decline_code?: string;
  charge?: string;
  payment_intent?: unknown;
  payment_method?: unknown;
  setup_intent?: unknown;
}

/** Thrown by handlers and parameter readers; becomes Stripe's `{"error":{...}}` body. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly fields: StripeErrorFields) {
    super(fields.message);
  }
}

export function invalid(message: string, param?: string, code?: string): ApiError {
  return new ApiError(400, { type: "invalid_request_error", message, param, code });
}

export function noSuch(kind: string, id: string, param: string, status = 400): ApiError {
  return new ApiError(status, {
    type: "invalid_request_error",
    code: "resource_missing",
    param,
    message: `No such ${kind}: '${id}'`,
  });
}

export const missingParam = (param: string) =>
  invalid(`Missing required param: ${param}.`, param, "parameter_missing");

export function unrecognizedUrl(method: string, path: string): ApiError {
  return new ApiError(404, {
    type: "invalid_request_error",
    message: `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs ` +
      "or we can help at https://support.stripe.com/.",
  });
}

export function errorBody(fields: StripeErrorFields, requestId: string | null, unix: number) {
  const error: Json = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) error[k] = v;
  if (fields.code) {
    error.doc_url = `https://stripe.com/docs/error-codes/${fields.code.replaceAll("_", "-")}`;
  }
  if (requestId && fields.type !== "api_error") {
    error.request_log_url = `https://dashboard.stripe.com/test/logs/${requestId}?t=${unix}`;
  }
  return { error };
}

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

export function serverErrorBody(status: number) {
  return {
    error: {
      type: "api_error",
      message: status === 503
        ? "Stripe is temporarily unavailable. Please try again later."
        : "An unknown error occurred. If this problem persists, please contact support.",
    },
  };
}
