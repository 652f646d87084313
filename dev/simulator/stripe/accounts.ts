// Connect accounts: /v1/accounts (Express connected accounts), /v1/account_links (onboarding),
// and the /_sim/stripe controls for what only the payee or Stripe does: finishing onboarding,
// deauthorizing the platform. Their events are Connect events (they carry `account`, go to the
// Connect endpoint, signed with its secret).
import { invalid } from "./errors.ts";
import { emit, emitUpdated } from "./events.ts";
import { list, retrieve } from "./lists.ts";
import {
  ALLOWED,
  applyMetadata,
  bool,
  emailParam,
  hash,
  oneOf,
  type Params,
  rejectUnknown,
  str,
} from "./params.ts";
import { type ApiCall, type Ctx, ok, type Res, type StripeState } from "./state.ts";
import { clone, randomAlnum, randomId } from "./util.ts";
import type { Account, AccountLink, CapabilityStatus, Json } from "./wire.ts";

/** Connect countries the simulator offers, with their default currency. Assumed: India is not
 * one (MARKETPLACE_FACTS 3.1: not listed for separate charges and transfers). */
const COUNTRIES: Record<string, string> = {
  US: "usd",
  GB: "gbp",
  IE: "eur",
  DE: "eur",
  FR: "eur",
  NL: "eur",
  ES: "eur",
  IT: "eur",
  CA: "cad",
  AU: "aud",
  SG: "sgd",
  JP: "jpy",
};
const DEFAULT_COUNTRY = "US";
/** Account links are short-lived (assumed: 300 s, as Stripe's are "a few minutes"). */
const LINK_SECONDS = 300;
const CAPABILITIES = ["card_payments", "transfers"] as const;

/** Express through `controller.stripe_dashboard.type` or the deprecated `type: express`. */
function controllerOf(p: Params): Account["controller"] {
  const type = oneOf(p, "type", ["custom", "express", "none", "standard"] as const);
  const c = hash(p, "controller");
  if (type !== undefined && c !== undefined) {
    // Assumed wording: Stripe refuses both together.
    throw invalid("You cannot specify both `type` and `controller`.", "controller");
  }
  if (type === undefined && (c === undefined || c === "")) {
    throw invalid("You must provide either `type` or `controller`.", "type", "parameter_missing");
  }
  if (type !== undefined && type !== "express") {
    throw invalid(`This simulator supports Express accounts only, not ${type}.`, "type");
  }
  const ctl = (c || {}) as Params;
  rejectUnknown(ctl, ALLOWED.accountController, "controller");
  const dash = hash(ctl, "stripe_dashboard", "controller");
  const dashType = dash ? str(dash, "type", "controller[stripe_dashboard]") : "express";
  if (dashType !== "express") {
    throw invalid(
      "This simulator supports Express accounts only (controller[stripe_dashboard][type]=express).",
      "controller[stripe_dashboard][type]",
    );
  }
  const sub = (k: string, f: string, fallback: string) => {
    const h = hash(ctl, k, "controller");
    return (h ? str(h, f, `controller[${k}]`) : undefined) ?? fallback;
  };
  return {
    fees: { payer: sub("fees", "payer", "application") },
    is_controller: true,
    losses: { payments: sub("losses", "payments", "application") },
    requirement_collection: str(ctl, "requirement_collection", "controller") ?? "stripe",
    stripe_dashboard: { type: "express" },
    type: "application",
  };
}

/** capabilities[<name>][requested]=true: requested ones start inactive until onboarding. */
function capabilitiesOf(p: Params): Account["capabilities"] {
  const caps = hash(p, "capabilities");
  const out: Account["capabilities"] = {};
  if (!caps) return out;
  for (const [name, v] of Object.entries(caps)) {
    if (!(CAPABILITIES as readonly string[]).includes(name)) {
      throw invalid(`Invalid capability: ${name}`, `capabilities[${name}]`);
    }
    const requested = typeof v === "object" ? bool(v, "requested", `capabilities[${name}]`) : false;
    if (requested) out[name as (typeof CAPABILITIES)[number]] = "inactive";
  }
  return out;
}

export function createAccount(s: StripeState, { params: p, path }: ApiCall): Res {
  if (!s.opts.connectWebhookSecret) {
    throw invalid(
      "You can only create new accounts if you've signed up for Connect, which you can learn " +
        "how to do at https://stripe.com/docs/connect.",
    );
  }
  rejectUnknown(p, ALLOWED.accountCreate);
  const controller = controllerOf(p);
  const country = (str(p, "country") ?? DEFAULT_COUNTRY).toUpperCase();
  const currency = COUNTRIES[country];
  if (!currency) {
    throw invalid(`Connect is not available for accounts in ${country} here.`, "country");
  }
  const id = randomId("acct_", 16);
  const a: Account = {
    id,
    object: "account",
    business_profile: { mcc: null, name: null, product_description: null, url: null },
    business_type: null,
    capabilities: capabilitiesOf(p),
    charges_enabled: false,
    controller,
    country,
    created: s.unix(),
    default_currency: str(p, "default_currency") ?? currency,
    details_submitted: false,
    email: emailParam(p) ?? null,
    external_accounts: {
      object: "list",
      data: [],
      has_more: false,
      total_count: 0,
      url: `${path}/${id}/external_accounts`,
    },
    metadata: applyMetadata(p.metadata, {}),
    payouts_enabled: false,
    requirements: {
      currently_due: ["business_type", "external_account", "tos_acceptance.date"],
      disabled_reason: "requirements.past_due",
      eventually_due: ["business_type", "external_account", "tos_acceptance.date"],
      past_due: ["business_type", "external_account", "tos_acceptance.date"],
    },
    tos_acceptance: { date: null },
    type: "express",
  };
  // Assumed: Stripe sends no account.updated for the creation itself.
  s.accounts.set(id, a);
  return ok(a);
}

export function retrieveAccount(s: StripeState, { ids, params: p }: ApiCall): Res {
  return ok(retrieve(p, s.account(ids.id)));
}

export function listAccounts(s: StripeState, { params: p, path }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.accountList);
  return ok(list([...s.accounts.values()], p, path));
}

export function createAccountLink(s: StripeState, { params: p }: ApiCall): Res {
  rejectUnknown(p, ALLOWED.accountLinkCreate);
  const id = str(p, "account");
  if (id === undefined) {
    throw invalid("Missing required param: account.", "account", "parameter_missing");
  }
  const a = s.account(id, "account");
  const type = oneOf(p, "type", ["account_onboarding", "account_update"] as const);
  if (type === undefined) {
    throw invalid("Missing required param: type.", "type", "parameter_missing");
  }
  for (const k of ["refresh_url", "return_url"]) {
    const v = str(p, k);
    if (v === undefined) throw invalid(`Missing required param: ${k}.`, k, "parameter_missing");
    if (!/^https?:\/\/\S+$/.test(v)) throw invalid(`Not a valid URL`, k, "url_invalid");
  }
  if (type === "account_update" && !a.details_submitted) {
    throw invalid(
      "You cannot create `account_update` type Account Links for accounts that have not completed onboarding.",
      "type",
    );
  }
  const created = s.unix();
  const link: AccountLink = {
    object: "account_link",
    created,
    expires_at: created + LINK_SECONDS,
    url: `https://connect.stripe.com/setup/e/${a.id}/${randomAlnum(12)}`,
  };
  return ok(link);
}

// ---------------------------------------------------------------- controls

const STATUSES: CapabilityStatus[] = ["active", "inactive", "pending"];

/**
 * POST /_sim/stripe/accounts/:id/onboard {payouts_enabled?, transfers?, webhooks?}: the payee
 * finishes onboarding (by default everything enabled: payouts on, transfers active) and Stripe
 * sends account.updated to the Connect endpoint. Other values model a half-verified account.
 */
export function simOnboard(s: StripeState, id: string, body: Json, ctx: Ctx): Account {
  const a = s.account(id);
  const payouts = body.payouts_enabled ?? true;
  if (typeof payouts !== "boolean") {
    throw invalid("payouts_enabled must be a boolean", "payouts_enabled");
  }
  const transfers = (body.transfers ?? "active") as CapabilityStatus;
  if (!STATUSES.includes(transfers)) {
    throw invalid(`transfers must be one of ${STATUSES.join(", ")}`, "transfers");
  }
  const before = clone(a);
  a.details_submitted = true;
  a.payouts_enabled = payouts;
  a.capabilities = { ...a.capabilities, transfers };
  if (a.capabilities.card_payments) {
    a.capabilities.card_payments = transfers;
    a.charges_enabled = transfers === "active";
  }
  a.tos_acceptance = { date: a.tos_acceptance.date ?? s.unix() };
  const due = payouts && transfers === "active" ? [] : ["external_account"];
  a.requirements = {
    currently_due: due,
    disabled_reason: due.length ? "requirements.pending_verification" : null,
    eventually_due: due,
    past_due: [],
  };
  emitUpdated(s, ctx, "account.updated", before, a, a.id);
  return a;
}

/** POST /_sim/stripe/accounts/:id/deauthorize: the account disconnects from the platform. */
export function simDeauthorize(s: StripeState, id: string, _body: Json, ctx: Ctx): Json {
  const a = s.account(id);
  const application = { id: "ca_SettleSimPlatform01", object: "application", name: "settle" };
  emit(s, ctx, "account.application.deauthorized", application, undefined, a.id);
  return { account: a.id, deauthorized: true };
}
