// Dev-only pages: the demo SPA and the operator page, supabase-js served from node_modules, a
// token helper for seeded users, read endpoints that stand in for PostgREST locally, a directory
// of users' personal accounts (the escrow demo's payee) and escrow settlement on demand.
import type { App } from "../shared/app.ts";
import { requireServiceRole, requireUser } from "../shared/auth.ts";
import { asUser, type Tx } from "../shared/db.ts";
import { errorResponse, HttpError, json } from "../shared/http.ts";
import { minorFromDb } from "../shared/money.ts";
import { userToken } from "./keys.ts";

export interface PagesContext {
  app: App;
  anonKey: string;
  /** Handed to the operator page only: it is local and nothing but a developer opens it. */
  serviceRoleKey: string;
  /** The secret the dev stack signs local tokens with (JWT_SECRET / SUPABASE_JWT_SECRET). */
  jwtSecret: string;
  simulatorUrl: string;
  stripeUrl: string;
}

const PUBLIC = new URL("./public/", import.meta.url);
// The self-contained UMD build (window.supabase): no CDN, works with the network closed.
const SUPABASE_JS = new URL(
  "../node_modules/@supabase/supabase-js/dist/umd/supabase.js",
  import.meta.url,
);
const PAGES: Record<string, string> = { "/": "index.html", "/operator": "operator.html" };
const ASSETS: Record<string, string> = {
  "/assets/app.js": "app.js",
  "/assets/checkout.js": "checkout.js",
  "/assets/escrow.js": "escrow.js",
  "/assets/money.js": "money.js",
  "/assets/ui.js": "ui.js",
  "/assets/operator.js": "operator.js",
  "/assets/style.css": "style.css",
};
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

function file(body: string, name: string): Response {
  const type = TYPES[name.slice(name.lastIndexOf(".") + 1)];
  return new Response(body, { headers: { "content-type": type, "cache-control": "no-store" } });
}

async function page(name: string, ctx: PagesContext, origin: string): Promise<Response> {
  const config = {
    // SUPABASE_URL: the functions and the /dev reads are served on the page's own origin.
    url: origin,
    anon_key: ctx.anonKey,
    razorpay_simulator_url: `${ctx.simulatorUrl}/razorpay`,
    stripe_simulator_url: ctx.stripeUrl,
    ...(name === "operator.html" ? { service_role_key: ctx.serviceRoleKey } : {}),
  };
  const html = (await Deno.readTextFile(new URL(name, PUBLIC)))
    .replace(`"__SETTLE_CONFIG__"`, JSON.stringify(config).replaceAll("<", "\\u003c"));
  return file(html, name);
}

export async function serve(req: Request, ctx: PagesContext): Promise<Response | undefined> {
  const url = new URL(req.url);
  if (req.method !== "GET" && req.method !== "POST") return undefined;
  if (req.method === "GET") {
    if (PAGES[url.pathname]) return await page(PAGES[url.pathname], ctx, url.origin);
    const asset = ASSETS[url.pathname];
    if (asset) return file(await Deno.readTextFile(new URL(asset, PUBLIC)), asset);
    if (url.pathname === "/vendor/supabase.js") {
      return file(await Deno.readTextFile(SUPABASE_JS), "supabase.js");
    }
  }
  if (!url.pathname.startsWith("/dev/")) return undefined;
  try {
    return await devRoute(req, url, ctx);
  } catch (err) {
    return errorResponse(err);
  }
}

async function devRoute(req: Request, url: URL, ctx: PagesContext) {
  const route = `${req.method} ${url.pathname}`;
  // Stands in for Supabase Auth sign-in locally: a token for a seeded user by email.
  if (route === "GET /dev/token") return await token(ctx, url);
  if (route === "GET /dev/accounts") return await personalAccount(ctx, req, url);
  if (route === "POST /dev/escrow-settle") return await escrowSettleNow(ctx, req, url);
  const replay = url.pathname.match(/^\/dev\/operator\/deliveries\/(\d{1,18})\/replay$/);
  if (req.method === "POST" && replay) {
    return json(200, await asOperator(ctx, req, (tx) => replayDelivery(tx, replay[1])));
  }
  const read = READS[route];
  if (read) return json(200, await asUser(ctx.app.sql, await ctx.app.authenticate(req), read));
  if (route === "GET /dev/operator/overview") {
    return json(200, await asOperator(ctx, req, operatorOverview));
  }
  throw new HttpError(404, "not_found", `no dev route ${route}`);
}

/** A user and their personal account by email (auth.users is not readable through RLS). */
async function userByEmail(ctx: PagesContext, email: string) {
  const [user] = await ctx.app.sql`select u.id, a.id as account_id from auth.users u
    left join public.accounts a on a.personal_owner_id = u.id where u.email = ${email}`;
  if (!user) throw new HttpError(404, "not_found", `no user ${email}`);
  return user as { id: string; account_id: string };
}

async function token(ctx: PagesContext, url: URL) {
  const email = url.searchParams.get("email") ?? "alice@example.com";
  const user = await userByEmail(ctx, email);
  return json(200, {
    access_token: await userToken(user.id, { email, secret: ctx.jwtSecret }),
    user_id: user.id,
    account_id: user.account_id,
  });
}

/**
 * GET /dev/accounts?email=: the personal account of a user, for a signed-in caller: the escrow
 * demo names its payee by email. A real marketplace knows the payee's account id already (from
 * a listing or a profile row of its own).
 */
async function personalAccount(ctx: PagesContext, req: Request, url: URL) {
  requireUser(await ctx.app.authenticate(req));
  const email = url.searchParams.get("email")?.trim();
  if (!email) throw new HttpError(400, "invalid_request", "email is required");
  const user = await userByEmail(ctx, email);
  return json(200, { email, account_id: user.account_id });
}

/**
 * POST /dev/escrow-settle: runs the escrow-settle function now, with the service role key the
 * dev server holds (the demo page never sees it), for any signed-in caller. It settles only what
 * is due, as the dev timer's run would; it saves waiting for the next tick.
 */
async function escrowSettleNow(ctx: PagesContext, req: Request, url: URL) {
  requireUser(await ctx.app.authenticate(req));
  const res = await fetch(`${url.origin}/functions/v1/escrow-settle`, {
    method: "POST",
    headers: { authorization: `Bearer ${ctx.serviceRoleKey}` },
  });
  return json(res.status, await res.json());
}

// Stand-ins for PostgREST, read as the caller so RLS applies. In production the app reads the
// same rows with supabase-js, e.g. supabase.from("orders").select("*").
const READS: Record<string, (tx: Tx) => Promise<unknown>> = {
  "GET /dev/wallets": async (tx) => {
    const rows = await tx`select account_id, currency, balance from public.wallets
                          order by currency, account_id`;
    return {
      wallets: rows.map((r) => ({ ...r, balance: minorFromDb(r.balance) })),
    };
  },
  "GET /dev/orders": async (tx) => {
    const rows = await tx`select id, purpose, plan_id, product_id, engagement_id, amount,
        amount_refunded,
        currency, gateway, status, failure_reason, created_at, paid_at
      from public.orders order by created_at desc, id limit 50`;
    return {
      orders: rows.map((r) => ({
        ...r,
        amount: minorFromDb(r.amount),
        amount_refunded: minorFromDb(r.amount_refunded),
      })),
    };
  },
  "GET /dev/catalog": async (tx) => {
    const currencies = await tx`select code, exponent, topup_min, topup_max
      from public.currencies where enabled order by code`;
    const plans = await tx`select id, name, amount, currency, billing_interval, interval_count
      from public.plans order by currency, amount`;
    return {
      currencies: currencies.map((c) => ({
        ...c,
        topup_min: minorFromDb(c.topup_min),
        topup_max: minorFromDb(c.topup_max),
      })),
      plans: plans.map((p) => ({ ...p, amount: minorFromDb(p.amount) })),
    };
  },
};

/** Operator reads and actions run as service_role (the key the operator page holds). */
async function asOperator<T>(ctx: PagesContext, req: Request, fn: (tx: Tx) => Promise<T>) {
  const caller = requireServiceRole(
    await ctx.app.authenticate(req),
    "the operator pages need the service role key",
  );
  return await asUser(ctx.app.sql, caller, fn);
}

async function operatorOverview(tx: Tx) {
  const stats = await tx`select day::text as day, gateway, currency, orders_created,
      orders_paid, orders_failed, orders_expired, success_rate::text as success_rate, gross,
      refunded, net
    from public.payment_stats where day > current_date - 14 order by day, gateway, currency`;
  const audit = await tx`select invariant, subject, detail from settle.ledger_audit()`;
  const dead = await tx`select d.id::text as id, e.type, e.subject_type, e.subject_id,
      s.name as subscriber, d.attempts, d.last_http_status, d.last_error, d.replays,
      d.last_attempt_at
    from public.outbox_deliveries d
    join public.outbox_events e on e.id = d.event_id
    join public.outbox_subscribers s on s.id = d.subscriber_id
    where d.status = 'dead' order by d.id desc limit 50`;
  const amounts = [
    "gross",
    "refunded",
    "net",
    "orders_created",
    "orders_paid",
    "orders_failed",
    "orders_expired",
  ];
  const currencies = await tx`select code, exponent from public.currencies order by code`;
  return {
    currencies,
    payment_stats: stats.map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [k, amounts.includes(k) ? minorFromDb(v) : v]),
      )
    ),
    ledger_audit: audit,
    dead_letters: dead,
  };
}

async function replayDelivery(tx: Tx, id: string) {
  const [r] = await tx`select settle.outbox_replay_delivery(${id}::bigint) as replayed`;
  return { replayed: r.replayed };
}
