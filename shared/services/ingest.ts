// Storing a verified webhook event: one call of settle.ingest_webhook, which dedups the event,
// applies it and records its outcome in one transaction (docs/decisions.md, "One SQL function
// per webhook event").
import postgres from "postgres";
import { type Sql, type SqlValue, sqlValue } from "../db.ts";
import type { NormalizedEvent } from "../gateways/types.ts";

/** What settle.ingest_webhook answers for one event. */
export interface IngestResult {
  outcome:
    | "duplicate"
    | "applied"
    | "no_effect"
    | "ignored"
    | "unknown_order"
    | "mismatch"
    | "failed";
  duplicate: boolean;
  order_id?: string | null;
  status?: string;
  detail?: string | null;
}

/**
 * The settle.ingest_webhook call for one event as one statement without parameters: each field a
 * literal (sqlValue), in the type's field order. postgres.js sends a statement without
 * parameters as a simple query: one round trip, parsed once, where a parameterized one (with
 * prepared statements off, the default) costs a describe round trip first. Measured against the
 * parameterized form on the same connection: about a third less client CPU per call and less
 * Postgres CPU (bench/README.md, "Results (issue 16, third part)").
 */
export function ingestStatement(e: NormalizedEvent, effect: object | null, fast: boolean): string {
  if (e.amount !== null && !Number.isSafeInteger(e.amount)) {
    throw new TypeError(`an event amount must be an integer, not ${e.amount}`);
  }
  const fields: SqlValue[] = [
    e.gateway,
    e.eventId,
    e.type,
    e.kind,
    e.gatewayOrderId,
    e.gatewayPaymentId,
    e.amount,
    e.currency,
    e.occurredAt,
    e.raw,
    // The gateway's own failure texts are diagnostics: a NUL (JSON's \u0000) is dropped from them
    // rather than refusing the event, which Postgres text could not store either way.
    e.failureCode?.replaceAll("\0", "") ?? null,
    e.failureReason?.replaceAll("\0", "") ?? null,
    effect === null ? null : JSON.stringify(effect),
    e.bodyKey,
  ];
  return `select settle.ingest_webhook(row(${
    fields.map(sqlValue).join(", ")
  })::settle.incoming_event, ${sqlValue(fast)}) as result`;
}

/**
 * Stores one event (the effect, if any, is what the webhook service resolved for it) and
 * returns the row settle.ingest_webhook answered, `{ result }`.
 *
 * A capture of a pending order takes the fast path, which has no subtransaction: if its effect
 * raises anyway (a lock timeout, a bug), the whole call fails, and the call is made again on the
 * general path, which stores the event 'failed' for reconcile to retry. Repeating is safe: an
 * event that was stored after all answers as a duplicate.
 */
export async function storeEvent(
  sql: Sql,
  e: NormalizedEvent,
  effect: object | null,
): Promise<{ result: IngestResult }> {
  const call = async (fast: boolean) => {
    const [row] = await sql.unsafe<{ result: IngestResult }[]>(ingestStatement(e, effect, fast));
    return row;
  };
  try {
    return await call(true);
  } catch (err) {
    if (!(err instanceof postgres.PostgresError)) throw err;
    return await call(false);
  }
}
