// Webhook ingestion: verified on the raw body, stored once, applied in the same transaction.
import type { App } from "../app.ts";
import { HttpError, readBodyText } from "../http.ts";
import { type GatewayName, GATEWAYS } from "../gateways/types.ts";
import { effectCard } from "../gateways/stripe/mod.ts";
import { toHttp } from "./orders.ts";
import type postgres from "postgres";

/** `log` receives the request log line's fields: gateway, event type and id, outcome, order. */
export async function ingestWebhook(
  app: App,
  gatewayName: string,
  req: Request,
  log: Record<string, unknown> = {},
) {
  if (!(GATEWAYS as readonly string[]).includes(gatewayName)) {
    throw new HttpError(404, "not_found", `no webhook endpoint for ${gatewayName}`);
  }
  log.gateway = gatewayName;
  const gateway = app.gateway(gatewayName as GatewayName);
  // The signature covers the exact bytes sent: read the raw text, verify, only then parse.
  const raw = await readBodyText(req, app.config.webhookBodyLimitBytes);
  const events = await gateway.parseWebhook(raw, req.headers);
  for (const e of events) {
    let effect = e.effect ?? null;
    if (e.fetchPaymentMethod && gatewayName === "stripe") {
      // setup_intent.succeeded names the card only by id: read its details from Stripe.
      const card = await app.stripe().fetchPaymentMethod(e.fetchPaymentMethod).catch((err) =>
        Promise.reject(toHttp(err))
      );
      effect = { action: "attached", ...effectCard(card) };
    }
    const [row] = await app.sql`select settle.ingest_webhook(
      ${e.gateway}, ${e.eventId}, ${e.type}, ${e.kind}, ${e.gatewayOrderId}, ${e.gatewayPaymentId},
      ${e.amount}, ${e.currency}, ${e.occurredAt}, ${e.raw}, ${e.failureCode}, ${e.failureReason},
      ${effect === null ? null : app.sql.json(effect as postgres.JSONValue)}
    ) as result`;
    Object.assign(log, {
      event_type: e.type,
      event_id: e.eventId,
      outcome: row.result.outcome,
      order_id: row.result.order_id ?? null,
    });
  }
  return { received: true as const };
}
