// The Stripe simulator's shared store, and the types every resource handler receives.
import {
  FaultBook,
  type SimCall,
  type SimEventRecord,
  WebhookDispatcher,
  type WebhookOptions,
} from "../common/mod.ts";
import type { CardSpec } from "./cards.ts";
import { noSuch } from "./errors.ts";
import type { Params } from "./params.ts";
import type {
  Account,
  Charge,
  Customer,
  Dispute,
  PaymentIntent,
  PaymentMethod,
  Refund,
  SetupIntent,
  Transfer,
} from "./wire.ts";

export interface StripeSimOptions {
  /** Requests must send `Authorization: Bearer <secretKey>` (Basic with the key as user also works). */
  secretKey: string;
  /** Accepted only where Stripe.js may use it: retrieving an intent with its client_secret. */
  publishableKey: string;
  /** Signs webhooks exactly as given, whsec_ prefix included (GATEWAY_FACTS B5). */
  webhookSecret: string;
  webhookUrl?: string;
  /**
   * Connect: the Connect endpoint's own signing secret (events about connected accounts, which
   * carry `account`, go to connectWebhookUrl signed with it). Unset: the platform has not signed
   * up for Connect and POST /v1/accounts is refused.
   */
  connectWebhookSecret?: string;
  connectWebhookUrl?: string;
  nowMs?: () => number;
}

const WEBHOOK_TIMEOUT_MS = 10_000; // assumed: Stripe does not publish its webhook timeout

export interface PmRecord {
  pm: PaymentMethod;
  card: CardSpec;
  /** Detached, or used once without a customer: Stripe refuses both from then on. */
  state: "usable" | "detached" | "consumed";
  /** Set up for off-session use (SetupIntent or setup_future_usage), so 3DS cards pass off-session. */
  offSessionReady: boolean;
}

export interface StoredEvent extends SimEventRecord {
  objectId: string;
  related: Set<string>;
  /** A Connect event (about a connected account): the Connect endpoint receives it. */
  account: string | null;
}

/** A POST the API pipeline received (for "sent once, under one key" assertions). */
export interface RequestRecord {
  method: string;
  path: string;
  idempotency_key: string | null;
  replayed: boolean;
  status: number;
}

export interface IdempotencyEntry {
  method: string;
  path: string;
  params: string;
  status: number;
  body: string;
  requestId: string;
}

/**
 * One API or control call: the `request` events carry, the webhook options the call's events are
 * delivered with, and the events it emitted (scheduled once the handler returns).
 */
export interface Ctx {
  request: { id: string | null; idempotency_key: string | null };
  hooks: WebhookOptions;
  events: StoredEvent[];
}

export interface Auth {
  kind: "secret" | "publishable";
  key: string;
}

export type Outcome = "success" | "failure" | "requires_action";

/** What a handler answers: a status and a body, serialized (and expanded) by the pipeline. */
export interface Res {
  status: number;
  body: unknown;
}

export const ok = (body: unknown): Res => ({ status: 200, body });

/** What a /v1 route handler receives besides the store. */
export interface ApiCall {
  /** Path parameters by name, from the route's pattern. */
  ids: Record<string, string>;
  /** Query and form parameters. */
  params: Params;
  ctx: Ctx;
  /** The request path (lists answer it as their `url`). */
  path: string;
}

export class StripeState {
  readonly opts: StripeSimOptions;
  readonly now: () => number;
  defaultWebhooks: WebhookOptions = {};
  readonly customers = new Map<string, Customer>();
  readonly pms = new Map<string, PmRecord>();
  readonly pis = new Map<string, PaymentIntent>();
  readonly charges = new Map<string, Charge>();
  readonly sis = new Map<string, SetupIntent>();
  readonly refunds = new Map<string, Refund>();
  readonly disputes = new Map<string, Dispute>();
  readonly accounts = new Map<string, Account>();
  readonly transfers = new Map<string, Transfer>();
  readonly requests: RequestRecord[] = [];
  readonly events: StoredEvent[] = [];
  readonly idempotency = new Map<string, IdempotencyEntry>();
  readonly faults = new FaultBook();
  readonly hooks: WebhookDispatcher<StoredEvent>;
  /** The Connect endpoint's deliveries (its own URL and secret). */
  readonly connectHooks: WebhookDispatcher<StoredEvent>;

  constructor(opts: StripeSimOptions) {
    this.opts = opts;
    this.now = opts.nowMs ?? Date.now;
    const dispatcher = (label: string, url: string | undefined) =>
      new WebhookDispatcher<StoredEvent>({
        label,
        timeoutMs: WEBHOOK_TIMEOUT_MS,
        url,
        headers: (e) => ({
          "content-type": "application/json; charset=utf-8",
          "stripe-signature": e.signature,
          "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
          "cache-control": "no-cache",
        }),
      });
    this.hooks = dispatcher("stripe", opts.webhookUrl);
    this.connectHooks = dispatcher("stripe connect", opts.connectWebhookUrl);
  }

  /** A call's events to their endpoints: Connect events to the Connect one, the rest here. */
  schedule(events: StoredEvent[], hooks: WebhookOptions): void {
    this.hooks.schedule(events.filter((e) => e.account === null), hooks);
    this.connectHooks.schedule(events.filter((e) => e.account !== null), hooks);
  }

  unix(): number {
    return Math.floor(this.now() / 1000);
  }

  customer(id: string, param = "id"): Customer {
    const c = this.customers.get(id);
    if (!c) throw noSuch("customer", id, param, param === "id" ? 404 : 400);
    return c;
  }

  pm(id: string, param = "id"): PmRecord {
    const rec = this.pms.get(id);
    if (!rec) throw noSuch("PaymentMethod", id, param, param === "id" ? 404 : 400);
    return rec;
  }

  paymentIntent(id: string): PaymentIntent {
    const pi = this.pis.get(id);
    if (!pi) throw noSuch("payment_intent", id, "id", 404);
    return pi;
  }

  account(id: string, param = "id"): Account {
    const a = this.accounts.get(id);
    if (!a) throw noSuch("account", id, param, param === "id" ? 404 : 400);
    return a;
  }

  transfer(id: string): Transfer {
    const t = this.transfers.get(id);
    if (!t) throw noSuch("transfer", id, "id", 404);
    return t;
  }

  setupIntent(id: string): SetupIntent {
    const si = this.sis.get(id);
    if (!si) throw noSuch("setup_intent", id, "id", 404);
    return si;
  }
}

/** A /v1 route's handler. Synchronous, so two requests with one idempotency key cannot interleave. */
export type ApiHandler = (s: StripeState, call: ApiCall) => Res;

/** What a /_sim/stripe route handler receives besides the store. */
export type ControlCall = SimCall;

export type ControlHandler = (s: StripeState, call: ControlCall) => Res | Promise<Res>;
