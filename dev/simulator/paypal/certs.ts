// The simulator's own certificate authority: a self-signed root and leaf certificates it signs
// (X.509 v3, DER built here, RSASSA-PKCS1-v1_5 SHA-256 through WebCrypto), so the PayPal
// webhook verifier checks a real chain offline.

/** Minimal DER: tag-length-value with definite lengths. */
function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const body = concat(...parts);
  const n = body.length;
  const len = n < 0x80
    ? [n]
    : n < 0x100
    ? [0x81, n]
    : n < 0x10000
    ? [0x82, n >> 8, n & 0xff]
    : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return concat(new Uint8Array([tag, ...len]), body);
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const seq = (...p: Uint8Array[]) => tlv(0x30, ...p);
const set = (...p: Uint8Array[]) => tlv(0x31, ...p);
const utf8 = (s: string) => tlv(0x0c, new TextEncoder().encode(s));
const nullValue = () => new Uint8Array([0x05, 0x00]);
const bool = (v: boolean) => tlv(0x01, new Uint8Array([v ? 0xff : 0]));
const octets = (b: Uint8Array) => tlv(0x04, b);
const bits = (b: Uint8Array) => tlv(0x03, new Uint8Array([0]), b);

/** A positive INTEGER from big-endian bytes (a leading 0 where the top bit is set). */
function integer(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const b = bytes.slice(i);
  return tlv(0x02, b[0] & 0x80 ? concat(new Uint8Array([0]), b) : b);
}

function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const out = [40 * a + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = n >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, new Uint8Array(out));
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5). */
function time(d: Date): Uint8Array {
  const iso = d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
  const enc = new TextEncoder();
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, enc.encode(iso.slice(2)))
    : tlv(0x18, enc.encode(iso));
}

const SHA256_WITH_RSA = () => seq(oid("1.2.840.113549.1.1.11"), nullValue());

export interface DistinguishedName {
  cn: string;
  o?: string;
  c?: string;
}

function name(dn: DistinguishedName): Uint8Array {
  const rdn = (id: string, v: string) => set(seq(oid(id), utf8(v)));
  return seq(
    ...(dn.c ? [rdn("2.5.4.6", dn.c)] : []),
    ...(dn.o ? [rdn("2.5.4.10", dn.o)] : []),
    rdn("2.5.4.3", dn.cn),
  );
}

function extensions(ca: boolean): Uint8Array {
  const basic = seq(oid("2.5.29.19"), bool(true), octets(seq(...(ca ? [bool(true)] : []))));
  // keyUsage: keyCertSign|cRLSign for the root, digitalSignature for a leaf.
  const usage = ca ? new Uint8Array([1, 0x06]) : new Uint8Array([7, 0x80]);
  const keyUsage = seq(oid("2.5.29.15"), bool(true), octets(tlv(0x03, usage)));
  return tlv(0xa3, seq(basic, keyUsage));
}

const ALG = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;

export function generateRsaKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(
    { ...ALG, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
    true,
    ["sign", "verify"],
  ) as Promise<CryptoKeyPair>;
}

export function toPem(der: Uint8Array, label = "CERTIFICATE"): string {
  let b64 = "";
  const chunk = 0x8000;
  for (let i = 0; i < der.length; i += chunk) {
    b64 += String.fromCharCode(...der.subarray(i, i + chunk));
  }
  const lines = btoa(b64).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}

export interface IssueRequest {
  subject: DistinguishedName;
  issuer: DistinguishedName;
  /** The subject's public key. */
  publicKey: CryptoKey;
  /** The issuer's private key (the subject's own for a self-signed root). */
  signingKey: CryptoKey;
  notBefore: Date;
  notAfter: Date;
  ca: boolean;
}

/** One DER certificate signed by the issuer's key. */
export async function issueCertificate(r: IssueRequest): Promise<Uint8Array> {
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", r.publicKey));
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] &= 0x7f;
  const tbs = seq(
    tlv(0xa0, integer(new Uint8Array([2]))),
    integer(serial),
    SHA256_WITH_RSA(),
    name(r.issuer),
    seq(time(r.notBefore), time(r.notAfter)),
    name(r.subject),
    spki,
    extensions(r.ca),
  );
  const sig = new Uint8Array(await crypto.subtle.sign(ALG, r.signingKey, tbs));
  return seq(tbs, SHA256_WITH_RSA(), bits(sig));
}

/** PayPal's signing certificates name this CN (PayPal Java SDK SSLUtil; MARKETPLACE_FACTS 1.7). */
export const SANDBOX_SIGNER_CN = "messageverificationcerts.sandbox.paypal.com";

export interface LocalCa {
  keys: CryptoKeyPair;
  dn: DistinguishedName;
  pem: string;
}

export async function createLocalCa(now: Date): Promise<LocalCa> {
  const keys = await generateRsaKeys();
  const dn = { cn: "settle local PayPal simulator root", o: "settle dev", c: "IN" };
  const der = await issueCertificate({
    subject: dn,
    issuer: dn,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    notBefore: new Date(now.getTime() - 86_400_000),
    notAfter: new Date(now.getTime() + 10 * 365 * 86_400_000),
    ca: true,
  });
  return { keys, dn, pem: toPem(der) };
}

export interface SignerCert {
  keys: CryptoKeyPair;
  /** The leaf then the root, as PayPal serves a chain. */
  pem: string;
}

/** A webhook-signing leaf certificate from the local CA, valid from..to. */
export async function issueSigner(
  ca: LocalCa,
  opts: { cn?: string; notBefore: Date; notAfter: Date },
): Promise<SignerCert> {
  const keys = await generateRsaKeys();
  const der = await issueCertificate({
    subject: { cn: opts.cn ?? SANDBOX_SIGNER_CN, o: "PayPal, Inc.", c: "US" },
    issuer: ca.dn,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    ca: false,
  });
  return { keys, pem: toPem(der) + ca.pem };
}

// Section - the simulator's certificates

export interface CertRecord {
  /** The name at the end of its URL (PayPal's look like CERT-360caa42-fca2a594-…). */
  id: string;
  pem: string;
  privateKey: CryptoKey;
}

const certId = () => `CERT-360caa42-fca2a594-${crypto.randomUUID().slice(0, 8)}`;

/** A CA and its default signer, valid from an hour before now for a year. */
export async function localKeys(now: Date): Promise<{ ca: LocalCa; signer: CertRecord }> {
  const ca = await createLocalCa(now);
  const cert = await issueSigner(ca, {
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + 365 * 86_400_000),
  });
  return { ca, signer: { id: certId(), pem: cert.pem, privateKey: cert.keys.privateKey } };
}

/** A further signing certificate from the CA (tests ask for expired or misnamed ones). */
export async function newCertRecord(
  ca: LocalCa,
  o: { cn?: string; notBefore: Date; notAfter: Date },
): Promise<CertRecord> {
  const cert = await issueSigner(ca, o);
  return { id: certId(), pem: cert.pem, privateKey: cert.keys.privateKey };
}
