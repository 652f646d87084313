// The Razorpay simulator's route tables: every /v1 endpoint and /_sim/razorpay control, by method
// and path pattern. A new resource adds its lines here (handlers live in the resource's file).
import { commonControls, route, Router } from "../common/mod.ts";
import { simPay } from "./checkout.ts";
import {
  addFaults,
  clearFaults,
  getConfig,
  listDeliveries,
  listFaults,
  setConfig,
} from "./control.ts";
import {
  acceptDispute,
  getDispute,
  listDisputes,
  simAdvanceDispute,
  simOpenDispute,
} from "./disputes.ts";
import { simListEvents } from "./events.ts";
import { createOrder, getOrder, listOrders, orderPayments, patchOrder } from "./orders.ts";
import { capturePayment, getPayment, listPayments, simFailLate } from "./payments.ts";
import {
  createRefund,
  getPaymentRefund,
  getRefund,
  listPaymentRefunds,
  listRefunds,
  simAutoRefund,
  simFailRefund,
} from "./refunds.ts";
import type { Handler } from "./state.ts";

export const API_ROUTES = new Router<Handler>([
  route("POST", "/v1/orders", createOrder),
  route("GET", "/v1/orders", listOrders),
  route("GET", "/v1/orders/:id", getOrder),
  route("PATCH", "/v1/orders/:id", patchOrder),
  route("GET", "/v1/orders/:id/payments", orderPayments),

  route("GET", "/v1/payments", listPayments),
  route("GET", "/v1/payments/:id", getPayment),
  route("POST", "/v1/payments/:id/capture", capturePayment),
  route("POST", "/v1/payments/:id/refund", createRefund),
  route("GET", "/v1/payments/:id/refunds", listPaymentRefunds),
  route("GET", "/v1/payments/:id/refunds/:refund", getPaymentRefund),

  route("GET", "/v1/refunds", listRefunds),
  route("GET", "/v1/refunds/:id", getRefund),

  route("GET", "/v1/disputes", listDisputes),
  route("GET", "/v1/disputes/:id", getDispute),
  route("POST", "/v1/disputes/:id/accept", acceptDispute),
]);

export const CONTROL_ROUTES = new Router<Handler>([
  route("POST", "/_sim/razorpay/orders/:id/pay", simPay),
  route("POST", "/_sim/razorpay/payments/:id/fail-late", simFailLate),
  route("POST", "/_sim/razorpay/payments/:id/auto-refund", simAutoRefund),
  route("POST", "/_sim/razorpay/refunds/:id/fail", simFailRefund),
  route("POST", "/_sim/razorpay/payments/:id/dispute", simOpenDispute),
  route("POST", "/_sim/razorpay/disputes/:id/advance", simAdvanceDispute),
  ...commonControls<Handler>("/_sim/razorpay", {
    events: simListEvents,
    deliveries: listDeliveries,
    listFaults,
    addFaults,
    clearFaults,
    getConfig,
    setConfig,
  }),
]);
