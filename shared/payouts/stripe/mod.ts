// The Stripe Connect payout gateway on the app's Stripe SDK client: Express connected accounts
// and their onboarding links, transfers under an idempotency key derived from the payout id, and
// the Connect endpoint's webhooks, verified with its own secret.
import Stripe from "stripe";
import type { StripeConfig, StripeConnectConfig } from "../../config.ts";
import { HttpError } from "../../http.ts";
import { toStripeAmount } from "../../gateways/stripe/amounts.ts";
import { createStripeClient } from "../../gateways/stripe/client.ts";
import { checkEnvelope } from "../../gateways/stripe/wire.ts";
import {
  type Destination,
  type PayoutEvent,
  type PayoutGateway,
  PayoutGatewayError,
  refusalStatus,
} from "../types.ts";
import { accountEffect, connectEvent, listedTransfer, transferRecord } from "./wire.ts";

/** An onboarding link: where the payee goes, and until when Stripe honours it. */
export interface OnboardingLink {
  url: string;
  expiresAt: string;
}

export interface StripeConnectGateway extends PayoutGateway {
  /** A Connect endpoint event, verified with the Connect secret only. */
  parseWebhook(raw: string, headers: Headers): Promise<PayoutEvent[]>;
  /**
   * The account's readiness as Stripe has it now (an account.updated effect to apply), read
   * when its event arrives so the order events come in cannot matter. `observed_at` (taken
   * before the read) orders concurrent reads: a read started later sees a state at least as new.
   */
  readAccount(gatewayAccountId: string): Promise<Record<string, unknown>>;
  /** A fresh account link for a connected account still onboarding (links expire in minutes). */
  onboardingLink(
    gatewayAccountId: string,
    ctx: { payoutAccountId: string; origin: string },
  ): Promise<OnboardingLink>;
}

/** Stripe's error as the payout flow sees it: refused (nothing was made) or fate unknown. */
function payoutError(err: unknown): unknown {
  if (!(err instanceof Stripe.errors.StripeError)) return err;
  const status = err.statusCode;
  const unavailable = err instanceof Stripe.errors.StripeConnectionError ||
    status === undefined || status >= 500 || err instanceof Stripe.errors.StripeRateLimitError;
  // An idempotency error means the key met other parameters: a transfer may exist under it.
  const refused = status !== undefined && refusalStatus(status) &&
    !(err instanceof Stripe.errors.StripeIdempotencyError);
  return new PayoutGatewayError(
    unavailable ? 503 : 502,
    "stripe",
    `stripe: ${err.type}${err.code ? ` ${err.code}` : ""}: ${err.message}`.slice(0, 500),
    refused,
  );
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw payoutError(err);
  }
}

/** Where Stripe sends the payee back: the configured URL, else the function's origin. */
export function onboardingUrls(
  connect: StripeConnectConfig,
  payoutAccountId: string,
  origin: string,
): { return_url: string; refresh_url: string } {
  const at = (base: string | undefined, step: string) => {
    const u = new URL(base ?? `${origin}/`);
    u.searchParams.set("payout_account_id", payoutAccountId);
    u.searchParams.set("onboarding", step);
    return u.toString();
  };
  return {
    return_url: at(connect.returnUrl, "return"),
    refresh_url: at(connect.refreshUrl, "refresh"),
  };
}

/** Over 70 lines as one factory, like createStripeGateway: short verbs over one SDK client. */
export function createStripeConnectGateway(
  config: StripeConfig & { connect: StripeConnectConfig },
  opts: { fetch?: typeof fetch; now?: () => Date } = {},
): StripeConnectGateway {
  const stripe = createStripeClient(config, opts.fetch);
  const crypto = Stripe.createSubtleCryptoProvider();
  const now = opts.now ?? (() => new Date());

  async function link(account: string, ctx: { payoutAccountId: string; origin: string }) {
    const l = await call(() =>
      stripe.accountLinks.create({
        account,
        type: "account_onboarding",
        ...onboardingUrls(config.connect, ctx.payoutAccountId, ctx.origin),
      })
    );
    return { url: l.url, expiresAt: new Date(l.expires_at * 1000).toISOString() };
  }

  async function verify(raw: string, header: string, secret: string) {
    try {
      return await stripe.webhooks.constructEventAsync(
        raw,
        header,
        secret,
        300,
        crypto,
        now().getTime(),
      );
    } catch (err) {
      // The SDK parses only once the signature verified: a signed body that is not JSON.
      if (err instanceof SyntaxError) {
        throw new HttpError(400, "invalid_request", "the webhook body is not JSON");
      }
      if (!(err instanceof Stripe.errors.StripeSignatureVerificationError)) throw err;
      throw new HttpError(400, "invalid_signature", "Stripe-Signature does not verify");
    }
  }

  return {
    name: "stripe",
    settlesOnSend: true,

    async createDestination(req, ctx): Promise<Destination> {
      if (req.type !== "stripe_account") {
        throw new HttpError(400, "invalid_request", "stripe takes a connected account only");
      }
      if (req.country === "IN") {
        throw new HttpError(
          400,
          "invalid_request",
          "stripe connect payouts are not offered in India; use razorpayx",
        );
      }
      // Express through `controller` (the legacy `type: "express"` is deprecated): Stripe
      // collects the requirements and hosts the dashboard; the platform pays the fees and
      // carries the losses. Only transfers are requested: the money arrives by transfer.
      const account = await call(() =>
        stripe.accounts.create({
          controller: {
            stripe_dashboard: { type: "express" },
            fees: { payer: "application" },
            losses: { payments: "application" },
            requirement_collection: "stripe",
          },
          capabilities: { transfers: { requested: true } },
          ...(req.country ? { country: req.country } : {}),
          ...(req.email ? { email: req.email } : {}),
          metadata: {
            settle_payout_account_id: ctx.payoutAccountId,
            settle_account_id: ctx.accountId,
          },
        }, { idempotencyKey: `settle-payout-account-${ctx.payoutAccountId}` })
      );
      return {
        type: "stripe_account",
        display: `Stripe account •••${account.id.slice(-4)}`,
        last4: null,
        vpaHandle: null,
        contactId: null,
        gatewayAccountId: account.id,
        onboarding: await link(account.id, ctx),
      };
    },

    onboardingLink: link,

    async readAccount(id) {
      const observedAt = now().toISOString();
      const a = await call(() => stripe.accounts.retrieve(id));
      return { ...accountEffect(a), observed_at: observedAt };
    },

    async sendPayout(p) {
      const currency = p.currency.toLowerCase();
      const amount = toStripeAmount(p.amount, p.currency);
      if (p.keyMayHaveExpired) {
        // Stripe may prune an idempotency key after 24 h: a transfer made under it is found by
        // its transfer_group (the payout id) before anything is sent again.
        const found = await call(() =>
          stripe.transfers.list({ transfer_group: p.payoutId, limit: 10 })
        );
        const made = found.data.find((t) => t.metadata?.settle_payout_id === p.payoutId);
        if (made) return transferRecord(made);
      }
      const t = await call(() =>
        stripe.transfers.create({
          amount,
          currency,
          destination: p.gatewayAccountId,
          transfer_group: p.payoutId,
          description: "settle payout",
          metadata: { settle_payout_id: p.payoutId },
        }, { idempotencyKey: p.idempotencyKey })
      );
      return transferRecord(t);
    },

    async fetchPayout(id) {
      return transferRecord(await call(() => stripe.transfers.retrieve(id)));
    },

    async listPayouts(w) {
      const out = [];
      try {
        const list = stripe.transfers.list({ created: { gte: w.from, lte: w.to }, limit: 100 });
        for await (const t of list) out.push(listedTransfer(t));
      } catch (err) {
        throw payoutError(err);
      }
      return out;
    },

    async parseWebhook(raw, headers) {
      const header = headers.get("stripe-signature");
      if (!header) throw new HttpError(400, "invalid_signature", "missing Stripe-Signature");
      // The Connect secret only: a platform-signed event is not this endpoint's.
      const event = checkEnvelope(await verify(raw, header, config.connect.webhookSecret));
      const account = (event as { account?: unknown }).account;
      if (typeof account !== "string" || !/^acct_[A-Za-z0-9]{1,250}$/.test(account)) {
        throw new HttpError(400, "invalid_request", "a Connect event names its account");
      }
      return [connectEvent({ ...event, account }, raw)];
    },
  };
}
