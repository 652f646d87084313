// Webhooks that are signed but wrong (not an event, a Razorpay body replayed under fresh event
// ids) and Stripe events settle used to drop (tests/fixtures/stripe: settle's own payloads in
// Stripe's wire format): charge.refunded, setup_intent.succeeded of a customer settle never
// created, payment_method.updated.
import assert from "node:assert/strict";
import { LOCAL_RAZORPAY, LOCAL_STRIPE } from "../dev/stack.ts";
import { hmacSha256HexSync } from "../shared/crypto.ts";
import { owedWebhookReads, reconcile } from "../shared/services/reconcile.ts";
import {
  client,
  confirmAtStripe,
  confirmSetupAtStripe,
  createUser,
  invoke,
  postStripeWebhook,
  postWebhook,
  type Reply,
  stripeEvents,
  type TestStack,
  type TestUser,
  walletBalance,
  withStack,
} from "./support/stack.ts";
import { clearFaults, stripeApi, stripeSim, stripeTopup } from "./support/isolated.ts";
import { assertContractError } from "./support/contract.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const fixture = (name: string) =>
  Deno.readTextFileSync(new URL(`./fixtures/stripe/${name}.json`, import.meta.url));

/** A body signed as Stripe signs it (now), posted to settle. */
function postSignedStripe(s: TestStack, body: string): Promise<Reply> {
  const t = Math.floor(Date.now() / 1000);
  const v1 = hmacSha256HexSync(LOCAL_STRIPE.webhookSecret, `${t}.${body}`);
  return postStripeWebhook(s, { body, signature: `t=${t},v1=${v1}` });
}

/** A body signed with the Razorpay webhook secret, posted under the given event id. */
function postSignedRazorpay(s: TestStack, body: string, eventId: string): Promise<Reply> {
  const signature = hmacSha256HexSync(LOCAL_RAZORPAY.webhookSecret, body);
  return postWebhook(s, { event_id: eventId, body, signature });
}

/** The fixture with its ids replaced (each replacement is every occurrence of one id). */
function withIds(name: string, ids: Record<string, string>): string {
  let body = fixture(name);
  for (const [from, to] of Object.entries(ids)) body = body.replaceAll(from, to);
  return body;
}

const freshEventId = () => `evt_${crypto.randomUUID().replaceAll("-", "")}`;

async function eventCount(s: TestStack): Promise<number> {
  const [{ n }] = await s.db`select count(*)::int as n from public.webhook_events`;
  return n;
}

async function storedEvent(s: TestStack, gateway: string, eventId: string) {
  const [row] = await s.db`select outcome, detail, attempts, effect from public.webhook_events
    where gateway = ${gateway} and event_id = ${eventId}`;
  return row;
}

async function customerOf(s: TestStack, u: TestUser): Promise<string> {
  const r = await invoke(client(s, u.token), "payment-methods/setup", {});
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const [c] = await s.db`select customer_id from public.gateway_customers
    where account_id = ${u.accountId} and gateway = 'stripe'`;
  return c.customer_id;
}

/** A 2500 USD top-up paid at the Stripe simulator, its webhooks delivered. */
async function paidStripeTopup(s: TestStack, u: TestUser) {
  const created = await stripeTopup(s, u, 2500, "USD");
  await confirmAtStripe(s, created.checkout.payment_intent_id);
  await s.stripe.idle();
  const [o] = await s.db`select status, gateway_order_id, gateway_payment_id from public.orders
    where id = ${created.order.id}`;
  assert.equal(o.status, "paid");
  assert.equal(await walletBalance(s.db, u.accountId, "USD"), 2500);
  return { orderId: created.order.id, pi: o.gateway_order_id, charge: o.gateway_payment_id };
}

async function orderRefunds(s: TestStack, orderId: string) {
  const [o] = await s.db`select status, amount_refunded from public.orders where id = ${orderId}`;
  const refunds = await s.db`select gateway_refund_id, status, amount, source from public.refunds
    where order_id = ${orderId} order by created_at`;
  return { status: o.status, amountRefunded: Number(o.amount_refunded), refunds: [...refunds] };
}

// ---------------------------------------------------------------- signed but not an event

Deno.test({
  name: "webhooks: a signed body that is not the gateway's event envelope is 400, nothing stored",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const razorpay: [string, string][] = [
        ["empty", ""],
        ["truncated JSON", '{"entity":"event","event":"payment.captured","payload":{'],
        ["an array", '[{"entity":"event","event":"payment.captured","payload":{}}]'],
        ["JSON null", "null"],
        ["a string", '"payment.captured"'],
        ["no event", '{"entity":"event","payload":{"payment":{"entity":{"id":"pay_X"}}}}'],
        ["an empty event name", '{"entity":"event","event":"","payload":{}}'],
        ["not entity event", '{"entity":"payment","event":"payment.captured","payload":{}}'],
        ["payload an array", '{"entity":"event","event":"payment.captured","payload":[]}'],
      ];
      const stripe: [string, string][] = [
        ["empty", ""],
        ["truncated JSON", '{"id":"evt_1","object":"event","type":"charge.refunded","data":'],
        ["an array", "[]"],
        ["no type", '{"id":"evt_1","object":"event","created":1,"data":{"object":{}}}'],
        ["no data.object", '{"id":"evt_1","object":"event","created":1,"type":"x","data":{}}'],
        ["an id that is no event id", '{"id":"ch_1","created":1,"type":"x","data":{"object":{}}}'],
        [
          "a known type whose object has no currency",
          '{"id":"evt_2","created":1,"type":"payment_intent.payment_failed","data":{"object":{"id":"pi_1"}}}',
        ],
      ];
      const before = await eventCount(s);
      for (const [name, body] of razorpay) {
        const r = await postSignedRazorpay(s, body, `evt_bad_${crypto.randomUUID()}`);
        assertContractError(r, 400, "invalid_request");
        assert.equal(await eventCount(s), before, `razorpay ${name}: stored`);
      }
      for (const [name, body] of stripe) {
        const r = await postSignedStripe(s, body);
        assert.equal(r.status, 400, `stripe ${name}: ${JSON.stringify(r.body)}`);
        assertContractError(r, 400, "invalid_request");
        assert.equal(await eventCount(s), before, `stripe ${name}: stored`);
      }
      // The signature is still checked first: a forged non-event is invalid_signature.
      const forged = await postWebhook(s, { event_id: "evt_forged", body: "", signature: "00" });
      assertContractError(forged, 400, "invalid_signature");
    });
  },
});

// ---------------------------------------------------------------- Razorpay replays

const rzpEvent = (event: string, payload: Record<string, unknown>) =>
  JSON.stringify({ entity: "event", account_id: "acc_Test", event, payload, created_at: 1 });
const rzpPayment = (id: string, status: string) => ({
  payment: {
    entity: { id, entity: "payment", amount: 100, currency: "INR", status, order_id: "order_Nx" },
  },
});
const rzpRefund = (id: string, status: string) => ({
  refund: {
    entity: {
      id,
      entity: "refund",
      amount: 100,
      currency: "INR",
      payment_id: "pay_RefundOf00001",
      status,
      notes: [],
    },
  },
  ...rzpPayment("pay_RefundOf00001", "captured"),
});

Deno.test({
  name: "webhooks: a signed Razorpay body replayed under fresh event ids is stored once",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const tag = crypto.randomUUID().slice(0, 8);
      const body = rzpEvent("payment.captured", rzpPayment(`pay_Replay${tag}`, "captured"));
      const first = await postSignedRazorpay(s, body, `evt_first_${tag}`);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      for (let i = 0; i < 3; i++) {
        const again = await postSignedRazorpay(s, body, `evt_replay_${tag}_${i}`);
        assert.equal(again.status, 200);
        assert.deepEqual(again.body, { received: true });
      }
      const rows = await s.db`select event_id from public.webhook_events
        where raw_body = ${body}`;
      assert.deepEqual(rows.map((r) => r.event_id), [`evt_first_${tag}`]);

      // Different events about one payment or one refund are not collapsed.
      const distinct = [
        rzpEvent("payment.authorized", rzpPayment(`pay_Two${tag}`, "authorized")),
        rzpEvent("payment.captured", rzpPayment(`pay_Two${tag}`, "captured")),
        rzpEvent("order.paid", rzpPayment(`pay_Two${tag}`, "captured")),
        rzpEvent("refund.created", rzpRefund(`rfnd_Two${tag}`, "pending")),
        rzpEvent("refund.processed", rzpRefund(`rfnd_Two${tag}`, "processed")),
      ];
      for (const [i, b] of distinct.entries()) {
        const r = await postSignedRazorpay(s, b, `evt_distinct_${tag}_${i}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      const [{ n }] = await s.db`select count(*)::int as n from public.webhook_events
        where event_id like ${`evt_distinct_${tag}_%`}`;
      assert.equal(n, distinct.length);
    });
  },
});

Deno.test({
  name: "webhooks: the same Razorpay body under 20 fresh ids at once stores exactly one row",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const tag = crypto.randomUUID().slice(0, 8);
      const body = rzpEvent("payment.failed", rzpPayment(`pay_Race${tag}`, "failed"));
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) => postSignedRazorpay(s, body, `evt_race_${tag}_${i}`)),
      );
      assert.deepEqual(replies.map((r) => r.status), Array(20).fill(200));
      const [{ n }] = await s.db`select count(*)::int as n from public.webhook_events
        where raw_body = ${body}`;
      assert.equal(n, 1);
    });
  },
});

// ---------------------------------------------------------------- charge.refunded

Deno.test({
  name: "webhooks: Stripe's charge.refunded (fixture, refunds listed) refunds the order once",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "charge-refunded");
      const paid = await paidStripeTopup(s, u);
      const refundId = `re_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
      const eventId = freshEventId();
      const body = withIds("charge_refunded", {
        evt_3Q8wZtblsiemfWMiI4eXjV2k: eventId,
        ch_3Q8wZtblsiekJcc3GzYrqZ22: paid.charge,
        pi_3Q8wZtblsie9LoD9r1L3UbVR: paid.pi,
        re_3Q8wZtblsieIO0lhERQAYHpb: refundId,
      });
      const r = await postSignedStripe(s, body);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal((await storedEvent(s, "stripe", eventId)).outcome, "applied");
      const after = await orderRefunds(s, paid.orderId);
      assert.equal(after.status, "refunded");
      assert.equal(after.amountRefunded, 2500);
      assert.deepEqual(
        after.refunds.map((x) => [x.gateway_refund_id, x.status, Number(x.amount)]),
        [
          [refundId, "processed", 2500],
        ],
      );
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);

      // The same refund again, as charge.refunded under another id and as refund.updated.
      const again = body.replaceAll(eventId, freshEventId());
      assert.equal((await postSignedStripe(s, again)).status, 200);
      const refundObject = JSON.parse(body).data.object.refunds.data[0];
      const updatedId = freshEventId();
      const updated = JSON.stringify({
        id: updatedId,
        object: "event",
        api_version: "2022-08-01",
        created: 1665583213,
        data: { object: refundObject },
        livemode: false,
        pending_webhooks: 1,
        request: null,
        type: "refund.updated",
      });
      assert.equal((await postSignedStripe(s, updated)).status, 200);
      assert.equal((await storedEvent(s, "stripe", updatedId)).outcome, "no_effect");
      const final = await orderRefunds(s, paid.orderId);
      assert.equal(final.refunds.length, 1);
      assert.equal(final.amountRefunded, 2500);
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
    });
  },
});

Deno.test({
  name:
    "webhooks: charge.refunded without its refund list reads the charge's refunds and applies them by id",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "charge-refunded-read");
      const paid = await paidStripeTopup(s, u);
      // A refund made at Stripe (the dashboard), its webhooks held back.
      await stripeSim(s, "config", { webhooks: { deliver: false } });
      const made = await stripeApi(s, "POST", "/v1/refunds", {
        payment_intent: paid.pi,
        amount: "1000",
      });
      assert.equal(made.status, 200, JSON.stringify(made.body));
      await stripeSim(s, "config", { webhooks: {} });
      const events = await stripeEvents(s, paid.charge);
      const chargeRefunded = events.find((e) => e.type === "charge.refunded")!;
      assert.ok(chargeRefunded, "the simulator emitted charge.refunded");
      assert.equal(JSON.parse(chargeRefunded.body).data.object.refunds, undefined);

      assert.equal((await postStripeWebhook(s, chargeRefunded)).status, 200);
      const id = JSON.parse(chargeRefunded.body).id;
      assert.equal((await storedEvent(s, "stripe", id)).outcome, "applied");
      let state = await orderRefunds(s, paid.orderId);
      assert.equal(state.status, "partially_refunded");
      assert.deepEqual(state.refunds.map((x) => [x.gateway_refund_id, Number(x.amount)]), [
        [made.body.id, 1000],
      ]);
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 1500);

      // refund.created for the same refund converges on the same row.
      const created = (await stripeEvents(s, made.body.id)).find((e) =>
        e.type === "refund.created"
      )!;
      assert.equal((await postStripeWebhook(s, created)).status, 200);
      state = await orderRefunds(s, paid.orderId);
      assert.equal(state.refunds.length, 1);
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 1500);

      // A refund through settle: its charge.refunded reads both refunds; both are known by id.
      const own = await invoke(client(s, u.token), "refunds", { order_id: paid.orderId });
      assert.equal(own.status, 201, JSON.stringify(own.body));
      await s.stripe.idle();
      const latest = (await stripeEvents(s, paid.charge)).filter((e) =>
        e.type === "charge.refunded"
      ).at(-1)!;
      const latestRow = await storedEvent(s, "stripe", JSON.parse(latest.body).id);
      assert.equal(latestRow.outcome, "no_effect");
      assert.deepEqual(
        latestRow.effect.refunds.map((r: { gateway_refund_id: string }) => r.gateway_refund_id)
          .sort(),
        [made.body.id, own.body.refund.gateway_refund_id].sort(),
      );
      state = await orderRefunds(s, paid.orderId);
      assert.equal(state.status, "refunded");
      assert.equal(state.refunds.length, 2);
      assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
    });
  },
});

// ---------------------------------------------------------------- setup_intent.succeeded

Deno.test({
  name: "webhooks: setup_intent.succeeded of a customer settle never created is 200 ignored",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const eventId = freshEventId();
      const body = withIds("setup_intent_succeeded", { evt_1Q8wZtblsieWMobS9LCpNTUH: eventId });
      const r = await postSignedStripe(s, body);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const row = await storedEvent(s, "stripe", eventId);
      assert.equal(row.outcome, "ignored");

      // A customer of settle's whose payment method Stripe does not have (404): not settle's.
      const u = await createUser(s.db, "setup-unknown-pm");
      const customer = await customerOf(s, u);
      const known = freshEventId();
      const r2 = await postSignedStripe(
        s,
        withIds("setup_intent_succeeded", {
          evt_1Q8wZtblsieWMobS9LCpNTUH: known,
          cus_R4eNw8ZpYc1HbT: customer,
        }),
      );
      assert.equal(r2.status, 200, JSON.stringify(r2.body));
      const row2 = await storedEvent(s, "stripe", known);
      assert.equal(row2.outcome, "ignored");
      assert.match(row2.detail, /no payment method pm_1Q8wZtblsieL7zkffdRGdS46/);
    });
  },
});

Deno.test({
  name:
    "webhooks: setup_intent.succeeded while Stripe is down is stored failed, reconcile saves it",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "setup-down");
      await customerOf(s, u);
      const setup = await invoke(client(s, u.token), "payment-methods/setup", {});
      await stripeSim(s, "config", { webhooks: { deliver: false } });
      await confirmSetupAtStripe(s, setup.body.setup_intent_id, "5555555555554444");
      await stripeSim(s, "config", { webhooks: {} });
      const succeeded = (await stripeEvents(s, setup.body.setup_intent_id)).find((e) =>
        e.type === "setup_intent.succeeded"
      )!;
      await stripeSim(s, "faults", {
        faults: [{ method: "GET", path: "/v1/payment_methods/*", mode: "error_503", count: 4 }],
      });
      const r = await postStripeWebhook(s, succeeded);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const id = JSON.parse(succeeded.body).id;
      const failed = await storedEvent(s, "stripe", id);
      assert.equal(failed.outcome, "failed");
      assert.equal(failed.effect.action, "fetch_card");
      assert.equal(
        (await s.db`select count(*)::int as n from public.payment_methods
          where account_id = ${u.accountId}`)[0].n,
        0,
      );

      await clearFaults(s);
      const summary = await reconcile(s.app, { retrySeconds: 0 }, [owedWebhookReads]);
      assert.deepEqual(summary.webhook_reads, { read: 1, resolved: 1, failed: 0 });
      const done = await storedEvent(s, "stripe", id);
      assert.equal(done.outcome, "applied");
      assert.equal(done.attempts, 2);
      const cards = await s.db`select brand, last4 from public.payment_methods
        where account_id = ${u.accountId}`;
      assert.deepEqual(cards.map((c) => [c.brand, c.last4]), [["mastercard", "4444"]]);
      // Nothing owed any more: a second run reads nothing.
      const again = await reconcile(s.app, { retrySeconds: 0 }, [owedWebhookReads]);
      assert.deepEqual(again.webhook_reads, { read: 0, resolved: 0, failed: 0 });
    });
  },
});

// ---------------------------------------------------------------- payment_method.updated

Deno.test({
  name: "webhooks: payment_method.updated (fixture) updates the stored card, idempotently",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pm-updated");
      const customer = await customerOf(s, u);
      const setup = await invoke(client(s, u.token), "payment-methods/setup", {});
      await confirmSetupAtStripe(s, setup.body.setup_intent_id, "4242424242424242");
      await s.stripe.idle();
      const [pm] = await s.db`select gateway_payment_method_id as id from public.payment_methods
        where account_id = ${u.accountId}`;
      assert.ok(pm, "the card was saved");
      const send = async (ids: Record<string, string>) => {
        const eventId = freshEventId();
        const r = await postSignedStripe(
          s,
          withIds("payment_method_updated", { evt_1Q8wZtblsieHRnygF5Y3pO0O: eventId, ...ids }),
        );
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return (await storedEvent(s, "stripe", eventId)).outcome;
      };
      const card = async () =>
        (await s.db`select brand, last4, exp_month, exp_year from public.payment_methods
          where gateway_payment_method_id = ${pm.id}`).map((c) => ({ ...c }));
      const ids = { pm_1Q8wZtblsieLPi5swUkv4PS4: pm.id, cus_T6uVa3QhLm0ZdE: customer };
      assert.equal(await send(ids), "applied");
      const updated = [{ brand: "mastercard", last4: "3222", exp_month: 9, exp_year: 2030 }];
      assert.deepEqual(await card(), updated);
      assert.equal(await send(ids), "no_effect");
      assert.deepEqual(await card(), updated);
      // Another customer naming this card changes nothing; so does a card settle never saved.
      assert.equal(await send({ pm_1Q8wZtblsieLPi5swUkv4PS4: pm.id }), "ignored");
      assert.equal(await send({ cus_T6uVa3QhLm0ZdE: customer }), "no_effect");
      assert.deepEqual(await card(), updated);
    });
  },
});

Deno.test({
  name:
    "webhooks: a new expiry at Stripe (simulator payment_method.updated) reaches the saved card",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "pm-expiry");
      await customerOf(s, u);
      const setup = await invoke(client(s, u.token), "payment-methods/setup", {});
      await confirmSetupAtStripe(s, setup.body.setup_intent_id, "4242424242424242");
      await s.stripe.idle();
      const [pm] = await s.db`select gateway_payment_method_id as id from public.payment_methods
        where account_id = ${u.accountId}`;
      const r = await stripeApi(s, "POST", `/v1/payment_methods/${pm.id}`, {
        "card[exp_month]": "7",
        "card[exp_year]": "2034",
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await s.stripe.idle();
      const updated = (await stripeEvents(s, pm.id)).find((e) =>
        e.type === "payment_method.updated"
      )!;
      assert.notEqual(JSON.parse(updated.body).data.previous_attributes.card.exp_month, 7);
      assert.equal(
        (await storedEvent(s, "stripe", JSON.parse(updated.body).id)).outcome,
        "applied",
      );
      const [card] = await s.db`select last4, exp_month, exp_year from public.payment_methods
        where gateway_payment_method_id = ${pm.id}`;
      assert.deepEqual({ ...card }, { last4: "4242", exp_month: 7, exp_year: 2034 });
    });
  },
});

Deno.test({
  name: "webhooks: one refund from 20 concurrent charge.refunded, then mixed with refund.updated",
  ...opts,
  fn: async () => {
    await withStack(async (s) => {
      const u = await createUser(s.db, "charge-refunded-race");
      const paid = await paidStripeTopup(s, u);
      const refundId = `re_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
      const charge = withIds("charge_refunded", {
        ch_3Q8wZtblsiekJcc3GzYrqZ22: paid.charge,
        pi_3Q8wZtblsie9LoD9r1L3UbVR: paid.pi,
        re_3Q8wZtblsieIO0lhERQAYHpb: refundId,
      });
      const refund = JSON.parse(charge).data.object.refunds.data[0];
      const updated = () =>
        JSON.stringify({
          id: freshEventId(),
          object: "event",
          created: 1665583213,
          data: { object: refund },
          type: "refund.updated",
        });
      const chargeRefunded = () =>
        charge.replaceAll("evt_3Q8wZtblsiemfWMiI4eXjV2k", freshEventId());
      const deliver = async (bodies: string[]) => {
        const replies = await Promise.all(bodies.map((b) => postSignedStripe(s, b)));
        assert.deepEqual(replies.map((r) => r.status), Array(bodies.length).fill(200));
        const state = await orderRefunds(s, paid.orderId);
        assert.deepEqual(state.refunds.map((x) => [x.gateway_refund_id, Number(x.amount)]), [
          [refundId, 2500],
        ]);
        assert.equal(state.status, "refunded");
        assert.equal(await walletBalance(s.db, u.accountId, "USD"), 0);
      };
      // charge.refunded alone (an endpoint not subscribed to refund.*), 20 at once...
      await deliver(Array.from({ length: 20 }, chargeRefunded));
      // ...then both kinds for the same refund at once: still one refund.
      await deliver(Array.from({ length: 20 }, (_, i) => i % 2 ? updated() : chargeRefunded()));
      const [{ n }] = await s.db`select count(*)::int as n from public.ledger_transactions
        where order_id = ${paid.orderId}`;
      assert.equal(n, 2, "one payment and one refund posted");
    });
  },
});
