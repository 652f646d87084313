// POST /v1/oauth2/token: client credentials in Basic auth, a bearer token with expires_in.
import { jsonResponse } from "./errors.ts";
import type { Call, PayPalState } from "./state.ts";

/** POST /v1/oauth2/token: Basic client credentials, grant_type=client_credentials (form). */
export async function issueToken(state: PayPalState, { req }: Call): Promise<Response> {
  const expected = `Basic ${btoa(`${state.opts.clientId}:${state.opts.clientSecret}`)}`;
  if (req.headers.get("authorization") !== expected) {
    return jsonResponse(401, {
      error: "invalid_client",
      error_description: "Client Authentication failed",
    });
  }
  const form = new URLSearchParams(await req.text());
  if (form.get("grant_type") !== "client_credentials") {
    return jsonResponse(400, {
      error: "unsupported_grant_type",
      error_description: "Grant Type is NULL",
    });
  }
  state.tokenRequests += 1;
  const token = `A21AA${crypto.randomUUID().replace(/-/g, "")}`;
  state.tokens.set(token, state.now() + state.tokenSeconds * 1000);
  return jsonResponse(200, {
    scope: "https://uri.paypal.com/services/payments/payment",
    access_token: token,
    token_type: "Bearer",
    app_id: "APP-80W284485P519543T",
    expires_in: state.tokenSeconds,
    nonce: `${new Date(state.now()).toISOString()}${crypto.randomUUID().slice(0, 8)}`,
  });
}

/** Whether the request carries a live token this simulator issued. */
export function authorized(state: PayPalState, req: Request): boolean {
  const m = /^Bearer (\S+)$/.exec(req.headers.get("authorization") ?? "");
  const expires = m ? state.tokens.get(m[1]) : undefined;
  return expires !== undefined && state.now() < expires;
}
