// Request bodies and headers: JSON objects only, bounded strings, the PayPal-Request-Id header.
import { invalidRequest } from "./errors.ts";

export type Json = Record<string, unknown>;

/** A body that is not a JSON object: 400 MALFORMED_REQUEST_JSON. */
export class BadBody extends Error {}

/** The JSON object body ({} when empty, as for a capture). */
export async function readJson(req: Request): Promise<Json> {
  return parseJson(await req.text());
}

export function parseJson(text: string): Json {
  if (!text.trim()) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new BadBody("MALFORMED_REQUEST_JSON");
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new BadBody("MALFORMED_REQUEST_JSON");
  }
  return v as Json;
}

/** PayPal-Request-Id: 1-108 characters (facts 1.2); anything else is ignored (assumed). */
export function requestIdOf(req: Request): string | null {
  const v = req.headers.get("paypal-request-id");
  return v && v.length <= 108 ? v : null;
}

/** An optional string field of 1..max characters, or the 400 PayPal answers. */
export function optionalText(body: Json, key: string, max: number): string | Response | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v.length < 1 || v.length > max) {
    return invalidRequest("INVALID_STRING_LENGTH", `${key} is 1-${max} characters`, `/${key}`);
  }
  return v;
}
