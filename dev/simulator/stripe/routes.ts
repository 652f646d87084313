// The Stripe simulator's route tables: every /v1 endpoint and /_sim/stripe control, by method and
// path pattern. A new resource adds its lines here (handlers live in the resource's file).
import { commonControls, route, Router } from "../common/mod.ts";
import {
  createAccount,
  createAccountLink,
  listAccounts,
  retrieveAccount,
  simDeauthorize,
  simOnboard,
} from "./accounts.ts";
import {
  addFaults,
  clearFaults,
  getConfig,
  listDeliveries,
  listFaults,
  listRequests,
  setConfig,
  withCtx,
} from "./control.ts";
import { listCharges, retrieveCharge } from "./charges.ts";
import {
  createCustomer,
  listCustomerPaymentMethods,
  listCustomers,
  retrieveCustomer,
  retrieveCustomerPaymentMethod,
  updateCustomer,
} from "./customers.ts";
import {
  closeDispute,
  listDisputes,
  retrieveDispute,
  simAdvanceDispute,
  simOpenDispute,
} from "./disputes.ts";
import { listEvents, retrieveEvent, simListEvents, simResendEvent } from "./events.ts";
import {
  cancelPaymentIntent,
  capturePaymentIntent,
  confirmPaymentIntent,
  createPaymentIntent,
  listPaymentIntents,
  retrievePaymentIntent,
  simConfirmPayment,
  updatePaymentIntent,
} from "./payment_intents.ts";
import {
  attachPaymentMethod,
  detachPaymentMethod,
  listPaymentMethods,
  retrievePaymentMethod,
  updatePaymentMethod,
} from "./payment_methods.ts";
import { createRefund, listRefunds, retrieveRefund, simFailRefund } from "./refunds.ts";
import {
  cancelSetupIntent,
  confirmSetupIntent,
  createSetupIntent,
  listSetupIntents,
  retrieveSetupIntent,
  simConfirmSetup,
} from "./setup_intents.ts";
import type { ApiHandler, ControlHandler } from "./state.ts";
import {
  createReversal,
  createTransfer,
  listReversals,
  listTransfers,
  retrieveReversal,
  retrieveTransfer,
  simReverseTransfer,
} from "./transfers.ts";

export const API_ROUTES = new Router<ApiHandler>([
  route("POST", "/v1/customers", createCustomer),
  route("GET", "/v1/customers", listCustomers),
  route("GET", "/v1/customers/:id", retrieveCustomer),
  route("POST", "/v1/customers/:id", updateCustomer),
  route("GET", "/v1/customers/:id/payment_methods", listCustomerPaymentMethods),
  route("GET", "/v1/customers/:id/payment_methods/:pm", retrieveCustomerPaymentMethod),

  route("POST", "/v1/payment_intents", createPaymentIntent),
  route("GET", "/v1/payment_intents", listPaymentIntents),
  route("GET", "/v1/payment_intents/:id", retrievePaymentIntent),
  route("POST", "/v1/payment_intents/:id", updatePaymentIntent),
  route("POST", "/v1/payment_intents/:id/confirm", confirmPaymentIntent),
  route("POST", "/v1/payment_intents/:id/cancel", cancelPaymentIntent),
  route("POST", "/v1/payment_intents/:id/capture", capturePaymentIntent),

  route("GET", "/v1/payment_methods", listPaymentMethods),
  route("GET", "/v1/payment_methods/:id", retrievePaymentMethod),
  route("POST", "/v1/payment_methods/:id", updatePaymentMethod),
  route("POST", "/v1/payment_methods/:id/attach", attachPaymentMethod),
  route("POST", "/v1/payment_methods/:id/detach", detachPaymentMethod),

  route("POST", "/v1/setup_intents", createSetupIntent),
  route("GET", "/v1/setup_intents", listSetupIntents),
  route("GET", "/v1/setup_intents/:id", retrieveSetupIntent),
  route("POST", "/v1/setup_intents/:id/confirm", confirmSetupIntent),
  route("POST", "/v1/setup_intents/:id/cancel", cancelSetupIntent),

  route("POST", "/v1/refunds", createRefund),
  route("GET", "/v1/refunds", listRefunds),
  route("GET", "/v1/refunds/:id", retrieveRefund),

  route("GET", "/v1/charges", listCharges),
  route("GET", "/v1/charges/:id", retrieveCharge),

  route("GET", "/v1/disputes", listDisputes),
  route("GET", "/v1/disputes/:id", retrieveDispute),
  route("POST", "/v1/disputes/:id/close", closeDispute),
  route("POST", "/v1/accounts", createAccount),
  route("GET", "/v1/accounts", listAccounts),
  route("GET", "/v1/accounts/:id", retrieveAccount),
  route("POST", "/v1/account_links", createAccountLink),

  route("POST", "/v1/transfers", createTransfer),
  route("GET", "/v1/transfers", listTransfers),
  route("GET", "/v1/transfers/:id", retrieveTransfer),
  route("POST", "/v1/transfers/:id/reversals", createReversal),
  route("GET", "/v1/transfers/:id/reversals", listReversals),
  route("GET", "/v1/transfers/:id/reversals/:reversal", retrieveReversal),

  route("GET", "/v1/events", listEvents),
  route("GET", "/v1/events/:id", retrieveEvent),
]);

export const CONTROL_ROUTES = new Router<ControlHandler>([
  route("POST", "/_sim/stripe/payment_intents/:id/confirm", withCtx(simConfirmPayment)),
  route("POST", "/_sim/stripe/setup_intents/:id/confirm", withCtx(simConfirmSetup)),
  route("POST", "/_sim/stripe/refunds/:id/fail", withCtx(simFailRefund)),
  route("POST", "/_sim/stripe/charges/:id/dispute", withCtx(simOpenDispute)),
  route("POST", "/_sim/stripe/disputes/:id/advance", withCtx(simAdvanceDispute)),
  route("POST", "/_sim/stripe/accounts/:id/onboard", withCtx(simOnboard)),
  route("POST", "/_sim/stripe/accounts/:id/deauthorize", withCtx(simDeauthorize)),
  route("POST", "/_sim/stripe/transfers/:id/reverse", withCtx(simReverseTransfer)),
  route(
    "POST",
    "/_sim/stripe/events/:id/resend",
    (s, { req, ids }) => simResendEvent(s, req, ids.id),
  ),
  route("GET", "/_sim/stripe/requests", listRequests),
  ...commonControls<ControlHandler>("/_sim/stripe", {
    events: (s, { url }) => simListEvents(s, url),
    deliveries: listDeliveries,
    listFaults,
    addFaults,
    clearFaults,
    getConfig,
    setConfig,
  }),
]);
