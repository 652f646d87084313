// The RazorpayX simulator's route tables: every /v1 endpoint and /_sim/razorpayx control, by
// method and path pattern. A new resource adds its lines here (handlers live in its file).
import { commonControls, route, Router } from "../common/mod.ts";
import { createContact, getContact } from "./contacts.ts";
import { config, faults, listDeliveries } from "./control.ts";
import { simListEvents } from "./events.ts";
import { createFundAccount, getFundAccount } from "./fund_accounts.ts";
import { createPayout, getPayout, listPayouts, simListPayouts, simTransition } from "./payouts.ts";
import type { Handler } from "./state.ts";

export const API_ROUTES = new Router<Handler>([
  route("POST", "/v1/contacts", createContact),
  route("GET", "/v1/contacts/:id", getContact),

  route("POST", "/v1/fund_accounts", createFundAccount),
  route("GET", "/v1/fund_accounts/:id", getFundAccount),

  route("POST", "/v1/payouts", createPayout),
  route("GET", "/v1/payouts", listPayouts),
  route("GET", "/v1/payouts/:id", getPayout),
]);

export const CONTROL_ROUTES = new Router<Handler>([
  route("POST", "/_sim/razorpayx/payouts/:id/transition", simTransition),
  route("GET", "/_sim/razorpayx/payouts", simListPayouts),
  ...commonControls<Handler>("/_sim/razorpayx", {
    events: simListEvents,
    deliveries: listDeliveries,
    listFaults: faults,
    addFaults: faults,
    clearFaults: faults,
    getConfig: config,
    setConfig: config,
  }),
  // faults answers any method (PUT and PATCH list the armed faults, as GET does).
  route("PUT", "/_sim/razorpayx/faults", faults),
  route("PATCH", "/_sim/razorpayx/faults", faults),
]);
