// Outbox delivery: claims due deliveries, POSTs each signed event to its subscriber, records the outcome.
import { z } from "zod";
import type { App } from "../app.ts";
import type { OutboxConfig } from "../config.ts";
import { hmacSha256Hex } from "../crypto.ts";

/** What a subscriber receives: the stable event id to dedup on, and the row's public fields. */
export interface OutboxEventBody {
  id: string;
  type: string;
  created_at: string;
  account_id: string;
  data: Record<string, unknown>;
}

export interface DispatchResult {
  /** Deliveries claimed by this run. */
  claimed: number;
  /** Answered 2xx. */
  delivered: number;
  /** Failed; another attempt is scheduled with backoff. */
  retrying: number;
  /** Failed their last attempt: dead until an operator replays them. */
  dead: number;
  /** Outcomes not recorded because another worker had re-claimed the delivery meanwhile. */
  stale: number;
}

interface ClaimedDelivery {
  delivery_id: string;
  claim_token: string;
  attempt: number;
  event_id: string;
  event_type: string;
  event_created_at: Date;
  account_id: string;
  payload: Record<string, unknown>;
  subscriber_id: string;
  url: string;
  secret: string;
}

interface AttemptResult {
  ok: boolean;
  httpStatus: number | null;
  error?: string;
}

/** outbox-dispatch's optional body `{"limit"?: 1..1000}` (none at all: the defaults). */
export const DispatchRequest = z.strictObject({
  limit: z.number().int().min(1).max(1000).optional(),
});

/** The exact bytes POSTed (and signed) for an event: the same on every attempt. */
export function eventBody(e: {
  id: string;
  type: string;
  created_at: Date | string;
  account_id: string;
  payload: Record<string, unknown>;
}): string {
  const body: OutboxEventBody = {
    id: e.id,
    type: e.type,
    created_at: new Date(e.created_at).toISOString(),
    account_id: e.account_id,
    data: e.payload,
  };
  return JSON.stringify(body);
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as Stripe signs webhooks. */
export async function signatureHeader(
  secret: string,
  timestampSeconds: number,
  body: string,
): Promise<string> {
  return `t=${timestampSeconds},v1=${await hmacSha256Hex(secret, `${timestampSeconds}.${body}`)}`;
}

/**
 * How long a claim is held: enough for every claimed request to run to its timeout at the
 * configured concurrency, plus a margin. A worker that dies gives its claims back after this.
 */
export function leaseSeconds(limit: number, cfg: OutboxConfig): number {
  const rounds = Math.ceil(limit / cfg.concurrency);
  return rounds * Math.ceil(cfg.timeoutMs / 1000) + 30;
}

async function attempt(app: App, d: ClaimedDelivery): Promise<AttemptResult> {
  const timeoutMs = app.config.outbox.timeoutMs;
  const body = eventBody({
    id: d.event_id,
    type: d.event_type,
    created_at: d.event_created_at,
    account_id: d.account_id,
    payload: d.payload,
  });
  const t = Math.floor(app.now().getTime() / 1000);
  try {
    const res = await fetch(d.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "settle-outbox/1",
        "settle-event-id": d.event_id,
        "settle-event-type": d.event_type,
        "settle-timestamp": String(t),
        "settle-signature": await signatureHeader(d.secret, t, body),
        "settle-delivery-attempt": String(d.attempt),
      },
      body,
      // A redirect is a failure: the signed body is for this URL, and following it would leak it.
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300) return { ok: true, httpStatus: res.status };
    return { ok: false, httpStatus: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (name === "TimeoutError" || name === "AbortError") {
      return { ok: false, httpStatus: null, error: `no answer within ${timeoutMs} ms` };
    }
    return { ok: false, httpStatus: null, error: `request failed: ${String(err).slice(0, 300)}` };
  }
}

/** Runs fn over items with at most `limit` in flight; rethrows the first error after all ran. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        errors.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length) throw errors[0];
}

/**
 * One dispatch run: claims up to `limit` due deliveries (SKIP LOCKED, so runs may overlap), sends
 * each, and records 2xx as delivered and anything else as a failure with backoff. An outcome
 * that cannot be recorded (database down) leaves the claim to expire and the event to be sent
 * again: delivery is at least once.
 */
export async function dispatchOutbox(
  app: App,
  opts: { limit?: number } = {},
): Promise<DispatchResult> {
  const cfg = app.config.outbox;
  const limit = opts.limit ?? cfg.batchSize;
  const claimed = await app.sql<ClaimedDelivery[]>`
    select * from settle.outbox_claim(${limit}, ${leaseSeconds(limit, cfg)},
      ${cfg.maxAttempts}, ${app.now()})`;
  const result: DispatchResult = {
    claimed: claimed.length,
    delivered: 0,
    retrying: 0,
    dead: 0,
    stale: 0,
  };
  await pool(claimed, cfg.concurrency, async (d) => {
    const r = await attempt(app, d);
    if (r.ok) {
      await app.sql`select settle.outbox_record_success(${d.delivery_id}, ${d.claim_token},
        ${r.httpStatus}, ${app.now()})`;
      result.delivered++;
      return;
    }
    const [{ outcome }] = await app.sql`select settle.outbox_record_failure(${d.delivery_id},
      ${d.claim_token}, ${r.httpStatus}, ${r.error ?? "failed"}, ${cfg.maxAttempts},
      ${cfg.backoffBaseSeconds}, ${cfg.backoffMaxSeconds}, ${app.now()}) as outcome`;
    if (!outcome) result.stale++;
    else if (outcome.status === "dead") result.dead++;
    else result.retrying++;
  });
  return result;
}
