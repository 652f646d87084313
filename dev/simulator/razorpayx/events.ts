// Payout webhooks: emit() records a signed payout.<status> event (the caller schedules it), and
// the /_sim/razorpayx/events control.
import { createHmac } from "node:crypto";
import { jsonResponse } from "./errors.ts";
import { randomId } from "./params.ts";
import type { Call, RazorpayXState, StoredEvent } from "./state.ts";
import type { Payout, PayoutStatus } from "./wire.ts";

const ACCOUNT_ID = "acc_SettleSimX0001";

/** The webhook a status move sends (webhooks/payouts.md): processing is payout.initiated. */
export function eventFor(status: PayoutStatus): string {
  return status === "processing" ? "payout.initiated" : `payout.${status}`;
}

/** The payout's current state as a signed event (X-Razorpay-Signature: HMAC of the body). */
export function emit(s: RazorpayXState, p: Payout): StoredEvent {
  const body = JSON.stringify({
    entity: "event",
    account_id: ACCOUNT_ID,
    event: eventFor(p.status),
    contains: ["payout"],
    payload: { payout: { entity: structuredClone(p) } },
    created_at: s.unix(),
  });
  const ev: StoredEvent = {
    event_id: randomId("evt_"),
    type: eventFor(p.status),
    body,
    signature: createHmac("sha256", s.opts.webhookSecret).update(body, "utf8").digest("hex"),
    payoutId: p.id,
  };
  s.events.push(ev);
  return ev;
}

/** GET /_sim/razorpayx/events[?payout_id=]: the events recorded, signed as sent. */
export function simListEvents(s: RazorpayXState, { url }: Call): Response {
  const id = url.searchParams.get("payout_id");
  return jsonResponse(200, {
    events: s.events.filter((e) => id === null || e.payoutId === id)
      .map(({ event_id, type, body, signature }) => ({ event_id, type, body, signature })),
  });
}
