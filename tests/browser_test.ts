// The demo app (dev/public/index.html + app.js) in headless Chromium, driven like a user: sign
// in, top up through each gateway's simulated checkout (paid, failed, closed), refund, buy the
// plan, save cards. Every path checks what the page shows against the database.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { createUser, type TestStack, type TestUser, walletBalance } from "./support/stack.ts";
import {
  type Browser,
  escape,
  sentTo,
  waitFor,
  waitStatus,
  waitText,
  withPage,
} from "./support/browser.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Opens the demo signed in as the user, the way the page does it (/dev/token). */
async function signIn(page: Page, s: TestStack, user: TestUser) {
  await page.goto(`${s.url}/?email=${encodeURIComponent(user.email)}`);
  await waitStatus(page, "sign-in-status", "success", /^signed in$/);
  await waitText(page, page.locator("#who"), new RegExp(`^${escape(user.email)}$`));
  await waitWallet(page, "INR", 0, "₹0.00");
  await waitFor(page, page.locator("#topup-submit:enabled"), "Top up enabled once signed in");
}

function waitWallet(page: Page, currency: string, minor: number, shown: string) {
  return waitFor(
    page,
    page.locator(`#wallets li[data-currency="${currency}"][data-minor="${minor}"]`)
      .filter({ hasText: new RegExp(`^${escape(shown)}$`) }),
    `${currency} wallet ${shown} (${minor})`,
    page.locator("#wallets"),
  );
}

function waitOrder(page: Page, orderId: string, status: string) {
  return waitFor(
    page,
    page.locator(`#orders tr[data-order-id="${orderId}"][data-status="${status}"]`)
      .filter({ has: page.locator(`.status-of[data-status="${status}"]`) }),
    `order ${orderId} ${status}`,
    page.locator("#orders"),
  );
}

async function ordersOf(s: TestStack, user: TestUser) {
  return await s.db`select id, status, amount, amount_refunded, currency, gateway, purpose,
      plan_id, gateway_payment_id
    from public.orders where created_by = ${user.id} order by created_at`;
}

/** Fills the top-up form, submits it and waits for the checkout to open; returns the order. */
async function startTopUp(
  page: Page,
  s: TestStack,
  user: TestUser,
  top: { amount: string; currency?: string; gateway?: "razorpay" | "stripe" },
) {
  await page.locator("#amount").fill(top.amount);
  await page.locator("#currency").selectOption(top.currency ?? "INR");
  await page.locator("#gateway").selectOption(top.gateway ?? "razorpay");
  await page.locator("#topup-submit").click();
  await waitFor(page, page.locator("#pay:enabled"), "the checkout open");
  const orders = await ordersOf(s, user);
  return orders[orders.length - 1];
}

Deno.test({
  name: "browser: a Razorpay top-up paid (double-clicked) credits the wallet once, order paid",
  ...opts,
  fn: () =>
    withPage(async (s, b) => {
      const { page } = b;
      const user = await createUser(s.db, "browser");
      await signIn(page, s, user);
      assert.equal(await page.locator("#checkout").isHidden(), true, "nothing to pay yet");

      await page.locator("#amount").fill("750");
      await page.locator("#topup-submit").dblclick();
      await waitFor(page, page.locator("#pay:enabled"), "the checkout open");
      assert.equal(sentTo(b, "POST", /^\/functions\/v1\/create-order$/).length, 1);
      assert.equal(await page.locator("#topup-submit").isDisabled(), true, "in flight");
      assert.equal(await page.locator(".buy:enabled").count(), 0, "no second purchase meanwhile");
      const [created] = await ordersOf(s, user);
      assert.equal(created.status, "created");
      assert.equal(Number(created.amount), 75000, "₹750 is 75000 paise");
      assert.equal(created.gateway, "razorpay");
      await waitOrder(page, created.id, "created");

      await page.locator("#pay").dblclick();
      await waitStatus(page, "checkout-status", "success", /: order paid$/);
      await waitOrder(page, created.id, "paid");
      await waitWallet(page, "INR", 75000, "₹750.00");
      assert.equal(sentTo(b, "POST", /\/_sim\/razorpay\/orders\/[^/]+\/pay$/).length, 1);
      const verify = sentTo(b, "POST", /^\/functions\/v1\/verify$/);
      assert.equal(verify.length, 1, "a double click pays once");
      assert.match(verify[0].headers["x-client-info"], /^supabase-js/, "through functions.invoke");
      assert.equal(subjectOf(verify[0].headers["authorization"]), user.id, "as the user");
      assert.equal(await page.locator("#topup-submit").isEnabled(), true, "idle again");

      await s.razorpay.idle(); // the webhooks for the payment too: still credited once
      const orders = await ordersOf(s, user);
      assert.equal(orders.length, 1);
      assert.equal(orders[0].status, "paid");
      assert.match(orders[0].gateway_payment_id, /^pay_/);
      assert.equal(await walletBalance(s.db, user.accountId), 75000);
      await page.reload(); // read again from the server
      await waitWallet(page, "INR", 75000, "₹750.00");
      await waitOrder(page, created.id, "paid");
    }),
});

/** The `sub` of a "Bearer <jwt>" header: whom the page called as. */
function subjectOf(authorization: string): string {
  const payload = authorization.replace(/^Bearer /, "").split(".")[1];
  return JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))).sub;
}

Deno.test({
  name: "browser: a Stripe top-up in USD opens a USD wallet beside the INR one",
  ...opts,
  fn: () =>
    withPage(async (s, { page }) => {
      const user = await createUser(s.db, "browser-stripe");
      await signIn(page, s, user);
      const order = await startTopUp(page, s, user, {
        amount: "12.50",
        currency: "USD",
        gateway: "stripe",
      });
      assert.equal(order.gateway, "stripe");
      assert.equal(Number(order.amount), 1250);
      assert.match(await page.locator("#checkout-title").innerText(), /^stripe checkout/);

      await page.locator("#pay").click();
      await waitStatus(page, "checkout-status", "success", /^\$12\.50 top-up: order paid$/);
      await waitOrder(page, order.id, "paid");
      await waitWallet(page, "USD", 1250, "$12.50");
      await waitWallet(page, "INR", 0, "₹0.00");
      await s.stripe.idle();
      const [paid] = await ordersOf(s, user);
      assert.equal(paid.status, "paid");
      assert.equal(paid.currency, "USD");
      assert.equal(await walletBalance(s.db, user.accountId, "USD"), 1250);
      assert.equal(await walletBalance(s.db, user.accountId, "INR"), 0);
    }),
});

Deno.test({
  name: "browser: a failed payment shows failed (Razorpay, Stripe); paying again credits it once",
  ...opts,
  fn: () =>
    withPage(async (s, { page }) => {
      const user = await createUser(s.db, "browser-fail");
      await signIn(page, s, user);
      const failed = [];
      for (const gateway of ["razorpay", "stripe"] as const) {
        const order = await startTopUp(page, s, user, { amount: "300", gateway });
        await page.locator("#fail").click();
        // The decline reaches settle as a webhook; the page shows the status the database has.
        await waitStatus(
          page,
          "checkout-status",
          "failure",
          /^payment failed: .+ \(order failed\)$/,
        );
        await waitOrder(page, order.id, "failed");
        const [row] = await s.db`select status from public.orders where id = ${order.id}`;
        assert.equal(row.status, "failed", gateway);
        failed.push(order);
      }
      await waitWallet(page, "INR", 0, "₹0.00");
      assert.equal(
        await walletBalance(s.db, user.accountId),
        0,
        "a failed payment credits nothing",
      );

      // Both gateways let the customer retry the same order; settle moves failed → paid.
      for (const [i, order] of failed.entries()) {
        await page.locator(`tr[data-order-id="${order.id}"] .pay-again`).click();
        await page.locator("#pay").click();
        await waitStatus(page, "checkout-status", "success", /: order paid$/);
        await waitOrder(page, order.id, "paid");
        await waitWallet(page, "INR", 30000 * (i + 1), `₹${300 * (i + 1)}.00`);
      }
      await s.razorpay.idle();
      await s.stripe.idle();
      const orders = await ordersOf(s, user);
      assert.deepEqual(orders.map((o) => o.status), ["paid", "paid"]);
      assert.equal(await walletBalance(s.db, user.accountId), 60000, "each credited once");
    }),
});

Deno.test({
  name: "browser: closing the checkout shows cancelled and writes no payment",
  ...opts,
  fn: () =>
    withPage(async (s, b) => {
      const { page } = b;
      const user = await createUser(s.db, "browser-close");
      await signIn(page, s, user);
      for (const gateway of ["razorpay", "stripe"] as const) {
        const order = await startTopUp(page, s, user, { amount: "400", gateway });
        await page.locator("#close").click();
        await waitStatus(
          page,
          "checkout-status",
          "cancelled",
          /^checkout closed: nothing was charged$/,
        );
        assert.equal(await page.locator("#checkout").isHidden(), true);
        await waitOrder(page, order.id, "created");
        const [row] = await s.db`select status, gateway_payment_id from public.orders
          where id = ${order.id}`;
        assert.deepEqual({ ...row }, { status: "created", gateway_payment_id: null }, gateway);
        const again = page.locator(`tr[data-order-id="${order.id}"] .pay-again`);
        assert.equal(await again.innerText(), "Pay", "the checkout can be opened again");
      }
      assert.equal(sentTo(b, "POST", /\/_sim\//).length, 0, "the gateway heard of no payment");
      assert.equal(sentTo(b, "POST", /\/verify$/).length, 0);
      const [{ n }] = await s.db`select count(*)::int as n from public.ledger_entries e
        join public.wallets w on w.id = e.wallet_id where w.account_id = ${user.accountId}`;
      assert.equal(n, 0, "no ledger entry");
      await waitWallet(page, "INR", 0, "₹0.00");
    }),
});

Deno.test({
  name: "browser: refunding a paid top-up shows refunded and takes the wallet back",
  ...opts,
  fn: () =>
    withPage(async (s, b) => {
      const { page } = b;
      const user = await createUser(s.db, "browser-refund");
      await signIn(page, s, user);
      const order = await startTopUp(page, s, user, { amount: "200" });
      await page.locator("#pay").click();
      await waitOrder(page, order.id, "paid");
      await waitWallet(page, "INR", 20000, "₹200.00");

      await page.locator(`tr[data-order-id="${order.id}"] .refund`).dblclick();
      await waitStatus(
        page,
        "orders-status",
        "success",
        /^refund processed: ₹200\.00, order refunded$/,
      );
      await waitOrder(page, order.id, "refunded");
      await waitWallet(page, "INR", 0, "₹0.00");
      assert.equal(sentTo(b, "POST", /^\/functions\/v1\/refunds$/).length, 1, "one refund sent");
      assert.equal(await page.locator(`tr[data-order-id="${order.id}"] .refund`).count(), 0);
      const refunds = await s.db`select status, amount from public.refunds
        where order_id = ${order.id}`;
      assert.deepEqual(refunds.map((r) => [r.status, Number(r.amount)]), [["processed", 20000]]);
      const [row] = await ordersOf(s, user);
      assert.equal(row.status, "refunded");
      assert.equal(await walletBalance(s.db, user.accountId), 0);
    }),
});

Deno.test({
  name: "browser: buying the plan shows the subscription active until its end; cancel at the end",
  ...opts,
  fn: () =>
    withPage(async (s, { page }) => {
      const user = await createUser(s.db, "browser-plan");
      await signIn(page, s, user);
      await waitText(page, page.locator("#subscription"), /^none \(free plan\)$/);

      await page.locator('li[data-plan="pro_monthly"] .buy[data-gateway="razorpay"]').click();
      await page.locator("#pay").click();
      await waitStatus(page, "checkout-status", "success", /^Pro \(monthly\): order paid$/);
      const [sub] = await s.db`select status, plan_id, current_period_end, cancel_at_period_end
        from public.subscriptions where account_id = ${user.accountId}`;
      assert.equal(sub.status, "active");
      assert.equal(sub.plan_id, "pro_monthly");
      const end = new Date(sub.current_period_end).toISOString();
      const line = page.locator(`#subscription[data-status="active"][data-period-end="${end}"]`);
      await waitText(
        page,
        line,
        new RegExp(`^Pro \\(monthly\\): active until ${end.slice(0, 10)}$`),
      );
      const [order] = await ordersOf(s, user);
      assert.deepEqual([order.purpose, order.plan_id, order.status], [
        "plan",
        "pro_monthly",
        "paid",
      ]);
      await waitOrder(page, order.id, "paid");

      await page.locator("#cancel-subscription").click();
      await waitStatus(page, "plan-status", "success", /^subscription cancels on /);
      await waitText(page, line, /, then cancels$/);
      assert.equal(await page.locator("#cancel-subscription").isHidden(), true);
      const [after] = await s.db`select status, cancel_at_period_end from public.subscriptions
        where account_id = ${user.accountId}`;
      assert.deepEqual({ ...after }, { status: "active", cancel_at_period_end: true });
    }),
});

async function cardsOf(s: TestStack, user: TestUser) {
  const rows = await s.db`select id, last4, is_default from public.payment_methods
    where account_id = ${user.accountId} order by created_at, id`;
  return rows.map((r) => [r.last4, r.is_default]);
}

async function saveCard(page: Page, number: string, expected: RegExp, state = "success") {
  await page.locator("#card-number").selectOption(number);
  await page.locator("#add-card").click();
  await waitStatus(page, "cards-status", state, expected);
}

Deno.test({
  name: "browser: saved cards — save two, make the second the default, delete the first",
  ...opts,
  fn: () =>
    withPage(async (s, b) => {
      const { page } = b;
      const user = await createUser(s.db, "browser-cards");
      await signIn(page, s, user);
      await waitText(page, page.locator("#cards"), /^no saved cards$/);

      await saveCard(page, "4242424242424242", /^saved visa •••• 4242$/);
      await saveCard(page, "5555555555554444", /^saved mastercard •••• 4444$/);
      await waitFor(
        page,
        page.locator('#cards li[data-last4="4444"][data-default="false"]'),
        "4444",
      );
      assert.deepEqual(await cardsOf(s, user), [["4242", true], ["4444", false]]);
      assert.equal(sentTo(b, "POST", /^\/functions\/v1\/payment-methods\/setup$/).length, 2);

      await saveCard(
        page,
        "4000000000000002",
        /^card not saved: Your card was declined\.$/,
        "failure",
      );
      assert.equal((await cardsOf(s, user)).length, 2, "a declined card is not saved");

      await page.locator('#cards li[data-last4="4444"] .make-default').click();
      await waitStatus(page, "cards-status", "success", /^•••• 4444 is the default$/);
      await waitFor(
        page,
        page.locator('#cards li[data-last4="4444"][data-default="true"]'),
        "4444",
      );
      assert.deepEqual(await cardsOf(s, user), [["4242", false], ["4444", true]]);

      await page.locator('#cards li[data-last4="4242"] .delete').click();
      await waitStatus(page, "cards-status", "success", /^deleted •••• 4242$/);
      assert.equal(await page.locator("#cards li").count(), 1);
      assert.deepEqual(await cardsOf(s, user), [["4444", true]]);
      await s.stripe.idle();
    }),
});

Deno.test({
  name: "browser: amounts the page or the API refuse show why and create no order",
  ...opts,
  fn: () =>
    withPage(async (s, b) => {
      const { page, failed } = b;
      const user = await createUser(s.db, "browser-bad");
      await signIn(page, s, user);

      await page.locator("#amount").fill("12.345");
      await page.locator("#topup-submit").click();
      await waitStatus(page, "checkout-status", "failure", /^at most 2 decimal places/);
      assert.equal(sentTo(b, "POST", /create-order$/).length, 0, "refused before sending");

      await page.locator("#amount").fill("0");
      await page.locator("#topup-submit").click();
      await waitStatus(page, "checkout-status", "failure", /^400 invalid_request: amount: /);
      assert.deepEqual(failed.splice(0), ["400 /functions/v1/create-order"]);
      assert.equal(await page.locator("#checkout").isHidden(), true);
      assert.equal(await page.locator("#topup-submit").isEnabled(), true, "free to try again");
      assert.equal((await ordersOf(s, user)).length, 0);
      await waitWallet(page, "INR", 0, "₹0.00");
    }),
});

Deno.test({
  name: "browser: a sign-in that fails says so and offers nothing to buy",
  ...opts,
  fn: () =>
    withPage(async (s, { page, failed }: Browser) => {
      await page.goto(`${s.url}/?email=${encodeURIComponent("nobody@test.local")}`);
      await waitStatus(
        page,
        "sign-in-status",
        "failure",
        /^sign-in failed for nobody@test\.local: /,
      );
      assert.equal(await page.locator("#who").innerText(), "nobody");
      assert.equal(await page.locator("#topup-submit").isDisabled(), true);
      assert.equal(await page.locator("#add-card").isDisabled(), true);
      assert.deepEqual(failed.splice(0), ["404 /dev/token"]);
    }),
});
