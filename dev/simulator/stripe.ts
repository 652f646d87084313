// Stateful in-memory Stripe simulator (real /v1 wire formats, /_sim/stripe controls) as a fetch handler.
//
// Mounting contract: the same as razorpay.ts (paths relative to the mount point, a "reset" fault throws
// SimulatedConnectionReset, the "timeout" faults need the original request's signal). One difference:
// the stripe SDK's base path is fixed at "/v1/" (only host, port and protocol are configurable,
// GATEWAY_FACTS B1), so the official client reaches the simulator only when it is mounted at the root
// of its own port: new Stripe(secretKey, {host: "127.0.0.1", port, protocol: "http", ...}).
//
// Where the sources do not pin Stripe's behaviour down, the choices are marked "assumed".
import { createHash, createHmac } from "node:crypto";
import {
  canonical,
  FaultBook,
  type FaultMode,
  type FaultSpec,
  holdUntilAbort,
  parseWebhookOptions,
  readSimConfig,
  type SimDeliveryRecord,
  type SimEventRecord,
  SimulatedConnectionReset,
  WebhookDispatcher,
  type WebhookOptions,
} from "./common.ts";

export type { FaultMode, FaultSpec, SimDeliveryRecord, SimEventRecord, WebhookOptions };
export { SimulatedConnectionReset, simulatedResetResponse } from "./common.ts";

export interface StripeSimOptions {
  /** Requests must send `Authorization: Bearer <secretKey>` (Basic with the key as user also works). */
  secretKey: string;
  /** Accepted only where Stripe.js may use it: retrieving an intent with its client_secret. */
  publishableKey: string;
  /** Signs webhooks exactly as given, whsec_ prefix included (GATEWAY_FACTS B5). */
  webhookSecret: string;
  webhookUrl?: string;
  nowMs?: () => number;
}

/** The version stripe@23.1.0 pins (esm/apiVersion.js); events carry it as api_version. */
export const STRIPE_API_VERSION = "2026-10-28.endive";

/** `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, the Stripe-Signature header (GATEWAY_FACTS B5). */
export function stripeSignatureHeader(secret: string, timestampSec: number, body: string): string {
  const v1 = createHmac("sha256", secret).update(`${timestampSec}.${body}`, "utf8").digest("hex");
  return `t=${timestampSec},v1=${v1}`;
}

// ---------------------------------------------------------------- wire types

type Json = Record<string, unknown>;
type Metadata = Record<string, string>;
/** Form-encoded parameters: bracket notation parsed into nested hashes; leaves stay strings. */
type Params = { [key: string]: Param };
type Param = string | Params;

interface Address {
  city: string | null;
  country: string | null;
  line1: string | null;
  line2: string | null;
  postal_code: string | null;
  state: string | null;
}

interface Customer {
  id: string;
  object: "customer";
  address: Address | null;
  balance: number;
  created: number;
  currency: string | null;
  default_source: string | null;
  delinquent: boolean;
  description: string | null;
  discount: null;
  email: string | null;
  invoice_prefix: string;
  invoice_settings: {
    custom_fields: null;
    default_payment_method: string | null;
    footer: string | null;
    rendering_options: null;
  };
  livemode: false;
  metadata: Metadata;
  name: string | null;
  next_invoice_sequence: number;
  phone: string | null;
  preferred_locales: string[];
  shipping: null;
  tax_exempt: "none";
  test_clock: null;
}

interface CardDetails {
  brand: string;
  checks: Json;
  country: string;
  display_brand: string;
  exp_month: number;
  exp_year: number;
  fingerprint: string;
  funding: string;
  generated_from: null;
  last4: string;
  networks: { available: string[]; preferred: null };
  regulated_status: "unregulated";
  three_d_secure_usage: { supported: true };
  wallet: null;
}

interface PaymentMethod {
  id: string;
  object: "payment_method";
  allow_redisplay: "unspecified";
  billing_details: {
    address: Address;
    email: string | null;
    name: string | null;
    phone: string | null;
    tax_id: string | null;
  };
  card: CardDetails;
  created: number;
  customer: string | null;
  customer_account: null;
  livemode: false;
  metadata: Metadata;
  type: "card";
}

type PiStatus =
  | "requires_payment_method"
  | "requires_confirmation"
  | "requires_action"
  | "processing"
  | "requires_capture"
  | "canceled"
  | "succeeded";

interface PaymentIntent {
  id: string;
  object: "payment_intent";
  allowed_payment_method_types: string[] | null;
  amount: number;
  amount_capturable: number;
  amount_received: number;
  application: null;
  application_fee_amount: null;
  automatic_payment_methods: { allow_redirects?: string; enabled: boolean } | null;
  canceled_at: number | null;
  cancellation_reason: string | null;
  capture_method: string;
  client_secret: string;
  confirmation_method: "automatic";
  created: number;
  currency: string;
  customer: string | null;
  customer_account: null;
  description: string | null;
  excluded_payment_method_types: null;
  last_payment_error: Json | null;
  latest_charge: string | null;
  livemode: false;
  managed_payments: null;
  metadata: Metadata;
  next_action: Json | null;
  on_behalf_of: null;
  payment_method: string | null;
  payment_method_configuration_details: { id: string; parent: null } | null;
  payment_method_options: Json;
  payment_method_types: string[];
  payment_record: null;
  processing: null;
  receipt_email: string | null;
  review: null;
  setup_future_usage: string | null;
  shipping: null;
  source: null;
  statement_descriptor: null;
  statement_descriptor_suffix: string | null;
  status: PiStatus;
  transfer_data: null;
  transfer_group: null;
}

interface Charge {
  id: string;
  object: "charge";
  amount: number;
  amount_captured: number;
  amount_refunded: number;
  application: null;
  application_fee: null;
  application_fee_amount: null;
  balance_transaction: string | null;
  billing_details: PaymentMethod["billing_details"];
  calculated_statement_descriptor: string;
  captured: boolean;
  created: number;
  currency: string;
  customer: string | null;
  description: string | null;
  disputed: false;
  failure_balance_transaction: null;
  failure_code: string | null;
  failure_message: string | null;
  fraud_details: Json;
  livemode: false;
  metadata: Metadata;
  on_behalf_of: null;
  outcome: Json;
  paid: boolean;
  payment_intent: string;
  payment_method: string;
  payment_method_details: Json;
  receipt_email: string | null;
  receipt_number: null;
  receipt_url: string;
  refunded: boolean;
  review: null;
  shipping: null;
  source: null;
  source_transfer: null;
  statement_descriptor: null;
  statement_descriptor_suffix: string | null;
  status: "succeeded" | "failed";
  transfer_data: null;
  transfer_group: null;
}

type SiStatus =
  | "requires_payment_method"
  | "requires_confirmation"
  | "requires_action"
  | "processing"
  | "canceled"
  | "succeeded";

interface SetupIntent {
  id: string;
  object: "setup_intent";
  allowed_payment_method_types: string[] | null;
  application: null;
  automatic_payment_methods: { allow_redirects?: string; enabled: boolean } | null;
  cancellation_reason: string | null;
  client_secret: string;
  created: number;
  customer: string | null;
  customer_account: null;
  description: string | null;
  excluded_payment_method_types: null;
  flow_directions: null;
  last_setup_error: Json | null;
  latest_attempt: null;
  livemode: false;
  mandate: null;
  metadata: Metadata;
  next_action: Json | null;
  on_behalf_of: null;
  payment_method: string | null;
  payment_method_configuration_details: { id: string; parent: null } | null;
  payment_method_options: Json;
  payment_method_types: string[];
  single_use_mandate: null;
  status: SiStatus;
  usage: string;
}

interface Refund {
  id: string;
  object: "refund";
  amount: number;
  balance_transaction: string;
  charge: string;
  created: number;
  currency: string;
  customer: string | null;
  customer_account: null;
  destination_details: Json;
  failure_balance_transaction?: string;
  failure_reason?: string;
  metadata: Metadata;
  payment_intent: string;
  payment_method: string;
  reason: string | null;
  receipt_number: null;
  source_transfer_reversal: null;
  status: "pending" | "succeeded" | "failed" | "canceled";
  transfer_reversal: null;
}

// ---------------------------------------------------------------- test cards

interface Decline {
  type: "card_error" | "invalid_request_error";
  code: string;
  decline_code?: string;
  message: string;
}

interface CardSpec {
  number: string;
  brand: string;
  displayBrand: string;
  funding: "credit" | "debit";
  country: string;
  decline?: Decline;
  /** "required": on-session payments need 3DS unless set up for off-session; "always": every time. */
  threeDS?: "required" | "always";
}

const GENERIC_DECLINE: Decline = {
  type: "card_error",
  code: "card_declined",
  decline_code: "generic_decline",
  message: "Your card was declined.",
};
const AUTHENTICATION_REQUIRED: Decline = {
  type: "card_error",
  code: "authentication_required",
  decline_code: "authentication_required",
  message: "Your card was declined. This transaction requires authentication.",
};
const AUTHENTICATION_FAILED: Decline = {
  type: "invalid_request_error",
  code: "payment_intent_authentication_failure",
  message: "The provided PaymentMethod has failed authentication. You can provide " +
    "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
};
const SETUP_AUTHENTICATION_FAILED: Decline = {
  type: "invalid_request_error",
  code: "setup_intent_authentication_failure",
  message: "The latest attempt to set up the payment method has failed because authentication " +
    "failed. Provide a new payment method to attempt to set it up again.",
};

function card(
  number: string,
  brand: string,
  extra: Partial<CardSpec> = {},
): CardSpec {
  const display = brand === "amex" ? "american_express" : brand;
  return { number, brand, displayBrand: display, funding: "credit", country: "US", ...extra };
}

// docs.stripe.com/testing card numbers.
const TEST_CARDS = new Map<string, CardSpec>(
  [
    card("4242424242424242", "visa"),
    card("4000056655665556", "visa", { funding: "debit" }),
    card("4000003560000008", "visa", { country: "IN" }),
    card("5555555555554444", "mastercard"),
    card("2223003122003222", "mastercard"),
    card("5200828282828210", "mastercard", { funding: "debit" }),
    card("378282246310005", "amex"),
    card("371449635398431", "amex"),
    card("6011111111111117", "discover"),
    card("4000000000000002", "visa", { decline: GENERIC_DECLINE }),
    card("4000000000009995", "visa", {
      decline: {
        ...GENERIC_DECLINE,
        decline_code: "insufficient_funds",
        message: "Your card has insufficient funds.",
      },
    }),
    card("4000000000009987", "visa", {
      decline: { ...GENERIC_DECLINE, decline_code: "lost_card" },
    }),
    card("4000000000009979", "visa", {
      decline: { ...GENERIC_DECLINE, decline_code: "stolen_card" },
    }),
    card("4000000000000069", "visa", {
      decline: {
        type: "card_error",
        code: "expired_card",
        decline_code: "expired_card",
        message: "Your card has expired.",
      },
    }),
    card("4000000000000127", "visa", {
      decline: {
        type: "card_error",
        code: "incorrect_cvc",
        decline_code: "incorrect_cvc",
        message: "Your card's security code is incorrect.",
      },
    }),
    card("4000000000000119", "visa", {
      decline: {
        type: "card_error",
        code: "processing_error",
        decline_code: "processing_error",
        message: "An error occurred while processing your card. Try again in a little bit.",
      },
    }),
    card("4000002500003155", "visa", { threeDS: "required" }),
    card("4000002760003184", "visa", { threeDS: "always" }),
  ].map((c) => [c.number, c]),
);

// Stripe test mode's shortcut PaymentMethod ids: each use creates a fresh pm_ from the card.
const MAGIC_PAYMENT_METHODS = new Map<string, string>([
  ["pm_card_visa", "4242424242424242"],
  ["pm_card_visa_debit", "4000056655665556"],
  ["pm_card_mastercard", "5555555555554444"],
  ["pm_card_amex", "378282246310005"],
  ["pm_card_discover", "6011111111111117"],
  ["pm_card_in", "4000003560000008"],
  ["pm_card_chargeDeclined", "4000000000000002"],
  ["pm_card_chargeDeclinedInsufficientFunds", "4000000000009995"],
  ["pm_card_chargeDeclinedExpiredCard", "4000000000000069"],
  ["pm_card_authenticationRequiredOnSetup", "4000002500003155"],
  ["pm_card_authenticationRequired", "4000002760003184"],
]);

function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** A known test card, or any Luhn-valid number branded by its prefix (it then always succeeds). */
function cardSpec(number: string): CardSpec | undefined {
  const known = TEST_CARDS.get(number);
  if (known) return known;
  if (!/^\d{13,19}$/.test(number) || !luhnValid(number)) return undefined;
  if (number.startsWith("4")) return card(number, "visa");
  if (/^(5[1-5]|2[2-7])/.test(number)) return card(number, "mastercard");
  if (/^3[47]/.test(number)) return card(number, "amex");
  if (/^6(011|5)/.test(number)) return card(number, "discover");
  return card(number, "unknown");
}

// ---------------------------------------------------------------- currencies

// From Stripe's "Invalid currency" error message (the list it prints of supported codes).
const SUPPORTED_CURRENCIES = new Set(
  ("usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp " +
    "byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip " +
    "gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt " +
    "lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr " +
    "nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd " +
    "std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw")
    .split(" "),
);
// GATEWAY_FACTS B8.
const ZERO_DECIMAL = new Set(
  "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split(" "),
);
const THREE_DECIMAL = new Set("bhd jod kwd omr tnd".split(" "));
// Minimum charge in minor units (GATEWAY_FACTS B8; USD official, the rest third-party). Assumed for
// unlisted currencies: 50, or 100 for three-decimal ones.
const MINIMUM_AMOUNT = new Map<string, number>([
  ["usd", 50],
  ["aed", 200],
  ["aud", 50],
  ["bgn", 100],
  ["brl", 50],
  ["cad", 50],
  ["chf", 50],
  ["czk", 1500],
  ["dkk", 250],
  ["eur", 50],
  ["gbp", 30],
  ["hkd", 400],
  ["huf", 17500],
  ["inr", 50],
  ["jpy", 50],
  ["mxn", 1000],
  ["myr", 200],
  ["nok", 300],
  ["nzd", 50],
  ["pln", 200],
  ["ron", 200],
  ["sek", 300],
  ["sgd", 50],
  ["thb", 1000],
]);
const MAX_AMOUNT = 99_999_999; // eight digits (GATEWAY_FACTS B3)

function exponentOf(currency: string): number {
  return ZERO_DECIMAL.has(currency) ? 0 : THREE_DECIMAL.has(currency) ? 3 : 2;
}

function minimumOf(currency: string): number {
  return MINIMUM_AMOUNT.get(currency) ?? (THREE_DECIMAL.has(currency) ? 100 : 50);
}

function formatMajor(amount: number, currency: string): string {
  const exp = exponentOf(currency);
  if (exp === 0) return String(amount);
  const s = String(amount).padStart(exp + 1, "0");
  return `${s.slice(0, -exp)}.${s.slice(-exp)}`;
}

// ---------------------------------------------------------------- helpers

const WEBHOOK_TIMEOUT_MS = 10_000; // assumed: Stripe does not publish its webhook timeout
const MAX_IDEMPOTENCY_KEY = 255;
const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function randomAlnum(length: number): string {
  const out: string[] = [];
  const buf = new Uint8Array(64);
  while (out.length < length) {
    crypto.getRandomValues(buf);
    for (const b of buf) {
      // 248 = 4 * 62: rejecting the tail keeps every character equally likely.
      if (b < 248 && out.length < length) out.push(ALNUM[b % 62]);
    }
  }
  return out.join("");
}

const randomId = (prefix: string, length = 24) => prefix + randomAlnum(length);

/** Stripe's card fingerprint is stable per card number; this one is too. */
function fingerprintOf(number: string): string {
  const digest = createHash("sha256").update(`settle-sim-card:${number}`).digest();
  return Array.from(digest.subarray(0, 16), (b) => ALNUM[b % 62]).join("");
}

const clone = <T>(v: T): T => structuredClone(v);

// ---------------------------------------------------------------- errors

interface StripeErrorFields {
  type: "invalid_request_error" | "card_error" | "idempotency_error" | "api_error";
  message: string;
  code?: string;
  param?: string;
  decline_code?: string;
  charge?: string;
  payment_intent?: unknown;
  payment_method?: unknown;
  setup_intent?: unknown;
}

/** Thrown by handlers and parameter readers; becomes Stripe's `{"error":{...}}` body. */
class ApiError extends Error {
  constructor(readonly status: number, readonly fields: StripeErrorFields) {
    super(fields.message);
  }
}

function invalid(message: string, param?: string, code?: string): ApiError {
  return new ApiError(400, { type: "invalid_request_error", message, param, code });
}

function noSuch(kind: string, id: string, param: string, status = 400): ApiError {
  return new ApiError(status, {
    type: "invalid_request_error",
    code: "resource_missing",
    param,
    message: `No such ${kind}: '${id}'`,
  });
}

const missingParam = (param: string) =>
  invalid(`Missing required param: ${param}.`, param, "parameter_missing");

function unrecognizedUrl(method: string, path: string): ApiError {
  return new ApiError(404, {
    type: "invalid_request_error",
    message: `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs ` +
      "or we can help at https://support.stripe.com/.",
  });
}

function errorBody(fields: StripeErrorFields, requestId: string | null, unix: number) {
  const error: Json = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) error[k] = v;
  if (fields.code) {
    error.doc_url = `https://stripe.com/docs/error-codes/${fields.code.replaceAll("_", "-")}`;
  }
  if (requestId && fields.type !== "api_error") {
    error.request_log_url = `https://dashboard.stripe.com/test/logs/${requestId}?t=${unix}`;
  }
  return { error };
}

function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function serverErrorBody(status: number) {
  return {
    error: {
      type: "api_error",
      message: status === 503
        ? "Stripe is temporarily unavailable. Please try again later."
        : "An unknown error occurred. If this problem persists, please contact support.",
    },
  };
}

// ---------------------------------------------------------------- parameters

/** Bracket-notation form decoding: `a[b][c]=v`, `a[]=v` (appends), `a[0]=v`. */
function parseForm(text: string): Params {
  const root: Params = {};
  if (text === "") return root;
  for (const [rawKey, value] of new URLSearchParams(text)) {
    const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(rawKey);
    if (!m) throw invalid(`Invalid parameter name: ${rawKey}`);
    const path = [m[1], ...Array.from(m[2].matchAll(/\[([^[\]]*)\]/g), (x) => x[1])];
    let node: Params = root;
    for (let i = 0; i < path.length; i++) {
      const key = path[i] === "" ? String(Object.keys(node).length) : path[i];
      if (i === path.length - 1) {
        if (typeof node[key] === "object") throw invalid(`Invalid hash: ${path[0]}`, path[0]);
        node[key] = value;
      } else {
        const next = node[key];
        if (next === undefined) node = node[key] = {};
        else if (typeof next === "object") node = next;
        else throw invalid(`Invalid hash: ${path[0]}`, path[0]);
      }
    }
  }
  return root;
}

function label(prefix: string, name: string): string {
  return prefix === "" ? name : `${prefix}[${name}]`;
}

function rejectUnknown(p: Params, allowed: ReadonlySet<string>, prefix = ""): void {
  for (const k of Object.keys(p)) {
    if (!allowed.has(k)) {
      const name = label(prefix, k);
      throw invalid(`Received unknown parameter: ${name}`, name, "parameter_unknown");
    }
  }
}

function str(p: Params, name: string, prefix = ""): string | undefined {
  const v = p[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw invalid(`Invalid string: ${canonical(v)}`, label(prefix, name));
  return v;
}

/** "" clears a field in Stripe's update semantics: returns null then. */
function nullableStr(p: Params, name: string, prefix = ""): string | null | undefined {
  const v = str(p, name, prefix);
  return v === "" ? null : v;
}

function int(p: Params, name: string, prefix = ""): number | undefined {
  const v = str(p, name, prefix);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) {
    throw invalid(`Invalid integer: ${v}`, label(prefix, name), "parameter_invalid_integer");
  }
  return Number(v);
}

/** A list's `created` filter: an exact unix time, or a hash of gt/gte/lt/lte bounds. */
function createdFilter(p: Params): (created: number | undefined) => boolean {
  const v = p.created;
  if (v === undefined) return () => true;
  if (typeof v === "string") {
    const at = int(p, "created");
    return (c) => c === at;
  }
  rejectUnknown(v, names("gt gte lt lte"), "created");
  const b = {
    gt: int(v, "gt", "created"),
    gte: int(v, "gte", "created"),
    lt: int(v, "lt", "created"),
    lte: int(v, "lte", "created"),
  };
  return (c) =>
    c !== undefined && (b.gt === undefined || c > b.gt) && (b.gte === undefined || c >= b.gte) &&
    (b.lt === undefined || c < b.lt) && (b.lte === undefined || c <= b.lte);
}

function bool(p: Params, name: string, prefix = ""): boolean | undefined {
  const v = str(p, name, prefix);
  if (v === undefined) return undefined;
  if (v !== "true" && v !== "false") throw invalid(`Invalid boolean: ${v}`, label(prefix, name));
  return v === "true";
}

function oneOf<T extends string>(
  p: Params,
  name: string,
  values: readonly T[],
  prefix = "",
): T | undefined {
  const v = str(p, name, prefix);
  if (v === undefined) return undefined;
  if (!(values as readonly string[]).includes(v)) {
    const list = values.length > 1
      ? `${values.slice(0, -1).join(", ")} or ${values.at(-1)}`
      : values[0];
    throw invalid(`Invalid ${label(prefix, name)}: must be one of ${list}`, label(prefix, name));
  }
  return v as T;
}

function hash(p: Params, name: string, prefix = ""): Params | "" | undefined {
  const v = p[name];
  if (v === undefined || v === "") return v;
  if (typeof v !== "object") throw invalid("Invalid object", label(prefix, name));
  return v;
}

function strArray(p: Params, name: string): string[] | undefined {
  const v = p[name];
  if (v === undefined) return undefined;
  if (v === "") return [];
  if (typeof v === "string") return [v];
  const keys = Object.keys(v);
  if (!keys.every((k) => /^\d+$/.test(k))) throw invalid("Invalid array", name);
  return keys.sort((a, b) => Number(a) - Number(b)).map((k) => {
    const item = v[k];
    if (typeof item !== "string") throw invalid("Invalid array", name);
    return item;
  });
}

/** Stripe's update semantics: "" clears all metadata, metadata[k]="" removes one key. */
function applyMetadata(raw: Param | undefined, current: Metadata): Metadata {
  if (raw === undefined) return current;
  if (raw === "") return {};
  if (typeof raw !== "object") throw invalid("Invalid object", "metadata");
  const out = { ...current };
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== "string") {
      throw invalid(
        `Invalid value for metadata[${k}]: metadata values must be strings`,
        `metadata[${k}]`,
      );
    }
    if (k.length > 40) {
      throw invalid(
        `Invalid metadata: metadata keys must be at most 40 characters long, but '${k}' is ${k.length} characters long.`,
        "metadata",
      );
    }
    if (v.length > 500) {
      throw invalid(
        `Invalid metadata: metadata values must be at most 500 characters long.`,
        `metadata[${k}]`,
      );
    }
    if (v === "") delete out[k];
    else out[k] = v;
  }
  const count = Object.keys(out).length;
  if (count > 50) {
    throw invalid(
      `Invalid metadata: metadata can have up to 50 keys, but currently has ${count} keys.`,
      "metadata",
    );
  }
  return out;
}

function amountParam(p: Params, currency: string, name = "amount"): number {
  const raw = str(p, name);
  if (raw === undefined) throw missingParam(name);
  if (!/^-?\d+$/.test(raw)) {
    throw invalid(`Invalid integer: ${raw}`, name, "parameter_invalid_integer");
  }
  const amount = Number(raw);
  if (amount < 0) throw invalid("Invalid positive integer", name, "parameter_invalid_integer");
  const min = minimumOf(currency);
  if (amount < min) {
    throw invalid(
      `Amount must be at least ${formatMajor(min, currency)} ${currency}`,
      name,
      "amount_too_small",
    );
  }
  if (amount > MAX_AMOUNT) {
    throw invalid(
      `Amount must be no more than ${formatMajor(MAX_AMOUNT, currency)} ${currency}`,
      name,
      "amount_too_large",
    );
  }
  if (THREE_DECIMAL.has(currency) && amount % 10 !== 0) {
    // GATEWAY_FACTS B8: three-decimal amounts must end in 0. The exact message is assumed.
    throw invalid(
      `Invalid amount: amounts in ${currency} must be rounded to the nearest ten (the last digit must be 0).`,
      name,
    );
  }
  return amount;
}

function currencyParam(p: Params): string {
  const raw = str(p, "currency");
  if (raw === undefined) throw missingParam("currency");
  const currency = raw.toLowerCase();
  if (!SUPPORTED_CURRENCIES.has(currency)) {
    // Stripe's own wording; it sends no error code for this one.
    throw invalid(
      `Invalid currency: ${raw}. Stripe currently supports these currencies: ${
        [...SUPPORTED_CURRENCIES].join(", ")
      }`,
      "currency",
    );
  }
  return currency;
}

function addressParam(raw: Param | undefined, name: string): Address | null | undefined {
  if (raw === undefined) return undefined;
  if (raw === "") return null;
  if (typeof raw !== "object") throw invalid("Invalid object", name);
  const keys = ["city", "country", "line1", "line2", "postal_code", "state"] as const;
  rejectUnknown(raw, new Set(keys), name);
  const out = {} as Address;
  for (const k of keys) out[k] = nullableStr(raw, k, name) ?? null;
  return out;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function emailParam(p: Params): string | null | undefined {
  const email = nullableStr(p, "email");
  if (typeof email === "string" && (email.length > 512 || !EMAIL.test(email))) {
    throw invalid(`Invalid email address: ${email}`, "email", "email_invalid");
  }
  return email;
}

/** automatic_payment_methods / payment_method_types for intents (both spellings of the latter). */
function methodTypesParams(p: Params) {
  const apm = hash(p, "automatic_payment_methods");
  const types = strArray(p, "allowed_payment_method_types") ?? strArray(p, "payment_method_types");
  let automatic: { allow_redirects?: string; enabled: boolean } | null = null;
  if (apm !== undefined && apm !== "") {
    rejectUnknown(apm, new Set(["enabled", "allow_redirects"]), "automatic_payment_methods");
    const enabled = bool(apm, "enabled", "automatic_payment_methods");
    if (enabled === undefined) missingParamThrow("automatic_payment_methods[enabled]");
    const redirects = oneOf(
      apm,
      "allow_redirects",
      ["always", "never"] as const,
      "automatic_payment_methods",
    );
    automatic = { allow_redirects: redirects ?? "always", enabled: enabled! };
  }
  if (automatic?.enabled && types !== undefined) {
    throw invalid(
      "You may only specify one of these parameters: automatic_payment_methods, payment_method_types.",
      "automatic_payment_methods",
      "parameters_exclusive",
    );
  }
  for (const t of types ?? []) {
    if (t !== "card") {
      throw invalid(
        `The payment method type "${t}" is invalid. This simulator supports only "card".`,
        "payment_method_types",
        "payment_method_unactivated",
      );
    }
  }
  // Since API 2023-08-16 automatic payment methods are on unless types are given.
  if (types === undefined && automatic === null) {
    automatic = { allow_redirects: "always", enabled: true };
  }
  return {
    automatic,
    allowed: types ?? null,
    types: types && types.length > 0 ? types : ["card"],
  };
}

function missingParamThrow(param: string): never {
  throw missingParam(param);
}

// Every documented top-level parameter of stripe@23.1.0's *Params interfaces is accepted; the ones the
// simulator models are interpreted, the rest are accepted and ignored. Anything else is
// parameter_unknown, as on Stripe.
const names = (s: string) => new Set(s.split(/\s+/).filter(Boolean));
const PAGE = "limit starting_after ending_before expand";
const ALLOWED = {
  customerCreate: names(
    "address balance business_name cash_balance description email expand individual_name " +
      "invoice_prefix invoice_settings metadata name next_invoice_sequence payment_method phone " +
      "preferred_locales shipping source tax tax_exempt tax_id_data test_clock validate",
  ),
  customerUpdate: names(
    "address balance business_name cash_balance default_source description email expand " +
      "individual_name invoice_prefix invoice_settings metadata name next_invoice_sequence phone " +
      "preferred_locales shipping source tax tax_exempt validate",
  ),
  customerList: names(`${PAGE} created email test_clock`),
  customerPms: names(`${PAGE} allow_redisplay type`),
  invoiceSettings: names("custom_fields default_payment_method footer rendering_options"),
  piCreate: names(
    "amount currency allowed_payment_method_types amount_details application_fee_amount " +
      "automatic_payment_methods capture_method confirm confirmation_method confirmation_token " +
      "customer customer_account description error_on_requires_action " +
      "excluded_payment_method_types expand hooks mandate mandate_data metadata off_session " +
      "on_behalf_of payment_details payment_method payment_method_configuration " +
      "payment_method_data payment_method_options payment_method_types radar_options " +
      "receipt_email return_url setup_future_usage shipping statement_descriptor " +
      "statement_descriptor_suffix transfer_data transfer_group use_stripe_sdk",
  ),
  piUpdate: names(
    "allowed_payment_method_types amount amount_details application_fee_amount capture_method " +
      "currency customer customer_account description excluded_payment_method_types expand hooks " +
      "metadata payment_details payment_method payment_method_configuration payment_method_data " +
      "payment_method_options receipt_email setup_future_usage shipping statement_descriptor " +
      "statement_descriptor_suffix transfer_data transfer_group",
  ),
  piConfirm: names(
    "allowed_payment_method_types amount_details amount_to_confirm capture_method " +
      "confirmation_token error_on_requires_action excluded_payment_method_types expand hooks " +
      "mandate mandate_data off_session payment_details payment_method payment_method_data " +
      "payment_method_options radar_options receipt_email return_url setup_future_usage shipping " +
      "use_stripe_sdk",
  ),
  piCapture: names(
    "amount_details amount_to_capture application_fee_amount expand final_capture hooks metadata " +
      "payment_details statement_descriptor statement_descriptor_suffix transfer_data",
  ),
  piList: names(`${PAGE} created customer customer_account`),
  cancel: names("cancellation_reason expand"),
  retrieve: names("expand"),
  retrieveIntent: names("client_secret expand"),
  pmAttach: names("customer customer_account expand"),
  pmUpdate: names("allow_redisplay billing_details card expand metadata"),
  pmUpdateCard: names("exp_month exp_year networks"),
  pmList: names(`${PAGE} allow_redisplay customer customer_account type`),
  siCreate: names(
    "allowed_payment_method_types attach_to_self automatic_payment_methods confirm " +
      "confirmation_token customer customer_account description excluded_payment_method_types " +
      "expand flow_directions mandate_data metadata on_behalf_of payment_method " +
      "payment_method_configuration payment_method_data payment_method_options " +
      "payment_method_types return_url single_use usage use_stripe_sdk",
  ),
  siConfirm: names(
    "allowed_payment_method_types confirmation_token expand mandate_data payment_method " +
      "payment_method_data payment_method_options return_url use_stripe_sdk",
  ),
  siList: names(`${PAGE} attach_to_self created customer customer_account payment_method`),
  refundCreate: names(
    "amount charge currency customer expand instructions_email metadata origin payment_intent " +
      "reason refund_application_fee reverse_transfer",
  ),
  refundList: names(`${PAGE} charge created payment_intent`),
  chargeList: names(`${PAGE} created customer payment_intent transfer_group`),
  eventList: names(`${PAGE} created delivery_success type types`),
};

const EXPANDABLE = new Set([
  "customer",
  "payment_method",
  "latest_charge",
  "charge",
  "payment_intent",
  "default_payment_method",
]);

function expandPaths(p: Params): string[] {
  const paths = strArray(p, "expand") ?? [];
  for (const path of paths) {
    const segs = path.split(".");
    if (segs.length > 4 || !EXPANDABLE.has(segs.at(-1)!)) {
      throw invalid(`This property cannot be expanded (${path}).`, "expand");
    }
  }
  return paths;
}

// ---------------------------------------------------------------- records

interface PmRecord {
  pm: PaymentMethod;
  card: CardSpec;
  /** Detached, or used once without a customer: Stripe refuses both from then on. */
  state: "usable" | "detached" | "consumed";
  /** Set up for off-session use (SetupIntent or setup_future_usage), so 3DS cards pass off-session. */
  offSessionReady: boolean;
}

interface StoredEvent extends SimEventRecord {
  objectId: string;
  related: Set<string>;
}

interface IdempotencyEntry {
  method: string;
  path: string;
  params: string;
  status: number;
  body: string;
  requestId: string;
}

interface Ctx {
  request: { id: string | null; idempotency_key: string | null };
  hooks: WebhookOptions;
  events: StoredEvent[];
}

interface Auth {
  kind: "secret" | "publishable";
  key: string;
}

type Outcome = "success" | "failure" | "requires_action";

interface Res {
  status: number;
  body: unknown;
}

const ok = (body: unknown): Res => ({ status: 200, body });

const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "Request-Id, Stripe-Version, Idempotent-Replayed",
};

export class StripeSimulator {
  readonly #opts: StripeSimOptions;
  readonly #now: () => number;
  #defaultWebhooks: WebhookOptions = {};
  readonly #customers = new Map<string, Customer>();
  readonly #pms = new Map<string, PmRecord>();
  readonly #pis = new Map<string, PaymentIntent>();
  readonly #charges = new Map<string, Charge>();
  readonly #sis = new Map<string, SetupIntent>();
  readonly #refunds = new Map<string, Refund>();
  readonly #events: StoredEvent[] = [];
  readonly #idempotency = new Map<string, IdempotencyEntry>();
  readonly #faults = new FaultBook();
  readonly #hooks: WebhookDispatcher<StoredEvent>;

  constructor(opts: StripeSimOptions) {
    this.#opts = opts;
    this.#now = opts.nowMs ?? Date.now;
    this.#hooks = new WebhookDispatcher<StoredEvent>({
      label: "stripe",
      timeoutMs: WEBHOOK_TIMEOUT_MS,
      url: opts.webhookUrl,
      headers: (e) => ({
        "content-type": "application/json; charset=utf-8",
        "stripe-signature": e.signature,
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "cache-control": "no-cache",
      }),
    });
  }

  setWebhookUrl(url: string | undefined): void {
    this.#hooks.url = url;
  }

  /** Resolves once every scheduled webhook delivery has finished. */
  idle(): Promise<void> {
    return this.#hooks.idle();
  }

  async fetch(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const requestId = randomId("req_", 14);
    let res: Response;
    if (req.method === "OPTIONS") {
      res = new Response(null, {
        status: 204,
        headers: {
          "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
          "access-control-allow-headers": req.headers.get("access-control-request-headers") ??
            "authorization, content-type, idempotency-key, stripe-version",
          "access-control-max-age": "600",
        },
      });
    } else if (path.startsWith("/_sim/")) {
      res = await this.#control(req, url, path);
    } else if (path === "/v1" || path.startsWith("/v1/")) {
      res = await this.#api(req, url, path, requestId);
    } else {
      const e = unrecognizedUrl(req.method, url.pathname);
      res = jsonResponse(e.status, errorBody(e.fields, requestId, this.#unix()));
    }
    for (const [k, v] of Object.entries(CORS_HEADERS)) res.headers.set(k, v);
    res.headers.set("request-id", requestId);
    return res;
  }

  // ---------------------------------------------------------------- /v1 API

  async #api(req: Request, url: URL, path: string, requestId: string): Promise<Response> {
    const fault = this.#faults.take(req.method, path);
    if (fault) {
      switch (fault.mode) {
        case "error_500":
          return jsonResponse(500, serverErrorBody(500));
        case "error_502":
          return jsonResponse(502, serverErrorBody(502));
        case "error_503":
          return jsonResponse(503, serverErrorBody(503));
        case "reset":
          throw new SimulatedConnectionReset();
        case "timeout":
          await holdUntilAbort(req.signal, fault.holdMs);
          return jsonResponse(504, serverErrorBody(504));
        case "delay":
          await holdUntilAbort(req.signal, fault.holdMs);
          break;
      }
    }
    const res = await this.#apiHandled(req, url, path, requestId);
    // The *_after modes run the request first: the side effect happened (and its idempotent result was
    // stored) but the client never learns it.
    if (fault?.mode === "reset_after") {
      await res.body?.cancel();
      throw new SimulatedConnectionReset();
    }
    if (fault?.mode === "timeout_after") {
      await res.body?.cancel();
      await holdUntilAbort(req.signal, fault.holdMs);
      return jsonResponse(504, serverErrorBody(504));
    }
    return res;
  }

  async #apiHandled(req: Request, url: URL, path: string, requestId: string): Promise<Response> {
    const headers = { "stripe-version": STRIPE_API_VERSION };
    const fail = (e: ApiError) =>
      jsonResponse(e.status, errorBody(e.fields, requestId, this.#unix()), headers);
    const method = req.method.toUpperCase();
    const auth = this.#authenticate(req.headers.get("authorization"));
    if (auth instanceof ApiError) return fail(auth);

    let params: Params;
    try {
      params = await readParams(req, url, method);
    } catch (e) {
      if (e instanceof ApiError) return fail(e);
      throw e;
    }

    const key = method === "POST" ? req.headers.get("idempotency-key") : null;
    const scopedKey = `${auth.key}\n${key}`; // keys are scoped per API key
    if (key !== null) {
      if (key.length > MAX_IDEMPOTENCY_KEY) {
        return fail(invalid(
          `Invalid idempotency key: must be at most ${MAX_IDEMPOTENCY_KEY} characters long.`,
          "Idempotency-Key",
        ));
      }
      const seen = this.#idempotency.get(scopedKey);
      if (seen) {
        if (seen.method !== method || seen.path !== path) {
          return fail(
            new ApiError(400, {
              type: "idempotency_error",
              message: "Keys for idempotent requests can only be used for the same endpoint they " +
                `were first used for ('${seen.method} ${seen.path}' vs '${method} ${path}'). ` +
                `Try using a key other than '${key}' if you meant to execute a different request.`,
            }),
          );
        }
        if (seen.params !== canonical(params)) {
          return fail(
            new ApiError(400, {
              type: "idempotency_error",
              message: "Keys for idempotent requests can only be used with the same parameters " +
                `they were first used with. Try using a key other than '${key}' if you meant to ` +
                "execute a different request.",
            }),
          );
        }
        return jsonResponse(seen.status, seen.body, {
          ...headers,
          "idempotency-key": key,
          "idempotent-replayed": "true",
          "original-request": seen.requestId,
        });
      }
    }

    const ctx: Ctx = {
      request: { id: requestId, idempotency_key: key },
      hooks: this.#defaultWebhooks,
      events: [],
    };
    let status: number;
    let body: string;
    try {
      const expand = expandPaths(params);
      // Handlers are synchronous from here on, so two requests with one key cannot interleave
      // (Stripe's 409 idempotency_key_in_use has no counterpart here).
      const res = this.#route(method, path, params, auth, ctx);
      const out = res.status === 200 && expand.length > 0
        ? this.#expand(res.body, expand)
        : res.body;
      status = res.status;
      body = JSON.stringify(out);
    } catch (e) {
      if (!(e instanceof ApiError)) console.error("stripe simulator: internal error", e);
      const err = e instanceof ApiError
        ? e
        : new ApiError(500, { type: "api_error", message: "An unknown error occurred." });
      status = err.status;
      body = JSON.stringify(errorBody(err.fields, requestId, this.#unix()));
    }
    this.#hooks.schedule(ctx.events, ctx.hooks);

    // Stripe keeps the first result once the endpoint ran (successes, card errors, 500s); requests
    // rejected by validation are not saved (docs.stripe.com/idempotency). Assumed: every other 4xx
    // counts as a validation rejection.
    if (key !== null && (status < 300 || status === 402 || status >= 500)) {
      this.#idempotency.set(scopedKey, {
        method,
        path,
        params: canonical(params),
        status,
        body,
        requestId,
      });
    }
    return jsonResponse(
      status,
      body,
      key === null ? headers : { ...headers, "idempotency-key": key },
    );
  }

  #authenticate(header: string | null): Auth | ApiError {
    let key: string | null = null;
    const m = /^(\w+)\s+(.+)$/.exec(header?.trim() ?? "");
    if (m && m[1].toLowerCase() === "bearer") key = m[2];
    if (m && m[1].toLowerCase() === "basic") {
      try {
        key = atob(m[2]).split(":")[0];
      } catch {
        key = m[2];
      }
    }
    if (!key) {
      return new ApiError(401, {
        type: "invalid_request_error",
        message: "You did not provide an API key. You need to provide your API key in the " +
          "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). " +
          "See https://stripe.com/docs/api#authentication for details, or we can help at " +
          "https://support.stripe.com/.",
      });
    }
    if (key === this.#opts.secretKey) return { kind: "secret", key };
    if (key === this.#opts.publishableKey) return { kind: "publishable", key };
    const shown = key.length > 12
      ? `${key.slice(0, 8)}${"*".repeat(key.length - 12)}${key.slice(-4)}`
      : key;
    return new ApiError(401, {
      type: "invalid_request_error",
      message: `Invalid API Key provided: ${shown}`,
    });
  }

  #route(method: string, path: string, p: Params, auth: Auth, ctx: Ctx): Res {
    const seg = path.split("/").slice(2); // drop "" and "v1"
    const [resource, id, action, sub] = seg;
    const n = seg.length;
    if (auth.kind === "publishable") return this.#publishableRoute(method, seg, p);

    if (resource === "customers") {
      if (n === 1 && method === "POST") return this.#createCustomer(p, ctx);
      if (n === 1 && method === "GET") return this.#listCustomers(p, path);
      if (n === 2 && method === "GET") return ok(this.#retrieve(p, this.#customer(id)));
      if (n === 2 && method === "POST") return this.#updateCustomer(id, p, ctx);
      if (n === 3 && action === "payment_methods" && method === "GET") {
        const c = this.#customer(id);
        rejectUnknown(p, ALLOWED.customerPms);
        const type = str(p, "type");
        return ok(this.#list(this.#pmsOf(c.id, type), p, path));
      }
      if (n === 4 && action === "payment_methods" && method === "GET") {
        const c = this.#customer(id);
        const rec = this.#pms.get(sub);
        if (!rec || rec.pm.customer !== c.id) throw noSuch("payment_method", sub, "id", 404);
        return ok(this.#retrieve(p, rec.pm));
      }
    }
    if (resource === "payment_intents") {
      if (n === 1 && method === "POST") return this.#createPaymentIntent(p, ctx);
      if (n === 1 && method === "GET") {
        rejectUnknown(p, ALLOWED.piList);
        const customer = str(p, "customer");
        const all = [...this.#pis.values()].filter((pi) =>
          customer === undefined || pi.customer === customer
        );
        return ok(this.#list(all, p, path));
      }
      if (n === 2 && method === "GET") {
        rejectUnknown(p, ALLOWED.retrieveIntent);
        return ok(this.#paymentIntent(id));
      }
      if (n === 2 && method === "POST") return this.#updatePaymentIntent(id, p);
      if (n === 3 && method === "POST" && action === "confirm") {
        return this.#confirmPaymentIntentApi(id, p, ctx);
      }
      if (n === 3 && method === "POST" && action === "cancel") {
        return this.#cancelPaymentIntent(id, p, ctx);
      }
      if (n === 3 && method === "POST" && action === "capture") {
        return this.#capturePaymentIntent(id, p, ctx);
      }
    }
    if (resource === "payment_methods") {
      if (n === 1 && method === "GET") {
        rejectUnknown(p, ALLOWED.pmList);
        const customer = str(p, "customer");
        if (customer !== undefined) this.#customer(customer, "customer");
        const type = str(p, "type");
        const all = [...this.#pms.values()]
          .filter((r) => customer === undefined || r.pm.customer === customer)
          .filter((r) => type === undefined || r.pm.type === type)
          .map((r) => r.pm);
        return ok(this.#list(all, p, path));
      }
      if (n === 2 && method === "GET") return ok(this.#retrieve(p, this.#pm(id).pm));
      if (n === 2 && method === "POST") return this.#updatePm(id, p, ctx);
      if (n === 3 && method === "POST" && action === "attach") return this.#attach(id, p, ctx);
      if (n === 3 && method === "POST" && action === "detach") return this.#detach(id, p, ctx);
    }
    if (resource === "setup_intents") {
      if (n === 1 && method === "POST") return this.#createSetupIntent(p, ctx);
      if (n === 1 && method === "GET") {
        rejectUnknown(p, ALLOWED.siList);
        const customer = str(p, "customer");
        const all = [...this.#sis.values()].filter((si) =>
          customer === undefined || si.customer === customer
        );
        return ok(this.#list(all, p, path));
      }
      if (n === 2 && method === "GET") {
        rejectUnknown(p, ALLOWED.retrieveIntent);
        return ok(this.#setupIntent(id));
      }
      if (n === 3 && method === "POST" && action === "confirm") {
        return this.#confirmSetupIntentApi(id, p, ctx);
      }
      if (n === 3 && method === "POST" && action === "cancel") {
        return this.#cancelSetupIntent(id, p, ctx);
      }
    }
    if (resource === "refunds") {
      if (n === 1 && method === "POST") return this.#createRefund(p, ctx);
      if (n === 1 && method === "GET") {
        rejectUnknown(p, ALLOWED.refundList);
        const pi = str(p, "payment_intent");
        const charge = str(p, "charge");
        const all = [...this.#refunds.values()].filter((r) =>
          (pi === undefined || r.payment_intent === pi) &&
          (charge === undefined || r.charge === charge)
        );
        return ok(this.#list(all, p, path));
      }
      if (n === 2 && method === "GET") {
        const r = this.#refunds.get(id);
        if (!r) throw noSuch("refund", id, "id", 404);
        return ok(this.#retrieve(p, r));
      }
    }
    if (resource === "charges") {
      if (n === 1 && method === "GET") {
        rejectUnknown(p, ALLOWED.chargeList);
        const pi = str(p, "payment_intent");
        const customer = str(p, "customer");
        const all = [...this.#charges.values()].filter((c) =>
          (pi === undefined || c.payment_intent === pi) &&
          (customer === undefined || c.customer === customer)
        );
        return ok(this.#list(all, p, path));
      }
      if (n === 2 && method === "GET") {
        const c = this.#charges.get(id);
        if (!c) throw noSuch("charge", id, "id", 404);
        return ok(this.#retrieve(p, c));
      }
    }
    if (resource === "events") {
      if (n === 1 && method === "GET") {
        rejectUnknown(p, ALLOWED.eventList);
        const type = str(p, "type");
        const types = strArray(p, "types");
        const all = this.#events
          .filter((e) =>
            (type === undefined || e.type === type) && (!types || types.includes(e.type))
          )
          .map((e) => JSON.parse(e.body) as { id: string });
        return ok(this.#list(all, p, path));
      }
      if (n === 2 && method === "GET") {
        rejectUnknown(p, ALLOWED.retrieve);
        const e = this.#events.find((x) => x.event_id === id);
        if (!e) throw noSuch("event", id, "id", 404);
        return ok(JSON.parse(e.body));
      }
    }
    throw unrecognizedUrl(method, path);
  }

  /** Stripe.js may read an intent with the publishable key and the intent's client_secret. */
  #publishableRoute(method: string, seg: string[], p: Params): Res {
    const [resource, id] = seg;
    if (
      method === "GET" && seg.length === 2 &&
      (resource === "payment_intents" || resource === "setup_intents")
    ) {
      rejectUnknown(p, ALLOWED.retrieveIntent);
      const intent = resource === "payment_intents"
        ? this.#paymentIntent(id)
        : this.#setupIntent(id);
      const secret = str(p, "client_secret");
      if (secret === undefined) missingParamThrow("client_secret");
      if (secret !== intent.client_secret) {
        throw invalid(
          `The client_secret provided does not match the client_secret associated with the ${
            resource === "payment_intents" ? "PaymentIntent" : "SetupIntent"
          }.`,
          "client_secret",
        );
      }
      return ok(intent);
    }
    throw new ApiError(401, {
      type: "invalid_request_error",
      message: "This API call cannot be made with a publishable API key. Please use a secret API " +
        "key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.",
    });
  }

  #retrieve<T>(p: Params, obj: T): T {
    rejectUnknown(p, ALLOWED.retrieve);
    return obj;
  }

  /** Stripe lists: newest first, `limit` 1..100 (default 10), cursor by starting_after/ending_before. */
  #list<T extends { id: string }>(oldestFirst: T[], p: Params, url: string): Json {
    const limit = int(p, "limit") ?? 10;
    if (limit < 1) throw invalid("This value must be greater than or equal to 1.", "limit");
    if (limit > 100) throw invalid("This value must be less than or equal to 100.", "limit");
    const inWindow = createdFilter(p);
    let data = [...oldestFirst].reverse().filter((x) =>
      inWindow((x as { created?: number }).created)
    );
    const after = str(p, "starting_after");
    const before = str(p, "ending_before");
    let hasMore: boolean;
    if (before !== undefined) {
      const i = data.findIndex((x) => x.id === before);
      if (i < 0) throw noSuch("object", before, "ending_before");
      data = data.slice(0, i);
      hasMore = data.length > limit;
      data = data.slice(-limit);
    } else {
      if (after !== undefined) {
        const i = data.findIndex((x) => x.id === after);
        if (i < 0) throw noSuch("object", after, "starting_after");
        data = data.slice(i + 1);
      }
      hasMore = data.length > limit;
      data = data.slice(0, limit);
    }
    return { object: "list", data: clone(data), has_more: hasMore, url };
  }

  #lookup(id: string): unknown {
    if (id.startsWith("cus_")) return this.#customers.get(id);
    if (id.startsWith("pm_")) return this.#pms.get(id)?.pm;
    if (id.startsWith("pi_")) return this.#pis.get(id);
    if (id.startsWith("ch_")) return this.#charges.get(id);
    if (id.startsWith("seti_")) return this.#sis.get(id);
    if (id.startsWith("re_")) return this.#refunds.get(id);
    return undefined;
  }

  #expand(body: unknown, paths: string[]): unknown {
    const out = clone(body);
    const walk = (node: unknown, segs: string[]): void => {
      if (node === null || typeof node !== "object") return;
      const obj = node as Json;
      if (obj.object === "list" && Array.isArray(obj.data)) {
        if (segs[0] === "data") { for (const item of obj.data) walk(item, segs.slice(1)); }
        return;
      }
      const [head, ...rest] = segs;
      if (head === undefined) return;
      const value = obj[head];
      if (typeof value === "string" && (rest.length === 0 || EXPANDABLE.has(head))) {
        const found = this.#lookup(value);
        if (found) obj[head] = clone(found);
      }
      if (rest.length > 0) walk(obj[head], rest);
    };
    for (const path of paths) walk(out, path.split("."));
    return out;
  }

  // ---------------------------------------------------------------- customers

  #customer(id: string, param = "id"): Customer {
    const c = this.#customers.get(id);
    if (!c) throw noSuch("customer", id, param, param === "id" ? 404 : 400);
    return c;
  }

  #listCustomers(p: Params, url: string): Res {
    rejectUnknown(p, ALLOWED.customerList);
    const email = str(p, "email");
    const all = [...this.#customers.values()].filter((c) =>
      email === undefined || c.email === email
    );
    return ok(this.#list(all, p, url));
  }

  #createCustomer(p: Params, ctx: Ctx): Res {
    rejectUnknown(p, ALLOWED.customerCreate);
    const email = emailParam(p) ?? null;
    const metadata = applyMetadata(p.metadata, {});
    const settings = hash(p, "invoice_settings");
    if (settings) rejectUnknown(settings, ALLOWED.invoiceSettings, "invoice_settings");
    const pmId = str(p, "payment_method");
    const pmRec = pmId === undefined ? undefined : this.#resolvePm(pmId, "payment_method");
    if (pmRec && pmRec.pm.customer !== null) {
      throw invalid(
        "The payment method you provided has already been attached to a customer.",
        "payment_method",
        "payment_method_unexpected_state",
      );
    }
    const defaultPm = settings
      ? nullableStr(settings, "default_payment_method", "invoice_settings")
      : undefined;
    if (defaultPm && defaultPm !== pmRec?.pm.id) {
      throw invalid(
        `The customer does not have a payment method with the ID ${defaultPm}. The payment method ` +
          "must be attached to the customer.",
        "invoice_settings[default_payment_method]",
        "resource_missing",
      );
    }
    const c: Customer = {
      id: randomId("cus_"),
      object: "customer",
      address: addressParam(p.address, "address") ?? null,
      balance: 0,
      created: this.#unix(),
      currency: null,
      default_source: null,
      delinquent: false,
      description: nullableStr(p, "description") ?? null,
      discount: null,
      email,
      invoice_prefix: randomAlnum(8).toUpperCase(),
      invoice_settings: {
        custom_fields: null,
        default_payment_method: defaultPm ?? null,
        footer: settings ? nullableStr(settings, "footer", "invoice_settings") ?? null : null,
        rendering_options: null,
      },
      livemode: false,
      metadata,
      name: nullableStr(p, "name") ?? null,
      next_invoice_sequence: 1,
      phone: nullableStr(p, "phone") ?? null,
      preferred_locales: strArray(p, "preferred_locales") ?? [],
      shipping: null,
      tax_exempt: "none",
      test_clock: null,
    };
    this.#customers.set(c.id, c);
    this.#emit(ctx, "customer.created", c);
    if (pmRec) this.#attachTo(ctx, pmRec, c);
    return ok(c);
  }

  #updateCustomer(id: string, p: Params, ctx: Ctx): Res {
    const c = this.#customer(id);
    rejectUnknown(p, ALLOWED.customerUpdate);
    const before = clone(c);
    const email = emailParam(p);
    const metadata = applyMetadata(p.metadata, c.metadata);
    const settings = hash(p, "invoice_settings");
    let defaultPm: string | null | undefined;
    let footer: string | null | undefined;
    if (settings) {
      rejectUnknown(settings, ALLOWED.invoiceSettings, "invoice_settings");
      defaultPm = nullableStr(settings, "default_payment_method", "invoice_settings");
      footer = nullableStr(settings, "footer", "invoice_settings");
      if (defaultPm) {
        const rec = this.#pms.get(defaultPm);
        if (!rec) {
          throw noSuch("PaymentMethod", defaultPm, "invoice_settings[default_payment_method]");
        }
        if (rec.pm.customer !== c.id) {
          throw invalid(
            `The customer does not have a payment method with the ID ${defaultPm}. The payment ` +
              "method must be attached to the customer.",
            "invoice_settings[default_payment_method]",
            "resource_missing",
          );
        }
      }
    }
    const address = addressParam(p.address, "address");
    // Validation is complete: apply.
    if (email !== undefined) c.email = email;
    c.metadata = metadata;
    if (defaultPm !== undefined) c.invoice_settings.default_payment_method = defaultPm;
    if (footer !== undefined) c.invoice_settings.footer = footer;
    if (address !== undefined) c.address = address;
    const name = nullableStr(p, "name");
    if (name !== undefined) c.name = name;
    const phone = nullableStr(p, "phone");
    if (phone !== undefined) c.phone = phone;
    const description = nullableStr(p, "description");
    if (description !== undefined) c.description = description;
    const locales = strArray(p, "preferred_locales");
    if (locales !== undefined) c.preferred_locales = locales;
    this.#emitUpdated(ctx, "customer.updated", before, c);
    return ok(c);
  }

  /** `*.updated` with data.previous_attributes holding the old values of what changed; none if nothing did. */
  #emitUpdated(ctx: Ctx, type: string, before: object, after: { id: string }): void {
    const previous = diff(before as Json, after as unknown as Json);
    if (previous) this.#emit(ctx, type, after, previous);
  }

  // ---------------------------------------------------------------- payment methods

  #pm(id: string, param = "id"): PmRecord {
    const rec = this.#pms.get(id);
    if (!rec) throw noSuch("PaymentMethod", id, param, param === "id" ? 404 : 400);
    return rec;
  }

  /** A new expiry for a card (the card updater's job at Stripe): payment_method.updated. */
  #updatePm(id: string, p: Params, ctx: Ctx): Res {
    const rec = this.#pm(id);
    rejectUnknown(p, ALLOWED.pmUpdate);
    if (!rec.pm.customer) {
      throw invalid("You must save this PaymentMethod to a customer before you can update it.");
    }
    const card = hash(p, "card");
    if (card) rejectUnknown(card, ALLOWED.pmUpdateCard, "card");
    const month = card ? int(card, "exp_month", "card") : undefined;
    const year = card ? int(card, "exp_year", "card") : undefined;
    if (month !== undefined && (month < 1 || month > 12)) {
      throw invalid(
        "Your card's expiration month is invalid.",
        "card[exp_month]",
        "invalid_expiry_month",
      );
    }
    const before = clone(rec.pm);
    rec.pm.metadata = applyMetadata(p.metadata, rec.pm.metadata);
    if (rec.pm.card && month !== undefined) rec.pm.card.exp_month = month;
    if (rec.pm.card && year !== undefined) rec.pm.card.exp_year = year;
    this.#emitUpdated(ctx, "payment_method.updated", before, rec.pm);
    return ok(rec.pm);
  }

  #pmsOf(customerId: string, type?: string): PaymentMethod[] {
    return [...this.#pms.values()]
      .filter((r) => r.pm.customer === customerId && (type === undefined || r.pm.type === type))
      .map((r) => r.pm);
  }

  #newPm(spec: CardSpec, expMonth?: number, expYear?: number): PmRecord {
    const pm: PaymentMethod = {
      id: randomId("pm_"),
      object: "payment_method",
      allow_redisplay: "unspecified",
      billing_details: {
        address: {
          city: null,
          country: null,
          line1: null,
          line2: null,
          postal_code: null,
          state: null,
        },
        email: null,
        name: null,
        phone: null,
        tax_id: null,
      },
      card: {
        brand: spec.brand,
        checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: "pass" },
        country: spec.country,
        display_brand: spec.displayBrand,
        exp_month: expMonth ?? 12,
        exp_year: expYear ?? new Date(this.#now()).getUTCFullYear() + 5,
        fingerprint: fingerprintOf(spec.number),
        funding: spec.funding,
        generated_from: null,
        last4: spec.number.slice(-4),
        networks: { available: [spec.brand], preferred: null },
        regulated_status: "unregulated",
        three_d_secure_usage: { supported: true },
        wallet: null,
      },
      created: this.#unix(),
      customer: null,
      customer_account: null,
      livemode: false,
      metadata: {},
      type: "card",
    };
    const rec: PmRecord = { pm, card: spec, state: "usable", offSessionReady: false };
    this.#pms.set(pm.id, rec);
    return rec;
  }

  /** An existing PaymentMethod, or a fresh one for Stripe's pm_card_* test shortcuts. */
  #resolvePm(id: string, param: string): PmRecord {
    const magic = MAGIC_PAYMENT_METHODS.get(id);
    if (magic) return this.#newPm(TEST_CARDS.get(magic)!);
    return this.#pm(id, param);
  }

  #assertReusable(rec: PmRecord, param: string): void {
    if (rec.state !== "usable") {
      throw invalid(
        "This PaymentMethod was previously used without being attached to a Customer or was " +
          "detached from a Customer, and may not be used again.",
        param,
        "payment_method_unexpected_state",
      );
    }
  }

  /** The checks Stripe makes before a PaymentMethod is used with an intent for `customer`. */
  #assertUsableWith(rec: PmRecord, customer: string | null, param: string): void {
    this.#assertReusable(rec, param);
    if (rec.pm.customer !== null && customer === null) {
      throw invalid(
        "The provided PaymentMethod belongs to a Customer, but you did not provide a Customer. " +
          "Please include the Customer in the `customer` parameter on the intent.",
        param,
      );
    }
    if (rec.pm.customer !== null && rec.pm.customer !== customer) {
      throw invalid(
        `The provided PaymentMethod ${rec.pm.id} belongs to a different Customer than ${customer}.`,
        param,
      );
    }
  }

  #attach(id: string, p: Params, ctx: Ctx): Res {
    const rec = this.#resolvePm(id, "id");
    rejectUnknown(p, ALLOWED.pmAttach);
    const customerId = str(p, "customer");
    if (customerId === undefined) missingParamThrow("customer");
    const c = this.#customer(customerId, "customer");
    this.#assertReusable(rec, "payment_method");
    if (rec.pm.customer === c.id) return ok(rec.pm);
    if (rec.pm.customer !== null) {
      throw invalid(
        "The payment method you provided has already been attached to a customer.",
        "payment_method",
        "payment_method_unexpected_state",
      );
    }
    this.#attachTo(ctx, rec, c);
    return ok(rec.pm);
  }

  #attachTo(ctx: Ctx, rec: PmRecord, c: Customer): void {
    rec.pm.customer = c.id;
    this.#emit(ctx, "payment_method.attached", rec.pm);
  }

  #detach(id: string, p: Params, ctx: Ctx): Res {
    const rec = this.#pm(id);
    rejectUnknown(p, ALLOWED.retrieve);
    const customerId = rec.pm.customer;
    if (customerId === null) {
      throw invalid(
        "The payment method you provided is not attached to a customer so detachment is impossible.",
        undefined,
        "payment_method_unexpected_state",
      );
    }
    rec.pm.customer = null;
    rec.state = "detached";
    rec.offSessionReady = false;
    this.#emit(ctx, "payment_method.detached", rec.pm, { customer: customerId });
    // Assumed from the Dashboard's behaviour: a detached default stops being the default.
    const c = this.#customers.get(customerId);
    if (c && c.invoice_settings.default_payment_method === rec.pm.id) {
      const before = clone(c);
      c.invoice_settings.default_payment_method = null;
      this.#emitUpdated(ctx, "customer.updated", before, c);
    }
    return ok(rec.pm);
  }

  // ---------------------------------------------------------------- payment intents

  #paymentIntent(id: string): PaymentIntent {
    const pi = this.#pis.get(id);
    if (!pi) throw noSuch("payment_intent", id, "id", 404);
    return pi;
  }

  #createPaymentIntent(p: Params, ctx: Ctx): Res {
    rejectUnknown(p, ALLOWED.piCreate);
    // Stripe reports a missing amount before a missing currency.
    if (p.amount === undefined) missingParamThrow("amount");
    const currency = currencyParam(p);
    const amount = amountParam(p, currency);
    const customerId = str(p, "customer");
    if (customerId !== undefined) this.#customer(customerId, "customer");
    const metadata = applyMetadata(p.metadata, {});
    const methods = methodTypesParams(p);
    const sfu = oneOf(p, "setup_future_usage", ["on_session", "off_session"] as const);
    const capture = oneOf(
      p,
      "capture_method",
      ["automatic", "automatic_async", "manual"] as const,
    ) ?? "automatic_async";
    const confirm = bool(p, "confirm") ?? false;
    const offSession = offSessionParam(p);
    if (offSession && !confirm) {
      throw invalid("You can only pass in `off_session` when `confirm` is true.", "off_session");
    }
    if (offSession && sfu === "on_session") {
      throw invalid(
        "You cannot set `setup_future_usage` to `on_session` when `off_session` is true.",
        "setup_future_usage",
      );
    }
    const pmId = str(p, "payment_method");
    const rec = pmId === undefined ? undefined : this.#resolvePm(pmId, "payment_method");
    if (rec) this.#assertUsableWith(rec, customerId ?? null, "payment_method");
    if (confirm && !rec) {
      throw invalid(
        "You cannot confirm this PaymentIntent because it's missing a payment method. You can " +
          "provide the payment_method parameter.",
        "payment_method",
        "payment_intent_unexpected_state",
      );
    }
    const id = randomId("pi_");
    const pi: PaymentIntent = {
      id,
      object: "payment_intent",
      allowed_payment_method_types: methods.allowed,
      amount,
      amount_capturable: 0,
      amount_received: 0,
      application: null,
      application_fee_amount: null,
      automatic_payment_methods: methods.automatic,
      canceled_at: null,
      cancellation_reason: null,
      capture_method: capture,
      client_secret: `${id}_secret_${randomAlnum(24)}`,
      confirmation_method: "automatic",
      created: this.#unix(),
      currency,
      customer: customerId ?? null,
      customer_account: null,
      description: nullableStr(p, "description") ?? null,
      excluded_payment_method_types: null,
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      managed_payments: null,
      metadata,
      next_action: null,
      on_behalf_of: null,
      payment_method: rec?.pm.id ?? null,
      payment_method_configuration_details: methods.automatic
        ? { id: "pmc_SettleSimDefault0000001", parent: null }
        : null,
      payment_method_options: {
        card: {
          installments: null,
          mandate_options: null,
          network: null,
          request_three_d_secure: "automatic",
        },
      },
      payment_method_types: methods.types,
      payment_record: null,
      processing: null,
      receipt_email: nullableStr(p, "receipt_email") ?? null,
      review: null,
      setup_future_usage: sfu ?? null,
      shipping: null,
      source: null,
      statement_descriptor: null,
      statement_descriptor_suffix: nullableStr(p, "statement_descriptor_suffix") ?? null,
      status: rec ? "requires_confirmation" : "requires_payment_method",
      transfer_data: null,
      transfer_group: null,
    };
    this.#pis.set(pi.id, pi);
    this.#emit(ctx, "payment_intent.created", pi);
    if (!confirm) return ok(pi);
    return this.#apiAttempt(ctx, pi, rec!, {
      offSession,
      errorOnAction: bool(p, "error_on_requires_action") ?? false,
    });
  }

  #updatePaymentIntent(id: string, p: Params): Res {
    const pi = this.#paymentIntent(id);
    rejectUnknown(p, ALLOWED.piUpdate);
    const open: PiStatus[] = [
      "requires_payment_method",
      "requires_confirmation",
      "requires_action",
    ];
    if (!open.includes(pi.status)) {
      throw invalid(
        `You cannot update this PaymentIntent because it has a status of ${pi.status}.`,
        undefined,
        "payment_intent_unexpected_state",
      );
    }
    const currency = p.currency === undefined ? pi.currency : currencyParam(p);
    const amount = p.amount === undefined && currency === pi.currency
      ? pi.amount
      : amountParam({ amount: str(p, "amount") ?? String(pi.amount) }, currency);
    const customerId = str(p, "customer");
    if (customerId !== undefined) this.#customer(customerId, "customer");
    const metadata = applyMetadata(p.metadata, pi.metadata);
    const sfu = p.setup_future_usage === ""
      ? null
      : oneOf(p, "setup_future_usage", ["on_session", "off_session"] as const);
    const pmId = str(p, "payment_method");
    const rec = pmId === undefined ? undefined : this.#resolvePm(pmId, "payment_method");
    if (rec) this.#assertUsableWith(rec, customerId ?? pi.customer, "payment_method");
    Object.assign(pi, { amount, currency, metadata });
    if (customerId !== undefined) pi.customer = customerId;
    if (sfu !== undefined) pi.setup_future_usage = sfu;
    const description = nullableStr(p, "description");
    if (description !== undefined) pi.description = description;
    const receipt = nullableStr(p, "receipt_email");
    if (receipt !== undefined) pi.receipt_email = receipt;
    if (rec) {
      pi.payment_method = rec.pm.id;
      pi.status = "requires_confirmation";
      pi.next_action = null;
    }
    return ok(pi);
  }

  #confirmPaymentIntentApi(id: string, p: Params, ctx: Ctx): Res {
    const pi = this.#paymentIntent(id);
    rejectUnknown(p, ALLOWED.piConfirm);
    this.#assertConfirmable(pi);
    const offSession = offSessionParam(p);
    const sfu = oneOf(p, "setup_future_usage", ["on_session", "off_session"] as const);
    const pmId = str(p, "payment_method");
    let rec = pmId === undefined ? undefined : this.#resolvePm(pmId, "payment_method");
    if (!rec && pi.payment_method) rec = this.#pms.get(pi.payment_method);
    if (!rec) {
      throw invalid(
        "You cannot confirm this PaymentIntent because it's missing a payment method. You can " +
          "provide the payment_method parameter.",
        "payment_method",
        "payment_intent_unexpected_state",
      );
    }
    this.#assertUsableWith(rec, pi.customer, "payment_method");
    if (sfu !== undefined) pi.setup_future_usage = sfu;
    if (pi.status === "requires_action") pi.status = "requires_confirmation";
    return this.#apiAttempt(ctx, pi, rec, {
      offSession,
      errorOnAction: bool(p, "error_on_requires_action") ?? false,
    });
  }

  #assertConfirmable(pi: PaymentIntent): void {
    if (pi.status === "succeeded") {
      throw invalid(
        "You cannot confirm this PaymentIntent because it has already succeeded after being " +
          "previously confirmed.",
        undefined,
        "payment_intent_unexpected_state",
      );
    }
    if (
      pi.status === "canceled" || pi.status === "requires_capture" || pi.status === "processing"
    ) {
      throw invalid(
        `You cannot confirm this PaymentIntent because it has a status of ${pi.status}.`,
        undefined,
        "payment_intent_unexpected_state",
      );
    }
  }

  /** A server-side confirmation: declines come back as 402 card errors, as on Stripe. */
  #apiAttempt(
    ctx: Ctx,
    pi: PaymentIntent,
    rec: PmRecord,
    o: { offSession: boolean; errorOnAction: boolean },
  ): Res {
    const result = this.#attemptPayment(ctx, pi, rec, {
      offSession: o.offSession || o.errorOnAction,
      authenticated: false,
    });
    if (result === "failed") {
      const err = pi.last_payment_error as Json;
      const status = err.type === "card_error" ? 402 : 400;
      return {
        status,
        body: errorBody(
          { ...(err as unknown as StripeErrorFields), payment_intent: clone(pi) },
          ctx.request.id,
          this.#unix(),
        ),
      };
    }
    return ok(pi);
  }

  /**
   * One payment attempt with `rec`. Outcome: the card's own behaviour (test card table), unless
   * `forced`. Mutates the intent and the charge, and queues the events Stripe sends for it.
   */
  #attemptPayment(
    ctx: Ctx,
    pi: PaymentIntent,
    rec: PmRecord,
    o: { forced?: Outcome; offSession: boolean; authenticated: boolean },
  ): "succeeded" | "requires_action" | "failed" {
    pi.payment_method = rec.pm.id;
    let decline = rec.card.decline;
    if (!decline && o.forced === "failure") {
      decline = o.authenticated ? AUTHENTICATION_FAILED : GENERIC_DECLINE;
    }
    if (!decline && !o.authenticated) {
      const needs3ds = o.forced === "requires_action" || rec.card.threeDS === "always" ||
        (rec.card.threeDS === "required" && !(o.offSession && rec.offSessionReady));
      if (needs3ds && o.offSession) decline = AUTHENTICATION_REQUIRED;
      else if (needs3ds) {
        pi.status = "requires_action";
        pi.next_action = threeDsAction(pi.id);
        pi.last_payment_error = null;
        this.#emit(ctx, "payment_intent.requires_action", pi);
        return "requires_action";
      }
    }

    if (decline) {
      let charge: Charge | undefined;
      if (decline.type === "card_error") {
        charge = this.#newCharge(pi, rec, decline);
        pi.latest_charge = charge.id;
      }
      pi.status = "requires_payment_method";
      pi.payment_method = null;
      pi.next_action = null;
      pi.last_payment_error = {
        ...(charge ? { charge: charge.id } : {}),
        code: decline.code,
        ...(decline.decline_code ? { decline_code: decline.decline_code } : {}),
        doc_url: `https://stripe.com/docs/error-codes/${decline.code.replaceAll("_", "-")}`,
        message: decline.message,
        payment_method: clone(rec.pm),
        type: decline.type,
      };
      if (charge) this.#emit(ctx, "charge.failed", charge);
      this.#emit(ctx, "payment_intent.payment_failed", pi);
      return "failed";
    }

    if (pi.customer !== null && pi.setup_future_usage !== null && rec.pm.customer === null) {
      this.#attachTo(ctx, rec, this.#customers.get(pi.customer)!);
    }
    if (pi.setup_future_usage === "off_session" && rec.pm.customer !== null) {
      rec.offSessionReady = true;
    }
    // Stripe refuses to reuse a PaymentMethod charged once without a customer to keep it.
    if (rec.pm.customer === null) rec.state = "consumed";
    const manual = pi.capture_method === "manual";
    const charge = this.#newCharge(pi, rec, undefined, !manual);
    pi.latest_charge = charge.id;
    pi.last_payment_error = null;
    pi.next_action = null;
    this.#emit(ctx, "charge.succeeded", charge);
    if (manual) {
      pi.status = "requires_capture";
      pi.amount_capturable = pi.amount;
      this.#emit(ctx, "payment_intent.amount_capturable_updated", pi);
    } else {
      pi.status = "succeeded";
      pi.amount_received = pi.amount;
      this.#emit(ctx, "payment_intent.succeeded", pi);
    }
    return "succeeded";
  }

  #newCharge(pi: PaymentIntent, rec: PmRecord, decline?: Decline, captured = true): Charge {
    const c = rec.pm.card;
    const id = randomId("ch_");
    const charge: Charge = {
      id,
      object: "charge",
      amount: pi.amount,
      amount_captured: decline || !captured ? 0 : pi.amount,
      amount_refunded: 0,
      application: null,
      application_fee: null,
      application_fee_amount: null,
      balance_transaction: decline || !captured ? null : randomId("txn_"),
      billing_details: clone(rec.pm.billing_details),
      calculated_statement_descriptor: "SETTLE",
      captured: !decline && captured,
      created: this.#unix(),
      currency: pi.currency,
      customer: pi.customer,
      description: pi.description,
      disputed: false,
      failure_balance_transaction: null,
      failure_code: decline?.code ?? null,
      failure_message: decline?.message ?? null,
      fraud_details: {},
      livemode: false,
      metadata: clone(pi.metadata),
      on_behalf_of: null,
      outcome: decline
        ? {
          network_advice_code: null,
          network_decline_code: null,
          network_status: "declined_by_network",
          reason: decline.decline_code ?? null,
          risk_level: "normal",
          seller_message: "The bank did not return any further details with this decline.",
          type: "issuer_declined",
        }
        : {
          network_advice_code: null,
          network_decline_code: null,
          network_status: "approved_by_network",
          reason: null,
          risk_level: "normal",
          seller_message: "Payment complete.",
          type: "authorized",
        },
      paid: !decline,
      payment_intent: pi.id,
      payment_method: rec.pm.id,
      payment_method_details: {
        card: {
          amount_authorized: decline ? null : pi.amount,
          brand: c.brand,
          checks: clone(c.checks),
          country: c.country,
          exp_month: c.exp_month,
          exp_year: c.exp_year,
          fingerprint: c.fingerprint,
          funding: c.funding,
          last4: c.last4,
          network: c.brand,
          three_d_secure: null,
          wallet: null,
        },
        type: "card",
      },
      receipt_email: pi.receipt_email,
      receipt_number: null,
      receipt_url: `https://pay.stripe.com/receipts/payment/${randomAlnum(32)}`,
      refunded: false,
      review: null,
      shipping: null,
      source: null,
      source_transfer: null,
      statement_descriptor: null,
      statement_descriptor_suffix: pi.statement_descriptor_suffix,
      status: decline ? "failed" : "succeeded",
      transfer_data: null,
      transfer_group: null,
    };
    this.#charges.set(id, charge);
    return charge;
  }

  #cancelPaymentIntent(id: string, p: Params, ctx: Ctx): Res {
    const pi = this.#paymentIntent(id);
    rejectUnknown(p, ALLOWED.cancel);
    const reason = oneOf(
      p,
      "cancellation_reason",
      ["duplicate", "fraudulent", "requested_by_customer", "abandoned"] as const,
    );
    const cancellable: PiStatus[] = [
      "requires_payment_method",
      "requires_capture",
      "requires_confirmation",
      "requires_action",
      "processing",
    ];
    if (!cancellable.includes(pi.status)) {
      throw invalid(
        `You cannot cancel this PaymentIntent because it has a status of ${pi.status}. Only a ` +
          "PaymentIntent with one of the following statuses may be canceled: " +
          `${cancellable.join(", ")}.`,
        undefined,
        "payment_intent_unexpected_state",
      );
    }
    if (pi.status === "requires_capture" && pi.latest_charge) {
      // Canceling releases the authorization: the uncaptured charge shows it as refunded.
      const charge = this.#charges.get(pi.latest_charge)!;
      charge.amount_refunded = charge.amount;
      charge.refunded = true;
    }
    pi.status = "canceled";
    pi.canceled_at = this.#unix();
    pi.cancellation_reason = reason ?? null;
    pi.amount_capturable = 0;
    pi.next_action = null;
    this.#emit(ctx, "payment_intent.canceled", pi);
    return ok(pi);
  }

  #capturePaymentIntent(id: string, p: Params, ctx: Ctx): Res {
    const pi = this.#paymentIntent(id);
    rejectUnknown(p, ALLOWED.piCapture);
    if (pi.status !== "requires_capture") {
      throw invalid(
        `This PaymentIntent could not be captured because it has a status of ${pi.status}. Only a ` +
          "PaymentIntent with one of the following statuses may be captured: requires_capture.",
        undefined,
        "payment_intent_unexpected_state",
      );
    }
    const amount = int(p, "amount_to_capture") ?? pi.amount_capturable;
    if (amount < 1 || amount > pi.amount_capturable) {
      throw invalid(
        `The amount to capture (${amount}) must be between 1 and the capturable amount ` +
          `(${pi.amount_capturable}).`,
        "amount_to_capture",
        amount < 1 ? "amount_too_small" : "amount_too_large",
      );
    }
    pi.metadata = applyMetadata(p.metadata, pi.metadata);
    const charge = this.#charges.get(pi.latest_charge!)!;
    charge.captured = true;
    charge.amount_captured = amount;
    // A partial capture releases the rest, which Stripe shows as refunded on the charge.
    charge.amount_refunded = charge.amount - amount;
    charge.balance_transaction = randomId("txn_");
    pi.amount_received = amount;
    pi.amount_capturable = 0;
    pi.status = "succeeded";
    this.#emit(ctx, "charge.captured", charge);
    this.#emit(ctx, "payment_intent.succeeded", pi);
    return ok(pi);
  }

  // ---------------------------------------------------------------- setup intents

  #setupIntent(id: string): SetupIntent {
    const si = this.#sis.get(id);
    if (!si) throw noSuch("setup_intent", id, "id", 404);
    return si;
  }

  #createSetupIntent(p: Params, ctx: Ctx): Res {
    rejectUnknown(p, ALLOWED.siCreate);
    const customerId = str(p, "customer");
    if (customerId !== undefined) this.#customer(customerId, "customer");
    const usage = oneOf(p, "usage", ["off_session", "on_session"] as const) ?? "off_session";
    const methods = methodTypesParams(p);
    const metadata = applyMetadata(p.metadata, {});
    const confirm = bool(p, "confirm") ?? false;
    const pmId = str(p, "payment_method");
    const rec = pmId === undefined ? undefined : this.#resolvePm(pmId, "payment_method");
    if (rec) this.#assertUsableWith(rec, customerId ?? null, "payment_method");
    if (confirm && !rec) {
      throw invalid(
        "You cannot confirm this SetupIntent because it's missing a payment method.",
        "payment_method",
        "setup_intent_unexpected_state",
      );
    }
    const id = randomId("seti_");
    const si: SetupIntent = {
      id,
      object: "setup_intent",
      allowed_payment_method_types: methods.allowed,
      application: null,
      automatic_payment_methods: methods.automatic,
      cancellation_reason: null,
      client_secret: `${id}_secret_${randomAlnum(24)}`,
      created: this.#unix(),
      customer: customerId ?? null,
      customer_account: null,
      description: nullableStr(p, "description") ?? null,
      excluded_payment_method_types: null,
      flow_directions: null,
      last_setup_error: null,
      latest_attempt: null,
      livemode: false,
      mandate: null,
      metadata,
      next_action: null,
      on_behalf_of: null,
      payment_method: rec?.pm.id ?? null,
      payment_method_configuration_details: methods.automatic
        ? { id: "pmc_SettleSimDefault0000001", parent: null }
        : null,
      payment_method_options: {
        card: { mandate_options: null, network: null, request_three_d_secure: "automatic" },
      },
      payment_method_types: methods.types,
      single_use_mandate: null,
      status: rec ? "requires_confirmation" : "requires_payment_method",
      usage,
    };
    this.#sis.set(si.id, si);
    this.#emit(ctx, "setup_intent.created", si);
    if (confirm) this.#attemptSetup(ctx, si, rec!, { authenticated: false });
    return this.#setupResult(ctx, si);
  }

  #confirmSetupIntentApi(id: string, p: Params, ctx: Ctx): Res {
    const si = this.#setupIntent(id);
    rejectUnknown(p, ALLOWED.siConfirm);
    this.#assertSetupConfirmable(si);
    const pmId = str(p, "payment_method");
    let rec = pmId === undefined ? undefined : this.#resolvePm(pmId, "payment_method");
    if (!rec && si.payment_method) rec = this.#pms.get(si.payment_method);
    if (!rec) {
      throw invalid(
        "You cannot confirm this SetupIntent because it's missing a payment method.",
        "payment_method",
        "setup_intent_unexpected_state",
      );
    }
    this.#assertUsableWith(rec, si.customer, "payment_method");
    this.#attemptSetup(ctx, si, rec, { authenticated: false });
    return this.#setupResult(ctx, si);
  }

  #setupResult(ctx: Ctx, si: SetupIntent): Res {
    const err = si.last_setup_error;
    if (si.status === "requires_payment_method" && err) {
      return {
        status: err.type === "card_error" ? 402 : 400,
        body: errorBody(
          { ...(err as unknown as StripeErrorFields), setup_intent: clone(si) },
          ctx.request.id,
          this.#unix(),
        ),
      };
    }
    return ok(si);
  }

  #assertSetupConfirmable(si: SetupIntent): void {
    if (si.status === "succeeded" || si.status === "canceled" || si.status === "processing") {
      throw invalid(
        `You cannot confirm this SetupIntent because it has a status of ${si.status}.`,
        undefined,
        "setup_intent_unexpected_state",
      );
    }
  }

  #attemptSetup(
    ctx: Ctx,
    si: SetupIntent,
    rec: PmRecord,
    o: { forced?: Outcome; authenticated: boolean },
  ): void {
    si.payment_method = rec.pm.id;
    let decline = rec.card.decline;
    if (!decline && o.forced === "failure") {
      decline = o.authenticated ? SETUP_AUTHENTICATION_FAILED : GENERIC_DECLINE;
    }
    if (
      !decline && !o.authenticated && (o.forced === "requires_action" || rec.card.threeDS)
    ) {
      si.status = "requires_action";
      si.next_action = threeDsAction(si.id);
      si.last_setup_error = null;
      this.#emit(ctx, "setup_intent.requires_action", si);
      return;
    }
    if (decline) {
      si.status = "requires_payment_method";
      si.payment_method = null;
      si.next_action = null;
      si.last_setup_error = {
        code: decline.code,
        ...(decline.decline_code ? { decline_code: decline.decline_code } : {}),
        doc_url: `https://stripe.com/docs/error-codes/${decline.code.replaceAll("_", "-")}`,
        message: decline.message,
        payment_method: clone(rec.pm),
        type: decline.type,
      };
      this.#emit(ctx, "setup_intent.setup_failed", si);
      return;
    }
    si.status = "succeeded";
    si.last_setup_error = null;
    si.next_action = null;
    rec.offSessionReady = si.usage === "off_session";
    this.#emit(ctx, "setup_intent.succeeded", si);
    if (si.customer !== null && rec.pm.customer === null) {
      this.#attachTo(ctx, rec, this.#customers.get(si.customer)!);
    }
  }

  #cancelSetupIntent(id: string, p: Params, ctx: Ctx): Res {
    const si = this.#setupIntent(id);
    rejectUnknown(p, ALLOWED.cancel);
    const reason = oneOf(
      p,
      "cancellation_reason",
      ["abandoned", "requested_by_customer", "duplicate"] as const,
    );
    if (si.status === "succeeded" || si.status === "canceled" || si.status === "processing") {
      throw invalid(
        `You cannot cancel this SetupIntent because it has a status of ${si.status}. Only a ` +
          "SetupIntent with one of the following statuses may be canceled: " +
          "requires_payment_method, requires_confirmation, requires_action.",
        undefined,
        "setup_intent_unexpected_state",
      );
    }
    si.status = "canceled";
    si.cancellation_reason = reason ?? null;
    si.next_action = null;
    this.#emit(ctx, "setup_intent.canceled", si);
    return ok(si);
  }

  // ---------------------------------------------------------------- refunds

  #createRefund(p: Params, ctx: Ctx): Res {
    rejectUnknown(p, ALLOWED.refundCreate);
    const piId = str(p, "payment_intent");
    const chargeId = str(p, "charge");
    if (piId === undefined && chargeId === undefined) {
      throw invalid(
        "One of the following params should be provided for this request: payment_intent or charge.",
        undefined,
        "parameter_missing",
      );
    }
    let charge: Charge | undefined;
    if (piId !== undefined) {
      const pi = this.#pis.get(piId);
      if (!pi) throw noSuch("payment_intent", piId, "payment_intent");
      charge = pi.latest_charge ? this.#charges.get(pi.latest_charge) : undefined;
      if (!charge || charge.status !== "succeeded") {
        throw invalid(
          `This PaymentIntent (${piId}) does not have a successful charge to refund.`,
          "payment_intent",
          "charge_not_refundable",
        );
      }
      if (chargeId !== undefined && chargeId !== charge.id) {
        throw invalid(
          `The charge ${chargeId} does not belong to the PaymentIntent ${piId}.`,
          "charge",
        );
      }
    } else {
      charge = this.#charges.get(chargeId!);
      if (!charge) throw noSuch("charge", chargeId!, "charge");
      if (charge.status !== "succeeded") {
        throw invalid(
          `Charge ${charge.id} has not succeeded and cannot be refunded.`,
          "charge",
          "charge_not_refundable",
        );
      }
    }
    if (!charge.captured) {
      throw invalid(
        `Charge ${charge.id} has not been captured: cancel its PaymentIntent to release it.`,
        "charge",
        "charge_not_refundable",
      );
    }
    const remaining = charge.amount - charge.amount_refunded;
    if (remaining <= 0) {
      throw invalid(
        `Charge ${charge.id} has already been refunded.`,
        undefined,
        "charge_already_refunded",
      );
    }
    const rawAmount = int(p, "amount");
    if (rawAmount !== undefined && rawAmount < 1) {
      throw invalid("Invalid positive integer", "amount", "parameter_invalid_integer");
    }
    const amount = rawAmount ?? remaining;
    if (amount > remaining) {
      throw invalid(
        `Refund amount (${formatMajor(amount, charge.currency)} ${charge.currency}) is greater ` +
          `than unrefunded amount on charge (${formatMajor(remaining, charge.currency)} ` +
          `${charge.currency})`,
        "amount",
        "amount_too_large",
      );
    }
    if (p.currency !== undefined && currencyParam(p) !== charge.currency) {
      throw invalid(
        `The currency must match the charge's currency (${charge.currency}).`,
        "currency",
      );
    }
    const reason = oneOf(
      p,
      "reason",
      ["duplicate", "fraudulent", "requested_by_customer"] as const,
    );
    const metadata = applyMetadata(p.metadata, {});
    const refund: Refund = {
      id: randomId("re_"),
      object: "refund",
      amount,
      balance_transaction: randomId("txn_"),
      charge: charge.id,
      created: this.#unix(),
      currency: charge.currency,
      customer: charge.customer,
      customer_account: null,
      destination_details: {
        card: {
          reference: null,
          reference_status: "pending",
          reference_type: "acquirer_reference_number",
          type: "refund",
        },
        type: "card",
      },
      metadata,
      payment_intent: charge.payment_intent,
      payment_method: charge.payment_method,
      reason: reason ?? null,
      receipt_number: null,
      source_transfer_reversal: null,
      status: "succeeded",
      transfer_reversal: null,
    };
    this.#refunds.set(refund.id, refund);
    const before = clone(charge);
    charge.amount_refunded += amount;
    charge.refunded = charge.amount_refunded >= charge.amount;
    this.#emit(ctx, "refund.created", refund);
    this.#emit(
      ctx,
      "charge.refunded",
      charge,
      diff(before as unknown as Json, charge as unknown as Json) ?? undefined,
    );
    return ok(refund);
  }

  // ---------------------------------------------------------------- webhooks

  /** Records an event with a snapshot of `object` as it is now, signed once. */
  #emit(ctx: Ctx, type: string, object: { id: string }, previous?: Json): void {
    const data: Json = { object: clone(object) };
    if (previous) data.previous_attributes = clone(previous);
    const created = this.#unix();
    const event = {
      id: randomId("evt_"),
      object: "event",
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
    for (const k of ["payment_intent", "customer", "charge", "latest_charge", "payment_method"]) {
      const v = (object as Json)[k];
      if (typeof v === "string") related.add(v);
    }
    if (previous && typeof previous.customer === "string") related.add(previous.customer);
    const ev: StoredEvent = {
      event_id: event.id,
      type,
      body,
      signature: stripeSignatureHeader(this.#opts.webhookSecret, created, body),
      objectId: object.id,
      related,
    };
    this.#events.push(ev);
    ctx.events.push(ev);
  }

  // ---------------------------------------------------------------- control endpoints

  async #control(req: Request, url: URL, path: string): Promise<Response> {
    try {
      const res = await this.#controlRoute(req, url, path);
      return jsonResponse(res.status, res.body);
    } catch (e) {
      if (!(e instanceof ApiError)) console.error("stripe simulator: internal error", e);
      const err = e instanceof ApiError
        ? e
        : new ApiError(500, { type: "api_error", message: "simulator internal error" });
      return jsonResponse(err.status, errorBody(err.fields, null, this.#unix()));
    }
  }

  async #controlRoute(req: Request, url: URL, path: string): Promise<Res> {
    const m = req.method.toUpperCase();
    if (path !== "/_sim/stripe" && !path.startsWith("/_sim/stripe/")) {
      throw unrecognizedUrl(m, path);
    }
    const seg = path.split("/").slice(3); // drop "", "_sim", "stripe"
    const n = seg.length;
    const ctx = async (): Promise<[Ctx, Json]> => {
      const body = await readJson(req);
      return [{
        request: { id: null, idempotency_key: null },
        hooks: { ...this.#defaultWebhooks, ...parseWebhookOptions(body.webhooks) },
        events: [],
      }, body];
    };
    const run = async (fn: (c: Ctx, body: Json) => unknown): Promise<Res> => {
      const [c, body] = await ctx();
      try {
        return ok(fn(c, body));
      } finally {
        this.#hooks.schedule(c.events, c.hooks);
      }
    };
    if (n === 3 && seg[0] === "payment_intents" && seg[2] === "confirm" && m === "POST") {
      return await run((c, body) => this.#simConfirmPayment(seg[1], body, c));
    }
    if (n === 3 && seg[0] === "setup_intents" && seg[2] === "confirm" && m === "POST") {
      return await run((c, body) => this.#simConfirmSetup(seg[1], body, c));
    }
    if (n === 3 && seg[0] === "refunds" && seg[2] === "fail" && m === "POST") {
      return await run((c, body) => this.#simFailRefund(seg[1], body, c));
    }
    if (n === 3 && seg[0] === "events" && seg[2] === "resend" && m === "POST") {
      const body = await readJson(req);
      const e = this.#events.find((x) => x.event_id === seg[1]);
      if (!e) throw noSuch("event", seg[1], "id", 404);
      this.#hooks.schedule([e], {
        ...this.#defaultWebhooks,
        ...parseWebhookOptions(body.webhooks),
      });
      return ok({ event_id: e.event_id });
    }
    if (n === 1 && seg[0] === "events" && m === "GET") {
      const q = url.searchParams;
      const objectId = q.get("object_id");
      const relatedId = q.get("related_id");
      const type = q.get("type");
      const events = this.#events
        .filter((e) =>
          (objectId === null || e.objectId === objectId) &&
          (relatedId === null || e.related.has(relatedId)) &&
          (type === null || e.type === type)
        )
        .map(({ event_id, type, body, signature }) => ({ event_id, type, body, signature }));
      return ok({ events });
    }
    if (n === 1 && seg[0] === "deliveries" && m === "GET") {
      return ok({ deliveries: this.#hooks.deliveries });
    }
    if (n === 1 && seg[0] === "faults") {
      if (m === "GET") return ok({ faults: this.#faults.list() });
      if (m === "DELETE") {
        this.#faults.clear();
        return ok({ faults: [] });
      }
      if (m === "POST") return this.#addFaults(await readJson(req));
    }
    if (n === 1 && seg[0] === "config" && (m === "GET" || m === "POST")) {
      if (m === "POST") {
        const config = readSimConfig(await readJson(req));
        if ("problem" in config) throw invalid(config.problem.message, config.problem.param);
        if (config.webhookUrl !== undefined) this.setWebhookUrl(config.webhookUrl ?? undefined);
        if (config.webhooks) this.#defaultWebhooks = config.webhooks;
        if (config.chaos !== undefined) this.#hooks.setChaos(config.chaos);
      }
      return ok({
        webhook_url: this.#hooks.url ?? null,
        webhooks: this.#defaultWebhooks,
        ...this.#hooks.chaos(),
      });
    }
    throw unrecognizedUrl(m, path);
  }

  /** The card a control call names (a test card number, or an existing or pm_card_* PaymentMethod). */
  #simPaymentMethod(body: Json, fallback: string | null): PmRecord {
    if (body.payment_method !== undefined) {
      if (typeof body.payment_method !== "string") {
        throw invalid("payment_method must be a string", "payment_method");
      }
      return this.#resolvePm(body.payment_method, "payment_method");
    }
    if (body.card === undefined && fallback) {
      const rec = this.#pms.get(fallback);
      if (rec) return rec;
    }
    const number = body.card === undefined ? "4242424242424242" : body.card;
    if (typeof number !== "string") throw invalid("card must be a string", "card");
    const spec = cardSpec(number.replace(/[\s-]/g, ""));
    if (!spec) {
      throw new ApiError(402, {
        type: "card_error",
        code: "incorrect_number",
        param: "number",
        message: "Your card number is incorrect.",
      });
    }
    const year = new Date(this.#now()).getUTCFullYear();
    const expMonth = body.exp_month ?? 12;
    const expYear = body.exp_year ?? year + 5;
    if (
      typeof expMonth !== "number" || !Number.isInteger(expMonth) || expMonth < 1 || expMonth > 12
    ) {
      throw new ApiError(402, {
        type: "card_error",
        code: "invalid_expiry_month",
        param: "exp_month",
        message: "Your card's expiration month is invalid.",
      });
    }
    if (typeof expYear !== "number" || !Number.isInteger(expYear) || expYear < year) {
      throw new ApiError(402, {
        type: "card_error",
        code: "invalid_expiry_year",
        param: "exp_year",
        message: "Your card's expiration year is invalid.",
      });
    }
    return this.#newPm(spec, expMonth, expYear);
  }

  /** Stands in for Stripe.js confirming on the customer's device (3DS included). */
  #simConfirmPayment(id: string, body: Json, ctx: Ctx): PaymentIntent {
    const outcome = simOutcome(body);
    const pi = this.#paymentIntent(id);
    this.#assertConfirmable(pi);
    const authenticating = pi.status === "requires_action" && body.card === undefined &&
      body.payment_method === undefined;
    const rec = this.#simPaymentMethod(body, pi.payment_method);
    this.#assertUsableWith(rec, pi.customer, "payment_method");
    this.#attemptPayment(ctx, pi, rec, {
      forced: outcome,
      offSession: false,
      authenticated: authenticating && outcome !== "requires_action",
    });
    return pi;
  }

  #simConfirmSetup(id: string, body: Json, ctx: Ctx): SetupIntent {
    const outcome = simOutcome(body);
    const si = this.#setupIntent(id);
    this.#assertSetupConfirmable(si);
    const authenticating = si.status === "requires_action" && body.card === undefined &&
      body.payment_method === undefined;
    const rec = this.#simPaymentMethod(body, si.payment_method);
    this.#assertUsableWith(rec, si.customer, "payment_method");
    this.#attemptSetup(ctx, si, rec, {
      forced: outcome,
      authenticated: authenticating && outcome !== "requires_action",
    });
    return si;
  }

  /** A refund that the card network later rejects (refund.failed, then the money is back). */
  #simFailRefund(id: string, body: Json, ctx: Ctx): Refund {
    const refund = this.#refunds.get(id);
    if (!refund) throw noSuch("refund", id, "id", 404);
    if (refund.status === "failed" || refund.status === "canceled") {
      throw invalid(
        `Refund ${id} has already ${refund.status === "failed" ? "failed" : "been canceled"}.`,
      );
    }
    const reason = body.failure_reason ?? "expired_or_canceled_card";
    const reasons = [
      "lost_or_stolen_card",
      "expired_or_canceled_card",
      "charge_for_pending_refund_disputed",
      "insufficient_funds",
      "declined",
      "merchant_request",
      "unknown",
    ];
    if (typeof reason !== "string" || !reasons.includes(reason)) {
      throw invalid(`failure_reason must be one of ${reasons.join(", ")}`, "failure_reason");
    }
    const before = clone(refund);
    refund.status = "failed";
    refund.failure_reason = reason;
    refund.failure_balance_transaction = randomId("txn_");
    const charge = this.#charges.get(refund.charge)!;
    charge.amount_refunded = Math.max(0, charge.amount_refunded - refund.amount);
    charge.refunded = false;
    this.#emitUpdated(ctx, "refund.updated", before, refund);
    this.#emit(ctx, "refund.failed", refund);
    return refund;
  }

  #addFaults(body: Json): Res {
    const problem = this.#faults.add(body.faults);
    if (problem) throw invalid(problem.message, problem.param);
    return ok({ faults: this.#faults.list() });
  }

  #unix(): number {
    return Math.floor(this.#now() / 1000);
  }
}

// ---------------------------------------------------------------- module helpers

async function readParams(req: Request, url: URL, method: string): Promise<Params> {
  const query = parseForm(url.search.slice(1));
  if (method === "GET" || method === "DELETE" || method === "HEAD") return query;
  const text = await req.text();
  if (text === "") return query;
  const type = req.headers.get("content-type") ?? "";
  if (!type.toLowerCase().startsWith("application/x-www-form-urlencoded")) {
    throw invalid(
      `Invalid request: unsupported Content-Type ${type}. If error persists and you need ` +
        "assistance, please contact support@stripe.com.",
    );
  }
  return { ...query, ...parseForm(text) };
}

async function readJson(req: Request): Promise<Json> {
  const text = await req.text();
  if (text.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid("The request body is not valid JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw invalid("The request body must be a JSON object");
  }
  return parsed as Json;
}

function simOutcome(body: Json): Outcome | undefined {
  const o = body.outcome;
  if (o === undefined) return undefined;
  if (o !== "success" && o !== "failure" && o !== "requires_action") {
    throw invalid('outcome must be "success", "failure" or "requires_action"', "outcome");
  }
  return o;
}

/** `off_session` is a boolean or one of "one_off" / "recurring"; either string means true. */
function offSessionParam(p: Params): boolean {
  const v = str(p, "off_session");
  if (v === undefined || v === "false") return false;
  if (v === "true" || v === "one_off" || v === "recurring") return true;
  throw invalid(`Invalid boolean: ${v}`, "off_session");
}

function threeDsAction(intentId: string): Json {
  return {
    type: "use_stripe_sdk",
    use_stripe_sdk: {
      type: "three_d_secure_redirect",
      stripe_js: `https://hooks.stripe.com/redirect/authenticate/src_${
        randomAlnum(24)
      }?client_secret=${intentId}`,
      source: `src_${randomAlnum(24)}`,
    },
  };
}

/** Old values of the fields that changed, nested objects diffed key by key; null if none changed. */
function diff(before: Json, after: Json): Json | null {
  const out: Json = {};
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  for (const k of keys) {
    const a = before[k];
    const b = after[k];
    if (canonical(a) === canonical(b)) continue;
    const isObj = (v: unknown) => v !== null && typeof v === "object" && !Array.isArray(v);
    if (isObj(a) && isObj(b)) {
      const inner = diff(a as Json, b as Json);
      if (inner) out[k] = inner;
    } else {
      out[k] = a === undefined ? null : clone(a);
    }
  }
  return Object.keys(out).length > 0 ? out : null;
}
