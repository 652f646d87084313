// Payment intents: /v1/payment_intents (create, update, confirm, capture, cancel), one payment
// attempt with a card, and the /_sim/stripe confirmation that stands in for Stripe.js.
import {
  AUTHENTICATION_FAILED,
  AUTHENTICATION_REQUIRED,
  type Decline,
  GENERIC_DECLINE,
  threeDsAction,
} from "./cards.ts";
import { newCharge } from "./charges.ts";
import { errorBody, invalid, type StripeErrorFields } from "./errors.ts";
import { emit } from "./events.ts";
import { list } from "./lists.ts";
import {
  ALLOWED,
  amountParam,
  applyMetadata,
  bool,
  currencyParam,
  int,
  methodTypesParams,
  missingParamThrow,
  nullableStr,
  offSessionParam,
  oneOf,
  type Params,
  rejectUnknown,
  simOutcome,
  str,
} from "./params.ts";
import { assertUsableWith, attachTo, resolvePm, simPaymentMethod } from "./payment_methods.ts";
import {
  type ApiCall,
  type Ctx,
  ok,
  type Outcome,
  type PmRecord,
  type Res,
  type StripeState,
} from "./state.ts";
import { clone, randomAlnum, randomId } from "./util.ts";
import type { Charge, Json, PaymentIntent, PiStatus } from "./wire.ts";

export function listPaymentIntents(s: StripeState, { params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.piList);
  const customer = str(p, "customer");
  const all = [...s.pis.values()].filter((pi) =>
    customer === undefined || pi.customer === customer
  );
  return ok(list(all, p, path));
}

export function retrievePaymentIntent(s: StripeState, { ids, params: p }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.retrieveIntent);
  return ok(s.paymentIntent(ids.id));
}

export function createPaymentIntent(s: StripeState, { params: p, ctx }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.piCreate);
  // Stripe reports a missing amount before a missing currency.
  if (p.amount === undefined) missingParamThrow("amount");
  const currency = currencyParam(p);
  const amount = amountParam(p, currency);
  const customerId = str(p, "customer");
  if (customerId !== undefined) s.customer(customerId, "customer");
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
  const rec = pmId === undefined ? undefined : resolvePm(s, pmId, "payment_method");
  if (rec) assertUsableWith(rec, customerId ?? null, "payment_method");
  if (confirm && !rec) {
    throw invalid(
      "You cannot confirm this PaymentIntent because it's missing a payment method. You can " +
        "provide the payment_method parameter.",
      "payment_method",
      "payment_intent_unexpected_state",
    );
  }
  const pi = newPaymentIntent(s, p, {
    amount,
    currency,
    customerId,
    metadata,
    methods,
    sfu,
    capture,
    rec,
  });
  s.pis.set(pi.id, pi);
  emit(s, ctx, "payment_intent.created", pi);
  if (!confirm) return ok(pi);
  return apiAttempt(s, ctx, pi, rec!, {
    offSession,
    errorOnAction: bool(p, "error_on_requires_action") ?? false,
  });
}

/** The new intent's wire object; `p` still supplies the fields read only here. */
function newPaymentIntent(s: StripeState, p: Params, v: {
  amount: number;
  currency: string;
  customerId: string | undefined;
  metadata: Record<string, string>;
  methods: ReturnType<typeof methodTypesParams>;
  sfu: string | undefined;
  capture: string;
  rec: PmRecord | undefined;
}): PaymentIntent {
  const { amount, currency, customerId, metadata, methods, sfu, capture, rec } = v;
  const id = randomId("pi_");
  return {
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
    created: s.unix(),
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
}

export function updatePaymentIntent(s: StripeState, { ids: { id }, params: p }: ApiCall): Res {
  const pi = s.paymentIntent(id);
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
  if (customerId !== undefined) s.customer(customerId, "customer");
  const metadata = applyMetadata(p.metadata, pi.metadata);
  const sfu = p.setup_future_usage === ""
    ? null
    : oneOf(p, "setup_future_usage", ["on_session", "off_session"] as const);
  const pmId = str(p, "payment_method");
  const rec = pmId === undefined ? undefined : resolvePm(s, pmId, "payment_method");
  if (rec) assertUsableWith(rec, customerId ?? pi.customer, "payment_method");
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

export function confirmPaymentIntent(
  s: StripeState,
  { ids: { id }, params: p, ctx }: ApiCall,
): Res {
  const pi = s.paymentIntent(id);
  rejectUnknown(p, ALLOWED.piConfirm);
  assertConfirmable(pi);
  const offSession = offSessionParam(p);
  const sfu = oneOf(p, "setup_future_usage", ["on_session", "off_session"] as const);
  const pmId = str(p, "payment_method");
  let rec = pmId === undefined ? undefined : resolvePm(s, pmId, "payment_method");
  if (!rec && pi.payment_method) rec = s.pms.get(pi.payment_method);
  if (!rec) {
    throw invalid(
      "You cannot confirm this PaymentIntent because it's missing a payment method. You can " +
        "provide the payment_method parameter.",
      "payment_method",
      "payment_intent_unexpected_state",
    );
  }
  assertUsableWith(rec, pi.customer, "payment_method");
  if (sfu !== undefined) pi.setup_future_usage = sfu;
  if (pi.status === "requires_action") pi.status = "requires_confirmation";
  return apiAttempt(s, ctx, pi, rec, {
    offSession,
    errorOnAction: bool(p, "error_on_requires_action") ?? false,
  });
}

function assertConfirmable(pi: PaymentIntent): void {
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
function apiAttempt(
  s: StripeState,
  ctx: Ctx,
  pi: PaymentIntent,
  rec: PmRecord,
  o: { offSession: boolean; errorOnAction: boolean },
): Res {
  const result = attemptPayment(s, ctx, pi, rec, {
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
        s.unix(),
      ),
    };
  }
  return ok(pi);
}

/**
 * One payment attempt with `rec`. Outcome: the card's own behaviour (test card table), unless
 * `forced`. Mutates the intent and the charge, and queues the events Stripe sends for it.
 */
function attemptPayment(
  s: StripeState,
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
      emit(s, ctx, "payment_intent.requires_action", pi);
      return "requires_action";
    }
  }

  if (decline) return declinePayment(s, ctx, pi, rec, decline);
  return succeedPayment(s, ctx, pi, rec);
}

/** A declined attempt: a failed charge for card errors, the error kept on the intent. */
function declinePayment(
  s: StripeState,
  ctx: Ctx,
  pi: PaymentIntent,
  rec: PmRecord,
  decline: Decline,
): "failed" {
  let charge: Charge | undefined;
  if (decline.type === "card_error") {
    charge = newCharge(s, pi, rec, decline);
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
  if (charge) emit(s, ctx, "charge.failed", charge);
  emit(s, ctx, "payment_intent.payment_failed", pi);
  return "failed";
}

/** An approved attempt: the charge, the card kept for later use if asked, captured or held. */
function succeedPayment(s: StripeState, ctx: Ctx, pi: PaymentIntent, rec: PmRecord): "succeeded" {
  if (pi.customer !== null && pi.setup_future_usage !== null && rec.pm.customer === null) {
    attachTo(s, ctx, rec, s.customers.get(pi.customer)!);
  }
  if (pi.setup_future_usage === "off_session" && rec.pm.customer !== null) {
    rec.offSessionReady = true;
  }
  // Stripe refuses to reuse a PaymentMethod charged once without a customer to keep it.
  if (rec.pm.customer === null) rec.state = "consumed";
  const manual = pi.capture_method === "manual";
  const charge = newCharge(s, pi, rec, undefined, !manual);
  pi.latest_charge = charge.id;
  pi.last_payment_error = null;
  pi.next_action = null;
  emit(s, ctx, "charge.succeeded", charge);
  if (manual) {
    pi.status = "requires_capture";
    pi.amount_capturable = pi.amount;
    emit(s, ctx, "payment_intent.amount_capturable_updated", pi);
  } else {
    pi.status = "succeeded";
    pi.amount_received = pi.amount;
    emit(s, ctx, "payment_intent.succeeded", pi);
  }
  return "succeeded";
}

export function cancelPaymentIntent(s: StripeState, { ids: { id }, params: p, ctx }: ApiCall): Res {
  const pi = s.paymentIntent(id);
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
    const charge = s.charges.get(pi.latest_charge)!;
    charge.amount_refunded = charge.amount;
    charge.refunded = true;
  }
  pi.status = "canceled";
  pi.canceled_at = s.unix();
  pi.cancellation_reason = reason ?? null;
  pi.amount_capturable = 0;
  pi.next_action = null;
  emit(s, ctx, "payment_intent.canceled", pi);
  return ok(pi);
}

export function capturePaymentIntent(
  s: StripeState,
  { ids: { id }, params: p, ctx }: ApiCall,
): Res {
  const pi = s.paymentIntent(id);
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
  const charge = s.charges.get(pi.latest_charge!)!;
  charge.captured = true;
  charge.amount_captured = amount;
  // A partial capture releases the rest, which Stripe shows as refunded on the charge.
  charge.amount_refunded = charge.amount - amount;
  charge.balance_transaction = randomId("txn_");
  pi.amount_received = amount;
  pi.amount_capturable = 0;
  pi.status = "succeeded";
  emit(s, ctx, "charge.captured", charge);
  emit(s, ctx, "payment_intent.succeeded", pi);
  return ok(pi);
}

/** Stands in for Stripe.js confirming on the customer's device (3DS included). */
export function simConfirmPayment(s: StripeState, id: string, body: Json, ctx: Ctx): PaymentIntent {
  const outcome = simOutcome(body);
  const pi = s.paymentIntent(id);
  assertConfirmable(pi);
  const authenticating = pi.status === "requires_action" && body.card === undefined &&
    body.payment_method === undefined;
  const rec = simPaymentMethod(s, body, pi.payment_method);
  assertUsableWith(rec, pi.customer, "payment_method");
  attemptPayment(s, ctx, pi, rec, {
    forced: outcome,
    offSession: false,
    authenticated: authenticating && outcome !== "requires_action",
  });
  return pi;
}
