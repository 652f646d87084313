// The error contract, asserted the same way by every bad-input suite.
import assert from "node:assert/strict";
import { idle, type Reply, snapshot, type TestStack } from "./stack.ts";

export interface Case {
  name: string;
  status: number;
  code: string;
  send: () => Promise<Reply>;
  /** Extra checks after the request (the database checks always run). */
  also?: () => Promise<void>;
}

// Traces or source locations, the usual ways internals leak into an error body.
const LEAKS = [/\n\s*at\s/, /\bat\s+\S+\s+\((file|ext|node):/, /\.(ts|js|mjs):\d+/, /file:\/\//];

/** Exactly `{"error":{code,message[,details]}}` with this status and code, and no trace. */
export function assertContractError(r: Reply, status: number, code: string) {
  const shown = typeof r.body === "string" ? r.body : JSON.stringify(r.body);
  assert.equal(r.status, status, `status ${r.status}, expected ${status}; body ${shown}`);
  assert.ok(
    r.body !== null && typeof r.body === "object" && !Array.isArray(r.body),
    `body is not a JSON object: ${shown}`,
  );
  assert.deepEqual(Object.keys(r.body), ["error"], `body has keys besides "error": ${shown}`);
  const e = r.body.error;
  assert.ok(e !== null && typeof e === "object", `error is not an object: ${shown}`);
  assert.equal(e.code, code, `error.code ${e.code}, expected ${code}; body ${shown}`);
  assert.equal(typeof e.message, "string", `error.message is not a string: ${shown}`);
  assert.ok(e.message.trim().length > 0, "error.message is empty");
  for (const key of Object.keys(e)) {
    assert.ok(["code", "message", "details"].includes(key), `unexpected error.${key}: ${shown}`);
  }
  for (const leak of LEAKS) assert.doesNotMatch(JSON.stringify(e), leak, "error leaks a trace");
}

/** Reads some state before a case; the function it returns asserts the state reads the same. */
export type Watch = () => Promise<() => Promise<void>>;

/** The public tables' checksums (support/stack.ts `snapshot`) do not change. */
export const databaseUnchanged = (s: TestStack): Watch => async () => {
  const before = await snapshot(s.db);
  return async () => assert.deepEqual(await snapshot(s.db), before, "the database changed");
};

/**
 * One bad-input case: with both gateways' webhooks settled before and after, the reply is the
 * contract error and every watch (by default the database checksums) reads as it did before.
 */
export async function runCase(s: TestStack, c: Case, watches = [databaseUnchanged(s)]) {
  await idle(s);
  const checks = [];
  for (const watch of watches) checks.push(await watch());
  const r = await c.send();
  await idle(s);
  assertContractError(r, c.status, c.code);
  for (const check of checks) await check();
  await c.also?.();
}

/** Every case of every group as its own step named "group: case"; names must be distinct. */
export async function runCases(
  t: Deno.TestContext,
  s: TestStack,
  groups: [string, Case[]][],
  opts: { atLeast?: number; watches?: Watch[] } = {},
) {
  const names = groups.flatMap(([g, cases]) => cases.map((c) => `${g}: ${c.name}`));
  assert.equal(new Set(names).size, names.length, "case names are distinct");
  const atLeast = opts.atLeast ?? 1;
  assert.ok(names.length >= atLeast, `only ${names.length} cases`);
  for (const [group, cases] of groups) {
    for (const c of cases) {
      await t.step(`${group}: ${c.name}`, () => runCase(s, c, opts.watches));
    }
  }
}
