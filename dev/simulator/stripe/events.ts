// Events and webhooks: emit() records a signed event for a call (the pipeline schedules its
// delivery), the /v1/events endpoints, and the /_sim/stripe/events controls.
import { createHmac } from "node:crypto";
import { parseWebhookOptions } from "../common/mod.ts";
import { noSuch } from "./errors.ts";
import { list } from "./lists.ts";
import { ALLOWED, readJson, rejectUnknown, str, strArray } from "./params.ts";
import {
  type ApiCall,
  type Ctx,
  ok,
  type Res,
  type StoredEvent,
  type StripeState,
} from "./state.ts";
import { clone, diff, randomId } from "./util.ts";
import type { Json } from "./wire.ts";

/** The version stripe@23.1.0 pins (esm/apiVersion.js); events carry it as api_version. */
export const STRIPE_API_VERSION = "2026-10-28.endive";

/** `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, the Stripe-Signature header (GATEWAY_FACTS B5). */
export function stripeSignatureHeader(secret: string, timestampSec: number, body: string): string {
  const v1 = createHmac("sha256", secret).update(`${timestampSec}.${body}`, "utf8").digest("hex");
  return `t=${timestampSec},v1=${v1}`;
}

/** Records an event with a snapshot of `object` as it is now, signed once. */
export function emit(
  s: StripeState,
  ctx: Ctx,
  type: string,
  object: { id: string },
  previous?: Json,
  account: string | null = null,
): void {
  const data: Json = { object: clone(object) };
  if (previous) data.previous_attributes = clone(previous);
  const created = s.unix();
  const event = {
    id: randomId("evt_"),
    object: "event",
    // Connect events name the connected account they are about (MARKETPLACE_FACTS 3.3).
    ...(account === null ? {} : { account }),
    api_version: STRIPE_API_VERSION,
    created,
    data,
    livemode: false,
    pending_webhooks: 1,
    request: clone(ctx.request),
    type,
  };
  // Stripe sends pretty-printed JSON: handlers must verify the raw bytes, not a re-serialization.
  const body = JSON.stringify(event, null, 2);
  const related = new Set<string>([object.id]);
  for (
    const k of [
      "payment_intent",
      "customer",
      "charge",
      "latest_charge",
      "payment_method",
      "destination",
      "transfer_group",
    ]
  ) {
    const v = (object as Json)[k];
    if (typeof v === "string") related.add(v);
  }
  if (previous && typeof previous.customer === "string") related.add(previous.customer);
  const ev: StoredEvent = {
    event_id: event.id,
    type,
    body,
    signature: stripeSignatureHeader(
      account === null ? s.opts.webhookSecret : s.opts.connectWebhookSecret!,
      created,
      body,
    ),
    objectId: object.id,
    related,
    account,
  };
  if (account !== null) related.add(account);
  s.events.push(ev);
  ctx.events.push(ev);
}

/** `*.updated` with data.previous_attributes holding the old values of what changed; none if nothing did. */
export function emitUpdated(
  s: StripeState,
  ctx: Ctx,
  type: string,
  before: object,
  after: { id: string },
  account: string | null = null,
): void {
  const previous = diff(before as Json, after as unknown as Json);
  if (previous) emit(s, ctx, type, after, previous, account);
}

// ---------------------------------------------------------------- /v1/events

export function listEvents(s: StripeState, { params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.eventList);
  const type = str(p, "type");
  const types = strArray(p, "types");
  const all = s.events
    .filter((e) => (type === undefined || e.type === type) && (!types || types.includes(e.type)))
    .map((e) => JSON.parse(e.body) as { id: string });
  return ok(list(all, p, path));
}

export function retrieveEvent(s: StripeState, { ids, params: p }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.retrieve);
  const e = s.events.find((x) => x.event_id === ids.id);
  if (!e) throw noSuch("event", ids.id, "id", 404);
  return ok(JSON.parse(e.body));
}

// ---------------------------------------------------------------- /_sim/stripe/events

/** The events recorded, filtered by object_id, related_id (any id the object names) and type. */
export function simListEvents(s: StripeState, url: URL): Res {
  const q = url.searchParams;
  const objectId = q.get("object_id");
  const relatedId = q.get("related_id");
  const type = q.get("type");
  const events = s.events
    .filter((e) =>
      (objectId === null || e.objectId === objectId) &&
      (relatedId === null || e.related.has(relatedId)) &&
      (type === null || e.type === type)
    )
    .map(({ event_id, type, body, signature }) => ({ event_id, type, body, signature }));
  return ok({ events });
}

/** Sends a recorded event again: same id, body and signature. */
export async function simResendEvent(s: StripeState, req: Request, id: string): Promise<Res> {
  const body = await readJson(req);
  const e = s.events.find((x) => x.event_id === id);
  if (!e) throw noSuch("event", id, "id", 404);
  s.schedule([e], {
    ...s.defaultWebhooks,
    ...parseWebhookOptions(body.webhooks),
  });
  return ok({ event_id: e.event_id });
}
