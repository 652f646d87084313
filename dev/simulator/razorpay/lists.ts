// Razorpay's collections: paging shared by every list endpoint.
import { invalid, jsonResponse } from "./errors.ts";

/** Paging shared by every list endpoint (count 1..100, skip, from/to); newest first like Razorpay. */
export function list(q: URLSearchParams, all: { created_at: number }[]): Response {
  const ints: Record<string, number | undefined> = {};
  for (const name of ["count", "skip", "from", "to"]) {
    const raw = q.get(name);
    if (raw === null || raw === "") continue;
    if (!/^\d+$/.test(raw)) return invalid(`The ${name} must be an integer.`, name);
    ints[name] = Number(raw);
  }
  const count = ints.count ?? 10;
  if (count < 1) return invalid("The count must be at least 1.", "count");
  if (count > 100) return invalid("The count may not be greater than 100.", "count");
  const skip = ints.skip ?? 0;
  const filtered = all
    .filter((e) =>
      (ints.from === undefined || e.created_at >= ints.from) &&
      (ints.to === undefined || e.created_at <= ints.to)
    )
    .reverse();
  const items = filtered.slice(skip, skip + count);
  return jsonResponse(200, { entity: "collection", count: items.length, items });
}
