// Storing a verified webhook event: one call of settle.ingest_webhook, which dedups the event,
// applies it and records its outcome in one transaction (docs/decisions.md, "One SQL function
// per webhook event").
import postgres from "postgres";
import type { Sql } from "../db.ts";
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
 * Stores one event (the effect, if any, is what the webhook service resolved for it) and
 * returns the row settle.ingest_webhook answered, `{ result }`.
 *
 * The event travels as a settle.incoming_event record built in SQL from one parameter per
 * field: with postgres.js that costs Postgres less than a record literal or a jsonb argument
 * (no escaping of the raw body, no JSON to parse; bench/README.md "This round: one function
 * per event"). The field order is the type's.
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
    const [row] = await sql<{ result: IngestResult }[]>`select settle.ingest_webhook(row(
      ${e.gateway}, ${e.eventId}, ${e.type}, ${e.kind}, ${e.gatewayOrderId}, ${e.gatewayPaymentId},
      ${e.amount}, ${e.currency}, ${e.occurredAt}, ${e.raw}, ${e.failureCode}, ${e.failureReason},
      ${effect === null ? null : sql.json(effect as postgres.JSONValue)}, ${e.bodyKey ?? null}
    )::settle.incoming_event, ${fast}) as result`;
    return row;
  };
  try {
    return await call(true);
  } catch (err) {
    if (!(err instanceof postgres.PostgresError)) throw err;
    return await call(false);
  }
}
