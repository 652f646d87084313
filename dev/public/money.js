// Money for people: integers in a currency's minor unit, converted with integer arithmetic only
// (BigInt and strings, never floats). The exponent comes from public.currencies.

const SYMBOLS = { INR: "₹", USD: "$", EUR: "€", GBP: "£", JPY: "¥" };

/** 123450 INR (exponent 2) → "₹1234.50"; 1500 JPY (exponent 0) → "¥1500"; "12.345 KWD". */
export function formatMinor(minor, currency, exponent) {
  const value = BigInt(minor);
  const sign = value < 0n ? "-" : "";
  const digits = (value < 0n ? -value : value).toString().padStart(exponent + 1, "0");
  const whole = exponent === 0 ? digits : digits.slice(0, -exponent);
  const fraction = exponent === 0 ? "" : "." + digits.slice(-exponent);
  const symbol = SYMBOLS[currency];
  return symbol ? `${sign}${symbol}${whole}${fraction}` : `${sign}${whole}${fraction} ${currency}`;
}

/**
 * What a person typed ("750", "12.5") → minor units (75000, 1250 for exponent 2), or throws
 * with a message the page shows. More decimals than the currency has are refused, not rounded.
 */
export function parseMajor(text, exponent) {
  const m = String(text).trim().match(/^(\d{1,12})(?:\.(\d*))?$/);
  if (!m) throw new Error("enter an amount like 500 or 12.50");
  const fraction = m[2] ?? "";
  if (fraction.length > exponent) {
    throw new Error(`at most ${exponent} decimal places in this currency`);
  }
  const minor = BigInt(m[1]) * 10n ** BigInt(exponent) +
    BigInt(fraction.padEnd(exponent, "0") || "0");
  // JSON carries numbers; every amount settle accepts is far below 2^53.
  return Number(minor);
}
