// Idempotency-Key: a replay answers the stored result; a key reused for another endpoint or other
// parameters is an idempotency_error. Keys are scoped per API key.
import { canonical } from "../common/mod.ts";
import { ApiError, invalid, jsonResponse } from "./errors.ts";
import type { Params } from "./params.ts";
import type { StripeState } from "./state.ts";

const MAX_IDEMPOTENCY_KEY = 255;

export interface KeyedRequest {
  key: string;
  /** `${apiKey}\n${key}`. */
  scopedKey: string;
  method: string;
  path: string;
  params: Params;
}

/** The stored answer for a replay, an error for a misused key, or null: run the request. */
export function replayOrReject(
  s: StripeState,
  r: KeyedRequest,
  fail: (e: ApiError) => Response,
  headers: Record<string, string>,
): Response | null {
  const { key, method, path } = r;
  if (key.length > MAX_IDEMPOTENCY_KEY) {
    return fail(invalid(
      `Invalid idempotency key: must be at most ${MAX_IDEMPOTENCY_KEY} characters long.`,
      "Idempotency-Key",
    ));
  }
  const seen = s.idempotency.get(r.scopedKey);
  if (!seen) return null;
  if (seen.method !== method || seen.path !== path) {
    return fail(
      new ApiError(400, {
        type: "idempotency_error",
        message: "Keys for idempotent requests can only be used for the same endpoint they " +
          `were first used for ('${seen.method} ${seen.path}' vs '${method} ${path}'). ` +
          `Try using a key other than '${key}' if you meant to execute a different request.`,
      }),
    );
  }
  if (seen.params !== canonical(r.params)) {
    return fail(
      new ApiError(400, {
        type: "idempotency_error",
        message: "Keys for idempotent requests can only be used with the same parameters " +
          `they were first used with. Try using a key other than '${key}' if you meant to ` +
          "execute a different request.",
      }),
    );
  }
  return jsonResponse(seen.status, seen.body, {
    ...headers,
    "idempotency-key": key,
    "idempotent-replayed": "true",
    "original-request": seen.requestId,
  });
}

/**
 * Stripe keeps the first result once the endpoint ran (successes, card errors, 500s); requests
 * rejected by validation are not saved (docs.stripe.com/idempotency). Assumed: every other 4xx
 * counts as a validation rejection.
 */
export function remember(
  s: StripeState,
  r: KeyedRequest,
  status: number,
  body: string,
  requestId: string,
): void {
  if (status < 300 || status === 402 || status >= 500) {
    s.idempotency.set(r.scopedKey, {
      method: r.method,
      path: r.path,
      params: canonical(r.params),
      status,
      body,
      requestId,
    });
  }
}
