// What the gateway simulators share: webhook options and delivery, injected faults, resets.

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

/**
 * Chaos mode (set through /_sim/<gateway>/config): every scheduled event is, at random from a
 * seeded generator, dropped, delivered more than once (concurrently) and delayed, and each
 * batch may be shuffled, so deliveries of one order and of different orders interleave.
 */
export interface ChaosOptions {
  seed: number;
  /** Probability an event is never delivered. */
  drop: number;
  /** Probability an event is delivered more than once. */
  duplicate: number;
  /** Extra copies of a duplicated event: 1..max_copies (default 3). */
  max_copies: number;
  /** Probability a batch (the events of one API call) is shuffled. */
  reorder: number;
  /** Each event waits a random 0..delay_ms before delivery. */
  delay_ms: number;
}

export interface ChaosStats {
  /** Events scheduled while chaos was on. */
  events: number;
  dropped: number;
  /** Events delivered more than once, and the extra deliveries they made. */
  duplicated: number;
  extra_copies: number;
  /** Batches of two or more events that were shuffled. */
  reordered: number;
  /** Events that waited before delivery. */
  delayed: number;
}

const emptyStats = (): ChaosStats => ({
  events: 0,
  dropped: 0,
  duplicated: 0,
  extra_copies: 0,
  reordered: 0,
  delayed: 0,
});

/** mulberry32: a small seeded generator, so a chaos run can be repeated from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** null turns chaos off; otherwise the options, or the first problem (message, param). */
export function parseChaosOptions(
  raw: unknown,
): { chaos: ChaosOptions | null } | { message: string; param: string } {
  if (raw === null || raw === false) return { chaos: null };
  if (typeof raw !== "object" || Array.isArray(raw)) {
    return { message: "chaos must be an object or null", param: "chaos" };
  }
  const r = raw as Record<string, unknown>;
  const known = ["seed", "drop", "duplicate", "max_copies", "reorder", "delay_ms"];
  const unknown = Object.keys(r).find((k) => !known.includes(k));
  if (unknown) return { message: `unknown chaos option ${unknown}`, param: `chaos.${unknown}` };
  const chaos: ChaosOptions = {
    seed: 1,
    drop: 0,
    duplicate: 0,
    max_copies: 3,
    reorder: 0,
    delay_ms: 0,
  };
  for (const k of ["drop", "duplicate", "reorder"] as const) {
    const v = r[k] ?? 0;
    if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
      return { message: `chaos.${k} must be a probability from 0 to 1`, param: `chaos.${k}` };
    }
    chaos[k] = v;
  }
  const ints = { seed: [0, 2 ** 32 - 1], max_copies: [1, 10], delay_ms: [0, 60_000] } as const;
  for (const [k, [min, max]] of Object.entries(ints) as [keyof typeof ints, readonly number[]][]) {
    const v = r[k] ?? chaos[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      return {
        message: `chaos.${k} must be an integer from ${min} to ${max}`,
        param: `chaos.${k}`,
      };
    }
    chaos[k] = v;
  }
  return { chaos };
}

export type FaultMode =
  | "error_500"
  | "error_502"
  | "error_503"
  | "timeout"
  | "reset"
  | "timeout_after"
  | "reset_after"
  /** Holds the request hold_ms, then answers it normally (a slow gateway). */
  | "delay";

const FAULT_MODES: FaultMode[] = [
  "error_500",
  "error_502",
  "error_503",
  "timeout",
  "reset",
  "timeout_after",
  "reset_after",
  "delay",
];

export interface FaultSpec {
  /** Omitted or "*" matches every method. */
  method?: string;
  /** Exact path, or a pattern where "*" matches any run of characters; omitted matches every /v1 path. */
  path?: string;
  mode: FaultMode;
  count?: number;
  /** Cap for the timeout modes and the wait of delay, default 60 000 ms. */
  hold_ms?: number;
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

export class SimulatedConnectionReset extends Error {
  constructor() {
    super("simulated connection reset");
    this.name = "SimulatedConnectionReset";
  }
}

/** The closest Deno.serve gets to a dropped connection: the body stream errors after the status line. */
export function simulatedResetResponse(): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.error(new SimulatedConnectionReset());
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
}

type Json = Record<string, unknown>;

/** JSON with sorted keys: equal values give equal strings (idempotency replay comparisons). */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value as Json).sort().map((k) =>
      `${JSON.stringify(k)}:${canonical((value as Json)[k])}`
    );
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Resolves when the client goes away or after ms, whichever comes first. */
export function holdUntilAbort(signal: AbortSignal, ms: number): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/**
 * A /_sim/<gateway>/config body, the same for both simulators: everything is validated before
 * anything changes. Absent fields come back undefined (unchanged); webhookUrl null clears it.
 */
export function readSimConfig(body: Json):
  | { problem: { message: string; param: string } }
  | { webhookUrl?: string | null; webhooks?: WebhookOptions; chaos?: ChaosOptions | null } {
  const chaos = "chaos" in body ? parseChaosOptions(body.chaos) : undefined;
  if (chaos && "message" in chaos) return { problem: chaos };
  const url = body.webhook_url;
  if ("webhook_url" in body && url !== null && typeof url !== "string") {
    return { problem: { message: "webhook_url must be a string or null", param: "webhook_url" } };
  }
  return {
    webhookUrl: "webhook_url" in body ? url as string | null : undefined,
    webhooks: "webhooks" in body ? parseWebhookOptions(body.webhooks) : undefined,
    chaos: chaos?.chaos,
  };
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

export interface ActiveFault {
  method: string;
  pattern: RegExp;
  path: string;
  mode: FaultMode;
  remaining: number;
  holdMs: number;
}

const DEFAULT_HOLD_MS = 60_000;

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`);
}

/** Faults armed through /_sim/.../faults: the next `count` matching API requests fail. */
export class FaultBook {
  #faults: ActiveFault[] = [];

  /** Adds every spec, or none: returns the first problem (message, param) instead. */
  add(list: unknown): { message: string; param: string } | null {
    if (!Array.isArray(list)) return { message: "faults must be an array", param: "faults" };
    const parsed: ActiveFault[] = [];
    for (const raw of list as FaultSpec[]) {
      if (raw === null || typeof raw !== "object" || !FAULT_MODES.includes(raw.mode)) {
        return { message: `mode must be one of ${FAULT_MODES.join(", ")}`, param: "mode" };
      }
      const count = raw.count ?? 1;
      if (!Number.isInteger(count) || count < 1) {
        return { message: "count must be a positive integer", param: "count" };
      }
      const path = raw.path ?? "/v1/*";
      parsed.push({
        method: (raw.method ?? "*").toUpperCase(),
        path,
        pattern: globToRegExp(path.replace(/\/+$/, "") || "/"),
        mode: raw.mode,
        remaining: count,
        holdMs: typeof raw.hold_ms === "number" && raw.hold_ms >= 0 ? raw.hold_ms : DEFAULT_HOLD_MS,
      });
    }
    this.#faults.push(...parsed);
    return null;
  }

  list() {
    return this.#faults.map((f) => ({
      method: f.method,
      path: f.path,
      mode: f.mode,
      count: f.remaining,
      hold_ms: f.holdMs,
    }));
  }

  clear(): void {
    this.#faults = [];
  }

  /** The fault this request triggers, if any, counting it down. */
  take(method: string, path: string): ActiveFault | undefined {
    const m = method.toUpperCase();
    const f = this.#faults.find((f) =>
      (f.method === "*" || f.method === m) && f.pattern.test(path)
    );
    if (!f) return undefined;
    f.remaining -= 1;
    if (f.remaining <= 0) this.#faults = this.#faults.filter((x) => x !== f);
    return f;
  }
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
