// The local stack: every edge function behind one router, and the gateway simulator.
import { type App, createApp } from "../shared/app.ts";
import { type Config, loadConfig } from "../shared/config.ts";
import { json } from "../shared/http.ts";
import { handler as createOrder } from "../supabase/functions/create-order/handler.ts";
import { handler as verify } from "../supabase/functions/verify/handler.ts";
import { handler as webhook } from "../supabase/functions/webhook/handler.ts";
import { handler as paymentMethods } from "../supabase/functions/payment-methods/handler.ts";
import { handler as refunds } from "../supabase/functions/refunds/handler.ts";
import { handler as subscriptions } from "../supabase/functions/subscriptions/handler.ts";
import { handler as outboxDispatch } from "../supabase/functions/outbox-dispatch/handler.ts";
import { handler as reconcile } from "../supabase/functions/reconcile/handler.ts";
import { handler as gatewayAudit } from "../supabase/functions/gateway-audit/handler.ts";
import { handler as walletCharges } from "../supabase/functions/wallet-charges/handler.ts";
import { StripeSimulator } from "./simulator/stripe/mod.ts";
import { handler as engagements } from "../supabase/functions/engagements/handler.ts";
import { handler as escrowSettle } from "../supabase/functions/escrow-settle/handler.ts";
import { handler as payoutAccounts } from "../supabase/functions/payout-accounts/handler.ts";
import { handler as payouts } from "../supabase/functions/payouts/handler.ts";
import { RazorpayXSimulator } from "./simulator/razorpayx/mod.ts";
import {
  RazorpaySimulator,
  SimulatedConnectionReset,
  simulatedResetResponse,
} from "./simulator/razorpay/mod.ts";
import { PayPalSimulator } from "./simulator/paypal/mod.ts";
import { anonKey, LOCAL_JWT_SECRET, serviceRoleKey } from "./keys.ts";
import type { PagesContext } from "./pages.ts";

export const FUNCTIONS = {
  "create-order": createOrder,
  verify,
  webhook,
  "payment-methods": paymentMethods,
  refunds,
  subscriptions,
  "outbox-dispatch": outboxDispatch,
  reconcile,
  "gateway-audit": gatewayAudit,
  "wallet-charges": walletCharges,
  engagements,
  "escrow-settle": escrowSettle,
  "payout-accounts": payoutAccounts,
  payouts,
} as const;

export const LOCAL_STRIPE = {
  secretKey: "sk_test_settle_local",
  publishableKey: "pk_test_settle_local",
  webhookSecret: "whsec_settle_local",
  /** The Connect endpoint's own secret (STRIPE_CONNECT_WEBHOOK_SECRET). */
  connectWebhookSecret: "whsec_settle_local_connect",
};

export const LOCAL_RAZORPAY = {
  keyId: "rzp_test_SettleLocal001",
  keySecret: "settle_local_razorpay_key_secret",
  webhookSecret: "settle_local_razorpay_webhook_secret",
};

export const LOCAL_PAYPAL = {
  clientId: "settle-local-paypal-client",
  clientSecret: "settle_local_paypal_client_secret",
  webhookId: "8PT597110X687430LKGECATA",
};

export const LOCAL_RAZORPAYX = {
  keyId: "rzp_test_SettleLocalX01",
  keySecret: "settle_local_razorpayx_key_secret",
  accountNumber: "7878780080316316",
  webhookSecret: "settle_local_razorpayx_webhook_secret",
};

/** Variables the stack sets itself from its own addresses; the environment cannot move them. */
const STACK_OWNED = new Set(["SUPABASE_URL", "SUPABASE_DB_URL"]);

/**
 * What `deno task dev` takes from its environment: every non-empty variable except the ones the
 * stack owns (`.env.example`: "set one to override it"). The configuration reads only the names
 * it knows, so the rest of the environment is inert.
 */
export function devEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(([k, v]) => !STACK_OWNED.has(k) && v.trim() !== ""),
  );
}

export interface StackOptions {
  dbUrl: string;
  /** 0 picks a free port (tests); the defaults are Supabase's local ports. */
  port?: number;
  simulatorPort?: number;
  /** Stripe's simulator needs its own port: the SDK always calls /v1/... at the root. */
  stripePort?: number;
  hostname?: string;
  /** Extra environment on top of the local defaults. */
  env?: Record<string, string>;
  /** Serve the demo page and the local token helper (dev only). */
  devPages?: boolean;
  quiet?: boolean;
}

export interface Stack {
  url: string;
  functionsUrl: string;
  simulatorUrl: string;
  stripeUrl: string;
  anonKey: string;
  serviceRoleKey: string;
  jwtSecret: string;
  app: App;
  config: Config;
  razorpay: RazorpaySimulator;
  stripe: StripeSimulator;
  paypal: PayPalSimulator;
  razorpayx: RazorpayXSimulator;
  close(): Promise<void>;
}

type Serve = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Promise<Response>;

function listen(port: number, hostname: string, fn: Serve) {
  let resolveAddr: (a: Deno.NetAddr) => void;
  const addr = new Promise<Deno.NetAddr>((r) => (resolveAddr = r));
  const server = Deno.serve({
    port,
    hostname,
    onListen: (a) => resolveAddr(a as Deno.NetAddr),
    onError: (err) => {
      console.error(err);
      return json(500, { error: { code: "internal_error", message: "internal error" } });
    },
  }, fn);
  return { server, addr };
}

/** A simulator's fetch handler; a "reset" fault becomes a dropped connection here. */
async function mounted(sim: { fetch(req: Request): Promise<Response> }, req: Request) {
  try {
    return await sim.fetch(req);
  } catch (err) {
    if (err instanceof SimulatedConnectionReset) return simulatedResetResponse();
    throw err;
  }
}

interface Simulators {
  razorpay: RazorpaySimulator;
  stripe: StripeSimulator;
  paypal: PayPalSimulator;
  razorpayx: RazorpayXSimulator;
  simulatorUrl: string;
  stripeUrl: string;
  /** Every scheduled webhook delivery finished. */
  idle(): Promise<void>;
  /** Both ports closed. */
  shutdown(): Promise<void>;
}

/**
 * The gateway simulators: Razorpay, PayPal and RazorpayX under one port at /razorpay, /paypal
 * and /razorpayx; Stripe at the root of a port of its own.
 */
async function startSimulators(opts: StackOptions, hostname: string): Promise<Simulators> {
  const razorpay = new RazorpaySimulator({ ...LOCAL_RAZORPAY });
  const paypal = await PayPalSimulator.create({ ...LOCAL_PAYPAL });
  const razorpayx = new RazorpayXSimulator({ ...LOCAL_RAZORPAYX });
  const mounts = [["/razorpay", razorpay], ["/paypal", paypal], ["/razorpayx", razorpayx]] as const;
  const sim = listen(opts.simulatorPort ?? 54330, hostname, (req) => {
    const url = new URL(req.url);
    for (const [prefix, simulator] of mounts) {
      if (url.pathname === prefix || url.pathname.startsWith(`${prefix}/`)) {
        url.pathname = url.pathname.slice(prefix.length) || "/";
        return mounted(simulator, new Request(url, req));
      }
    }
    return Promise.resolve(
      json(404, { error: { code: "not_found", message: "simulator: /razorpay/..." } }),
    );
  });
  const simulatorUrl = `http://${hostname}:${(await sim.addr).port}`;
  paypal.setBaseUrl(`${simulatorUrl}/paypal`);

  const stripe = new StripeSimulator({ ...LOCAL_STRIPE });
  const stripeSim = listen(opts.stripePort ?? 54331, hostname, (req) => mounted(stripe, req));
  const stripeUrl = `http://${hostname}:${(await stripeSim.addr).port}`;
  return {
    razorpay,
    stripe,
    paypal,
    razorpayx,
    simulatorUrl,
    stripeUrl,
    async idle() {
      await razorpay.idle();
      await razorpayx.idle();
      await stripe.idle();
      await paypal.idle();
    },
    async shutdown() {
      await sim.server.shutdown();
      await stripeSim.server.shutdown();
    },
  };
}
/** The functions' environment: the local keys and the simulators' URLs, then opts.env. */
function stackEnv(
  opts: StackOptions,
  url: string,
  port: number,
  sims: Simulators,
): Record<string, string> {
  const { simulatorUrl, stripeUrl, paypal } = sims;
  return {
    SUPABASE_URL: url,
    SUPABASE_DB_URL: opts.dbUrl,
    SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
    ALLOWED_ORIGINS: `${url},http://localhost:${port}`,
    RAZORPAY_KEY_ID: LOCAL_RAZORPAY.keyId,
    RAZORPAY_KEY_SECRET: LOCAL_RAZORPAY.keySecret,
    RAZORPAY_WEBHOOK_SECRET: LOCAL_RAZORPAY.webhookSecret,
    RAZORPAY_API_URL: `${simulatorUrl}/razorpay`,
    RAZORPAY_TIMEOUT_MS: "5000",
    RAZORPAYX_KEY_ID: LOCAL_RAZORPAYX.keyId,
    RAZORPAYX_KEY_SECRET: LOCAL_RAZORPAYX.keySecret,
    RAZORPAYX_ACCOUNT_NUMBER: LOCAL_RAZORPAYX.accountNumber,
    RAZORPAYX_WEBHOOK_SECRET: LOCAL_RAZORPAYX.webhookSecret,
    RAZORPAYX_API_URL: `${simulatorUrl}/razorpayx`,
    RAZORPAYX_TIMEOUT_MS: "5000",
    STRIPE_SECRET_KEY: LOCAL_STRIPE.secretKey,
    STRIPE_PUBLISHABLE_KEY: LOCAL_STRIPE.publishableKey,
    STRIPE_WEBHOOK_SECRET: LOCAL_STRIPE.webhookSecret,
    STRIPE_CONNECT_WEBHOOK_SECRET: LOCAL_STRIPE.connectWebhookSecret,
    STRIPE_API_URL: stripeUrl,
    STRIPE_TIMEOUT_MS: "5000",
    PAYPAL_CLIENT_ID: LOCAL_PAYPAL.clientId,
    PAYPAL_CLIENT_SECRET: LOCAL_PAYPAL.clientSecret,
    PAYPAL_WEBHOOK_ID: LOCAL_PAYPAL.webhookId,
    PAYPAL_ENV: "sandbox",
    PAYPAL_API_URL: `${simulatorUrl}/paypal`,
    PAYPAL_TIMEOUT_MS: "5000",
    // The simulator's certificates, signed by its own CA (production allows PayPal's hosts only).
    PAYPAL_DEV_CERT_URL: paypal.certUrlPrefix,
    PAYPAL_DEV_CERT_CA: paypal.caPem,
    DB_POOL_MAX: "10",
    ...(opts.quiet ? { LOG_REQUESTS: "false" } : {}),
    ...opts.env,
  };
}

/** Every simulator sends its webhooks to the stack's own webhook function. */
function pointWebhooks(sims: Simulators, url: string) {
  sims.razorpay.setWebhookUrl(`${url}/functions/v1/webhook/razorpay`);
  sims.stripe.setWebhookUrl(`${url}/functions/v1/webhook/stripe`);
  sims.stripe.setConnectWebhookUrl(`${url}/functions/v1/webhook/stripe-connect`);
  sims.paypal.setWebhookUrl(`${url}/functions/v1/webhook/paypal`);
  sims.razorpayx.setWebhookUrl(`${url}/functions/v1/webhook/razorpayx`);
}

/** /functions/v1/<name>/... to the function; else the dev pages (when served); else 404. */
function router(
  app: App,
  devPages: typeof import("./pages.ts") | undefined,
  pageOptions: Omit<PagesContext, "app">,
): Serve {
  const handlers = new Map(Object.entries(FUNCTIONS).map(([name, h]) => [name, h(app)]));
  return async (req, info) => {
    const path = new URL(req.url).pathname;
    const m = path.match(/^\/functions\/v1\/([a-z0-9-]+)(\/.*)?$/);
    if (m) {
      const h = handlers.get(m[1]);
      // The peer address reaches the rate limiter (shared/ratelimit.ts clientIp).
      if (h) return await h(req, info);
      return json(404, { error: { code: "not_found", message: `no function ${m[1]}` } });
    }
    if (devPages) {
      const res = await devPages.serve(req, { app, ...pageOptions });
      if (res) return res;
    }
    return json(404, { error: { code: "not_found", message: "not found" } });
  };
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const sims = await startSimulators(opts, hostname);
  const { simulatorUrl, stripeUrl } = sims;

  // The router's port must be known before the app is configured (webhook URL), so bind first.
  let route: Serve = () =>
    Promise.resolve(json(503, { error: { code: "starting", message: "starting" } }));
  const server = listen(opts.port ?? 54321, hostname, (req, info) => route(req, info));
  const routerAddr = await server.addr;
  const url = `http://${hostname}:${routerAddr.port}`;

  const env = stackEnv(opts, url, routerAddr.port, sims);
  const config = loadConfig((k) => env[k]);
  // Local JWTs are HS256 with the CLI secret; there is no local JWKS to fetch.
  const app = createApp({ ...config, supabaseUrl: undefined });
  pointWebhooks(sims, url);

  // The local keys are signed with the secret the functions verify (JWT_SECRET or
  // SUPABASE_JWT_SECRET when set, else the CLI's well-known one).
  const jwtSecret = config.jwtSecret ?? LOCAL_JWT_SECRET;
  const keys = { anon: await anonKey(jwtSecret), service: await serviceRoleKey(jwtSecret) };
  const devPages = opts.devPages ? await import("./pages.ts") : undefined;
  route = router(app, devPages, {
    anonKey: keys.anon,
    serviceRoleKey: keys.service,
    simulatorUrl,
    stripeUrl,
    jwtSecret,
  });

  return {
    url,
    functionsUrl: `${url}/functions/v1`,
    simulatorUrl,
    stripeUrl,
    anonKey: keys.anon,
    serviceRoleKey: keys.service,
    jwtSecret,
    app,
    config,
    razorpay: sims.razorpay,
    stripe: sims.stripe,
    paypal: sims.paypal,
    razorpayx: sims.razorpayx,
    async close() {
      await sims.idle();
      await server.server.shutdown();
      await sims.shutdown();
      await app.sql.end({ timeout: 5 });
    },
  };
}
