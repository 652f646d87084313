// The PayPal simulator's route tables: the API (token, Orders v2, Payments v2, certificates) and
// the /_sim/paypal controls. A new resource adds its lines here (handlers live in its file).
import { commonControls, route, Router } from "../common/mod.ts";
import { getCapture, simReverseCapture, simSettleCapture } from "./captures.ts";
import {
  addFaults,
  clearFaults,
  getConfig,
  listDeliveries,
  listFaults,
  setConfig,
} from "./control.ts";
import { getDispute, listDisputes, simAdvanceDispute, simOpenDispute } from "./disputes.ts";
import { simListEvents } from "./events.ts";
import { verifyWebhookSignature } from "./notifications.ts";
import { issueToken } from "./oauth.ts";
import { captureOrder, createOrder, getOrder, simApprove } from "./orders.ts";
import { getRefund, refundCapture, simSettleRefund } from "./refunds.ts";
import type { Handler } from "./state.ts";

export const API_ROUTES = new Router<Handler>([
  route("POST", "/v1/oauth2/token", issueToken),
  route("POST", "/v2/checkout/orders", createOrder),
  route("GET", "/v2/checkout/orders/:id", getOrder),
  route("POST", "/v2/checkout/orders/:id/capture", captureOrder),
  route("GET", "/v2/payments/captures/:id", getCapture),
  route("POST", "/v2/payments/captures/:id/refund", refundCapture),
  route("GET", "/v2/payments/refunds/:id", getRefund),
  route("POST", "/v1/notifications/verify-webhook-signature", verifyWebhookSignature),
  route("GET", "/v1/customer/disputes", listDisputes),
  route("GET", "/v1/customer/disputes/:id", getDispute),
]);

export const CONTROL_ROUTES = new Router<Handler>([
  route("POST", "/_sim/paypal/orders/:id/approve", simApprove),
  route("POST", "/_sim/paypal/captures/:id/settle", simSettleCapture),
  route("POST", "/_sim/paypal/captures/:id/reverse", simReverseCapture),
  route("POST", "/_sim/paypal/refunds/:id/settle", simSettleRefund),
  route("POST", "/_sim/paypal/captures/:id/dispute", simOpenDispute),
  route("POST", "/_sim/paypal/disputes/:id/advance", simAdvanceDispute),
  ...commonControls<Handler>("/_sim/paypal", {
    events: simListEvents,
    deliveries: listDeliveries,
    listFaults,
    addFaults,
    clearFaults,
    getConfig,
    setConfig,
  }),
]);
