// Disputes read at the gateway (reconcile, the gateway audit): every dispute the gateway lists
// for a window, and settle's unresolved disputes read one by one, converged through
// settle.apply_dispute_event, the SQL path dispute webhooks take, so a missed event changes
// nothing but what it should have.
import type postgres from "postgres";
import type { App } from "../app.ts";
import {
  type DisputeEffect,
  GatewayError,
  type GatewayName,
  GATEWAYS,
  type ListWindow,
} from "../gateways/types.ts";

/** Reconcile lists the disputes created this long ago or later (older open ones are read by id). */
export const DISPUTE_LIST_SECONDS = 7 * 24 * 3600;

export interface DisputeCounts {
  [k: string]: number;
  read: number;
  applied: number;
  unchanged: number;
  ignored: number;
  errors: number;
}

const empty = (): DisputeCounts => ({ read: 0, applied: 0, unchanged: 0, ignored: 0, errors: 0 });

function log(msg: string, fields: Record<string, unknown>) {
  console.error(JSON.stringify({ level: "warn", function: "disputes", msg, ...fields }));
}

/** Applies dispute effects read from the gateway, one transaction each, and counts outcomes. */
async function converge(
  app: App,
  gateway: GatewayName,
  effects: DisputeEffect[],
  counts: DisputeCounts,
) {
  for (const effect of effects) {
    counts.read += 1;
    try {
      const [row] = await app.sql`select settle.apply_dispute_event(${gateway},
        ${app.sql.json(effect as postgres.JSONValue)}) as r`;
      const outcome = row.r.outcome as string;
      if (outcome === "applied") counts.applied += 1;
      else if (outcome === "ignored") counts.ignored += 1;
      else if (outcome === "no_effect") counts.unchanged += 1;
      else counts.errors += 1; // failed (order not paid yet) or mismatch: the next run asks again
    } catch (err) {
      counts.errors += 1;
      log("dispute not applied", {
        gateway,
        dispute: effect.gateway_dispute_id,
        error: String(err),
      });
    }
  }
}

/** Disputes settle holds unresolved and created before the window: read one by one. */
async function openBefore(app: App, gateway: GatewayName, before: number, limit: number) {
  const rows = await app.sql<{ gateway_dispute_id: string }[]>`
    select gateway_dispute_id from public.disputes
    where gateway = ${gateway} and status in ('open', 'under_review')
      and coalesce(gateway_created_at, created_at) < to_timestamp(${before})
    order by last_event_at nulls first limit ${limit}`;
  return rows.map((r) => r.gateway_dispute_id);
}

/**
 * For each configured gateway with dispute verbs: the disputes it lists for the window, then
 * (unless `listOnly`) settle's unresolved disputes older than the window, read by id. A gateway
 * that cannot be read is counted in errors and logged; the other gateways still run.
 */
export async function convergeDisputes(
  app: App,
  window: ListWindow,
  opts: { limit: number; listOnly?: boolean },
): Promise<DisputeCounts> {
  const counts = empty();
  for (const name of GATEWAYS) {
    if (!app.config[name]) continue;
    const gw = app.gateway(name);
    if (!gw.listDisputes) continue;
    try {
      await converge(app, name, await gw.listDisputes(window), counts);
      if (opts.listOnly || !gw.fetchDispute) continue;
      for (const id of await openBefore(app, name, window.from, opts.limit)) {
        const effect = await gw.fetchDispute(id);
        if (effect) await converge(app, name, [effect], counts);
      }
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      counts.errors += 1;
      log("gateway disputes not read", { gateway: name, error: err.message.slice(0, 500) });
    }
  }
  return counts;
}
