// Payment methods: /v1/payment_methods (attach, detach, update), the PaymentMethod records
// intents use, and the card a /_sim control call pays with.
import {
  type CardSpec,
  cardSpec,
  fingerprintOf,
  MAGIC_PAYMENT_METHODS,
  TEST_CARDS,
} from "./cards.ts";
import { ApiError, invalid } from "./errors.ts";
import { emit, emitUpdated } from "./events.ts";
import { list, retrieve } from "./lists.ts";
import {
  ALLOWED,
  applyMetadata,
  hash,
  int,
  missingParamThrow,
  rejectUnknown,
  str,
} from "./params.ts";
import { type ApiCall, type Ctx, ok, type PmRecord, type Res, type StripeState } from "./state.ts";
import { clone, randomId } from "./util.ts";
import type { Customer, Json, PaymentMethod } from "./wire.ts";

export function listPaymentMethods(s: StripeState, { params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.pmList);
  const customer = str(p, "customer");
  if (customer !== undefined) s.customer(customer, "customer");
  const type = str(p, "type");
  const all = [...s.pms.values()]
    .filter((r) => customer === undefined || r.pm.customer === customer)
    .filter((r) => type === undefined || r.pm.type === type)
    .map((r) => r.pm);
  return ok(list(all, p, path));
}

export function retrievePaymentMethod(s: StripeState, { ids, params: p }: ApiCall): Res {
  return ok(retrieve(p, s.pm(ids.id).pm));
}

/** A new expiry for a card (the card updater's job at Stripe): payment_method.updated. */
export function updatePaymentMethod(s: StripeState, { ids: { id }, params: p, ctx }: ApiCall): Res {
  const rec = s.pm(id);
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
  emitUpdated(s, ctx, "payment_method.updated", before, rec.pm);
  return ok(rec.pm);
}

export function pmsOf(s: StripeState, customerId: string, type?: string): PaymentMethod[] {
  return [...s.pms.values()]
    .filter((r) => r.pm.customer === customerId && (type === undefined || r.pm.type === type))
    .map((r) => r.pm);
}

export function newPm(
  s: StripeState,
  spec: CardSpec,
  expMonth?: number,
  expYear?: number,
): PmRecord {
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
      exp_year: expYear ?? new Date(s.now()).getUTCFullYear() + 5,
      fingerprint: fingerprintOf(spec.number),
      funding: spec.funding,
      generated_from: null,
      last4: spec.number.slice(-4),
      networks: { available: [spec.brand], preferred: null },
      regulated_status: "unregulated",
      three_d_secure_usage: { supported: true },
      wallet: null,
    },
    created: s.unix(),
    customer: null,
    customer_account: null,
    livemode: false,
    metadata: {},
    type: "card",
  };
  const rec: PmRecord = { pm, card: spec, state: "usable", offSessionReady: false };
  s.pms.set(pm.id, rec);
  return rec;
}

/** An existing PaymentMethod, or a fresh one for Stripe's pm_card_* test shortcuts. */
export function resolvePm(s: StripeState, id: string, param: string): PmRecord {
  const magic = MAGIC_PAYMENT_METHODS.get(id);
  if (magic) return newPm(s, TEST_CARDS.get(magic)!);
  return s.pm(id, param);
}

export function assertReusable(rec: PmRecord, param: string): void {
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
export function assertUsableWith(rec: PmRecord, customer: string | null, param: string): void {
  assertReusable(rec, param);
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

export function attachPaymentMethod(s: StripeState, { ids: { id }, params: p, ctx }: ApiCall): Res {
  const rec = resolvePm(s, id, "id");
  rejectUnknown(p, ALLOWED.pmAttach);
  const customerId = str(p, "customer");
  if (customerId === undefined) missingParamThrow("customer");
  const c = s.customer(customerId, "customer");
  assertReusable(rec, "payment_method");
  if (rec.pm.customer === c.id) return ok(rec.pm);
  if (rec.pm.customer !== null) {
    throw invalid(
      "The payment method you provided has already been attached to a customer.",
      "payment_method",
      "payment_method_unexpected_state",
    );
  }
  attachTo(s, ctx, rec, c);
  return ok(rec.pm);
}

export function attachTo(s: StripeState, ctx: Ctx, rec: PmRecord, c: Customer): void {
  rec.pm.customer = c.id;
  emit(s, ctx, "payment_method.attached", rec.pm);
}

export function detachPaymentMethod(s: StripeState, { ids: { id }, params: p, ctx }: ApiCall): Res {
  const rec = s.pm(id);
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
  emit(s, ctx, "payment_method.detached", rec.pm, { customer: customerId });
  // Assumed from the Dashboard's behaviour: a detached default stops being the default.
  const c = s.customers.get(customerId);
  if (c && c.invoice_settings.default_payment_method === rec.pm.id) {
    const before = clone(c);
    c.invoice_settings.default_payment_method = null;
    emitUpdated(s, ctx, "customer.updated", before, c);
  }
  return ok(rec.pm);
}

/** The card a control call names (a test card number, or an existing or pm_card_* PaymentMethod). */
export function simPaymentMethod(s: StripeState, body: Json, fallback: string | null): PmRecord {
  if (body.payment_method !== undefined) {
    if (typeof body.payment_method !== "string") {
      throw invalid("payment_method must be a string", "payment_method");
    }
    return resolvePm(s, body.payment_method, "payment_method");
  }
  if (body.card === undefined && fallback) {
    const rec = s.pms.get(fallback);
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
  const year = new Date(s.now()).getUTCFullYear();
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
  return newPm(s, spec, expMonth, expYear);
}
