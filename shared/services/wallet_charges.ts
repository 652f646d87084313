// Spending the wallet: charges, holds (capture, void, expiry) and refunds of charges.
//
// The app's backend (the service role) charges or holds an account's wallet; members of the
// account read their charges through RLS. Every rule (balance, bounds, idempotency, exactly one
// resolution of a hold) lives in the settle.*wallet_charge* SQL functions, which apps working
// in Postgres call directly; this file validates the request's shape and maps the answers.
import { z } from "zod";
import type { App } from "../app.ts";
import { type Caller, requireServiceRole } from "../auth.ts";
import { asUser, type Sql } from "../db.ts";
import { HttpError } from "../http.ts";
import { idempotencyKey, optionalIdempotencyKey } from "../idempotency.ts";
import { minorFromDb } from "../money.ts";

type Amount = string | number;
type Time = string | Date | null;

/** A charge as the SQL functions return it (settle.wallet_charge_json) or as its table row. */
export interface ChargeRow {
  id: string;
  account_id: string;
  status: "held" | "captured" | "released" | "refunded";
  amount: Amount;
  currency: string;
  amount_captured: Amount;
  amount_refunded: Amount;
  description: string | null;
  reference: string | null;
  metadata: Record<string, unknown>;
  expires_at: Time;
  release_reason: "voided" | "expired" | null;
  captured_at: Time;
  released_at: Time;
  created_at: Time;
}

interface ChargeRefundRow {
  id: string;
  amount: Amount;
  currency: string;
  created_at: Time;
}

// Text a person or an app typed: no control characters, bounded.
const text = (max: number) =>
  z.string().min(1).max(max).regex(
    /^[^\p{Cc}\p{Cs}]*$/u,
    "must be text without control characters",
  );

const minor = z.number().int("must be an integer number of minor units").positive().max(
  100_000_000_000,
);

export const chargeBody = z.object({
  account_id: z.uuid({ error: "must be an account id (uuid)" }),
  amount: minor,
  currency: z.string().regex(/^[A-Za-z]{3}$/, "must be a 3-letter ISO 4217 code").transform((s) =>
    s.toUpperCase()
  ),
  capture: z.boolean().optional(),
  expires_in_seconds: z.number().int("must be a whole number of seconds").min(1).max(2_592_000)
    .optional(),
  description: text(500).optional(),
  reference: text(255).optional(),
  metadata: z.record(z.string(), z.unknown()).refine(
    (m) => JSON.stringify(m).length <= 4096,
    "must be at most 4 KB of JSON",
    // Postgres jsonb cannot store U+0000 (it would be a 500 from the database, not a 400).
  ).refine((m) => !JSON.stringify(m).includes("\\u0000"), "must not contain U+0000").optional(),
}).strict().superRefine((b, ctx) => {
  if (b.capture !== false && b.expires_in_seconds !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["expires_in_seconds"],
      message: "only for a hold (capture false)",
    });
  }
});

const amountBody = z.object({ amount: minor.optional() }).strict();

const chargeId = z.uuid({ error: "the charge id must be a uuid" });

const listQuery = z.object({
  account_id: z.uuid({ error: "account_id must be a uuid" }).optional(),
  status: z.enum(["held", "captured", "released", "refunded"]).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
}).strict();

export function publicCharge(c: ChargeRow) {
  const iso = (v: Time) => v === null ? null : new Date(v).toISOString();
  return {
    id: c.id,
    account_id: c.account_id,
    status: c.status,
    amount: minorFromDb(c.amount),
    currency: c.currency,
    amount_captured: minorFromDb(c.amount_captured),
    amount_refunded: minorFromDb(c.amount_refunded),
    description: c.description,
    reference: c.reference,
    metadata: c.metadata,
    expires_at: iso(c.expires_at),
    release_reason: c.release_reason,
    captured_at: iso(c.captured_at),
    released_at: iso(c.released_at),
    created_at: iso(c.created_at),
  };
}

const SERVICE_ONLY = "wallet charges are made by the app's backend (service role)";

/**
 * Runs one settle function for the service role as one statement in its own transaction, as
 * the refunds service does: a charge holds its wallet's row lock until commit, and an explicit
 * transaction would hold it for one more round trip (the COMMIT) on a hot wallet.
 */
function serviceCall<T>(app: App, caller: Caller, query: (sql: Sql) => Promise<T>): Promise<T> {
  requireServiceRole(caller, SERVICE_ONLY);
  return query(app.sql);
}

/** POST /wallet-charges: a charge (captured at once) or, with capture false, a hold. */
export async function createCharge(
  app: App,
  caller: Caller,
  body: Record<string, unknown>,
  rawKey: string | null,
): Promise<{ status: 200 | 201; body: unknown }> {
  requireServiceRole(caller, SERVICE_ONLY);
  const key = idempotencyKey.parse(rawKey ?? undefined);
  const b = chargeBody.parse(body);
  const capture = b.capture ?? true;
  const result = await serviceCall(app, caller, async (sql) => {
    const [r] = await sql`select settle.charge_wallet(${b.account_id}, ${b.amount}, ${b.currency},
      ${key}, ${capture}, ${b.expires_in_seconds ?? null}, ${b.description ?? null},
      ${b.reference ?? null}, ${
      b.metadata === undefined ? null : app.sql.json(b.metadata as never)
    })
      as result`;
    return r.result as { charge: ChargeRow; replayed: boolean };
  });
  return {
    status: result.replayed ? 200 : 201,
    body: { charge: publicCharge(result.charge) },
  };
}

/** POST /wallet-charges/{id}/capture {amount?}: all of the hold, or part (the rest returns). */
export async function captureCharge(
  app: App,
  caller: Caller,
  id: string,
  body: Record<string, unknown>,
) {
  requireServiceRole(caller, SERVICE_ONLY);
  const charge = chargeId.parse(id);
  const { amount } = amountBody.parse(body);
  const result = await serviceCall(app, caller, async (sql) => {
    const [r] = await sql`select settle.capture_wallet_charge(${charge}, ${
      amount ?? null
    }) as result`;
    return r.result as { charge: ChargeRow };
  });
  return { charge: publicCharge(result.charge) };
}

/** POST /wallet-charges/{id}/void: the hold goes back to the wallet. */
export async function voidCharge(app: App, caller: Caller, id: string) {
  requireServiceRole(caller, SERVICE_ONLY);
  const charge = chargeId.parse(id);
  const result = await serviceCall(app, caller, async (sql) => {
    const [r] = await sql`select settle.void_wallet_charge(${charge}) as result`;
    return r.result as { charge: ChargeRow };
  });
  return { charge: publicCharge(result.charge) };
}

/** POST /wallet-charges/{id}/refund {amount?}: credits a captured charge back, at most all of it. */
export async function refundCharge(
  app: App,
  caller: Caller,
  id: string,
  body: Record<string, unknown>,
  rawKey: string | null,
): Promise<{ status: 200 | 201; body: unknown }> {
  requireServiceRole(caller, SERVICE_ONLY);
  const charge = chargeId.parse(id);
  const key = optionalIdempotencyKey(rawKey);
  const { amount } = amountBody.parse(body);
  const result = await serviceCall(app, caller, async (sql) => {
    const [r] = await sql`select settle.refund_wallet_charge(${charge}, ${amount ?? null}, ${key})
      as result`;
    return r.result as { charge: ChargeRow; refund: ChargeRefundRow; replayed: boolean };
  });
  const r = result.refund;
  return {
    status: result.replayed ? 200 : 201,
    body: {
      charge: publicCharge(result.charge),
      refund: {
        id: r.id,
        amount: minorFromDb(r.amount),
        currency: r.currency,
        created_at: r.created_at === null ? null : new Date(r.created_at).toISOString(),
      },
    },
  };
}

/** GET /wallet-charges: the charges and holds the caller may read (RLS), newest first. */
export async function listCharges(app: App, caller: Caller, params: URLSearchParams) {
  const q = listQuery.parse(Object.fromEntries(params));
  const rows = await asUser(
    app.sql,
    caller,
    (tx) =>
      tx<ChargeRow[]>`select * from public.wallet_charges
      where (${q.account_id ?? null}::uuid is null or account_id = ${q.account_id ?? null})
        and (${q.status ?? null}::text is null or status = ${q.status ?? null})
      order by created_at desc, id limit ${q.limit}`,
  );
  return { charges: rows.map(publicCharge) };
}

/** GET /wallet-charges/{id}: one charge, 404 when the caller may not read it. */
export async function getCharge(app: App, caller: Caller, id: string) {
  const charge = chargeId.parse(id);
  const [row] = await asUser(
    app.sql,
    caller,
    (tx) => tx<ChargeRow[]>`select * from public.wallet_charges where id = ${charge}`,
  );
  if (!row) throw new HttpError(404, "not_found", "wallet charge not found");
  return { charge: publicCharge(row) };
}

/** Reconciliation's step: holds past their expiry go back to their wallets. */
export async function expireHolds(app: App, limit: number): Promise<number> {
  const [row] = await app.sql`select settle.expire_wallet_holds(now(), ${limit}) as released`;
  return row.released as number;
}
