// Rate limits: 429 + Retry-After past the limit, per user and per client IP, exact under
// concurrency, nothing written by refused requests, windows that reset on an injected clock.
import assert from "node:assert/strict";
import { createApp } from "../shared/app.ts";
import { ConfigError, loadConfig, type RateLimitConfig } from "../shared/config.ts";
import { type Handler, serveFunction } from "../shared/handler.ts";
import { json, readBodyText } from "../shared/http.ts";
import { clientIp, ipKey } from "../shared/ratelimit.ts";
import { handler as createOrder } from "../supabase/functions/create-order/handler.ts";
import { handler as verify } from "../supabase/functions/verify/handler.ts";
import { handler as paymentMethods } from "../supabase/functions/payment-methods/handler.ts";
import { handler as webhook } from "../supabase/functions/webhook/handler.ts";
import { assertContractError } from "./support/contract.ts";
import {
  createUser,
  payAtSimulator,
  type Reply,
  snapshot,
  type TestStack,
  withStack,
} from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A clock the test moves; it starts one second into a window (windows are epoch-aligned). */
class Clock {
  t = Math.floor(Date.now() / 60_000) * 60_000 + 1_000;
  now = () => new Date(this.t);
}

let ipSeq = 0;
/** A fresh address per use (198.18.0.0/15 is for benchmarks), so tests never share budgets. */
function freshIp(): string {
  ipSeq += 1;
  return `198.18.${ipSeq >> 8}.${ipSeq & 255}`;
}

/** An app over the test stack's database and simulators, with these limits and this clock. */
function limitedApp(s: TestStack, limits: Partial<RateLimitConfig>, clock: Clock) {
  const { trustedProxyHeader: _, ...base } = s.config.rateLimit;
  return createApp({
    ...s.config,
    supabaseUrl: undefined,
    logRequests: false,
    rateLimit: {
      ...base,
      enabled: true,
      perUserPerMinute: 1000,
      perIpPerMinute: 1000,
      windowSeconds: 60,
      ...limits,
    },
  }, { now: clock.now });
}

interface Call {
  token?: string;
  /** The connection's peer address (what Deno.serve reports). */
  ip?: string;
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

async function call(s: TestStack, h: Handler, path: string, c: Call = {}) {
  const headers = new Headers(c.headers);
  if (c.token) headers.set("authorization", `Bearer ${c.token}`);
  if (c.body !== undefined) headers.set("content-type", "application/json");
  const res = await h(
    new Request(`${s.functionsUrl}/${path}`, {
      method: c.method ?? (c.body === undefined ? "GET" : "POST"),
      headers,
      body: c.body === undefined ? undefined : JSON.stringify(c.body),
    }),
    c.ip ? { remoteAddr: { hostname: c.ip } } : undefined,
  );
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body, headers: res.headers } as Reply & { headers: Headers };
}

function assertLimited(r: Reply & { headers: Headers }, retryAfter: number) {
  assertContractError(r, 429, "rate_limited");
  assert.equal(r.headers.get("retry-after"), String(retryAfter), "Retry-After");
}

const topup = { gateway: "razorpay", purpose: "wallet_topup", amount: 50000, currency: "INR" };

async function simulatorOrderCount(s: TestStack): Promise<number> {
  const res = await fetch(`${s.simulatorUrl}/razorpay/v1/orders?count=100`, {
    headers: {
      authorization: "Basic " +
        btoa(`${s.config.razorpay!.keyId}:${s.config.razorpay!.keySecret}`),
    },
  });
  return ((await res.json()) as { items: unknown[] }).items.length;
}

Deno.test("client IP: the peer unless a proxy header is trusted, IPv6 by /64, junk ignored", () => {
  assert.equal(ipKey("203.0.113.7"), "203.0.113.7");
  assert.equal(ipKey(" 203.0.113.7:4431 "), "203.0.113.7");
  assert.equal(ipKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(ipKey("[2001:DB8:1:2::9]:443"), "2001:db8:1:2::/64");
  assert.equal(ipKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(ipKey("::ffff:198.51.100.4"), "198.51.100.4");
  assert.equal(ipKey("::1"), "0:0:0:0::/64");
  for (
    const bad of ["", "unknown", "256.1.1.1", "1.2.3", "1.2.3.4.5", "'; drop table x; --", "gg::1"]
  ) {
    assert.equal(ipKey(bad), undefined, bad);
  }
  assert.equal(ipKey("1".repeat(65)), undefined);

  const req = (h: Record<string, string>) => new Request("http://x/", { headers: h });
  const peer = { remoteAddr: { hostname: "192.0.2.9" } };
  const spoofed = { "cf-connecting-ip": "203.0.113.1", "x-forwarded-for": "198.51.100.1" };
  // No trusted header configured: whatever the client writes is ignored, the peer counts.
  assert.equal(clientIp(req(spoofed), peer), "192.0.2.9");
  assert.equal(clientIp(req(spoofed)), "unknown");
  assert.equal(clientIp(req({}), peer), "192.0.2.9");
  // A trusted header counts, its last value (what the proxy appended), else the peer.
  assert.equal(clientIp(req(spoofed), peer, "cf-connecting-ip"), "203.0.113.1");
  assert.equal(
    clientIp(req({ "x-forwarded-for": "6.6.6.6, 198.51.100.1" }), peer, "x-forwarded-for"),
    "198.51.100.1",
  );
  assert.equal(clientIp(req(spoofed), peer, "x-real-ip"), "192.0.2.9");
  assert.equal(clientIp(req({ "x-real-ip": "nonsense" }), peer, "x-real-ip"), "192.0.2.9");
  assert.equal(clientIp(req({}), undefined, "cf-connecting-ip"), "unknown");
});

Deno.test("TRUSTED_PROXY_HEADER: unset by default, a header name, lowercased", () => {
  const env = (extra: Record<string, string>) => (k: string) =>
    ({ SUPABASE_DB_URL: "postgres://x@127.0.0.1/x", SUPABASE_JWT_SECRET: "s", ...extra })[k];
  assert.equal(loadConfig(env({})).rateLimit.trustedProxyHeader, undefined);
  assert.equal(
    loadConfig(env({ TRUSTED_PROXY_HEADER: " CF-Connecting-IP " })).rateLimit.trustedProxyHeader,
    "cf-connecting-ip",
  );
  for (const bad of ["x forwarded", "a:b", "x".repeat(101)]) {
    assert.throws(
      () => loadConfig(env({ TRUSTED_PROXY_HEADER: bad })),
      (e: Error) => e instanceof ConfigError && /TRUSTED_PROXY_HEADER/.test(e.message),
      bad,
    );
  }
});

Deno.test({
  name: "rate limits: per user and per IP, exact under concurrency, refused requests write nothing",
  ...opts,
  fn: async (t) => {
    await withStack(async (s) => {
      const apps: ReturnType<typeof createApp>[] = [];
      const app = (limits: Partial<RateLimitConfig>, clock: Clock) => {
        const a = limitedApp(s, limits, clock);
        apps.push(a);
        return a;
      };
      try {
        await t.step("per user: the 4th request in a window is 429, other users pass", async () => {
          const clock = new Clock();
          const h = paymentMethods(app({ perUserPerMinute: 3 }, clock));
          const alice = await createUser(s.db, "rl-alice");
          const bob = await createUser(s.db, "rl-bob");
          // Each from another address: the user's budget is what runs out.
          for (let i = 0; i < 3; i++) {
            const r = await call(s, h, "payment-methods", { token: alice.token, ip: freshIp() });
            assert.equal(r.status, 200, JSON.stringify(r.body));
          }
          const ip = freshIp();
          assertLimited(await call(s, h, "payment-methods", { token: alice.token, ip }), 59);
          clock.t += 20_000;
          assertLimited(await call(s, h, "payment-methods", { token: alice.token, ip }), 39);
          // Bob, from the very address alice was refused on, is not affected.
          const b = await call(s, h, "payment-methods", { token: bob.token, ip });
          assert.equal(b.status, 200, JSON.stringify(b.body));
          // Scopes are separate: alice's payment-methods budget is not her create-order budget.
          const order = await call(
            s,
            createOrder(app({ perUserPerMinute: 3 }, clock)),
            "create-order",
            {
              token: alice.token,
              ip,
              body: topup,
            },
          );
          assert.equal(order.status, 201, JSON.stringify(order.body));
        });

        await t.step(
          "per IP: the 4th user from one address is 429, other addresses pass",
          async () => {
            const clock = new Clock();
            const h = paymentMethods(app({ perIpPerMinute: 3 }, clock));
            const ip = freshIp();
            for (let i = 0; i < 3; i++) {
              const u = await createUser(s.db, "rl-ip");
              const r = await call(s, h, "payment-methods", { token: u.token, ip });
              assert.equal(r.status, 200, JSON.stringify(r.body));
            }
            const late = await createUser(s.db, "rl-ip");
            assertLimited(await call(s, h, "payment-methods", { token: late.token, ip }), 59);
            // Headers a client writes do not move it to another budget...
            assertLimited(
              await call(s, h, "payment-methods", {
                token: late.token,
                ip,
                headers: { "cf-connecting-ip": freshIp(), "x-forwarded-for": freshIp() },
              }),
              59,
            );
            // ...unless the header is trusted: then the same address behind a proxy (another
            // peer) counts the same, and the header alone decides.
            const behindProxy = paymentMethods(
              app({ perIpPerMinute: 3, trustedProxyHeader: "cf-connecting-ip" }, clock),
            );
            const proxy = freshIp();
            assertLimited(
              await call(s, behindProxy, "payment-methods", {
                token: late.token,
                ip: proxy,
                headers: { "cf-connecting-ip": ip, "x-forwarded-for": freshIp() },
              }),
              59,
            );
            const viaProxy = await call(s, behindProxy, "payment-methods", {
              token: late.token,
              ip: ip,
              headers: { "cf-connecting-ip": freshIp() },
            });
            assert.equal(viaProxy.status, 200, JSON.stringify(viaProxy.body));
            const elsewhere = await call(s, h, "payment-methods", {
              token: late.token,
              ip: freshIp(),
            });
            assert.equal(elsewhere.status, 200, JSON.stringify(elsewhere.body));
            // IPv6: one /64 is one budget.
            const v6 = `2001:db8:${(ipSeq++).toString(16)}:1`;
            for (let i = 1; i <= 3; i++) {
              const r = await call(s, h, "payment-methods", {
                token: late.token,
                ip: `${v6}::${i}`,
              });
              assert.equal(r.status, 200, JSON.stringify(r.body));
            }
            assertLimited(
              await call(s, h, "payment-methods", { token: late.token, ip: `${v6}:ffff::4` }),
              59,
            );
          },
        );

        await t.step("a token is taken from both budgets or from neither", async () => {
          const clock = new Clock();
          const h = paymentMethods(app({ perUserPerMinute: 2, perIpPerMinute: 1 }, clock));
          const u = await createUser(s.db, "rl-both");
          const [ipA, ipB, ipC] = [freshIp(), freshIp(), freshIp()];
          assert.equal(
            (await call(s, h, "payment-methods", { token: u.token, ip: ipA })).status,
            200,
          );
          // Refused by ipA's budget: the user's token is given back...
          assertLimited(await call(s, h, "payment-methods", { token: u.token, ip: ipA }), 59);
          const [row] = await s.db`select hits from settle.rate_limits
            where key = ${`payment-methods:user:${u.id}`}`;
          assert.equal(row.hits, 1);
          // ...so the user still has one left, spent from ipB; then the user's budget refuses.
          assert.equal(
            (await call(s, h, "payment-methods", { token: u.token, ip: ipB })).status,
            200,
          );
          const r = await call(s, h, "payment-methods", { token: u.token, ip: ipC });
          assertLimited(r, 59);
          assert.match((r.body as { error: { message: string } }).error.message, /this user/);
          const [ipRow] = await s.db`select hits from settle.rate_limits
            where key = ${`payment-methods:ip:${ipC}`}`;
          assert.equal(ipRow, undefined, "ipC's budget was not charged for the refused request");
        });

        await t.step(
          "concurrent requests at the edge of the limit: exactly the limit pass",
          async () => {
            const clock = new Clock();
            const limit = 5;
            const h = paymentMethods(app({ perUserPerMinute: limit }, clock));
            const u = await createUser(s.db, "rl-race");
            const replies = await Promise.all(
              Array.from(
                { length: 24 },
                () => call(s, h, "payment-methods", { token: u.token, ip: freshIp() }),
              ),
            );
            const statuses = replies.map((r) => r.status);
            assert.equal(statuses.filter((x) => x === 200).length, limit, statuses.join(","));
            assert.equal(statuses.filter((x) => x === 429).length, 24 - limit, statuses.join(","));
          },
        );

        await t.step("concurrent create-order: exactly the limit of orders exist", async () => {
          const clock = new Clock();
          const limit = 4;
          const h = createOrder(app({ perIpPerMinute: limit }, clock));
          const ip = freshIp();
          const users = await Promise.all(
            Array.from({ length: 3 }, () => createUser(s.db, "rl-orders")),
          );
          const replies = await Promise.all(
            Array.from(
              { length: 12 },
              (_, i) => call(s, h, "create-order", { token: users[i % 3].token, ip, body: topup }),
            ),
          );
          const statuses = replies.map((r) => r.status);
          assert.equal(statuses.filter((x) => x === 201).length, limit, statuses.join(","));
          assert.equal(statuses.filter((x) => x === 429).length, 12 - limit, statuses.join(","));
          const [n] = await s.db`select count(*)::int as n from public.orders
            where created_by = any(${users.map((u) => u.id)})`;
          assert.equal(n.n, limit, "one order per allowed request, none for refused ones");
        });

        await t.step("refused create-order and verify change nothing anywhere", async () => {
          const clock = new Clock();
          const a = app({ perUserPerMinute: 1 }, clock);
          const u = await createUser(s.db, "rl-nowrite");
          const ip = freshIp();
          // A real payment, proved but not yet verified (webhooks held back). Creating its order
          // spends the create-order budget.
          const first = await call(s, createOrder(a), "create-order", {
            token: u.token,
            ip,
            body: topup,
          });
          assert.equal(first.status, 201, JSON.stringify(first.body));
          const order = first.body as { order: { id: string; gateway_order_id: string } };
          const paid = await payAtSimulator(s, order.order.gateway_order_id, {
            webhooks: { deliver: false },
          });
          await s.razorpay.idle();
          const proof = {
            razorpay_order_id: paid.razorpay_order_id,
            razorpay_payment_id: paid.razorpay_payment_id,
            razorpay_signature: paid.razorpay_signature,
          };
          // Spend the verify budget with a proof for an unknown order (404, still a request).
          const spent = await call(s, verify(a), "verify", {
            token: u.token,
            ip,
            body: { ...proof, razorpay_order_id: "order_AAAAAAAAAAAAAA" },
          });
          assertContractError(spent, 404, "not_found");

          const dbBefore = await snapshot(s.db);
          const simBefore = await simulatorOrderCount(s);
          assertLimited(
            await call(s, createOrder(a), "create-order", {
              token: u.token,
              ip,
              body: topup,
              headers: { "idempotency-key": `rl-${crypto.randomUUID()}` },
            }),
            59,
          );
          assertLimited(
            await call(s, verify(a), "verify", { token: u.token, ip, body: proof }),
            59,
          );
          assert.deepEqual(await snapshot(s.db), dbBefore, "a refused request wrote a row");
          assert.equal(
            await simulatorOrderCount(s),
            simBefore,
            "a refused request reached Razorpay",
          );
          const [o] = await s.db`select status from public.orders where id = ${order.order.id}`;
          assert.equal(o.status, "created", "a refused verify must not pay the order");

          // Next window: the same verify goes through.
          clock.t += 60_000;
          const ok = await call(s, verify(a), "verify", { token: u.token, ip, body: proof });
          assert.equal(ok.status, 200, JSON.stringify(ok.body));
          assert.equal((ok.body as { order: { status: string } }).order.status, "paid");
        });

        await t.step("the window resets, and refused requests did not count", async () => {
          const clock = new Clock();
          const h = paymentMethods(app({ perUserPerMinute: 2 }, clock));
          const u = await createUser(s.db, "rl-reset");
          const ip = freshIp();
          const get = () => call(s, h, "payment-methods", { token: u.token, ip });
          assert.equal((await get()).status, 200);
          assert.equal((await get()).status, 200);
          for (let i = 0; i < 5; i++) assertLimited(await get(), 59);
          clock.t += 58_500; // 59.5 s into the window: rounds up
          assertLimited(await get(), 1);
          clock.t += 500; // the next window starts
          assert.equal((await get()).status, 200);
          assert.equal((await get()).status, 200);
          assertLimited(await get(), 60);
          // A clock that lags behind an open window keeps counting in it (no reopening).
          clock.t -= 30_000;
          assertLimited(await get(), 90);
        });

        await t.step("the service role has no user budget, only its address's", async () => {
          const clock = new Clock();
          const a = app({ perUserPerMinute: 1, perIpPerMinute: 3 }, clock);
          const probe = serveFunction("probe", a, async (_req, ctx) => {
            const caller = await ctx.authenticate();
            return json(200, { role: caller.role });
          }, { rateLimit: { scope: "probe" } });
          const ip = freshIp();
          for (let i = 0; i < 3; i++) {
            const r = await call(s, probe, "probe", { token: s.serviceRoleKey, ip });
            assert.equal(r.status, 200, JSON.stringify(r.body));
            assert.equal((r.body as { role: string }).role, "service_role");
          }
          assertLimited(await call(s, probe, "probe", { token: s.serviceRoleKey, ip }), 59);
          const other = await call(s, probe, "probe", { token: s.serviceRoleKey, ip: freshIp() });
          assert.equal(other.status, 200);
        });

        await t.step(
          "a rate-limited function that skips ctx.authenticate fails closed",
          async () => {
            const a = app({}, new Clock());
            const careless = serveFunction("careless", a, async (req) => {
              await a.authenticate(req);
              return json(200, { ok: true });
            }, { rateLimit: { scope: "careless" } });
            const u = await createUser(s.db, "rl-careless");
            const r = await call(s, careless, "careless", { token: u.token, ip: freshIp() });
            assertContractError(r, 500, "internal_error");
          },
        );

        await t.step("RATE_LIMITS=off: no limit and no counting", async () => {
          const clock = new Clock();
          const h = paymentMethods(app({ enabled: false, perUserPerMinute: 1 }, clock));
          const u = await createUser(s.db, "rl-off");
          for (let i = 0; i < 3; i++) {
            assert.equal((await call(s, h, "payment-methods", { token: u.token })).status, 200);
          }
          const rows = await s.db`select 1 from settle.rate_limits where key like ${`%${u.id}`}`;
          assert.equal(rows.length, 0);
        });

        await t.step("webhooks are never rate limited", async () => {
          const a = app({ perUserPerMinute: 1, perIpPerMinute: 1 }, new Clock());
          const h = webhook(a);
          const ip = freshIp();
          for (let i = 0; i < 3; i++) {
            const r = await call(s, h, "webhook/razorpay", {
              ip,
              body: { event: "payment.captured" },
              headers: { "x-razorpay-signature": "0".repeat(64) },
            });
            assertContractError(r, 400, "invalid_signature");
          }
        });

        await t.step("an endless webhook body is cut at the limit: 413, not buffered", async () => {
          const limit = s.config.webhookBodyLimitBytes;
          const chunk = new Uint8Array(16 * 1024).fill(0x20);
          let pulled = 0;
          let cancelled = false;
          const endless = new ReadableStream<Uint8Array>({
            pull(c) {
              pulled += chunk.byteLength;
              c.enqueue(chunk);
            },
            cancel() {
              cancelled = true;
            },
          });
          const res = await webhook(app({}, new Clock()))(
            new Request(`${s.functionsUrl}/webhook/stripe`, {
              method: "POST",
              headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=00" },
              body: endless,
            }),
          );
          const body = await res.json();
          assertContractError({ status: res.status, body }, 413, "payload_too_large");
          assert.ok(cancelled, "the body stream was not cancelled");
          // The reader may have one chunk in flight beyond the limit, and the stream queues one.
          assert.ok(
            pulled <= limit + 3 * chunk.byteLength,
            `read ${pulled} bytes of an endless body`,
          );

          // A declared Content-Length over the limit is refused before reading anything.
          let read = 0;
          const big = new ReadableStream<Uint8Array>({
            pull(c) {
              read += chunk.byteLength;
              c.enqueue(chunk);
            },
          });
          const declared = new Request(`${s.functionsUrl}/webhook/razorpay`, {
            method: "POST",
            headers: { "content-type": "application/json", "content-length": String(limit + 1) },
            body: big,
          });
          await assert.rejects(() => readBodyText(declared, limit), { status: 413 });
          assert.ok(read <= chunk.byteLength, `read ${read} bytes despite Content-Length`);
        });
      } finally {
        for (const a of apps) await a.sql.end({ timeout: 5 });
      }
    });
  },
});
