// The RazorpayX simulator's shared store, and the types every resource handler receives.
import {
  FaultBook,
  type SimCall,
  type SimEventRecord,
  WebhookDispatcher,
  type WebhookOptions,
} from "../common/mod.ts";
import type { Contact, FundAccount, Payout } from "./wire.ts";

export interface RazorpayXSimOptions {
  keyId: string;
  keySecret: string;
  /** The business's RazorpayX account number every payout must name. */
  accountNumber: string;
  /** The RazorpayX Dashboard's webhook secret (not the Razorpay PG one). */
  webhookSecret: string;
  webhookUrl?: string;
  nowMs?: () => number;
}

export interface StoredEvent extends SimEventRecord {
  payoutId: string;
}

/** What a route handler (API or control) receives besides the store. */
export type Call = SimCall;

/** Handlers answer a Response: RazorpayX's errors are plain values here, not exceptions. */
export type Handler = (s: RazorpayXState, call: Call) => Response | Promise<Response>;

export class RazorpayXState {
  readonly opts: RazorpayXSimOptions;
  readonly now: () => number;
  readonly expectedAuth: string;
  readonly contacts = new Map<string, Contact>();
  readonly fundAccounts = new Map<string, FundAccount>();
  readonly payouts = new Map<string, Payout>();
  /** X-Payout-Idempotency key -> the body it came with and the payout it made. */
  readonly keys = new Map<string, { fingerprint: string; payoutId: string }>();
  readonly events: StoredEvent[] = [];
  readonly faults = new FaultBook();
  readonly hooks: WebhookDispatcher<StoredEvent>;
  defaultWebhooks: WebhookOptions = {};
  /** Payout create requests received (each try counts), for "sent once" assertions. */
  createRequests = 0;

  constructor(opts: RazorpayXSimOptions) {
    this.opts = opts;
    this.now = opts.nowMs ?? Date.now;
    this.expectedAuth = `Basic ${btoa(`${opts.keyId}:${opts.keySecret}`)}`;
    this.hooks = new WebhookDispatcher<StoredEvent>({
      label: "razorpayx",
      timeoutMs: 5_000,
      url: opts.webhookUrl,
      headers: (e) => ({
        "content-type": "application/json",
        "x-razorpay-signature": e.signature,
        "x-razorpay-event-id": e.event_id,
        "user-agent": "Razorpay-Webhook/v1",
      }),
    });
  }

  unix(): number {
    return Math.floor(this.now() / 1000);
  }
}
