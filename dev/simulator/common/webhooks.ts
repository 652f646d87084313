// Webhook delivery shared by the simulators: per-call options, the event and delivery records,
// and the dispatcher that signs nothing itself (events arrive signed) but sends, repeats and drops.
import { type ChaosOptions, type ChaosStats, emptyStats, seededRandom } from "./chaos.ts";

type Json = Record<string, unknown>;

export interface WebhookOptions {
  /** Default true; false records the events without delivering them. */
  deliver?: boolean;
  /** Extra deliveries of each event with the same event id and body, sent concurrently. */
  duplicate?: number;
  reorder?: boolean;
  delay_ms?: number;
  /** Records the events and a "dropped" delivery, never sends them. */
  drop?: boolean;
  /**
   * Redeliveries of an event answered with a non-2xx status or not at all (both gateways retry
   * failed webhooks for hours); default 0. Same event id and body each time.
   */
  retry?: number;
  /** Wait before the first redelivery, doubled for each further one (default 100 ms). */
  retry_delay_ms?: number;
}

export interface SimEventRecord {
  event_id: string;
  type: string;
  body: string;
  signature: string;
}

export interface SimDeliveryRecord {
  event_id: string;
  type: string;
  status: number | null;
  error: string | null;
  /** 0 for the first delivery of an event, 1.. for the duplicates. */
  copy: number;
  /** 0 for the first try of a delivery, 1.. for the gateway's retries after a failure. */
  attempt: number;
}

export function parseWebhookOptions(raw: unknown): WebhookOptions {
  if (raw === null || typeof raw !== "object") return {};
  const r = raw as Json;
  const opts: WebhookOptions = {};
  if (typeof r.deliver === "boolean") opts.deliver = r.deliver;
  if (typeof r.duplicate === "number" && r.duplicate > 0) opts.duplicate = Math.floor(r.duplicate);
  if (typeof r.reorder === "boolean") opts.reorder = r.reorder;
  if (typeof r.delay_ms === "number" && r.delay_ms > 0) opts.delay_ms = r.delay_ms;
  if (typeof r.drop === "boolean") opts.drop = r.drop;
  if (typeof r.retry === "number" && r.retry > 0) opts.retry = Math.min(Math.floor(r.retry), 20);
  if (typeof r.retry_delay_ms === "number" && r.retry_delay_ms >= 0) {
    opts.retry_delay_ms = Math.min(r.retry_delay_ms, 60_000);
  }
  return opts;
}

/** Delivers signed events to the webhook URL with the duplicate/reorder/delay/drop options. */
export class WebhookDispatcher<E extends SimEventRecord> {
  url: string | undefined;
  readonly deliveries: SimDeliveryRecord[] = [];
  readonly #pending = new Set<Promise<void>>();
  #chaos: ChaosOptions | null = null;
  #random: () => number = Math.random;
  #chaosStats: ChaosStats = emptyStats();

  constructor(
    private readonly opts: {
      label: string;
      timeoutMs: number;
      headers: (e: E) => Record<string, string>;
      url?: string;
    },
  ) {
    this.url = opts.url;
  }

  /** Resolves once every scheduled delivery has finished. */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Turns chaos mode on (with a fresh generator from its seed and zeroed stats) or off. */
  setChaos(chaos: ChaosOptions | null): void {
    this.#chaos = chaos;
    this.#random = chaos ? seededRandom(chaos.seed) : Math.random;
    this.#chaosStats = emptyStats();
  }

  chaos(): { chaos: ChaosOptions | null; chaos_stats: ChaosStats } {
    return { chaos: this.#chaos, chaos_stats: { ...this.#chaosStats } };
  }

  schedule(events: E[], opts: WebhookOptions): void {
    if (opts.deliver === false || events.length === 0) return;
    if (opts.drop) {
      for (const e of events) this.#dropped(e);
      return;
    }
    if (this.#chaos) return this.#scheduleChaos(events, opts, this.#chaos);
    const ordered = opts.reorder ? [...events].reverse() : events;
    const copies = 1 + (opts.duplicate ?? 0);
    this.#track(async () => {
      if (opts.delay_ms) await sleep(opts.delay_ms);
      for (const e of ordered) {
        await Promise.all(
          Array.from({ length: copies }, (_, copy) => this.#deliverWithRetry(e, copy, opts)),
        );
      }
    });
  }

  #scheduleChaos(events: E[], opts: WebhookOptions, chaos: ChaosOptions): void {
    const rnd = this.#random;
    const stats = this.#chaosStats;
    const batch = [...events];
    if (batch.length > 1 && rnd() < chaos.reorder) {
      stats.reordered += 1;
      for (let i = batch.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [batch[i], batch[j]] = [batch[j], batch[i]];
      }
    }
    // Each event gets its own delay, so a batch's events and other batches' events interleave.
    batch.forEach((e, i) => {
      stats.events += 1;
      if (rnd() < chaos.drop) {
        stats.dropped += 1;
        this.#dropped(e);
        return;
      }
      const extra = rnd() < chaos.duplicate ? 1 + Math.floor(rnd() * chaos.max_copies) : 0;
      if (extra > 0) {
        stats.duplicated += 1;
        stats.extra_copies += extra;
      }
      // The shuffled position keeps its weight: later events of a batch tend to go later.
      const delay = chaos.delay_ms > 0 ? Math.floor(rnd() * chaos.delay_ms) + i : 0;
      if (delay > 0) stats.delayed += 1;
      this.#track(async () => {
        if (delay > 0) await sleep(delay);
        await Promise.all(
          Array.from({ length: 1 + extra }, (_, copy) => this.#deliverWithRetry(e, copy, opts)),
        );
      });
    });
  }

  #dropped(e: E): void {
    this.deliveries.push({
      event_id: e.event_id,
      type: e.type,
      status: null,
      error: "dropped",
      copy: 0,
      attempt: 0,
    });
  }

  #track(run: () => Promise<void>): void {
    const p: Promise<void> = run()
      .catch((e) => console.error(`${this.opts.label} simulator: delivery bug`, e))
      .finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }

  /** One delivery, then the gateway's retries (with doubling waits) while it fails. */
  async #deliverWithRetry(e: E, copy: number, opts: WebhookOptions): Promise<void> {
    const retries = opts.retry ?? 0;
    let wait = opts.retry_delay_ms ?? 100;
    for (let attempt = 0;; attempt++) {
      const ok = await this.#deliver(e, copy, attempt);
      if (ok || attempt >= retries) return;
      await sleep(wait);
      wait *= 2;
    }
  }

  async #deliver(e: E, copy: number, attempt: number): Promise<boolean> {
    const record: SimDeliveryRecord = {
      event_id: e.event_id,
      type: e.type,
      status: null,
      error: null,
      copy,
      attempt,
    };
    const url = this.url;
    if (!url) {
      record.error = "no webhook_url configured";
      this.deliveries.push(record);
      return true; // nothing to retry against
    }
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.opts.timeoutMs);
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: this.opts.headers(e),
        body: e.body,
        signal: ac.signal,
      });
      await res.body?.cancel();
      record.status = res.status;
      if (res.status < 200 || res.status > 299) record.error = `non-2xx response: ${res.status}`;
    } catch (err) {
      record.error = ac.signal.aborted
        ? `no response within ${this.opts.timeoutMs} ms`
        : err instanceof Error
        ? err.message
        : String(err);
    } finally {
      clearTimeout(timer);
    }
    this.deliveries.push(record);
    return record.error === null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
