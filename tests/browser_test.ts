// The demo page (dev/public/index.html) in headless Chromium, driven like a user: sign in, top up
// through Razorpay's simulated Checkout, watch the wallet. Debian's Chromium at /usr/bin/chromium
// (scripts/test.ts and .ci/run install it when missing); Playwright only drives it.
import assert from "node:assert/strict";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import {
  createUser,
  stack,
  type TestStack,
  type TestUser,
  walletBalance,
} from "./support/stack.ts";

const CHROMIUM = "/usr/bin/chromium";
// The machine's network is closed: no background fetches, updates, sync or QUIC.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
/** How long the UI may take to reach a state before the test fails (auto-waiting, not a sleep). */
const UI_TIMEOUT_MS = 15_000;

interface Browser {
  page: Page;
  /** Uncaught errors and console errors the page raised (failed requests are in `failed`). */
  errors: string[];
  /** Requests the server answered with a 4xx/5xx, as "status path" (the favicon aside). */
  failed: string[];
  close(): Promise<void>;
}

async function openBrowser(): Promise<Browser> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(`${CHROMIUM} is missing: run \`deno task test\`, which installs Chromium`);
  }
  const userDataDir = await Deno.makeTempDir({ prefix: "settle_chromium_" });
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
  } catch (err) {
    await Deno.remove(userDataDir, { recursive: true }).catch(() => {});
    throw err;
  }
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  const page = context.pages()[0] ?? await context.newPage();
  const errors: string[] = [];
  const failed: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Chromium logs every 4xx/5xx response as a console error; those are checked in `failed`.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      errors.push(`console: ${m.text()}`);
    }
  });
  page.on("response", (r) => {
    const path = new URL(r.url()).pathname;
    if (r.status() >= 400 && path !== "/favicon.ico") failed.push(`${r.status()} ${path}`);
  });
  return {
    page,
    errors,
    failed,
    async close() {
      await context.close();
      await Deno.remove(userDataDir, { recursive: true }).catch(() => {});
    },
  };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Waits until `el` shows what is expected; on timeout, fails with what `shown` shows and the log. */
async function waitFor(page: Page, el: Locator, expected: string, shown: Locator = el) {
  try {
    await el.waitFor();
  } catch (err) {
    const [text, log] = await Promise.all(
      [shown, page.locator("#log")].map((l) =>
        l.evaluate((e) => e.outerHTML, undefined, { timeout: 1000 }).catch(() => "?")
      ),
    );
    throw new Error(`expected ${expected}; the page shows ${text}; log: ${log}`, { cause: err });
  }
}

function waitText(page: Page, el: Locator, re: RegExp) {
  return waitFor(page, el.filter({ hasText: re }), String(re), el);
}

/** The wallet line once it shows `minor` (integer paise) and its rupee rendering. */
function waitWallet(page: Page, minor: number) {
  const rupees = `₹${(minor - minor % 100) / 100}.${String(minor % 100).padStart(2, "0")}`;
  const wallet = page.locator("#wallet");
  return waitFor(
    page,
    page.locator(`#wallet[data-minor="${minor}"]`).filter({
      hasText: new RegExp(`^${escape(rupees)}$`),
    }),
    `wallet ${rupees} (${minor})`,
    wallet,
  );
}

/** Opens the demo page signed in as the user, the way the page does it (/dev/token). */
async function signIn(page: Page, s: TestStack, user: TestUser) {
  await page.goto(`${s.url}/?email=${encodeURIComponent(user.email)}`);
  await waitText(page, page.locator("#who"), new RegExp(`^${escape(user.email)}$`));
  await waitWallet(page, 0);
  await waitFor(page, page.locator("#create:enabled"), "Create enabled once signed in");
}

async function ordersOf(s: TestStack, user: TestUser) {
  return await s.db`select id, status, amount, currency, gateway, purpose, gateway_order_id,
      gateway_payment_id
    from public.orders where created_by = ${user.id} order by created_at`;
}

/** Runs fn against a fresh stack (with the dev pages) and browser, closing both. */
async function withPage(fn: (s: TestStack, b: Browser) => Promise<void>) {
  const s = await stack({}, { devPages: true });
  let b: Browser | undefined;
  try {
    b = await openBrowser();
    await fn(s, b);
    assert.deepEqual(b.errors, [], "the page raised no errors");
    assert.deepEqual(b.failed, [], "no request failed unless the test expected it");
  } finally {
    await b?.close();
    await s.close();
  }
}

Deno.test({
  name: "browser: a top-up paid through the demo page credits the wallet the user sees",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withPage(async (s, { page }) => {
      const user = await createUser(s.db, "browser");
      await signIn(page, s, user);
      assert.equal(await page.locator("#pay").isDisabled(), true, "nothing to pay yet");

      await page.locator("#amount").fill("750");
      await page.locator("#create").click();
      await waitText(page, page.locator("#order"), /\(created\) → order_\w+$/);
      assert.equal(await page.locator("#pay").isEnabled(), true);

      const [created] = await ordersOf(s, user);
      assert.equal(created.status, "created");
      assert.equal(Number(created.amount), 75000, "₹750 is 75000 paise");
      assert.equal(created.currency, "INR");
      assert.equal(created.purpose, "wallet_topup");
      assert.match(await page.locator("#order").innerText(), new RegExp(created.id));

      await page.locator("#pay").click();
      await waitText(page, page.locator("#order"), new RegExp(`^${created.id} \\(paid\\)$`));
      await waitWallet(page, 75000);
      assert.equal(await page.locator("#pay").isDisabled(), true, "a paid order is not paid again");
      assert.equal(await page.locator("#fail").isDisabled(), true);

      await s.razorpay.idle(); // the webhooks for the payment too: still credited once
      const orders = await ordersOf(s, user);
      assert.equal(orders.length, 1);
      assert.equal(orders[0].status, "paid");
      assert.match(orders[0].gateway_payment_id, /^pay_/);
      assert.equal(await walletBalance(s.db, user.accountId), 75000);

      // A reload reads the balance again from the server.
      await page.reload();
      await waitWallet(page, 75000);
    }),
});

Deno.test({
  name: "browser: a failed payment leaves the wallet alone; paying the order again credits it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withPage(async (s, { page }) => {
      const user = await createUser(s.db, "browser-fail");
      await signIn(page, s, user);

      await page.locator("#amount").fill("300");
      await page.locator("#create").click();
      await waitText(page, page.locator("#order"), /\(created\) → order_\w+$/);
      const [order] = await ordersOf(s, user);

      await page.locator("#fail").click();
      await waitText(page, page.locator("#log"), /^payment failed: Payment failed$/m);
      assert.doesNotMatch(await page.locator("#order").innerText(), /paid/);
      await waitWallet(page, 0);
      await s.razorpay.idle(); // payment.failed reaches settle as a webhook
      const [failed] = await ordersOf(s, user);
      assert.equal(failed.status, "failed");
      assert.equal(
        await walletBalance(s.db, user.accountId),
        0,
        "a failed payment credits nothing",
      );

      // Razorpay lets the customer retry the same order; settle moves failed → paid.
      assert.equal(await page.locator("#pay").isEnabled(), true, "the order can be paid again");
      await page.locator("#pay").click();
      await waitText(page, page.locator("#order"), new RegExp(`^${order.id} \\(paid\\)$`));
      await waitWallet(page, 30000);
      await s.razorpay.idle();
      const orders = await ordersOf(s, user);
      assert.equal(orders.length, 1);
      assert.equal(orders[0].status, "paid");
      assert.equal(await walletBalance(s.db, user.accountId), 30000);
    }),
});

Deno.test({
  name: "browser: an amount the API refuses shows its error and creates no order",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withPage(async (s, { page, failed }) => {
      const user = await createUser(s.db, "browser-bad");
      await signIn(page, s, user);

      await page.locator("#amount").fill("0");
      await page.locator("#create").click();
      await waitText(page, page.locator("#log"), /^Error: 400 invalid_request: amount: /m);
      assert.deepEqual(failed.splice(0), ["400 /functions/v1/create-order"]);
      assert.equal(await page.locator("#order").innerText(), "no order yet");
      assert.equal(await page.locator("#pay").isDisabled(), true);
      assert.equal((await ordersOf(s, user)).length, 0);
      await waitWallet(page, 0);
    }),
});

Deno.test({
  name: "browser: a sign-in that fails says so and offers no order to create",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withPage(async (s, { page, failed }) => {
      await page.goto(`${s.url}/?email=${encodeURIComponent("nobody@test.local")}`);
      await waitText(page, page.locator("#log"), /^sign-in failed for nobody@test\.local: /m);
      assert.equal(await page.locator("#who").innerText(), "nobody");
      assert.equal(await page.locator("#create").isDisabled(), true);
      assert.deepEqual(failed.splice(0), ["404 /dev/token"]);
    }),
});
