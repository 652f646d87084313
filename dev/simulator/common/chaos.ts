// Chaos mode for webhook delivery: options, their validation, the seeded generator, the stats.

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

export const emptyStats = (): ChaosStats => ({
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
