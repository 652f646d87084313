// Payouts: payee accounts at RazorpayX / Stripe Connect, payouts out of a wallet, their webhooks
// and reconciliation.
//
// The database decides whether a payout may exist (owner, policy, payable balance, daily limit,
// disputes) and moves its money into flight before the gateway hears of it (settle.request_payout,
// one transaction as the user). The gateway is asked afterwards, outside any transaction, under an
// idempotency key derived from the payout id, so every retry (the client's, reconcile's) names
// the same payout. The send's answer records the gateway's id; the status follows the gateway's
// events (webhooks, reconcile's reads), except a refusal, which fails the payout at once.
import { z } from "zod";
import type { App } from "../app.ts";
import { type Caller, requireUser } from "../auth.ts";
import { sha256Hex } from "../crypto.ts";
import { asUser } from "../db.ts";
import { HttpError, readBodyText } from "../http.ts";
import { minorFromDb } from "../money.ts";
import { payoutGateway, payoutGateways } from "../payouts/mod.ts";
import {
  type DestinationRequest,
  type PayoutEvent,
  PayoutGatewayError,
  type PayoutGatewayName,
} from "../payouts/types.ts";
import type postgres from "postgres";

type Time = string | Date | null;

export interface PayoutRow {
  id: string;
  account_id: string;
  payout_account_id: string;
  gateway: PayoutGatewayName;
  status: string;
  amount: string | number;
  fee: string | number;
  currency: string;
  gateway_payout_id: string | null;
  failure_reason: string | null;
  created_at: Time;
  processed_at: Time;
  returned_at: Time;
}

export interface PayoutAccountRow {
  id: string;
  account_id: string;
  gateway: PayoutGatewayName;
  type: string;
  display: string;
  status: string;
  created_at: Time;
  disabled_at: Time;
}

const iso = (v: Time) => v === null ? null : new Date(v).toISOString();

export function publicPayout(p: PayoutRow) {
  return {
    id: p.id,
    status: p.status,
    amount: minorFromDb(p.amount),
    currency: p.currency,
    fee: minorFromDb(p.fee),
    payout_account_id: p.payout_account_id,
    account_id: p.account_id,
    gateway: p.gateway,
    gateway_payout_id: p.gateway_payout_id,
    failure_reason: p.failure_reason,
    created_at: iso(p.created_at),
    processed_at: iso(p.processed_at),
    returned_at: iso(p.returned_at),
  };
}

export function publicPayoutAccount(a: PayoutAccountRow) {
  return {
    id: a.id,
    gateway: a.gateway,
    type: a.type,
    display: a.display,
    status: a.status,
    account_id: a.account_id,
    created_at: iso(a.created_at),
  };
}

// Section - validation

const printable = (min: number, max: number) =>
  z.string().trim().min(min).max(max).regex(/^[^\p{Cc}\p{Cs}]*$/u, "must be printable text");
const accountId = z.uuid({ error: "must be an account id (uuid)" }).optional();

const bankBody = z.object({
  gateway: z.literal("razorpayx"),
  type: z.literal("bank_account"),
  account_id: accountId,
  bank_account: z.object({
    name: printable(3, 120),
    ifsc: z.string().regex(
      /^[A-Za-z]{4}0[A-Za-z0-9]{6}$/,
      "must be an IFSC: 4 letters, 0, then 6 letters or digits",
    ).transform((s) => s.toUpperCase()),
    account_number: z.string().regex(/^[0-9]{5,35}$/, "must be 5 to 35 digits"),
  }).strict(),
}).strict();

const vpaBody = z.object({
  gateway: z.literal("razorpayx"),
  type: z.literal("vpa"),
  account_id: accountId,
  vpa: z.object({
    address: z.string().regex(
      /^[A-Za-z0-9.\-_]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$/,
      "must be a UPI address such as name@bank",
    ),
  }).strict(),
}).strict();

const stripeBody = z.object({
  gateway: z.literal("stripe"),
  type: z.literal("stripe_account").optional(),
  account_id: accountId,
  email: z.email().max(254).optional(),
  country: z.string().regex(/^[A-Z]{2}$/, "must be a 2-letter country code").optional(),
}).strict();

function destinationBody(body: Record<string, unknown>) {
  if (body.gateway === "stripe") return stripeBody.parse(body);
  if (body.gateway !== "razorpayx") {
    throw new HttpError(400, "invalid_request", "gateway: must be razorpayx or stripe");
  }
  if (body.type === "vpa") return vpaBody.parse(body);
  if (body.type === "bank_account") return bankBody.parse(body);
  throw new HttpError(400, "invalid_request", "type: must be bank_account or vpa");
}

const payoutBody = z.object({
  payout_account_id: z.uuid({ error: "must be a payout account id (uuid)" }),
  amount: z.number().int("must be an integer number of minor units").positive().max(
    100_000_000_000,
  ),
  currency: z.string().regex(/^[A-Za-z]{3}$/, "must be a 3-letter ISO 4217 code").transform((s) =>
    s.toUpperCase()
  ),
}).strict();

const idempotencyKey = z.string().regex(
  /^[\x21-\x7e]{1,255}$/,
  "Idempotency-Key must be 1-255 visible ASCII characters",
);

const uuid = (what: string) => z.uuid({ error: `the ${what} id must be a uuid` });

const listQuery = z.object({
  account_id: z.uuid({ error: "account_id must be a uuid" }).optional(),
  status: z.enum([
    "pending",
    "processing",
    "processed",
    "failed",
    "rejected",
    "cancelled",
    "reversed",
  ]).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
}).strict();

// Section - payout accounts

/** The account the caller owns (theirs by default); 404 otherwise, before any gateway call. */
async function ownedAccount(app: App, caller: Caller, requested?: string): Promise<string> {
  const [row] = await asUser(app.sql, caller, (tx) =>
    tx<{ id: string | null; owner: boolean }[]>`
    select a.id, coalesce(settle.has_role_on_account(a.id, 'owner'), false) as owner
    from public.accounts a
    where a.id = coalesce(${requested ?? null}::uuid,
      (select id from public.accounts where personal_owner_id = auth.uid()))`);
  if (!row?.id || !row.owner) throw new HttpError(404, "not_found", "account not found");
  return row.id;
}

/** POST /payout-accounts: the gateway creates the destination, settle stores its ids and mask. */
export async function createPayoutAccount(
  app: App,
  caller: Caller,
  body: Record<string, unknown>,
  origin: string,
) {
  const user = requireUser(caller);
  const b = destinationBody(body);
  const gateway = payoutGateway(app, b.gateway);
  const account = await ownedAccount(app, user, b.account_id);
  const req: DestinationRequest = "bank_account" in b
    ? {
      type: "bank_account",
      name: b.bank_account.name,
      ifsc: b.bank_account.ifsc,
      accountNumber: b.bank_account.account_number,
    }
    : "vpa" in b
    ? { type: "vpa", address: b.vpa.address }
    : { type: "stripe_account", email: b.email, country: b.country };
  const id = crypto.randomUUID();
  const d = await gatewayCall(() =>
    gateway.createDestination(req, { payoutAccountId: id, accountId: account, origin })
  );
  const [row] = await app.sql`select settle.create_payout_account(${id}, ${account},
    ${user.userId}, ${b.gateway}, ${d.type}, ${d.display}, ${d.last4}, ${d.vpaHandle},
    ${d.contactId}, ${d.gatewayAccountId}) as result`;
  const out: Record<string, unknown> = { payout_account: publicPayoutAccount(row.result) };
  if (d.onboarding) {
    out.onboarding = { url: d.onboarding.url, expires_at: d.onboarding.expiresAt };
  }
  return out;
}

/**
 * POST /payout-accounts/{id}/onboarding: a fresh account link for a Stripe account still
 * onboarding (a link expires within minutes and works once; Stripe sends the payee to the
 * refresh URL for a new one). The owner only; 409 once the account is active or disabled.
 */
export async function onboardingLink(app: App, caller: Caller, id: string, origin: string) {
  const pa = uuid("payout account").parse(id);
  const user = requireUser(caller);
  const [row] = await asUser(
    app.sql,
    user,
    (tx) =>
      tx<(PayoutAccountRow & { gateway_account_id: string; owner: boolean })[]>`
    select p.*, coalesce(settle.has_role_on_account(p.account_id, 'owner'), false) as owner
    from public.payout_accounts p where p.id = ${pa}`,
  );
  if (!row?.owner) throw new HttpError(404, "not_found", "payout account not found");
  if (row.gateway !== "stripe" || row.status !== "onboarding") {
    throw new HttpError(409, "conflict", `payout account ${pa} is ${row.status}, not onboarding`);
  }
  const stripe = payoutGateways(app).stripe;
  if (!stripe) throw notConfigured("stripe connect");
  const link = await gatewayCall(() =>
    stripe.onboardingLink(row.gateway_account_id, { payoutAccountId: pa, origin })
  );
  return {
    payout_account: publicPayoutAccount(row),
    onboarding: { url: link.url, expires_at: link.expiresAt },
  };
}

export async function listPayoutAccounts(app: App, caller: Caller) {
  const rows = await asUser(
    app.sql,
    caller,
    (tx) =>
      tx<PayoutAccountRow[]>`select * from public.payout_accounts
      order by created_at desc, id limit 200`,
  );
  return { payout_accounts: rows.map(publicPayoutAccount) };
}

export async function disablePayoutAccount(app: App, caller: Caller, id: string) {
  const pa = uuid("payout account").parse(id);
  const [row] = await asUser(
    app.sql,
    requireUser(caller),
    (tx) => tx`select settle.disable_payout_account(${pa}) as result`,
  );
  return { payout_account: publicPayoutAccount(row.result) };
}

/** A gateway failure in the error contract (502/503); its cause goes to the log. */
async function gatewayCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof PayoutGatewayError)) throw err;
    console.error(
      JSON.stringify({ level: "warn", msg: "payout gateway error", error: err.message }),
    );
    if (err.status === 503) {
      throw new HttpError(503, "gateway_unavailable", `${err.gateway} is unavailable; retry later`);
    }
    throw new HttpError(502, "gateway_error", `${err.gateway} refused the request`);
  }
}

// Section - payouts

/** Stripe keeps idempotency keys at least 24 h; a retry later than this looks first. */
const KEY_SAFE_MS = 23 * 3600 * 1000;

/** POST /payouts: counted and moved into flight as the owner, then sent to the gateway. */
export async function createPayout(
  app: App,
  caller: Caller,
  body: Record<string, unknown>,
  rawKey: string | null,
): Promise<{ status: 200 | 201; body: unknown }> {
  const user = requireUser(caller);
  const key = rawKey === null ? null : idempotencyKey.parse(rawKey);
  const b = payoutBody.parse(body);
  const hash = await sha256Hex(JSON.stringify([b.payout_account_id, b.amount, b.currency]));
  const [r] = await asUser(
    app.sql,
    user,
    (tx) =>
      tx`select settle.request_payout(${b.payout_account_id}, ${b.amount}, ${b.currency}, ${key},
      ${hash}) as result`,
  );
  let payout = r.result.payout as PayoutRow;
  if (payout.status === "pending" && payout.gateway_payout_id === null) {
    const after = await sendPayout(app, payout);
    // The reply is the payout as accepted (its webhooks may already have moved it on: GET
    // /payouts and the outbox tell), unless the gateway refused it: then it is failed. A
    // gateway whose send is final (Stripe) answers the status the send gave.
    payout = after.returned_at !== null || payoutGateways(app)[payout.gateway]?.settlesOnSend
      ? after
      : { ...payout, gateway_payout_id: after.gateway_payout_id };
  }
  return {
    status: r.result.replayed ? 200 : 201,
    body: { payout: publicPayout(payout) },
  };
}

/**
 * Sends a payout to its gateway under its one idempotency key and records the answer: the
 * gateway's id, a refusal (the payout fails and its money returns), or an unknown fate (kept
 * pending; reconcile sends it again under the same key). Never throws for a gateway failure.
 */
export async function sendPayout(app: App, payout: PayoutRow): Promise<PayoutRow> {
  const [pa] = await app.sql<{ type: string; gateway_account_id: string }[]>`
    select type, gateway_account_id from public.payout_accounts
    where id = ${payout.payout_account_id}`;
  try {
    // Inside the try: a gateway no longer configured refuses the send (the payout fails).
    const gateway = payoutGateway(app, payout.gateway);
    const sent = await gateway.sendPayout({
      payoutId: payout.id,
      amount: minorFromDb(payout.amount) - minorFromDb(payout.fee),
      currency: payout.currency,
      destinationType: pa.type as "bank_account" | "vpa" | "stripe_account",
      gatewayAccountId: pa.gateway_account_id,
      idempotencyKey: payout.id,
      // The first try follows the request at once: a payout this old is being sent again.
      keyMayHaveExpired: app.now().getTime() - new Date(payout.created_at!).getTime() > KEY_SAFE_MS,
    });
    const [row] = await app.sql`select settle.record_payout_sent(${payout.id},
      ${sent.gatewayPayoutId}, ${sent.gatewayStatus}, null) as result`;
    if (!gateway.settlesOnSend || sent.status === null) return row.result.payout as PayoutRow;
    // Stripe: the transfer exists, so the money is in the connected account (processed).
    const [moved] = await app.sql`select settle.apply_payout_status(${payout.id}, ${sent.status},
      ${sent.gatewayStatus}, ${sent.failureReason}) as result`;
    return moved.result.payout as PayoutRow;
  } catch (err) {
    const known = err instanceof PayoutGatewayError || err instanceof HttpError;
    if (!known) throw err;
    const message = String(err.message).slice(0, 500);
    console.error(JSON.stringify({
      level: "warn",
      msg: "payout not sent",
      payout_id: payout.id,
      error: message,
    }));
    const [row] = await app.sql`select settle.record_payout_sent(${payout.id}, null, null,
      ${message}) as result`;
    const refused = err instanceof HttpError || err.refused;
    if (!refused) return row.result.payout as PayoutRow;
    const [failed] = await app.sql`select settle.apply_payout_status(${payout.id}, 'failed', null,
      ${message}) as result`;
    return failed.result.payout as PayoutRow;
  }
}

export async function listPayouts(app: App, caller: Caller, params: URLSearchParams) {
  const q = listQuery.parse(Object.fromEntries(params));
  const rows = await asUser(
    app.sql,
    caller,
    (tx) =>
      tx<PayoutRow[]>`select * from public.payouts
      where (${q.account_id ?? null}::uuid is null or account_id = ${q.account_id ?? null})
        and (${q.status ?? null}::text is null or status = ${q.status ?? null})
      order by created_at desc, id limit ${q.limit}`,
  );
  return { payouts: rows.map(publicPayout) };
}

export async function getPayout(app: App, caller: Caller, id: string) {
  const payout = uuid("payout").parse(id);
  const [row] = await asUser(
    app.sql,
    caller,
    (tx) => tx<PayoutRow[]>`select * from public.payouts where id = ${payout}`,
  );
  if (!row) throw new HttpError(404, "not_found", "payout not found");
  return { payout: publicPayout(row) };
}

// Section - webhooks

/**
 * POST /webhook/razorpayx and /webhook/stripe-connect: verified on the raw body with the
 * endpoint's own secret, then stored and applied once (settle.ingest_payout_webhook).
 */
export async function ingestPayoutWebhook(
  app: App,
  endpoint: "razorpayx" | "stripe-connect",
  req: Request,
  log: Record<string, unknown> = {},
) {
  log.gateway = endpoint;
  const gateways = payoutGateways(app);
  const raw = await readBodyText(req, app.config.webhookBodyLimitBytes);
  let events: PayoutEvent[];
  if (endpoint === "razorpayx") {
    if (!gateways.razorpayx) throw notConfigured("razorpayx");
    events = await gateways.razorpayx.parseWebhook(raw, req.headers);
  } else {
    const stripe = gateways.stripe;
    if (!stripe) throw notConfigured("stripe connect");
    events = await stripe.parseWebhook(raw, req.headers);
    for (const e of events) {
      if (e.effect.action !== "read_account" || await stored(app, e)) continue;
      // A failed read answers 503 and stores nothing: Stripe redelivers the event.
      e.effect = await gatewayCall(() => stripe.readAccount(String(e.effect.gateway_account_id)));
    }
  }
  for (const e of events) await storePayoutEvent(app, e, log);
  return { received: true as const };
}

/** Whether the event is stored already (a redelivery: ingest answers it as a duplicate). */
async function stored(app: App, e: PayoutEvent): Promise<boolean> {
  const rows = await app.sql`select 1 from public.webhook_events
    where gateway = ${e.gateway} and event_id = ${e.eventId}`;
  return rows.length > 0;
}

/** Stores and applies one verified payout event (also Stripe's platform transfer.* events). */
export async function storePayoutEvent(
  app: App,
  e: PayoutEvent,
  log: Record<string, unknown> = {},
) {
  const [row] = await app.sql`select settle.ingest_payout_webhook(${e.gateway}, ${e.eventId},
    ${e.type}, ${e.occurredAt}, ${e.raw}, ${e.bodyKey},
    ${app.sql.json(e.effect as postgres.JSONValue)}) as result`;
  Object.assign(log, { event_type: e.type, event_id: e.eventId, outcome: row.result.outcome });
  return row.result;
}

function notConfigured(what: string) {
  return new HttpError(400, "invalid_request", `payout gateway ${what} is not configured`);
}

// Section - reconciliation

/**
 * Payouts pending or processing past the threshold: unsent ones are sent again under their
 * idempotency key, sent ones are read from the gateway and converged through the same SQL the
 * webhooks use. Claimed with SKIP LOCKED, so concurrent reconcilers split the work.
 */
export async function reconcilePayouts(
  app: App,
  opts: { limit: number; olderThanSeconds: number },
): Promise<{ checked: number; sent: number; settled: number; errors: number }> {
  const configured = payoutGateways(app);
  const claimed = await app.sql<PayoutRow[]>`select * from settle.claim_stuck_payouts(
    ${opts.limit}, ${opts.olderThanSeconds})`;
  const counts = { checked: claimed.length, sent: 0, settled: 0, errors: 0 };
  for (const p of claimed) {
    if (!configured[p.gateway]) continue;
    try {
      if (p.gateway_payout_id === null) {
        const after = await sendPayout(app, p);
        if (after.gateway_payout_id !== null) counts.sent += 1;
        else if (after.status === "pending") counts.errors += 1;
        continue;
      }
      const r = await payoutGateway(app, p.gateway).fetchPayout(p.gateway_payout_id);
      const net = minorFromDb(p.amount) - minorFromDb(p.fee);
      if (r.amount !== net || r.currency !== p.currency) {
        throw new Error(`the gateway's payout is ${r.amount} ${r.currency}, settle sent ${net}`);
      }
      if (r.status === null) continue;
      const [row] = await app.sql`select settle.apply_payout_status(${p.id}, ${r.status},
        ${r.gatewayStatus}, ${r.failureReason}) as result`;
      if (row.result.outcome === "applied") counts.settled += 1;
    } catch (err) {
      counts.errors += 1;
      console.error(JSON.stringify({
        level: "warn",
        msg: "payout reconcile failed",
        payout_id: p.id,
        error: String((err as Error)?.message ?? err).slice(0, 200),
      }));
    }
  }
  return counts;
}
