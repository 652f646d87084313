// The PayPal simulator's state: objects, idempotency keys, tokens, signing certificates, events.
import { FaultBook, type WebhookDispatcher, type WebhookOptions } from "../common.ts";
import { createLocalCa, issueSigner, type LocalCa } from "./certs.ts";
import { eventBody, type PayPalEvent, signDelivery } from "./webhooks.ts";
import type { Capture, CaptureOutcome, Order, Refund } from "./wire.ts";

export interface PayPalSimOptions {
  clientId: string;
  clientSecret: string;
  webhookId: string;
  webhookUrl?: string;
  nowMs?: () => number;
}

export interface OrderRecord {
  order: Order;
  /** What the capture will be, chosen when the payer approves (the /_sim approve outcome). */
  outcome: CaptureOutcome | null;
}

export interface CertRecord {
  id: string;
  pem: string;
  privateKey: CryptoKey;
}

async function localKeys(now: Date): Promise<{ ca: LocalCa; signer: CertRecord }> {
  const ca = await createLocalCa(now);
  const cert = await issueSigner(ca, {
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + 365 * 86_400_000),
  });
  const id = `CERT-360caa42-fca2a594-${crypto.randomUUID().slice(0, 8)}`;
  return { ca, signer: { id, pem: cert.pem, privateKey: cert.keys.privateKey } };
}

let processKeys: Promise<{ ca: LocalCa; signer: CertRecord }> | undefined;

export class PayPalState {
  readonly orders = new Map<string, OrderRecord>();
  readonly captures = new Map<string, { capture: Capture; orderId: string; refunds: string[] }>();
  readonly refunds = new Map<string, Refund>();
  /** PayPal-Request-Id → the first answer, per endpoint (orders keep 6 h, payments 45 days). */
  readonly replies = new Map<string, { status: number; body: unknown }>();
  readonly tokens = new Map<string, number>();
  readonly certs = new Map<string, CertRecord>();
  readonly events: PayPalEvent[] = [];
  readonly faults = new FaultBook();
  defaultWebhooks: WebhookOptions = {};
  /** The refund status new refunds get (COMPLETED, or PENDING to test later settlement). */
  refundStatus: "COMPLETED" | "PENDING" = "COMPLETED";
  /** expires_in of new tokens (/_sim config token_seconds). */
  tokenSeconds = 32400;
  /** Token requests answered, so tests can see the client's cache at work. */
  tokenRequests = 0;
  /** Where the simulator is mounted (links, approve pages, certificate URLs). */
  baseUrl = "http://127.0.0.1";
  signer!: CertRecord;
  hooks!: WebhookDispatcher<PayPalEvent>;

  private constructor(readonly opts: PayPalSimOptions, readonly ca: LocalCa) {}

  static async create(opts: PayPalSimOptions): Promise<PayPalState> {
    const now = opts.nowMs ?? Date.now;
    // RSA key generation is slow on a busy machine: one CA and signer per process, unless the
    // simulator runs on its own clock.
    const keys = opts.nowMs ? localKeys(new Date(now())) : (processKeys ??= localKeys(new Date()));
    const { ca, signer } = await keys;
    const state = new PayPalState(opts, ca);
    state.signer = signer;
    state.certs.set(signer.id, signer);
    return state;
  }

  now(): number {
    return (this.opts.nowMs ?? Date.now)();
  }

  certUrl(id: string): string {
    return `${this.baseUrl}/v1/notifications/certs/${id}`;
  }

  /** A new signing certificate from the local CA (tests ask for expired or misnamed ones). */
  async issueCert(o: { cn?: string; notBefore: Date; notAfter: Date }): Promise<CertRecord> {
    const id = `CERT-360caa42-fca2a594-${crypto.randomUUID().slice(0, 8)}`;
    const cert = await issueSigner(this.ca, o);
    const rec = { id, pem: cert.pem, privateKey: cert.keys.privateKey };
    this.certs.set(id, rec);
    return rec;
  }

  /** Records a signed event and schedules its delivery. */
  async emit(
    type: string,
    resource: object,
    orderId: string | null,
    hooks: WebhookOptions,
  ): Promise<PayPalEvent> {
    const { id, body } = eventBody(type, resource, this.now(), this.baseUrl);
    const headers = await signDelivery(body, this.signer.privateKey, {
      certUrl: this.certUrl(this.signer.id),
      webhookId: this.opts.webhookId,
      nowMs: this.now(),
    });
    const e: PayPalEvent = {
      event_id: id,
      type,
      body,
      signature: headers["paypal-transmission-sig"],
      headers,
      orderId,
    };
    this.events.push(e);
    this.hooks.schedule([e], { ...this.defaultWebhooks, ...hooks });
    return e;
  }
}
