// PayPal's currencies and money values: decimal strings checked and read as integers, no floats.

/** PayPal's currencies and their decimals (HUF, JPY, TWD have none); INR is in-country only. */
export const PAYPAL_CURRENCIES: Readonly<Record<string, 0 | 2>> = Object.fromEntries([
  ..."AUD BRL CAD CNY CZK DKK EUR HKD ILS MYR MXN NZD NOK PHP PLN GBP SGD SEK CHF THB USD"
    .split(" ").map((c) => [c, 2 as const]),
  ["HUF", 0],
  ["JPY", 0],
  ["TWD", 0],
]);

/**
 * A money object read as integer units of PayPal's smallest step (cents, or whole yen/forint),
 * or the 4xx issue PayPal names. Assumed: INR answers CURRENCY_NOT_SUPPORTED, as for an account
 * outside India.
 */
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
  if (PAYPAL_CURRENCIES[currency] === 0) return String(units);
  return `${units / 100n}.${String(units % 100n).padStart(2, "0")}`;
}

/** A value in `currency`'s units (0 for anything unreadable: only stored values are passed). */
export function unitsOf(value: string, currency: string): bigint {
  const p = parseValue({ value, currency_code: currency });
  return typeof p === "string" ? 0n : p.units;
}
