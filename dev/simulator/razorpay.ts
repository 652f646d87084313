// Stateful in-memory Razorpay simulator (real /v1 wire formats, /_sim controls) as a fetch handler.
//
// Mounting contract (the simulator has no server of its own):
// - Pass requests whose URL path is relative to the mount point ("/v1/orders", "/_sim/razorpay/...").
// - A "reset" fault makes fetch() throw SimulatedConnectionReset. The mount point must turn that into a
//   dropped connection. Deno.serve cannot drop a connection before the status line, so the closest it
//   can get is to answer with simulatedResetResponse() (status line, then the body stream errors and
//   Deno cuts the connection; the client's body read fails). A node:http mount can call
//   req.socket.destroy() for a true reset before any byte.
// - A "timeout" fault answers only when req.signal aborts (the client went away) or hold_ms passes
//   (default 60 s), so the mount must hand the original request's signal through and must not put its
//   own short deadline on simulator requests.
import { createHmac } from "node:crypto";
import {
  canonical,
  FaultBook,
  holdUntilAbort,
  parseWebhookOptions,
  readSimConfig,
  type SimEventRecord,
  SimulatedConnectionReset,
  WebhookDispatcher,
  type WebhookOptions,
} from "./common/mod.ts";

export type {
  FaultMode,
  FaultSpec,
  SimDeliveryRecord,
  SimEventRecord,
  WebhookOptions,
} from "./common/mod.ts";
export { SimulatedConnectionReset, simulatedResetResponse } from "./common/mod.ts";

export interface RazorpaySimOptions {
  keyId: string;
  keySecret: string;
  /** Distinct from keySecret, as on the Razorpay Dashboard. */
  webhookSecret: string;
  webhookUrl?: string;
  nowMs?: () => number;
}

/** Lowercase hex HMAC-SHA256, the primitive behind Checkout and webhook signatures (GATEWAY_FACTS A6-A8). */
export function razorpayHmacHex(secret: string, message: string): string {
  return createHmac("sha256", secret).update(message, "utf8").digest("hex");
}

type Notes = Record<string, string> | [];
type Json = Record<string, unknown>;

interface OrderEntity {
  id: string;
  entity: "order";
  amount: number;
  amount_paid: number;
  amount_due: number;
  currency: string;
  receipt: string | null;
  offer_id: string | null;
  status: "created" | "attempted" | "paid";
  attempts: number;
  notes: Notes;
  created_at: number;
}

interface PaymentEntity {
  id: string;
  entity: "payment";
  amount: number;
  currency: string;
  status: "created" | "authorized" | "captured" | "refunded" | "failed";
  order_id: string;
  invoice_id: null;
  international: boolean;
  method: string;
  amount_refunded: number;
  refund_status: null | "partial" | "full";
  captured: boolean;
  description: string | null;
  card_id: null;
  bank: null;
  wallet: null;
  vpa: null;
  email: string;
  contact: string;
  notes: Notes;
  fee: number | null;
  tax: number | null;
  error_code: string | null;
  error_description: string | null;
  error_source: string | null;
  error_step: string | null;
  error_reason: string | null;
  acquirer_data: Record<string, unknown>;
  created_at: number;
}

interface RefundEntity {
  id: string;
  entity: "refund";
  amount: number;
  currency: string;
  payment_id: string;
  notes: Notes;
  receipt: string | null;
  acquirer_data: { arn: string | null };
  created_at: number;
  batch_id: null;
  status: "pending" | "processed" | "failed";
  speed_processed: "normal" | "instant";
  speed_requested: "normal" | "optimum";
}

/** An order's `payment` settings (capture-settings/api.md); periods are in minutes. */
interface CaptureSettings {
  capture: "automatic" | "manual";
  automaticExpiryPeriod: number | null;
  manualExpiryPeriod: number;
  refundSpeed: "normal" | "optimum";
}

interface OrderRecord {
  entity: OrderEntity;
  /** Null: the account-level setting applies (automatic unless /_sim config says manual). */
  capture: CaptureSettings | null;
  paymentIds: string[];
}

interface StoredEvent extends SimEventRecord {
  orderId: string | null;
  paymentId: string | null;
}

const ACCOUNT_ID = "acc_SettleSim00001";
const WEBHOOK_TIMEOUT_MS = 5_000; // Razorpay gives up on a webhook that has not answered 2xx in 5 s.
const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

const EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(" ");
const EXPONENT_3 = "BHD IQD JOD KWD OMR TND".split(" ");
// Exponent-2 currencies from Razorpay's international-payments table; not exhaustive, but every
// currency the project is likely to try is here and unknown codes must fail like Razorpay does.
const EXPONENT_2 = (
  "AED ALL AMD ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BZD CAD CHF CNY COP CRC " +
  "CUP CVE CZK DKK DOP DZD EGP ETB EUR FJD GBP GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR " +
  "JMD KES KGS KHR KYD KZT LAK LKR LRD LSL MAD MDL MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN " +
  "NIO NOK NPR NZD PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SCR SEK SGD SLL SOS SSP SVC SZL THB TTD " +
  "TRY TWD TZS UAH USD UYU UZS XCD YER ZAR ZMW"
).split(" ");
const CURRENCY_EXPONENT = new Map<string, number>([
  ...EXPONENT_2.map((c) => [c, 2] as [string, number]),
  ...EXPONENT_0.map((c) => [c, 0] as [string, number]),
  ...EXPONENT_3.map((c) => [c, 3] as [string, number]),
]);

// Razorpay rejects fields it does not know; these are the documented optional ones for orders.
const ORDER_FIELDS = new Set(
  ("amount currency receipt notes partial_payment first_payment_min_amount payment method " +
    "bank_account offer_id customer_id token transfers").split(" "),
);

const MAX_EXPIRY_MINUTES = 7200;

/** Validates an order's `payment` field as Razorpay documents it; an error Response if bad. */
function parseCaptureSettings(raw: unknown): Response | CaptureSettings | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    return invalid("The payment field must be an object", "payment");
  }
  const { capture, capture_options: options, ...extra } = raw as Json;
  if (Object.keys(extra).length > 0) {
    return invalid(`${Object.keys(extra).join(", ")} is/are not required and should not be sent`);
  }
  if (capture !== "automatic" && capture !== "manual") {
    return invalid("The payment.capture field must be automatic or manual", "payment.capture");
  }
  const o = (options ?? {}) as Json;
  if (typeof o !== "object" || Array.isArray(o)) {
    return invalid("The payment.capture_options field must be an object", "capture_options");
  }
  const minutes = (name: string, min: number) => {
    const v = o[name];
    if (v === undefined) return undefined;
    return typeof v === "number" && Number.isInteger(v) && v >= min && v <= MAX_EXPIRY_MINUTES
      ? v
      : invalid(`The ${name} must be an integer between ${min} and ${MAX_EXPIRY_MINUTES}`, name);
  };
  const automatic = minutes("automatic_expiry_period", 12);
  const manual = minutes("manual_expiry_period", 0);
  if (automatic instanceof Response) return automatic;
  if (manual instanceof Response) return manual;
  if (options !== undefined && capture === "automatic" && automatic === undefined) {
    return invalid("The automatic_expiry_period field is required", "automatic_expiry_period");
  }
  if (automatic !== undefined && manual !== undefined && manual < automatic) {
    return invalid(
      "The manual_expiry_period must be greater than or equal to the automatic_expiry_period",
      "manual_expiry_period",
    );
  }
  const speed = o.refund_speed ?? "normal";
  if (speed !== "normal" && speed !== "optimum") {
    return invalid("The selected refund_speed is invalid.", "refund_speed");
  }
  return {
    capture,
    automaticExpiryPeriod: automatic ?? null,
    manualExpiryPeriod: manual ?? MAX_EXPIRY_MINUTES,
    refundSpeed: speed,
  };
}

function randomId(prefix: string): string {
  const out: string[] = [];
  const buf = new Uint8Array(32);
  while (out.length < 14) {
    crypto.getRandomValues(buf);
    for (const b of buf) {
      // 248 = 4 * 62: rejecting the tail keeps every character equally likely.
      if (b < 248 && out.length < 14) out.push(ALNUM[b % 62]);
    }
  }
  return prefix + out.join("");
}

function minimumAmount(exponent: number): number {
  if (exponent === 0) return 1;
  if (exponent === 3) return 1000;
  return 100;
}

function formatMinor(amount: number, exponent: number): string {
  if (exponent === 0) return String(amount);
  const s = String(amount).padStart(exponent + 1, "0");
  return `${s.slice(0, -exponent)}.${s.slice(-exponent)}`;
}

function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=UTF-8" },
  });
}

interface ErrorFields {
  code?: string;
  field?: string | null;
  source?: string;
  step?: string;
  reason?: string;
  metadata?: Record<string, unknown>;
}

function errorBody(description: string, f: ErrorFields = {}) {
  return {
    error: {
      code: f.code ?? "BAD_REQUEST_ERROR",
      description,
      source: f.source ?? "NA",
      step: f.step ?? "NA",
      reason: f.reason ?? "NA",
      metadata: f.metadata ?? {},
      field: f.field ?? null,
    },
  };
}

function errorResponse(status: number, description: string, f: ErrorFields = {}): Response {
  return jsonResponse(status, errorBody(description, f));
}

/** Input validation failures, in the shape of GATEWAY_FACTS A2's documented 400. */
function invalid(description: string, field: string | null = null): Response {
  return errorResponse(400, description, {
    field,
    source: "business",
    step: "payment_initiation",
    reason: "input_validation_failed",
  });
}

const notFoundId = () => invalid("The id provided does not exist");
const notFoundUrl = () => errorResponse(404, "The requested URL was not found on the server.");

function serverError(status: number): Response {
  return errorResponse(
    status,
    "The server encountered an error. The incident has been reported to admins.",
    {
      code: "SERVER_ERROR",
    },
  );
}

class BadBody extends Error {}

async function readBody(req: Request): Promise<Json> {
  const text = await req.text();
  if (text.trim() === "") return {};
  const type = req.headers.get("content-type") ?? "";
  if (type.includes("application/x-www-form-urlencoded")) {
    const out: Json = {};
    for (const [k, v] of new URLSearchParams(text)) {
      const m = /^(\w+)\[(.+)\]$/.exec(k);
      if (m) {
        const inner = (out[m[1]] ??= {}) as Record<string, string>;
        inner[m[2]] = v;
      } else {
        // Form-encoded clients can only send strings; Razorpay coerces numeric ones.
        out[k] = /^-?\d+(\.\d+)?$/.test(v)
          ? Number(v)
          : v === "true"
          ? true
          : v === "false"
          ? false
          : v;
      }
    }
    return out;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BadBody("The request body is not valid JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new BadBody("The request body must be a JSON object");
  }
  return parsed as Json;
}

/** Returns an error Response, or the normalised notes. */
function validateNotes(raw: unknown): Response | Notes {
  if (raw === undefined || raw === null) return [];
  if (Array.isArray(raw)) {
    return raw.length === 0 ? [] : invalid("The notes must be an object", "notes");
  }
  if (typeof raw !== "object") return invalid("The notes must be an object", "notes");
  const entries = Object.entries(raw as Json);
  if (entries.length > 15) {
    return invalid("Number of fields in notes should be less than or equal to 15", "notes");
  }
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (v !== null && typeof v === "object") {
      return invalid("Notes values must be strings", "notes");
    }
    const s = v === null ? "" : String(v);
    if (s.length > 256) {
      return invalid("Notes value(s) may not be greater than 256 characters", "notes");
    }
    out[k] = s;
  }
  return out;
}

const clone = <T>(v: T): T => structuredClone(v);

export class RazorpaySimulator {
  readonly #opts: RazorpaySimOptions;
  readonly #now: () => number;
  readonly #expectedAuth: string;
  #defaultWebhooks: WebhookOptions = {};
  /** The Dashboard's account-level capture setting, for orders without `payment` (A2). */
  #accountCapture: "automatic" | "manual" = "automatic";
  readonly #orders = new Map<string, OrderRecord>();
  readonly #orderSeq: string[] = [];
  readonly #payments = new Map<string, { entity: PaymentEntity; refundIds: string[] }>();
  readonly #paymentSeq: string[] = [];
  readonly #refunds = new Map<string, RefundEntity>();
  readonly #refundSeq: string[] = [];
  readonly #refundKeys = new Map<
    string,
    { paymentId: string; fingerprint: string; refundId: string }
  >();
  readonly #events: StoredEvent[] = [];
  readonly #faults = new FaultBook();
  readonly #hooks: WebhookDispatcher<StoredEvent>;

  constructor(opts: RazorpaySimOptions) {
    this.#opts = opts;
    this.#now = opts.nowMs ?? Date.now;
    this.#hooks = new WebhookDispatcher<StoredEvent>({
      label: "razorpay",
      timeoutMs: WEBHOOK_TIMEOUT_MS,
      url: opts.webhookUrl,
      headers: (e) => ({
        "content-type": "application/json",
        "x-razorpay-signature": e.signature,
        "x-razorpay-event-id": e.event_id,
        "user-agent": "Razorpay-Webhook/v1",
      }),
    });
    this.#expectedAuth = `Basic ${btoa(`${opts.keyId}:${opts.keySecret}`)}`;
  }

  setWebhookUrl(url: string | undefined): void {
    this.#hooks.url = url;
  }

  idle(): Promise<void> {
    return this.#hooks.idle();
  }

  async fetch(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (path.startsWith("/_sim/")) return this.#control(req, url, path);
    if (path === "/v1" || path.startsWith("/v1/")) return await this.#api(req, url, path);
    return notFoundUrl();
  }

  // ---------------------------------------------------------------- /v1 API

  async #api(req: Request, url: URL, path: string): Promise<Response> {
    const fault = this.#faults.take(req.method, path);
    if (fault) {
      switch (fault.mode) {
        case "error_500":
          return serverError(500);
        case "error_502":
          return serverError(502);
        case "error_503":
          return serverError(503);
        case "reset":
          throw new SimulatedConnectionReset();
        case "timeout":
          await holdUntilAbort(req.signal, fault.holdMs);
          return serverError(504);
        case "delay":
          await holdUntilAbort(req.signal, fault.holdMs);
          break;
      }
    }
    const res = await this.#apiHandled(req, url, path);
    // The *_after modes run the request first: the side effect happened but the client never learns it.
    if (fault?.mode === "reset_after") {
      await res.body?.cancel();
      throw new SimulatedConnectionReset();
    }
    if (fault?.mode === "timeout_after") {
      await res.body?.cancel();
      await holdUntilAbort(req.signal, fault.holdMs);
      return serverError(504);
    }
    return res;
  }

  async #apiHandled(req: Request, url: URL, path: string): Promise<Response> {
    if (req.headers.get("authorization") !== this.#expectedAuth) {
      return errorResponse(401, "The api key provided is invalid");
    }
    try {
      return await this.#route(req, url, path);
    } catch (e) {
      if (e instanceof BadBody) return invalid(e.message);
      console.error("razorpay simulator: internal error", e);
      return serverError(500);
    }
  }

  async #route(req: Request, url: URL, path: string): Promise<Response> {
    const m = req.method.toUpperCase();
    const seg = path.split("/").slice(2); // drop "" and "v1"
    if (seg[0] === "orders") {
      if (seg.length === 1 && m === "POST") return this.#createOrder(await readBody(req));
      if (seg.length === 1 && m === "GET") return this.#listOrders(url.searchParams);
      if (seg.length === 2 && m === "GET") return this.#getOrder(seg[1]);
      if (seg.length === 2 && m === "PATCH") return this.#patchOrder(seg[1], await readBody(req));
      if (seg.length === 3 && seg[2] === "payments" && m === "GET") {
        return this.#orderPayments(seg[1]);
      }
    }
    if (seg[0] === "payments") {
      if (seg.length === 1 && m === "GET") {
        return this.#list(
          url.searchParams,
          this.#paymentSeq.map((id) => this.#payments.get(id)!.entity),
        );
      }
      if (seg.length === 2 && m === "GET") {
        const p = this.#payments.get(seg[1]);
        return p ? jsonResponse(200, p.entity) : notFoundId();
      }
      if (seg.length === 3 && seg[2] === "capture" && m === "POST") {
        return this.#capture(seg[1], await readBody(req));
      }
      if (seg.length === 3 && seg[2] === "refund" && m === "POST") {
        const raw = await req.text();
        return this.#refund(seg[1], raw, req.headers);
      }
      if (seg.length === 3 && seg[2] === "refunds" && m === "GET") {
        const p = this.#payments.get(seg[1]);
        if (!p) return notFoundId();
        return this.#list(url.searchParams, p.refundIds.map((id) => this.#refunds.get(id)!));
      }
      if (seg.length === 4 && seg[2] === "refunds" && m === "GET") {
        const r = this.#refunds.get(seg[3]);
        return r && r.payment_id === seg[1] ? jsonResponse(200, r) : notFoundId();
      }
    }
    if (seg[0] === "refunds") {
      if (seg.length === 1 && m === "GET") {
        return this.#list(url.searchParams, this.#refundSeq.map((id) => this.#refunds.get(id)!));
      }
      if (seg.length === 2 && m === "GET") {
        const r = this.#refunds.get(seg[1]);
        return r ? jsonResponse(200, r) : notFoundId();
      }
    }
    return notFoundUrl();
  }

  #createOrder(body: Json): Response {
    const unknown = Object.keys(body).filter((k) => !ORDER_FIELDS.has(k));
    if (unknown.length > 0) {
      return invalid(
        `${unknown.join(", ")} is/are not required and should not be sent`,
        unknown[0],
      );
    }
    const { amount, currency } = body;
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
      created_at: this.#unix(),
    };
    this.#orders.set(entity.id, {
      entity,
      capture,
      paymentIds: [],
    });
    this.#orderSeq.push(entity.id);
    return jsonResponse(200, entity);
  }

  #getOrder(id: string): Response {
    const o = this.#orders.get(id);
    return o ? jsonResponse(200, o.entity) : notFoundId();
  }

  #patchOrder(id: string, body: Json): Response {
    const o = this.#orders.get(id);
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

  #listOrders(q: URLSearchParams): Response {
    let items = this.#orderSeq.map((id) => this.#orders.get(id)!.entity);
    const receipt = q.get("receipt");
    if (receipt !== null) items = items.filter((o) => o.receipt === receipt);
    return this.#list(q, items);
  }

  #orderPayments(id: string): Response {
    const o = this.#orders.get(id);
    if (!o) return notFoundId();
    return this.#list(
      new URLSearchParams(),
      o.paymentIds.map((p) => this.#payments.get(p)!.entity),
    );
  }

  /** Paging shared by every list endpoint; newest first like Razorpay. */
  #list(q: URLSearchParams, all: { created_at: number }[]): Response {
    const ints: Record<string, number | undefined> = {};
    for (const name of ["count", "skip", "from", "to"]) {
      const raw = q.get(name);
      if (raw === null || raw === "") continue;
      if (!/^\d+$/.test(raw)) return invalid(`The ${name} must be an integer.`, name);
      ints[name] = Number(raw);
    }
    const count = ints.count ?? 10;
    if (count < 1) return invalid("The count must be at least 1.", "count");
    if (count > 100) return invalid("The count may not be greater than 100.", "count");
    const skip = ints.skip ?? 0;
    const filtered = all
      .filter((e) =>
        (ints.from === undefined || e.created_at >= ints.from) &&
        (ints.to === undefined || e.created_at <= ints.to)
      )
      .reverse();
    const items = filtered.slice(skip, skip + count);
    return jsonResponse(200, { entity: "collection", count: items.length, items });
  }

  #capture(id: string, body: Json): Response {
    const p = this.#payments.get(id);
    if (!p) return notFoundId();
    const { amount, currency } = body;
    if (amount === undefined || amount === null) {
      return invalid("The amount field is required.", "amount");
    }
    if (typeof amount !== "number" || !Number.isInteger(amount)) {
      return invalid("The amount must be an integer", "amount");
    }
    if (currency === undefined || currency === null) {
      return invalid("The currency field is required.", "currency");
    }
    const pay = p.entity;
    if (pay.status === "captured" || pay.status === "refunded") {
      return invalid("This payment has already been captured");
    }
    if (pay.status !== "authorized") {
      return invalid(
        "Only payments which have been authorized and not yet captured can be captured",
      );
    }
    if (currency !== pay.currency) {
      return invalid("Currency does not match the payment currency", "currency");
    }
    if (amount !== pay.amount) {
      return invalid("Capture amount must be equal to the amount authorized", "amount");
    }
    const order = this.#orders.get(pay.order_id)!;
    this.#markCaptured(pay, order);
    this.#hooks.schedule(this.#captureEvents(pay, order), this.#defaultWebhooks);
    return jsonResponse(200, pay);
  }

  #refund(paymentId: string, raw: string, headers: Headers): Response {
    const p = this.#payments.get(paymentId);
    if (!p) return notFoundId();
    let body: Json = {};
    if (raw.trim() !== "") {
      try {
        const parsed = JSON.parse(raw);
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
          throw new Error();
        }
        body = parsed as Json;
      } catch {
        return invalid("The request body is not valid JSON");
      }
    }
    const key = headers.get("x-refund-idempotency");
    const fingerprint = `${paymentId}\n${canonical(body)}`;
    if (key !== null) {
      if (!/^[A-Za-z0-9_-]{10,}$/.test(key)) {
        return invalid(
          "The X-Refund-Idempotency header must be at least 10 characters from A-Z, a-z, 0-9, _ and -",
          "X-Refund-Idempotency",
        );
      }
      const seen = this.#refundKeys.get(key);
      if (seen) {
        if (seen.fingerprint !== fingerprint) {
          return errorResponse(
            409,
            "The idempotency key was already used with a different request",
            {
              source: "business",
              step: "NA",
              reason: "idempotency_key_reused",
              field: "X-Refund-Idempotency",
            },
          );
        }
        return jsonResponse(200, this.#refunds.get(seen.refundId));
      }
    }
    const pay = p.entity;
    const exponent = CURRENCY_EXPONENT.get(pay.currency) ?? 2;
    if (!pay.captured) return invalid("Only captured payments can be refunded");
    const remaining = pay.amount - pay.amount_refunded;
    if (remaining <= 0) return invalid("The payment has been fully refunded already");
    let amount = remaining;
    if (body.amount !== undefined && body.amount !== null) {
      if (typeof body.amount !== "number" || !Number.isInteger(body.amount)) {
        return invalid("The amount must be an integer", "amount");
      }
      const min = minimumAmount(exponent);
      if (body.amount < min) {
        return invalid(
          `The amount must be at least ${pay.currency} ${formatMinor(min, exponent)}`,
          "amount",
        );
      }
      if (body.amount > remaining) {
        return invalid("The refund amount provided is greater than amount captured", "amount");
      }
      amount = body.amount;
    }
    const speed = body.speed ?? "normal";
    if (speed !== "normal" && speed !== "optimum") {
      return invalid("The selected speed is invalid.", "speed");
    }
    const notes = validateNotes(body.notes);
    if (notes instanceof Response) return notes;
    const receipt = body.receipt ?? null;
    if (receipt !== null && (typeof receipt !== "string" || receipt.length > 40)) {
      return invalid("The receipt may not be greater than 40 characters.", "receipt");
    }
    const refund: RefundEntity = {
      id: randomId("rfnd_"),
      entity: "refund",
      amount,
      currency: pay.currency,
      payment_id: pay.id,
      notes,
      receipt,
      acquirer_data: { arn: null },
      created_at: this.#unix(),
      batch_id: null,
      status: "processed",
      speed_processed: "normal",
      speed_requested: speed,
    };
    this.#refunds.set(refund.id, refund);
    this.#refundSeq.push(refund.id);
    p.refundIds.push(refund.id);
    if (key !== null) this.#refundKeys.set(key, { paymentId, fingerprint, refundId: refund.id });
    pay.amount_refunded += amount;
    if (pay.amount_refunded >= pay.amount) {
      pay.refund_status = "full";
      pay.status = "refunded";
    } else {
      pay.refund_status = "partial";
    }
    const created = this.#emit("refund.created", { refund, payment: pay });
    const processed = this.#emit("refund.processed", { refund, payment: pay });
    this.#hooks.schedule([created, processed], this.#defaultWebhooks);
    return jsonResponse(200, refund);
  }

  // ---------------------------------------------------------------- payment state changes

  #newPayment(order: OrderEntity, body: Json): PaymentEntity {
    return {
      id: randomId("pay_"),
      entity: "payment",
      amount: order.amount_due,
      currency: order.currency,
      status: "created",
      order_id: order.id,
      invoice_id: null,
      international: false,
      method: "card",
      amount_refunded: 0,
      refund_status: null,
      captured: false,
      description: typeof body.description === "string" ? body.description : null,
      card_id: null,
      bank: null,
      wallet: null,
      vpa: null,
      email: typeof body.email === "string" ? body.email : "customer@example.com",
      contact: typeof body.contact === "string" ? body.contact : "+919876543210",
      notes: [],
      fee: null,
      tax: null,
      error_code: null,
      error_description: null,
      error_source: null,
      error_step: null,
      error_reason: null,
      acquirer_data: {},
      created_at: this.#unix(),
    };
  }

  #markCaptured(pay: PaymentEntity, order: OrderRecord): void {
    pay.status = "captured";
    pay.captured = true;
    // Razorpay's standard plan: 2% fee plus 18% GST on the fee; fee includes tax.
    const base = Math.round(pay.amount * 0.02);
    pay.tax = Math.round(base * 0.18);
    pay.fee = base + pay.tax;
    // The Orders docs move an order to "paid" on capture, not on authorization.
    order.entity.amount_paid += pay.amount;
    order.entity.amount_due = Math.max(0, order.entity.amount - order.entity.amount_paid);
    order.entity.status = "paid";
  }

  #captureEvents(pay: PaymentEntity, order: OrderRecord): StoredEvent[] {
    return [
      this.#emit("payment.captured", { payment: pay }),
      this.#emit("order.paid", { payment: pay, order: order.entity }),
    ];
  }

  // ---------------------------------------------------------------- webhooks

  /** Records an event with snapshots of the entities as they are now. */
  #emit(type: string, entities: Record<string, object>): StoredEvent {
    const payload: Record<string, { entity: unknown }> = {};
    for (const [k, v] of Object.entries(entities)) payload[k] = { entity: clone(v) };
    const envelope = {
      entity: "event",
      account_id: ACCOUNT_ID,
      event: type,
      contains: Object.keys(entities),
      payload,
      created_at: this.#unix(),
    };
    const body = JSON.stringify(envelope);
    const payment = entities.payment as PaymentEntity | undefined;
    const order = entities.order as OrderEntity | undefined;
    const ev: StoredEvent = {
      event_id: randomId("evt_"),
      type,
      body,
      signature: razorpayHmacHex(this.#opts.webhookSecret, body),
      orderId: order?.id ?? payment?.order_id ?? null,
      paymentId: payment?.id ?? null,
    };
    this.#events.push(ev);
    return ev;
  }

  // ---------------------------------------------------------------- control endpoints

  async #control(req: Request, url: URL, path: string): Promise<Response> {
    if (req.method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: {
          "access-control-allow-origin": "*",
          "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
          "access-control-allow-headers": req.headers.get("access-control-request-headers") ??
            "content-type",
          "access-control-max-age": "600",
        },
      });
    }
    let res: Response;
    try {
      res = await this.#controlRoute(req, url, path);
    } catch (e) {
      res = e instanceof BadBody ? invalid(e.message) : serverError(500);
      if (!(e instanceof BadBody)) console.error("razorpay simulator: internal error", e);
    }
    res.headers.set("access-control-allow-origin", "*");
    return res;
  }

  async #controlRoute(req: Request, url: URL, path: string): Promise<Response> {
    const m = req.method.toUpperCase();
    const seg = path.split("/").slice(3); // drop "", "_sim", "razorpay"
    if (!path.startsWith("/_sim/razorpay")) return notFoundUrl();
    if (seg.length === 3 && seg[0] === "orders" && seg[2] === "pay" && m === "POST") {
      return this.#simPay(seg[1], await readBody(req));
    }
    if (seg.length === 3 && seg[0] === "payments" && seg[2] === "fail-late" && m === "POST") {
      return this.#simFailLate(seg[1], await readBody(req));
    }
    if (seg.length === 3 && seg[0] === "payments" && seg[2] === "auto-refund" && m === "POST") {
      return this.#simAutoRefund(seg[1], await readBody(req));
    }
    if (seg.length === 3 && seg[0] === "refunds" && seg[2] === "fail" && m === "POST") {
      return this.#simFailRefund(seg[1], await readBody(req));
    }
    if (seg.length === 1 && seg[0] === "events" && m === "GET") {
      const q = url.searchParams;
      const orderId = q.get("order_id");
      const paymentId = q.get("payment_id");
      const type = q.get("type");
      const events = this.#events
        .filter((e) =>
          (orderId === null || e.orderId === orderId) &&
          (paymentId === null || e.paymentId === paymentId) &&
          (type === null || e.type === type)
        )
        .map(({ event_id, type, body, signature }) => ({ event_id, type, body, signature }));
      return jsonResponse(200, { events });
    }
    if (seg.length === 1 && seg[0] === "deliveries" && m === "GET") {
      return jsonResponse(200, { deliveries: this.#hooks.deliveries });
    }
    if (seg.length === 1 && seg[0] === "faults") {
      if (m === "GET") return jsonResponse(200, { faults: this.#faults.list() });
      if (m === "DELETE") {
        this.#faults.clear();
        return jsonResponse(200, { faults: [] });
      }
      if (m === "POST") return this.#addFaults(await readBody(req));
    }
    if (seg.length === 1 && seg[0] === "config") {
      if (m === "POST") {
        const body = await readBody(req);
        const config = readSimConfig(body);
        if ("problem" in config) return invalid(config.problem.message, config.problem.param);
        if ("account_capture" in body) {
          const v = body.account_capture;
          if (v !== "automatic" && v !== "manual") {
            return invalid('account_capture must be "automatic" or "manual"', "account_capture");
          }
          this.#accountCapture = v;
        }
        if (config.webhookUrl !== undefined) this.setWebhookUrl(config.webhookUrl ?? undefined);
        if (config.webhooks) this.#defaultWebhooks = config.webhooks;
        if (config.chaos !== undefined) this.#hooks.setChaos(config.chaos);
      }
      if (m === "POST" || m === "GET") {
        return jsonResponse(200, {
          webhook_url: this.#hooks.url ?? null,
          webhooks: this.#defaultWebhooks,
          account_capture: this.#accountCapture,
          ...this.#hooks.chaos(),
        });
      }
    }
    return notFoundUrl();
  }

  /** Stands in for Razorpay Checkout: the customer pays (or fails to pay) an order. */
  #simPay(orderId: string, body: Json): Response {
    const order = this.#orders.get(orderId);
    if (!order) return notFoundId();
    const outcome = body.outcome;
    if (outcome !== "success" && outcome !== "failure") {
      return invalid('outcome must be "success" or "failure"', "outcome");
    }
    if (body.capture !== undefined && typeof body.capture !== "boolean") {
      return invalid("capture must be a boolean", "capture");
    }
    const late = body.authorized_after_minutes ?? 0;
    if (typeof late !== "number" || !Number.isInteger(late) || late < 0) {
      return invalid(
        "authorized_after_minutes must be a whole number of minutes",
        "authorized_after_minutes",
      );
    }
    if (order.entity.status === "paid") return invalid("Order has been paid already", "order_id");
    const hooks = { ...this.#defaultWebhooks, ...parseWebhookOptions(body.webhooks) };
    const pay = this.#newPayment(order.entity, body);
    this.#payments.set(pay.id, { entity: pay, refundIds: [] });
    this.#paymentSeq.push(pay.id);
    order.paymentIds.push(pay.id);
    order.entity.attempts += 1;
    order.entity.status = "attempted";

    if (outcome === "failure") {
      Object.assign(pay, {
        status: "failed",
        error_code: "BAD_REQUEST_ERROR",
        error_description: "Payment failed",
        error_source: "customer",
        error_step: "payment_authorization",
        error_reason: "payment_failed",
      });
      this.#hooks.schedule([this.#emit("payment.failed", { payment: pay })], hooks);
      // Checkout reports a failure to the page through payment.failed with this shape, not an HTTP error.
      return jsonResponse(200, {
        error: {
          code: "BAD_REQUEST_ERROR",
          description: "Payment failed",
          source: "customer",
          step: "payment_authorization",
          reason: "payment_failed",
          metadata: { payment_id: pay.id, order_id: order.entity.id },
        },
      });
    }

    pay.status = "authorized";
    const events = [this.#emit("payment.authorized", { payment: pay })];
    const capture = typeof body.capture === "boolean"
      ? body.capture
      : this.#capturesAutomatically(order, late);
    if (capture) {
      this.#markCaptured(pay, order);
      events.push(...this.#captureEvents(pay, order));
    }
    this.#hooks.schedule(events, hooks);
    return jsonResponse(200, {
      razorpay_payment_id: pay.id,
      razorpay_order_id: order.entity.id,
      razorpay_signature: razorpayHmacHex(this.#opts.keySecret, `${order.entity.id}|${pay.id}`),
    });
  }

  /**
   * Whether Razorpay captures an authorization by itself: the order's `payment` settings win
   * over the account's; automatic capture holds only within automatic_expiry_period minutes of
   * the payment's creation (a later, "late" authorization waits for a manual capture).
   */
  #capturesAutomatically(order: OrderRecord, authorizedAfterMinutes: number): boolean {
    const settings = order.capture;
    if (!settings) return this.#accountCapture === "automatic";
    return settings.capture === "automatic" &&
      (settings.automaticExpiryPeriod === null ||
        authorizedAfterMinutes <= settings.automaticExpiryPeriod);
  }

  /**
   * An authorization nobody captured before it expired (A4: 3 days, or the order's
   * manual_expiry_period): Razorpay refunds it. The payment becomes `refunded` with
   * `captured: false`, a refund entity records the return, and refund.created and
   * refund.processed are sent (with the payment, as every refund event). No payment.failed:
   * the payment did not fail, it was given back.
   */
  #simAutoRefund(paymentId: string, body: Json): Response {
    const p = this.#payments.get(paymentId);
    if (!p) return notFoundId();
    const pay = p.entity;
    if (pay.status !== "authorized") {
      return invalid(
        "Only a payment still authorized and never captured is refunded automatically",
      );
    }
    const order = this.#orders.get(pay.order_id)!;
    const speed = order.capture?.refundSpeed ?? "normal";
    const refund: RefundEntity = {
      id: randomId("rfnd_"),
      entity: "refund",
      amount: pay.amount,
      currency: pay.currency,
      payment_id: pay.id,
      notes: [],
      receipt: null,
      acquirer_data: { arn: null },
      created_at: this.#unix(),
      batch_id: null,
      status: "processed",
      speed_processed: "normal",
      speed_requested: speed,
    };
    this.#refunds.set(refund.id, refund);
    this.#refundSeq.push(refund.id);
    p.refundIds.push(refund.id);
    Object.assign(pay, { status: "refunded", amount_refunded: pay.amount, refund_status: "full" });
    const events = [
      this.#emit("refund.created", { refund, payment: pay }),
      this.#emit("refund.processed", { refund, payment: pay }),
    ];
    this.#hooks.schedule(events, {
      ...this.#defaultWebhooks,
      ...parseWebhookOptions(body.webhooks),
    });
    return jsonResponse(200, pay);
  }

  /** A payment.failed that arrives after the payment was captured; the stored payment is untouched. */
  #simFailLate(paymentId: string, body: Json): Response {
    const p = this.#payments.get(paymentId);
    if (!p) return notFoundId();
    const snapshot: PaymentEntity = {
      ...clone(p.entity),
      status: "failed",
      captured: false,
      amount_refunded: 0,
      refund_status: null,
      fee: null,
      tax: null,
      error_code: "BAD_REQUEST_ERROR",
      error_description: "Payment failed",
      error_source: "customer",
      error_step: "payment_authorization",
      error_reason: "payment_failed",
    };
    const ev = this.#emit("payment.failed", { payment: snapshot });
    this.#hooks.schedule([ev], { ...this.#defaultWebhooks, ...parseWebhookOptions(body.webhooks) });
    return jsonResponse(200, { event_id: ev.event_id });
  }

  /** A refund the bank later rejects: the money is back on the payment and refund.failed is sent. */
  #simFailRefund(refundId: string, body: Json): Response {
    const refund = this.#refunds.get(refundId);
    if (!refund) return notFoundId();
    if (refund.status === "failed") return invalid("The refund has failed already", "refund_id");
    const pay = this.#payments.get(refund.payment_id)!.entity;
    refund.status = "failed";
    pay.amount_refunded = Math.max(0, pay.amount_refunded - refund.amount);
    pay.refund_status = pay.amount_refunded === 0
      ? null
      : pay.amount_refunded >= pay.amount
      ? "full"
      : "partial";
    if (pay.status === "refunded" && pay.amount_refunded < pay.amount) pay.status = "captured";
    const ev = this.#emit("refund.failed", { refund, payment: pay });
    this.#hooks.schedule([ev], { ...this.#defaultWebhooks, ...parseWebhookOptions(body.webhooks) });
    return jsonResponse(200, refund);
  }

  #addFaults(body: Json): Response {
    const problem = this.#faults.add(body.faults);
    if (problem) return invalid(problem.message, problem.param);
    return jsonResponse(200, { faults: this.#faults.list() });
  }

  #unix(): number {
    return Math.floor(this.#now() / 1000);
  }
}
