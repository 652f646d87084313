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
import { anonKey, LOCAL_JWT_SECRET, serviceRoleKey } from "./keys.ts";

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

export async function startStack(opts: StackOptions): Promise<Stack> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const razorpay = new RazorpaySimulator({ ...LOCAL_RAZORPAY });
  const razorpayx = new RazorpayXSimulator({ ...LOCAL_RAZORPAYX });

  const sim = listen(opts.simulatorPort ?? 54330, hostname, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/razorpay" || url.pathname.startsWith("/razorpay/")) {
      url.pathname = url.pathname.slice("/razorpay".length) || "/";
      try {
        return await razorpay.fetch(new Request(url, req));
      } catch (err) {
        if (err instanceof SimulatedConnectionReset) return simulatedResetResponse();
        throw err;
      }
    }
    if (url.pathname === "/razorpayx" || url.pathname.startsWith("/razorpayx/")) {
      url.pathname = url.pathname.slice("/razorpayx".length) || "/";
      try {
        return await razorpayx.fetch(new Request(url, req));
      } catch (err) {
        if (err instanceof SimulatedConnectionReset) return simulatedResetResponse();
        throw err;
      }
    }
    return json(404, { error: { code: "not_found", message: "simulator: /razorpay/..." } });
  });
  const simAddr = await sim.addr;
  const simulatorUrl = `http://${hostname}:${simAddr.port}`;

  const stripe = new StripeSimulator({ ...LOCAL_STRIPE });
  const stripeSim = listen(opts.stripePort ?? 54331, hostname, async (req) => {
    try {
      return await stripe.fetch(req);
    } catch (err) {
      if (err instanceof SimulatedConnectionReset) return simulatedResetResponse();
      throw err;
    }
  });
  const stripeUrl = `http://${hostname}:${(await stripeSim.addr).port}`;

  // The router's port must be known before the app is configured (webhook URL), so bind first.
  let route: Serve = () =>
    Promise.resolve(json(503, { error: { code: "starting", message: "starting" } }));
  const router = listen(opts.port ?? 54321, hostname, (req, info) => route(req, info));
  const routerAddr = await router.addr;
  const url = `http://${hostname}:${routerAddr.port}`;

  const env: Record<string, string> = {
    SUPABASE_URL: url,
    SUPABASE_DB_URL: opts.dbUrl,
    SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
    ALLOWED_ORIGINS: `${url},http://localhost:${routerAddr.port}`,
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
    DB_POOL_MAX: "10",
    ...(opts.quiet ? { LOG_REQUESTS: "false" } : {}),
    ...opts.env,
  };
  const config = loadConfig((k) => env[k]);
  // Local JWTs are HS256 with the CLI secret; there is no local JWKS to fetch.
  const app = createApp({ ...config, supabaseUrl: undefined });
  razorpay.setWebhookUrl(`${url}/functions/v1/webhook/razorpay`);
  stripe.setWebhookUrl(`${url}/functions/v1/webhook/stripe`);
  stripe.setConnectWebhookUrl(`${url}/functions/v1/webhook/stripe-connect`);
  razorpayx.setWebhookUrl(`${url}/functions/v1/webhook/razorpayx`);

  const handlers = new Map(Object.entries(FUNCTIONS).map(([name, h]) => [name, h(app)]));
  // The local keys are signed with the secret the functions verify (JWT_SECRET or
  // SUPABASE_JWT_SECRET when set, else the CLI's well-known one).
  const jwtSecret = config.jwtSecret ?? LOCAL_JWT_SECRET;
  const keys = { anon: await anonKey(jwtSecret), service: await serviceRoleKey(jwtSecret) };
  const devPages = opts.devPages ? await import("./pages.ts") : undefined;

  route = async (req, info) => {
    const path = new URL(req.url).pathname;
    const m = path.match(/^\/functions\/v1\/([a-z0-9-]+)(\/.*)?$/);
    if (m) {
      const h = handlers.get(m[1]);
      // The peer address reaches the rate limiter (shared/ratelimit.ts clientIp).
      if (h) return await h(req, info);
      return json(404, { error: { code: "not_found", message: `no function ${m[1]}` } });
    }
    if (devPages) {
      const res = await devPages.serve(req, {
        app,
        anonKey: keys.anon,
        serviceRoleKey: keys.service,
        simulatorUrl,
        stripeUrl,
        jwtSecret,
      });
      if (res) return res;
    }
    return json(404, { error: { code: "not_found", message: "not found" } });
  };

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
    razorpay,
    stripe,
    razorpayx,
    async close() {
      await razorpay.idle();
      await razorpayx.idle();
      await stripe.idle();
      await router.server.shutdown();
      await sim.server.shutdown();
      await stripeSim.server.shutdown();
      await app.sql.end({ timeout: 5 });
    },
  };
}
