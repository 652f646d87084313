// The PayPal gateway: Orders v2 with intent CAPTURE, captures settle makes (verify, the
// CHECKOUT.ORDER.APPROVED webhook, reconcile), refunds of captures, webhooks verified offline.
import { z } from "zod";
import { HttpError } from "../../http.ts";
import type { PayPalConfig } from "../../config.ts";
import {
  GatewayError,
  type OrderTerms,
  type PaymentGateway,
  type PaymentResult,
  type WebhookEvent,
} from "../types.ts";
import { checkPayPalAmount, fromPayPalValue, toPayPalValue } from "./amounts.ts";
import { PayPalApiError, PayPalClient } from "./client.ts";
import { completeDisputeEvent, paypalDisputeVerbs } from "./disputes.ts";
import {
  CertCache,
  CertUnavailable,
  checkedHeaders,
  postbackBody,
  SignatureError,
  type TransmissionHeaders,
  verifyTransmission,
} from "./signature.ts";
import {
  normalizeEvent,
  orderCaptures,
  orderResult,
  paymentRecords,
  type PpOrder,
  refundRecord,
  refundResult,
  webhookEvent,
} from "./wire.ts";

const verifyBody = z.object({
  paypal_order_id: z.string().regex(/^[A-Z0-9]{8,36}$/, "not a PayPal order id"),
}).strict();

type Terms = { gatewayOrderId: string; amount: number; currency: string };

/** A capture that cannot happen yet: the payer has not approved, or must act again. */
const NOT_YET = new Set([
  "ORDER_NOT_APPROVED",
  "PAYER_ACTION_REQUIRED",
  "INSTRUMENT_DECLINED",
  "ORDER_COMPLETION_IN_PROGRESS",
]);

const PENDING: PaymentResult = {
  kind: "pending",
  gatewayPaymentId: null,
  amount: null,
  currency: null,
};

/** The request id of an order's one capture: verify, the webhook and reconcile share it. */
export const captureRequestId = (gatewayOrderId: string) => `settle-capture-${gatewayOrderId}`;
export const orderRequestId = (orderId: string) => `settle-order-${orderId}`;

const isNotFound = (err: unknown) => err instanceof PayPalApiError && err.httpStatus === 404;

function approveUrl(o: PpOrder): string | null {
  return o.links?.find((l) => l.rel === "approve" || l.rel === "payer-action")?.href ?? null;
}

/**
 * The gateway's verbs over one client and certificate cache. Longer than 70 lines because it is
 * the object of verbs (as the other gateways' factories are); each verb is a few lines.
 */
export function createPayPalGateway(
  config: PayPalConfig,
  opts: { fetch?: typeof fetch; now?: () => Date } = {},
): PaymentGateway {
  const now = opts.now ?? (() => new Date());
  const client = new PayPalClient({
    ...config,
    fetch: opts.fetch,
    now: () => now().getTime(),
  });
  const certs = new CertCache({
    devCertUrl: config.devCertUrl,
    devCaPem: config.devCaPem,
    timeoutMs: config.timeoutMs,
    fetch: opts.fetch,
  });
  const disputes = paypalDisputeVerbs(client);
  // Approve links of orders this isolate created; another isolate reads the order once.
  const approveLinks = new Map<string, string>();

  /**
   * Captures an order for exactly its terms (the order PayPal holds must ask for them), with
   * the order's one capture request id. Already captured: the order says how. Not approved yet:
   * pending. An outage propagates (the caller decides).
   */
  async function capture(order: Terms, known?: PpOrder): Promise<PaymentResult> {
    if (known) {
      const unit = known.purchase_units?.[0]?.amount;
      const asked = unit ? fromPayPalValue(unit.value, unit.currency_code) : null;
      if (asked !== order.amount || unit?.currency_code.toUpperCase() !== order.currency) {
        return orderResult(known);
      }
    }
    try {
      return orderResult(
        await client.captureOrder(order.gatewayOrderId, captureRequestId(order.gatewayOrderId)),
      );
    } catch (err) {
      if (!(err instanceof PayPalApiError) || err.httpStatus !== 422) throw err;
      if (err.issue === "ORDER_ALREADY_CAPTURED") {
        return orderResult(await client.getOrder(order.gatewayOrderId));
      }
      if (err.issue && NOT_YET.has(err.issue)) return PENDING;
      throw err;
    }
  }

  /** PayPal's own verdict (verify-webhook-signature); an answer other than SUCCESS is a 400. */
  async function postback(rawBody: string, headers: Headers): Promise<TransmissionHeaders> {
    const h = checkedHeaders(headers, now());
    let verdict: { verification_status?: string };
    try {
      verdict = await client.verifyWebhookSignature(postbackBody(h, config.webhookId, rawBody));
    } catch (err) {
      // PayPal refusing the request itself (a body that is not JSON): not a verified delivery.
      if (err instanceof PayPalApiError && err.httpStatus === 400) {
        throw new SignatureError("paypal could not verify the delivery");
      }
      throw err;
    }
    if (verdict.verification_status !== "SUCCESS") {
      throw new SignatureError("paypal answered verification_status FAILURE");
    }
    return h;
  }

  return {
    name: "paypal",
    // A token request, then the create call.
    orderCallBudgetMs: 2 * config.timeoutMs,
    // The request id is the order's: a call whose answer was lost is safely repeated at once.
    idempotentOrders: true,

    checkAmount: checkPayPalAmount,

    async createOrder(terms: OrderTerms) {
      // The request id is the local order's: a retry returns the order the first call made.
      const value = toPayPalValue(terms.amount, terms.currency);
      const order = await client.createOrder({
        intent: "CAPTURE",
        purchase_units: [{
          reference_id: terms.orderId,
          custom_id: terms.orderId,
          amount: { currency_code: terms.currency, value },
        }],
      }, orderRequestId(terms.orderId));
      const link = approveUrl(order);
      if (link) {
        if (approveLinks.size > 1000) approveLinks.clear();
        approveLinks.set(order.id, link);
      }
      return { gatewayOrderId: order.id };
    },

    async checkout(order) {
      const approve = approveLinks.get(order.gatewayOrderId) ??
        approveUrl(await client.getOrder(order.gatewayOrderId));
      return { order_id: order.gatewayOrderId, approve_url: approve, client_id: config.clientId };
    },

    verifyReference(body) {
      return verifyBody.parse(body).paypal_order_id;
    },

    async verifyCheckout(order, body) {
      verifyBody.parse(body);
      // The id is settle's own (found in the database for this user): capture it.
      try {
        return await capture(order);
      } catch (err) {
        // Unreachable: nothing is known; the webhook or reconcile finishes the order.
        if (err instanceof GatewayError && err.status === 503) return PENDING;
        throw err;
      }
    },

    async parseWebhook(rawBody: string, headers: Headers): Promise<WebhookEvent[]> {
      let transmissionId: string;
      try {
        ({ transmissionId } = config.verify === "postback"
          ? await postback(rawBody, headers)
          : await verifyTransmission(rawBody, headers, config.webhookId, certs, now()));
      } catch (err) {
        if (err instanceof SignatureError) {
          throw new HttpError(400, "invalid_signature", err.message);
        }
        if (err instanceof CertUnavailable) {
          throw new GatewayError(503, "paypal", err.message);
        }
        throw err;
      }
      return [
        webhookEvent(
          await completeDisputeEvent(
            normalizeEvent(rawBody, transmissionId),
            disputes.fetchDispute,
          ),
        ),
      ];
    },

    async fetchPayment(order) {
      const o = await client.getOrder(order.gatewayOrderId);
      // Approved but never captured (verify and the webhook both missed it): capture it now.
      if (o.status === "APPROVED" && orderCaptures(o).length === 0) return await capture(order, o);
      return orderResult(o);
    },

    checkRefundAmount: checkPayPalAmount,

    async refund(req) {
      // Only stored terms in the body: a retry under the same request id must be identical.
      return refundResult(
        await client.refundCapture(req.gatewayPaymentId, {
          amount: { currency_code: req.currency, value: toPayPalValue(req.amount, req.currency) },
          custom_id: req.refundId,
        }, req.idempotencyKey),
      );
    },

    async fetchRefund(gatewayRefundId) {
      return refundResult(await client.getRefund(gatewayRefundId));
    },

    // PayPal has no list of orders: the audit reads settle's own orders and refunds back.
    async orderPaymentRecords(gatewayOrderId) {
      try {
        return paymentRecords(await client.getOrder(gatewayOrderId), null);
      } catch (err) {
        if (isNotFound(err)) return [];
        throw err;
      }
    },

    ...disputes,

    async refundRecord(gatewayRefundId) {
      try {
        return refundRecord(await client.getRefund(gatewayRefundId));
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    },
  };
}
