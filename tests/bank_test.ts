// A Jepsen-style bank test against the real Postgres: concurrent workers pay top-ups on both
// gateways, deliver verify and webhooks duplicated and reordered, refund (partially, fully,
// racing each other on one order, with client retries under one Idempotency-Key), fail refunds
// at the gateway, break the gateway's refund endpoint, and spend wallets, for a bounded number of
// operations chosen by a seeded PRNG. The app's backend also charges and holds wallets, resolves
// holds (capture, void, both racing; the rest expire) and refunds charges. Every answer is
// recorded in a model of what was accepted; at the end the ledger audits clean and every
// balance, order, refund and wallet charge is what the model says.
//
// BANK_OPS (default 1000), BANK_WORKERS (8), BANK_USERS (6) and BANK_SEED (random, printed)
// are read from the environment; the seed reproduces each worker's choices (the interleaving is
// the machine's).
import assert from "node:assert/strict";
import { LOCAL_STRIPE } from "../dev/stack.ts";
import { stripeSignatureHeader } from "../dev/simulator/stripe/mod.ts";
import {
  createUser,
  raw,
  type Reply,
  simEvents,
  type TestStack,
  type TestUser,
  withStack,
} from "./support/stack.ts";
import { LOCAL_RAZORPAY } from "../dev/stack.ts";
import { checkEscrow, opEscrow, quiesceEscrow } from "./support/bank_escrow.ts";
import {
  checkDisputes,
  DISPUTE_CHARGE_REFUSALS,
  DISPUTE_REFUSALS,
  disputeWalletGap,
  opDispute,
  quiesceDisputes,
} from "./support/bank_disputes.ts";

function intEnv(name: string, fallback: number): number {
  const v = Deno.env.get(name);
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer`);
  return n;
}

const OPS = intEnv("BANK_OPS", 1000);
const WORKERS = Math.max(1, intEnv("BANK_WORKERS", 8));
const USERS = Math.max(2, intEnv("BANK_USERS", 6));
const SEED = intEnv("BANK_SEED", Math.floor(Math.random() * 2 ** 31));

const RZP_AUTH = "Basic " + btoa(`${LOCAL_RAZORPAY.keyId}:${LOCAL_RAZORPAY.keySecret}`);
const STRIPE_AUTH = `Bearer ${LOCAL_STRIPE.secretKey}`;

type Gw = "razorpay" | "stripe";

// ------------------------------------------------------------------ seeded choices

class Rng {
  #a: number;
  constructor(seed: number) {
    this.#a = seed >>> 0;
  }
  /** mulberry32: [0, 1). */
  next(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  shuffle<T>(xs: T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
  weighted<T extends string>(w: Record<T, number>): T {
    const entries = Object.entries(w) as [T, number][];
    let r = this.next() * entries.reduce((a, [, n]) => a + n, 0);
    for (const [k, n] of entries) {
      if ((r -= n) < 0) return k;
    }
    return entries[entries.length - 1][0];
  }
}

// ------------------------------------------------------------------ the model

interface MOrder {
  id: string;
  user: TestUser;
  gw: Gw;
  currency: string;
  amount: number;
  gatewayOrderId: string;
  success: boolean;
  /** Razorpay Checkout's answer, for verify. */
  checkout: Record<string, unknown> | null;
  /** settle has been told the outcome (verify answered, or its webhooks were delivered). */
  settled: boolean;
  refunds: MRefund[];
}

interface MRefund {
  key: string;
  order: MOrder;
  body: Record<string, unknown>;
  token: string;
  /** Known once an answer named it (a 503 or 502 does not: a keyed retry tells). */
  id: string | null;
  amount: number | null;
  gatewayRefundId: string | null;
  /** 503: counted and pending; the client must retry under its key. */
  unresolved: boolean;
  /** 502: the gateway said no, so settle failed and reversed it. */
  refusedByGateway: boolean;
  /** We made it fail at the gateway after it was made. */
  failedAtGateway: boolean;
  /** Made in the gateway's dashboard, not through settle: settle learns it from webhooks. */
  dashboard?: boolean;
}

interface Tally {
  [k: string]: number;
}

/** A wallet charge or hold the model knows was made (by the app's backend, service role). */
interface MCharge {
  id: string;
  user: TestUser;
  currency: string;
  amount: number;
  status: "held" | "captured" | "released";
  /** Captured minus refunded: what a charge refund may still take back. */
  refundable: number;
  /** A worker is resolving or refunding it: the others leave it alone until it answers. */
  busy: boolean;
}

class Model {
  orders: MOrder[] = [];
  charges: MCharge[] = [];
  latePayments: MOrder[] = [];
  refunds = new Map<string, MRefund>();
  spends = new Map<string, number>();
  ops: Tally = {};
  accepted: Tally = {};
  refused: Tally = {};

  count(t: Tally, k: string) {
    t[k] = (t[k] ?? 0) + 1;
  }
  /** Money leaving (positive) or coming back to (negative) a wallet other than by orders. */
  spend(accountId: string, currency: string, amount: number) {
    const k = `${accountId}/${currency}`;
    this.spends.set(k, (this.spends.get(k) ?? 0) + amount);
  }
  spent(accountId: string, currency: string): number {
    return this.spends.get(`${accountId}/${currency}`) ?? 0;
  }
  /** What the model says the wallet holds, counting unresolved refunds (they are counted). */
  balance(accountId: string, currency: string, final = false): number {
    let sum = 0;
    for (const o of this.orders) {
      if (o.user.accountId !== accountId || o.currency !== currency || !o.success) continue;
      if (!final && !o.settled) continue;
      sum += o.amount - this.refunded(o);
    }
    return sum - this.spent(accountId, currency);
  }
  /** Refunded on the order as the model knows it; unknown amounts (a 503'd full refund) count all. */
  refunded(o: MOrder): number {
    let sum = 0;
    for (const r of o.refunds) {
      if (r.refusedByGateway || r.failedAtGateway) continue;
      sum += r.amount ?? 0;
    }
    return sum;
  }
}

// ------------------------------------------------------------------ the world

interface World {
  s: TestStack;
  users: TestUser[];
  model: Model;
}

function call(
  w: World,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return raw(w.s, path, {
    method,
    token,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function simPost(w: World, gw: Gw, path: string, body: unknown) {
  const base = gw === "razorpay"
    ? `${w.s.simulatorUrl}/razorpay/_sim/razorpay`
    : `${w.s.stripeUrl}/_sim/stripe`;
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

interface SimEvent {
  event_id: string;
  type: string;
  body: string;
  signature: string;
}

const isRefundEvent = (e: SimEvent) =>
  e.type.startsWith("refund.") || e.type.startsWith("charge.refund");

async function eventsOf(w: World, o: MOrder): Promise<SimEvent[]> {
  if (o.gw === "razorpay") return await simEvents(w.s, o.gatewayOrderId);
  const res = await fetch(`${w.s.stripeUrl}/_sim/stripe/events?related_id=${o.gatewayOrderId}`);
  return (await res.json()).events as SimEvent[];
}

/** Posts one event as the gateway would (Stripe signs every delivery attempt afresh). */
async function deliver(w: World, gw: Gw, e: SimEvent) {
  const r = gw === "razorpay"
    ? await raw(w.s, "webhook/razorpay", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-razorpay-signature": e.signature,
        "x-razorpay-event-id": e.event_id,
      },
      body: e.body,
    })
    : await raw(w.s, "webhook/stripe", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "stripe-signature": stripeSignatureHeader(
          LOCAL_STRIPE.webhookSecret,
          Math.floor(Date.now() / 1000),
          e.body,
        ),
      },
      body: e.body,
    });
  if (r.status !== 200) {
    throw new Error(`webhook ${e.type} → ${r.status} ${JSON.stringify(r.body)}`);
  }
}

/** Each event 1..maxCopies times, shuffled, all at once. */
async function deliverMessy(w: World, rng: Rng, gw: Gw, events: SimEvent[], maxCopies = 3) {
  const sends: SimEvent[] = [];
  for (const e of events) {
    for (let i = rng.int(1, maxCopies); i > 0; i--) sends.push(e);
  }
  await Promise.all(rng.shuffle(sends).map((e) => deliver(w, gw, e)));
}

async function verify(w: World, o: MOrder) {
  const body = o.gw === "razorpay" ? o.checkout : { payment_intent_id: o.gatewayOrderId };
  const r = await call(w, o.user.token, "POST", "verify", body);
  if (r.status !== 200 || r.body.order.status !== "paid") {
    throw new Error(`verify ${o.id} → ${r.status} ${JSON.stringify(r.body)}`);
  }
}

/** Tells settle about a payment: verify, webhooks (duplicated, reordered), or both at once. */
async function settlePayment(w: World, rng: Rng, o: MOrder) {
  const events = (await eventsOf(w, o)).filter((e) => !isRefundEvent(e));
  const mode = o.success ? rng.pick(["verify", "webhooks", "both"] as const) : "webhooks";
  w.model.count(w.model.ops, `deliver:${mode}`);
  if (mode === "verify") await verify(w, o);
  if (mode === "webhooks") await deliverMessy(w, rng, o.gw, events);
  if (mode === "both") await Promise.all([verify(w, o), deliverMessy(w, rng, o.gw, events)]);
  o.settled = true;
}

// ------------------------------------------------------------------ operations

async function opTopup(w: World, rng: Rng) {
  const user = rng.pick(w.users);
  const gw = rng.pick(["razorpay", "stripe"] as const);
  const currency = rng.pick(["INR", "USD"]);
  const amount = rng.int(1, 400) * 100;
  const r = await call(w, user.token, "POST", "create-order", {
    gateway: gw,
    purpose: "wallet_topup",
    amount,
    currency,
  });
  if (r.status !== 201) throw new Error(`create-order → ${r.status} ${JSON.stringify(r.body)}`);
  const success = !rng.chance(0.08);
  const o: MOrder = {
    id: r.body.order.id,
    user,
    gw,
    currency,
    amount,
    gatewayOrderId: r.body.order.gateway_order_id,
    success,
    checkout: null,
    settled: false,
    refunds: [],
  };
  const hold = { deliver: false };
  if (gw === "razorpay") {
    const paid = await simPost(w, gw, `/orders/${o.gatewayOrderId}/pay`, {
      outcome: success ? "success" : "failure",
      webhooks: hold,
    });
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    o.checkout = paid.body;
  } else {
    const paid = await simPost(w, gw, `/payment_intents/${o.gatewayOrderId}/confirm`, {
      outcome: success ? "success" : "failure",
      ...(success ? {} : { card: "4000000000000002" }),
      webhooks: hold,
    });
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
  }
  w.model.orders.push(o);
  w.model.count(w.model.accepted, success ? "topup:paid" : "topup:payment_failed");
  if (rng.chance(0.15)) {
    w.model.latePayments.push(o); // another operation delivers it later
    return;
  }
  await settlePayment(w, rng, o);
}

async function opLatePayment(w: World, rng: Rng) {
  if (w.model.latePayments.length === 0) return await opTopup(w, rng);
  const i = rng.int(0, w.model.latePayments.length - 1);
  const [o] = w.model.latePayments.splice(i, 1);
  await settlePayment(w, rng, o);
}

const REFUSALS = new Set([
  "409 refund_exceeds_payment",
  "409 insufficient_funds",
  "409 order_not_refundable",
  ...DISPUTE_REFUSALS,
]);

/** Records a refund request's answer in the model; returns what it was. */
function recordRefund(m: MRefund, r: Reply, mustRefuse: boolean): string {
  const code = `${r.status} ${r.body?.error?.code ?? ""}`.trim();
  if (r.status === 201 || r.status === 200) {
    const rf = r.body.refund;
    if (m.id !== null && m.id !== rf.id) {
      throw new Error(`key ${m.key} named refunds ${m.id} and ${rf.id}`);
    }
    m.id = rf.id;
    m.amount = rf.amount;
    m.gatewayRefundId = rf.gateway_refund_id ?? m.gatewayRefundId;
    m.unresolved = rf.status === "pending";
    if (rf.status === "failed") m.refusedByGateway = true;
    if (mustRefuse) throw new Error(`refund ${JSON.stringify(m.body)} was accepted: ${code}`);
    return "accepted";
  }
  if (r.status === 503 && r.body?.error?.code === "gateway_unavailable") {
    m.unresolved = true;
    if (mustRefuse) throw new Error(`refund ${JSON.stringify(m.body)} was counted: ${code}`);
    return "unavailable";
  }
  if (r.status === 502 && r.body?.error?.code === "gateway_error") {
    m.unresolved = true; // the keyed retry tells its id
    m.refusedByGateway = true;
    return "gateway_refused";
  }
  if (REFUSALS.has(code)) return code;
  throw new Error(`refund ${JSON.stringify(m.body)} → ${r.status} ${JSON.stringify(r.body)}`);
}

async function opRefund(w: World, rng: Rng) {
  // Mostly orders with something left to refund; sometimes any (failed, refunded in full).
  const settled = w.model.orders.filter((o) => o.settled);
  const open = settled.filter((o) => o.success && w.model.refunded(o) < o.amount);
  const candidates = open.length > 0 && rng.chance(0.85) ? open : settled;
  if (candidates.length === 0) return await opTopup(w, rng);
  const o = rng.pick(candidates);
  const n = rng.chance(0.3) ? rng.int(2, 3) : 1;
  const requests: { m: MRefund; mustRefuse: boolean; copies: number }[] = [];
  for (let i = 0; i < n; i++) {
    const kind = rng.weighted({ partial: 65, full: 25, over: 10 });
    const body: Record<string, unknown> = { order_id: o.id };
    if (kind === "partial") body.amount = rng.int(1, Math.max(1, Math.floor(o.amount / 200))) * 100;
    if (kind === "over") body.amount = o.amount + 100 * rng.int(1, 5);
    if (rng.chance(0.3)) body.reason = `bank ${kind}`;
    const token = rng.chance(0.2) ? w.s.serviceRoleKey : o.user.token;
    requests.push({
      m: {
        key: `bank-${crypto.randomUUID()}`,
        order: o,
        body,
        token,
        id: null,
        amount: null,
        gatewayRefundId: null,
        unresolved: false,
        refusedByGateway: false,
        failedAtGateway: false,
      },
      // More than the order was paid is refused whatever else is happening.
      mustRefuse: !o.success || kind === "over",
      // A client that sends the same keyed request twice at once.
      copies: rng.chance(0.15) ? 2 : 1,
    });
  }
  const sends = requests.flatMap((q) =>
    Array.from(
      { length: q.copies },
      () =>
        call(w, q.m.token, "POST", "refunds", q.m.body, { "Idempotency-Key": q.m.key })
          .then((r) => ({ q, r })),
    )
  );
  const answers = await Promise.all(sends);
  for (const q of requests) {
    const mine = answers.filter((a) => a.q === q);
    const outcomes = mine.map((a) => recordRefund(q.m, a.r, q.mustRefuse));
    const counted = outcomes.some((x) =>
      x === "accepted" || x === "unavailable" || x === "gateway_refused"
    );
    // Copies under one key that were counted name one refund (recordRefund checks). A refusal
    // writes nothing and keeps no key, so a copy refused a moment before a credit (a payment
    // settling, a failed refund returning money) and a copy counted after it are both right.
    if (counted && outcomes.some((x) => REFUSALS.has(x))) {
      w.model.count(w.model.ops, "same-key copies refused then counted");
    }
    if (counted) {
      o.refunds.push(q.m);
      w.model.refunds.set(q.m.key, q.m);
      w.model.count(w.model.accepted, `refund:${outcomes[0]}`);
    } else {
      w.model.count(
        w.model.refused,
        `refund:${outcomes[0]}${o.success ? "" : " (payment failed)"}`,
      );
    }
    if (!o.success) assert.equal(outcomes[0], "409 order_not_refundable");
  }
}

async function resolveRefund(w: World, m: MRefund): Promise<boolean> {
  const r = await call(w, m.token, "POST", "refunds", m.body, { "Idempotency-Key": m.key });
  if (r.status === 503) return false;
  if (r.status === 502) {
    recordRefund(m, r, false); // refused on the resend: the next retry names it, failed
    return false;
  }
  if (r.status !== 200) {
    throw new Error(`keyed retry ${m.key} → ${r.status} ${JSON.stringify(r.body)}`);
  }
  const wasRefused = m.refusedByGateway;
  recordRefund(m, r, false);
  if (wasRefused) assert.equal(r.body.refund.status, "failed", "a 502'd refund is failed");
  return !m.unresolved;
}

async function opRetry(w: World, rng: Rng) {
  const open = [...w.model.refunds.values()].filter((m) => m.unresolved);
  if (open.length === 0) return await opRefund(w, rng);
  await resolveRefund(w, rng.pick(open));
}

async function opRefundWebhooks(w: World, rng: Rng) {
  const withRefunds = w.model.orders.filter((o) => o.refunds.length > 0);
  if (withRefunds.length === 0) return await opRefund(w, rng);
  const o = rng.pick(withRefunds);
  const events = (await eventsOf(w, o)).filter(isRefundEvent).filter(() => rng.chance(0.7));
  await deliverMessy(w, rng, o.gw, events);
}

async function opFailRefund(w: World, rng: Rng) {
  const made = [...w.model.refunds.values()].filter((m) =>
    m.gatewayRefundId !== null && !m.failedAtGateway && !m.refusedByGateway
  );
  if (made.length === 0) return await opRefund(w, rng);
  const m = rng.pick(made);
  const r = await simPost(w, m.order.gw, `/refunds/${m.gatewayRefundId}/fail`, {});
  if (r.status !== 200) throw new Error(`fail ${m.gatewayRefundId} → ${JSON.stringify(r.body)}`);
  m.failedAtGateway = true;
  // Its refund.failed waits with the other held events; deliver it now, sometimes.
  if (rng.chance(0.5)) {
    const events = (await eventsOf(w, m.order)).filter(isRefundEvent);
    await deliverMessy(w, rng, m.order.gw, events, 2);
  }
}

/** A refund made in the gateway's dashboard (its API, without settle's notes/metadata). */
async function opDashboardRefund(w: World, rng: Rng) {
  const open = w.model.orders.filter((o) =>
    o.settled && o.success && w.model.refunded(o) < o.amount
  );
  if (open.length === 0) return await opRefund(w, rng);
  const o = rng.pick(open);
  const left = o.amount - w.model.refunded(o);
  const amount = rng.chance(0.3) ? left : rng.int(1, Math.max(1, Math.floor(left / 100))) * 100;
  const [row] = await w.s.db`select gateway_payment_id from public.orders where id = ${o.id}`;
  // Chaos may break the refund endpoint: the dashboard retries under its own idempotency key
  // (never settle's notes or metadata) until the gateway answers yes or no.
  const key = `dash-${crypto.randomUUID()}`;
  const send = () =>
    o.gw === "razorpay"
      ? fetch(`${w.s.simulatorUrl}/razorpay/v1/payments/${row.gateway_payment_id}/refund`, {
        method: "POST",
        headers: {
          authorization: RZP_AUTH,
          "content-type": "application/json",
          "x-refund-idempotency": key,
        },
        body: JSON.stringify({ amount }),
      })
      : fetch(`${w.s.stripeUrl}/v1/refunds`, {
        method: "POST",
        headers: {
          authorization: STRIPE_AUTH,
          "content-type": "application/x-www-form-urlencoded",
          "idempotency-key": key,
        },
        body: new URLSearchParams({ payment_intent: o.gatewayOrderId, amount: String(amount) }),
      });
  let answer: { status: number; out: { id: string; amount: number } } | null = null;
  for (let attempt = 0; attempt < 20 && answer === null; attempt++) {
    try {
      const res = await send();
      const out = await res.json();
      if (res.status === 200 || res.status === 400) answer = { status: res.status, out };
    } catch {
      // a dropped connection: send again under the key
    }
  }
  if (answer === null) throw new Error(`dashboard refund ${key} never answered`);
  // The gateway refuses what it has no room for (settle's own refunds got there first).
  if (answer.status === 400) return w.model.count(w.model.refused, `dashboard:${o.gw}`);
  const out = answer.out;
  const m: MRefund = {
    key: `dashboard-${out.id}`,
    order: o,
    body: { amount },
    token: "",
    id: null,
    amount: out.amount,
    gatewayRefundId: out.id,
    unresolved: false,
    refusedByGateway: false,
    failedAtGateway: false,
    dashboard: true,
  };
  o.refunds.push(m);
  w.model.refunds.set(m.key, m);
  w.model.count(w.model.accepted, `dashboard:${o.gw}`);
  // Its webhooks wait with the other held events; deliver them now, sometimes.
  if (rng.chance(0.5)) {
    await deliverMessy(w, rng, o.gw, (await eventsOf(w, o)).filter(isRefundEvent), 2);
  }
}

async function opChaos(w: World, rng: Rng) {
  const gw = rng.pick(["razorpay", "stripe"] as const);
  const mode = rng.pick(["error_503", "error_500", "reset", "reset_after", "timeout_after"]);
  const path = gw === "razorpay" ? "/v1/payments/*/refund" : "/v1/refunds";
  const r = await simPost(w, gw, "/faults", {
    faults: [{ method: "POST", path, mode, count: rng.int(1, 2), hold_ms: 50 }],
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  w.model.count(w.model.ops, `chaos:${gw}:${mode}`);
}

async function opSpend(w: World, rng: Rng) {
  const user = rng.pick(w.users);
  const currency = rng.pick(["INR", "USD"]);
  const hint = Math.max(100, w.model.balance(user.accountId, currency));
  const amount = rng.chance(0.2)
    ? hint + 100 * rng.int(1, 50)
    : rng.int(1, Math.max(1, Math.floor(hint / 100))) * 100;
  // The app spends the wallet (a purchase posted to the ledger); the balance check refuses it
  // when a refund or another spend got there first.
  try {
    await w.s.db.begin(async (tx) => {
      const [wallet] = await tx`select settle.ensure_wallet(${user.accountId}, ${currency}) as id`;
      await tx`select settle.post_transaction('purchase', ${`bank-spend:${crypto.randomUUID()}`},
        null, 'bank spend', ${
        w.s.db.json([
          { wallet_id: wallet.id, currency, amount: -amount },
          { system_account: "revenue:product", currency, amount },
        ])
      })`;
    });
    const k = `${user.accountId}/${currency}`;
    w.model.spends.set(k, (w.model.spends.get(k) ?? 0) + amount);
    w.model.count(w.model.accepted, "spend");
  } catch (err) {
    const msg = String((err as Error).message);
    if (!/insufficient wallet balance/.test(msg)) throw err;
    w.model.count(w.model.refused, "spend:insufficient_balance");
  }
}

// Wallet charges and holds (the app's backend spends and holds balances; holds resolve once).
async function opCharge(w: World, rng: Rng) {
  const user = rng.pick(w.users);
  const currency = rng.pick(["INR", "USD"]);
  const hint = Math.max(100, w.model.balance(user.accountId, currency));
  const amount = rng.chance(0.2)
    ? hint + 100 * rng.int(1, 50)
    : rng.int(1, Math.max(1, Math.floor(hint / 100))) * 100;
  const capture = rng.chance(0.5);
  const body = { account_id: user.accountId, amount, currency, capture };
  const key = `bank-charge-${crypto.randomUUID()}`;
  const copies = rng.chance(0.2) ? 2 : 1;
  const answers = await Promise.all(
    Array.from(
      { length: copies },
      () => call(w, w.s.serviceRoleKey, "POST", "wallet-charges", body, { "Idempotency-Key": key }),
    ),
  );
  const made = answers.filter((r) => r.status === 201 || r.status === 200);
  for (const r of answers) {
    const code = r.body?.error?.code;
    if (
      r.status !== 201 && r.status !== 200 && code !== "insufficient_funds" &&
      !DISPUTE_CHARGE_REFUSALS.includes(code)
    ) {
      throw new Error(`wallet charge → ${r.status} ${JSON.stringify(r.body)}`);
    }
  }
  if (made.length === 0) {
    return w.model.count(w.model.refused, `charge:${answers[0].body?.error?.code}`);
  }
  const ids = new Set(made.map((r) => r.body.charge.id));
  if (ids.size !== 1) throw new Error(`one key made charges ${[...ids].join(", ")}`);
  w.model.charges.push({
    id: made[0].body.charge.id,
    user,
    currency,
    amount,
    status: capture ? "captured" : "held",
    refundable: capture ? amount : 0,
    busy: false,
  });
  w.model.spend(user.accountId, currency, amount);
  w.model.count(w.model.accepted, capture ? "charge" : "hold");
}

/** Resolves an open hold: capture all or part, void, or capture and void racing (one wins). */
async function opResolveHold(w: World, rng: Rng) {
  const open = w.model.charges.filter((c) => c.status === "held" && !c.busy);
  if (open.length === 0) return await opCharge(w, rng);
  const c = rng.pick(open);
  c.busy = true;
  const mode = rng.pick(["capture", "partial", "void", "race"] as const);
  const part = rng.int(1, c.amount);
  const capture = () =>
    call(w, w.s.serviceRoleKey, "POST", `wallet-charges/${c.id}/capture`, {
      amount: mode === "partial" || mode === "race" ? part : c.amount,
    });
  const voidIt = () => call(w, w.s.serviceRoleKey, "POST", `wallet-charges/${c.id}/void`);
  const [cap, voided] = await Promise.all([
    mode === "void" ? null : capture(),
    mode === "capture" || mode === "partial" ? null : voidIt(),
  ]);
  const won = [cap, voided].filter((r) => r?.status === 200);
  if (won.length !== 1) {
    throw new Error(`hold ${c.id} ${mode}: ${cap?.status} ${voided?.status}`);
  }
  for (const r of [cap, voided]) {
    if (r && r.status !== 200 && r.body?.error?.code !== "charge_not_held") {
      throw new Error(`hold ${c.id} ${mode} → ${r.status} ${JSON.stringify(r.body)}`);
    }
  }
  const captured = cap?.status === 200 ? cap.body.charge.amount_captured as number : 0;
  c.status = captured > 0 ? "captured" : "released";
  c.refundable = captured;
  c.busy = false;
  w.model.spend(c.user.accountId, c.currency, captured - c.amount);
  w.model.count(w.model.accepted, `hold:${mode}:${captured > 0 ? "captured" : "released"}`);
}

/** Credits part of a captured charge back; more than remains is refused. */
async function opChargeRefund(w: World, rng: Rng) {
  const captured = w.model.charges.filter((c) => c.status === "captured" && !c.busy);
  if (captured.length === 0) return await opCharge(w, rng);
  const c = rng.pick(captured);
  c.busy = true;
  const over = rng.chance(0.2);
  const amount = over ? c.refundable + rng.int(1, 500) : rng.int(1, Math.max(1, c.refundable));
  const r = await call(w, w.s.serviceRoleKey, "POST", `wallet-charges/${c.id}/refund`, { amount });
  c.busy = false;
  if (r.status === 201) {
    if (amount > c.refundable) {
      throw new Error(`charge refund of ${amount} > ${c.refundable} accepted`);
    }
    c.refundable -= amount;
    w.model.spend(c.user.accountId, c.currency, -amount);
    return w.model.count(w.model.accepted, "charge_refund");
  }
  if (r.body?.error?.code !== "refund_exceeds_charge" || amount <= c.refundable) {
    throw new Error(
      `charge refund ${amount} of ${c.refundable} → ${r.status} ${JSON.stringify(r.body)}`,
    );
  }
  w.model.count(w.model.refused, "charge_refund:refund_exceeds_charge");
}

type OpName =
  | "topup"
  | "late"
  | "refund"
  | "dashboard"
  | "retry"
  | "refundHooks"
  | "fail"
  | "chaos"
  | "spend"
  | "charge"
  | "resolveHold"
  | "chargeRefund"
  | "escrow"
  | "dispute";
const WEIGHTS: Record<OpName, number> = {
  topup: 26,
  late: 8,
  refund: 28,
  dashboard: 6,
  retry: 6,
  refundHooks: 12,
  fail: 4,
  chaos: 3,
  spend: 7,
  charge: 6,
  resolveHold: 4,
  chargeRefund: 2,
  escrow: 4,
  dispute: 3,
};
const RUN: Record<OpName, (w: World, rng: Rng) => Promise<void>> = {
  topup: opTopup,
  late: opLatePayment,
  refund: opRefund,
  dashboard: opDashboardRefund,
  retry: opRetry,
  refundHooks: opRefundWebhooks,
  fail: opFailRefund,
  chaos: opChaos,
  spend: opSpend,
  charge: opCharge,
  resolveHold: opResolveHold,
  chargeRefund: opChargeRefund,
  escrow: opEscrow,
  dispute: (w, rng) => opDispute(w, rng, () => opTopup(w, rng)),
};

// ------------------------------------------------------------------ the end state

async function quiesce(w: World) {
  const { s, model } = w;
  const rng = new Rng(SEED ^ 0x5eed);
  for (const gw of ["razorpay", "stripe"] as const) {
    const base = gw === "razorpay"
      ? `${s.simulatorUrl}/razorpay/_sim/razorpay`
      : `${s.stripeUrl}/_sim/stripe`;
    await (await fetch(`${base}/faults`, { method: "DELETE" })).body?.cancel();
  }
  // Payments still held, then every pending refund retried under its key.
  for (const o of model.latePayments.splice(0)) await settlePayment(w, rng, o);
  for (let round = 0; round < 5; round++) {
    const open = [...model.refunds.values()].filter((m) => m.unresolved);
    if (open.length === 0) break;
    for (const m of open) await resolveRefund(w, m);
  }
  const open = [...model.refunds.values()].filter((m) => m.unresolved);
  assert.deepEqual(open.map((m) => m.key), [], "refunds still unresolved");
  // Every event of every order once more, duplicated and shuffled, a few orders at a time.
  const orders = rng.shuffle(model.orders);
  for (let i = 0; i < orders.length; i += 8) {
    await Promise.all(
      orders.slice(i, i + 8).map(async (o) => {
        await deliverMessy(w, rng, o.gw, await eventsOf(w, o), 2);
      }),
    );
  }
  await s.razorpay.idle();
  await s.stripe.idle();
  await quiesceDisputes(w, rng);
  // Holds still open: every other one voided, the rest left to the expiry sweep.
  const openHolds = model.charges.filter((c) => c.status === "held");
  for (const [i, c] of openHolds.entries()) {
    if (i % 2 === 0) {
      const r = await call(w, s.serviceRoleKey, "POST", `wallet-charges/${c.id}/void`);
      if (r.status !== 200) throw new Error(`void ${c.id} → ${r.status} ${JSON.stringify(r.body)}`);
    }
    c.status = "released";
    model.spend(c.user.accountId, c.currency, -c.amount);
  }
  await s.db`select settle.expire_wallet_holds(now() + interval '30 days', 10000)`;
  await quiesceEscrow(s);
}

async function gatewayRefunds(w: World, o: MOrder) {
  if (o.gw === "razorpay") {
    const [row] = await w.s.db`select gateway_payment_id from public.orders where id = ${o.id}`;
    if (!row.gateway_payment_id) return [];
    const res = await fetch(
      `${w.s.simulatorUrl}/razorpay/v1/payments/${row.gateway_payment_id}/refunds?count=100`,
      { headers: { authorization: RZP_AUTH } },
    );
    return ((await res.json()).items as { id: string; status: string; amount: number }[]);
  }
  const res = await fetch(
    `${w.s.stripeUrl}/v1/refunds?payment_intent=${o.gatewayOrderId}&limit=100`,
    { headers: { authorization: STRIPE_AUTH } },
  );
  return ((await res.json()).data as { id: string; status: string; amount: number }[]);
}

const statusFor = (amount: number, refunded: number) =>
  refunded === 0 ? "paid" : refunded < amount ? "partially_refunded" : "refunded";

async function check(w: World) {
  const { s, model } = w;
  const problems: string[] = [];

  const audit = await s.db`select * from settle.ledger_audit()`;
  for (const a of audit) problems.push(`audit: ${a.invariant} ${a.subject} ${a.detail}`);
  problems.push(...await checkEscrow(s, w.users, w));

  // Every order: status and refunded amount; one order_paid posting when paid, none otherwise.
  const ids = model.orders.map((o) => o.id);
  const rows = ids.length
    ? await s.db`select o.id, o.status, o.amount_refunded,
        (select count(*)::int from public.ledger_transactions t
         where t.idempotency_key = 'order_paid:' || o.id) as paid_postings
        from public.orders o where o.id in ${s.db(ids)}`
    : [];
  const byId = new Map(rows.map((r) => [r.id as string, r]));
  for (const o of model.orders) {
    const row = byId.get(o.id)!;
    const refunded = model.refunded(o);
    const want = o.success ? statusFor(o.amount, refunded) : "failed";
    if (refunded > o.amount) problems.push(`model: ${o.id} refunded ${refunded} of ${o.amount}`);
    if (row.status !== want || Number(row.amount_refunded) !== (o.success ? refunded : 0)) {
      problems.push(
        `order ${o.id}: ${row.status}/${row.amount_refunded}, model ${want}/${refunded}`,
      );
    }
    if (row.paid_postings !== (o.success ? 1 : 0)) {
      problems.push(`order ${o.id}: ${row.paid_postings} order_paid postings`);
    }
  }

  // Every refund the model accepted is one row, in the state the model predicts, and no others.
  const refundRows = ids.length
    ? await s.db`select id, order_id, amount, status, gateway_refund_id, source
                 from public.refunds where order_id in ${s.db(ids)}`
    : [];
  const known = new Map([...model.refunds.values()].map((m) => [m.id, m]));
  const dashboards = new Map(
    [...model.refunds.values()].filter((m) => m.dashboard)
      .map((m) => [m.gatewayRefundId, m]),
  );
  // A dashboard refund whose failure reached settle before it was counted has no row.
  const counted = new Set(refundRows.map((r) => r.gateway_refund_id));
  const expected =
    [...model.refunds.values()].filter((m) =>
      !(m.dashboard && m.failedAtGateway && !counted.has(m.gatewayRefundId))
    ).length;
  if (refundRows.length !== expected) {
    problems.push(`${refundRows.length} refund rows, model expects ${expected}`);
  }
  for (const r of refundRows) {
    const m = r.source === "gateway" ? dashboards.get(r.gateway_refund_id) : known.get(r.id);
    if (!m) {
      problems.push(`refund ${r.id} (${r.source}) is not one the model accepted`);
      continue;
    }
    const want = m.refusedByGateway || m.failedAtGateway ? "failed" : "processed";
    if (r.status !== want || Number(r.amount) !== m.amount || r.order_id !== m.order.id) {
      problems.push(`refund ${r.id}: ${r.status} ${r.amount}, model ${want} ${m.amount}`);
    }
  }

  // Wallets: paid top-ups minus non-failed refunds minus spends, per account and currency.
  for (const u of w.users) {
    for (const currency of ["INR", "USD"]) {
      const [wal] = await s.db`select balance from public.wallets
        where account_id = ${u.accountId} and currency = ${currency}`;
      // A dashboard refund the wallet could not cover took what it had; the platform
      // receivable advanced the rest (the shortfall).
      const [owed] = await s.db`select coalesce(-sum(e.amount), 0)::bigint as n
        from public.ledger_entries e
        join public.ledger_transactions t on t.id = e.transaction_id
        join public.orders o on o.id = t.order_id
        where e.system_account = 'receivable:refund_shortfall' and o.account_id = ${u.accountId}
          and e.currency = ${currency}`;
      const have = (wal ? Number(wal.balance) : 0) - Number(owed.n);
      // Disputes (tests/support/bank_disputes.ts): a lost one took its amount for good.
      const want = model.balance(u.accountId, currency, true) -
        await disputeWalletGap(w, u.accountId, currency);
      if (have !== want) {
        problems.push(
          `wallet ${u.email} ${currency}: ${have} less shortfall ${owed.n}, model ${want}`,
        );
      }
    }
  }

  // The gateways made exactly the refunds the model accepted (none for ones they refused),
  // failed exactly the ones we failed there.
  for (const o of model.orders) {
    if (!o.success) continue;
    const atGateway = await gatewayRefunds(w, o);
    const made = o.refunds.filter((m) => !m.refusedByGateway);
    const ids = new Set(made.map((m) => m.gatewayRefundId));
    if (atGateway.length !== made.length || atGateway.some((g) => !ids.has(g.id))) {
      problems.push(
        `order ${o.id} (${o.gw}): gateway refunds ${atGateway.map((g) => g.id).join(",")}, model ${
          [...ids].join(",")
        }`,
      );
    }
    for (const g of atGateway) {
      const failedThere = g.status === "failed";
      const m = made.find((x) => x.gatewayRefundId === g.id);
      if (m && m.failedAtGateway !== failedThere) {
        problems.push(`gateway refund ${g.id}: ${g.status}, model failed=${m.failedAtGateway}`);
      }
    }
  }

  // Every charge the model accepted is one row in the state the model says, and no others.
  const userIds = w.users.map((u) => u.accountId);
  const chargeRows = await s.db`select id, status, amount_captured - amount_refunded as kept
    from public.wallet_charges where account_id in ${s.db(userIds)}`;
  const charges = new Map(model.charges.map((c) => [c.id, c]));
  if (chargeRows.length !== model.charges.length) {
    problems.push(`${chargeRows.length} wallet charges, model accepted ${model.charges.length}`);
  }
  for (const r of chargeRows) {
    const c = charges.get(r.id);
    const status = r.status === "refunded" ? "captured" : r.status;
    if (!c || c.status !== status || (c.status === "captured" && Number(r.kept) !== c.refundable)) {
      problems.push(`wallet charge ${r.id}: ${r.status} ${r.kept}, model ${JSON.stringify(c)}`);
    }
  }

  problems.push(...await checkDisputes(w));

  // Every webhook applied cleanly: no stored failure, mismatch or unknown order.
  const bad = await s.db`select event_type, outcome, detail from public.webhook_events
    where outcome in ('failed', 'mismatch', 'unknown_order')`;
  for (const b of bad) problems.push(`webhook ${b.event_type}: ${b.outcome} ${b.detail}`);

  // The gateway audit over the run's window finds nothing: both gateways' own payments and
  // refunds agree with the orders, refunds and ledger (shared/services/gateway_audit.ts).
  const accounts = w.users.map((u) => u.accountId);
  const [span] = await s.db`select extract(epoch from min(created_at))::bigint as first
    from public.orders where account_id = any(${accounts}::uuid[])`;
  const to = Math.floor(Date.now() / 1000) + 1;
  const from = span.first === null ? to - 60 : Number(span.first) - 1;
  const gatewayAudit = await raw(s, "gateway-audit", {
    method: "POST",
    token: s.serviceRoleKey,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ from, to, account_ids: accounts }),
  });
  if (gatewayAudit.status !== 200) {
    problems.push(`gateway-audit ${gatewayAudit.status}: ${JSON.stringify(gatewayAudit.body)}`);
  } else {
    // Not vacuous: it read at least every payment the model saw succeed.
    const g = gatewayAudit.body.gateways;
    const listed = (g.razorpay?.payments ?? 0) + (g.stripe?.payments ?? 0);
    const succeeded = model.orders.filter((o) => o.success).length;
    if (listed < succeeded) {
      problems.push(`gateway-audit listed ${listed} of ${succeeded} payments`);
    }
  }
  const found = await s.db`select d.kind, d.gateway, d.gateway_object_id, d.detail
    from public.gateway_discrepancies d join public.orders o on o.id = d.order_id
    where o.account_id = any(${accounts}::uuid[]) and d.resolved_at is null`;
  for (const d of found) {
    problems.push(`gateway audit: ${d.kind} ${d.gateway} ${d.gateway_object_id}: ${d.detail}`);
  }
  return problems;
}

Deno.test({
  name: `bank: ${OPS} operations by ${WORKERS} workers over ${USERS} accounts (BANK_SEED=${SEED})`,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const started = performance.now();
    await withStack(async (s) => {
      // Every gateway event is held: the workers deliver them, duplicated and out of order.
      for (const gw of ["razorpay", "stripe"] as const) {
        const base = gw === "razorpay"
          ? `${s.simulatorUrl}/razorpay/_sim/razorpay`
          : `${s.stripeUrl}/_sim/stripe`;
        const res = await fetch(`${base}/config`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ webhooks: { deliver: false } }),
        });
        assert.equal(res.status, 200);
        await res.body?.cancel();
      }
      const users: TestUser[] = [];
      for (let i = 0; i < USERS; i++) users.push(await createUser(s.db, `bank${i}`));
      const w: World = { s, users, model: new Model() };

      let next = 0;
      const worker = async (id: number) => {
        const rng = new Rng((SEED + Math.imul(id + 1, 0x9e3779b1)) >>> 0);
        while (next < OPS) {
          next++;
          const op = rng.weighted(WEIGHTS);
          w.model.count(w.model.ops, op);
          await RUN[op](w, rng);
        }
      };
      try {
        await Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(i)));
        await quiesce(w);
      } catch (err) {
        console.error(`bank test failed during the run: BANK_SEED=${SEED}`);
        throw err;
      }
      const problems = await check(w);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const summary = {
        seed: SEED,
        ops: OPS,
        workers: WORKERS,
        users: USERS,
        seconds: Number(seconds),
        orders: w.model.orders.length,
        refunds_accepted: w.model.refunds.size,
        refunds_failed: [...w.model.refunds.values()].filter((m) =>
          m.failedAtGateway || m.refusedByGateway
        ).length,
        op_counts: w.model.ops,
        accepted: w.model.accepted,
        refused: w.model.refused,
        problems: problems.length,
      };
      console.log(`bank: ${JSON.stringify(summary)}`);
      if (problems.length) {
        console.error(`bank test found ${problems.length} problems (BANK_SEED=${SEED}):`);
        for (const p of problems.slice(0, 50)) console.error(`  ${p}`);
      }
      assert.deepEqual(problems, [], `BANK_SEED=${SEED}`);
      // The run did what it is for: refunds were accepted and refused, payments made.
      assert.ok(OPS < 50 || w.model.refunds.size > 0, "no refund was accepted");
    });
  },
});
