// /v2/checkout/orders: create (intent CAPTURE), read, capture; the payer's approval (/_sim).
import { formatUnits, parseValue } from "./currencies.ts";
import { emit } from "./events.ts";
import { invalidRequest, jsonResponse, notFound, unprocessable } from "./errors.ts";
import { remember, replay } from "./idempotency.ts";
import type { Json } from "./params.ts";
import type { Call, PayPalState } from "./state.ts";
import { type Capture, type CaptureOutcome, isoSeconds, type Order, paypalId } from "./wire.ts";

function orderLinks(state: PayPalState, id: string, status: Order["status"]) {
  const self = `${state.baseUrl}/v2/checkout/orders/${id}`;
  return [
    { href: self, rel: "self", method: "GET" },
    ...(status === "CREATED"
      ? [{ href: `${state.baseUrl}/checkoutnow?token=${id}`, rel: "approve", method: "GET" }]
      : []),
    ...(status === "APPROVED" ? [{ href: `${self}/capture`, rel: "capture", method: "POST" }] : []),
  ];
}

function bad(field: string, issue: string, description: string) {
  return issue === "MISSING_REQUIRED_PARAMETER" || issue === "INVALID_PARAMETER_SYNTAX"
    ? invalidRequest(issue, description, field)
    : unprocessable(issue, description);
}

/** Validates the one purchase unit settle sends; a Response on the first problem. */
function purchaseUnit(raw: unknown): Response | Order["purchase_units"][number] {
  if (!Array.isArray(raw) || raw.length !== 1) {
    return invalidRequest(
      "MISSING_REQUIRED_PARAMETER",
      "exactly one purchase unit",
      "/purchase_units",
    );
  }
  const u = raw[0] as Json;
  const parsed = parseValue(u?.amount);
  if (typeof parsed === "string") return bad("/purchase_units/0/amount", parsed, parsed);
  for (const k of ["reference_id", "custom_id"] as const) {
    const v = u[k];
    const max = k === "reference_id" ? 256 : 127;
    if (v !== undefined && (typeof v !== "string" || v.length < 1 || v.length > max)) {
      return invalidRequest("INVALID_STRING_LENGTH", `${k} is 1-${max} characters`, `/${k}`);
    }
  }
  return {
    reference_id: (u.reference_id as string | undefined) ?? "default",
    ...(u.custom_id ? { custom_id: u.custom_id as string } : {}),
    amount: {
      currency_code: parsed.currency,
      value: formatUnits(parsed.units, parsed.currency),
    },
  };
}

/** POST /v2/checkout/orders: one purchase unit, intent CAPTURE. */
export function createOrder(state: PayPalState, { body, requestId }: Call): Response {
  const again = replay(state, "orders", requestId);
  if (again) return again;
  if (body.intent !== "CAPTURE") {
    return invalidRequest("INVALID_PARAMETER_VALUE", "the simulator takes CAPTURE", "/intent");
  }
  const unit = purchaseUnit(body.purchase_units);
  if (unit instanceof Response) return unit;
  const id = paypalId();
  const order: Order = {
    id,
    intent: "CAPTURE",
    status: "CREATED",
    purchase_units: [unit],
    create_time: isoSeconds(state.now()),
    links: orderLinks(state, id, "CREATED"),
  };
  state.orders.set(id, { order, outcome: null });
  return remember(state, "orders", requestId, { status: 201, body: order });
}

export function getOrder(state: PayPalState, { ids }: Call): Response {
  const r = state.orders.get(ids.id);
  return r ? jsonResponse(200, r.order) : notFound();
}

function newCapture(state: PayPalState, order: Order, outcome: CaptureOutcome): Capture {
  const id = paypalId();
  const unit = order.purchase_units[0];
  const now = isoSeconds(state.now());
  const base = `${state.baseUrl}/v2/payments/captures/${id}`;
  return {
    id,
    status: outcome,
    ...(outcome === "PENDING" ? { status_details: { reason: "PENDING_REVIEW" } } : {}),
    ...(outcome === "DECLINED"
      ? { status_details: { reason: "DECLINED_BY_RISK_FRAUD_FILTERS" } }
      : {}),
    amount: unit.amount,
    final_capture: true,
    ...(unit.custom_id ? { custom_id: unit.custom_id } : {}),
    seller_protection: { status: "ELIGIBLE" },
    supplementary_data: { related_ids: { order_id: order.id } },
    links: [
      { href: base, rel: "self", method: "GET" },
      { href: `${base}/refund`, rel: "refund", method: "POST" },
      { href: `${state.baseUrl}/v2/checkout/orders/${order.id}`, rel: "up", method: "GET" },
    ],
    create_time: now,
    update_time: now,
  };
}

const CAPTURE_EVENT: Record<CaptureOutcome, string> = {
  COMPLETED: "PAYMENT.CAPTURE.COMPLETED",
  PENDING: "PAYMENT.CAPTURE.PENDING",
  DECLINED: "PAYMENT.CAPTURE.DENIED",
};

/** POST /v2/checkout/orders/{id}/capture: one capture per order (intent CAPTURE). */
export async function captureOrder(
  state: PayPalState,
  { ids: { id }, requestId }: Call,
): Promise<Response> {
  const again = replay(state, `capture:${id}`, requestId);
  if (again) return again;
  const r = state.orders.get(id);
  if (!r) return notFound();
  if (r.order.status === "COMPLETED") {
    return unprocessable("ORDER_ALREADY_CAPTURED", "Order already captured.");
  }
  if (r.order.status !== "APPROVED" || !r.outcome) {
    return unprocessable("ORDER_NOT_APPROVED", "Payer has not yet approved the Order.");
  }
  const capture = newCapture(state, r.order, r.outcome);
  r.order.status = "COMPLETED";
  r.order.update_time = capture.create_time;
  r.order.purchase_units[0].payments = { captures: [capture] };
  r.order.links = orderLinks(state, id, "COMPLETED");
  state.captures.set(capture.id, { capture, orderId: id, refunds: [] });
  await emit(state, CAPTURE_EVENT[r.outcome], capture, id, state.defaultWebhooks);
  return remember(state, `capture:${id}`, requestId, { status: 201, body: r.order });
}

const OUTCOMES: Record<string, CaptureOutcome> = {
  approve: "COMPLETED",
  deny: "DECLINED",
  pending: "PENDING",
};

/**
 * POST /_sim/paypal/orders/:id/approve {outcome: approve|deny|pending}: the payer approves at
 * PayPal; the outcome is what settle's capture will find.
 */
export async function simApprove(
  state: PayPalState,
  { ids: { id }, body }: Call,
): Promise<Response> {
  const r = state.orders.get(id);
  if (!r) return notFound();
  const outcome = OUTCOMES[String(body.outcome ?? "approve")];
  if (!outcome) return invalidRequest("INVALID_PARAMETER_VALUE", "outcome: approve|deny|pending");
  if (r.order.status !== "CREATED") {
    return unprocessable("ORDER_ALREADY_APPROVED", `the order is ${r.order.status}`);
  }
  r.outcome = outcome;
  r.order.status = "APPROVED";
  r.order.payer = { payer_id: paypalId().slice(0, 13), email_address: "buyer@example.com" };
  r.order.links = orderLinks(state, id, "APPROVED");
  const event = await emit(state, "CHECKOUT.ORDER.APPROVED", r.order, id, state.hooksFor(body));
  return jsonResponse(200, { order: r.order, event_id: event.event_id });
}
