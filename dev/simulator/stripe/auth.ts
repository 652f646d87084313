// API keys: the secret key reaches every endpoint; the publishable key only what Stripe.js may do
// (retrieve an intent with its client_secret).
import { ApiError, invalid } from "./errors.ts";
import { ALLOWED, missingParamThrow, type Params, rejectUnknown, str } from "./params.ts";
import { type Auth, ok, type Res, type StripeState } from "./state.ts";

export function authenticate(s: StripeState, header: string | null): Auth | ApiError {
  let key: string | null = null;
  const m = /^(\w+)\s+(.+)$/.exec(header?.trim() ?? "");
  if (m && m[1].toLowerCase() === "bearer") key = m[2];
  if (m && m[1].toLowerCase() === "basic") {
    try {
      key = atob(m[2]).split(":")[0];
    } catch {
      key = m[2];
    }
  }
  if (!key) {
    return new ApiError(401, {
      type: "invalid_request_error",
      message: "You did not provide an API key. You need to provide your API key in the " +
        "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). " +
        "See https://stripe.com/docs/api#authentication for details, or we can help at " +
        "https://support.stripe.com/.",
    });
  }
  if (key === s.opts.secretKey) return { kind: "secret", key };
  if (key === s.opts.publishableKey) return { kind: "publishable", key };
  const shown = key.length > 12
    ? `${key.slice(0, 8)}${"*".repeat(key.length - 12)}${key.slice(-4)}`
    : key;
  return new ApiError(401, {
    type: "invalid_request_error",
    message: `Invalid API Key provided: ${shown}`,
  });
}

/** Stripe.js may read an intent with the publishable key and the intent's client_secret. */
export function publishableRoute(s: StripeState, method: string, path: string, p: Params): Res {
  const seg = path.split("/").slice(2); // drop "" and "v1"
  const [resource, id] = seg;
  if (
    method === "GET" && seg.length === 2 &&
    (resource === "payment_intents" || resource === "setup_intents")
  ) {
    rejectUnknown(p, ALLOWED.retrieveIntent);
    const intent = resource === "payment_intents" ? s.paymentIntent(id) : s.setupIntent(id);
    const secret = str(p, "client_secret");
    if (secret === undefined) missingParamThrow("client_secret");
    if (secret !== intent.client_secret) {
      throw invalid(
        `The client_secret provided does not match the client_secret associated with the ${
          resource === "payment_intents" ? "PaymentIntent" : "SetupIntent"
        }.`,
        "client_secret",
      );
    }
    return ok(intent);
  }
  throw new ApiError(401, {
    type: "invalid_request_error",
    message: "This API call cannot be made with a publishable API key. Please use a secret API " +
      "key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.",
  });
}
