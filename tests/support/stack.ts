// Test support: a stack on free ports over the run's fresh database, users, and snapshots.
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { connect, createDatabase, migrate, type Sql } from "../../dev/db.ts";
import { type Stack, startStack } from "../../dev/stack.ts";
import { userToken } from "../../dev/keys.ts";

let ownDb: Promise<string> | undefined;

/** The run's database (scripts/test.ts makes it); a standalone `deno test` makes its own. */
export function testDbUrl(): Promise<string> {
  const url = Deno.env.get("SETTLE_TEST_DB_URL");
  if (url) return Promise.resolve(url);
  return ownDb ??= (async () => {
    const admin = Deno.env.get("SETTLE_TEST_ADMIN_URL") ??
      "postgres://postgres@127.0.0.1:5432/postgres";
    const dbUrl = await createDatabase(admin, `settle_test_local_${Deno.pid}`);
    const sql = connect(dbUrl, 1);
    await migrate(sql, { seed: true });
    await sql.end();
    return dbUrl;
  })();
}

export interface TestStack extends Stack {
  /** A direct connection as the database owner, for arranging and asserting. */
  db: Sql;
}

/**
 * Limits the suites never reach (every local request shares the address "unknown"), so the
 * rate-limit check still runs on every request; tests/rate_limit_test.ts sets its own.
 */
const TEST_RATE_LIMITS = {
  RATE_LIMIT_PER_USER_PER_MINUTE: "1000000",
  RATE_LIMIT_PER_IP_PER_MINUTE: "1000000",
};

/** `devPages` also serves the demo and operator pages and their /dev/... endpoints (browser tests). */
export async function stack(
  env: StackEnv = {},
  opts: StackOpts = {},
): Promise<TestStack> {
  const dbUrl = await testDbUrl();
  const s = await startStack({
    dbUrl,
    port: 0,
    simulatorPort: 0,
    stripePort: 0,
    quiet: true,
    devPages: opts.devPages ?? false,
    env: { ...TEST_RATE_LIMITS, ...env },
  });
  const db = connect(dbUrl, 4);
  return {
    ...s,
    db,
    async close() {
      await s.close();
      await db.end({ timeout: 5 });
    },
  };
}

type StackEnv = Record<string, string>;
type StackOpts = { devPages?: boolean };

/**
 * Runs fn against a fresh stack (`stack(env, opts)`) and closes the stack afterwards, however fn
 * ends: `withStack(fn)`, `withStack(env, fn)` or `withStack(env, opts, fn)`.
 */
export async function withStack<T>(
  ...args:
    | [(s: TestStack) => Promise<T>]
    | [StackEnv, (s: TestStack) => Promise<T>]
    | [StackEnv, StackOpts, (s: TestStack) => Promise<T>]
): Promise<T> {
  const fn = args[args.length - 1] as (s: TestStack) => Promise<T>;
  const env = args.length > 1 ? args[0] as StackEnv : {};
  const opts = args.length > 2 ? args[1] as StackOpts : {};
  const s = await stack(env, opts);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

export interface TestUser {
  id: string;
  email: string;
  token: string;
  accountId: string;
  walletId: string;
}

/** A new auth user; the database trigger gives it an account and an INR wallet. */
export async function createUser(db: Sql, label = "user"): Promise<TestUser> {
  const id = crypto.randomUUID();
  const email = `${label}-${id.slice(0, 8)}@test.local`;
  await db`insert into auth.users (id, email) values (${id}, ${email})`;
  const [acct] = await db`select a.id as account_id, w.id as wallet_id
    from public.accounts a join public.wallets w on w.account_id = a.id and w.currency = 'INR'
    where a.personal_owner_id = ${id}`;
  return {
    id,
    email,
    token: await userToken(id, { email }),
    accountId: acct.account_id,
    walletId: acct.wallet_id,
  };
}

export function client(s: Stack, token?: string): SupabaseClient {
  return createClient(s.url, s.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
  });
}

export interface Reply {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** supabase-js functions.invoke, with the status and JSON body of errors as well. */
export async function invoke(
  c: SupabaseClient,
  name: string,
  body?: unknown,
  opts: { headers?: Record<string, string>; method?: "POST" | "GET" | "DELETE" } = {},
): Promise<Reply> {
  const { data, error, response } = await c.functions.invoke(name, {
    body: body as Record<string, unknown>,
    headers: opts.headers,
    method: opts.method ?? "POST",
  });
  if (error) {
    const res = (error as { context?: Response }).context;
    if (!res) throw error;
    return { status: res.status, body: await res.json().catch(() => null) };
  }
  return { status: response?.status ?? 200, body: data };
}

/** Raw HTTP for what supabase-js would not send (bad content types, forged headers). */
export async function raw(
  s: Stack,
  path: string,
  init: RequestInit & { token?: string } = {},
): Promise<Reply> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  const res = await fetch(`${s.functionsUrl}/${path}`, { ...init, headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body };
}

export const TABLES = [
  "accounts",
  "account_members",
  "orders",
  "wallets",
  "ledger_transactions",
  "ledger_entries",
  "webhook_events",
  "payment_methods",
  "gateway_customers",
  "refunds",
  "subscriptions",
  "subscription_periods",
  "engagements",
] as const;

/** A checksum per table: equal snapshots mean no row was inserted, changed or deleted. */
export async function snapshot(db: Sql): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of TABLES) {
    const [r] = await db.unsafe(
      `select count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as sum
       from public.${t} t`,
    );
    out[t] = r.sum;
  }
  return out;
}

/** Waits until no simulator's webhook deliveries to the stack are in flight. */
export async function idle(s: Stack) {
  await s.razorpay.idle();
  await s.stripe.idle();
  await s.paypal.idle();
  await s.razorpayx.idle();
}

export async function walletBalance(db: Sql, accountId: string, currency = "INR") {
  const [w] = await db`select balance from public.wallets
    where account_id = ${accountId} and currency = ${currency}`;
  return w ? Number(w.balance) : 0;
}

/** Creates a top-up order through the API and returns the order and checkout. */
export async function topupOrder(s: Stack, user: TestUser, amount = 50000, currency = "INR") {
  const r = await invoke(client(s, user.token), "create-order", {
    gateway: "razorpay",
    purpose: "wallet_topup",
    amount,
    currency,
  });
  if (r.status !== 201) throw new Error(`create-order ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body as {
    order: { id: string; status: string; gateway_order_id: string; amount: number };
    checkout: { order_id: string; key_id: string; amount: number; currency: string };
  };
}

/** Pays an order at the simulator (Checkout), optionally without delivering webhooks. */
export async function payAtSimulator(
  s: Stack,
  gatewayOrderId: string,
  opts: { outcome?: "success" | "failure"; webhooks?: Record<string, unknown> } = {},
) {
  const res = await fetch(`${s.simulatorUrl}/razorpay/_sim/razorpay/orders/${gatewayOrderId}/pay`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ outcome: opts.outcome ?? "success", webhooks: opts.webhooks }),
  });
  // deno-lint-ignore no-explicit-any
  return await res.json() as any;
}

/** The signed events the simulator emitted for an order (exact bodies and signatures). */
export async function simEvents(s: Stack, gatewayOrderId: string) {
  const res = await fetch(
    `${s.simulatorUrl}/razorpay/_sim/razorpay/events?order_id=${gatewayOrderId}`,
  );
  return (await res.json()).events as {
    event_id: string;
    type: string;
    body: string;
    signature: string;
  }[];
}

export function postWebhook(
  s: Stack,
  e: { event_id: string; body: string; signature: string },
) {
  return raw(s, "webhook/razorpay", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-razorpay-signature": e.signature,
      "x-razorpay-event-id": e.event_id,
    },
    body: e.body,
  });
}

/** Stripe Checkout's stand-in: confirms an intent at the simulator with a test card. */
export async function confirmAtStripe(
  s: Stack,
  paymentIntentId: string,
  opts: { outcome?: "success" | "failure"; card?: string; webhooks?: Record<string, unknown> } = {},
) {
  const res = await fetch(`${s.stripeUrl}/_sim/stripe/payment_intents/${paymentIntentId}/confirm`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ outcome: opts.outcome ?? "success", ...opts }),
  });
  // deno-lint-ignore no-explicit-any
  return await res.json() as any;
}

export async function confirmSetupAtStripe(
  s: Stack,
  setupIntentId: string,
  card = "4242424242424242",
  webhooks?: Record<string, unknown>,
) {
  const res = await fetch(`${s.stripeUrl}/_sim/stripe/setup_intents/${setupIntentId}/confirm`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ card, webhooks }),
  });
  // deno-lint-ignore no-explicit-any
  return await res.json() as any;
}

export async function stripeEvents(s: Stack, objectId: string) {
  const res = await fetch(`${s.stripeUrl}/_sim/stripe/events?object_id=${objectId}`);
  return (await res.json()).events as {
    event_id: string;
    type: string;
    body: string;
    signature: string;
  }[];
}

export function postStripeWebhook(s: Stack, e: { body: string; signature: string }) {
  return raw(s, "webhook/stripe", {
    method: "POST",
    headers: { "content-type": "application/json", "stripe-signature": e.signature },
    body: e.body,
  });
}
