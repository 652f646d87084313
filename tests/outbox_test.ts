// Outbox: events written with their change, signed at-least-once delivery, backoff, dead letters, replay.
import assert from "node:assert/strict";
import { type App, createApp } from "../shared/app.ts";
import type { OutboxConfig } from "../shared/config.ts";
import { connect, type Sql } from "../dev/db.ts";
import { userToken } from "../dev/keys.ts";
import { dispatchOutbox, eventBody, signatureHeader } from "../shared/services/outbox.ts";
import { assertContractError } from "./support/contract.ts";
import {
  client,
  createUser,
  invoke,
  payAtSimulator,
  raw,
  testDbUrl,
  type TestStack,
  type TestUser,
  topupOrder,
  withStack,
} from "./support/stack.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

// Section - the receiver's verification, exactly as docs/operations.md (Outbox subscribers)
// documents it: WebCrypto only, no settle code.
async function verifySettleEvent(
  rawBody: string,
  signatureHeader: string | null,
  secret: string,
  nowSeconds = Math.floor(Date.now() / 1000),
  toleranceSeconds = 300,
): Promise<boolean> {
  if (!signatureHeader) return false;
  let t = "";
  const v1: string[] = [];
  for (const part of signatureHeader.split(",")) {
    const i = part.indexOf("=");
    const [k, v] = [part.slice(0, i).trim(), part.slice(i + 1).trim()];
    if (k === "t") t = v;
    else if (k === "v1") v1.push(v);
  }
  if (!/^\d+$/.test(t) || Math.abs(nowSeconds - Number(t)) > toleranceSeconds) return false;
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(`${t}.${rawBody}`)));
  const expected = Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
  return v1.some((sig) => constantTimeEqual(sig, expected));
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

// Section - helpers
interface Receipt {
  eventId: string;
  type: string;
  attempt: number;
  timestamp: number;
  body: string;
  verified: boolean;
}

type Mode = "ok" | "hang" | "redirect" | number;

/** A subscriber's endpoint on a free port: records and verifies every request it gets. */
function receiver(now: () => Date, opts: { delayMs?: () => number } = {}) {
  const receipts: Receipt[] = [];
  /** secret: the subscriber's, set once the subscriber row exists. */
  const state = { mode: "ok" as Mode, secret: "" };
  let resolveAddr: (a: Deno.NetAddr) => void;
  const addr = new Promise<Deno.NetAddr>((r) => (resolveAddr = r));
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: (a) => resolveAddr(a as Deno.NetAddr),
  }, async (req) => {
    const body = await req.text();
    const h = req.headers;
    receipts.push({
      eventId: h.get("settle-event-id") ?? "",
      type: h.get("settle-event-type") ?? "",
      attempt: Number(h.get("settle-delivery-attempt")),
      timestamp: Number(h.get("settle-timestamp")),
      body,
      verified: await verifySettleEvent(
        body,
        h.get("settle-signature"),
        state.secret,
        Math.floor(now().getTime() / 1000),
      ),
    });
    const delay = opts.delayMs?.() ?? 0;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    if (state.mode === "hang") {
      // Answers long after the sender's timeout (tests use 300 ms).
      await new Promise((r) => setTimeout(r, 1500));
      return new Response(null, { status: 200 });
    }
    if (state.mode === "redirect") {
      return new Response(null, { status: 302, headers: { location: "http://127.0.0.1:9/" } });
    }
    return new Response("ok", { status: state.mode === "ok" ? 200 : state.mode });
  });
  return {
    receipts,
    state,
    url: addr.then((a) => `http://127.0.0.1:${a.port}/hooks/settle`),
    close: () => server.shutdown(),
  };
}

let seq = 0;

async function subscriber(db: Sql, url: string, eventTypes: string[]) {
  const name = `outbox-test-${Date.now().toString(36)}-${++seq}`;
  const [row] = await db`insert into public.outbox_subscribers (name, url, event_types)
    values (${name}, ${url}, ${eventTypes}) returning id, secret`;
  return { id: row.id as string, secret: row.secret as string };
}

async function dropSubscribers(db: Sql, ids: string[]) {
  await db`delete from public.outbox_subscribers where id = any(${ids}::uuid[])`;
}

/** A dispatcher over the test database with its own clock and outbox settings. */
function dispatcher(
  s: TestStack,
  now: () => Date,
  outbox: Partial<OutboxConfig> = {},
  sql: Sql = s.db,
): App {
  return createApp({
    ...s.config,
    supabaseUrl: undefined,
    logRequests: false,
    outbox: { ...s.config.outbox, ...outbox },
  }, { now, sql });
}

/** An order inserted as the database owner, with its gateway order id set. */
async function newOrder(db: Sql, user: TestUser, amount = 2500) {
  const gid = `order_Ob${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const [o] = await db`insert into public.orders (account_id, created_by, gateway, purpose, amount,
      currency, gateway_order_id)
    values (${user.accountId}, ${user.id}, 'razorpay', 'wallet_topup', ${amount}, 'INR', ${gid})
    returning id`;
  return { id: o.id as string, gid, amount };
}

async function eventsFor(db: Sql, subjectId: string) {
  return await db`select id, type, account_id, payload from public.outbox_events
    where subject_id = ${subjectId} order by created_at`;
}

async function delivery(db: Sql, subscriberId: string) {
  const [d] =
    await db`select * from public.outbox_deliveries where subscriber_id = ${subscriberId}`;
  return d;
}

// Section - tests
Deno.test("the documented verification accepts settle's signature and nothing else", async () => {
  const secret = "whsec_settle_0123456789abcdef0123456789abcdef";
  const body = eventBody({
    id: crypto.randomUUID(),
    type: "order.paid",
    created_at: new Date("2026-01-02T03:04:05.678Z"),
    account_id: crypto.randomUUID(),
    payload: { amount: 50000, currency: "INR" },
  });
  const t = 1_800_000_000;
  const header = await signatureHeader(secret, t, body);
  assert.match(header, /^t=1800000000,v1=[0-9a-f]{64}$/);
  assert.equal(await verifySettleEvent(body, header, secret, t), true);
  assert.equal(await verifySettleEvent(body, header, secret, t + 300), true, "within tolerance");
  assert.equal(await verifySettleEvent(body, header, secret, t + 301), false, "too old");
  assert.equal(await verifySettleEvent(body, header, secret, t - 301), false, "from the future");
  assert.equal(await verifySettleEvent(body + " ", header, secret, t), false, "body changed");
  assert.equal(
    await verifySettleEvent(body.replace("50000", "50001"), header, secret, t),
    false,
    "amount changed",
  );
  assert.equal(await verifySettleEvent(body, header, secret + "x", t), false, "another secret");
  assert.equal(
    await verifySettleEvent(body, header.replace("t=1800000000", "t=1800000001"), secret, t),
    false,
    "timestamp changed",
  );
  assert.equal(await verifySettleEvent(body, null, secret, t), false, "no header");
  assert.equal(
    await verifySettleEvent(body, `t=${t},v1=00,${header.split(",")[1]}`, secret, t),
    true,
    "any v1 may match",
  );
  assert.deepEqual(Object.keys(JSON.parse(body)), [
    "id",
    "type",
    "created_at",
    "account_id",
    "data",
  ]);
});

Deno.test({
  name: "an event is written iff its change commits",
  ...opts,
  fn: async () => {
    const db = connect(await testDbUrl(), 2);
    try {
      const u = await createUser(db, "outbox-tx");
      const o = await newOrder(db, u);
      await assert.rejects(
        db.begin(async (tx) => {
          await tx`select settle.apply_payment('razorpay', 'captured', ${o.gid}, 'pay_ObTx',
            ${o.amount}, 'INR')`;
          const inside = await tx`select type from public.outbox_events where subject_id = ${o.id}`;
          assert.deepEqual(inside.map((r) => r.type), ["order.paid"], "visible inside the tx");
          throw new Error("roll back");
        }),
        /roll back/,
      );
      assert.equal((await eventsFor(db, o.id)).length, 0, "rolled back: no event");
      const [{ status }] = await db`select status from public.orders where id = ${o.id}`;
      assert.equal(status, "created");

      await db.begin(async (tx) => {
        await tx`select settle.apply_payment('razorpay', 'captured', ${o.gid}, 'pay_ObTx',
          ${o.amount}, 'INR')`;
      });
      const events = await eventsFor(db, o.id);
      assert.deepEqual(events.map((e) => e.type), ["order.paid"], "committed: one event");
      assert.equal(events[0].account_id, u.accountId);
    } finally {
      await db.end();
    }
  },
});

Deno.test({
  name:
    "paying through the simulator, duplicate webhooks and verify: one order.paid, delivered once, signed",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const recvSigned = receiver(() => new Date());
      const sub = await subscriber(s.db, await recvSigned.url, ["order.*"]);
      recvSigned.state.secret = sub.secret;
      try {
        const u = await createUser(s.db, "outbox-flow");
        const { order, checkout } = await topupOrder(s, u, 43000);
        const proof = await payAtSimulator(s, checkout.order_id, {
          webhooks: { duplicate: 4, reorder: true },
        });
        const verified = await invoke(client(s, u.token), "verify", proof);
        assert.equal(verified.status, 200);
        await s.razorpay.idle();
        const again = await invoke(client(s, u.token), "verify", proof);
        assert.equal(again.status, 200);

        const events = await eventsFor(s.db, order.id);
        assert.equal(events.filter((e) => e.type === "order.paid").length, 1, "exactly one paid");
        assert.ok(events.every((e) => e.type === "order.paid" || e.type === "order.authorized"));
        const paid = events.find((e) => e.type === "order.paid")!;
        assert.deepEqual(Object.keys(paid.payload).sort(), [
          "account_id",
          "amount",
          "amount_refunded",
          "created_at",
          "currency",
          "failure_code",
          "failure_reason",
          "gateway",
          "gateway_order_id",
          "gateway_payment_id",
          "id",
          "paid_at",
          "plan_id",
          "previous_status",
          "product_id",
          "purpose",
          "status",
        ]);
        assert.equal(paid.payload.amount, 43000);
        assert.equal(paid.payload.status, "paid");
        assert.equal(paid.payload.gateway_payment_id, proof.razorpay_payment_id);

        const service = s.serviceRoleKey;
        const r = await raw(s, "outbox-dispatch", { method: "POST", token: service });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.deepEqual(r.body, {
          claimed: events.length,
          delivered: events.length,
          retrying: 0,
          dead: 0,
          stale: 0,
        });
        const paidReceipts = recvSigned.receipts.filter((x) => x.type === "order.paid");
        assert.equal(paidReceipts.length, 1, "order.paid reached the receiver once");
        assert.equal(recvSigned.receipts.length, events.length);
        assert.ok(recvSigned.receipts.every((x) => x.verified), "every signature verifies");
        const body = JSON.parse(paidReceipts[0].body);
        assert.equal(body.id, paid.id);
        assert.equal(paidReceipts[0].eventId, paid.id);
        assert.equal(body.type, "order.paid");
        assert.equal(body.account_id, u.accountId);
        assert.deepEqual(body.data, JSON.parse(JSON.stringify(paid.payload)));
        assert.ok(!/razorpay_signature|secret|card/.test(paidReceipts[0].body), "no secrets");

        const second = await raw(s, "outbox-dispatch", {
          method: "POST",
          token: service,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ limit: 10 }),
        });
        assert.equal(second.status, 200);
        assert.equal(second.body.claimed, 0, "nothing left to deliver");
        assert.equal(recvSigned.receipts.length, events.length);
        const d = await s.db`select status, attempts from public.outbox_deliveries
          where subscriber_id = ${sub.id}`;
        assert.ok(d.every((x) => x.status === "delivered" && x.attempts === 1));
      } finally {
        await dropSubscribers(s.db, [sub.id]);
        await recvSigned.close();
      }
    });
  },
});

Deno.test({
  name: "only the service role may call outbox-dispatch; bad input is refused before anything",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const recv = receiver(() => new Date());
      const sub = await subscriber(s.db, await recv.url, ["order.failed"]);
      recv.state.secret = sub.secret;
      try {
        const u = await createUser(s.db, "outbox-auth");
        const o = await newOrder(s.db, u);
        await s.db`select settle.apply_payment('razorpay', 'failed', ${o.gid}, null, null, null,
          'BAD_REQUEST_ERROR', 'declined')`;
        const pending = async () =>
          (await s.db`select status, attempts from public.outbox_deliveries
            where subscriber_id = ${sub.id}`).map((r) => `${r.status}/${r.attempts}`);
        assert.deepEqual(await pending(), ["pending/0"]);

        const json = { "content-type": "application/json" };
        const service = s.serviceRoleKey;
        const cases: [string, () => ReturnType<typeof raw>, number, string][] = [
          ["no JWT", () => raw(s, "outbox-dispatch", { method: "POST" }), 401, "unauthorized"],
          [
            "a user's JWT",
            () => raw(s, "outbox-dispatch", { method: "POST", token: u.token }),
            403,
            "forbidden",
          ],
          [
            "the anon key",
            () => raw(s, "outbox-dispatch", { method: "POST", token: s.anonKey }),
            401,
            "unauthorized",
          ],
          [
            "a forged service key",
            async () =>
              raw(s, "outbox-dispatch", {
                method: "POST",
                token: await userToken(u.id, { secret: "x".repeat(40) }),
              }),
            401,
            "unauthorized",
          ],
          [
            "GET",
            () => raw(s, "outbox-dispatch", { method: "GET", token: service }),
            405,
            "method_not_allowed",
          ],
          ...([
            [{ limit: 0 }, "invalid_request"],
            [{ limit: 1001 }, "invalid_request"],
            [{ limit: 2.5 }, "invalid_request"],
            [{ limit: "5" }, "invalid_request"],
            [{ other: 1 }, "invalid_request"],
            [[1], "invalid_request"],
          ] as [unknown, string][]).map(([body, code]) =>
            [
              `body ${JSON.stringify(body)}`,
              () =>
                raw(s, "outbox-dispatch", {
                  method: "POST",
                  token: service,
                  headers: json,
                  body: JSON.stringify(body),
                }),
              400,
              code,
            ] as [string, () => ReturnType<typeof raw>, number, string]
          ),
          [
            "not JSON",
            () =>
              raw(s, "outbox-dispatch", {
                method: "POST",
                token: service,
                headers: json,
                body: "{",
              }),
            400,
            "invalid_json",
          ],
          [
            "text/plain",
            () =>
              raw(s, "outbox-dispatch", {
                method: "POST",
                token: service,
                headers: { "content-type": "text/plain" },
                body: '{"limit":1}',
              }),
            415,
            "unsupported_media_type",
          ],
        ];
        for (const [name, send, status, code] of cases) {
          const r = await send();
          assertContractError(r, status, code);
          assert.deepEqual(await pending(), ["pending/0"], `${name}: nothing was claimed`);
          assert.equal(recv.receipts.length, 0, `${name}: nothing was sent`);
        }

        const ok = await raw(s, "outbox-dispatch", {
          method: "POST",
          token: service,
          headers: json,
          body: "{}",
        });
        assert.equal(ok.status, 200);
        assert.equal(ok.body.delivered, 1);
        assert.deepEqual(await pending(), ["delivered/1"]);
        assert.equal(recv.receipts.length, 1);
        assert.equal(recv.receipts[0].type, "order.failed");
      } finally {
        await dropSubscribers(s.db, [sub.id]);
        await recv.close();
      }
    });
  },
});

Deno.test({
  name: "a failing receiver gets retries with growing delays, then dead; replay re-delivers",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      let clock = new Date(Date.now() + 2000);
      const now = () => clock;
      const advance = (seconds: number) => (clock = new Date(clock.getTime() + seconds * 1000));
      const app = dispatcher(s, now, {
        maxAttempts: 4,
        backoffBaseSeconds: 10,
        backoffMaxSeconds: 3600,
        timeoutMs: 300,
      });
      const recv = receiver(now);
      const sub = await subscriber(s.db, await recv.url, ["order.paid"]);
      recv.state.secret = sub.secret;
      try {
        const u = await createUser(s.db, "outbox-retry");
        const o = await newOrder(s.db, u);
        await s.db`select settle.apply_payment('razorpay', 'captured', ${o.gid}, 'pay_ObR',
          ${o.amount}, 'INR')`;
        const [event] = await eventsFor(s.db, o.id);

        // Each failure kind in turn: a 500, no answer within the timeout, a redirect, a 404.
        const modes: Mode[] = [500, "hang", "redirect", 404];
        const errors = ["HTTP 500", "no answer within 300 ms", "HTTP 302", "HTTP 404"];
        const delays: number[] = [];
        for (let i = 0; i < modes.length; i++) {
          recv.state.mode = modes[i];
          const r = await dispatchOutbox(app);
          const last = i === modes.length - 1;
          assert.deepEqual(r, {
            claimed: 1,
            delivered: 0,
            retrying: last ? 0 : 1,
            dead: last ? 1 : 0,
            stale: 0,
          }, `attempt ${i + 1}`);
          const d = await delivery(s.db, sub.id);
          assert.equal(d.attempts, i + 1);
          assert.equal(d.last_error, errors[i]);
          if (last) {
            assert.equal(d.status, "dead");
            break;
          }
          assert.equal(d.status, "pending");
          const delay = (d.next_attempt_at.getTime() - clock.getTime()) / 1000;
          delays.push(delay);
          advance(delay - 1);
          assert.equal((await dispatchOutbox(app)).claimed, 0, "not before the backoff ends");
          advance(1);
        }
        assert.deepEqual(delays, [10, 20, 40], "exponential backoff from the base");
        assert.equal(recv.receipts.length, 4);
        assert.ok(
          recv.receipts.every((x) => x.eventId === event.id),
          "the same event id each time",
        );
        assert.ok(recv.receipts.every((x) => x.verified), "every attempt is signed");
        assert.deepEqual(recv.receipts.map((x) => x.attempt), [1, 2, 3, 4]);
        const ts = recv.receipts.map((x) => x.timestamp);
        assert.deepEqual(ts, [...ts].sort((a, b) => a - b));
        assert.ok(ts[3] - ts[0] >= 70, "each attempt is signed at its own time");
        assert.equal(new Set(recv.receipts.map((x) => x.body)).size, 1, "the body never changes");

        advance(86400);
        assert.equal((await dispatchOutbox(app)).claimed, 0, "a dead letter is not retried");

        recv.state.mode = "ok";
        const d = await delivery(s.db, sub.id);
        const [{ n }] = await s.db`select settle.outbox_replay_delivery(${d.id}) as n`;
        assert.equal(n, 1);
        assert.deepEqual(await dispatchOutbox(app), {
          claimed: 1,
          delivered: 1,
          retrying: 0,
          dead: 0,
          stale: 0,
        });
        assert.equal(recv.receipts.length, 5);
        assert.equal(recv.receipts[4].eventId, event.id, "replay sends the same event");
        assert.equal(recv.receipts[4].attempt, 1);
        assert.ok(recv.receipts[4].verified);
        const after = await delivery(s.db, sub.id);
        assert.equal(after.status, "delivered");
        assert.equal(after.replays, 1);
        assert.equal(after.last_http_status, 200);
        assert.equal(after.last_error, null);
      } finally {
        await dropSubscribers(s.db, [sub.id]);
        await recv.close();
      }
    });
  },
});

Deno.test({
  name: "a crashed dispatcher's claims come back when the lease runs out",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      let clock = new Date(Date.now() + 2000);
      const now = () => clock;
      const app = dispatcher(s, now);
      const recv = receiver(now);
      const sub = await subscriber(s.db, await recv.url, ["order.paid"]);
      recv.state.secret = sub.secret;
      try {
        const u = await createUser(s.db, "outbox-crash");
        const o = await newOrder(s.db, u);
        await s.db`select settle.apply_payment('razorpay', 'captured', ${o.gid}, 'pay_ObC',
          ${o.amount}, 'INR')`;
        // A worker claims with a 60 s lease and dies before sending anything.
        const claimed = await s.db`select delivery_id from settle.outbox_claim(10, 60,
          ${app.config.outbox.maxAttempts}, ${clock})`;
        assert.equal(claimed.length, 1);
        assert.equal((await dispatchOutbox(app)).claimed, 0, "held while the lease lasts");
        clock = new Date(clock.getTime() + 59_000);
        assert.equal((await dispatchOutbox(app)).claimed, 0);
        clock = new Date(clock.getTime() + 1_000);
        const r = await dispatchOutbox(app);
        assert.equal(r.delivered, 1, "delivered once the lease ran out");
        const d = await delivery(s.db, sub.id);
        assert.equal(d.status, "delivered");
        assert.equal(d.attempts, 2, "the crashed attempt counts");
        assert.equal(recv.receipts.length, 1);
      } finally {
        await dropSubscribers(s.db, [sub.id]);
        await recv.close();
      }
    });
  },
});

Deno.test({
  name: "two dispatchers at once deliver each (event, subscriber) exactly once",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const dbUrl = await testDbUrl();
      const poolA = connect(dbUrl, 4);
      const poolB = connect(dbUrl, 4);
      const clock = new Date(Date.now() + 2000);
      const now = () => clock;
      const settings = { concurrency: 4 };
      const a = dispatcher(s, now, settings, poolA);
      const b = dispatcher(s, now, settings, poolB);
      const jitter = () => Math.floor(Math.random() * 15);
      const receivers = [0, 1, 2].map(() => receiver(now, { delayMs: jitter }));
      const subs: { id: string; secret: string }[] = [];
      try {
        for (const r of receivers) {
          const sub = await subscriber(s.db, await r.url, ["order.*"]);
          r.state.secret = sub.secret;
          subs.push(sub);
        }

        const u = await createUser(s.db, "outbox-race");
        const events = 30;
        await s
          .db`select settle.outbox_emit('order.paid', ${u.accountId}, 'order', gen_random_uuid(),
          jsonb_build_object('n', n)) from generate_series(1, ${events}) n`;

        const loop = async (app: App) => {
          let claimed = 0;
          for (;;) {
            const r = await dispatchOutbox(app, { limit: 7 });
            assert.equal(r.delivered, r.claimed, JSON.stringify(r));
            if (r.claimed === 0) return claimed;
            claimed += r.claimed;
          }
        };
        const [byA, byB] = await Promise.all([loop(a), loop(b)]);
        const total = events * subs.length;
        assert.equal(byA + byB, total, "every delivery claimed once in all");
        assert.ok(byA > 0 && byB > 0, `both dispatchers worked (${byA} + ${byB})`);

        const receipts = receivers.flatMap((r, i) => r.receipts.map((x) => `${i}:${x.eventId}`));
        assert.equal(receipts.length, total, "no receiver got an event twice");
        assert.equal(new Set(receipts).size, total);
        assert.ok(receivers.every((r) => r.receipts.every((x) => x.verified)));
        const rows = await s.db`select status, attempts, count(*)::int as n
          from public.outbox_deliveries where subscriber_id = any(${subs.map((x) => x.id)}::uuid[])
          group by 1, 2`;
        assert.deepEqual(rows.map((r) => [r.status, r.attempts, r.n]), [["delivered", 1, total]]);
      } finally {
        await dropSubscribers(s.db, subs.map((x) => x.id));
        await Promise.all(receivers.map((r) => r.close()));
        await poolA.end();
        await poolB.end();
      }
    });
  },
});
