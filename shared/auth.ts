// Verifies Supabase JWTs in the function: inline JWKS, the project's JWKS URL, or HS256 secret.
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
} from "jose";
import { HttpError } from "./http.ts";

export interface Caller {
  role: "authenticated" | "service_role";
  /** The auth user id; absent for the service role. */
  userId?: string;
  claims: JWTPayload;
}

export interface AuthOptions {
  jwks?: JSONWebKeySet;
  jwksUrl?: string;
  hsSecret?: string;
  now?: () => Date;
  /** Verified tokens remembered until their exp (default 1024; 0 turns the cache off). */
  cacheSize?: number;
}

export type Authenticator = (req: Request) => Promise<Caller>;

const ASYMMETRIC = ["ES256", "RS256", "EdDSA"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function unauthorized(message: string): HttpError {
  return new HttpError(401, "unauthorized", message);
}

interface Verified {
  caller: Caller;
  /** jose's window, in whole epoch seconds: valid while nbf <= now < exp. */
  nbf: number;
  exp: number;
}

/**
 * Tokens that passed every check, keyed by the exact token string, each until its own exp and
 * never beyond. A token string always verifies the same way, so only the clock can change the
 * answer, and the window is checked again on every hit exactly as jose checks it. Failures are
 * never remembered. Bounded: the oldest entry goes first.
 */
class VerifiedTokens {
  #map = new Map<string, Verified>();
  constructor(readonly max: number) {}

  get(token: string, nowSec: number): Caller | undefined {
    const v = this.#map.get(token);
    if (!v) return undefined;
    if (nowSec >= v.nbf && nowSec < v.exp) return v.caller;
    if (nowSec >= v.exp) this.#map.delete(token);
    return undefined;
  }

  set(token: string, caller: Caller, nowSec: number) {
    const exp = caller.claims.exp;
    if (this.max <= 0 || typeof exp !== "number" || !(nowSec < exp)) return;
    const nbf = typeof caller.claims.nbf === "number" ? caller.claims.nbf : -Infinity;
    this.#map.delete(token);
    while (this.#map.size >= this.max) {
      this.#map.delete(this.#map.keys().next().value!);
    }
    // One object answers many requests: frozen, so none can change what the next one sees.
    Object.freeze(caller.claims);
    this.#map.set(token, { caller: Object.freeze(caller), nbf, exp });
  }
}

/**
 * The key follows the token's algorithm: HS256 only with the configured secret, asymmetric
 * algorithms only with a JWKS. `alg: none` and anything else are refused before any check.
 */
export function createAuthenticator(opts: AuthOptions): Authenticator {
  const local = opts.jwks ? createLocalJWKSet(opts.jwks) : undefined;
  const remote = !local && opts.jwksUrl ? createRemoteJWKSet(new URL(opts.jwksUrl)) : undefined;
  const secret = opts.hsSecret ? new TextEncoder().encode(opts.hsSecret) : undefined;
  const now = opts.now ?? (() => new Date());
  const verified = new VerifiedTokens(opts.cacheSize ?? 1024);

  return async (req) => {
    const header = req.headers.get("authorization") ?? "";
    const match = header.match(/^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/);
    if (!match) throw unauthorized("missing or malformed bearer token");
    const token = match[1];
    // jose compares whole seconds (floor of the current time) with exp and nbf.
    const nowSec = Math.floor(now().getTime() / 1000);
    const known = verified.get(token, nowSec);
    if (known) return known;
    const caller = await verify(token);
    verified.set(token, caller, nowSec);
    return caller;
  };

  async function verify(token: string): Promise<Caller> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw unauthorized("malformed token");
    }

    let payload: JWTPayload;
    try {
      if (alg === "HS256" && secret) {
        ({ payload } = await jwtVerify(token, secret, {
          algorithms: ["HS256"],
          currentDate: now(),
          requiredClaims: ["exp"],
        }));
      } else if (alg && ASYMMETRIC.includes(alg) && (local || remote)) {
        ({ payload } = await jwtVerify(token, (local ?? remote)!, {
          algorithms: ASYMMETRIC,
          currentDate: now(),
          requiredClaims: ["exp"],
        }));
      } else {
        throw unauthorized(`token algorithm ${alg ?? "none"} is not accepted`);
      }
    } catch (err) {
      if (err instanceof HttpError) throw err;
      const code = (err as { code?: string }).code;
      throw unauthorized(code === "ERR_JWT_EXPIRED" ? "token expired" : "invalid token");
    }

    // Supabase's service key carries role service_role and neither aud nor sub.
    if (payload.role === "service_role") return { role: "service_role", claims: payload };

    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.includes("authenticated")) throw unauthorized("token audience is not authenticated");
    if (payload.role !== "authenticated") throw unauthorized("sign in to call this function");
    if (typeof payload.sub !== "string" || !UUID.test(payload.sub)) {
      throw unauthorized("token has no user");
    }
    return { role: "authenticated", userId: payload.sub, claims: payload };
  }
}

/** For endpoints that act for a signed-in user. */
export function requireUser(caller: Caller): Caller & { userId: string } {
  if (caller.role !== "authenticated" || !caller.userId) {
    throw new HttpError(403, "forbidden", "this function acts for a signed-in user");
  }
  return caller as Caller & { userId: string };
}

/** For endpoints only the app's backend or a scheduler calls (reconcile, outbox, audits…). */
export function requireServiceRole(
  caller: Caller,
  message = "only the service role may call this function",
): Caller & { role: "service_role" } {
  if (caller.role !== "service_role") throw new HttpError(403, "forbidden", message);
  return caller as Caller & { role: "service_role" };
}
