// Setup intents: /v1/setup_intents (create, confirm, cancel), one setup attempt with a card, and
// the /_sim/stripe confirmation that stands in for Stripe.js.
import { GENERIC_DECLINE, SETUP_AUTHENTICATION_FAILED, threeDsAction } from "./cards.ts";
import { errorBody, invalid, type StripeErrorFields } from "./errors.ts";
import { emit } from "./events.ts";
import { list } from "./lists.ts";
import {
  ALLOWED,
  applyMetadata,
  bool,
  methodTypesParams,
  nullableStr,
  oneOf,
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
import type { Json, SetupIntent } from "./wire.ts";

export function listSetupIntents(s: StripeState, { params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.siList);
  const customer = str(p, "customer");
  const all = [...s.sis.values()].filter((si) =>
    customer === undefined || si.customer === customer
  );
  return ok(list(all, p, path));
}

export function retrieveSetupIntent(s: StripeState, { ids, params: p }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.retrieveIntent);
  return ok(s.setupIntent(ids.id));
}

export function createSetupIntent(s: StripeState, { params: p, ctx }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.siCreate);
  const customerId = str(p, "customer");
  if (customerId !== undefined) s.customer(customerId, "customer");
  const usage = oneOf(p, "usage", ["off_session", "on_session"] as const) ?? "off_session";
  const methods = methodTypesParams(p);
  const metadata = applyMetadata(p.metadata, {});
  const confirm = bool(p, "confirm") ?? false;
  const pmId = str(p, "payment_method");
  const rec = pmId === undefined ? undefined : resolvePm(s, pmId, "payment_method");
  if (rec) assertUsableWith(rec, customerId ?? null, "payment_method");
  if (confirm && !rec) {
    throw invalid(
      "You cannot confirm this SetupIntent because it's missing a payment method.",
      "payment_method",
      "setup_intent_unexpected_state",
    );
  }
  const id = randomId("seti_");
  const si: SetupIntent = {
    id,
    object: "setup_intent",
    allowed_payment_method_types: methods.allowed,
    application: null,
    automatic_payment_methods: methods.automatic,
    cancellation_reason: null,
    client_secret: `${id}_secret_${randomAlnum(24)}`,
    created: s.unix(),
    customer: customerId ?? null,
    customer_account: null,
    description: nullableStr(p, "description") ?? null,
    excluded_payment_method_types: null,
    flow_directions: null,
    last_setup_error: null,
    latest_attempt: null,
    livemode: false,
    mandate: null,
    metadata,
    next_action: null,
    on_behalf_of: null,
    payment_method: rec?.pm.id ?? null,
    payment_method_configuration_details: methods.automatic
      ? { id: "pmc_SettleSimDefault0000001", parent: null }
      : null,
    payment_method_options: {
      card: { mandate_options: null, network: null, request_three_d_secure: "automatic" },
    },
    payment_method_types: methods.types,
    single_use_mandate: null,
    status: rec ? "requires_confirmation" : "requires_payment_method",
    usage,
  };
  s.sis.set(si.id, si);
  emit(s, ctx, "setup_intent.created", si);
  if (confirm) attemptSetup(s, ctx, si, rec!, { authenticated: false });
  return setupResult(s, ctx, si);
}

export function confirmSetupIntent(s: StripeState, { ids: { id }, params: p, ctx }: ApiCall): Res {
  const si = s.setupIntent(id);
  rejectUnknown(p, ALLOWED.siConfirm);
  assertSetupConfirmable(si);
  const pmId = str(p, "payment_method");
  let rec = pmId === undefined ? undefined : resolvePm(s, pmId, "payment_method");
  if (!rec && si.payment_method) rec = s.pms.get(si.payment_method);
  if (!rec) {
    throw invalid(
      "You cannot confirm this SetupIntent because it's missing a payment method.",
      "payment_method",
      "setup_intent_unexpected_state",
    );
  }
  assertUsableWith(rec, si.customer, "payment_method");
  attemptSetup(s, ctx, si, rec, { authenticated: false });
  return setupResult(s, ctx, si);
}

function setupResult(s: StripeState, ctx: Ctx, si: SetupIntent): Res {
  const err = si.last_setup_error;
  if (si.status === "requires_payment_method" && err) {
    return {
      status: err.type === "card_error" ? 402 : 400,
      body: errorBody(
        { ...(err as unknown as StripeErrorFields), setup_intent: clone(si) },
        ctx.request.id,
        s.unix(),
      ),
    };
  }
  return ok(si);
}

function assertSetupConfirmable(si: SetupIntent): void {
  if (si.status === "succeeded" || si.status === "canceled" || si.status === "processing") {
    throw invalid(
      `You cannot confirm this SetupIntent because it has a status of ${si.status}.`,
      undefined,
      "setup_intent_unexpected_state",
    );
  }
}

function attemptSetup(
  s: StripeState,
  ctx: Ctx,
  si: SetupIntent,
  rec: PmRecord,
  o: { forced?: Outcome; authenticated: boolean },
): void {
  si.payment_method = rec.pm.id;
  let decline = rec.card.decline;
  if (!decline && o.forced === "failure") {
    decline = o.authenticated ? SETUP_AUTHENTICATION_FAILED : GENERIC_DECLINE;
  }
  if (
    !decline && !o.authenticated && (o.forced === "requires_action" || rec.card.threeDS)
  ) {
    si.status = "requires_action";
    si.next_action = threeDsAction(si.id);
    si.last_setup_error = null;
    emit(s, ctx, "setup_intent.requires_action", si);
    return;
  }
  if (decline) {
    si.status = "requires_payment_method";
    si.payment_method = null;
    si.next_action = null;
    si.last_setup_error = {
      code: decline.code,
      ...(decline.decline_code ? { decline_code: decline.decline_code } : {}),
      doc_url: `https://stripe.com/docs/error-codes/${decline.code.replaceAll("_", "-")}`,
      message: decline.message,
      payment_method: clone(rec.pm),
      type: decline.type,
    };
    emit(s, ctx, "setup_intent.setup_failed", si);
    return;
  }
  si.status = "succeeded";
  si.last_setup_error = null;
  si.next_action = null;
  rec.offSessionReady = si.usage === "off_session";
  emit(s, ctx, "setup_intent.succeeded", si);
  if (si.customer !== null && rec.pm.customer === null) {
    attachTo(s, ctx, rec, s.customers.get(si.customer)!);
  }
}

export function cancelSetupIntent(s: StripeState, { ids: { id }, params: p, ctx }: ApiCall): Res {
  const si = s.setupIntent(id);
  rejectUnknown(p, ALLOWED.cancel);
  const reason = oneOf(
    p,
    "cancellation_reason",
    ["abandoned", "requested_by_customer", "duplicate"] as const,
  );
  if (si.status === "succeeded" || si.status === "canceled" || si.status === "processing") {
    throw invalid(
      `You cannot cancel this SetupIntent because it has a status of ${si.status}. Only a ` +
        "SetupIntent with one of the following statuses may be canceled: " +
        "requires_payment_method, requires_confirmation, requires_action.",
      undefined,
      "setup_intent_unexpected_state",
    );
  }
  si.status = "canceled";
  si.cancellation_reason = reason ?? null;
  si.next_action = null;
  emit(s, ctx, "setup_intent.canceled", si);
  return ok(si);
}

export function simConfirmSetup(s: StripeState, id: string, body: Json, ctx: Ctx): SetupIntent {
  const outcome = simOutcome(body);
  const si = s.setupIntent(id);
  assertSetupConfirmable(si);
  const authenticating = si.status === "requires_action" && body.card === undefined &&
    body.payment_method === undefined;
  const rec = simPaymentMethod(s, body, si.payment_method);
  assertUsableWith(rec, si.customer, "payment_method");
  attemptSetup(s, ctx, si, rec, {
    forced: outcome,
    authenticated: authenticating && outcome !== "requires_action",
  });
  return si;
}
