// Reconciliation: a list of steps (stuck orders, failed webhook events, ...) run one after another.
import type { App } from "../app.ts";
import { eachLimited } from "../concurrency.ts";
import { GatewayError, type GatewayName, type PaymentResult } from "../gateways/types.ts";
import { minorFromDb } from "../money.ts";
import { convergeDisputes, DISPUTE_LIST_SECONDS } from "./disputes.ts";
import { applyPayment } from "./orders.ts";
import { reconcileRefunds } from "./refunds.ts";
import { retryOwedReads } from "./webhooks.ts";
import { expireHolds } from "./wallet_charges.ts";
import { reconcilePayouts } from "./payouts.ts";

/** One run's knobs; anything omitted comes from app.config.reconcile. */
export interface ReconcileOptions {
  /** Orders claimed per run (1..1000). */
  limit?: number;
  /** Orders created/authorized for longer than this are asked about. */
  olderThanSeconds?: number;
  /** Orders still created after this expire. */
  expirySeconds?: number;
  /** Failed and expired orders younger than this are asked about again. */
  recheckSeconds?: number;
  leaseSeconds?: number;
  retrySeconds?: number;
  concurrency?: number;
}

type Settings = Required<ReconcileOptions>;

/** What a step did, by outcome; each step names its own counts. */
export type Counts = Record<string, number>;

export interface ReconcileStep {
  /** The key of its counts in the summary. */
  name: string;
  run(app: App, settings: Settings): Promise<Counts>;
}

export interface OrderCounts extends Counts {
  claimed: number;
  paid: number;
  authorized: number;
  failed: number;
  expired: number;
  unchanged: number;
  mismatched: number;
  errors: number;
}

interface Claimed {
  order_id: string;
  gateway: GatewayName;
  gateway_order_id: string | null;
  status: "created" | "authorized" | "failed" | "expired";
  expiry_due: boolean;
}

type Outcome =
  | "paid"
  | "authorized"
  | "failed"
  | "expired"
  | "unchanged"
  | "mismatched"
  | "errors";

function log(level: "warn" | "error", msg: string, fields: Record<string, unknown>) {
  console.error(JSON.stringify({ level, function: "reconcile", msg, ...fields }));
}

/**
 * Orders stuck in created/authorized (and failed/expired ones a later capture may still pay):
 * claim a batch (one short transaction), ask each one's gateway outside any transaction,
 * converge through settle.apply_payment (the path verify and webhooks take) or expire it, then
 * release the batch with a backoff.
 */
export const stuckOrders: ReconcileStep = {
  name: "orders",
  async run(app, s) {
    const counts: OrderCounts = {
      claimed: 0,
      paid: 0,
      authorized: 0,
      failed: 0,
      expired: 0,
      unchanged: 0,
      mismatched: 0,
      errors: 0,
    };
    const configured = app.configuredGateways();
    const claim = crypto.randomUUID();
    const started = performance.now();
    const claimed = await app.sql<Claimed[]>`select * from settle.claim_stuck_orders(
      ${claim}, ${configured as string[]}, ${s.limit}, ${s.olderThanSeconds}, ${s.expirySeconds},
      ${s.leaseSeconds}, ${s.recheckSeconds})`;
    counts.claimed = claimed.length;
    const done: string[] = [];
    // Stop starting gateway reads well inside the lease, so no other reconciler can claim an
    // order while this one still works on it; the rest is freed when the lease runs out.
    const deadline = started + s.leaseSeconds * 1000 * 0.8;

    await eachLimited(claimed, s.concurrency, async (order) => {
      if (performance.now() > deadline) return;
      let outcome: Outcome;
      try {
        outcome = await settleOrder(app, order, s.expirySeconds);
      } catch (err) {
        outcome = "errors";
        const message = String((err as Error)?.message ?? err).slice(0, 500);
        log(err instanceof GatewayError ? "warn" : "error", "order not reconciled", {
          order_id: order.order_id,
          gateway: order.gateway,
          error: message,
        });
        if (err instanceof GatewayError) {
          await app.sql`update public.orders set last_gateway_error = ${message}
                        where id = ${order.order_id}`.catch(() => {});
        }
      }
      counts[outcome] += 1;
      done.push(order.order_id);
    });

    if (done.length > 0) {
      await app
        .sql`select settle.release_stuck_orders(${claim}, ${done}::uuid[], ${s.retrySeconds})`;
    }
    return counts;
  },
};

async function settleOrder(app: App, order: Claimed, expirySeconds: number): Promise<Outcome> {
  if (order.gateway_order_id === null) {
    // The gateway order was never created (or its id never learned): nothing can be paid.
    return await expire(app, order, expirySeconds);
  }
  // The order's own terms: a payment found only authorized is captured for exactly these.
  const [terms] = await app.sql<{ amount: string; currency: string }[]>`
    select amount, currency from public.orders where id = ${order.order_id}`;
  const result: PaymentResult = await app.gateway(order.gateway).fetchPayment({
    gatewayOrderId: order.gateway_order_id,
    amount: minorFromDb(terms.amount),
    currency: terms.currency,
  });
  if (result.kind === "pending") {
    return order.status === "created" && order.expiry_due
      ? await expire(app, order, expirySeconds)
      : "unchanged";
  }
  const applied = await applyPayment(app.sql, order.gateway, order.gateway_order_id, result);
  if (applied.outcome === "mismatch") {
    log("warn", "gateway payment does not match the order", { order_id: order.order_id });
    return "mismatched";
  }
  if (applied.outcome !== "applied") return "unchanged";
  switch (applied.status) {
    case "paid":
      return "paid";
    case "authorized":
      return "authorized";
    case "failed":
      return "failed";
    default:
      return "unchanged";
  }
}

async function expire(app: App, order: Claimed, expirySeconds: number): Promise<Outcome> {
  if (!order.expiry_due) return "unchanged";
  const [row] = await app.sql`select settle.expire_order(${order.order_id}, ${expirySeconds}) as r`;
  return row.r.outcome === "applied" ? "expired" : "unchanged";
}

/**
 * Stored webhook events whose gateway read failed (a setup intent's card, a charge's refunds):
 * read again and applied. Runs before the SQL retry, which cannot read a gateway.
 */
export const owedWebhookReads: ReconcileStep = {
  name: "webhook_reads",
  async run(app, s) {
    const r = await retryOwedReads(app, s);
    if (r.failed > 0) log("warn", "webhook gateway reads failed again", { failed: r.failed });
    return r;
  },
};

/** Stored webhook events whose effect raised, applied again (settle.retry_failed_webhooks). */
export const failedWebhooks: ReconcileStep = {
  name: "webhooks",
  async run(app, s) {
    const [row] = await app.sql`select settle.retry_failed_webhooks(${s.limit}, ${s.retrySeconds})
      as r`;
    const r = row.r as { retried: number; resolved: number; failed: number };
    if (r.failed > 0) log("warn", "webhook events failed again", { failed: r.failed });
    return { retried: r.retried, resolved: r.resolved, failed: r.failed };
  },
};

/**
 * Refunds left pending (the gateway was down, or its answer was lost): sent again under their
 * idempotency key, or read back from the gateway.
 */
export const pendingRefunds: ReconcileStep = {
  name: "refunds",
  async run(app, s) {
    const r = await reconcileRefunds(app, { limit: s.limit, olderThanSeconds: s.olderThanSeconds });
    return { checked: r.refunds_checked, settled: r.refunds_settled, errors: r.refund_errors };
  },
};

/**
 * Disputes at the gateways: those created in the last DISPUTE_LIST_SECONDS, and settle's older
 * unresolved ones read by id, converged through settle.apply_dispute_event (a missed dispute
 * webhook lands here). A gateway that cannot be read counts as errors; the run goes on.
 */
export const gatewayDisputes: ReconcileStep = {
  name: "disputes",
  async run(app, s) {
    const to = Math.floor(Date.now() / 1000);
    return await convergeDisputes(app, { from: to - DISPUTE_LIST_SECONDS, to }, { limit: s.limit });
  },
};

/** Subscriptions whose period ended: past_due, or canceled when asked at period end. */
export const lapsedSubscriptions: ReconcileStep = {
  name: "subscriptions",
  async run(app, s) {
    const [row] = await app.sql`select settle.lapse_subscriptions(now(), ${s.limit}) as lapsed`;
    return { lapsed: row.lapsed };
  },
};

/** Wallet holds past their expiry, released back to their wallets (SKIP LOCKED). */
export const expiredHolds: ReconcileStep = {
  name: "holds",
  async run(app, s) {
    return { released: await expireHolds(app, s.limit) };
  },
};

/**
 * Payouts pending or processing past the stuck threshold: sent again under their idempotency
 * key when the gateway never answered, else read from the gateway and converged.
 */
export const stuckPayouts: ReconcileStep = {
  name: "payouts",
  async run(app, s) {
    return await reconcilePayouts(app, { limit: s.limit, olderThanSeconds: s.olderThanSeconds });
  },
};

/** The steps of one run, in order. A new step is one more entry here. */
export const RECONCILE_STEPS: readonly ReconcileStep[] = [
  stuckOrders,
  owedWebhookReads,
  failedWebhooks,
  pendingRefunds,
  gatewayDisputes,
  lapsedSubscriptions,
  expiredHolds,
  stuckPayouts,
];

export interface ReconcileSummary {
  [step: string]: Counts | number;
  duration_ms: number;
}

/**
 * Runs every step, each on its own even when an earlier one threw (its error is rethrown after
 * the others ran). Safe to run concurrently with itself: every step claims with SKIP LOCKED.
 */
export async function reconcile(
  app: App,
  opts: ReconcileOptions = {},
  steps: readonly ReconcileStep[] = RECONCILE_STEPS,
): Promise<ReconcileSummary> {
  const c = app.config.reconcile;
  const settings: Settings = {
    limit: opts.limit ?? c.batchSize,
    olderThanSeconds: opts.olderThanSeconds ?? c.stuckSeconds,
    expirySeconds: opts.expirySeconds ?? c.expirySeconds,
    recheckSeconds: opts.recheckSeconds ?? c.recheckSeconds,
    leaseSeconds: opts.leaseSeconds ?? c.leaseSeconds,
    retrySeconds: opts.retrySeconds ?? c.retrySeconds,
    concurrency: opts.concurrency ?? c.concurrency,
  };
  const started = performance.now();
  const summary: ReconcileSummary = { duration_ms: 0 };
  let failure: unknown;
  for (const step of steps) {
    try {
      summary[step.name] = await step.run(app, settings);
    } catch (err) {
      failure ??= err;
      log("error", "reconcile step failed", { step: step.name, error: String(err) });
    }
  }
  if (failure !== undefined) throw failure;
  summary.duration_ms = Math.round(performance.now() - started);
  return summary;
}
