// The RazorpayX simulator speaks RazorpayX's wire format: mandatory X-Payout-Idempotency (same key
// and body replay, another body is refused), fund account validation, the payout lifecycle with
// processed -> reversed, payout webhooks signed with the RazorpayX secret, and the fault book.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { RazorpayXSimulator } from "../dev/simulator/razorpayx/mod.ts";
import { hookReceiver, type Json } from "./support/simharness.ts";

const OPTS = {
  keyId: "rzp_test_x",
  keySecret: "x_secret",
  accountNumber: "7878780080316316",
  webhookSecret: "x_webhook_secret",
};
const AUTH = `Basic ${btoa(`${OPTS.keyId}:${OPTS.keySecret}`)}`;

async function call(sim: RazorpayXSimulator, method: string, path: string, body?: Json, h = {}) {
  const res = await sim.fetch(
    new Request(`http://sim${path}`, {
      method,
      headers: { authorization: AUTH, "content-type": "application/json", ...h },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
  return { status: res.status, json: await res.json() as Json };
}

async function fundAccount(sim: RazorpayXSimulator) {
  const c = await call(sim, "POST", "/v1/contacts", { name: "Asha Rao", reference_id: "r1" });
  assert.equal(c.status, 201);
  const again = await call(sim, "POST", "/v1/contacts", { name: "Asha Rao", reference_id: "r1" });
  assert.equal(again.json.id, c.json.id, "the same details return the same contact");
  const fa = await call(sim, "POST", "/v1/fund_accounts", {
    contact_id: c.json.id,
    account_type: "bank_account",
    bank_account: { name: "Asha Rao", ifsc: "HDFC0001234", account_number: "50100123456789" },
  });
  assert.equal(fa.status, 201, JSON.stringify(fa.json));
  return fa.json.id as string;
}

const payoutBody = (fa: string, amount = 10000) => ({
  account_number: OPTS.accountNumber,
  fund_account_id: fa,
  amount,
  currency: "INR",
  mode: "IMPS",
  purpose: "payout",
  reference_id: "settle-1",
});

Deno.test("razorpayx simulator: idempotent payouts, lifecycle and signed webhooks", async () => {
  const hooks = hookReceiver((req, body) => ({
    body,
    signature: req.headers.get("x-razorpay-signature"),
    event: JSON.parse(body).event as string,
  }));
  const sim = new RazorpayXSimulator({ ...OPTS, webhookUrl: hooks.url("/hook") });
  try {
    const fa = await fundAccount(sim);
    const bad = await call(sim, "POST", "/v1/fund_accounts", {
      contact_id: "cont_x",
      account_type: "vpa",
      vpa: { address: "no-at-sign" },
    });
    assert.equal(bad.status, 400);

    const missing = await call(sim, "POST", "/v1/payouts", payoutBody(fa));
    assert.equal(missing.status, 400);
    assert.equal(
      missing.json.error.description,
      "Idempotency key is missing. Include idempotency header and key in the request.",
    );
    const key = { "x-payout-idempotency": "key-0001" };
    const first = await call(sim, "POST", "/v1/payouts", payoutBody(fa), key);
    assert.equal(first.json.status, "processing");
    const replay = await call(sim, "POST", "/v1/payouts", payoutBody(fa), key);
    assert.equal(replay.json.id, first.json.id, "the same key and body return the same payout");
    const other = await call(sim, "POST", "/v1/payouts", payoutBody(fa, 20000), key);
    assert.equal(other.status, 400, "another body under the key is refused");

    const move = (status: string) =>
      sim.fetch(
        new Request(`http://sim/_sim/razorpayx/payouts/${first.json.id}/transition`, {
          method: "POST",
          body: JSON.stringify({ status }),
        }),
      ).then(async (r) => ({ status: r.status, json: await r.json() }));
    assert.equal((await move("processed")).json.status, "processed");
    assert.equal((await move("reversed")).json.status, "reversed");
    assert.equal((await move("processed")).status, 400, "reversed cannot become processed");
    await sim.idle();
    assert.deepEqual(hooks.hooks.map((h) => h.event), [
      "payout.initiated",
      "payout.processed",
      "payout.reversed",
    ]);
    for (const h of hooks.hooks) {
      const expected = createHmac("sha256", OPTS.webhookSecret).update(h.body).digest("hex");
      assert.equal(h.signature, expected, "signed with the RazorpayX webhook secret");
    }
    const last = JSON.parse(hooks.hooks[2].body).payload.payout.entity;
    assert.equal(last.status, "reversed");
    assert.ok(last.status_details?.description);
  } finally {
    await sim.idle();
    await hooks.server.shutdown();
  }
});

Deno.test("razorpayx simulator: the fault book (a 5xx, and a payout made whose answer is lost)", async () => {
  const sim = new RazorpayXSimulator(OPTS);
  const fa = await fundAccount(sim);
  const faults = (list: unknown[]) =>
    sim.fetch(
      new Request("http://sim/_sim/razorpayx/faults", {
        method: "POST",
        body: JSON.stringify({ faults: list }),
      }),
    );
  await faults([{ path: "/v1/payouts", mode: "error_503" }]);
  const key = { "x-payout-idempotency": "key-0002" };
  assert.equal((await call(sim, "POST", "/v1/payouts", payoutBody(fa), key)).status, 503);
  await faults([{ path: "/v1/payouts", mode: "timeout_after", hold_ms: 10 }]);
  assert.equal((await call(sim, "POST", "/v1/payouts", payoutBody(fa), key)).status, 504);
  const retry = await call(sim, "POST", "/v1/payouts", payoutBody(fa), key);
  assert.equal(retry.status, 200);
  const list = await sim.fetch(new Request("http://sim/_sim/razorpayx/payouts"));
  const body = await list.json();
  assert.equal(body.payouts.length, 1, "the lost answer's payout and the retry are one payout");
  assert.equal(body.payouts[0].id, retry.json.id);
  assert.equal(body.create_requests, 2, "the 503 never reached the payouts API");
});
