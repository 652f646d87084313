// The authenticator's cache of verified tokens: a hit only inside the token's own nbf..exp
// window, never for a token that failed, and off when asked.
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { createAuthenticator } from "../shared/auth.ts";
import { HttpError } from "../shared/http.ts";

const USER = "7f0d9a3e-5b1c-4c2a-9e8f-0a1b2c3d4e5f";
const SECRET = "auth-cache-test-secret-auth-cache-test-secret";
const NOW = 1_800_000_000;

function req(token: string) {
  return new Request("http://x/", { headers: { authorization: `Bearer ${token}` } });
}

function sign(claims: Record<string, unknown>, exp: number, nbf?: number) {
  let jwt = new SignJWT({ sub: USER, aud: "authenticated", role: "authenticated", ...claims })
    .setProtectedHeader({ alg: "HS256" }).setExpirationTime(exp);
  if (nbf !== undefined) jwt = jwt.setNotBefore(nbf);
  return jwt.sign(new TextEncoder().encode(SECRET));
}

async function rejects401(p: Promise<unknown>, message?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HttpError);
    assert.equal(e.status, 401);
    if (message) assert.match(e.message, message);
    return true;
  });
}

Deno.test("a verified token is answered from the cache until its exp, and not one second more", async () => {
  let now = NOW;
  const auth = createAuthenticator({ hsSecret: SECRET, now: () => new Date(now * 1000) });
  const token = await sign({}, NOW + 60);

  const first = await auth(req(token));
  assert.equal(first.userId, USER);
  const second = await auth(req(token));
  assert.equal(second, first, "the second request gets the remembered caller");
  assert.ok(Object.isFrozen(first) && Object.isFrozen(first.claims));

  now = NOW + 59;
  assert.equal(await auth(req(token)), first);
  now = NOW + 60; // jose: expired once now >= exp
  await rejects401(auth(req(token)), /expired/);
  // Dropped from the cache: the clock going back verifies it afresh.
  now = NOW;
  const again = await auth(req(token));
  assert.notEqual(again, first);
  assert.equal(again.userId, USER);
});

Deno.test("a token that failed is never remembered; nbf is checked on every hit", async () => {
  let now = NOW;
  const auth = createAuthenticator({ hsSecret: SECRET, now: () => new Date(now * 1000) });

  const early = await sign({}, NOW + 60, NOW + 10);
  await rejects401(auth(req(early)));
  now = NOW + 10;
  const ok = await auth(req(early));
  assert.equal(ok.userId, USER);
  assert.equal(await auth(req(early)), ok);
  now = NOW + 9; // before nbf again: not a hit, and jose refuses it
  await rejects401(auth(req(early)));

  // A refusal after the signature checks out (wrong audience) is not remembered as a success.
  now = NOW;
  const anon = await sign({ aud: "anon" }, NOW + 60);
  await rejects401(auth(req(anon)), /audience/);
  await rejects401(auth(req(anon)), /audience/);

  // A forged token with the same claims never borrows a cached verification.
  const good = await sign({}, NOW + 60);
  await auth(req(good));
  const [h, p] = good.split(".");
  await rejects401(auth(req(`${h}.${p}.${"A".repeat(43)}`)));
});

Deno.test("cacheSize 0 verifies every time", async () => {
  const auth = createAuthenticator({
    hsSecret: SECRET,
    now: () => new Date(NOW * 1000),
    cacheSize: 0,
  });
  const token = await sign({}, NOW + 60);
  const a = await auth(req(token));
  const b = await auth(req(token));
  assert.notEqual(a, b);
  assert.deepEqual(a, b);
});
