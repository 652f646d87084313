// Money helpers: amounts are integers in a currency's minor unit; never floats.

/**
 * Minor-unit exponents (Razorpay's table): the code's one source. The database's
 * public.currencies holds the same codes and exponents (tests/money_test.ts compares them).
 */
export const CURRENCY_EXPONENTS: Readonly<Record<string, 0 | 2 | 3>> = {
  INR: 2,
  USD: 2,
  EUR: 2,
  GBP: 2,
  SGD: 2,
  AED: 2,
  AUD: 2,
  CAD: 2,
  // Two decimals as ISO 4217 has them; PayPal takes them without (gateways/paypal/amounts.ts).
  HUF: 2,
  TWD: 2,
  JPY: 0,
  KRW: 0,
  KWD: 3,
  BHD: 3,
  OMR: 3,
};

/** A currency's exponent; a currency settle does not know is an error, never a guess. */
export function currencyExponent(currency: string): 0 | 2 | 3 {
  if (!Object.hasOwn(CURRENCY_EXPONENTS, currency)) {
    throw new RangeError(`unknown currency ${currency}`);
  }
  return CURRENCY_EXPONENTS[currency];
}

/** Reads an amount from the database (postgres.js returns bigint as a string). */
export function minorFromDb(value: string | number | bigint): number {
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`amount ${value} is not a safe integer`);
  return n;
}

/** "1234" INR → "12.34"; formatting only, for people. */
export function formatMinor(amount: number, currency: string): string {
  const exp = currencyExponent(currency);
  const sign = amount < 0 ? "-" : "";
  const digits = String(Math.abs(amount)).padStart(exp + 1, "0");
  const whole = exp === 0 ? digits : digits.slice(0, -exp);
  const frac = exp === 0 ? "" : "." + digits.slice(-exp);
  return `${sign}${whole}${frac} ${currency}`;
}
