// Stripe's minor units versus settle's (GATEWAY_FACTS B8): equal except where Stripe differs.
import { HttpError } from "../../http.ts";
import { CURRENCY_EXPONENTS } from "../../money.ts";

/**
 * Currencies Stripe counts with two decimals although settle (Razorpay's table) has none:
 * ISK is zero-decimal at Razorpay, but Stripe takes it ×100 (amounts divisible by 100).
 */
const STRIPE_SCALE: Record<string, number> = { ISK: 100 };

export function toStripeAmount(amount: number, currency: string): number {
  if (CURRENCY_EXPONENTS[currency] === 3 && amount % 10 !== 0) {
    throw new HttpError(
      400,
      "invalid_request",
      `stripe takes ${currency} amounts in multiples of 10`,
    );
  }
  const stripeAmount = amount * (STRIPE_SCALE[currency] ?? 1);
  if (!Number.isSafeInteger(stripeAmount) || stripeAmount > 99_999_999) {
    throw new HttpError(400, "invalid_request", "amount exceeds what stripe accepts (8 digits)");
  }
  return stripeAmount;
}

export function fromStripeAmount(amount: number, currency: string): number {
  const scale = STRIPE_SCALE[currency.toUpperCase()] ?? 1;
  return amount % scale === 0 ? amount / scale : NaN;
}
