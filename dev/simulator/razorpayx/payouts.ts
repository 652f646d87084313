// Payouts: POST /v1/payouts with the mandatory X-Payout-Idempotency (same key and body replays,
// another body is refused), GET by id, and the /_sim/razorpayx controls that move a payout along
// its lifecycle (processed, reversed, failed, ...) and list what was made.
import { canonical, parseWebhookOptions } from "../common/mod.ts";
import { invalid, jsonResponse, notFoundId } from "./errors.ts";
import { emit } from "./events.ts";
import { randomId, readBody, strings } from "./params.ts";
import type { Call, RazorpayXState } from "./state.ts";
import type { FundAccount, Json, Payout, PayoutStatus } from "./wire.ts";

const IDEMPOTENCY = /^[A-Za-z0-9 _-]{4,36}$/;
const PURPOSES = ["refund", "cashback", "payout", "salary", "utility bill", "vendor bill"];
const NARRATION = /^[A-Za-z0-9 ]{1,30}$/;

/** The lifecycle (x/payouts/states-life-cycle.md), including processed -> reversed. */
export const TRANSITIONS: Record<PayoutStatus, PayoutStatus[]> = {
  pending: ["queued", "scheduled", "processing", "rejected"],
  queued: ["processing", "cancelled", "failed"],
  scheduled: ["processing", "cancelled", "failed"],
  processing: ["processed", "reversed", "failed"],
  processed: ["reversed"],
  failed: ["reversed"],
  reversed: ["failed"],
  cancelled: [],
  rejected: [],
};

/** A payout is created "processing" (payout.initiated is sent) and stays there until a control. */
export async function createPayout(s: RazorpayXState, { req }: Call): Promise<Response> {
  const body = await readBody(req);
  const key = req.headers.get("x-payout-idempotency");
  s.createRequests += 1;
  if (key === null) {
    return invalid(
      "Idempotency key is missing. Include idempotency header and key in the request.",
      "X-Payout-Idempotency",
    );
  }
  if (!IDEMPOTENCY.test(key)) {
    return invalid("The idempotency key is 4-36 letters, digits, spaces, _ or -.", "key");
  }
  const fingerprint = canonical(body);
  const seen = s.keys.get(key);
  if (seen) {
    if (seen.fingerprint !== fingerprint) {
      return invalid("Different request body sent for the same Idempotency Header", null);
    }
    return jsonResponse(200, s.payouts.get(seen.payoutId));
  }
  const p = newPayout(body, {
    accountNumber: s.opts.accountNumber,
    fundAccount: s.fundAccounts.get(String(body.fund_account_id)),
    now: s.unix(),
  });
  if (p instanceof Response) return p;
  s.payouts.set(p.id, p);
  s.keys.set(key, { fingerprint, payoutId: p.id });
  s.hooks.schedule([emit(s, p)], s.defaultWebhooks);
  return jsonResponse(200, p);
}

export function getPayout(s: RazorpayXState, { ids }: Call): Response {
  const p = s.payouts.get(ids.id);
  return p ? jsonResponse(200, p) : notFoundId();
}

/**
 * GET /v1/payouts?account_number=…: our account's payouts, newest first, `from`/`to` (unix
 * seconds, inclusive) on created_at, `count` 1..100 (default 10) and `skip`.
 */
export function listPayouts(s: RazorpayXState, { url }: Call): Response {
  const q = url.searchParams;
  if (q.get("account_number") !== s.opts.accountNumber) {
    return invalid("The account number is invalid.", "account_number");
  }
  const ints: Record<string, number | undefined> = {};
  for (const name of ["count", "skip", "from", "to"]) {
    const raw = q.get(name);
    if (raw === null || raw === "") continue;
    if (!/^\d+$/.test(raw)) return invalid(`The ${name} must be an integer.`, name);
    ints[name] = Number(raw);
  }
  const count = ints.count ?? 10;
  if (count < 1 || count > 100) return invalid("The count must be between 1 and 100.", "count");
  const skip = ints.skip ?? 0;
  const items = [...s.payouts.values()]
    .filter((p) =>
      (ints.from === undefined || p.created_at >= ints.from) &&
      (ints.to === undefined || p.created_at <= ints.to)
    )
    .reverse()
    .slice(skip, skip + count);
  return jsonResponse(200, { entity: "collection", count: items.length, items });
}

/** A payout body as api/x/payouts/create documents it; `account` is our account number. */
function newPayout(
  body: Json,
  ctx: { accountNumber: string; fundAccount: FundAccount | undefined; now: number },
): Payout | Response {
  if (body.account_number !== ctx.accountNumber) {
    return invalid("The account number is invalid.", "account_number");
  }
  const fa = ctx.fundAccount;
  if (!fa) return invalid("The id provided does not exist", "fund_account_id");
  const amount = body.amount;
  if (typeof amount !== "number" || !Number.isInteger(amount) || amount < 100) {
    return invalid("The amount must be at least INR 1.00 (100 paise).", "amount");
  }
  if (body.currency !== "INR") return invalid("The currency must be INR.", "currency");
  const modes = fa.account_type === "vpa" ? ["UPI"] : ["NEFT", "RTGS", "IMPS"];
  if (typeof body.mode !== "string" || !modes.includes(body.mode)) {
    return invalid(`The mode must be one of ${modes.join(", ")} for this fund account.`, "mode");
  }
  if (typeof body.purpose !== "string" || !PURPOSES.includes(body.purpose)) {
    return invalid("The purpose is invalid.", "purpose");
  }
  const ref = body.reference_id ?? null;
  if (ref !== null && (typeof ref !== "string" || ref.length > 40)) {
    return invalid("The reference id may not be greater than 40 characters.", "reference_id");
  }
  const narration = body.narration ?? null;
  if (narration !== null && (typeof narration !== "string" || !NARRATION.test(narration))) {
    return invalid("The narration is 1-30 letters, digits or spaces.", "narration");
  }
  const notes = strings(body.notes);
  if (notes instanceof Response) return notes;
  return {
    id: randomId("pout_"),
    entity: "payout",
    fund_account_id: fa.id,
    amount,
    currency: "INR",
    notes,
    fees: 0,
    tax: 0,
    status: "processing",
    purpose: body.purpose,
    utr: null,
    mode: body.mode,
    reference_id: ref as string | null,
    narration: narration as string | null,
    batch_id: null,
    status_details: null,
    failure_reason: null,
    created_at: ctx.now,
  };
}

/** What a payout looks like after a status move (fees from processing on; a UTR once sent). */
function moved(p: Payout, status: PayoutStatus, reason?: string): Payout {
  const out: Payout = { ...p, status };
  if (status === "processed" && !out.utr) out.utr = randomId("UTR");
  if (["processing", "processed"].includes(status)) {
    out.fees = 590;
    out.tax = 90;
  }
  if (["failed", "reversed", "rejected", "cancelled"].includes(status)) {
    const description = reason ?? `Payout ${status} by the beneficiary bank`;
    out.status_details = { reason: `payout_${status}`, description, source: "beneficiary_bank" };
    out.failure_reason = description;
  }
  return out;
}

/**
 * POST /_sim/razorpayx/payouts/:id/transition {status, reason?, webhooks?}: the bank (or
 * RazorpayX) moves a payout along its lifecycle; the move is signed and sent as payout.<status>.
 */
export async function simTransition(s: RazorpayXState, { req, ids }: Call): Promise<Response> {
  const body = await readBody(req);
  const p = s.payouts.get(ids.id);
  if (!p) return notFoundId();
  const status = body.status as PayoutStatus;
  if (!TRANSITIONS[p.status].includes(status)) {
    return invalid(`A ${p.status} payout cannot become ${String(status)}`, "status");
  }
  const next = moved(p, status, typeof body.reason === "string" ? body.reason : undefined);
  s.payouts.set(ids.id, next);
  const hooks = { ...s.defaultWebhooks, ...parseWebhookOptions(body.webhooks) };
  s.hooks.schedule([emit(s, next)], hooks);
  return jsonResponse(200, next);
}

/** GET /_sim/razorpayx/payouts: every payout, the create requests received, the keys used. */
export function simListPayouts(s: RazorpayXState): Response {
  return jsonResponse(200, {
    payouts: [...s.payouts.values()],
    create_requests: s.createRequests,
    idempotency_keys: [...s.keys].map(([key, v]) => ({ key, payout_id: v.payoutId })),
  });
}
