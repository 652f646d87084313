// JSON helpers shared by the simulators.

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
