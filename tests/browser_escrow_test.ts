// The demo page's escrow panel in headless Chromium: the payer creates an engagement to another
// user, funds it at the simulated checkout (Razorpay; Stripe after closing the first checkout),
// completes it with a rating; the payee signs in, sees what they will receive and when, settles
// it with the dev button and sees the split and the wallet's credit. Every step is checked
// against the database; double clicks and concurrent settle runs count once.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { createUser, idle, type TestStack, type TestUser, walletBalance } from "./support/stack.ts";
import { escape, sentTo, waitFor, waitStatus, waitText, withPage } from "./support/browser.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** Signs in through the header's form (the first time by URL, as browser_test.ts does). */
async function signIn(page: Page, s: TestStack, user: TestUser, first = false) {
  if (first) {
    await page.goto(`${s.url}/?email=${encodeURIComponent(user.email)}`);
  } else {
    await page.locator("#email").fill(user.email);
    await page.locator("#sign-in-submit").click();
  }
  await waitText(page, page.locator("#who"), new RegExp(`^${escape(user.email)}$`));
  await waitStatus(page, "sign-in-status", "success", /^signed in$/);
  await waitText(page, page.locator("#my-account"), new RegExp(`^${user.accountId}$`));
  await waitFor(page, page.locator("#escrow-submit:enabled"), "Create enabled once signed in");
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

/** The engagement's row once it shows `status` on this side. */
async function waitEngagement(page: Page, id: string, status: string, side: string) {
  const row = page.locator(
    `#engagements tr[data-engagement-id="${id}"][data-status="${status}"][data-side="${side}"]`,
  ).filter({ has: page.locator(`.status-of[data-status="${status}"]`) });
  await waitFor(page, row, `engagement ${id} ${status} (${side})`, page.locator("#engagements"));
  return row;
}

async function engagementsOf(s: TestStack, payer: TestUser) {
  return await s.db`select id, status, amount::int, currency, payee_account_id, hold_hours,
      rating, funding_order_id, completed_at, release_at, payee_amount::int, fee_amount::int,
      penalty_amount::int
    from public.engagements where payer_account_id = ${payer.accountId} order by created_at`;
}

/** How often the engagement was settled (the ledger's unique key), and the payee's credits. */
async function settlementsOf(s: TestStack, id: string, payee: TestUser) {
  const [t] = await s.db`select count(*)::int as n from public.ledger_transactions
    where idempotency_key = ${"escrow_settlement:" + id}`;
  const credits = await s.db`select e.amount::int from public.ledger_entries e
    join public.wallets w on w.id = e.wallet_id where w.account_id = ${payee.accountId}
    order by e.id`;
  return { settlements: t.n as number, credits: credits.map((c) => c.amount as number) };
}

async function refundsOf(s: TestStack, orderId: string) {
  const rows = await s.db`select amount::int, status from public.refunds where order_id = ${orderId}
    order by created_at`;
  return rows.map((r) => [r.amount, r.status]);
}

/** Audit rows about this engagement or its order (other suites share the database). */
async function auditOf(s: TestStack, ...subjects: string[]) {
  const rows = await s.db`select invariant, subject, detail from settle.ledger_audit()`;
  return rows.filter((r) =>
    subjects.some((x) =>
      `${r.subject} ${r.detail}`.includes(x) ||
      `${r.subject}`.includes(x.replaceAll("-", ""))
    )
  ).map((r) => `${r.invariant} ${r.subject}: ${r.detail}`);
}

Deno.test({
  name: "browser escrow: fund (Razorpay), rate 3, payee sees it, settle; double clicks count once",
  ...opts,
  fn: () =>
    withPage(async (s, b) => {
      const { page } = b;
      const payer = await createUser(s.db, "escrow-payer");
      const payee = await createUser(s.db, "escrow-payee");
      await signIn(page, s, payer, true);
      await waitText(page, page.locator("#engagements"), /^no engagements yet$/);

      await page.locator("#escrow-payee").fill(payee.email);
      await page.locator("#escrow-title").fill("Logo design");
      await page.locator("#escrow-amount").fill("100");
      await page.locator("#escrow-hold").fill("0");
      await page.locator("#escrow-gateway").selectOption("razorpay");
      await page.locator("#escrow-submit").dblclick();
      await waitFor(page, page.locator("#pay:enabled"), "the checkout open");
      assert.equal(sentTo(b, "GET", /^\/dev\/accounts$/).length, 1);
      assert.equal(sentTo(b, "POST", /^\/functions\/v1\/engagements$/).length, 1, "one create");
      assert.equal(sentTo(b, "POST", /^\/functions\/v1\/create-order$/).length, 1);
      assert.equal(await page.locator("#escrow-submit").isDisabled(), true, "in flight");
      const [created] = await engagementsOf(s, payer);
      assert.deepEqual(
        [created.status, created.amount, created.currency, created.payee_account_id],
        ["awaiting_payment", 10000, "INR", payee.accountId],
      );
      assert.equal(created.hold_hours, 0);
      await waitEngagement(page, created.id, "awaiting_payment", "payer");

      await page.locator("#pay").dblclick();
      await waitStatus(
        page,
        "escrow-status",
        "success",
        /^engagement funded: ₹100\.00 held until you complete it$/,
      );
      assert.equal(sentTo(b, "POST", /^\/functions\/v1\/verify$/).length, 1, "paid once");
      const row = await waitEngagement(page, created.id, "funded", "payer");
      await waitText(page, row.locator(".split"), /^the payee gets ₹90\.00 so far$/);
      const [funded] = await engagementsOf(s, payer);
      assert.equal(funded.status, "funded");
      assert.equal(await walletBalance(s.db, payer.accountId), 0, "held, not in a wallet");
      assert.equal(await walletBalance(s.db, payee.accountId), 0);

      await row.locator(".rating").selectOption("3");
      await row.locator(".complete").dblclick();
      await waitStatus(
        page,
        "escrow-status",
        "success",
        /^completed with rating 3: the payee gets ₹81\.00 from \d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
      );
      const completes = sentTo(b, "POST", /^\/functions\/v1\/engagements\/[^/]+\/complete$/);
      assert.equal(completes.length, 1, "completed once");
      const [done] = await engagementsOf(s, payer);
      assert.deepEqual([done.status, done.rating], ["completed", 3]);
      const releaseAt = new Date(done.release_at).toISOString();
      assert.equal(releaseAt, new Date(done.completed_at).toISOString(), "hold 0");
      const completed = await waitEngagement(page, created.id, "completed", "payer");
      assert.equal(await completed.getAttribute("data-release-at"), releaseAt);
      assert.equal(await completed.getAttribute("data-expected"), "8100");
      assert.equal(await completed.locator("button").count(), 0, "nothing more to do");

      // The payee's side: what they will receive and when, then the settlement.
      await signIn(page, s, payee);
      const theirs = await waitEngagement(page, created.id, "completed", "payee");
      const shown = `${releaseAt.slice(0, 16).replace("T", " ")} UTC`;
      await waitText(
        page,
        theirs.locator(".split"),
        new RegExp(`^you will receive ₹81\\.00 from ${escape(shown)}$`),
      );
      assert.equal(await theirs.locator("button").count(), 0, "the payee cannot complete it");
      await waitWallet(page, "INR", 0, "₹0.00");

      await page.locator("#escrow-settle").dblclick();
      await waitStatus(
        page,
        "escrow-status",
        "success",
        /^escrow-settle: [1-9]\d* settled, [1-9]\d* refund\(s\) sent, \d+ skipped$/,
      );
      assert.equal(sentTo(b, "POST", /^\/dev\/escrow-settle$/).length, 1, "one settle run");
      const settled = await waitEngagement(page, created.id, "settled", "payee");
      await waitText(
        page,
        settled.locator(".split"),
        /^you received ₹81\.00: payee ₹81\.00 · fee ₹9\.00 · penalty ₹10\.00$/,
      );
      await waitWallet(page, "INR", 8100, "₹81.00");
      await idle(s);
      const [after] = await engagementsOf(s, payer);
      assert.deepEqual(
        [after.status, after.payee_amount, after.fee_amount, after.penalty_amount],
        ["settled", 8100, 900, 1000],
      );
      assert.deepEqual(await settlementsOf(s, created.id, payee), {
        settlements: 1,
        credits: [8100],
      });
      assert.equal(await walletBalance(s.db, payee.accountId), 8100, "exactly the payee amount");
      assert.deepEqual(await refundsOf(s, after.funding_order_id), [[1000, "processed"]]);

      // Another run settles nothing twice.
      await page.locator("#escrow-settle").click();
      await waitFor(page, page.locator("#escrow-settle:enabled"), "idle after the second run");
      await waitStatus(page, "escrow-status", "success", /^escrow-settle: /);
      assert.equal(sentTo(b, "POST", /^\/dev\/escrow-settle$/).length, 2);
      assert.deepEqual(await settlementsOf(s, created.id, payee), {
        settlements: 1,
        credits: [8100],
      });
      assert.deepEqual(await refundsOf(s, after.funding_order_id), [[1000, "processed"]]);

      // The payer's side after settlement: the penalty came back to the funding payment.
      await signIn(page, s, payer);
      const mine = await waitEngagement(page, created.id, "settled", "payer");
      await waitText(
        page,
        mine.locator(".split"),
        /^payee ₹81\.00 · fee ₹9\.00 · penalty ₹10\.00 \(refunded to you\)$/,
      );
      const order = page.locator(
        `#orders tr[data-order-id="${after.funding_order_id}"][data-status="partially_refunded"]`,
      );
      await waitText(page, order, /escrow funding .*₹100\.00.*\(₹10\.00 back\)/s);
      assert.equal(await order.locator(".refund").count(), 0, "escrow is not refunded by hand");
      await waitWallet(page, "INR", 0, "₹0.00");
      assert.deepEqual(await auditOf(s, created.id, after.funding_order_id), []);
    }),
});

Deno.test({
  name: "browser escrow: a closed Stripe checkout leaves it unpaid; Fund pays it; rate 5 settles",
  ...opts,
  fn: () =>
    withPage(async (s, b) => {
      const { page } = b;
      const payer = await createUser(s.db, "escrow-stripe-payer");
      const payee = await createUser(s.db, "escrow-stripe-payee");
      await signIn(page, s, payer, true);
      await page.locator("#escrow-payee").fill(payee.email);
      await page.locator("#escrow-amount").fill("25.00");
      await page.locator("#escrow-currency").selectOption("USD");
      await page.locator("#escrow-gateway").selectOption("stripe");
      await page.locator("#escrow-submit").click();
      await waitFor(page, page.locator("#close:enabled"), "the checkout open");
      assert.match(await page.locator("#checkout-title").innerText(), /^stripe checkout/);
      await page.locator("#close").click();
      await waitStatus(
        page,
        "escrow-status",
        "cancelled",
        /^checkout closed: nothing was charged; the engagement awaits payment$/,
      );
      const [e] = await engagementsOf(s, payer);
      assert.deepEqual([e.status, e.amount, e.currency], ["awaiting_payment", 2500, "USD"]);
      const unpaid = await waitEngagement(page, e.id, "awaiting_payment", "payer");

      await unpaid.locator('.fund[data-gateway="stripe"]').click();
      await page.locator("#pay").click();
      await waitStatus(page, "escrow-status", "success", /^engagement funded: \$25\.00 held /);
      const funded = await waitEngagement(page, e.id, "funded", "payer");
      await funded.locator(".complete").click(); // the rating defaults to 5
      await waitStatus(page, "escrow-status", "success", /^completed with rating 5: .+\$22\.50/);

      // Six settle runs at once through the dev route: settled once.
      const runs = await Promise.all(
        Array.from({ length: 6 }, () =>
          fetch(`${s.url}/dev/escrow-settle`, {
            method: "POST",
            headers: { authorization: `Bearer ${payer.token}` },
          }).then(async (r) => ({ status: r.status, body: await r.json() }))),
      );
      assert.deepEqual(runs.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
      assert.ok(runs.reduce((n, r) => n + r.body.settled, 0) >= 1, JSON.stringify(runs));
      await idle(s);
      assert.deepEqual(await settlementsOf(s, e.id, payee), {
        settlements: 1,
        credits: [2250],
      });
      assert.equal(await walletBalance(s.db, payee.accountId, "USD"), 2250);
      const [after] = await engagementsOf(s, payer);
      assert.deepEqual(
        [after.status, after.payee_amount, after.fee_amount, after.penalty_amount],
        ["settled", 2250, 250, 0],
      );
      assert.deepEqual(await refundsOf(s, after.funding_order_id), [], "no penalty at 5");

      await signIn(page, s, payee);
      const theirs = await waitEngagement(page, e.id, "settled", "payee");
      await waitText(
        page,
        theirs.locator(".split"),
        /^you received \$22\.50: payee \$22\.50 · fee \$2\.50 · penalty \$0\.00$/,
      );
      await waitWallet(page, "USD", 2250, "$22.50");
      assert.deepEqual(await auditOf(s, e.id, after.funding_order_id), []);
    }),
});

Deno.test({
  name: "browser escrow: refusals (unknown payee, paying yourself, bad amounts/hold) write nothing",
  ...opts,
  fn: () =>
    withPage(async (s, b) => {
      const { page, failed } = b;
      const payer = await createUser(s.db, "escrow-bad");
      await signIn(page, s, payer, true);
      const attempt = async (fields: Record<string, string>, state: string, re: RegExp) => {
        for (const [id, value] of Object.entries(fields)) {
          await page.locator(`#escrow-${id}`).fill(value);
        }
        await page.locator("#escrow-submit").click();
        await waitStatus(page, "escrow-status", state, re);
        await waitFor(page, page.locator("#escrow-submit:enabled"), "free to try again");
      };

      await attempt(
        { payee: "nobody-escrow@test.local" },
        "failure",
        /^404 not_found: no user nobody-escrow@test\.local$/,
      );
      assert.deepEqual(failed.splice(0), ["404 /dev/accounts"]);
      await attempt({ payee: payer.email }, "failure", /^400 invalid_request: /);
      assert.deepEqual(failed.splice(0), ["400 /functions/v1/engagements"]);
      await attempt({ payee: "bob@example.com", hold: "721" }, "failure", /^400 invalid_request/);
      assert.deepEqual(failed.splice(0), ["400 /functions/v1/engagements"]);
      const sent = sentTo(b, "POST", /^\/functions\/v1\/engagements$/).length;
      await attempt({ amount: "12.345", hold: "0" }, "failure", /^at most 2 decimal places/);
      await attempt({ amount: "10", hold: "1.5" }, "failure", /^hold: a whole number of hours/);
      await attempt({ payee: "" }, "failure", /^enter the payee's email$/);
      assert.equal(sentTo(b, "POST", /^\/functions\/v1\/engagements$/).length, sent, "not sent");
      assert.equal(sentTo(b, "POST", /create-order$/).length, 0);
      assert.equal(await page.locator("#checkout").isHidden(), true);
      assert.equal((await engagementsOf(s, payer)).length, 0, "no engagement written");
      await waitText(page, page.locator("#engagements"), /^no engagements yet$/);

      // The dev helpers want a signed-in user; the page never needed the service role key.
      for (
        const [path, method, token, status] of [
          ["/dev/escrow-settle", "POST", undefined, 401],
          ["/dev/escrow-settle", "POST", s.anonKey, 401],
          ["/dev/accounts?email=bob%40example.com", "GET", undefined, 401],
          ["/dev/accounts", "GET", payer.token, 400],
        ] as const
      ) {
        const res = await fetch(`${s.url}${path}`, {
          method,
          headers: token ? { authorization: `Bearer ${token}` } : {},
        });
        const body = await res.json();
        assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(body)}`);
        assert.equal(typeof body.error.code, "string");
      }
    }),
});
