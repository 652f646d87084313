// The gateway audit's payout part: the payout gateways' own lists (RazorpayX GET /v1/payouts,
// Stripe GET /v1/transfers) in the window against settle's payouts. Linked by identity only
// (gateway payout id, settle's payout id in reference_id / metadata), never by amount. What a
// payout counts is what the payee received: settle's amount - fee, the gateway's amount less
// any reversed part.
import type { App } from "../app.ts";
import { eachLimited } from "../concurrency.ts";
import type { Sql } from "../db.ts";
import { minorFromDb } from "../money.ts";
import type { ListWindow } from "../gateways/types.ts";
import { payoutGateways } from "../payouts/mod.ts";
import {
  type ListedPayout,
  type PayoutGateway,
  PayoutGatewayError,
  type PayoutGatewayName,
  type PayoutRecord,
} from "../payouts/types.ts";
import type { Discrepancy, DiscrepancyFields } from "./gateway_audit.ts";

interface SettlePayout {
  id: string;
  status: string;
  /** What the payee receives: the payout's amount minus settle's fee. */
  sent: number;
  currency: string;
  gateway_payout_id: string | null;
}

/** A gateway record in the comparison: listed (with its net amount) or read by id. */
type GatewaySide = PayoutRecord & { netAmount?: number };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Money out of the gateway balance towards the payee (RazorpayX processing can still fail). */
const GATEWAY_OUT = new Set(["processing", "processed"]);
/** Money out of the wallet, not returned (pending: sent or about to be). */
const SETTLE_OUT = new Set(["pending", "processing", "processed"]);
const READS_IN_FLIGHT = 8;

export interface PayoutAuditResult {
  /** Payouts listed per payout gateway that can list. */
  counts: Partial<Record<PayoutGatewayName, number>>;
  found: Discrepancy[];
  failure?: unknown;
}

/** Every configured payout gateway that lists payouts, compared for the window. */
export async function auditPayouts(
  app: App,
  window: ListWindow,
  accountIds: string[] | undefined,
): Promise<PayoutAuditResult> {
  const out: PayoutAuditResult = { counts: {}, found: [] };
  for (const gw of Object.values(payoutGateways(app)) as PayoutGateway[]) {
    if (!gw.listPayouts) continue;
    try {
      const listed = await gw.listPayouts(window);
      out.counts[gw.name] = listed.length;
      out.found.push(...await comparePayouts(app.sql, gw, window, listed, accountIds));
    } catch (err) {
      out.failure ??= err;
      console.error(JSON.stringify({
        level: "error",
        function: "gateway-audit",
        msg: "payout gateway not audited",
        gateway: gw.name,
        error: String(err),
      }));
    }
  }
  return out;
}

/** settle's payouts the list names, plus those it counts processed in the window. */
async function readSettle(
  sql: Sql,
  gateway: PayoutGatewayName,
  w: ListWindow,
  listed: ListedPayout[],
  accounts: string[] | null,
): Promise<SettlePayout[]> {
  const gatewayIds = listed.map((p) => p.gatewayPayoutId);
  const settleIds = [
    ...new Set(listed.map((p) => p.settlePayoutId).filter((x): x is string => !!x)),
  ].filter((x) => UUID.test(x));
  const rows = await sql<(SettlePayout & { amount: string; fee: string })[]>`
    select p.id, p.status, p.amount, p.fee, p.currency, p.gateway_payout_id
    from public.payouts p
    where p.gateway = ${gateway}
      and (${accounts}::uuid[] is null or p.account_id = any(${accounts}::uuid[]))
      and (p.gateway_payout_id = any(${gatewayIds}::text[])
        or p.id = any(${settleIds}::uuid[])
        or (p.status = 'processed'
            and p.processed_at between to_timestamp(${w.from}) and to_timestamp(${w.to})))`;
  return rows.map((r) => ({
    id: r.id,
    status: r.status,
    sent: minorFromDb(r.amount) - minorFromDb(r.fee),
    currency: r.currency,
    gateway_payout_id: r.gateway_payout_id,
  }));
}

/** The destinations of the scoped accounts' payout accounts among those the list paid. */
async function scopedDestinations(
  sql: Sql,
  gateway: PayoutGatewayName,
  listed: ListedPayout[],
  accounts: string[],
): Promise<Set<string>> {
  const named = listed.map((p) => p.gatewayAccountId).filter((x): x is string => !!x);
  const rows = await sql<{ id: string }[]>`select gateway_account_id as id
    from public.payout_accounts where gateway = ${gateway}
      and account_id = any(${accounts}::uuid[]) and gateway_account_id = any(${named}::text[])`;
  return new Set(rows.map((r) => r.id));
}

/**
 * Listed payouts against settle's payout with that gateway id (or settle's id in the payout);
 * then settle's processed payouts the list did not show, read from the gateway by id. A run for
 * some accounts takes an unknown gateway payout as theirs only when it paid their destination.
 */
async function comparePayouts(
  sql: Sql,
  gw: PayoutGateway,
  w: ListWindow,
  listed: ListedPayout[],
  accountIds: string[] | undefined,
): Promise<Discrepancy[]> {
  const mine = await readSettle(sql, gw.name, w, listed, accountIds ?? null);
  const byGatewayId = new Map(
    mine.filter((p) => p.gateway_payout_id).map((p) => [p.gateway_payout_id!, p]),
  );
  const byId = new Map(mine.map((p) => [p.id, p]));
  const inScope = accountIds
    ? await scopedDestinations(sql, gw.name, listed, accountIds)
    : undefined;
  const out: Discrepancy[] = [];
  const seen = new Set<string>();
  for (const g of listed) {
    const noted = g.settlePayoutId ? byId.get(g.settlePayoutId) : undefined;
    const p = byGatewayId.get(g.gatewayPayoutId) ??
      (noted && (noted.gateway_payout_id ?? g.gatewayPayoutId) === g.gatewayPayoutId
        ? noted
        : undefined);
    if (!p && inScope && !(g.gatewayAccountId && inScope.has(g.gatewayAccountId))) continue;
    if (p) seen.add(p.id);
    out.push(...payoutFindings(gw.name, g, p));
  }
  const unseen = mine.filter((p) => p.status === "processed" && !seen.has(p.id));
  await eachLimited(unseen, READS_IN_FLIGHT, async (p) => {
    const g = p.gateway_payout_id ? await readPayout(gw, p.gateway_payout_id) : null;
    out.push(...payoutFindings(gw.name, g, p));
  });
  return out;
}

/** The gateway's payout by id; null when the gateway says it has none (a refusal, 4xx). */
async function readPayout(gw: PayoutGateway, id: string): Promise<GatewaySide | null> {
  try {
    return await gw.fetchPayout(id);
  } catch (err) {
    if (err instanceof PayoutGatewayError && err.refused) return null;
    throw err;
  }
}

function payoutFindings(
  gateway: PayoutGatewayName,
  g: GatewaySide | null,
  p: SettlePayout | undefined,
): Discrepancy[] {
  const gatewayOut = g !== null && GATEWAY_OUT.has(g.status ?? "");
  const settleOut = p !== undefined && SETTLE_OUT.has(p.status);
  const gatewayAmount = g ? g.netAmount ?? g.amount : 0;
  const fields: DiscrepancyFields = {
    payout_id: p?.id ?? null,
    settle_amount: settleOut ? p.sent : 0,
    settle_currency: p?.currency ?? null,
    settle_status: p?.status ?? "missing",
    gateway_amount: gatewayOut ? gatewayAmount : 0,
    gateway_currency: g?.currency ?? null,
    gateway_status: g?.gatewayStatus ?? "missing",
  };
  const objectId = g?.gatewayPayoutId ?? p?.gateway_payout_id ?? p!.id;
  const payout = p ? `settle payout ${p.id}` : "no settle payout";
  const one = (kind: Discrepancy["kind"], detail: string): Discrepancy[] => [
    { kind, gateway, objectId, fields: { ...fields, detail: `${detail} (${payout})` } },
  ];
  if (gatewayOut && !settleOut) {
    return one(
      "payout_missing_in_settle",
      `gateway paid out ${gatewayAmount} ${g.currency} (${g.gatewayStatus}); settle: ` +
        fields.settle_status,
    );
  }
  if (p?.status === "processed" && !gatewayOut) {
    return one(
      "payout_status_mismatch",
      `settle counts ${p.sent} ${p.currency} paid out; gateway: ${fields.gateway_status}`,
    );
  }
  if (gatewayOut && settleOut && (gatewayAmount !== p.sent || g.currency !== p.currency)) {
    return one(
      "payout_amount_mismatch",
      `gateway paid out ${gatewayAmount} ${g.currency}, settle sent ${p.sent} ${p.currency}`,
    );
  }
  return [];
}
