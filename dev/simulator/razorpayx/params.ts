// Request bodies, notes and ids: what every RazorpayX resource reads and makes.
import { BadBody, invalid } from "./errors.ts";
import type { Json } from "./wire.ts";

/** A JSON object body, {} when empty; anything else is RazorpayX's 400 (BadBody). */
export async function readBody(req: Request): Promise<Json> {
  const text = await req.text();
  if (text.trim() === "") return {};
  try {
    const v = JSON.parse(text);
    if (v !== null && typeof v === "object" && !Array.isArray(v)) return v as Json;
  } catch { /* below */ }
  throw new BadBody("The request body must be a JSON object");
}

/** `notes`: an object of strings (at most 256 characters each). */
export function strings(raw: unknown): Record<string, string> | Response {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) return invalid("notes must be an object");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Json)) {
    if (typeof v !== "string" || v.length > 256) return invalid("notes values are strings");
    out[k] = v;
  }
  return out;
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function randomId(prefix: string): string {
  const out: string[] = [];
  const buf = new Uint8Array(32);
  while (out.length < 14) {
    crypto.getRandomValues(buf);
    for (const b of buf) if (b < 248 && out.length < 14) out.push(ALNUM[b % 62]);
  }
  return prefix + out.join("");
}
