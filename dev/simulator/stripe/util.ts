// Small helpers every Stripe resource uses: Stripe-style random ids, deep copies, change diffs.
import { canonical } from "../common/mod.ts";
import type { Json } from "./wire.ts";

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function randomAlnum(length: number): string {
  const out: string[] = [];
  const buf = new Uint8Array(64);
  while (out.length < length) {
    crypto.getRandomValues(buf);
    for (const b of buf) {
      // 248 = 4 * 62: rejecting the tail keeps every character equally likely.
      if (b < 248 && out.length < length) out.push(ALNUM[b % 62]);
    }
  }
  return out.join("");
}

export const randomId = (prefix: string, length = 24) => prefix + randomAlnum(length);

/** 16 id characters from a digest (card fingerprints). */
export function fingerprintFrom(digest: Uint8Array): string {
  return Array.from(digest.subarray(0, 16), (b) => ALNUM[b % 62]).join("");
}

export const clone = <T>(v: T): T => structuredClone(v);

/** Old values of the fields that changed, nested objects diffed key by key; null if none changed. */
export function diff(before: Json, after: Json): Json | null {
  const out: Json = {};
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  for (const k of keys) {
    const a = before[k];
    const b = after[k];
    if (canonical(a) === canonical(b)) continue;
    const isObj = (v: unknown) => v !== null && typeof v === "object" && !Array.isArray(v);
    if (isObj(a) && isObj(b)) {
      const inner = diff(a as Json, b as Json);
      if (inner) out[k] = inner;
    } else {
      out[k] = a === undefined ? null : clone(a);
    }
  }
  return Object.keys(out).length > 0 ? out : null;
}
