// What a failed gateway call tells settle about its effect: refused (nothing was made) or unknown.
import { HttpError } from "../http.ts";
import { RazorpayApiError } from "./razorpay/client.ts";
import { GatewayError } from "./types.ts";

/**
 * Whether the gateway said no, so nothing was made: only a 4xx answer says that. A 5xx, a
 * dropped connection, a timeout or an unreadable answer may hide an object that was made (a
 * refund, an order). 408, 409 (Stripe's "another request with this key is in progress") and 429
 * are "not now", not "no".
 */
export function refusedByGateway(err: unknown): boolean {
  if (!(err instanceof GatewayError) || err.status !== 502) return false;
  const status = err instanceof RazorpayApiError
    ? err.httpStatus
    : (err.detail as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof status === "number" && status >= 400 && status < 500 &&
    ![408, 409, 429].includes(status);
}

/**
 * Whether a failed call may still have had its effect at the gateway: anything but a refusal or
 * settle's own validation (an HttpError, thrown before anything is sent).
 */
export function outcomeUnknown(err: unknown): boolean {
  return !(err instanceof HttpError) && !refusedByGateway(err);
}
