// Idempotency: the Idempotency-Key header every endpoint that takes one checks the same way, and
// the hash create-order keeps beside it (gateway and wallet orders alike).
import { z } from "zod";
import { sha256HexSync } from "./crypto.ts";
import type { CreateOrderBody } from "./services/orders.ts";

/** The header's value; required only where a caller parses a missing one (wallet charges). */
export const idempotencyKey = z.string({ error: "an Idempotency-Key header is required" }).regex(
  /^[\x21-\x7e]{1,255}$/,
  "Idempotency-Key must be 1-255 visible ASCII characters",
);

/** An optional header: null when it was not sent, else checked. */
export function optionalIdempotencyKey(raw: string | null): string | null {
  return raw === null ? null : idempotencyKey.parse(raw);
}

/**
 * The hash of a create-order request under its key: the normalized body, so replays compare
 * meaning, not bytes; one for both gateway and wallet orders, so one key cannot name both.
 */
export function orderRequestHash(body: CreateOrderBody): string {
  return sha256HexSync(JSON.stringify([
    body.gateway,
    body.purpose,
    body.plan_id ?? null,
    body.product_id ?? null,
    body.amount ?? null,
    body.currency ?? null,
    body.account_id ?? null,
    // Escrow orders name their engagement; other orders keep the hash they always had.
    ...(body.engagement_id === undefined ? [] : [body.engagement_id]),
  ]));
}
