// Structured logs: exactly one JSON line per request, carrying the request id (also returned as
// x-request-id), function, status, duration, the order id for payments, the gateway and event
// for webhooks and the error code for errors — and never a token, signature, card data or body.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { LOCAL_RAZORPAY } from "../dev/stack.ts";
import {
  client,
  confirmSetupAtStripe,
  createUser,
  invoke,
  payAtSimulator,
  simEvents,
  stripeEvents,
  type TestStack,
  type TestUser,
  topupOrder,
  withStack,
} from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

// Every key a request line may have: anything else would be a new field to review.
const KEYS = new Set([
  "level",
  "request_id",
  "function",
  "method",
  "status",
  "duration_ms",
  "code",
  "user_id",
  "order_id",
  "refund_id",
  "gateway",
  "event_type",
  "event_id",
  "outcome",
]);

type Line = Record<string, unknown>;

/** Runs fn with console.log and console.error captured; returns what fn returned and the lines. */
async function captured<T>(fn: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  console.error = (...args: unknown[]) => lines.push(args.map(String).join(" "));
  try {
    return { result: await fn(), lines };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** The one request line among the captured ones; asserts its shape and that nothing leaks. */
function requestLine(lines: string[], secrets: string[]): Line {
  for (const line of lines) {
    for (const secret of secrets) {
      assert.ok(!line.includes(secret), `a log line contains ${secret.slice(0, 40)}…: ${line}`);
    }
  }
  assert.equal(lines.length, 1, `expected one log line, got:\n${lines.join("\n")}`);
  const line = JSON.parse(lines[0]) as Line;
  for (const key of Object.keys(line)) assert.ok(KEYS.has(key), `unexpected log field ${key}`);
  assert.match(String(line.request_id), /^[A-Za-z0-9._:-]{1,100}$/);
  assert.equal(typeof line.duration_ms, "number");
  assert.ok((line.duration_ms as number) >= 0);
  return line;
}

/** Raw HTTP that also returns the headers (for x-request-id). */
async function send(s: TestStack, path: string, init: RequestInit & { token?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  const res = await fetch(`${s.functionsUrl}/${path}`, { ...init, headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  // deno-lint-ignore no-explicit-any
  return { status: res.status, body: body as any, requestId: res.headers.get("x-request-id") };
}

function jsonPost(body: string, token?: string, headers: Record<string, string> = {}) {
  return {
    method: "POST",
    token,
    headers: { "content-type": "application/json", ...headers },
    body,
  };
}

/** The token, its signature part alone, and its claims part alone: none may be logged. */
const tokenParts = (u: TestUser) => [u.token, u.token.split(".")[2], u.token.split(".")[1]];

Deno.test({
  name: "one JSON log line per request, with ids and codes and without secrets or bodies",
  ...opts,
  fn: async (t) => {
    await withStack({ LOG_REQUESTS: "true", RATE_LIMIT_PER_USER_PER_MINUTE: "3" }, async (s) => {
      await t.step("create-order: order id, gateway, user, x-request-id", async () => {
        const u = await createUser(s.db, "logs");
        const key = `logs-idem-${crypto.randomUUID()}`;
        const body = JSON.stringify({
          gateway: "razorpay",
          purpose: "wallet_topup",
          amount: 12345,
          currency: "INR",
        });
        const { result: r, lines } = await captured(() =>
          send(s, "create-order", jsonPost(body, u.token, { "idempotency-key": key }))
        );
        assert.equal(r.status, 201, JSON.stringify(r.body));
        const line = requestLine(lines, [...tokenParts(u), key, '"amount"', "wallet_topup"]);
        assert.equal(line.request_id, r.requestId);
        assert.equal(line.level, "info");
        assert.equal(line.function, "create-order");
        assert.equal(line.method, "POST");
        assert.equal(line.status, 201);
        assert.equal(line.order_id, r.body.order.id);
        assert.equal(line.gateway, "razorpay");
        assert.equal(line.user_id, u.id);
        assert.equal(line.code, undefined);
      });

      await t.step("a caller's x-request-id is kept when plain, replaced otherwise", async () => {
        const u = await createUser(s.db, "logs");
        const mine = `trace-${crypto.randomUUID()}`;
        const { result: r, lines } = await captured(() =>
          send(s, "payment-methods", { token: u.token, headers: { "x-request-id": mine } })
        );
        assert.equal(r.status, 200);
        assert.equal(r.requestId, mine);
        assert.equal(requestLine(lines, tokenParts(u)).request_id, mine);

        const hostile = `x" , "status": 200, "injected": "${"y".repeat(150)}`;
        const { result: r2, lines: lines2 } = await captured(() =>
          send(s, "payment-methods", { token: u.token, headers: { "x-request-id": hostile } })
        );
        assert.match(String(r2.requestId), /^[0-9a-f-]{36}$/);
        const line = requestLine(lines2, [...tokenParts(u), "injected"]);
        assert.equal(line.request_id, r2.requestId);
      });

      await t.step("verify: a forged signature logs its code, never the signature", async () => {
        const u = await createUser(s.db, "logs");
        const order = await topupOrder(s, u);
        const paid = await payAtSimulator(s, order.order.gateway_order_id, {
          webhooks: { deliver: false },
        });
        await s.razorpay.idle();
        const forged = createHmac("sha256", "not-the-secret").update("x").digest("hex");
        const proof = {
          razorpay_order_id: paid.razorpay_order_id,
          razorpay_payment_id: paid.razorpay_payment_id,
          razorpay_signature: forged,
        };
        const bad = await captured(() =>
          send(s, "verify", jsonPost(JSON.stringify(proof), u.token))
        );
        assert.equal(bad.result.status, 400);
        const badLine = requestLine(bad.lines, [...tokenParts(u), forged, paid.razorpay_signature]);
        assert.equal(badLine.code, "invalid_signature");
        assert.equal(badLine.status, 400);
        assert.equal(badLine.user_id, u.id);

        const good = await captured(() =>
          send(
            s,
            "verify",
            jsonPost(
              JSON.stringify({ ...proof, razorpay_signature: paid.razorpay_signature }),
              u.token,
            ),
          )
        );
        assert.equal(good.result.status, 200, JSON.stringify(good.result.body));
        const line = requestLine(good.lines, [
          ...tokenParts(u),
          paid.razorpay_signature,
          paid.razorpay_payment_id,
        ]);
        assert.equal(line.order_id, order.order.id);
        assert.equal(line.gateway, "razorpay");
        assert.equal(line.code, undefined);
      });

      await t.step("razorpay webhook: gateway, event, outcome, order; not the body", async () => {
        const u = await createUser(s.db, "logs");
        const order = await topupOrder(s, u);
        await payAtSimulator(s, order.order.gateway_order_id, { webhooks: { deliver: false } });
        await s.razorpay.idle();
        const events = await simEvents(s, order.order.gateway_order_id);
        const captured_ = events.find((e) => e.type === "payment.captured")!;
        const payment = JSON.parse(captured_.body).payload.payment.entity;
        const { result: r, lines } = await captured(() =>
          send(
            s,
            "webhook/razorpay",
            jsonPost(captured_.body, undefined, {
              "x-razorpay-signature": captured_.signature,
              "x-razorpay-event-id": captured_.event_id,
            }),
          )
        );
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const line = requestLine(lines, [
          captured_.signature,
          payment.id,
          '"payload"',
          '"entity"',
          String(payment.email ?? "\u0000"),
          String(payment.contact ?? "\u0000"),
        ]);
        assert.equal(line.function, "webhook");
        assert.equal(line.gateway, "razorpay");
        assert.equal(line.event_type, "payment.captured");
        assert.equal(line.event_id, captured_.event_id);
        assert.equal(line.outcome, "applied");
        assert.equal(line.order_id, order.order.id);

        // A bad signature still names the gateway, and logs the code, not the signature.
        const forged = createHmac("sha256", "wrong").update(captured_.body).digest("hex");
        const bad = await captured(() =>
          send(
            s,
            "webhook/razorpay",
            jsonPost(captured_.body, undefined, { "x-razorpay-signature": forged }),
          )
        );
        assert.equal(bad.result.status, 400);
        const badLine = requestLine(bad.lines, [forged, payment.id, '"payload"']);
        assert.equal(badLine.gateway, "razorpay");
        assert.equal(badLine.code, "invalid_signature");
        assert.equal(badLine.event_type, undefined);
        // The simulator's signature for the real body is correct for Razorpay too.
        assert.equal(
          captured_.signature,
          createHmac("sha256", LOCAL_RAZORPAY.webhookSecret).update(captured_.body).digest("hex"),
        );
      });

      await t.step("stripe webhooks carrying card data log no card field", async () => {
        const u = await createUser(s.db, "logs");
        const setup = await invoke(client(s, u.token), "payment-methods/setup", {});
        assert.equal(setup.status, 200, JSON.stringify(setup.body));
        const si = setup.body.setup_intent_id as string;
        await confirmSetupAtStripe(s, si, "5555555555554444", { deliver: false });
        await s.stripe.idle();
        const succeeded = (await stripeEvents(s, si)).find((e) =>
          e.type === "setup_intent.succeeded"
        );
        assert.ok(succeeded, "the simulator sent setup_intent.succeeded");
        const pmId = JSON.parse(succeeded.body).data.object.payment_method as string;
        assert.match(pmId, /^pm_/);
        const related = await fetch(`${s.stripeUrl}/_sim/stripe/events?related_id=${pmId}`);
        const attached = ((await related.json()).events as typeof succeeded[]).filter((e) =>
          e.type === "payment_method.attached"
        );
        assert.equal(attached.length, 1, "the simulator sent payment_method.attached");
        for (const e of [succeeded, ...attached]) {
          const { result: r, lines } = await captured(() =>
            send(
              s,
              "webhook/stripe",
              jsonPost(e.body, undefined, { "stripe-signature": e.signature }),
            )
          );
          assert.equal(r.status, 200, JSON.stringify(r.body));
          const v1 = e.signature.match(/v1=([0-9a-f]+)/)![1];
          const line = requestLine(lines, [
            e.signature,
            v1,
            String(pmId),
            "5555555555554444",
            "last4",
            "brand",
            "fingerprint",
            "exp_month",
            "mastercard",
            '"data"',
          ]);
          assert.equal(line.gateway, "stripe");
          assert.equal(line.event_type, e.type);
          assert.equal(line.event_id, JSON.parse(e.body).id);
        }
      });

      await t.step("a rejected body with a card number is not logged", async () => {
        const u = await createUser(s.db, "logs");
        const body = JSON.stringify({
          gateway: "stripe",
          purpose: "wallet_topup",
          amount: 5000,
          currency: "USD",
          card_number: "4242424242424242",
          cvc: "987",
        });
        const { result: r, lines } = await captured(() =>
          send(s, "create-order", jsonPost(body, u.token))
        );
        assert.equal(r.status, 400);
        const line = requestLine(lines, [
          ...tokenParts(u),
          "4242424242424242",
          "card_number",
          "cvc",
        ]);
        assert.equal(line.code, "invalid_request");
        assert.equal(line.order_id, undefined);
      });

      await t.step("401 and 429 lines carry their codes", async () => {
        const u = await createUser(s.db, "logs");
        const stale = u.token.slice(0, -4) + "AAAA";
        const unauth = await captured(() => send(s, "payment-methods", { token: stale }));
        assert.equal(unauth.result.status, 401);
        const uLine = requestLine(unauth.lines, [stale, stale.split(".")[2]]);
        assert.equal(uLine.code, "unauthorized");
        assert.equal(uLine.user_id, undefined);

        for (let i = 0; i < 3; i++) {
          assert.equal((await send(s, "payment-methods", { token: u.token })).status, 200);
        }
        const limited = await captured(() => send(s, "payment-methods", { token: u.token }));
        assert.equal(limited.result.status, 429);
        const lLine = requestLine(limited.lines, tokenParts(u));
        assert.equal(lLine.code, "rate_limited");
        assert.equal(lLine.status, 429);
        assert.equal(lLine.user_id, u.id);
      });
    });
  },
});
