// The app's Stripe SDK client, configured once for every Stripe module (payments in mod.ts,
// Connect payouts in shared/payouts/stripe/): the API's host from STRIPE_API_URL, the fetch
// client and SubtleCrypto (the SDK's Deno build), one network retry under the same key.
import Stripe from "stripe";
import type { StripeConfig } from "../../config.ts";

/** The SDK retries a failed request (same idempotency key) after at most 5 s (its cap). */
export const STRIPE_NETWORK_RETRIES = 1;
export const STRIPE_MAX_RETRY_DELAY_MS = 5000;

export function createStripeClient(config: StripeConfig, fetchImpl?: typeof fetch): Stripe {
  const api = new URL(config.apiUrl);
  return new Stripe(config.secretKey, {
    apiVersion: Stripe.API_VERSION as Stripe.LatestApiVersion,
    host: api.hostname,
    port: api.port ? Number(api.port) : (api.protocol === "https:" ? 443 : 80),
    protocol: api.protocol === "http:" ? "http" : "https",
    httpClient: Stripe.createFetchHttpClient(fetchImpl),
    maxNetworkRetries: STRIPE_NETWORK_RETRIES,
    timeout: config.timeoutMs,
    telemetry: false,
  });
}
