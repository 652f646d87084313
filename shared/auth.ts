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
}

export type Authenticator = (req: Request) => Promise<Caller>;

const ASYMMETRIC = ["ES256", "RS256", "EdDSA"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function unauthorized(message: string): HttpError {
  return new HttpError(401, "unauthorized", message);
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

  return async (req) => {
    const header = req.headers.get("authorization") ?? "";
    const match = header.match(/^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/);
    if (!match) throw unauthorized("missing or malformed bearer token");
    const token = match[1];

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
  };
}

/** For endpoints that act for a signed-in user. */
export function requireUser(caller: Caller): Caller & { userId: string } {
  if (caller.role !== "authenticated" || !caller.userId) {
    throw new HttpError(403, "forbidden", "this function acts for a signed-in user");
  }
  return caller as Caller & { userId: string };
}
