// PayPal webhook signatures verified offline (MARKETPLACE_FACTS 1.7): CRC-32 of the raw body,
// SHA256withRSA over transmission_id|transmission_time|webhook_id|crc32, a certificate fetched
// only from PayPal's hosts over https, cached, its chain, subject and validity checked.
import { X509Certificate } from "node:crypto";
import { importX509 } from "jose";

// Section - CRC-32 (IEEE 802.3, zlib's; node:zlib.crc32 is absent in Deno)

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** The unsigned CRC-32 of bytes (a string is taken as its UTF-8 bytes). */
export function crc32(data: Uint8Array | string): number {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The string PayPal signs: the headers as received, the CRC in decimal. */
export function signedMessage(
  transmissionId: string,
  transmissionTime: string,
  webhookId: string,
  rawBody: string,
): string {
  return `${transmissionId}|${transmissionTime}|${webhookId}|${crc32(rawBody)}`;
}

// Section - certificates

/** Hosts PayPal serves its webhook signing certificates from (no official list; facts 1.7). */
export const PAYPAL_CERT_HOSTS = [
  "api.paypal.com",
  "api-m.paypal.com",
  "api.sandbox.paypal.com",
  "api-m.sandbox.paypal.com",
];
const CERT_PATH = "/v1/notifications/certs/";
/** The subject CN of PayPal's signing certificates (Java SDK: CN=messageverificationcerts…). */
const SIGNER_CN = /^messageverificationcerts(\.sandbox)?\.paypal\.com$/;
/** PayPal publishes no tolerance: ten minutes either way, with dedup on the event id. */
export const MAX_CLOCK_SKEW_MS = 10 * 60 * 1000;
const MAX_CERT_BYTES = 64 * 1024;
const CACHE_LIMIT = 32;

export interface CertPolicy {
  /**
   * Development only (PAYPAL_DEV_CERT_URL): one more URL prefix certificates may come from, and
   * the local CA's PEM the chain must end at. Production allows PayPal's hosts only.
   */
  devCertUrl?: string;
  devCaPem?: string;
  timeoutMs: number;
  fetch?: typeof fetch;
  now?: () => Date;
}

export class SignatureError extends Error {}

/** Whether a cert URL may be fetched: https, PayPal's hosts and path; or the dev prefix. */
export function certUrlAllowed(raw: string, devCertUrl?: string): boolean {
  if (devCertUrl && raw.startsWith(devCertUrl) && !raw.slice(devCertUrl.length).includes("..")) {
    return true;
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  return u.protocol === "https:" && u.port === "" && u.username === "" && u.password === "" &&
    PAYPAL_CERT_HOSTS.includes(u.hostname) && u.pathname.startsWith(CERT_PATH) &&
    /^[A-Za-z0-9._-]+$/.test(u.pathname.slice(CERT_PATH.length)) && u.search === "";
}

function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g) ??
    [];
}

const cn = (dn: string) => /(?:^|\n)CN=([^\n]*)/.exec(dn)?.[1] ?? "";

function checkTimes(c: X509Certificate, now: Date, what: string) {
  if (now < new Date(c.validFrom) || now > new Date(c.validTo)) {
    throw new SignatureError(`${what} is outside its validity period`);
  }
}

/**
 * The signing certificate's key, after the checks: the leaf's CN is PayPal's signer's, every
 * certificate of the served chain is in its validity period and signed by the next one, and in
 * development the chain ends at the local CA.
 */
export async function checkedSigningKey(
  pem: string,
  policy: CertPolicy,
  now: Date,
): Promise<CryptoKey> {
  const blocks = pemBlocks(pem);
  if (blocks.length === 0) throw new SignatureError("the certificate URL served no certificate");
  let chain: X509Certificate[];
  try {
    chain = blocks.map((b) => new X509Certificate(b));
  } catch {
    throw new SignatureError("the certificate does not parse");
  }
  const leaf = chain[0];
  if (!SIGNER_CN.test(cn(leaf.subject)) || leaf.ca) {
    throw new SignatureError("the certificate is not PayPal's webhook signing certificate");
  }
  chain.forEach((c, i) => checkTimes(c, now, i === 0 ? "the certificate" : "a chain certificate"));
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i + 1].ca || !chain[i].verify(chain[i + 1].publicKey)) {
      throw new SignatureError("the certificate chain does not verify");
    }
  }
  if (policy.devCaPem) {
    const root = new X509Certificate(policy.devCaPem);
    const last = chain[chain.length - 1];
    const anchored = last.fingerprint256 === root.fingerprint256 || last.verify(root.publicKey);
    if (!anchored) throw new SignatureError("the certificate is not from the trusted CA");
  }
  return await importX509(blocks[0], "RS256", { extractable: false }) as CryptoKey;
}

/** Certificates by URL, per gateway instance; each use re-checks validity against the clock. */
export class CertCache {
  readonly #entries = new Map<string, Promise<string>>();

  constructor(readonly policy: CertPolicy) {}

  async key(url: string, now: Date): Promise<CryptoKey> {
    if (!certUrlAllowed(url, this.policy.devCertUrl)) {
      throw new SignatureError("PAYPAL-CERT-URL is not one of PayPal's certificate URLs");
    }
    let pem = this.#entries.get(url);
    if (!pem) {
      if (this.#entries.size >= CACHE_LIMIT) {
        this.#entries.delete(this.#entries.keys().next().value!);
      }
      pem = this.#download(url);
      this.#entries.set(url, pem);
      // A failed download is not cached: the next delivery tries again.
      pem.catch(() => this.#entries.delete(url));
    }
    return await checkedSigningKey(await pem, this.policy, now);
  }

  async #download(url: string): Promise<string> {
    let res: Response;
    try {
      res = await (this.policy.fetch ?? fetch)(url, {
        redirect: "error",
        signal: AbortSignal.timeout(this.policy.timeoutMs),
      });
    } catch (err) {
      throw new CertUnavailable(`the certificate could not be fetched: ${String(err)}`);
    }
    const text = await res.text().catch(() => "");
    if (!res.ok) throw new SignatureError(`the certificate URL answered ${res.status}`);
    if (text.length > MAX_CERT_BYTES) throw new SignatureError("the certificate is too large");
    return text;
  }
}

/** PayPal's certificate host could not be reached: not a forgery, PayPal should retry (503). */
export class CertUnavailable extends Error {}

export interface TransmissionHeaders {
  transmissionId: string;
  transmissionTime: string;
  transmissionSig: string;
  certUrl: string;
  authAlgo: string;
}

const HEADER_NAMES = {
  transmissionId: "paypal-transmission-id",
  transmissionTime: "paypal-transmission-time",
  transmissionSig: "paypal-transmission-sig",
  certUrl: "paypal-cert-url",
  authAlgo: "paypal-auth-algo",
} as const;

/** The five transmission headers, each present and bounded, or a SignatureError naming one. */
export function readTransmissionHeaders(headers: Headers): TransmissionHeaders {
  const out = {} as Record<keyof TransmissionHeaders, string>;
  for (const [key, header] of Object.entries(HEADER_NAMES)) {
    const v = headers.get(header);
    if (!v) throw new SignatureError(`missing ${header.toUpperCase()}`);
    if (v.length > 500) throw new SignatureError(`${header.toUpperCase()} is too long`);
    out[key as keyof TransmissionHeaders] = v;
  }
  return out;
}

/** The headers, the algorithm and the transmission time: what both verification modes check. */
export function checkedHeaders(headers: Headers, now: Date): TransmissionHeaders {
  const h = readTransmissionHeaders(headers);
  if (h.authAlgo !== "SHA256withRSA") {
    throw new SignatureError("PAYPAL-AUTH-ALGO must be SHA256withRSA");
  }
  const sent = Date.parse(h.transmissionTime);
  if (!/^\d{4}-\d\d-\d\dT/.test(h.transmissionTime) || Number.isNaN(sent)) {
    throw new SignatureError("PAYPAL-TRANSMISSION-TIME is not an RFC 3339 time");
  }
  if (Math.abs(now.getTime() - sent) > MAX_CLOCK_SKEW_MS) {
    throw new SignatureError("PAYPAL-TRANSMISSION-TIME is too far from now");
  }
  return h;
}

/**
 * The verify-webhook-signature request body, with the delivered body spliced in verbatim as
 * webhook_event (last, so the server can take its exact bytes).
 */
export function postbackBody(h: TransmissionHeaders, webhookId: string, rawBody: string): string {
  const fields = JSON.stringify({
    auth_algo: h.authAlgo,
    cert_url: h.certUrl,
    transmission_id: h.transmissionId,
    transmission_sig: h.transmissionSig,
    transmission_time: h.transmissionTime,
    webhook_id: webhookId,
  });
  return `${fields.slice(0, -1)},"webhook_event":${rawBody}}`;
}

function base64Bytes(s: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return null;
  try {
    return Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));
  } catch {
    return null;
  }
}

/**
 * Verifies a delivery (throws SignatureError): headers, the algorithm, the transmission time
 * within MAX_CLOCK_SKEW_MS, the certificate, then the RSA signature over the signed string.
 */
export async function verifyTransmission(
  rawBody: string,
  headers: Headers,
  webhookId: string,
  certs: CertCache,
  now: Date,
): Promise<TransmissionHeaders> {
  const h = checkedHeaders(headers, now);
  const sig = base64Bytes(h.transmissionSig);
  if (!sig) throw new SignatureError("PAYPAL-TRANSMISSION-SIG is not base64");
  const key = await certs.key(h.certUrl, now);
  const message = signedMessage(h.transmissionId, h.transmissionTime, webhookId, rawBody);
  const ok = await crypto.subtle.verify(
    "RSASSA-PKCS1-v1_5",
    key,
    sig,
    new TextEncoder().encode(message),
  );
  if (!ok) throw new SignatureError("PAYPAL-TRANSMISSION-SIG does not match the body");
  return h;
}
