// The PayPal simulator's route table: method, path pattern, handler (the API, then /_sim).
import { BadBody, type Json, readJson } from "./errors.ts";
import { approve, captureOrder, createOrder, getOrder } from "./orders.ts";
import {
  getCapture,
  getRefund,
  refundCapture,
  reverseCapture,
  settlePending,
  settleRefund,
} from "./payments.ts";
import type { PayPalState } from "./state.ts";

type Handler = (s: PayPalState, req: Request, params: string[]) => Promise<Response> | Response;

export interface Route {
  method: string;
  pattern: RegExp;
  handler: Handler;
}

const requestId = (req: Request) => req.headers.get("paypal-request-id");
const body = (req: Request): Promise<Json> => readJson(req);

export const API_ROUTES: Route[] = [
  {
    method: "POST",
    pattern: /^\/v2\/checkout\/orders$/,
    handler: async (s, req) => createOrder(s, await body(req), requestId(req)),
  },
  {
    method: "GET",
    pattern: /^\/v2\/checkout\/orders\/([A-Z0-9]+)$/,
    handler: (s, _req, [id]) => getOrder(s, id),
  },
  {
    method: "POST",
    pattern: /^\/v2\/checkout\/orders\/([A-Z0-9]+)\/capture$/,
    handler: async (s, req, [id]) => {
      await body(req); // an empty JSON object, as the SDK sends it
      return await captureOrder(s, id, requestId(req));
    },
  },
  {
    method: "GET",
    pattern: /^\/v2\/payments\/captures\/([A-Z0-9]+)$/,
    handler: (s, _req, [id]) => getCapture(s, id),
  },
  {
    method: "POST",
    pattern: /^\/v2\/payments\/captures\/([A-Z0-9]+)\/refund$/,
    handler: async (s, req, [id]) => await refundCapture(s, id, await body(req), requestId(req)),
  },
  {
    method: "GET",
    pattern: /^\/v2\/payments\/refunds\/([A-Z0-9]+)$/,
    handler: (s, _req, [id]) => getRefund(s, id),
  },
];

/** /_sim/paypal/... controls that act as the payer or as PayPal itself. */
export const SIM_ROUTES: Route[] = [
  {
    method: "POST",
    pattern: /^\/_sim\/paypal\/orders\/([A-Z0-9]+)\/approve$/,
    handler: async (s, req, [id]) => await approve(s, id, await body(req)),
  },
  {
    method: "POST",
    pattern: /^\/_sim\/paypal\/captures\/([A-Z0-9]+)\/settle$/,
    handler: async (s, req, [id]) => await settlePending(s, id, await body(req)),
  },
  {
    method: "POST",
    pattern: /^\/_sim\/paypal\/captures\/([A-Z0-9]+)\/reverse$/,
    handler: async (s, req, [id]) => await reverseCapture(s, id, await body(req)),
  },
  {
    method: "POST",
    pattern: /^\/_sim\/paypal\/refunds\/([A-Z0-9]+)\/settle$/,
    handler: async (s, req, [id]) => await settleRefund(s, id, await body(req)),
  },
];

export function match(routes: Route[], method: string, path: string) {
  for (const r of routes) {
    if (r.method !== method) continue;
    const m = r.pattern.exec(path);
    if (m) return { route: r, params: m.slice(1) };
  }
  return null;
}

export { BadBody };
