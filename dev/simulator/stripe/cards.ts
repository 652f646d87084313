// Stripe's test cards (docs.stripe.com/testing): numbers, brands, declines, 3DS behaviour, the
// pm_card_* shortcuts, and the next_action a card that needs 3DS asks for.
import { createHash } from "node:crypto";
import type { Json } from "./wire.ts";
import { fingerprintFrom, randomAlnum } from "./util.ts";

export interface Decline {
  type: "card_error" | "invalid_request_error";
  code: string;
  decline_code?: string;
  message: string;
}

export interface CardSpec {
  number: string;
  brand: string;
  displayBrand: string;
  funding: "credit" | "debit";
  country: string;
  decline?: Decline;
  /** "required": on-session payments need 3DS unless set up for off-session; "always": every time. */
  threeDS?: "required" | "always";
}

export const GENERIC_DECLINE: Decline = {
  type: "card_error",
  code: "card_declined",
  decline_code: "generic_decline",
  message: "Your card was declined.",
};
export const AUTHENTICATION_REQUIRED: Decline = {
  type: "card_error",
  code: "authentication_required",
  decline_code: "authentication_required",
  message: "Your card was declined. This transaction requires authentication.",
};
export const AUTHENTICATION_FAILED: Decline = {
  type: "invalid_request_error",
  code: "payment_intent_authentication_failure",
  message: "The provided PaymentMethod has failed authentication. You can provide " +
    "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
};
export const SETUP_AUTHENTICATION_FAILED: Decline = {
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
export const TEST_CARDS = new Map<string, CardSpec>(
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
export const MAGIC_PAYMENT_METHODS = new Map<string, string>([
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
export function cardSpec(number: string): CardSpec | undefined {
  const known = TEST_CARDS.get(number);
  if (known) return known;
  if (!/^\d{13,19}$/.test(number) || !luhnValid(number)) return undefined;
  if (number.startsWith("4")) return card(number, "visa");
  if (/^(5[1-5]|2[2-7])/.test(number)) return card(number, "mastercard");
  if (/^3[47]/.test(number)) return card(number, "amex");
  if (/^6(011|5)/.test(number)) return card(number, "discover");
  return card(number, "unknown");
}

/** Stripe's card fingerprint is stable per card number; this one is too. */
export function fingerprintOf(number: string): string {
  return fingerprintFrom(createHash("sha256").update(`settle-sim-card:${number}`).digest());
}

export function threeDsAction(intentId: string): Json {
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
