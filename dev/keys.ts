// Local-only JWTs signed with the Supabase CLI's default secret: anon, service role, users.
import { SignJWT } from "jose";

/** The Supabase CLI's well-known local secret; never used outside local development. */
export const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

export async function signJwt(
  claims: Record<string, unknown>,
  opts: { secret?: string; expiresInSeconds?: number; nowSeconds?: number } = {},
): Promise<string> {
  const now = opts.nowSeconds ?? Math.floor(Date.now() / 1000);
  return await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.expiresInSeconds ?? 3600))
    .sign(new TextEncoder().encode(opts.secret ?? LOCAL_JWT_SECRET));
}

export function anonKey(secret?: string): Promise<string> {
  return signJwt({ iss: "supabase-demo", role: "anon" }, {
    secret,
    expiresInSeconds: 10 * 365 * 24 * 3600,
  });
}

export function serviceRoleKey(secret?: string): Promise<string> {
  return signJwt({ iss: "supabase-demo", role: "service_role" }, {
    secret,
    expiresInSeconds: 10 * 365 * 24 * 3600,
  });
}

export function userToken(
  userId: string,
  opts: { secret?: string; email?: string; expiresInSeconds?: number } = {},
): Promise<string> {
  return signJwt({
    sub: userId,
    aud: "authenticated",
    role: "authenticated",
    email: opts.email,
    iss: "http://127.0.0.1:54321/auth/v1",
  }, opts);
}
