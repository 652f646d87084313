// The error contract, asserted the same way by every bad-input suite.
import assert from "node:assert/strict";
import type { Reply } from "./stack.ts";

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
