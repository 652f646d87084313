// RazorpayX GET /v1/payouts, as the gateway audit reads it: the client pages through more than
// 100 payouts by skip, keeps to the from/to window (both ends included) and our account number,
// and the simulator refuses what RazorpayX refuses. In-process: the simulator is the fetch.
import assert from "node:assert/strict";
import { LOCAL_RAZORPAYX } from "../dev/stack.ts";
import { RazorpayXSimulator } from "../dev/simulator/razorpayx/mod.ts";
import { createRazorpayXGateway } from "../shared/payouts/razorpayx/mod.ts";

function setup() {
  let nowMs = Date.UTC(2026, 11, 1, 12);
  const sim = new RazorpayXSimulator({ ...LOCAL_RAZORPAYX, nowMs: () => nowMs });
  const simFetch =
    ((input: RequestInfo | URL, init?: RequestInit) =>
      sim.fetch(new Request(input, init))) as typeof fetch;
  const gw = createRazorpayXGateway(
    { ...LOCAL_RAZORPAYX, apiUrl: "http://rzpx.test", timeoutMs: 5000 },
    simFetch,
  );
  const at = (unix: number) => nowMs = unix * 1000;
  return { sim, simFetch, gw, at, start: nowMs / 1000 };
}

async function destination(gw: ReturnType<typeof setup>["gw"]) {
  return await gw.createDestination(
    {
      type: "bank_account",
      name: "Asha Rao",
      ifsc: "HDFC0001234",
      accountNumber: "50100123456789",
    },
    { payoutAccountId: crypto.randomUUID(), accountId: crypto.randomUUID(), origin: "http://x" },
  );
}

Deno.test("razorpayx listPayouts: all 230 payouts of the window across pages, none outside it", async () => {
  const { gw, at, start } = setup();
  const fa = await destination(gw);
  const send = (amount: number) => {
    const id = crypto.randomUUID();
    return gw.sendPayout({
      payoutId: id,
      amount,
      currency: "INR",
      destinationType: "bank_account",
      gatewayAccountId: fa.gatewayAccountId,
      idempotencyKey: id,
    });
  };
  at(start - 1);
  const before = await send(100);
  const inside: string[] = [];
  for (let i = 0; i < 230; i++) {
    at(start + (i % 11)); // spread over [start, start + 10]
    inside.push((await send(100 + i)).gatewayPayoutId);
  }
  at(start + 11);
  const after = await send(100);
  const listed = await gw.listPayouts!({ from: start, to: start + 10 });
  assert.equal(listed.length, 230);
  assert.deepEqual(listed.map((p) => p.gatewayPayoutId).sort(), [...inside].sort());
  assert.ok(
    !listed.some((p) =>
      [before.gatewayPayoutId, after.gatewayPayoutId].includes(p.gatewayPayoutId)
    ),
  );
  const first = listed.find((p) => p.gatewayPayoutId === inside[0])!;
  assert.equal(first.amount, 100);
  assert.equal(first.netAmount, 100);
  assert.equal(first.currency, "INR");
  assert.equal(first.status, "processing");
  assert.equal(first.gatewayAccountId, fa.gatewayAccountId);
  assert.match(first.settlePayoutId ?? "", /^[0-9a-f-]{36}$/);
  // Both ends are included.
  assert.equal((await gw.listPayouts!({ from: start + 10, to: start + 10 })).length, 20);
  assert.equal((await gw.listPayouts!({ from: start - 1, to: start - 1 })).length, 1);
});

Deno.test("razorpayx simulator GET /v1/payouts: another account number, bad paging are 400", async () => {
  const { simFetch } = setup();
  const auth = "Basic " + btoa(`${LOCAL_RAZORPAYX.keyId}:${LOCAL_RAZORPAYX.keySecret}`);
  const get = async (q: string) => {
    const r = await simFetch(`http://rzpx.test/v1/payouts?${q}`, {
      headers: { authorization: auth },
    });
    return { status: r.status, body: await r.json() };
  };
  const acct = `account_number=${LOCAL_RAZORPAYX.accountNumber}`;
  assert.deepEqual((await get(acct)).body, { entity: "collection", count: 0, items: [] });
  for (
    const q of [
      "account_number=1234",
      "",
      `${acct}&count=101`,
      `${acct}&count=0`,
      `${acct}&skip=-1`,
      `${acct}&from=x`,
    ]
  ) {
    const r = await get(q);
    assert.equal(r.status, 400, q);
    assert.equal(r.body.error.code, "BAD_REQUEST_ERROR", q);
  }
  const noAuth = await simFetch(`http://rzpx.test/v1/payouts?${acct}`);
  assert.equal(noAuth.status, 401);
});
