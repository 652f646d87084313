// Request bodies (JSON or form-encoded) and the validation Razorpay applies to notes and an
// order's `payment` capture settings.
import { BadBody, invalid } from "./errors.ts";
import type { CaptureSettings } from "./state.ts";
import type { Json, Notes } from "./wire.ts";

// Razorpay rejects fields it does not know; these are the documented optional ones for orders.
export const ORDER_FIELDS = new Set(
  ("amount currency receipt notes partial_payment first_payment_min_amount payment method " +
    "bank_account offer_id customer_id token transfers").split(" "),
);

export const MAX_EXPIRY_MINUTES = 7200;

/** Validates an order's `payment` field as Razorpay documents it; an error Response if bad. */
export function parseCaptureSettings(raw: unknown): Response | CaptureSettings | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    return invalid("The payment field must be an object", "payment");
  }
  const { capture, capture_options: options, ...extra } = raw as Json;
  if (Object.keys(extra).length > 0) {
    return invalid(`${Object.keys(extra).join(", ")} is/are not required and should not be sent`);
  }
  if (capture !== "automatic" && capture !== "manual") {
    return invalid("The payment.capture field must be automatic or manual", "payment.capture");
  }
  const o = (options ?? {}) as Json;
  if (typeof o !== "object" || Array.isArray(o)) {
    return invalid("The payment.capture_options field must be an object", "capture_options");
  }
  const minutes = (name: string, min: number) => {
    const v = o[name];
    if (v === undefined) return undefined;
    return typeof v === "number" && Number.isInteger(v) && v >= min && v <= MAX_EXPIRY_MINUTES
      ? v
      : invalid(`The ${name} must be an integer between ${min} and ${MAX_EXPIRY_MINUTES}`, name);
  };
  const automatic = minutes("automatic_expiry_period", 12);
  const manual = minutes("manual_expiry_period", 0);
  if (automatic instanceof Response) return automatic;
  if (manual instanceof Response) return manual;
  if (options !== undefined && capture === "automatic" && automatic === undefined) {
    return invalid("The automatic_expiry_period field is required", "automatic_expiry_period");
  }
  if (automatic !== undefined && manual !== undefined && manual < automatic) {
    return invalid(
      "The manual_expiry_period must be greater than or equal to the automatic_expiry_period",
      "manual_expiry_period",
    );
  }
  const speed = o.refund_speed ?? "normal";
  if (speed !== "normal" && speed !== "optimum") {
    return invalid("The selected refund_speed is invalid.", "refund_speed");
  }
  return {
    capture,
    automaticExpiryPeriod: automatic ?? null,
    manualExpiryPeriod: manual ?? MAX_EXPIRY_MINUTES,
    refundSpeed: speed,
  };
}

export async function readBody(req: Request): Promise<Json> {
  const text = await req.text();
  if (text.trim() === "") return {};
  const type = req.headers.get("content-type") ?? "";
  if (type.includes("application/x-www-form-urlencoded")) {
    const out: Json = {};
    for (const [k, v] of new URLSearchParams(text)) {
      const m = /^(\w+)\[(.+)\]$/.exec(k);
      if (m) {
        const inner = (out[m[1]] ??= {}) as Record<string, string>;
        inner[m[2]] = v;
      } else {
        // Form-encoded clients can only send strings; Razorpay coerces numeric ones.
        out[k] = /^-?\d+(\.\d+)?$/.test(v)
          ? Number(v)
          : v === "true"
          ? true
          : v === "false"
          ? false
          : v;
      }
    }
    return out;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BadBody("The request body is not valid JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new BadBody("The request body must be a JSON object");
  }
  return parsed as Json;
}

/** Returns an error Response, or the normalised notes. */
export function validateNotes(raw: unknown): Response | Notes {
  if (raw === undefined || raw === null) return [];
  if (Array.isArray(raw)) {
    return raw.length === 0 ? [] : invalid("The notes must be an object", "notes");
  }
  if (typeof raw !== "object") return invalid("The notes must be an object", "notes");
  const entries = Object.entries(raw as Json);
  if (entries.length > 15) {
    return invalid("Number of fields in notes should be less than or equal to 15", "notes");
  }
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (v !== null && typeof v === "object") {
      return invalid("Notes values must be strings", "notes");
    }
    const s = v === null ? "" : String(v);
    if (s.length > 256) {
      return invalid("Notes value(s) may not be greater than 256 characters", "notes");
    }
    out[k] = s;
  }
  return out;
}
