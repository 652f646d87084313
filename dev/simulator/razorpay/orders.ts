// Orders: /v1/orders (create, list, fetch, patch notes) and an order's payments.
import { CURRENCY_EXPONENT, formatMinor, minimumAmount } from "./currencies.ts";
import { invalid, jsonResponse, notFoundId } from "./errors.ts";
import { list } from "./lists.ts";
import { ORDER_FIELDS, parseCaptureSettings, readBody, validateNotes } from "./params.ts";
import type { Call, RazorpayState } from "./state.ts";
import { randomId } from "./util.ts";
import type { OrderEntity } from "./wire.ts";

export async function createOrder(s: RazorpayState, { req }: Call): Promise<Response> {
  const body = await readBody(req);
  const unknown = Object.keys(body).filter((k) => !ORDER_FIELDS.has(k));
  if (unknown.length > 0) {
    return invalid(
      `${unknown.join(", ")} is/are not required and should not be sent`,
      unknown[0],
    );
  }
  const bad = checkOrderAmount(body.amount, body.currency);
  if (bad) return bad;
  const amount = body.amount as number;
  const currency = body.currency as string;
  const receipt = body.receipt ?? null;
  if (receipt !== null && typeof receipt !== "string") {
    return invalid("The receipt must be a string.", "receipt");
  }
  if (typeof receipt === "string" && receipt.length > 40) {
    return invalid("The receipt may not be greater than 40 characters.", "receipt");
  }
  const notes = validateNotes(body.notes);
  if (notes instanceof Response) return notes;
  if (body.partial_payment !== undefined && typeof body.partial_payment !== "boolean") {
    return invalid("The partial payment field must be true or false.", "partial_payment");
  }
  const capture = parseCaptureSettings(body.payment);
  if (capture instanceof Response) return capture;
  const entity: OrderEntity = {
    id: randomId("order_"),
    entity: "order",
    amount,
    amount_paid: 0,
    amount_due: amount,
    currency,
    receipt,
    offer_id: typeof body.offer_id === "string" ? body.offer_id : null,
    status: "created",
    attempts: 0,
    notes,
    created_at: s.unix(),
  };
  s.orders.set(entity.id, {
    entity,
    capture,
    paymentIds: [],
  });
  s.orderSeq.push(entity.id);
  return jsonResponse(200, entity);
}

/** Razorpay's rules for an order's amount and currency; an error Response, or null if both are good. */
function checkOrderAmount(amount: unknown, currency: unknown): Response | null {
  if (amount === undefined || amount === null) {
    return invalid("The amount field is required.", "amount");
  }
  if (typeof amount !== "number" || !Number.isInteger(amount)) {
    return invalid("The amount must be an integer", "amount");
  }
  if (currency === undefined || currency === null) {
    return invalid("The currency field is required.", "currency");
  }
  const exponent = typeof currency === "string" ? CURRENCY_EXPONENT.get(currency) : undefined;
  if (typeof currency !== "string" || exponent === undefined) {
    return invalid("Currency is not supported", "currency");
  }
  const min = minimumAmount(exponent);
  if (amount < min) {
    return invalid(
      `The amount must be at least ${currency} ${formatMinor(min, exponent)}`,
      "amount",
    );
  }
  if (exponent === 3 && amount % 10 !== 0) {
    return invalid(`The amount for ${currency} must have 0 as its last digit`, "amount");
  }
  return null;
}

export function getOrder(s: RazorpayState, { ids }: Call): Response {
  const o = s.orders.get(ids.id);
  return o ? jsonResponse(200, o.entity) : notFoundId();
}

export async function patchOrder(s: RazorpayState, { req, ids: { id } }: Call): Promise<Response> {
  const body = await readBody(req);
  const o = s.orders.get(id);
  if (!o) return notFoundId();
  const extra = Object.keys(body).filter((k) => k !== "notes");
  if (extra.length > 0) {
    return invalid(`${extra.join(", ")} is/are not required and should not be sent`, extra[0]);
  }
  const notes = validateNotes(body.notes);
  if (notes instanceof Response) return notes;
  o.entity.notes = notes;
  return jsonResponse(200, o.entity);
}

export function listOrders(s: RazorpayState, { url }: Call): Response {
  const q = url.searchParams;
  let items = s.orderSeq.map((id) => s.orders.get(id)!.entity);
  const receipt = q.get("receipt");
  if (receipt !== null) items = items.filter((o) => o.receipt === receipt);
  return list(q, items);
}

export function orderPayments(s: RazorpayState, { ids: { id } }: Call): Response {
  const o = s.orders.get(id);
  if (!o) return notFoundId();
  return list(
    new URLSearchParams(),
    o.paymentIds.map((p) => s.payments.get(p)!.entity),
  );
}
