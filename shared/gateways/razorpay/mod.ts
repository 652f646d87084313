// The Razorpay gateway: orders, checkout signatures, webhooks and payment reads.
import { z } from "zod";
import { HttpError } from "../../http.ts";
import { sha256Hex } from "../../crypto.ts";
import { CURRENCY_EXPONENTS, currencyExponent } from "../../money.ts";
import type { RazorpayConfig } from "../../config.ts";
import {
  GatewayError,
  type GatewayOrder,
  type OrderTerms,
  type PaymentGateway,
  type PaymentResult,
  type WebhookEvent,
} from "../types.ts";
import { isNoSuchId, RazorpayClient } from "./client.ts";
import { verifyPaymentSignature, verifyWebhookSignature } from "./signature.ts";
import {
  disputeReadEffect,
  normalizeWebhook,
  paymentRecord,
  paymentResult,
  refundRecord,
  refundStatus,
  resultFromPayments,
  type RzpCaptureSettings,
  type RzpPayment,
  type RzpRefund,
} from "./wire.ts";

const verifyBody = z.object({
  razorpay_order_id: z.string().regex(/^order_[A-Za-z0-9]{14}$/, "not a Razorpay order id"),
  razorpay_payment_id: z.string().regex(/^pay_[A-Za-z0-9]{14}$/, "not a Razorpay payment id"),
  razorpay_signature: z.string().regex(/^[0-9a-f]{64}$/, "not a hex HMAC-SHA256 signature"),
}).strict();

function invalidSignature(message: string): HttpError {
  return new HttpError(400, "invalid_signature", message);
}

/**
 * Every order asks Razorpay to capture its payments itself (A2): automatically for as long as
 * an authorization may still be captured at all (7200 minutes, the maximum), so a late
 * authorization is captured too rather than refunded. settle still captures whatever it finds
 * only authorized (verify, reconcile), and credits only what Razorpay reports captured.
 */
export const CAPTURE_SETTINGS: RzpCaptureSettings = {
  capture: "automatic",
  capture_options: {
    automatic_expiry_period: 7200,
    manual_expiry_period: 7200,
    refund_speed: "normal",
  },
};

type Terms = { gatewayOrderId: string; amount: number; currency: string };

/**
 * A payment's state, after capturing it if it is only authorized for exactly the order's
 * terms. A capture that fails (lost answer, a concurrent capture, the gateway down) is followed
 * by one read; if that fails too the payment is still what we knew: authorized.
 */
async function captureIfAuthorized(
  client: RazorpayClient,
  p: RzpPayment,
  order: Terms,
): Promise<PaymentResult> {
  const known = paymentResult(p);
  // A payment for other terms is never captured: it stays authorized and is reported as such
  // (apply_payment answers mismatch), and Razorpay gives it back when the authorization expires.
  if (
    known.kind !== "authorized" || p.amount !== order.amount ||
    p.currency.toUpperCase() !== order.currency
  ) return known;
  try {
    return paymentResult(
      await client.capture(p.id, { amount: p.amount, currency: order.currency }),
    );
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    console.error(JSON.stringify({
      level: "warn",
      msg: "razorpay capture failed",
      payment_id: p.id,
      error: err.message,
    }));
  }
  try {
    return paymentResult(await client.fetchPayment(p.id));
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    return known;
  }
}

/** Over 70 lines as one factory: the object of verbs over one client; each verb is short. */
export function createRazorpayGateway(
  config: RazorpayConfig,
  fetchImpl?: typeof fetch,
): PaymentGateway {
  const client = new RazorpayClient({ ...config, fetch: fetchImpl });

  return {
    name: "razorpay",
    // A retry looks the order up by receipt, then creates it: two requests.
    orderCallBudgetMs: 2 * config.timeoutMs,

    checkAmount(amount, currency) {
      // Razorpay's API pages require three-decimal amounts to end in 0 (GATEWAY_FACTS C).
      if (CURRENCY_EXPONENTS[currency] === 3 && amount % 10 !== 0) {
        throw new HttpError(
          400,
          "invalid_request",
          `razorpay takes ${currency} amounts in multiples of 10`,
        );
      }
    },

    async createOrder(terms: OrderTerms): Promise<GatewayOrder> {
      // The receipt is our order id: a retry after an unclear failure finds the order the
      // earlier attempt may have created instead of making a second one.
      if (terms.attempts > 0) {
        const existing = (await client.ordersByReceipt(terms.orderId)).find((o) =>
          o.receipt === terms.orderId && o.amount === terms.amount &&
          o.currency.toUpperCase() === terms.currency
        );
        if (existing) return { gatewayOrderId: existing.id };
      }
      const order = await client.createOrder({
        amount: terms.amount,
        currency: terms.currency,
        receipt: terms.orderId,
        notes: { settle_order_id: terms.orderId, account_id: terms.accountId },
        payment: CAPTURE_SETTINGS,
      });
      return { gatewayOrderId: order.id };
    },

    checkout(order) {
      return {
        key_id: config.keyId,
        order_id: order.gatewayOrderId,
        amount: order.amount,
        currency: order.currency,
      };
    },

    verifyReference(body) {
      // The whole body is checked before anything is looked up with it.
      return verifyBody.parse(body).razorpay_order_id;
    },

    async verifyCheckout(order, body) {
      const input = verifyBody.parse(body);
      // The order id in the signed message is ours (from the database), never the client's.
      const ok = await verifyPaymentSignature({
        orderId: order.gatewayOrderId,
        paymentId: input.razorpay_payment_id,
        signature: input.razorpay_signature,
        keySecret: config.keySecret,
      });
      if (!ok) throw invalidSignature("razorpay_signature does not match this order and payment");
      // The signature proves an authorization, not a capture: ask Razorpay what happened.
      let payment: RzpPayment;
      try {
        payment = await client.fetchPayment(input.razorpay_payment_id);
      } catch (err) {
        if (!(err instanceof GatewayError) || err.status !== 503) throw err;
        // Unreachable: the order is authorized; a retry, the webhook or reconcile finishes it.
        return {
          kind: "authorized",
          gatewayPaymentId: input.razorpay_payment_id,
          amount: null,
          currency: null,
        };
      }
      if (payment.order_id !== order.gatewayOrderId) {
        throw new HttpError(409, "payment_mismatch", "the payment belongs to another order");
      }
      return await captureIfAuthorized(client, payment, order);
    },

    async parseWebhook(rawBody: string, headers: Headers): Promise<WebhookEvent[]> {
      const signature = headers.get("x-razorpay-signature");
      if (!signature) throw invalidSignature("missing X-Razorpay-Signature");
      if (!(await verifyWebhookSignature(rawBody, signature, config.webhookSecrets))) {
        throw invalidSignature("X-Razorpay-Signature does not match the body");
      }
      // Razorpay sends a unique x-razorpay-event-id; without one, the body itself is the identity.
      const header = headers.get("x-razorpay-event-id");
      const eventId = header && header.length <= 255 ? header : `body:${await sha256Hex(rawBody)}`;
      // Every Razorpay event is a payment event: its effects carry what they apply.
      return [{ route: "payment", event: normalizeWebhook(rawBody, eventId) }];
    },

    async fetchPayment(order) {
      const payments = await client.orderPayments(order.gatewayOrderId);
      const result = resultFromPayments(payments);
      if (result.kind !== "authorized") return result;
      // Of several authorizations, the one for this order's terms is the one to capture.
      const forTerms =
        payments.find((p) =>
          paymentResult(p).kind === "authorized" && p.amount === order.amount &&
          p.currency.toUpperCase() === order.currency
        ) ?? payments.find((p) => p.id === result.gatewayPaymentId)!;
      return await captureIfAuthorized(client, forTerms, order);
    },

    checkRefundAmount(amount, currency) {
      // Razorpay's minimum refund is one unit of the currency (INR 1.00, GATEWAY_FACTS A5).
      const minimum = 10 ** currencyExponent(currency);
      if (amount < minimum) {
        throw new HttpError(
          400,
          "invalid_request",
          `razorpay refunds at least ${minimum} minor units of ${currency}`,
        );
      }
      this.checkAmount(amount, currency);
    },

    async refund(req) {
      // The body must be identical on a retry under the same key: build it from stored terms only.
      return refundResult(
        await client.refund(req.gatewayPaymentId, {
          amount: req.amount,
          notes: { settle_refund_id: req.refundId, settle_order_id: req.orderId },
        }, req.idempotencyKey),
      );
    },

    async fetchRefund(gatewayRefundId) {
      return refundResult(await client.fetchRefund(gatewayRefundId));
    },

    // The gateway audit's list verbs (GET /v1/payments and /v1/refunds by from/to, all pages).
    async listPayments(w) {
      return (await client.listAll<RzpPayment>("/v1/payments", w.from, w.to)).map(paymentRecord);
    },

    async listRefunds(w) {
      return (await client.listAll<RzpRefund>("/v1/refunds", w.from, w.to)).map(refundRecord);
    },

    async orderPaymentRecords(gatewayOrderId) {
      try {
        return (await client.orderPayments(gatewayOrderId)).map(paymentRecord);
      } catch (err) {
        if (isNoSuchId(err)) return [];
        throw err;
      }
    },

    async refundRecord(gatewayRefundId) {
      try {
        return refundRecord(await client.fetchRefund(gatewayRefundId));
      } catch (err) {
        if (isNoSuchId(err)) return null;
        throw err;
      }
    },

    // Disputes for reconcile and the audit: read, then mapped as their webhooks are.
    async listDisputes(w) {
      const readAt = Math.floor(Date.now() / 1000);
      return (await client.listDisputes(w.from, w.to)).flatMap((d) => {
        const effect = disputeReadEffect(d, readAt);
        return effect ? [effect] : [];
      });
    },

    async fetchDispute(gatewayDisputeId) {
      try {
        return disputeReadEffect(
          await client.fetchDispute(gatewayDisputeId),
          Math.floor(Date.now() / 1000),
        );
      } catch (err) {
        if (isNoSuchId(err)) return null;
        throw err;
      }
    },
  };
}

function refundResult(r: RzpRefund) {
  const status = refundStatus(r.status);
  return {
    gatewayRefundId: r.id,
    status,
    amount: r.amount,
    failureReason: status === "failed" ? "refund failed at razorpay" : null,
  };
}
