// Form-encoded parameters (bracket notation) and their validation: readers for each type, Stripe's
// money, currency, metadata and address rules, and ALLOWED, the documented names per endpoint.
import { canonical } from "../common/mod.ts";
import {
  formatMajor,
  MAX_AMOUNT,
  minimumOf,
  SUPPORTED_CURRENCIES,
  THREE_DECIMAL,
} from "./currencies.ts";
import { invalid, missingParam } from "./errors.ts";
import type { Outcome } from "./state.ts";
import type { Address, Json, Metadata } from "./wire.ts";

/** Form-encoded parameters: bracket notation parsed into nested hashes; leaves stay strings. */
export type Params = { [key: string]: Param };
export type Param = string | Params;

/** Bracket-notation form decoding: `a[b][c]=v`, `a[]=v` (appends), `a[0]=v`. */
export function parseForm(text: string): Params {
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

export function rejectUnknown(p: Params, allowed: ReadonlySet<string>, prefix = ""): void {
  for (const k of Object.keys(p)) {
    if (!allowed.has(k)) {
      const name = label(prefix, k);
      throw invalid(`Received unknown parameter: ${name}`, name, "parameter_unknown");
    }
  }
}

export function str(p: Params, name: string, prefix = ""): string | undefined {
  const v = p[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw invalid(`Invalid string: ${canonical(v)}`, label(prefix, name));
  return v;
}

/** "" clears a field in Stripe's update semantics: returns null then. */
export function nullableStr(p: Params, name: string, prefix = ""): string | null | undefined {
  const v = str(p, name, prefix);
  return v === "" ? null : v;
}

export function int(p: Params, name: string, prefix = ""): number | undefined {
  const v = str(p, name, prefix);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) {
    throw invalid(`Invalid integer: ${v}`, label(prefix, name), "parameter_invalid_integer");
  }
  return Number(v);
}

/** A list's `created` filter: an exact unix time, or a hash of gt/gte/lt/lte bounds. */
export function createdFilter(p: Params): (created: number | undefined) => boolean {
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

export function bool(p: Params, name: string, prefix = ""): boolean | undefined {
  const v = str(p, name, prefix);
  if (v === undefined) return undefined;
  if (v !== "true" && v !== "false") throw invalid(`Invalid boolean: ${v}`, label(prefix, name));
  return v === "true";
}

export function oneOf<T extends string>(
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

export function hash(p: Params, name: string, prefix = ""): Params | "" | undefined {
  const v = p[name];
  if (v === undefined || v === "") return v;
  if (typeof v !== "object") throw invalid("Invalid object", label(prefix, name));
  return v;
}

export function strArray(p: Params, name: string): string[] | undefined {
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
export function applyMetadata(raw: Param | undefined, current: Metadata): Metadata {
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

export function amountParam(p: Params, currency: string, name = "amount"): number {
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

export function currencyParam(p: Params): string {
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

export function addressParam(raw: Param | undefined, name: string): Address | null | undefined {
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

export function emailParam(p: Params): string | null | undefined {
  const email = nullableStr(p, "email");
  if (typeof email === "string" && (email.length > 512 || !EMAIL.test(email))) {
    throw invalid(`Invalid email address: ${email}`, "email", "email_invalid");
  }
  return email;
}

/** automatic_payment_methods / payment_method_types for intents (both spellings of the latter). */
export function methodTypesParams(p: Params) {
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

export function missingParamThrow(param: string): never {
  throw missingParam(param);
}

// Every documented top-level parameter of stripe@23.1.0's *Params interfaces is accepted; the ones the
// simulator models are interpreted, the rest are accepted and ignored. Anything else is
// parameter_unknown, as on Stripe.
const names = (s: string) => new Set(s.split(/\s+/).filter(Boolean));
const PAGE = "limit starting_after ending_before expand";
export const ALLOWED = {
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
  disputeList: names(`${PAGE} charge created payment_intent`),
  disputeRetrieve: names("expand"),
  disputeClose: names("expand"),
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
  accountCreate: names(
    "account_token bank_account business_profile business_type capabilities company controller " +
      "country default_currency documents email expand external_account groups individual " +
      "metadata settings tos_acceptance type",
  ),
  accountController: names("fees losses requirement_collection stripe_dashboard"),
  accountList: names(`${PAGE} created`),
  accountLinkCreate: names("account collect collection_options expand refresh_url return_url type"),
  transferCreate: names(
    "amount currency description destination expand metadata source_transaction source_type " +
      "transfer_group",
  ),
  transferList: names(`${PAGE} created destination transfer_group`),
  reversalCreate: names("amount description expand metadata refund_application_fee"),
  reversalList: names(PAGE),
};

export const EXPANDABLE = new Set([
  "customer",
  "payment_method",
  "latest_charge",
  "charge",
  "payment_intent",
  "default_payment_method",
]);

export function expandPaths(p: Params): string[] {
  const paths = strArray(p, "expand") ?? [];
  for (const path of paths) {
    const segs = path.split(".");
    if (segs.length > 4 || !EXPANDABLE.has(segs.at(-1)!)) {
      throw invalid(`This property cannot be expanded (${path}).`, "expand");
    }
  }
  return paths;
}

/** The query string, plus the form body of a POST (Stripe reads both). */
export async function readParams(req: Request, url: URL, method: string): Promise<Params> {
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

/** A /_sim/stripe control body: a JSON object, or {} when empty. */
export async function readJson(req: Request): Promise<Json> {
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

/** `off_session` is a boolean or one of "one_off" / "recurring"; either string means true. */
export function offSessionParam(p: Params): boolean {
  const v = str(p, "off_session");
  if (v === undefined || v === "false") return false;
  if (v === "true" || v === "one_off" || v === "recurring") return true;
  throw invalid(`Invalid boolean: ${v}`, "off_session");
}

/** A control call's forced `outcome`, if it names one. */
export function simOutcome(body: Json): Outcome | undefined {
  const o = body.outcome;
  if (o === undefined) return undefined;
  if (o !== "success" && o !== "failure" && o !== "requires_action") {
    throw invalid('outcome must be "success", "failure" or "requires_action"', "outcome");
  }
  return o;
}
