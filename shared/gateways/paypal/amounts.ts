// settle's minor units ↔ PayPal's decimal strings (MARKETPLACE_FACTS 1.8), integers only.
import { HttpError } from "../../http.ts";
import { currencyExponent } from "../../money.ts";

/**
 * The currencies settle takes through PayPal, with the decimals PayPal uses for each. HUF and
 * TWD have two decimals in ISO 4217 (and in settle) but none at PayPal. INR is absent: PayPal
 * stopped domestic Indian payments in 2021; AED, KRW and the three-decimal currencies are not
 * PayPal currencies.
 */
export const PAYPAL_DECIMALS: Readonly<Record<string, 0 | 2>> = {
  USD: 2,
  EUR: 2,
  GBP: 2,
  SGD: 2,
  AUD: 2,
  CAD: 2,
  JPY: 0,
  HUF: 0,
  TWD: 0,
};

/** PayPal's amount.value is at most 15 digits before the point. */
const MAX_WHOLE_DIGITS = 15;

function refuse(message: string): never {
  throw new HttpError(400, "invalid_request", message);
}

/** settle's minor units per PayPal unit step: 100 for HUF/TWD, else 1. */
function scale(currency: string): bigint {
  const settle = currencyExponent(currency);
  const paypal = PAYPAL_DECIMALS[currency];
  return 10n ** BigInt(settle - paypal);
}

/** Refuses what PayPal cannot take: another currency, a fraction PayPal has no digits for. */
export function checkPayPalAmount(amount: number, currency: string): void {
  if (!Object.hasOwn(PAYPAL_DECIMALS, currency)) refuse(`paypal does not take ${currency}`);
  if (!Number.isSafeInteger(amount) || amount <= 0) refuse("amount must be a positive integer");
  const step = scale(currency);
  if (BigInt(amount) % step !== 0n) {
    refuse(`paypal takes ${currency} without decimals: amount must be a multiple of ${step}`);
  }
}

/** 1050 USD → "10.50"; 1200 JPY → "1200"; 250000 HUF → "2500". */
export function toPayPalValue(amount: number, currency: string): string {
  checkPayPalAmount(amount, currency);
  const units = BigInt(amount) / scale(currency);
  const decimals = PAYPAL_DECIMALS[currency];
  if (decimals === 0) return String(units);
  const d = 10n ** BigInt(decimals);
  const whole = String(units / d);
  if (whole.length > MAX_WHOLE_DIGITS) refuse("amount exceeds what paypal accepts");
  return `${whole}.${String(units % d).padStart(decimals, "0")}`;
}

/**
 * A PayPal value back in settle's minor units; null for anything that is not an exact amount in
 * that currency (a fraction finer than PayPal's decimals, a sign, an unknown currency).
 */
export function fromPayPalValue(value: unknown, currency: unknown): number | null {
  if (typeof value !== "string" || typeof currency !== "string") return null;
  const code = currency.toUpperCase();
  if (!Object.hasOwn(PAYPAL_DECIMALS, code)) return null;
  const decimals = PAYPAL_DECIMALS[code];
  const m = /^(\d{1,15})(?:\.(\d+))?$/.exec(value);
  if (!m) return null;
  const frac = m[2] ?? "";
  if (frac.length > decimals && !/^0*$/.test(frac.slice(decimals))) return null;
  const digits = BigInt(m[1]) * 10n ** BigInt(decimals) +
    BigInt((frac.slice(0, decimals) || "0").padEnd(decimals, "0"));
  const minor = digits * scale(code);
  return minor <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(minor) : null;
}
