// Bad input to create-order and verify with PayPal: the contract's 4xx, nothing written, and
// the PayPal order untouched.
import assert from "node:assert/strict";
import { signJwt } from "../dev/keys.ts";
import { client, createUser, invoke, raw, withStack } from "./support/stack.ts";
import { type Case, runCases } from "./support/contract.ts";
import { approve, gatewayOrder, opts, paypalOrder } from "./support/paypal.ts";

Deno.test({
  name: "paypal bad input: create-order and verify answer the contract's 4xx and write nothing",
  ...opts,
  fn: async (t) => {
    await withStack(async (s) => {
      const alice = await createUser(s.db, "pp-alice");
      const bob = await createUser(s.db, "pp-bob");
      const asAlice = client(s, alice.token);
      const bobs = await paypalOrder(s, bob);
      await approve(s, bobs.order.gateway_order_id, "approve", { deliver: false });
      const expired = await signJwt({
        sub: alice.id,
        aud: "authenticated",
        role: "authenticated",
        email: alice.email,
      }, { expiresInSeconds: -60 });
      const topup = { gateway: "paypal", purpose: "wallet_topup" };
      const order = (body: unknown) => invoke(asAlice, "create-order", body);
      const verify = (body: unknown) => invoke(asAlice, "verify", body);
      const c = (name: string, status: number, code: string, send: Case["send"]): Case => ({
        name,
        status,
        code,
        send,
      });
      const createCases: Case[] = [
        c(
          "fractional amount",
          400,
          "invalid_request",
          () => order({ ...topup, amount: 10.5, currency: "USD" }),
        ),
        c(
          "negative amount",
          400,
          "invalid_request",
          () => order({ ...topup, amount: -100, currency: "USD" }),
        ),
        c(
          "amount as a string",
          400,
          "invalid_request",
          () => order({ ...topup, amount: "1000", currency: "USD" }),
        ),
        c(
          "unknown currency",
          400,
          "invalid_request",
          () => order({ ...topup, amount: 1000, currency: "XYZ" }),
        ),
        c(
          "INR (PayPal takes no domestic INR)",
          400,
          "invalid_request",
          () => order({ ...topup, amount: 50000, currency: "INR" }),
        ),
        c(
          "HUF with a fraction PayPal cannot take",
          400,
          "invalid_request",
          () => order({ ...topup, amount: 250050, currency: "HUF" }),
        ),
        c(
          "TWD with a fraction PayPal cannot take",
          400,
          "invalid_request",
          () => order({ ...topup, amount: 1550, currency: "TWD" }),
        ),
        c(
          "a three-decimal currency",
          400,
          "invalid_request",
          () => order({ ...topup, amount: 5000, currency: "KWD" }),
        ),
        c(
          "an INR plan (catalog price PayPal cannot take)",
          400,
          "invalid_request",
          () => order({ gateway: "paypal", purpose: "plan", plan_id: "pro_monthly" }),
        ),
        c(
          "top-up below the currency's minimum",
          400,
          "invalid_request",
          () => order({ ...topup, amount: 10, currency: "USD" }),
        ),
        c("missing currency", 400, "invalid_request", () => order({ ...topup, amount: 1000 })),
        c(
          "unknown field",
          400,
          "invalid_request",
          () => order({ ...topup, amount: 1000, currency: "USD", return_url: "https://x" }),
        ),
        c(
          "gateway in upper case",
          400,
          "invalid_request",
          () => order({ ...topup, gateway: "PAYPAL", amount: 1000, currency: "USD" }),
        ),
        c("malformed JSON", 400, "invalid_json", () =>
          raw(s, "create-order", {
            method: "POST",
            token: alice.token,
            headers: { "content-type": "application/json" },
            body: '{"gateway":"paypal",',
          })),
        c("no JWT", 401, "unauthorized", () =>
          raw(s, "create-order", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ ...topup, amount: 1000, currency: "USD" }),
          })),
        c(
          "expired JWT",
          401,
          "unauthorized",
          () =>
            invoke(client(s, expired), "create-order", { ...topup, amount: 1000, currency: "USD" }),
        ),
      ];
      const id = bobs.order.gateway_order_id;
      const verifyCases: Case[] = [
        c(
          "paypal_order_id not a string",
          400,
          "invalid_request",
          () => verify({ paypal_order_id: 12345678 }),
        ),
        c(
          "paypal_order_id in lower case",
          400,
          "invalid_request",
          () => verify({ paypal_order_id: id.toLowerCase() }),
        ),
        c(
          "paypal_order_id too short",
          400,
          "invalid_request",
          () => verify({ paypal_order_id: "AB12" }),
        ),
        c(
          "paypal_order_id with a path",
          400,
          "invalid_request",
          () => verify({ paypal_order_id: `${id}/capture` }),
        ),
        c(
          "an extra field",
          400,
          "invalid_request",
          () => verify({ paypal_order_id: id, amount: 1 }),
        ),
        c(
          "two gateways' references",
          400,
          "invalid_request",
          () => verify({ paypal_order_id: id, payment_intent_id: "pi_123" }),
        ),
        c(
          "an order nobody has",
          404,
          "not_found",
          () => verify({ paypal_order_id: "0ABCDEFGHJKLMNPRS" }),
        ),
        c("another user's order", 404, "not_found", () => verify({ paypal_order_id: id })),
        c(
          "expired JWT",
          401,
          "unauthorized",
          () => invoke(client(s, expired), "verify", { paypal_order_id: id }),
        ),
        c("no JWT", 401, "unauthorized", () =>
          raw(s, "verify", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ paypal_order_id: id }),
          })),
      ];
      await runCases(t, s, [["create-order", createCases], ["verify", verifyCases]], {
        atLeast: 25,
      });
      // Bob's approved order was never captured by Alice's attempts.
      const pp = await gatewayOrder(s, id);
      assert.equal(pp.status, "APPROVED");
      assert.equal(s.paypal.state.orders.size, 1, "no PayPal order was created");
    });
  },
});
