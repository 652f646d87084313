// Configuration from the environment: read once, validated, fails fast naming what is missing.
import type { JSONWebKeySet } from "jose";

export interface RazorpayConfig {
  keyId: string;
  keySecret: string;
  /** Current secret first; a previous one keeps verifying events signed before a rotation. */
  webhookSecrets: string[];
  apiUrl: string;
  timeoutMs: number;
}

export interface StripeConfig {
  secretKey: string;
  publishableKey: string;
  /** Current secret first; a previous one keeps verifying during a rotation. */
  webhookSecrets: string[];
  /** Base URL of the API (scheme, host, port); the SDK adds /v1. */
  apiUrl: string;
  timeoutMs: number;
  /** Stripe Connect payouts (shared/payouts/stripe/): set when STRIPE_CONNECT_WEBHOOK_SECRET is. */
  connect?: StripeConnectConfig;
}

/** Stripe Connect payouts: the Connect endpoint's own secret and where onboarding returns. */
export interface StripeConnectConfig {
  /** The Connect webhook endpoint's signing secret (not the platform endpoint's). */
  webhookSecret: string;
  /**
   * Where Stripe sends the payee after onboarding (return) or when the link expired (refresh).
   * Unset: the origin the payout-accounts function was called at (docs/decisions.md).
   */
  returnUrl?: string;
  refreshUrl?: string;
}

/** RazorpayX Payouts (shared/payouts/razorpayx/): its own webhook secret and account number. */
export interface RazorpayXConfig {
  keyId: string;
  keySecret: string;
  /** The business's RazorpayX account number (not a payee's): every payout names it. */
  accountNumber: string;
  webhookSecret: string;
  apiUrl: string;
  timeoutMs: number;
}

/** Per-minute request limits on the user-facing functions (shared/ratelimit.ts). */
export interface RateLimitConfig {
  /** RATE_LIMITS=off turns every limit off. */
  enabled: boolean;
  perUserPerMinute: number;
  perIpPerMinute: number;
  /** Always 60 from the environment (the limits are per minute); tests may shorten it. */
  windowSeconds: number;
  /**
   * TRUSTED_PROXY_HEADER: the lowercase name of a header a proxy in front sets to the client's
   * address (cf-connecting-ip on Supabase). Unset: only the connection's peer counts.
   */
  trustedProxyHeader?: string;
}

/** The outbox's delivery worker (shared/services/outbox.ts). */
export interface OutboxConfig {
  /** Attempts per (event, subscriber) before the delivery is dead (replayable). */
  maxAttempts: number;
  /** Wait after the first failed attempt; doubles after each further failure. */
  backoffBaseSeconds: number;
  /** The longest wait between attempts. */
  backoffMaxSeconds: number;
  /** Per-request timeout to a subscriber. */
  timeoutMs: number;
  /** Deliveries claimed per dispatch (at most 1000). */
  batchSize: number;
  /** Requests in flight at once per dispatch. */
  concurrency: number;
}

/** Reconciliation (shared/services/reconcile.ts): what counts as stuck, when unpaid orders expire. */
export interface ReconcileConfig {
  /** Orders created/authorized for longer than this are asked about at the gateway. */
  stuckSeconds: number;
  /** Orders still created (unpaid, or without a gateway order) after this expire. */
  expirySeconds: number;
  /** Failed and expired orders younger than this are re-checked (a later capture may land). */
  recheckSeconds: number;
  /** Orders claimed per run (at most 1000). */
  batchSize: number;
  /** How long a claimed batch is held; a reconciler that dies frees its orders after it. */
  leaseSeconds: number;
  /** Wait before an order still open is checked again; doubles per check, up to 64 times. */
  retrySeconds: number;
  /** Gateway reads in flight at once per run. */
  concurrency: number;
}

export interface Config {
  dbUrl: string;
  dbPoolMax: number;
  supabaseUrl?: string;
  jwks?: JSONWebKeySet;
  jwtSecret?: string;
  /** Exact origins allowed by CORS; ["*"] allows any. */
  allowedOrigins: string[];
  razorpay?: RazorpayConfig;
  stripe?: StripeConfig;
  razorpayx?: RazorpayXConfig;
  webhookBodyLimitBytes: number;
  /** One JSON log line per request (LOG_REQUESTS=false silences it, e.g. in tests). */
  logRequests: boolean;
  reconcile: ReconcileConfig;
  outbox: OutboxConfig;
  rateLimit: RateLimitConfig;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = (key: string) => string | undefined;

function required(env: Env, key: string): string {
  const value = env(key)?.trim();
  if (!value) throw new ConfigError(`${key} is undefined`);
  return value;
}

function positiveInt(env: Env, key: string, fallback: number): number {
  const raw = env(key)?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) {
    throw new ConfigError(`${key} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

function onOff(env: Env, key: string, fallback: boolean): boolean {
  const raw = env(key)?.trim().toLowerCase();
  if (!raw) return fallback;
  if (raw === "on" || raw === "true") return true;
  if (raw === "off" || raw === "false") return false;
  throw new ConfigError(`${key} must be on or off, got ${JSON.stringify(raw)}`);
}

function url(env: Env, key: string, fallback?: string): string {
  const value = env(key)?.trim() || fallback;
  if (!value) throw new ConfigError(`${key} is undefined`);
  try {
    return new URL(value).toString().replace(/\/$/, "");
  } catch {
    throw new ConfigError(`${key} is not a URL: ${JSON.stringify(value)}`);
  }
}

function headerName(env: Env, key: string): string | undefined {
  const raw = env(key)?.trim().toLowerCase();
  if (!raw) return undefined;
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]{1,100}$/.test(raw)) {
    throw new ConfigError(`${key} must be a header name, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/** A gateway is optional as a whole, but once one of its variables is set all must be. */
function razorpay(env: Env): RazorpayConfig | undefined {
  const keys = ["RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET", "RAZORPAY_WEBHOOK_SECRET"];
  if (keys.every((k) => !env(k)?.trim())) return undefined;
  const previous = env("RAZORPAY_WEBHOOK_SECRET_PREVIOUS")?.trim();
  return {
    keyId: required(env, "RAZORPAY_KEY_ID"),
    keySecret: required(env, "RAZORPAY_KEY_SECRET"),
    webhookSecrets: [required(env, "RAZORPAY_WEBHOOK_SECRET"), ...(previous ? [previous] : [])],
    apiUrl: url(env, "RAZORPAY_API_URL", "https://api.razorpay.com"),
    timeoutMs: positiveInt(env, "RAZORPAY_TIMEOUT_MS", 10_000),
  };
}

function stripe(env: Env): StripeConfig | undefined {
  const keys = ["STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET"];
  if (keys.every((k) => !env(k)?.trim())) {
    if (env("STRIPE_CONNECT_WEBHOOK_SECRET")?.trim()) {
      throw new ConfigError(
        "STRIPE_CONNECT_WEBHOOK_SECRET is set but STRIPE_SECRET_KEY is undefined",
      );
    }
    return undefined;
  }
  const previous = env("STRIPE_WEBHOOK_SECRET_PREVIOUS")?.trim();
  return {
    secretKey: required(env, "STRIPE_SECRET_KEY"),
    publishableKey: required(env, "STRIPE_PUBLISHABLE_KEY"),
    webhookSecrets: [required(env, "STRIPE_WEBHOOK_SECRET"), ...(previous ? [previous] : [])],
    apiUrl: url(env, "STRIPE_API_URL", "https://api.stripe.com"),
    timeoutMs: positiveInt(env, "STRIPE_TIMEOUT_MS", 10_000),
    connect: stripeConnect(env),
  };
}

/** Connect is on with its webhook secret; the onboarding URLs are optional. */
function stripeConnect(env: Env): StripeConnectConfig | undefined {
  const urls = ["STRIPE_CONNECT_RETURN_URL", "STRIPE_CONNECT_REFRESH_URL"];
  if (!env("STRIPE_CONNECT_WEBHOOK_SECRET")?.trim()) {
    const set = urls.find((k) => env(k)?.trim());
    if (set) throw new ConfigError(`${set} is set but STRIPE_CONNECT_WEBHOOK_SECRET is undefined`);
    return undefined;
  }
  const optionalUrl = (k: string) => env(k)?.trim() ? url(env, k) : undefined;
  return {
    webhookSecret: required(env, "STRIPE_CONNECT_WEBHOOK_SECRET"),
    returnUrl: optionalUrl("STRIPE_CONNECT_RETURN_URL"),
    refreshUrl: optionalUrl("STRIPE_CONNECT_REFRESH_URL"),
  };
}

/** All five RAZORPAYX_ variables or none (the timeout is optional). */
function razorpayx(env: Env): RazorpayXConfig | undefined {
  const keys = [
    "RAZORPAYX_KEY_ID",
    "RAZORPAYX_KEY_SECRET",
    "RAZORPAYX_ACCOUNT_NUMBER",
    "RAZORPAYX_WEBHOOK_SECRET",
    "RAZORPAYX_API_URL",
  ];
  if (keys.every((k) => !env(k)?.trim())) return undefined;
  return {
    keyId: required(env, "RAZORPAYX_KEY_ID"),
    keySecret: required(env, "RAZORPAYX_KEY_SECRET"),
    accountNumber: required(env, "RAZORPAYX_ACCOUNT_NUMBER"),
    webhookSecret: required(env, "RAZORPAYX_WEBHOOK_SECRET"),
    apiUrl: url(env, "RAZORPAYX_API_URL"),
    timeoutMs: positiveInt(env, "RAZORPAYX_TIMEOUT_MS", 10_000),
  };
}

function outbox(env: Env): OutboxConfig {
  const config = {
    maxAttempts: positiveInt(env, "OUTBOX_MAX_ATTEMPTS", 12),
    backoffBaseSeconds: positiveInt(env, "OUTBOX_BACKOFF_BASE_SECONDS", 30),
    backoffMaxSeconds: positiveInt(env, "OUTBOX_BACKOFF_MAX_SECONDS", 6 * 3600),
    timeoutMs: positiveInt(env, "OUTBOX_TIMEOUT_MS", 10_000),
    batchSize: positiveInt(env, "OUTBOX_BATCH_SIZE", 50),
    concurrency: positiveInt(env, "OUTBOX_CONCURRENCY", 8),
  };
  if (config.batchSize > 1000) throw new ConfigError("OUTBOX_BATCH_SIZE must be at most 1000");
  if (config.backoffMaxSeconds < config.backoffBaseSeconds) {
    throw new ConfigError(
      "OUTBOX_BACKOFF_MAX_SECONDS must be at least OUTBOX_BACKOFF_BASE_SECONDS",
    );
  }
  return config;
}

function nonNegativeInt(env: Env, key: string, fallback: number): number {
  const raw = env(key)?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw)) {
    throw new ConfigError(`${key} must be a whole number of seconds, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

function reconcile(env: Env): ReconcileConfig {
  const config = {
    stuckSeconds: nonNegativeInt(env, "RECONCILE_STUCK_SECONDS", 600),
    expirySeconds: nonNegativeInt(env, "RECONCILE_EXPIRY_SECONDS", 24 * 3600),
    recheckSeconds: nonNegativeInt(env, "RECONCILE_RECHECK_SECONDS", 2 * 24 * 3600),
    batchSize: positiveInt(env, "RECONCILE_BATCH_SIZE", 100),
    leaseSeconds: positiveInt(env, "RECONCILE_LEASE_SECONDS", 300),
    retrySeconds: nonNegativeInt(env, "RECONCILE_RETRY_SECONDS", 60),
    concurrency: positiveInt(env, "RECONCILE_CONCURRENCY", 8),
  };
  if (config.batchSize > 1000) throw new ConfigError("RECONCILE_BATCH_SIZE must be at most 1000");
  return config;
}

export function loadConfig(env: Env = (k) => Deno.env.get(k)): Config {
  const jwksRaw = env("SUPABASE_JWKS")?.trim();
  let jwks: JSONWebKeySet | undefined;
  if (jwksRaw) {
    try {
      jwks = JSON.parse(jwksRaw);
    } catch {
      throw new ConfigError("SUPABASE_JWKS is not valid JSON");
    }
    if (!Array.isArray(jwks?.keys)) throw new ConfigError("SUPABASE_JWKS has no keys array");
  }
  const jwtSecret = env("JWT_SECRET")?.trim() || env("SUPABASE_JWT_SECRET")?.trim() || undefined;
  const supabaseUrl = env("SUPABASE_URL")?.trim() ? url(env, "SUPABASE_URL") : undefined;
  if (!jwks && !jwtSecret && !supabaseUrl) {
    throw new ConfigError(
      "no JWT verification key: set SUPABASE_JWKS, SUPABASE_URL (for its JWKS) or SUPABASE_JWT_SECRET",
    );
  }
  return {
    dbUrl: required(env, "SUPABASE_DB_URL"),
    dbPoolMax: positiveInt(env, "DB_POOL_MAX", 10),
    supabaseUrl,
    jwks,
    jwtSecret,
    allowedOrigins: (env("ALLOWED_ORIGINS") ?? "").split(",").map((s) => s.trim()).filter(
      Boolean,
    ),
    razorpay: razorpay(env),
    stripe: stripe(env),
    razorpayx: razorpayx(env),
    webhookBodyLimitBytes: positiveInt(env, "WEBHOOK_BODY_LIMIT_BYTES", 256 * 1024),
    logRequests: env("LOG_REQUESTS")?.trim() !== "false",
    reconcile: reconcile(env),
    outbox: outbox(env),
    rateLimit: {
      enabled: onOff(env, "RATE_LIMITS", true),
      perUserPerMinute: positiveInt(env, "RATE_LIMIT_PER_USER_PER_MINUTE", 60),
      perIpPerMinute: positiveInt(env, "RATE_LIMIT_PER_IP_PER_MINUTE", 600),
      windowSeconds: 60,
      trustedProxyHeader: headerName(env, "TRUSTED_PROXY_HEADER"),
    },
  };
}
