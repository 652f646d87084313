// The Razorpay simulator's shared store, and the types every resource handler receives.
import {
  FaultBook,
  parseWebhookOptions,
  type SimCall,
  type SimEventRecord,
  WebhookDispatcher,
  type WebhookOptions,
} from "../common/mod.ts";
import type { DisputeEntity, Json, OrderEntity, PaymentEntity, RefundEntity } from "./wire.ts";

export interface RazorpaySimOptions {
  keyId: string;
  keySecret: string;
  /** Distinct from keySecret, as on the Razorpay Dashboard. */
  webhookSecret: string;
  webhookUrl?: string;
  nowMs?: () => number;
}

const WEBHOOK_TIMEOUT_MS = 5_000; // Razorpay gives up on a webhook that has not answered 2xx in 5 s.

/** An order's `payment` settings (capture-settings/api.md); periods are in minutes. */
export interface CaptureSettings {
  capture: "automatic" | "manual";
  automaticExpiryPeriod: number | null;
  manualExpiryPeriod: number;
  refundSpeed: "normal" | "optimum";
}

export interface OrderRecord {
  entity: OrderEntity;
  /** Null: the account-level setting applies (automatic unless /_sim config says manual). */
  capture: CaptureSettings | null;
  paymentIds: string[];
}

export interface PaymentRecord {
  entity: PaymentEntity;
  refundIds: string[];
}

export interface StoredEvent extends SimEventRecord {
  orderId: string | null;
  paymentId: string | null;
}

/** What a route handler (API or control) receives besides the store. */
export type Call = SimCall;

/** Handlers answer a Response: Razorpay's errors are plain values here, not exceptions. */
export type Handler = (s: RazorpayState, call: Call) => Response | Promise<Response>;

export class RazorpayState {
  readonly opts: RazorpaySimOptions;
  readonly now: () => number;
  readonly expectedAuth: string;
  defaultWebhooks: WebhookOptions = {};
  /** The Dashboard's account-level capture setting, for orders without `payment` (A2). */
  accountCapture: "automatic" | "manual" = "automatic";
  readonly orders = new Map<string, OrderRecord>();
  readonly orderSeq: string[] = [];
  readonly payments = new Map<string, PaymentRecord>();
  readonly paymentSeq: string[] = [];
  readonly refunds = new Map<string, RefundEntity>();
  readonly refundSeq: string[] = [];
  readonly disputes = new Map<string, DisputeEntity>();
  readonly disputeSeq: string[] = [];
  readonly refundKeys = new Map<
    string,
    { paymentId: string; fingerprint: string; refundId: string }
  >();
  readonly events: StoredEvent[] = [];
  readonly faults = new FaultBook();
  readonly hooks: WebhookDispatcher<StoredEvent>;

  constructor(opts: RazorpaySimOptions) {
    this.opts = opts;
    this.now = opts.nowMs ?? Date.now;
    this.hooks = new WebhookDispatcher<StoredEvent>({
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
    this.expectedAuth = `Basic ${btoa(`${opts.keyId}:${opts.keySecret}`)}`;
  }

  unix(): number {
    return Math.floor(this.now() / 1000);
  }

  /** A control call's webhook options: its body's `webhooks` over the /_sim config defaults. */
  hooksFor(body: Json): WebhookOptions {
    return { ...this.defaultWebhooks, ...parseWebhookOptions(body.webhooks) };
  }
}
