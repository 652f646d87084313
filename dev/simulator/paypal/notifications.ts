// POST /v1/notifications/verify-webhook-signature: PayPal's own check of a delivery (facts 1.6).
// The event's bytes are taken verbatim from the request (webhook_event must come last: assumed,
// as PayPal documents only that a re-encoded event fails), so a re-encoded event fails here too.
import { X509Certificate } from "node:crypto";
import { importX509 } from "jose";
import { crc32 } from "../../../shared/gateways/paypal/signature.ts";
import { invalidRequest, jsonResponse } from "./errors.ts";
import type { Call, PayPalState } from "./state.ts";

const FIELDS = [
  "auth_algo",
  "cert_url",
  "transmission_id",
  "transmission_sig",
  "transmission_time",
  "webhook_id",
] as const;

const KEY = '"webhook_event":';

export async function verifyWebhookSignature(s: PayPalState, { body, raw = "" }: Call) {
  for (const f of FIELDS) {
    if (typeof body[f] !== "string" || !(body[f] as string).length) {
      return invalidRequest("MISSING_REQUIRED_PARAMETER", `${f} is required`, `/${f}`);
    }
  }
  const at = raw.indexOf(KEY);
  if (at < 0 || body.webhook_event === undefined) {
    return invalidRequest(
      "MISSING_REQUIRED_PARAMETER",
      "webhook_event is required",
      "/webhook_event",
    );
  }
  const event = raw.slice(at + KEY.length, raw.lastIndexOf("}")).trim();
  const f = body as Record<(typeof FIELDS)[number], string>;
  const ok = await verified(s, f, event);
  return jsonResponse(200, { verification_status: ok ? "SUCCESS" : "FAILURE" });
}

async function verified(
  s: PayPalState,
  f: Record<(typeof FIELDS)[number], string>,
  event: string,
): Promise<boolean> {
  const cert = [...s.certs.values()].find((c) => s.certUrl(c.id) === f.cert_url);
  if (!cert || f.webhook_id !== s.opts.webhookId || f.auth_algo !== "SHA256withRSA") return false;
  const [leaf] = cert.pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
  const x = new X509Certificate(leaf);
  const now = new Date(s.now());
  if (now < new Date(x.validFrom) || now > new Date(x.validTo)) return false;
  let sig: Uint8Array<ArrayBuffer>;
  try {
    sig = Uint8Array.from(atob(f.transmission_sig), (c) => c.charCodeAt(0));
  } catch {
    return false;
  }
  const message = `${f.transmission_id}|${f.transmission_time}|${f.webhook_id}|${crc32(event)}`;
  const key = await importX509(leaf, "RS256") as CryptoKey;
  return await crypto.subtle.verify(
    "RSASSA-PKCS1-v1_5",
    key,
    sig,
    new TextEncoder().encode(message),
  );
}
