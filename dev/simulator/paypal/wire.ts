// The simulator's PayPal objects (Orders v2, Payments v2), money formats and ids.

/** PayPal's currencies and their decimals (HUF, JPY, TWD have none); INR is in-country only. */
export const PAYPAL_CURRENCIES: Readonly<Record<string, 0 | 2>> = Object.fromEntries([
  ..."AUD BRL CAD CNY CZK DKK EUR HKD ILS MYR MXN NZD NOK PHP PLN GBP SGD SEK CHF THB USD"
    .split(" ").map((c) => [c, 2 as const]),
  ["HUF", 0],
  ["JPY", 0],
  ["TWD", 0],
]);

export interface Money {
  currency_code: string;
  value: string;
}

export interface Link {
  href: string;
  rel: string;
  method: string;
}

export interface Capture {
  id: string;
  status: "COMPLETED" | "DECLINED" | "PARTIALLY_REFUNDED" | "PENDING" | "REFUNDED" | "FAILED";
  status_details?: { reason: string };
  amount: Money;
  final_capture: boolean;
  custom_id?: string;
  seller_protection: { status: string };
  supplementary_data: { related_ids: { order_id: string } };
  links: Link[];
  create_time: string;
  update_time: string;
}

export interface PurchaseUnit {
  reference_id: string;
  custom_id?: string;
  amount: Money;
  payments?: { captures: Capture[] };
}

export type CaptureOutcome = "COMPLETED" | "DECLINED" | "PENDING";

export interface Order {
  id: string;
  intent: "CAPTURE";
  status: "CREATED" | "APPROVED" | "VOIDED" | "COMPLETED";
  purchase_units: PurchaseUnit[];
  payer?: { payer_id: string; email_address: string };
  create_time: string;
  update_time?: string;
  links: Link[];
}

export interface Refund {
  id: string;
  status: "CANCELLED" | "FAILED" | "PENDING" | "COMPLETED";
  amount: Money;
  custom_id?: string;
  invoice_id?: string;
  note_to_payer?: string;
  seller_payable_breakdown: { gross_amount: Money; total_refunded_amount: Money };
  links: Link[];
  create_time: string;
  update_time: string;
}

const ALNUM = "ABCDEFGHJKLMNPRSTUVWXY0123456789";

/** PayPal-like ids: 17 upper-case letters and digits. */
export function paypalId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(17));
  return Array.from(bytes, (b) => ALNUM[b % ALNUM.length]).join("");
}

/** RFC 3339 without milliseconds, as PayPal writes times. */
export const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** A money value in PayPal's units as integer hundredths (or units) — never a float. */
export function parseValue(m: unknown): { units: bigint; currency: string } | string {
  if (m === null || typeof m !== "object") return "MISSING_REQUIRED_PARAMETER";
  const { currency_code: code, value } = m as Record<string, unknown>;
  if (typeof code !== "string" || !/^[A-Z]{3}$/.test(code)) return "INVALID_CURRENCY_CODE";
  if (!Object.hasOwn(PAYPAL_CURRENCIES, code)) return "CURRENCY_NOT_SUPPORTED";
  if (typeof value !== "string" || !/^((-?[0-9]+)|(-?([0-9]+)?[.][0-9]+))$/.test(value)) {
    return "INVALID_PARAMETER_SYNTAX";
  }
  const [whole, frac = ""] = value.split(".");
  const decimals = PAYPAL_CURRENCIES[code];
  if (decimals === 0 && value.includes(".")) return "DECIMALS_NOT_SUPPORTED";
  if (frac.length > decimals) return "DECIMAL_PRECISION";
  if (whole.replace("-", "").length > 15) return "INVALID_PARAMETER_VALUE";
  const units = BigInt((whole || "0") + frac.padEnd(decimals, "0"));
  if (units <= 0n) return "INVALID_PARAMETER_VALUE";
  return { units, currency: code };
}

export function formatUnits(units: bigint, currency: string): string {
  const decimals = PAYPAL_CURRENCIES[currency];
  if (decimals === 0) return String(units);
  return `${units / 100n}.${String(units % 100n).padStart(2, "0")}`;
}
