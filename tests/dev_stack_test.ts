// `deno task dev` takes its configuration from the environment (.env.example: "set one to
// override it"): a JWT secret, the rate limits, the proxy header. The stack's own addresses stay.
import assert from "node:assert/strict";
import { jwtVerify } from "jose";
import { devEnv } from "../dev/stack.ts";
import { LOCAL_JWT_SECRET, userToken } from "../dev/keys.ts";
import { createUser, withStack } from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const SECRET = "a-project-secret-that-is-not-the-cli-default-0123456789";

Deno.test("devEnv: overrides pass, the stack's own addresses and empty values do not", () => {
  const env = devEnv({
    JWT_SECRET: SECRET,
    SUPABASE_JWT_SECRET: "other",
    RATE_LIMITS: "off",
    RATE_LIMIT_PER_USER_PER_MINUTE: "5",
    TRUSTED_PROXY_HEADER: "cf-connecting-ip",
    SUPABASE_URL: "https://elsewhere.supabase.co",
    SUPABASE_DB_URL: "postgres://elsewhere/db",
    RAZORPAY_API_URL: "",
  });
  assert.deepEqual(env, {
    JWT_SECRET: SECRET,
    SUPABASE_JWT_SECRET: "other",
    RATE_LIMITS: "off",
    RATE_LIMIT_PER_USER_PER_MINUTE: "5",
    TRUSTED_PROXY_HEADER: "cf-connecting-ip",
  });
});

for (const name of ["JWT_SECRET", "SUPABASE_JWT_SECRET"]) {
  Deno.test({
    name: `dev stack: ${name} and RATE_LIMITS from the environment take effect`,
    ...opts,
    fn: async () => {
      await withStack(
        devEnv({
          [name]: SECRET,
          RATE_LIMITS: "off",
          RATE_LIMIT_PER_USER_PER_MINUTE: "1",
          SUPABASE_DB_URL: "postgres://nowhere.invalid/db",
        }),
        { devPages: true },
        async (s) => {
          assert.equal(s.config.jwtSecret, SECRET);
          assert.equal(s.config.rateLimit.enabled, false);
          assert.notEqual(s.config.dbUrl, "postgres://nowhere.invalid/db");
          // The keys the banner prints are signed with the configured secret.
          for (const key of [s.anonKey, s.serviceRoleKey]) {
            await jwtVerify(key, new TextEncoder().encode(SECRET));
          }
          const u = await createUser(s.db, "dev-env");
          const get = (token: string) =>
            fetch(`${s.functionsUrl}/payment-methods`, {
              headers: { authorization: `Bearer ${token}` },
            }).then(async (r) => ({ status: r.status, body: await r.text() }));
          const own = await userToken(u.id, { secret: SECRET });
          // Twice over a limit of one per minute: RATE_LIMITS=off wins.
          for (let i = 0; i < 2; i++) {
            const r = await get(own);
            assert.equal(r.status, 200, r.body);
          }
          const local = await get(await userToken(u.id, { secret: LOCAL_JWT_SECRET }));
          assert.equal(local.status, 401, "a token signed with the CLI default is refused");
          // /dev/token (the local sign-in) signs with it too.
          const page = await fetch(`${s.url}/dev/token?email=${encodeURIComponent(u.email)}`);
          const { access_token } = await page.json();
          assert.equal((await get(access_token)).status, 200);
        },
      );
    },
  });
}
