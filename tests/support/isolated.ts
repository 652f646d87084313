// A database of its own for suites that act on every order in it (reconciliation claims the
// oldest stuck orders first, so other suites' leftovers in the shared run database would crowd
// them out), and a stack over it.
import { connect, createDatabase, dropDatabase, migrate, type Sql } from "../../dev/db.ts";
import { LOCAL_STRIPE, type Stack, startStack } from "../../dev/stack.ts";
import { client, invoke, raw, type TestStack, type TestUser } from "./stack.ts";

const adminUrl = () =>
  Deno.env.get("SETTLE_TEST_ADMIN_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface OwnDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh, migrated and seeded database; drop it when done. */
export async function ownDatabase(label: string): Promise<OwnDatabase> {
  const name = `settle_${label}_${Deno.pid}_${Date.now().toString(36)}`;
  const url = await createDatabase(adminUrl(), name);
  const sql = connect(url, 1);
  try {
    await migrate(sql, { seed: true });
  } finally {
    await sql.end();
  }
  return { url, drop: () => dropDatabase(adminUrl(), name) };
}

/**
 * Runs fn against a stack (stackOn) over a fresh database of its own (ownDatabase), then closes
 * the stack and drops the database, however fn ends.
 */
export async function withOwnStack<T>(
  label: string,
  env: Record<string, string>,
  fn: (s: TestStack) => Promise<T>,
): Promise<T> {
  const own = await ownDatabase(label);
  try {
    const s = await stackOn(own.url, env);
    try {
      return await fn(s);
    } finally {
      await s.close();
    }
  } finally {
    await own.drop();
  }
}

/** Like stack() in ./stack.ts, over the given database (e.g. through a proxy) instead. */
export async function stackOn(
  dbUrl: string,
  env: Record<string, string> = {},
  directUrl = dbUrl,
): Promise<TestStack> {
  const s = await startStack({
    dbUrl,
    port: 0,
    simulatorPort: 0,
    stripePort: 0,
    quiet: true,
    env,
  });
  const db = connect(directUrl, 4);
  return {
    ...s,
    db,
    async close() {
      await s.close();
      await db.end({ timeout: 5 });
    },
  };
}

// ---------------------------------------------------------------- helpers for these suites

/** POST /reconcile with the service role key (or another token) and a JSON body. */
export function reconcileHttp(s: TestStack, body: unknown = {}, token = s.serviceRoleKey) {
  return raw(s, "reconcile", {
    method: "POST",
    token,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Puts every order reconciliation could claim out of its reach: a step sees only its own. */
export async function parkOpenOrders(db: Sql) {
  await db`update public.orders set reconcile_after = 'infinity'
           where status in ('created', 'authorized', 'failed', 'expired')`;
}

async function post(url: string, body: unknown) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** POST /_sim/razorpay/<path> (faults, config, ...). */
export function razorpaySim(s: Stack, path: string, body: unknown) {
  return post(`${s.simulatorUrl}/razorpay/_sim/razorpay/${path}`, body);
}

/** POST /_sim/stripe/<path> (faults, config, ...). */
export function stripeSim(s: Stack, path: string, body: unknown) {
  return post(`${s.stripeUrl}/_sim/stripe/${path}`, body);
}

/** Clears both simulators' armed faults. */
export async function clearFaults(s: Stack) {
  for (
    const url of [
      `${s.simulatorUrl}/razorpay/_sim/razorpay/faults`,
      `${s.stripeUrl}/_sim/stripe/faults`,
    ]
  ) {
    const res = await fetch(url, { method: "DELETE" });
    await res.body?.cancel();
  }
}

/** A Stripe top-up through create-order. */
export async function stripeTopup(s: Stack, user: TestUser, amount: number, currency = "USD") {
  const r = await invoke(client(s, user.token), "create-order", {
    gateway: "stripe",
    purpose: "wallet_topup",
    amount,
    currency,
  });
  if (r.status !== 201) throw new Error(`create-order ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body as {
    order: { id: string; gateway_order_id: string; amount: number; currency: string };
    checkout: { payment_intent_id: string; client_secret: string };
  };
}

/** Stripe API call with the secret key (form-encoded), as a server would make it. */
export async function stripeApi(s: Stack, method: string, path: string, form = {}) {
  const res = await fetch(`${s.stripeUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${LOCAL_STRIPE.secretKey}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: method === "GET" ? undefined : new URLSearchParams(form).toString(),
  });
  // deno-lint-ignore no-explicit-any
  return { status: res.status, body: await res.json() as any };
}

/** How many ledger transactions an order posted (one when paid, never more). */
export async function credits(db: Sql, orderId: string): Promise<number> {
  const [{ n }] = await db`select count(*)::int as n from public.ledger_transactions
    where order_id = ${orderId}`;
  return n;
}

export interface OrderState {
  status: string;
  gateway_order_id: string | null;
  reconcile_attempts: number;
  reconcile_claim: string | null;
  last_gateway_error: string | null;
  failure_code: string | null;
  /** Seconds until the order may be claimed again (negative: claimable). */
  wait_seconds: number | null;
}

export async function orderState(db: Sql, orderId: string): Promise<OrderState> {
  const [o] = await db`select status, gateway_order_id, reconcile_attempts, reconcile_claim,
      last_gateway_error, failure_code,
      extract(epoch from reconcile_after - now())::float8 as wait_seconds
    from public.orders where id = ${orderId}`;
  return { ...o } as OrderState;
}

/** Waits (polling the database clock) until none of the orders is leased or backing off. */
export async function untilClaimable(db: Sql, orderIds: string[], timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [{ waiting }] = await db`select count(*)::int as waiting from public.orders
      where id = any(${orderIds}::uuid[]) and reconcile_after > now()`;
    if (waiting === 0) return;
    if (Date.now() > deadline) throw new Error(`${waiting} orders still leased`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
