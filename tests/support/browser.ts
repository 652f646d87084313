// Headless Chromium for the browser tests: Debian's Chromium at /usr/bin/chromium (scripts/test.ts
// and .ci/run install it when missing), driven by Playwright, plus waits that explain themselves.
import assert from "node:assert/strict";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { type TestStack, withStack } from "./stack.ts";

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
const NAVIGATION_TIMEOUT_MS = 60_000;

export interface SentRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

export interface Browser {
  page: Page;
  /** Uncaught errors and console errors the page raised (failed requests are in `failed`). */
  errors: string[];
  /** Requests the server answered with a 4xx/5xx, as "status path". */
  failed: string[];
  /** Every request the page sent, in order. */
  sent: SentRequest[];
  close(): Promise<void>;
}

export async function openBrowser(): Promise<Browser> {
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
      viewport: { width: 1000, height: 1400 },
    });
  } catch (err) {
    await Deno.remove(userDataDir, { recursive: true }).catch(() => {});
    throw err;
  }
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  // A cold page load (Chromium, supabase-js) on a loaded machine is the slowest step of all.
  context.setDefaultNavigationTimeout(NAVIGATION_TIMEOUT_MS);
  const page = context.pages()[0] ?? await context.newPage();
  const errors: string[] = [];
  const failed: string[] = [];
  const sent: SentRequest[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Chromium logs every 4xx/5xx response as a console error; those are checked in `failed`.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      errors.push(`console: ${m.text()}`);
    }
  });
  page.on("request", (r) => {
    sent.push({ method: r.method(), path: new URL(r.url()).pathname, headers: r.headers() });
  });
  page.on("response", (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${new URL(r.url()).pathname}`);
  });
  return {
    page,
    errors,
    failed,
    sent,
    async close() {
      await context.close();
      await Deno.remove(userDataDir, { recursive: true }).catch(() => {});
    },
  };
}

/** Runs fn against a fresh stack (with the dev pages) and browser, closing both. */
export async function withPage(fn: (s: TestStack, b: Browser) => Promise<void>) {
  await withStack({}, { devPages: true }, async (s) => {
    let b: Browser | undefined;
    try {
      b = await openBrowser();
      await fn(s, b);
      assert.deepEqual(b.errors, [], "the page raised no errors");
      assert.deepEqual(b.failed, [], "no request failed unless the test expected it");
    } finally {
      await b?.close();
    }
  });
}

export const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Waits until `el` exists; on timeout, fails with what `shown` shows and the page's log. */
export async function waitFor(page: Page, el: Locator, expected: string, shown: Locator = el) {
  try {
    await el.first().waitFor();
  } catch (err) {
    const [text, log] = await Promise.all(
      [shown.first(), page.locator("#log")].map((l) =>
        l.evaluate((e) => e.outerHTML, undefined, { timeout: 1000 }).catch(() => "?")
      ),
    );
    throw new Error(`expected ${expected}; the page shows ${text}; log: ${log}`, { cause: err });
  }
}

export function waitText(page: Page, el: Locator, re: RegExp) {
  return waitFor(page, el.filter({ hasText: re }), String(re), el);
}

/** A status line (loading, success, failure, cancelled) once it is in `state` and matches re. */
export function waitStatus(page: Page, id: string, state: string, re: RegExp = /./) {
  return waitFor(
    page,
    page.locator(`#${id}[data-state="${state}"]`).filter({ hasText: re }),
    `#${id} ${state} ${re}`,
    page.locator(`#${id}`),
  );
}

/** The requests the page sent so far with this method whose path matches. */
export function sentTo(b: Browser, method: string, path: RegExp): SentRequest[] {
  return b.sent.filter((r) => r.method === method && path.test(r.path));
}
