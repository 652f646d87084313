// Checks the Stripe simulator through the official stripe SDK (requests, errors, webhook verification).
import assert from "node:assert/strict";
import Stripe from "stripe";
import {
  STRIPE_API_VERSION,
  stripeSignatureHeader,
  StripeSimulator,
} from "../dev/simulator/stripe/mod.ts";
import {
  type HarnessOpts,
  harnessTests,
  hookReceiver,
  type Json,
  jsonReply,
  serveSimulator,
  stopHarness,
} from "./support/simharness.ts";

const SECRET_KEY = "sk_test_settle_local";
const PUBLISHABLE_KEY = "pk_test_settle_local";
const WEBHOOK_SECRET = "whsec_settle_local";
const ID24 = /^[A-Za-z0-9]{24}$/;

interface Hook {
  body: string;
  signature: string | null;
  id: string;
  type: string;
}

function sdk(port: number, key = SECRET_KEY): Stripe {
  // The SDK's base path is fixed at /v1/, so the simulator is mounted at the root of its own port.
  return new Stripe(key, {
    host: "127.0.0.1",
    port,
    protocol: "http",
    maxNetworkRetries: 0,
    httpClient: Stripe.createFetchHttpClient(),
    apiVersion: Stripe.API_VERSION,
  });
}

function startHarness(opts: HarnessOpts = {}) {
  const receiver = hookReceiver((req, body): Hook => {
    const event = JSON.parse(body);
    return { body, signature: req.headers.get("stripe-signature"), id: event.id, type: event.type };
  }, opts.hookStatus);
  const hooks = receiver.hooks;
  const sim = new StripeSimulator({
    secretKey: SECRET_KEY,
    publishableKey: PUBLISHABLE_KEY,
    webhookSecret: WEBHOOK_SECRET,
    webhookUrl: receiver.url("/webhook/stripe"),
  });
  const served = serveSimulator((req) => sim.fetch(req));
  const port = served.port;
  const base = `http://127.0.0.1:${port}`;

  /** A control call (JSON). */
  async function control(method: string, path: string, body?: unknown) {
    const res = await fetch(base + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return await jsonReply(res);
  }

  /** A raw /v1 call, form-encoded like the SDK, for what the SDK's types will not send. */
  async function raw(
    method: string,
    path: string,
    form?: string,
    headers: Record<string, string> = {},
  ) {
    const res = await fetch(base + path, {
      method,
      headers: {
        authorization: `Bearer ${SECRET_KEY}`,
        ...(form === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" }),
        ...headers,
      },
      body: form,
    });
    return await jsonReply(res);
  }

  return {
    sim,
    base,
    port,
    hooks,
    stripe: sdk(port),
    inflight: served.inflight,
    control,
    raw,
    /** Webhooks delivered so far, oldest first, then forgotten. */
    async drain(): Promise<Hook[]> {
      await sim.idle();
      return hooks.splice(0);
    },
    close: () => stopHarness(sim, served.server, receiver.server),
  };
}

type Harness = ReturnType<typeof startHarness>;
const withHarness = harnessTests(startHarness);

/** Runs `fn`, expecting it to throw an instance of `cls`; returns the error. */
async function rejection<T>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  cls: new (...args: any[]) => T,
): Promise<T> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    return e;
  }
  throw new assert.AssertionError({ message: `expected ${cls.name}, nothing was thrown` });
}

/** lastResponse.headers is typed as a record, but the fetch client hands over a Headers object. */
function header(res: { lastResponse: { headers: Record<string, string> } }, name: string) {
  const h = res.lastResponse.headers as unknown as Headers | Record<string, string>;
  return h instanceof Headers ? h.get(name) : h[name];
}

const { StripeInvalidRequestError, StripeIdempotencyError, StripeAPIError, StripeCardError } =
  Stripe.errors;

interface Recorded {
  event_id: string;
  type: string;
  body: string;
  signature: string;
}

/** Events as recorded by the simulator, in emission order. */
async function recorded(h: Harness, query: string): Promise<Recorded[]> {
  return (await h.control("GET", `/_sim/stripe/events?${query}`)).json.events;
}

/** Every recorded event arrived once, byte for byte, whatever the arrival order. */
async function assertDelivered(h: Harness, events: Recorded[]) {
  const hooks = await h.drain();
  const key = (x: { body: string; signature: string | null }) => `${x.signature}\n${x.body}`;
  assert.deepEqual(hooks.map(key).sort(), events.map(key).sort());
}

async function paidIntent(h: Harness, params: Partial<Stripe.PaymentIntentCreateParams> = {}) {
  const pi = await h.stripe.paymentIntents.create({ amount: 2000, currency: "usd", ...params });
  const confirmed = await h.control("POST", `/_sim/stripe/payment_intents/${pi.id}/confirm`, {
    outcome: "success",
  });
  assert.equal(confirmed.json.status, "succeeded");
  return confirmed.json as Stripe.PaymentIntent;
}

Deno.test("signature helper agrees with GATEWAY_FACTS B5 and the SDK; API version is the SDK's", async () => {
  const body = '{"id":"evt_test_webhook","object":"event"}';
  assert.equal(
    stripeSignatureHeader("whsec_test_secret", 1700000000, body),
    "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990",
  );
  const fromSdk = await Stripe.webhooks.generateTestHeaderStringAsync({
    payload: body,
    secret: WEBHOOK_SECRET,
    timestamp: 1712345678,
  });
  assert.equal(stripeSignatureHeader(WEBHOOK_SECRET, 1712345678, body), fromSdk);
  assert.equal(STRIPE_API_VERSION, Stripe.API_VERSION);
});

withHarness(
  "customers: create, retrieve, update with previous_attributes, list PMs, errors",
  async (h) => {
    const c = await h.stripe.customers.create({
      email: "asha@example.com",
      name: "Asha",
      metadata: { account_id: "acc_1" },
    });
    assert.match(c.id, /^cus_/);
    assert.match(c.id.slice(4), ID24);
    assert.equal(c.object, "customer");
    assert.equal(c.livemode, false);
    assert.equal(c.email, "asha@example.com");
    assert.deepEqual(c.metadata, { account_id: "acc_1" });
    assert.equal(c.invoice_settings.default_payment_method, null);
    assert.ok(Math.abs(c.created - Date.now() / 1000) < 5);
    assert.match(c.lastResponse.requestId, /^req_[A-Za-z0-9]+$/);

    const got = await h.stripe.customers.retrieve(c.id);
    assert.deepEqual({ ...got }, { ...c });

    const updated = await h.stripe.customers.update(c.id, {
      email: "asha@example.org",
      metadata: { tier: "gold" },
    });
    assert.equal(updated.email, "asha@example.org");
    assert.deepEqual(updated.metadata, { account_id: "acc_1", tier: "gold" });
    const cleared = await h.stripe.customers.update(c.id, { metadata: { tier: "" } });
    assert.deepEqual(cleared.metadata, { account_id: "acc_1" });

    const pms = await h.stripe.customers.listPaymentMethods(c.id, { type: "card" });
    assert.deepEqual({ ...pms }, {
      object: "list",
      data: [],
      has_more: false,
      url: `/v1/customers/${c.id}/payment_methods`,
    });
    const found = await h.stripe.customers.list({ email: "asha@example.org" });
    assert.deepEqual(found.data.map((x) => x.id), [c.id]);

    const missing = await rejection(
      () => h.stripe.customers.retrieve("cus_missing"),
      StripeInvalidRequestError,
    );
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.code, "resource_missing");
    assert.equal(missing.param, "id");
    assert.equal(missing.message, "No such customer: 'cus_missing'");
    assert.match(missing.requestId ?? "", /^req_/);
    const email = await rejection(
      () => h.stripe.customers.create({ email: "not-an-email" }),
      StripeInvalidRequestError,
    );
    assert.equal(email.code, "email_invalid");
    assert.equal(email.param, "email");
    const unknown = await rejection(
      () => h.stripe.customers.create({ colour: "red" } as Stripe.CustomerCreateParams),
      StripeInvalidRequestError,
    );
    assert.equal(unknown.code, "parameter_unknown");
    assert.equal(unknown.message, "Received unknown parameter: colour");

    const auth = await rejection(
      () => sdk(h.port, "sk_test_wrong_key_000").customers.list(),
      Stripe.errors.StripeAuthenticationError,
    );
    assert.equal(auth.statusCode, 401);
    assert.match(auth.message, /^Invalid API Key provided: sk_test_\*+_000$/);
    const noKey = await fetch(`${h.base}/v1/customers`);
    assert.equal(noKey.status, 401);
    assert.equal((await noKey.json()).error.type, "invalid_request_error");

    // Separate API calls deliver independently: check order on the recorded events.
    const events = await recorded(h, `object_id=${c.id}`);
    assert.deepEqual(events.map((e) => e.type), [
      "customer.created",
      "customer.updated",
      "customer.updated",
    ]);
    await assertDelivered(h, events);
    const first = JSON.parse(events[1].body);
    assert.deepEqual(first.data.previous_attributes, {
      email: "asha@example.com",
      metadata: { tier: null },
    });
    assert.equal(first.data.object.email, "asha@example.org");
    assert.deepEqual(JSON.parse(events[2].body).data.previous_attributes, {
      metadata: { tier: "gold" },
    });
  },
);

withHarness("payment intents: create, idempotent replay and conflict", async (h) => {
  const c = await h.stripe.customers.create({ email: "pay@example.com" });
  const params: Stripe.PaymentIntentCreateParams = {
    amount: 2000,
    currency: "usd",
    customer: c.id,
    metadata: { order_id: "o1" },
    automatic_payment_methods: { enabled: true },
    description: "Order o1",
  };
  const a = await h.stripe.paymentIntents.create(params, { idempotencyKey: "order-o1" });
  assert.match(a.id, /^pi_/);
  assert.match(a.id.slice(3), ID24);
  assert.match(a.client_secret ?? "", new RegExp(`^${a.id}_secret_[A-Za-z0-9]{24}$`));
  assert.equal(a.status, "requires_payment_method");
  assert.equal(a.amount, 2000);
  assert.equal(a.amount_received, 0);
  assert.equal(a.currency, "usd");
  assert.equal(a.customer, c.id);
  assert.equal(a.livemode, false);
  assert.equal(a.latest_charge, null);
  assert.equal(a.payment_method, null);
  assert.deepEqual(a.metadata, { order_id: "o1" });
  assert.deepEqual(a.automatic_payment_methods, { allow_redirects: "always", enabled: true });

  const b = await h.stripe.paymentIntents.create(params, { idempotencyKey: "order-o1" });
  assert.deepEqual({ ...b }, { ...a });
  assert.equal(header(b, "idempotent-replayed"), "true");
  assert.notEqual(b.lastResponse.requestId, a.lastResponse.requestId);

  const conflict = await rejection(
    () =>
      h.stripe.paymentIntents.create({ ...params, amount: 2500 }, { idempotencyKey: "order-o1" }),
    StripeIdempotencyError,
  );
  assert.equal(conflict.statusCode, 400);
  assert.equal(conflict.rawType, "idempotency_error");
  assert.match(conflict.message, /same parameters they were first used with/);
  await rejection(
    () => h.stripe.customers.create({}, { idempotencyKey: "order-o1" }),
    StripeIdempotencyError,
  );
  const long = await h.raw("POST", "/v1/customers", "", { "idempotency-key": "k".repeat(256) });
  assert.equal(long.status, 400);

  const list = await h.stripe.paymentIntents.list({ customer: c.id });
  assert.deepEqual(list.data.map((x) => x.id), [a.id]);
  const got = await h.stripe.paymentIntents.retrieve(a.id);
  assert.deepEqual({ ...got }, { ...a });

  const hooks = (await h.drain()).filter((x) => x.type.startsWith("payment_intent."));
  assert.deepEqual(hooks.map((x) => x.type), ["payment_intent.created"]);
  const event = JSON.parse(hooks[0].body);
  assert.equal(event.data.object.id, a.id);
  assert.equal(event.request.idempotency_key, "order-o1");
  assert.equal(event.request.id, a.lastResponse.requestId);
});

withHarness("payment intents: Stripe-shaped validation errors and currency rules", async (h) => {
  const missing = await h.raw("POST", "/v1/payment_intents", "currency=usd");
  assert.equal(missing.status, 400);
  const { doc_url: _d, request_log_url: _r, ...error } = missing.json.error;
  assert.deepEqual(error, {
    type: "invalid_request_error",
    code: "parameter_missing",
    param: "amount",
    message: "Missing required param: amount.",
  });
  const viaSdk = await rejection(
    () => h.stripe.paymentIntents.create({ currency: "usd" } as Stripe.PaymentIntentCreateParams),
    StripeInvalidRequestError,
  );
  assert.equal(viaSdk.code, "parameter_missing");
  assert.equal(viaSdk.param, "amount");

  const tooSmall = await rejection(
    () => h.stripe.paymentIntents.create({ amount: 49, currency: "usd" }),
    StripeInvalidRequestError,
  );
  assert.equal(tooSmall.code, "amount_too_small");
  assert.equal(tooSmall.param, "amount");
  assert.equal((await h.stripe.paymentIntents.create({ amount: 30, currency: "gbp" })).amount, 30);
  await rejection(
    () => h.stripe.paymentIntents.create({ amount: 29, currency: "gbp" }),
    StripeInvalidRequestError,
  );
  const tooLarge = await rejection(
    () => h.stripe.paymentIntents.create({ amount: 100_000_000, currency: "usd" }),
    StripeInvalidRequestError,
  );
  assert.equal(tooLarge.code, "amount_too_large");
  const fraction = await rejection(
    () => h.stripe.paymentIntents.create({ amount: 1050.5, currency: "usd" }),
    StripeInvalidRequestError,
  );
  assert.equal(fraction.code, "parameter_invalid_integer");

  const yen = await h.stripe.paymentIntents.create({ amount: 500, currency: "jpy" });
  assert.equal(yen.amount, 500);
  assert.equal(yen.currency, "jpy");
  const kwd = await rejection(
    () => h.stripe.paymentIntents.create({ amount: 1005, currency: "kwd" }),
    StripeInvalidRequestError,
  );
  assert.equal(kwd.rawType, "invalid_request_error");
  assert.equal(kwd.param, "amount");
  assert.equal(
    (await h.stripe.paymentIntents.create({ amount: 1010, currency: "kwd" })).amount,
    1010,
  );
  const currency = await rejection(
    () => h.stripe.paymentIntents.create({ amount: 1000, currency: "xyz" }),
    StripeInvalidRequestError,
  );
  assert.equal(currency.param, "currency");
  assert.match(currency.message, /^Invalid currency: xyz\./);
  assert.equal(
    (await h.stripe.paymentIntents.create({ amount: 1000, currency: "INR" })).currency,
    "inr",
  );
  const noCustomer = await rejection(
    () => h.stripe.paymentIntents.create({ amount: 1000, currency: "usd", customer: "cus_nope" }),
    StripeInvalidRequestError,
  );
  assert.equal(noCustomer.code, "resource_missing");
  assert.equal(noCustomer.param, "customer");
  const sfu = await rejection(
    () =>
      h.stripe.paymentIntents.create({
        amount: 1000,
        currency: "usd",
        setup_future_usage: "sometimes" as "off_session",
      }),
    StripeInvalidRequestError,
  );
  assert.equal(sfu.param, "setup_future_usage");

  const json = await h.raw("POST", "/v1/payment_intents", '{"amount":1000}', {
    "content-type": "application/json",
  });
  assert.equal(json.status, 400);
  assert.match(json.json.error.message, /unsupported Content-Type/);
  const route = await h.raw("GET", "/v1/nothing-here");
  assert.equal(route.status, 404);
  assert.match(route.json.error.message, /^Unrecognized request URL \(GET: \/v1\/nothing-here\)/);
  const pi = await rejection(
    () => h.stripe.paymentIntents.retrieve("pi_x"),
    StripeInvalidRequestError,
  );
  assert.equal(pi.statusCode, 404);
  assert.equal(pi.message, "No such payment_intent: 'pi_x'");
});

withHarness(
  "confirm success: PaymentMethod saved for off-session, signed events verify with the SDK",
  async (h) => {
    const c = await h.stripe.customers.create({ email: "save@example.com" });
    const pi = await h.stripe.paymentIntents.create({
      amount: 4999,
      currency: "usd",
      customer: c.id,
      setup_future_usage: "off_session",
      metadata: { order_id: "o2" },
    });
    await h.drain();
    const res = await h.control("POST", `/_sim/stripe/payment_intents/${pi.id}/confirm`, {
      outcome: "success",
      card: "5555555555554444",
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(res.json.id, pi.id);
    assert.equal(res.json.status, "succeeded");

    const got = await h.stripe.paymentIntents.retrieve(pi.id, {
      expand: ["latest_charge", "payment_method"],
    });
    assert.equal(got.status, "succeeded");
    assert.equal(got.amount_received, 4999);
    const charge = got.latest_charge as Stripe.Charge;
    assert.match(charge.id, /^ch_[A-Za-z0-9]{24}$/);
    assert.equal(charge.status, "succeeded");
    assert.equal(charge.amount_captured, 4999);
    assert.equal(charge.payment_intent, pi.id);
    assert.deepEqual(charge.metadata, { order_id: "o2" });
    const pm = got.payment_method as Stripe.PaymentMethod;
    assert.match(pm.id, /^pm_[A-Za-z0-9]{24}$/);
    assert.equal(pm.customer, c.id);
    assert.equal(pm.card?.brand, "mastercard");
    assert.equal(pm.card?.last4, "4444");
    assert.equal(pm.card?.funding, "credit");
    assert.equal(pm.billing_details.email, null);
    const saved = await h.stripe.customers.listPaymentMethods(c.id);
    assert.deepEqual(saved.data.map((x) => x.id), [pm.id]);

    const hooks = await h.drain();
    assert.deepEqual(hooks.map((x) => x.type), [
      "payment_method.attached",
      "charge.succeeded",
      "payment_intent.succeeded",
    ]);
    for (const hook of hooks) {
      assert.match(hook.signature ?? "", /^t=\d+,v1=[0-9a-f]{64}$/);
      const event = await h.stripe.webhooks.constructEventAsync(
        hook.body,
        hook.signature!,
        WEBHOOK_SECRET,
      );
      assert.equal(event.id, hook.id);
      assert.match(event.id, /^evt_[A-Za-z0-9]{24}$/);
      assert.equal(event.api_version, Stripe.API_VERSION);
      assert.equal(event.livemode, false);
      assert.equal(event.pending_webhooks, 1);
      assert.deepEqual(event.request, { id: null, idempotency_key: null });
      await assert.rejects(
        () => h.stripe.webhooks.constructEventAsync(hook.body, hook.signature!, "whsec_wrong"),
        Stripe.errors.StripeSignatureVerificationError,
      );
      await assert.rejects(
        () =>
          h.stripe.webhooks.constructEventAsync(
            `${hook.body} `,
            hook.signature!,
            WEBHOOK_SECRET,
          ),
        Stripe.errors.StripeSignatureVerificationError,
      );
    }
    const succeeded = JSON.parse(hooks[2].body);
    assert.equal(succeeded.data.object.status, "succeeded");
    assert.equal(succeeded.data.object.latest_charge, charge.id);

    const recorded = await h.control("GET", `/_sim/stripe/events?object_id=${pi.id}`);
    assert.deepEqual(recorded.json.events.map((e: Json) => e.type), [
      "payment_intent.created",
      "payment_intent.succeeded",
    ]);
    assert.equal(recorded.json.events[1].body, hooks[2].body);
    assert.equal(recorded.json.events[1].signature, hooks[2].signature);
    const related = await h.control("GET", `/_sim/stripe/events?related_id=${pi.id}`);
    assert.equal(related.json.events.length, 3);

    const fromApi = await h.stripe.events.retrieve(hooks[2].id);
    assert.deepEqual(JSON.parse(JSON.stringify(fromApi)), JSON.parse(hooks[2].body));
    const listed = await h.stripe.events.list({ type: "charge.succeeded" });
    assert.deepEqual(listed.data.map((e) => e.id), [hooks[1].id]);
  },
);

withHarness("confirm failure, retry, 3DS requires_action, cancel", async (h) => {
  const pi = await h.stripe.paymentIntents.create({ amount: 1500, currency: "eur" });
  const declined = await h.control("POST", `/_sim/stripe/payment_intents/${pi.id}/confirm`, {
    card: "4000000000000002",
  });
  assert.equal(declined.status, 200);
  assert.equal(declined.json.status, "requires_payment_method");
  assert.equal(declined.json.payment_method, null);
  const { charge, payment_method: failedPm, doc_url: _d, ...lastError } =
    declined.json.last_payment_error;
  assert.deepEqual(lastError, {
    type: "card_error",
    code: "card_declined",
    decline_code: "generic_decline",
    message: "Your card was declined.",
  });
  assert.match(charge, /^ch_/);
  assert.equal(failedPm.card.last4, "0002");
  const forced = await h.control("POST", `/_sim/stripe/payment_intents/${pi.id}/confirm`, {
    outcome: "failure",
  });
  assert.equal(forced.json.status, "requires_payment_method");
  const ok = await h.control("POST", `/_sim/stripe/payment_intents/${pi.id}/confirm`, {
    outcome: "success",
    card: "378282246310005",
  });
  assert.equal(ok.json.status, "succeeded");
  assert.equal(ok.json.last_payment_error, null);
  const got = await h.stripe.paymentIntents.retrieve(pi.id);
  assert.equal(got.status, "succeeded");
  assert.equal(got.amount_received, 1500);
  const again = await h.control("POST", `/_sim/stripe/payment_intents/${pi.id}/confirm`, {});
  assert.equal(again.status, 400);
  assert.equal(again.json.error.code, "payment_intent_unexpected_state");
  // Each trigger delivers on its own, so across triggers the recorded (emission) order is the one
  // to check; deliveries of separate triggers may interleave, as Stripe's do.
  const types = async (query: string) =>
    (await h.control("GET", `/_sim/stripe/events?${query}`)).json.events.map((e: Json) => e.type);
  assert.deepEqual(await types(`related_id=${pi.id}`), [
    "payment_intent.created",
    "charge.failed",
    "payment_intent.payment_failed",
    "charge.failed",
    "payment_intent.payment_failed",
    "charge.succeeded",
    "payment_intent.succeeded",
  ]);

  const pi3ds = await h.stripe.paymentIntents.create({ amount: 1500, currency: "usd" });
  const action = await h.control("POST", `/_sim/stripe/payment_intents/${pi3ds.id}/confirm`, {
    card: "4000002500003155",
  });
  assert.equal(action.json.status, "requires_action");
  assert.equal(action.json.next_action.type, "use_stripe_sdk");
  const authed = await h.control("POST", `/_sim/stripe/payment_intents/${pi3ds.id}/confirm`, {});
  assert.equal(authed.json.status, "succeeded");
  const forcedAction = await h.stripe.paymentIntents.create({ amount: 1500, currency: "usd" });
  const failedAuth = await h.control(
    "POST",
    `/_sim/stripe/payment_intents/${forcedAction.id}/confirm`,
    { outcome: "requires_action" },
  );
  assert.equal(failedAuth.json.status, "requires_action");
  const authFailure = await h.control(
    "POST",
    `/_sim/stripe/payment_intents/${forcedAction.id}/confirm`,
    { outcome: "failure" },
  );
  assert.equal(authFailure.json.status, "requires_payment_method");
  assert.equal(authFailure.json.last_payment_error.code, "payment_intent_authentication_failure");

  const canceled = await h.stripe.paymentIntents.cancel(forcedAction.id, {
    cancellation_reason: "requested_by_customer",
  });
  assert.equal(canceled.status, "canceled");
  assert.equal(canceled.cancellation_reason, "requested_by_customer");
  assert.equal(typeof canceled.canceled_at, "number");
  const late = await h.control(
    "POST",
    `/_sim/stripe/payment_intents/${forcedAction.id}/confirm`,
    { outcome: "success" },
  );
  assert.equal(late.status, 400);
  const cancelPaid = await rejection(
    () => h.stripe.paymentIntents.cancel(pi.id),
    StripeInvalidRequestError,
  );
  assert.equal(cancelPaid.code, "payment_intent_unexpected_state");
  assert.deepEqual(await types(`object_id=${pi3ds.id}`), [
    "payment_intent.created",
    "payment_intent.requires_action",
    "payment_intent.succeeded",
  ]);
  assert.deepEqual(await types(`object_id=${forcedAction.id}`), [
    "payment_intent.created",
    "payment_intent.requires_action",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
  ]);
  const hooks = await h.drain();
  assert.equal(hooks.length, 15);
  const cancelEvent = JSON.parse(hooks.find((x) => x.type === "payment_intent.canceled")!.body);
  assert.equal(cancelEvent.request.id, canceled.lastResponse.requestId);
});

withHarness(
  "setup intents attach a card; default via customers.update; detach is permanent",
  async (h) => {
    const c = await h.stripe.customers.create({ email: "cards@example.com" });
    const si = await h.stripe.setupIntents.create({
      customer: c.id,
      automatic_payment_methods: { enabled: true },
      metadata: { purpose: "save_card" },
    });
    assert.match(si.id, /^seti_[A-Za-z0-9]{24}$/);
    assert.match(si.client_secret ?? "", new RegExp(`^${si.id}_secret_[A-Za-z0-9]{24}$`));
    assert.equal(si.status, "requires_payment_method");
    assert.equal(si.usage, "off_session");
    assert.equal(si.customer, c.id);
    await h.drain();

    const confirmed = await h.control("POST", `/_sim/stripe/setup_intents/${si.id}/confirm`, {
      card: "4242424242424242",
      exp_month: 12,
      exp_year: 2030,
    });
    assert.equal(confirmed.status, 200);
    assert.equal(confirmed.json.status, "succeeded");
    const pmId: string = confirmed.json.payment_method;
    assert.match(pmId, /^pm_/);
    assert.equal((await h.stripe.setupIntents.retrieve(si.id)).payment_method, pmId);
    const [pm] = (await h.stripe.customers.listPaymentMethods(c.id, { type: "card" })).data;
    assert.equal(pm.id, pmId);
    assert.equal(pm.customer, c.id);
    assert.deepEqual(
      {
        brand: pm.card?.brand,
        last4: pm.card?.last4,
        exp_month: pm.card?.exp_month,
        exp_year: pm.card?.exp_year,
        funding: pm.card?.funding,
      },
      { brand: "visa", last4: "4242", exp_month: 12, exp_year: 2030, funding: "credit" },
    );
    assert.match(pm.card?.fingerprint ?? "", /^[A-Za-z0-9]{16}$/);
    assert.deepEqual((await h.drain()).map((x) => x.type), [
      "setup_intent.succeeded",
      "payment_method.attached",
    ]);

    const withDefault = await h.stripe.customers.update(c.id, {
      invoice_settings: { default_payment_method: pmId },
    });
    assert.equal(withDefault.invoice_settings.default_payment_method, pmId);
    const [updated] = await h.drain();
    assert.equal(updated.type, "customer.updated");
    assert.deepEqual(JSON.parse(updated.body).data.previous_attributes, {
      invoice_settings: { default_payment_method: null },
    });

    // Same card on another customer: same fingerprint, but not this customer's to make default.
    const other = await h.stripe.customers.create({ email: "other@example.com" });
    const si2 = await h.stripe.setupIntents.create({ customer: other.id });
    const pm2 = (await h.control("POST", `/_sim/stripe/setup_intents/${si2.id}/confirm`, {
      card: "4242424242424242",
    })).json.payment_method;
    assert.equal(
      (await h.stripe.paymentMethods.retrieve(pm2)).card?.fingerprint,
      pm.card?.fingerprint,
    );
    const notAttached = await rejection(
      () => h.stripe.customers.update(c.id, { invoice_settings: { default_payment_method: pm2 } }),
      StripeInvalidRequestError,
    );
    assert.equal(notAttached.code, "resource_missing");
    assert.equal(notAttached.param, "invoice_settings[default_payment_method]");
    const taken = await rejection(
      () => h.stripe.paymentMethods.attach(pm2, { customer: c.id }),
      StripeInvalidRequestError,
    );
    assert.equal(taken.param, "payment_method");
    await h.drain();

    const detached = await h.stripe.paymentMethods.detach(pmId);
    assert.equal(detached.customer, null);
    assert.deepEqual((await h.stripe.customers.listPaymentMethods(c.id)).data, []);
    assert.equal(
      (await h.stripe.customers.retrieve(c.id) as Stripe.Customer).invoice_settings
        .default_payment_method,
      null,
    );
    const reattach = await rejection(
      () => h.stripe.paymentMethods.attach(pmId, { customer: c.id }),
      StripeInvalidRequestError,
    );
    assert.match(reattach.message, /may not be used again/);
    await rejection(() => h.stripe.paymentMethods.detach(pmId), StripeInvalidRequestError);
    const reuse = await rejection(
      () =>
        h.stripe.paymentIntents.create({
          amount: 1000,
          currency: "usd",
          customer: c.id,
          payment_method: pmId,
        }),
      StripeInvalidRequestError,
    );
    assert.equal(reuse.param, "payment_method");
    const hooks = await h.drain();
    assert.deepEqual(hooks.map((x) => x.type), ["payment_method.detached", "customer.updated"]);
    assert.deepEqual(JSON.parse(hooks[0].body).data.previous_attributes, { customer: c.id });

    const fromList = await h.stripe.paymentMethods.list({ customer: other.id, type: "card" });
    assert.deepEqual(fromList.data.map((x) => x.id), [pm2]);
  },
);

withHarness(
  "off-session charges with saved cards: success, 3DS set up, and a 402 decline",
  async (h) => {
    const c = await h.stripe.customers.create({ email: "offsession@example.com" });
    const si = await h.stripe.setupIntents.create({ customer: c.id });
    const action = await h.control("POST", `/_sim/stripe/setup_intents/${si.id}/confirm`, {
      card: "4000002500003155",
    });
    assert.equal(action.json.status, "requires_action");
    const done = await h.control("POST", `/_sim/stripe/setup_intents/${si.id}/confirm`, {});
    assert.equal(done.json.status, "succeeded");
    const pi = await h.stripe.paymentIntents.create({
      amount: 1200,
      currency: "usd",
      customer: c.id,
      payment_method: done.json.payment_method,
      off_session: true,
      confirm: true,
    });
    assert.equal(pi.status, "succeeded");
    assert.equal(pi.amount_received, 1200);

    const bad = await h.stripe.paymentMethods.attach("pm_card_chargeDeclined", { customer: c.id });
    assert.match(bad.id, /^pm_[A-Za-z0-9]{24}$/);
    const declined = await rejection(
      () =>
        h.stripe.paymentIntents.create({
          amount: 1200,
          currency: "usd",
          customer: c.id,
          payment_method: bad.id,
          off_session: true,
          confirm: true,
        }),
      StripeCardError,
    );
    assert.equal(declined.statusCode, 402);
    assert.equal(declined.code, "card_declined");
    assert.equal(declined.decline_code, "generic_decline");
    assert.equal(declined.payment_intent?.status, "requires_payment_method");
    assert.equal(declined.payment_intent?.customer, c.id);
    const failedPi = await h.stripe.paymentIntents.retrieve(declined.payment_intent!.id);
    assert.equal(failedPi.last_payment_error?.code, "card_declined");

    const offSessionAlone = await rejection(
      () =>
        h.stripe.paymentIntents.create({
          amount: 1200,
          currency: "usd",
          off_session: true,
        }),
      StripeInvalidRequestError,
    );
    assert.equal(offSessionAlone.param, "off_session");
  },
);

withHarness("refunds: partial, full, bounds, events, late failure", async (h) => {
  const pi = await paidIntent(h, { metadata: { order_id: "o3" } });
  const notPaid = await h.stripe.paymentIntents.create({ amount: 2000, currency: "usd" });
  await h.drain();

  const partial = await h.stripe.refunds.create({
    payment_intent: pi.id,
    amount: 500,
    reason: "requested_by_customer",
    metadata: { refund_id: "r1" },
  });
  assert.match(partial.id, /^re_[A-Za-z0-9]{24}$/);
  assert.equal(partial.status, "succeeded");
  assert.equal(partial.amount, 500);
  assert.equal(partial.charge, pi.latest_charge);
  assert.equal(partial.payment_intent, pi.id);
  assert.deepEqual(partial.metadata, { refund_id: "r1" });
  const charge = await h.stripe.charges.retrieve(pi.latest_charge as string);
  assert.equal(charge.amount_refunded, 500);
  assert.equal(charge.refunded, false);

  const over = await rejection(
    () => h.stripe.refunds.create({ payment_intent: pi.id, amount: 1501 }),
    StripeInvalidRequestError,
  );
  assert.equal(over.code, "amount_too_large");
  const rest = await h.stripe.refunds.create({ payment_intent: pi.id });
  assert.equal(rest.amount, 1500);
  assert.equal((await h.stripe.charges.retrieve(pi.latest_charge as string)).refunded, true);
  const twice = await rejection(
    () => h.stripe.refunds.create({ payment_intent: pi.id }),
    StripeInvalidRequestError,
  );
  assert.equal(twice.code, "charge_already_refunded");
  const unpaid = await rejection(
    () => h.stripe.refunds.create({ payment_intent: notPaid.id }),
    StripeInvalidRequestError,
  );
  assert.equal(unpaid.code, "charge_not_refundable");
  assert.deepEqual({ ...await h.stripe.refunds.retrieve(partial.id) }, { ...partial });
  const list = await h.stripe.refunds.list({ payment_intent: pi.id });
  assert.deepEqual(list.data.map((r) => r.id), [rest.id, partial.id]);

  const events = (await recorded(h, `related_id=${pi.id}`)).slice(-4);
  assert.deepEqual(events.map((e) => e.type), [
    "refund.created",
    "charge.refunded",
    "refund.created",
    "charge.refunded",
  ]);
  await assertDelivered(h, events);
  assert.deepEqual(JSON.parse(events[3].body).data.previous_attributes, {
    amount_refunded: 500,
    refunded: false,
  });

  const failed = await h.control("POST", `/_sim/stripe/refunds/${partial.id}/fail`, {});
  assert.equal(failed.json.status, "failed");
  assert.equal(failed.json.failure_reason, "expired_or_canceled_card");
  assert.equal((await h.stripe.charges.retrieve(pi.latest_charge as string)).amount_refunded, 1500);
  assert.deepEqual((await h.drain()).map((x) => x.type), ["refund.updated", "refund.failed"]);
});

withHarness(
  "webhooks: duplicates share ids, reorder reverses, drop and deliver:false only record",
  async (h) => {
    const first = await h.stripe.paymentIntents.create({ amount: 2000, currency: "usd" });
    await h.drain();
    await h.control("POST", `/_sim/stripe/payment_intents/${first.id}/confirm`, {
      webhooks: { duplicate: 2 },
    });
    const dup = await h.drain();
    assert.equal(dup.length, 6);
    const byId = Map.groupBy(dup, (x) => x.id);
    assert.equal(byId.size, 2);
    for (const copies of byId.values()) {
      assert.equal(copies.length, 3);
      assert.equal(new Set(copies.map((c) => c.body)).size, 1);
      assert.equal(new Set(copies.map((c) => c.signature)).size, 1);
      await h.stripe.webhooks.constructEventAsync(
        copies[2].body,
        copies[2].signature!,
        WEBHOOK_SECRET,
      );
    }
    assert.deepEqual([...new Set(dup.map((x) => x.type))], [
      "charge.succeeded",
      "payment_intent.succeeded",
    ]);

    const second = await h.stripe.paymentIntents.create({ amount: 2000, currency: "usd" });
    await h.drain();
    await h.control("POST", `/_sim/stripe/payment_intents/${second.id}/confirm`, {
      webhooks: { reorder: true, delay_ms: 20 },
    });
    assert.deepEqual((await h.drain()).map((x) => x.type), [
      "payment_intent.succeeded",
      "charge.succeeded",
    ]);

    const third = await h.stripe.paymentIntents.create({ amount: 2000, currency: "usd" });
    const fourth = await h.stripe.paymentIntents.create({ amount: 2000, currency: "usd" });
    await h.drain();
    await h.control("POST", `/_sim/stripe/payment_intents/${third.id}/confirm`, {
      webhooks: { deliver: false },
    });
    await h.control("POST", `/_sim/stripe/payment_intents/${fourth.id}/confirm`, {
      webhooks: { drop: true },
    });
    assert.equal((await h.drain()).length, 0);
    const recorded = (await h.control("GET", `/_sim/stripe/events?related_id=${third.id}`)).json
      .events;
    assert.deepEqual(recorded.map((e: Json) => e.type), [
      "payment_intent.created",
      "charge.succeeded",
      "payment_intent.succeeded",
    ]);
    const deliveries = (await h.control("GET", "/_sim/stripe/deliveries")).json.deliveries;
    assert.equal(deliveries.filter((d: Json) => d.error === "dropped").length, 2);

    // A recorded event can be sent later, e.g. a stale payment_intent.succeeded arriving last.
    const resend = await h.control(
      "POST",
      `/_sim/stripe/events/${recorded[2].event_id}/resend`,
      {},
    );
    assert.equal(resend.status, 200);
    const [late] = await h.drain();
    assert.equal(late.id, recorded[2].event_id);
    assert.equal(late.body, recorded[2].body);

    // Defaults for API-triggered events come from /config.
    await h.control("POST", "/_sim/stripe/config", { webhooks: { duplicate: 1 } });
    await h.stripe.customers.create({});
    assert.equal((await h.drain()).length, 2);
  },
);

withHarness(
  "faults: error_500 once, reset_after replays by idempotency key, timeout, 503s",
  async (h) => {
    const set = await h.control("POST", "/_sim/stripe/faults", {
      faults: [{ method: "POST", path: "/v1/payment_intents", mode: "error_500", count: 1 }],
    });
    assert.equal(set.status, 200);
    const failed = await rejection(
      () => h.stripe.paymentIntents.create({ amount: 2000, currency: "usd" }),
      StripeAPIError,
    );
    assert.equal(failed.statusCode, 500);
    assert.equal(failed.rawType, "api_error");
    const okPi = await h.stripe.paymentIntents.create({ amount: 2000, currency: "usd" });
    assert.equal(okPi.status, "requires_payment_method");

    // The request runs, the connection drops before the answer; a retry with the same key replays.
    await h.control("POST", "/_sim/stripe/faults", {
      faults: [{ path: "/v1/payment_intents", mode: "reset_after" }],
    });
    const params = { amount: 3000, currency: "usd", metadata: { order_id: "reset" } };
    await assert.rejects(() =>
      h.stripe.paymentIntents.create(params, { idempotencyKey: "order-reset" })
    );
    const replay = await h.stripe.paymentIntents.create(params, { idempotencyKey: "order-reset" });
    assert.equal(header(replay, "idempotent-replayed"), "true");
    const all = await h.stripe.paymentIntents.list({ limit: 100 });
    assert.equal(all.data.filter((p) => p.metadata.order_id === "reset").length, 1);

    await h.control("POST", "/_sim/stripe/faults", {
      faults: [{ method: "GET", path: "/v1/payment_intents/*", mode: "timeout", hold_ms: 10_000 }],
    });
    const started = Date.now();
    await rejection(
      () => h.stripe.paymentIntents.retrieve(okPi.id, {}, { timeout: 150 }),
      Stripe.errors.StripeConnectionError,
    );
    while (h.inflight() > 0 && Date.now() - started < 5000) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(h.inflight(), 0);
    assert.ok(Date.now() - started < 3000);

    await h.control("POST", "/_sim/stripe/faults", { faults: [{ mode: "error_503", count: 5 }] });
    const unavailable = await rejection(() => h.stripe.customers.list(), StripeAPIError);
    assert.equal(unavailable.statusCode, 503);
    assert.equal((await h.control("GET", "/_sim/stripe/faults")).json.faults[0].count, 4);
    await h.control("DELETE", "/_sim/stripe/faults");
    assert.deepEqual((await h.stripe.customers.list()).data, []);
    const bad = await h.control("POST", "/_sim/stripe/faults", { faults: [{ mode: "explode" }] });
    assert.equal(bad.status, 400);
  },
);

withHarness(
  "control surface: CORS, request ids, config, publishable key, unknown ids",
  async (h) => {
    const pre = await fetch(`${h.base}/_sim/stripe/payment_intents/pi_x/confirm`, {
      method: "OPTIONS",
      headers: {
        origin: "http://localhost:3000",
        "access-control-request-headers": "content-type",
      },
    });
    await pre.body?.cancel();
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "*");
    assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);

    const unknownPi = await h.control("POST", "/_sim/stripe/payment_intents/pi_missing/confirm", {
      outcome: "success",
    });
    assert.equal(unknownPi.status, 404);
    assert.equal(unknownPi.json.error.code, "resource_missing");
    assert.equal(unknownPi.headers.get("access-control-allow-origin"), "*");
    assert.match(unknownPi.headers.get("request-id") ?? "", /^req_/);
    const badOutcome = await h.control("POST", "/_sim/stripe/payment_intents/pi_missing/confirm", {
      outcome: "maybe",
    });
    assert.equal(badOutcome.status, 400);
    assert.equal((await h.control("GET", "/_sim/stripe/nothing")).status, 404);
    assert.equal((await h.control("GET", "/elsewhere")).status, 404);

    const pi = await h.stripe.paymentIntents.create({ amount: 2000, currency: "usd" });
    const badCard = await h.control("POST", `/_sim/stripe/payment_intents/${pi.id}/confirm`, {
      card: "4242424242424241",
    });
    assert.equal(badCard.status, 402);
    assert.equal(badCard.json.error.code, "incorrect_number");

    // Stripe.js reads an intent with the publishable key and the client secret, nothing more.
    const client = sdk(h.port, PUBLISHABLE_KEY);
    const seen = await client.paymentIntents.retrieve(pi.id, { client_secret: pi.client_secret! });
    assert.equal(seen.id, pi.id);
    await rejection(
      () => client.paymentIntents.retrieve(pi.id, { client_secret: `${pi.id}_secret_wrong` }),
      StripeInvalidRequestError,
    );
    await rejection(() => client.customers.create({}), Stripe.errors.StripeAuthenticationError);

    const cfg = await h.control("POST", "/_sim/stripe/config", { webhook_url: null });
    assert.equal(cfg.json.webhook_url, null);
    await h.drain();
    const before = (await h.control("GET", "/_sim/stripe/deliveries")).json.deliveries.length;
    await h.control("POST", `/_sim/stripe/payment_intents/${pi.id}/confirm`, {});
    await h.sim.idle();
    const deliveries = (await h.control("GET", "/_sim/stripe/deliveries")).json.deliveries;
    assert.deepEqual(deliveries.slice(before).map((d: Json) => [d.type, d.error]), [
      ["charge.succeeded", "no webhook_url configured"],
      ["payment_intent.succeeded", "no webhook_url configured"],
    ]);
    assert.equal(h.hooks.length, 0);
  },
);

withHarness("a webhook endpoint answering 500 is recorded, not thrown", async (h) => {
  await h.stripe.customers.create({ email: "x@example.com" });
  await h.sim.idle();
  assert.equal(h.hooks.length, 1);
  const [d] = (await h.control("GET", "/_sim/stripe/deliveries")).json.deliveries;
  assert.equal(d.status, 500);
  assert.equal(d.type, "customer.created");
  assert.match(d.error, /500/);
}, { hookStatus: 500 });

withHarness("raw form encoding: brackets, expand[], manual capture", async (h) => {
  const c = await h.stripe.customers.create({ name: "Raw" });
  const form = "amount=1000&currency=usd&metadata[order_id]=raw-1&metadata[note]=a%26b" +
    `&automatic_payment_methods[enabled]=true&customer=${c.id}&expand[]=customer` +
    "&capture_method=manual";
  const created = await h.raw("POST", "/v1/payment_intents", form);
  assert.equal(created.status, 200);
  assert.match(created.headers.get("request-id") ?? "", /^req_/);
  assert.equal(created.headers.get("stripe-version"), Stripe.API_VERSION);
  assert.deepEqual(created.json.metadata, { order_id: "raw-1", note: "a&b" });
  assert.equal(created.json.customer.id, c.id);
  assert.equal(created.json.customer.object, "customer");
  const badExpand = await h.raw(
    "POST",
    "/v1/payment_intents",
    "amount=1000&currency=usd&expand[]=amount",
  );
  assert.equal(badExpand.status, 400);
  assert.equal(badExpand.json.error.param, "expand");
  assert.equal((await h.stripe.paymentIntents.list({ limit: 100 })).data.length, 1);

  const id = created.json.id;
  const authorized = await h.control("POST", `/_sim/stripe/payment_intents/${id}/confirm`, {});
  assert.equal(authorized.json.status, "requires_capture");
  assert.equal(authorized.json.amount_capturable, 1000);
  assert.equal(authorized.json.amount_received, 0);
  const uncaptured = await rejection(
    () => h.stripe.refunds.create({ payment_intent: id }),
    StripeInvalidRequestError,
  );
  assert.equal(uncaptured.code, "charge_not_refundable");
  const captured = await h.stripe.paymentIntents.capture(id, { amount_to_capture: 800 });
  assert.equal(captured.status, "succeeded");
  assert.equal(captured.amount_received, 800);
  const charge = await h.stripe.charges.retrieve(captured.latest_charge as string);
  assert.equal(charge.amount_captured, 800);
  assert.equal(charge.amount_refunded, 200);
  const refund = await h.stripe.refunds.create({ payment_intent: id });
  assert.equal(refund.amount, 800);
  const types = (await h.control("GET", `/_sim/stripe/events?related_id=${id}`)).json.events
    .map((e: Json) => e.type);
  assert.deepEqual(types, [
    "payment_intent.created",
    "charge.succeeded",
    "payment_intent.amount_capturable_updated",
    "charge.captured",
    "payment_intent.succeeded",
    "refund.created",
    "charge.refunded",
  ]);
});

Deno.test("lists: created[gte]/[lte] windows and the SDK's auto-pagination over more than 100 objects", async () => {
  // The simulator's clock moves one second per object: each has its own `created`.
  const t0 = 1_900_000_000;
  let now = t0 * 1000;
  const sim = new StripeSimulator({
    secretKey: SECRET_KEY,
    publishableKey: PUBLISHABLE_KEY,
    webhookSecret: WEBHOOK_SECRET,
    nowMs: () => now,
  });
  const stripe = new Stripe(SECRET_KEY, {
    host: "127.0.0.1",
    port: 9,
    protocol: "http",
    maxNetworkRetries: 0,
    httpClient: Stripe.createFetchHttpClient((input, init) => sim.fetch(new Request(input, init))),
    apiVersion: Stripe.API_VERSION,
  });
  const intents: string[] = [];
  const refunds: string[] = [];
  for (let i = 0; i < 120; i++) {
    now = (t0 + i) * 1000;
    const pi = await stripe.paymentIntents.create({
      amount: 1000 + i,
      currency: "usd",
      payment_method: "pm_card_visa",
      confirm: true,
    });
    intents.push(pi.id);
    refunds.push((await stripe.refunds.create({ payment_intent: pi.id, amount: 100 })).id);
  }
  const created = { gte: t0 + 10, lte: t0 + 114 };
  // Newest first; every page but the last is full and says has_more.
  const expected = intents.slice(10, 115).reverse();
  const seen: string[] = [];
  for await (const pi of stripe.paymentIntents.list({ created, limit: 100 })) seen.push(pi.id);
  assert.deepEqual(seen, expected);
  const seenRefunds: string[] = [];
  for await (const r of stripe.refunds.list({ created, limit: 100 })) seenRefunds.push(r.id);
  assert.deepEqual(seenRefunds, refunds.slice(10, 115).reverse());

  const first = await stripe.refunds.list({ created, limit: 100 });
  assert.equal(first.object, "list");
  assert.equal(first.data.length, 100);
  assert.equal(first.has_more, true);
  assert.equal(first.url, "/v1/refunds");
  const second = await stripe.refunds.list({
    created,
    limit: 100,
    starting_after: first.data[99].id,
  });
  assert.equal(second.data.length, 5);
  assert.equal(second.has_more, false);
  const back = await stripe.refunds.list({ created, limit: 3, ending_before: second.data[0].id });
  assert.deepEqual(back.data.map((r) => r.id), first.data.slice(97).map((r) => r.id));

  // gt/lt are strict; an exact integer matches that second only; charges filter the same way.
  const strict = await stripe.paymentIntents.list({ created: { gt: t0 + 10, lt: t0 + 13 } });
  assert.deepEqual(strict.data.map((p) => p.id), [intents[12], intents[11]]);
  const exact = await stripe.paymentIntents.list({ created: t0 + 7 });
  assert.deepEqual(exact.data.map((p) => p.id), [intents[7]]);
  const charges = await stripe.charges.list({ created: { gte: t0 + 118 } });
  assert.deepEqual(charges.data.map((c) => c.payment_intent), [intents[119], intents[118]]);

  const bad = await rejection(
    () => stripe.refunds.list({ created: { after: t0 } as unknown as Stripe.RangeQueryParam }),
    StripeInvalidRequestError,
  );
  assert.equal(bad.code, "parameter_unknown");
  assert.equal(bad.param, "created[after]");
  const notInt = await rejection(
    () => stripe.refunds.list({ created: { gte: "soon" as unknown as number } }),
    StripeInvalidRequestError,
  );
  assert.equal(notInt.param, "created[gte]");
  await sim.idle();
});
