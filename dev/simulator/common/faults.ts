// The fault book (/_sim/<gateway>/faults): armed failures for the next matching API requests, and
// withFaults, which applies them around a simulator's request handling.

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

/** The status a fault answers with: the three error modes, and 504 for the timeouts. */
export type FaultStatus = 500 | 502 | 503 | 504;

/**
 * Runs one API request under the fault it triggers, if any. `serverError` builds the gateway's own
 * 5xx response. The *_after modes run the request first: the side effect happened (and an
 * idempotent result was stored) but the client never learns it. "reset" modes throw
 * SimulatedConnectionReset for the mount point to turn into a dropped connection.
 */
export async function withFaults(
  book: FaultBook,
  req: Request,
  path: string,
  serverError: (status: FaultStatus) => Response,
  handle: () => Promise<Response>,
): Promise<Response> {
  const fault = book.take(req.method, path);
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
  const res = await handle();
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
