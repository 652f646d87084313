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
}

export type FaultMode =
  | "error_500"
  | "error_502"
  | "error_503"
  | "timeout"
  | "reset"
  | "timeout_after"
  | "reset_after";

const FAULT_MODES: FaultMode[] = [
  "error_500",
  "error_502",
  "error_503",
  "timeout",
  "reset",
  "timeout_after",
  "reset_after",
];

export interface FaultSpec {
  /** Omitted or "*" matches every method. */
  method?: string;
  /** Exact path, or a pattern where "*" matches any run of characters; omitted matches every /v1 path. */
  path?: string;
  mode: FaultMode;
  count?: number;
  /** Cap for the timeout modes, default 60 000 ms. */
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

export function parseWebhookOptions(raw: unknown): WebhookOptions {
  if (raw === null || typeof raw !== "object") return {};
  const r = raw as Json;
  const opts: WebhookOptions = {};
  if (typeof r.deliver === "boolean") opts.deliver = r.deliver;
  if (typeof r.duplicate === "number" && r.duplicate > 0) opts.duplicate = Math.floor(r.duplicate);
  if (typeof r.reorder === "boolean") opts.reorder = r.reorder;
  if (typeof r.delay_ms === "number" && r.delay_ms > 0) opts.delay_ms = r.delay_ms;
  if (typeof r.drop === "boolean") opts.drop = r.drop;
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

  schedule(events: E[], opts: WebhookOptions): void {
    if (opts.deliver === false || events.length === 0) return;
    if (opts.drop) {
      for (const e of events) {
        this.deliveries.push({
          event_id: e.event_id,
          type: e.type,
          status: null,
          error: "dropped",
          copy: 0,
        });
      }
      return;
    }
    const ordered = opts.reorder ? [...events].reverse() : events;
    const copies = 1 + (opts.duplicate ?? 0);
    const run = async () => {
      if (opts.delay_ms) await new Promise((r) => setTimeout(r, opts.delay_ms));
      for (const e of ordered) {
        await Promise.all(Array.from({ length: copies }, (_, copy) => this.#deliver(e, copy)));
      }
    };
    const p: Promise<void> = run()
      .catch((e) => console.error(`${this.opts.label} simulator: delivery bug`, e))
      .finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }

  async #deliver(e: E, copy: number): Promise<void> {
    const record: SimDeliveryRecord = {
      event_id: e.event_id,
      type: e.type,
      status: null,
      error: null,
      copy,
    };
    const url = this.url;
    if (!url) {
      record.error = "no webhook_url configured";
      this.deliveries.push(record);
      return;
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
  }
}
