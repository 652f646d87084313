// Auth (JWKS and HS256 paths, algorithm confusion) and config fail-fast, without a server.
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { createAuthenticator } from "../shared/auth.ts";
import { ConfigError, loadConfig } from "../shared/config.ts";
import { HttpError } from "../shared/http.ts";

const USER = "7f0d9a3e-5b1c-4c2a-9e8f-0a1b2c3d4e5f";
const NOW = 1_800_000_000;
const at = () => new Date(NOW * 1000);

function req(token: string) {
  return new Request("http://x/", { headers: { authorization: `Bearer ${token}` } });
}

async function rejects401(p: Promise<unknown>, message?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HttpError);
    assert.equal(e.status, 401);
    if (message) assert.match(e.message, message);
    return true;
  });
}

Deno.test("ES256 tokens verify against an inline JWKS; HS256 is refused without a secret", async () => {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const auth = createAuthenticator({ jwks: { keys: [jwk] }, now: at });
  const sign = (claims: Record<string, unknown>, exp = NOW + 60) =>
    new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: "k1" }).setExpirationTime(exp)
      .sign(privateKey);

  const caller = await auth(
    req(await sign({ sub: USER, aud: "authenticated", role: "authenticated" })),
  );
  assert.equal(caller.userId, USER);
  assert.equal(caller.role, "authenticated");

  const service = await auth(req(await sign({ role: "service_role" })));
  assert.equal(service.role, "service_role");

  await rejects401(
    auth(req(await sign({ sub: USER, aud: "authenticated", role: "authenticated" }, NOW - 1))),
    /expired/,
  );
  await rejects401(
    auth(req(await sign({ sub: USER, aud: "anon", role: "authenticated" }))),
    /audience/,
  );
  await rejects401(
    auth(req(await sign({ sub: "not-a-uuid", aud: "authenticated", role: "authenticated" }))),
  );
  await rejects401(auth(req(await sign({ aud: "authenticated", role: "anon" }))));

  // Algorithm confusion: an HS256 token "signed" with the public key's text must not pass.
  const forged = await new SignJWT({ sub: USER, aud: "authenticated", role: "authenticated" })
    .setProtectedHeader({ alg: "HS256", kid: "k1" }).setExpirationTime(NOW + 60)
    .sign(new TextEncoder().encode(JSON.stringify(jwk)));
  await rejects401(auth(req(forged)), /HS256 is not accepted/);

  // A token from another key pair.
  const other = await generateKeyPair("ES256");
  const stranger = await new SignJWT({ sub: USER, aud: "authenticated", role: "authenticated" })
    .setProtectedHeader({ alg: "ES256", kid: "k1" }).setExpirationTime(NOW + 60).sign(
      other.privateKey,
    );
  await rejects401(auth(req(stranger)));
});

Deno.test("HS256 with the configured secret; none, missing exp and malformed headers refused", async () => {
  const secret = "a-local-secret-of-at-least-thirty-two-chars";
  const auth = createAuthenticator({ hsSecret: secret, now: at });
  const key = new TextEncoder().encode(secret);
  const good = await new SignJWT({ sub: USER, aud: "authenticated", role: "authenticated" })
    .setProtectedHeader({ alg: "HS256" }).setExpirationTime(NOW + 60).sign(key);
  assert.equal((await auth(req(good))).userId, USER);

  const noExp = await new SignJWT({ sub: USER, aud: "authenticated", role: "authenticated" })
    .setProtectedHeader({ alg: "HS256" }).sign(key);
  await rejects401(auth(req(noExp)));

  const b64 = (o: unknown) =>
    btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  const none = `${b64({ alg: "none", typ: "JWT" })}.${
    b64({ sub: USER, aud: "authenticated", role: "authenticated", exp: NOW + 60 })
  }.`;
  await rejects401(auth(req(none)), /none is not accepted/);

  for (
    const header of ["", "Bearer", "Basic abc", "Bearer a.b", `bearer ${good}`, `Bearer ${good} x`]
  ) {
    await rejects401(
      auth(new Request("http://x/", { headers: header ? { authorization: header } : {} })),
    );
  }
});

Deno.test("config fails fast and names the missing variable", () => {
  const base: Record<string, string> = {
    SUPABASE_DB_URL: "postgres://postgres@127.0.0.1:5432/postgres",
    SUPABASE_JWT_SECRET: "x".repeat(32),
  };
  const load = (env: Record<string, string>) => loadConfig((k) => env[k]);
  assert.equal(load(base).razorpay, undefined);
  assert.throws(() => load({ ...base, SUPABASE_DB_URL: "" }), /SUPABASE_DB_URL is undefined/);
  assert.throws(
    () => load({ SUPABASE_DB_URL: base.SUPABASE_DB_URL }),
    (e: unknown) => e instanceof ConfigError && /SUPABASE_JWKS/.test(e.message),
  );
  assert.throws(
    () => load({ ...base, RAZORPAY_KEY_ID: "rzp_test_x" }),
    /RAZORPAY_KEY_SECRET is undefined/,
  );
  assert.throws(
    () => load({ ...base, DB_POOL_MAX: "ten" }),
    /DB_POOL_MAX must be a positive integer/,
  );
  assert.throws(() => load({ ...base, SUPABASE_JWKS: "{" }), /SUPABASE_JWKS is not valid JSON/);
  const full = load({
    ...base,
    JWT_SECRET: "production-secret-production-secret",
    RAZORPAY_KEY_ID: "rzp_test_x",
    RAZORPAY_KEY_SECRET: "s",
    RAZORPAY_WEBHOOK_SECRET: "w1",
    RAZORPAY_WEBHOOK_SECRET_PREVIOUS: "w0",
    ALLOWED_ORIGINS: "https://app.example, https://admin.example",
  });
  assert.equal(full.jwtSecret, "production-secret-production-secret");
  assert.deepEqual(full.razorpay?.webhookSecrets, ["w1", "w0"]);
  assert.equal(full.razorpay?.apiUrl, "https://api.razorpay.com");
  assert.deepEqual(full.allowedOrigins, ["https://app.example", "https://admin.example"]);
});
