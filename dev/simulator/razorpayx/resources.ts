// RazorpayX resources as the API reference describes them (MARKETPLACE_FACTS 2.5-2.8): contacts,
// fund accounts (bank account, VPA) and payouts with their lifecycle; validation and errors.

export type Json = Record<string, unknown>;

export interface Contact {
  id: string;
  entity: "contact";
  name: string;
  contact: string | null;
  email: string | null;
  type: string | null;
  reference_id: string | null;
  batch_id: null;
  active: boolean;
  notes: Record<string, string>;
  created_at: number;
}

export interface FundAccount {
  id: string;
  entity: "fund_account";
  contact_id: string;
  account_type: "bank_account" | "vpa";
  bank_account?: {
    ifsc: string;
    bank_name: string;
    name: string;
    account_number: string;
    notes: [];
  };
  vpa?: { address: string; username: string; handle: string };
  batch_id: null;
  active: boolean;
  created_at: number;
}

export type PayoutStatus =
  | "pending"
  | "queued"
  | "scheduled"
  | "processing"
  | "processed"
  | "reversed"
  | "cancelled"
  | "rejected"
  | "failed";

export interface Payout {
  id: string;
  entity: "payout";
  fund_account_id: string;
  amount: number;
  currency: "INR";
  notes: Record<string, string>;
  fees: number;
  tax: number;
  status: PayoutStatus;
  purpose: string;
  utr: string | null;
  mode: string;
  reference_id: string | null;
  narration: string | null;
  batch_id: null;
  status_details: { reason: string; description: string; source: string } | null;
  failure_reason: string | null;
  created_at: number;
}

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

/** The webhook a status move sends (webhooks/payouts.md): processing is payout.initiated. */
export function eventFor(status: PayoutStatus): string {
  return status === "processing" ? "payout.initiated" : `payout.${status}`;
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function randomId(prefix: string): string {
  const out: string[] = [];
  const buf = new Uint8Array(32);
  while (out.length < 14) {
    crypto.getRandomValues(buf);
    for (const b of buf) if (b < 248 && out.length < 14) out.push(ALNUM[b % 62]);
  }
  return prefix + out.join("");
}

export function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=UTF-8" },
  });
}

/** RazorpayX's 400: {"error":{"code":"BAD_REQUEST_ERROR","description","field",...}}. */
export function invalid(description: string, field: string | null = null): Response {
  return jsonResponse(400, {
    error: {
      code: "BAD_REQUEST_ERROR",
      description,
      source: "business",
      step: "NA",
      reason: "input_validation_failed",
      metadata: {},
      field,
    },
  });
}

export function serverError(status: number): Response {
  return jsonResponse(status, {
    error: {
      code: "SERVER_ERROR",
      description: "The server encountered an error. The incident has been reported to admins.",
      source: "NA",
      step: "NA",
      reason: "NA",
      metadata: {},
      field: null,
    },
  });
}

export const notFoundId = () => invalid("The id provided does not exist");

const IFSC = /^[A-Z]{4}0[A-Z0-9]{6}$/;
const VPA = /^[A-Za-z0-9.\-_]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$/;
const PURPOSES = ["refund", "cashback", "payout", "salary", "utility bill", "vendor bill"];
const NARRATION = /^[A-Za-z0-9 ]{1,30}$/;
const BANKS: Record<string, string> = { HDFC: "HDFC Bank", ICIC: "ICICI Bank", SBIN: "SBI" };

function strings(raw: unknown): Record<string, string> | Response {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) return invalid("notes must be an object");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Json)) {
    if (typeof v !== "string" || v.length > 256) return invalid("notes values are strings");
    out[k] = v;
  }
  return out;
}

export function newContact(body: Json, now: number): Contact | Response {
  const name = body.name;
  if (typeof name !== "string" || name.length < 3 || name.length > 50) {
    return invalid("The name must be between 3 and 50 characters.", "name");
  }
  const ref = body.reference_id ?? null;
  if (ref !== null && (typeof ref !== "string" || ref.length > 40)) {
    return invalid("The reference id may not be greater than 40 characters.", "reference_id");
  }
  const notes = strings(body.notes);
  if (notes instanceof Response) return notes;
  const opt = (k: string) => typeof body[k] === "string" ? body[k] as string : null;
  return {
    id: randomId("cont_"),
    entity: "contact",
    name,
    contact: opt("contact"),
    email: opt("email"),
    type: opt("type"),
    reference_id: ref as string | null,
    batch_id: null,
    active: true,
    notes,
    created_at: now,
  };
}

/** Contacts and fund accounts with all the same details are returned, not created again. */
export function sameContact(a: Contact, b: Contact): boolean {
  return a.name === b.name && a.email === b.email && a.contact === b.contact &&
    a.type === b.type && a.reference_id === b.reference_id;
}

export function newFundAccount(body: Json, now: number): FundAccount | Response {
  if (typeof body.contact_id !== "string") {
    return invalid("The contact id field is required.", "contact_id");
  }
  const base = {
    id: randomId("fa_"),
    entity: "fund_account" as const,
    contact_id: body.contact_id,
    batch_id: null,
    active: true,
    created_at: now,
  };
  if (body.account_type === "bank_account") {
    const b = (body.bank_account ?? {}) as Json;
    if (typeof b.name !== "string" || b.name.length < 3 || b.name.length > 120) {
      return invalid("The name must be between 3 and 120 characters.", "name");
    }
    if (typeof b.ifsc !== "string" || !IFSC.test(b.ifsc)) {
      return invalid("The ifsc must be 11 characters, a valid IFSC.", "ifsc");
    }
    if (typeof b.account_number !== "string" || !/^[0-9]{5,35}$/.test(b.account_number)) {
      return invalid("The account number must be 5 to 35 digits.", "account_number");
    }
    return {
      ...base,
      account_type: "bank_account",
      bank_account: {
        ifsc: b.ifsc,
        bank_name: BANKS[b.ifsc.slice(0, 4)] ?? `${b.ifsc.slice(0, 4)} Bank`,
        name: b.name,
        account_number: b.account_number,
        notes: [],
      },
    };
  }
  if (body.account_type === "vpa") {
    const address = ((body.vpa ?? {}) as Json).address;
    if (typeof address !== "string" || !VPA.test(address)) {
      return invalid("Invalid VPA. Please enter a valid Virtual Payment Address", "address");
    }
    const [username, handle] = address.split("@");
    return { ...base, account_type: "vpa", vpa: { address, username, handle } };
  }
  return invalid("The account type must be bank_account, vpa or card.", "account_type");
}

export function sameFundAccount(a: FundAccount, b: FundAccount): boolean {
  return a.contact_id === b.contact_id && a.account_type === b.account_type &&
    JSON.stringify(a.bank_account ?? a.vpa) === JSON.stringify(b.bank_account ?? b.vpa);
}

/** A payout body as api/x/payouts/create documents it; `account` is our account number. */
export function newPayout(
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
export function moved(p: Payout, status: PayoutStatus, reason?: string): Payout {
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
