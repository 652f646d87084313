// What every resource's read endpoints share: retrieve, Stripe's paged lists, and `expand`.
import { invalid, noSuch } from "./errors.ts";
import {
  ALLOWED,
  createdFilter,
  EXPANDABLE,
  int,
  type Params,
  rejectUnknown,
  str,
} from "./params.ts";
import type { StripeState } from "./state.ts";
import type { Json } from "./wire.ts";
import { clone } from "./util.ts";

/** A retrieve endpoint: only `expand` is accepted besides the id. */
export function retrieve<T>(p: Params, obj: T): T {
  rejectUnknown(p, ALLOWED.retrieve);
  return obj;
}

/** Stripe lists: newest first, `limit` 1..100 (default 10), cursor by starting_after/ending_before. */
export function list<T extends { id: string }>(oldestFirst: T[], p: Params, url: string): Json {
  const limit = int(p, "limit") ?? 10;
  if (limit < 1) throw invalid("This value must be greater than or equal to 1.", "limit");
  if (limit > 100) throw invalid("This value must be less than or equal to 100.", "limit");
  const inWindow = createdFilter(p);
  let data = [...oldestFirst].reverse().filter((x) =>
    inWindow((x as { created?: number }).created)
  );
  const after = str(p, "starting_after");
  const before = str(p, "ending_before");
  let hasMore: boolean;
  if (before !== undefined) {
    const i = data.findIndex((x) => x.id === before);
    if (i < 0) throw noSuch("object", before, "ending_before");
    data = data.slice(0, i);
    hasMore = data.length > limit;
    data = data.slice(-limit);
  } else {
    if (after !== undefined) {
      const i = data.findIndex((x) => x.id === after);
      if (i < 0) throw noSuch("object", after, "starting_after");
      data = data.slice(i + 1);
    }
    hasMore = data.length > limit;
    data = data.slice(0, limit);
  }
  return { object: "list", data: clone(data), has_more: hasMore, url };
}

/** The stored object an id names, by its prefix (what `expand` replaces the id with). */
function lookup(s: StripeState, id: string): unknown {
  if (id.startsWith("cus_")) return s.customers.get(id);
  if (id.startsWith("pm_")) return s.pms.get(id)?.pm;
  if (id.startsWith("pi_")) return s.pis.get(id);
  if (id.startsWith("ch_")) return s.charges.get(id);
  if (id.startsWith("seti_")) return s.sis.get(id);
  if (id.startsWith("re_")) return s.refunds.get(id);
  if (id.startsWith("dp_")) return s.disputes.get(id);
  if (id.startsWith("acct_")) return s.accounts.get(id);
  if (id.startsWith("tr_")) return s.transfers.get(id);
  return undefined;
}

export function expand(s: StripeState, body: unknown, paths: string[]): unknown {
  const out = clone(body);
  const walk = (node: unknown, segs: string[]): void => {
    if (node === null || typeof node !== "object") return;
    const obj = node as Json;
    if (obj.object === "list" && Array.isArray(obj.data)) {
      if (segs[0] === "data") { for (const item of obj.data) walk(item, segs.slice(1)); }
      return;
    }
    const [head, ...rest] = segs;
    if (head === undefined) return;
    const value = obj[head];
    if (typeof value === "string" && (rest.length === 0 || EXPANDABLE.has(head))) {
      const found = lookup(s, value);
      if (found) obj[head] = clone(found);
    }
    if (rest.length > 0) walk(obj[head], rest);
  };
  for (const path of paths) walk(out, path.split("."));
  return out;
}
