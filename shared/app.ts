// The per-isolate application context: config, pool, authenticator, gateways, clock.
import { type Authenticator, createAuthenticator } from "./auth.ts";
import { type Config, loadConfig } from "./config.ts";
import { createPool, type Sql } from "./db.ts";
import { HttpError } from "./http.ts";
import { createRazorpayGateway } from "./gateways/razorpay/mod.ts";
import { createPayPalGateway } from "./gateways/paypal/mod.ts";
import { createStripeGateway } from "./gateways/stripe/mod.ts";
import { type GatewayName, GATEWAYS, type PaymentGateway } from "./gateways/types.ts";

export interface App {
  config: Config;
  sql: Sql;
  authenticate: Authenticator;
  gateway(name: GatewayName): PaymentGateway;
  /** The gateways this deployment has configured (reconcile and the audit visit these). */
  configuredGateways(): GatewayName[];
  now(): Date;
}

export interface AppOptions {
  fetch?: typeof fetch;
  now?: () => Date;
  sql?: Sql;
}

export function createApp(config: Config, opts: AppOptions = {}): App {
  const now = opts.now ?? (() => new Date());
  const gateways: Partial<Record<GatewayName, PaymentGateway>> = {};
  if (config.razorpay) gateways.razorpay = createRazorpayGateway(config.razorpay, opts.fetch);
  if (config.stripe) {
    gateways.stripe = createStripeGateway(config.stripe, { now, fetch: opts.fetch });
  }
  if (config.paypal) {
    gateways.paypal = createPayPalGateway(config.paypal, { fetch: opts.fetch, now });
  }
  return {
    config,
    sql: opts.sql ?? createPool(config.dbUrl, config.dbPoolMax),
    authenticate: createAuthenticator({
      jwks: config.jwks,
      jwksUrl: config.supabaseUrl
        ? `${config.supabaseUrl}/auth/v1/.well-known/jwks.json`
        : undefined,
      hsSecret: config.jwtSecret,
      now,
    }),
    gateway(name) {
      const g = gateways[name];
      if (!g) throw new HttpError(400, "invalid_request", `gateway ${name} is not configured`);
      return g;
    },
    configuredGateways() {
      return GATEWAYS.filter((g) => gateways[g] !== undefined);
    },
    now,
  };
}

let shared: App | undefined;

/** The app for deployed functions, built from the environment on first use. */
export function defaultApp(): App {
  return shared ??= createApp(loadConfig());
}
