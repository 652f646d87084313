// PayPal disputes at the gateway (Disputes v1: GET /v1/customer/disputes and /{id}) as the
// effects their webhooks carry, for reconcile's disputes step and for dispute webhooks whose
// resource does not say enough (no capture, or resolved without an outcome).
import type {
  AppliedEffect,
  DisputeEffect,
  GatewayDisputes,
  ListWindow,
  NormalizedEvent,
} from "../types.ts";
import { PayPalApiError, type PayPalClient } from "./client.ts";
import { DISPUTE_EVENTS, disputeEffect, readableDispute } from "./wire.ts";

/** The most PayPal lists per page. */
const PAGE_SIZE = 50;
/** A listing stops after this many pages (reconcile runs again). */
const MAX_PAGES = 40;

const nowUnix = () => Math.floor(Date.now() / 1000);

function nextToken(links: { href: string; rel: string }[] | undefined): string | null {
  const href = links?.find((l) => l.rel === "next")?.href;
  if (!href) return null;
  try {
    return new URL(href, "http://x").searchParams.get("next_page_token");
  } catch {
    return null;
  }
}

export function paypalDisputeVerbs(client: PayPalClient): Required<GatewayDisputes> {
  /** One dispute read by id as its effect; null when PayPal has none or it is unreadable. */
  async function fetchDispute(id: string): Promise<DisputeEffect | null> {
    try {
      const d = readableDispute(await client.getDispute(id));
      return d ? disputeEffect(d, nowUnix()) : null;
    } catch (err) {
      if (err instanceof PayPalApiError && err.httpStatus === 404) return null;
      throw err;
    }
  }

  /** Every dispute created in the window; a summary without its capture is read by id. */
  async function listDisputes(w: ListWindow): Promise<DisputeEffect[]> {
    const effects: DisputeEffect[] = [];
    let token: string | null = null;
    for (let page = 0; page < MAX_PAGES; page++) {
      const query: Record<string, string> = token
        ? { next_page_token: token, page_size: String(PAGE_SIZE) }
        : { start_time: new Date(w.from * 1000).toISOString(), page_size: String(PAGE_SIZE) };
      const res = await client.listDisputes(query);
      for (const item of res.items ?? []) {
        const created = item.create_time ? Date.parse(item.create_time) / 1000 : w.from;
        if (created > w.to) continue;
        const d = readableDispute(item);
        const effect = d ? disputeEffect(d, nowUnix()) : await fetchDispute(item.dispute_id);
        if (effect) effects.push(effect);
      }
      token = nextToken(res.links);
      if (!token) break;
    }
    return effects;
  }

  return { listDisputes, fetchDispute };
}

/**
 * A dispute event whose resource could not be applied as sent (PayPal's notification may carry
 * little more than the dispute id): the dispute read by id stands in for it. An outage
 * propagates (the delivery is answered 503 and PayPal retries it).
 */
export async function completeDisputeEvent(
  e: NormalizedEvent<AppliedEffect>,
  fetchDispute: (id: string) => Promise<DisputeEffect | null>,
): Promise<NormalizedEvent<AppliedEffect>> {
  if (!DISPUTE_EVENTS.has(e.type) || e.effect) return e;
  let id: unknown;
  try {
    id = (JSON.parse(e.raw) as { resource?: { dispute_id?: unknown } }).resource?.dispute_id;
  } catch {
    return e;
  }
  if (typeof id !== "string" || !/^[A-Za-z0-9-]{1,255}$/.test(id)) return e;
  const effect = await fetchDispute(id);
  if (!effect) return e;
  return {
    ...e,
    gatewayPaymentId: effect.gateway_payment_id,
    amount: effect.amount,
    currency: effect.currency,
    effect,
  };
}
