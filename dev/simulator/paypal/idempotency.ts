// PayPal-Request-Id: the first successful answer is kept per endpoint and returned again (200
// instead of 201) to a retry with the same id; PayPal does not compare the bodies (assumed).
import { jsonResponse } from "./errors.ts";
import type { PayPalState } from "./state.ts";

export function replay(s: PayPalState, scope: string, requestId: string | null) {
  if (!requestId) return null;
  const r = s.replies.get(`${scope}|${requestId}`);
  return r ? jsonResponse(r.status === 201 ? 200 : r.status, r.body) : null;
}

export function remember(
  s: PayPalState,
  scope: string,
  requestId: string | null,
  res: { status: number; body: unknown },
): Response {
  if (requestId && res.status < 300) s.replies.set(`${scope}|${requestId}`, res);
  return jsonResponse(res.status, res.body);
}
