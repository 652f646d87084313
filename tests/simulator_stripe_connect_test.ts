// The Stripe simulator's Connect resources through the official stripe SDK: Express accounts and
// account links, onboarding (account.updated to the Connect endpoint, signed with its own secret
// and naming the account), transfers with idempotent replay, reversals (transfer.reversed to the
// platform endpoint), the errors Stripe answers, and the fault book on transfers.
import assert from "node:assert/strict";
import Stripe from "stripe";
import { StripeSimulator } from "../dev/simulator/stripe/mod.ts";
import {
  hookReceiver,
  type Json,
  jsonReply,
  serveSimulator,
  stopHarness,
} from "./support/simharness.ts";

const SECRET_KEY = "sk_test_connect_sim";
const WEBHOOK_SECRET = "whsec_platform_sim";
const CONNECT_SECRET = "whsec_connect_sim";

interface Hook {
  endpoint: string;
  body: string;
  signature: string;
  event: Json;
}

function harness(connect = true) {
  const receiver = hookReceiver(
    (req, body): Hook => ({
      endpoint: new URL(req.url).pathname,
      body,
      signature: req.headers.get("stripe-signature") ?? "",
      event: JSON.parse(body),
    }),
  );
  const sim = new StripeSimulator({
    secretKey: SECRET_KEY,
    publishableKey: "pk_test_connect_sim",
    webhookSecret: WEBHOOK_SECRET,
    webhookUrl: receiver.url("/platform"),
    ...(connect
      ? { connectWebhookSecret: CONNECT_SECRET, connectWebhookUrl: receiver.url("/connect") }
      : {}),
  });
  const served = serveSimulator((req) => sim.fetch(req));
  const stripe = new Stripe(SECRET_KEY, {
    host: "127.0.0.1",
    port: served.port,
    protocol: "http",
    maxNetworkRetries: 0,
    httpClient: Stripe.createFetchHttpClient(),
    apiVersion: Stripe.API_VERSION,
    timeout: 1000,
  });
  const control = async (path: string, body: unknown = {}) =>
    await jsonReply(
      await fetch(`http://127.0.0.1:${served.port}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
    );
  return {
    sim,
    stripe,
    hooks: receiver.hooks,
    control,
    close: () => stopHarness(sim, served.server, receiver.server),
  };
}

const EXPRESS: Stripe.AccountCreateParams = {
  controller: {
    stripe_dashboard: { type: "express" },
    fees: { payer: "application" },
    losses: { payments: "application" },
    requirement_collection: "stripe",
  },
  capabilities: { transfers: { requested: true } },
  country: "US",
};

async function stripeError(p: Promise<unknown>): Promise<Stripe.errors.StripeError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof Stripe.errors.StripeError) return e;
    throw e;
  }
  throw new Error("expected a Stripe error");
}

Deno.test("stripe simulator connect: accounts, links, onboarding and Connect events", async () => {
  const h = harness();
  try {
    const a = await h.stripe.accounts.create(EXPRESS);
    assert.match(a.id, /^acct_/);
    assert.equal(a.type, "express");
    assert.equal(a.payouts_enabled, false);
    assert.equal(a.capabilities?.transfers, "inactive");
    const legacy = await h.stripe.accounts.create({ type: "express" });
    assert.equal(legacy.controller?.stripe_dashboard?.type, "express");
    const both = await stripeError(h.stripe.accounts.create({ ...EXPRESS, type: "express" }));
    assert.equal(both.statusCode, 400);
    const india = await stripeError(h.stripe.accounts.create({ ...EXPRESS, country: "IN" }));
    assert.equal(india.param, "country");

    const link = await h.stripe.accountLinks.create({
      account: a.id,
      type: "account_onboarding",
      refresh_url: "https://app.example/refresh",
      return_url: "https://app.example/return",
    });
    assert.match(link.url, new RegExp(`^https://connect\\.stripe\\.com/setup/e/${a.id}/`));
    assert.ok(link.expires_at > link.created);
    const noUrl = await stripeError(
      h.stripe.accountLinks.create({ account: a.id, type: "account_onboarding" } as never),
    );
    assert.equal(noUrl.code, "parameter_missing");
    const missing = await stripeError(
      h.stripe.accountLinks.create({
        account: "acct_Nope",
        type: "account_onboarding",
        refresh_url: "https://x.example",
        return_url: "https://x.example",
      }),
    );
    assert.equal(missing.code, "resource_missing");

    // Onboarding finishes: account.updated goes to the Connect endpoint only, with `account`,
    // signed with the Connect secret (the platform secret does not verify it).
    const done = await h.control(`/_sim/stripe/accounts/${a.id}/onboard`);
    assert.equal(done.json.payouts_enabled, true);
    await h.sim.idle();
    const [hook] = h.hooks.filter((x) => x.event.type === "account.updated");
    assert.equal(hook.endpoint, "/connect");
    assert.equal(hook.event.account, a.id);
    assert.equal(hook.event.data.previous_attributes.payouts_enabled, false);
    const verified = await h.stripe.webhooks.constructEventAsync(
      hook.body,
      hook.signature,
      CONNECT_SECRET,
    );
    assert.equal(verified.id, hook.event.id);
    await assert.rejects(
      h.stripe.webhooks.constructEventAsync(hook.body, hook.signature, WEBHOOK_SECRET),
      Stripe.errors.StripeSignatureVerificationError,
    );
    const read = await h.stripe.accounts.retrieve(a.id);
    assert.equal(read.payouts_enabled, true);
    assert.equal(read.capabilities?.transfers, "active");

    // Deauthorization is a Connect event too.
    await h.control(`/_sim/stripe/accounts/${a.id}/deauthorize`);
    await h.sim.idle();
    const deauth = h.hooks.find((x) => x.event.type === "account.application.deauthorized");
    assert.equal(deauth?.endpoint, "/connect");
    assert.equal(deauth?.event.account, a.id);
  } finally {
    await h.close();
  }
});

Deno.test("stripe simulator connect: transfers, idempotent replay, reversals, faults", async () => {
  const h = harness();
  try {
    const a = await h.stripe.accounts.create(EXPRESS);
    const early = await stripeError(
      h.stripe.transfers.create({ amount: 1000, currency: "usd", destination: a.id }),
    );
    assert.equal(early.code, "insufficient_capabilities_for_transfer");
    await h.control(`/_sim/stripe/accounts/${a.id}/onboard`);

    const params = {
      amount: 1500,
      currency: "usd",
      destination: a.id,
      transfer_group: "group-1",
      metadata: { settle_payout_id: "p1" },
    };
    const t = await h.stripe.transfers.create(params, { idempotencyKey: "key-1" });
    assert.match(t.id, /^tr_/);
    assert.equal(t.destination, a.id);
    assert.equal(t.reversed, false);
    const again = await h.stripe.transfers.create(params, { idempotencyKey: "key-1" });
    assert.equal(again.id, t.id, "the same key replays the transfer");
    const other = await stripeError(
      h.stripe.transfers.create({ ...params, amount: 1600 }, { idempotencyKey: "key-1" }),
    );
    assert.equal(other.type, "StripeIdempotencyError");
    const group = await h.stripe.transfers.list({ transfer_group: "group-1" });
    assert.equal(group.data.length, 1);
    const noDest = await stripeError(
      h.stripe.transfers.create({ amount: 100, currency: "usd", destination: "acct_Gone" }),
    );
    assert.equal(noDest.code, "resource_missing");

    // A partial reversal, then the rest; then nothing is left to reverse.
    const r1 = await h.stripe.transfers.createReversal(t.id, { amount: 500 });
    assert.equal(r1.amount, 500);
    assert.equal((await h.stripe.transfers.retrieve(t.id)).reversed, false);
    const over = await stripeError(h.stripe.transfers.createReversal(t.id, { amount: 1001 }));
    assert.equal(over.param, "amount");
    await h.stripe.transfers.createReversal(t.id);
    const after = await h.stripe.transfers.retrieve(t.id);
    assert.equal(after.reversed, true);
    assert.equal(after.amount_reversed, 1500);
    assert.equal((await h.stripe.transfers.listReversals(t.id)).data.length, 2);
    await stripeError(h.stripe.transfers.createReversal(t.id));
    await h.sim.idle();
    const platform = h.hooks.filter((x) => x.endpoint === "/platform").map((x) => x.event.type);
    assert.deepEqual(platform, ["transfer.created", "transfer.reversed", "transfer.reversed"]);
    const reversed = h.hooks.filter((x) => x.event.type === "transfer.reversed").at(-1)!;
    assert.equal(reversed.event.account, undefined, "platform events carry no account");
    await h.stripe.webhooks.constructEventAsync(reversed.body, reversed.signature, WEBHOOK_SECRET);

    // The Dashboard control reverses too; the fault book applies to transfers.
    const t2 = await h.stripe.transfers.create({ amount: 800, currency: "usd", destination: a.id });
    const ctl = await h.control(`/_sim/stripe/transfers/${t2.id}/reverse`, { amount: 300 });
    assert.equal(ctl.json.transfer.amount_reversed, 300);
    await h.control("/_sim/stripe/faults", {
      faults: [{ method: "POST", path: "/v1/transfers", mode: "error_500" }],
    });
    const five = await stripeError(
      h.stripe.transfers.create({ amount: 100, currency: "usd", destination: a.id }),
    );
    assert.equal(five.statusCode, 500);
    await h.control("/_sim/stripe/faults", {
      faults: [{ method: "POST", path: "/v1/transfers", mode: "timeout_after", hold_ms: 5000 }],
    });
    const lost = await stripeError(
      h.stripe.transfers.create({ amount: 700, currency: "usd", destination: a.id }, {
        idempotencyKey: "key-lost",
      }),
    );
    assert.ok(lost instanceof Stripe.errors.StripeConnectionError, String(lost));
    const replay = await h.stripe.transfers.create(
      { amount: 700, currency: "usd", destination: a.id },
      { idempotencyKey: "key-lost" },
    );
    assert.equal((await h.stripe.transfers.list({ destination: a.id, limit: 100 })).data.length, 3);
    assert.equal(replay.amount, 700, "the lost transfer was made once and replayed");
  } finally {
    await h.close();
  }
});

Deno.test("stripe simulator connect: a platform without Connect cannot create accounts", async () => {
  const h = harness(false);
  try {
    const e = await stripeError(h.stripe.accounts.create(EXPRESS));
    assert.match(e.message, /signed up for Connect/);
  } finally {
    await h.close();
  }
});
