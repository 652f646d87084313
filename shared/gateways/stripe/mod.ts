// The Stripe gateway on the official SDK: intents, customers, setup intents, webhooks.
import Stripe from "stripe";
import { z } from "zod";
import type { StripeConfig } from "../../config.ts";
import { HttpError } from "../../http.ts";
import {
  GatewayError,
  type GatewayPaymentRecord,
  type GatewayRefundRecord,
  type ListWindow,
  type NormalizedEvent,
  type OrderTerms,
  type PaymentGateway,
  type PaymentResult,
  type RefundResult,
  type RefundStatus,
} from "../types.ts";
import { fromStripeAmount, toStripeAmount } from "./amounts.ts";

export interface CardDetails {
  gatewayPaymentMethodId: string;
  customerId: string | null;
  brand: string | null;
  last4: string | null;
  expMonth: number | null;
  expYear: number | null;
}

/** Stripe's extra verbs: customers, saved cards and setup intents. */
export interface StripeGateway extends PaymentGateway {
  readonly publishableKey: string;
  createCustomer(accountId: string): Promise<string>;
  createSetupIntent(
    customerId: string,
    accountId: string,
  ): Promise<{ id: string; clientSecret: string }>;
  setDefaultPaymentMethod(customerId: string, paymentMethodId: string): Promise<void>;
  detachPaymentMethod(paymentMethodId: string): Promise<void>;
  fetchPaymentMethod(paymentMethodId: string): Promise<CardDetails>;
}

const verifyBody = z.object({
  payment_intent_id: z.string().regex(/^pi_[A-Za-z0-9]{8,64}$/, "not a Stripe PaymentIntent id"),
}).strict();

function mapError(err: unknown): unknown {
  if (err instanceof Stripe.errors.StripeError) {
    const unavailable = err instanceof Stripe.errors.StripeConnectionError ||
      (err.statusCode !== undefined && err.statusCode >= 500) ||
      err instanceof Stripe.errors.StripeRateLimitError;
    return new GatewayError(
      unavailable ? 503 : 502,
      "stripe",
      `stripe: ${err.type}${err.code ? ` ${err.code}` : ""}: ${err.message}`,
      err.raw,
    );
  }
  return err;
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw mapError(err);
  }
}

/** Like call, but null when Stripe has no such object (resource_missing). */
async function callOrMissing<T>(fn: () => Promise<T>): Promise<T | null> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Stripe.errors.StripeError && err.code === "resource_missing") return null;
    throw mapError(err);
  }
}

const idOf = (x: string | { id: string } | null | undefined) =>
  typeof x === "string" ? x : x?.id ?? null;

/** An intent as the audit sees it: only `succeeded` is captured money (amount_received). */
function paymentRecord(pi: Stripe.PaymentIntent): GatewayPaymentRecord {
  const currency = pi.currency.toUpperCase();
  const captured = pi.status === "succeeded";
  return {
    gatewayPaymentId: idOf(pi.latest_charge),
    gatewayOrderId: pi.id,
    settleOrderId: pi.metadata?.settle_order_id ?? null,
    captured,
    amount: fromStripeAmount(captured ? pi.amount_received : pi.amount, currency),
    currency,
    status: pi.status,
    created: pi.created,
  };
}

function refundRecord(r: Stripe.Refund): GatewayRefundRecord {
  const currency = r.currency.toUpperCase();
  return {
    gatewayRefundId: r.id,
    gatewayPaymentId: idOf(r.charge),
    gatewayOrderId: idOf(r.payment_intent),
    settleRefundId: r.metadata?.settle_refund_id ?? null,
    amount: fromStripeAmount(r.amount, currency),
    currency,
    status: refundStatus(r.status),
    created: r.created,
  };
}

/** Every object of a list in the window, through the SDK's auto-pagination (newest first). */
async function listAll<T, R>(
  list: (p: { created: { gte: number; lte: number }; limit: number }) => AsyncIterable<T>,
  w: ListWindow,
  map: (x: T) => R,
): Promise<R[]> {
  const out: R[] = [];
  try {
    for await (const x of list({ created: { gte: w.from, lte: w.to }, limit: 100 })) {
      out.push(map(x));
    }
  } catch (err) {
    throw mapError(err);
  }
  return out;
}

function card(pm: Stripe.PaymentMethod): CardDetails {
  return {
    gatewayPaymentMethodId: pm.id,
    customerId: typeof pm.customer === "string" ? pm.customer : pm.customer?.id ?? null,
    brand: pm.card?.brand ?? null,
    last4: pm.card?.last4 ?? null,
    expMonth: pm.card?.exp_month ?? null,
    expYear: pm.card?.exp_year ?? null,
  };
}

function intentResult(pi: Stripe.PaymentIntent): PaymentResult {
  const currency = pi.currency.toUpperCase();
  const paymentId = typeof pi.latest_charge === "string"
    ? pi.latest_charge
    : pi.latest_charge?.id ?? pi.id;
  switch (pi.status) {
    case "succeeded":
      return {
        kind: "captured",
        gatewayPaymentId: paymentId,
        amount: fromStripeAmount(pi.amount_received, currency),
        currency,
      };
    case "requires_capture":
      return { kind: "authorized", gatewayPaymentId: paymentId, amount: null, currency };
    case "canceled":
      return {
        kind: "failed",
        gatewayPaymentId: null,
        amount: null,
        currency,
        failureCode: "canceled",
        failureReason: pi.cancellation_reason ?? "canceled",
      };
    default:
      return { kind: "pending", gatewayPaymentId: null, amount: null, currency };
  }
}

function refundStatus(status: string | null): RefundStatus {
  if (status === "succeeded") return "processed";
  if (status === "failed" || status === "canceled") return "failed";
  return "pending";
}

function refundResult(r: Stripe.Refund): RefundResult {
  const status = refundStatus(r.status);
  return {
    gatewayRefundId: r.id,
    status,
    amount: fromStripeAmount(r.amount, r.currency.toUpperCase()),
    failureReason: status === "failed" ? r.failure_reason ?? r.status ?? "failed" : null,
  };
}

/** A refund object from refund.* / charge.refund.updated events as a settle refund effect. */
function refundEffect(r: Stripe.Refund): Record<string, unknown> {
  const result = refundResult(r);
  const id = (x: string | { id: string } | null | undefined) => typeof x === "string" ? x : x?.id;
  return {
    action: "refund",
    gateway_refund_id: r.id,
    gateway_payment_id: id(r.charge) ?? null,
    gateway_order_id: id(r.payment_intent) ?? null,
    amount: result.amount,
    currency: r.currency.toUpperCase(),
    status: result.status,
    settle_refund_id: r.metadata?.settle_refund_id ?? null,
    failure_reason: result.failureReason ?? null,
  };
}

/** Everything settle needs from a verified event, or kind null for events it only stores. */
export function normalizeEvent(event: Stripe.Event, raw: string): NormalizedEvent {
  const base = {
    gateway: "stripe" as const,
    eventId: event.id,
    type: event.type,
    kind: null,
    gatewayOrderId: null,
    gatewayPaymentId: null,
    amount: null,
    currency: null,
    occurredAt: new Date(event.created * 1000),
    failureCode: null,
    failureReason: null,
    raw,
    effect: null,
    fetchPaymentMethod: null,
  };
  switch (event.type) {
    case "payment_intent.succeeded":
    case "payment_intent.canceled": {
      const r = intentResult(event.data.object);
      return {
        ...base,
        kind: r.kind === "pending" ? null : r.kind,
        gatewayOrderId: event.data.object.id,
        gatewayPaymentId: r.gatewayPaymentId,
        amount: r.amount,
        currency: r.currency,
        failureCode: r.failureCode ?? null,
        failureReason: r.failureReason ?? null,
      };
    }
    case "payment_intent.payment_failed": {
      const pi = event.data.object;
      return {
        ...base,
        kind: "failed",
        gatewayOrderId: pi.id,
        currency: pi.currency.toUpperCase(),
        failureCode: pi.last_payment_error?.code ?? "payment_failed",
        failureReason: pi.last_payment_error?.message ?? "payment failed",
      };
    }
    case "refund.created":
    case "refund.updated":
    case "refund.failed":
    case "charge.refund.updated": {
      const effect = refundEffect(event.data.object);
      return {
        ...base,
        gatewayOrderId: effect.gateway_order_id as string | null,
        gatewayPaymentId: effect.gateway_payment_id as string | null,
        amount: effect.amount as number,
        currency: effect.currency as string,
        effect,
      };
    }
    case "payment_method.attached": {
      const c = card(event.data.object);
      return { ...base, effect: { action: "attached", ...effectCard(c) } };
    }
    case "payment_method.detached":
      return {
        ...base,
        effect: { action: "detached", payment_method: event.data.object.id },
      };
    case "setup_intent.succeeded": {
      const si = event.data.object;
      const pm = typeof si.payment_method === "string" ? si.payment_method : si.payment_method?.id;
      return { ...base, fetchPaymentMethod: pm ?? null };
    }
    case "customer.updated": {
      const d = event.data.object.invoice_settings?.default_payment_method;
      const pm = typeof d === "string" ? d : d?.id;
      return pm
        ? {
          ...base,
          effect: { action: "default", customer: event.data.object.id, payment_method: pm },
        }
        : base;
    }
    default:
      return base;
  }
}

export function effectCard(c: CardDetails): Record<string, unknown> {
  return {
    customer: c.customerId,
    payment_method: c.gatewayPaymentMethodId,
    brand: c.brand,
    last4: c.last4,
    exp_month: c.expMonth,
    exp_year: c.expYear,
  };
}

export function createStripeGateway(
  config: StripeConfig,
  opts: { now?: () => Date; fetch?: typeof fetch } = {},
): StripeGateway {
  const api = new URL(config.apiUrl);
  const stripe = new Stripe(config.secretKey, {
    apiVersion: Stripe.API_VERSION as Stripe.LatestApiVersion,
    host: api.hostname,
    port: api.port ? Number(api.port) : (api.protocol === "https:" ? 443 : 80),
    protocol: api.protocol === "http:" ? "http" : "https",
    httpClient: Stripe.createFetchHttpClient(opts.fetch),
    maxNetworkRetries: 1,
    timeout: config.timeoutMs,
    telemetry: false,
  });
  const crypto = Stripe.createSubtleCryptoProvider();
  const now = opts.now ?? (() => new Date());
  // A PaymentIntent's client_secret never changes: the one createOrder received is what checkout
  // returns, without reading the intent back (one gateway round trip per create-order fewer).
  // Bounded; a miss (a replayed order, another isolate) reads the intent as before.
  const secrets = new Map<string, string>();
  const remember = (id: string, secret: string | null) => {
    if (!secret) return;
    if (secrets.size >= 1024) secrets.delete(secrets.keys().next().value!);
    secrets.set(id, secret);
  };

  return {
    name: "stripe",
    publishableKey: config.publishableKey,

    checkAmount(amount, currency) {
      toStripeAmount(amount, currency);
    },

    async createOrder(terms: OrderTerms) {
      // The key derives from our order id: a retry gets the same PaymentIntent back.
      const pi = await call(() =>
        stripe.paymentIntents.create({
          amount: toStripeAmount(terms.amount, terms.currency),
          currency: terms.currency.toLowerCase(),
          automatic_payment_methods: { enabled: true },
          ...(terms.customerId ? { customer: terms.customerId } : {}),
          metadata: { settle_order_id: terms.orderId, account_id: terms.accountId },
        }, { idempotencyKey: `settle-order-${terms.orderId}` })
      );
      remember(pi.id, pi.client_secret);
      return { gatewayOrderId: pi.id };
    },

    async checkout(order) {
      const known = secrets.get(order.gatewayOrderId);
      if (known) {
        return {
          publishable_key: config.publishableKey,
          payment_intent_id: order.gatewayOrderId,
          client_secret: known,
        };
      }
      const pi = await call(() => stripe.paymentIntents.retrieve(order.gatewayOrderId));
      remember(pi.id, pi.client_secret);
      return {
        publishable_key: config.publishableKey,
        payment_intent_id: pi.id,
        client_secret: pi.client_secret,
      };
    },

    verifyReference(body) {
      return verifyBody.parse(body).payment_intent_id;
    },

    async verifyCheckout(_order, body) {
      const { payment_intent_id } = verifyBody.parse(body);
      // Stripe's word is the intent itself, read from the API, never the client's claim.
      return intentResult(await call(() => stripe.paymentIntents.retrieve(payment_intent_id)));
    },

    async parseWebhook(rawBody, headers) {
      const header = headers.get("stripe-signature");
      if (!header) throw new HttpError(400, "invalid_signature", "missing Stripe-Signature");
      let event: Stripe.Event | undefined;
      for (const secret of config.webhookSecrets) {
        try {
          event = await stripe.webhooks.constructEventAsync(
            rawBody,
            header,
            secret,
            300,
            crypto,
            now().getTime(),
          );
          break;
        } catch (err) {
          if (!(err instanceof Stripe.errors.StripeSignatureVerificationError)) throw err;
        }
      }
      if (!event) {
        throw new HttpError(400, "invalid_signature", "Stripe-Signature does not verify");
      }
      return [normalizeEvent(event, rawBody)];
    },

    async fetchPayment(order) {
      return intentResult(await call(() => stripe.paymentIntents.retrieve(order.gatewayOrderId)));
    },

    checkRefundAmount(amount, currency) {
      toStripeAmount(amount, currency);
    },

    async refund(req) {
      return refundResult(
        await call(() =>
          stripe.refunds.create({
            payment_intent: req.gatewayOrderId,
            amount: toStripeAmount(req.amount, req.currency),
            reason: "requested_by_customer",
            metadata: { settle_refund_id: req.refundId, settle_order_id: req.orderId },
          }, { idempotencyKey: req.idempotencyKey })
        ),
      );
    },

    async fetchRefund(gatewayRefundId) {
      return refundResult(await call(() => stripe.refunds.retrieve(gatewayRefundId)));
    },

    // The gateway audit's list verbs (PaymentIntents and refunds by created[gte/lte]).
    listPayments(w) {
      return listAll((p) => stripe.paymentIntents.list(p), w, paymentRecord);
    },

    listRefunds(w) {
      return listAll((p) => stripe.refunds.list(p), w, refundRecord);
    },

    async orderPaymentRecords(gatewayOrderId) {
      const pi = await callOrMissing(() => stripe.paymentIntents.retrieve(gatewayOrderId));
      return pi ? [paymentRecord(pi)] : [];
    },

    async refundRecord(gatewayRefundId) {
      const r = await callOrMissing(() => stripe.refunds.retrieve(gatewayRefundId));
      return r ? refundRecord(r) : null;
    },

    async createCustomer(accountId) {
      const c = await call(() =>
        stripe.customers.create(
          { metadata: { settle_account_id: accountId } },
          { idempotencyKey: `settle-customer-${accountId}` },
        )
      );
      return c.id;
    },

    async createSetupIntent(customerId, accountId) {
      const si = await call(() =>
        stripe.setupIntents.create({
          customer: customerId,
          usage: "off_session",
          automatic_payment_methods: { enabled: true },
          metadata: { settle_account_id: accountId },
        })
      );
      return { id: si.id, clientSecret: si.client_secret! };
    },

    async setDefaultPaymentMethod(customerId, paymentMethodId) {
      await call(() =>
        stripe.customers.update(customerId, {
          invoice_settings: { default_payment_method: paymentMethodId },
        })
      );
    },

    async detachPaymentMethod(paymentMethodId) {
      await call(() => stripe.paymentMethods.detach(paymentMethodId));
    },

    async fetchPaymentMethod(paymentMethodId) {
      return card(await call(() => stripe.paymentMethods.retrieve(paymentMethodId)));
    },
  };
}
