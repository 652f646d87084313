// The PayPal simulator's state: objects, idempotency replies, tokens, signing certificates,
// events, the fault book and the webhook dispatcher; the handler types.
import {
  FaultBook,
  parseWebhookOptions,
  WebhookDispatcher,
  type WebhookOptions,
} from "../common/mod.ts";
import { type CertRecord, type LocalCa, localKeys } from "./certs.ts";
import type { Dispute } from "./disputes.ts";
import type { PayPalEvent } from "./events.ts";
import type { Json } from "./params.ts";
import type { Capture, CaptureOutcome, Order, Refund } from "./wire.ts";

export interface PayPalSimOptions {
  clientId: string;
  clientSecret: string;
  /** The webhook's id at PayPal: part of every signed string. */
  webhookId: string;
  webhookUrl?: string;
  nowMs?: () => number;
}

export interface OrderRecord {
  order: Order;
  /** What the capture will be, chosen when the payer approves (the /_sim approve outcome). */
  outcome: CaptureOutcome | null;
}

/** One API or control request: the request, its path parameters, its PayPal-Request-Id. */
export interface Call {
  req: Request;
  ids: Record<string, string>;
  requestId: string | null;
  /** The parsed JSON body (controls and JSON endpoints). */
  body: Json;
  /** The body's text as sent (verify-webhook-signature needs the event's exact bytes). */
  raw?: string;
}

export type Handler = (s: PayPalState, call: Call) => Promise<Response> | Response;

const WEBHOOK_TIMEOUT_MS = 10_000;

// RSA key generation is slow on a busy machine: one CA and signer per process, unless the
// simulator runs on its own clock.
let processKeys: Promise<{ ca: LocalCa; signer: CertRecord }> | undefined;

export class PayPalState {
  readonly orders = new Map<string, OrderRecord>();
  readonly captures = new Map<string, { capture: Capture; orderId: string; refunds: string[] }>();
  readonly refunds = new Map<string, Refund>();
  readonly disputes = new Map<string, Dispute>();
  /** PayPal-Request-Id → the first answer, per endpoint (orders keep 6 h, payments 45 days). */
  readonly replies = new Map<string, { status: number; body: unknown }>();
  readonly tokens = new Map<string, number>();
  readonly certs = new Map<string, CertRecord>();
  readonly events: PayPalEvent[] = [];
  readonly faults = new FaultBook();
  readonly hooks: WebhookDispatcher<PayPalEvent>;
  defaultWebhooks: WebhookOptions = {};
  /** The status new refunds get (COMPLETED, or PENDING to settle them later by control). */
  refundStatus: "COMPLETED" | "PENDING" = "COMPLETED";
  /** expires_in of new tokens (/_sim config token_seconds; PayPal's sample is nine hours). */
  tokenSeconds = 32400;
  /** Token requests answered, so tests can see the client's cache at work. */
  tokenRequests = 0;
  /** Where the simulator is mounted (links, approve pages, certificate URLs). */
  baseUrl = "http://127.0.0.1";

  private constructor(
    readonly opts: PayPalSimOptions,
    readonly ca: LocalCa,
    readonly signer: CertRecord,
  ) {
    this.certs.set(signer.id, signer);
    this.hooks = new WebhookDispatcher<PayPalEvent>({
      label: "paypal",
      timeoutMs: WEBHOOK_TIMEOUT_MS,
      url: opts.webhookUrl,
      headers: (e) => e.headers,
    });
  }

  static async create(opts: PayPalSimOptions): Promise<PayPalState> {
    const keys = opts.nowMs
      ? localKeys(new Date(opts.nowMs()))
      : (processKeys ??= localKeys(new Date()));
    const { ca, signer } = await keys;
    return new PayPalState(opts, ca, signer);
  }

  now(): number {
    return (this.opts.nowMs ?? Date.now)();
  }

  certUrl(id: string): string {
    return `${this.baseUrl}/v1/notifications/certs/${id}`;
  }

  /** A control body's webhook options over the configured defaults. */
  hooksFor(body: Json): WebhookOptions {
    return { ...this.defaultWebhooks, ...parseWebhookOptions(body.webhooks) };
  }
}
