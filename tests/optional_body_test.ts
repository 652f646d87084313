// readOptionalJsonObject: the one reading of an optional JSON body (reconcile, gateway-audit,
// outbox-dispatch, payment-methods/setup, subscriptions/cancel, wallet-charges/{id}/…). A bare
// request means no options; anything sent must be a JSON object, as for a required body.
import assert from "node:assert/strict";
import { HttpError, readOptionalJsonObject } from "../shared/http.ts";
import { raw, stack } from "./support/stack.ts";
import { assertContractError } from "./support/contract.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A body that arrives chunked: no Content-Length, and no Content-Type unless given. */
function chunked(text: string): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      if (text) c.enqueue(new TextEncoder().encode(text));
      c.close();
    },
  });
}

async function outcome(req: Request): Promise<unknown> {
  try {
    return await readOptionalJsonObject(req);
  } catch (err) {
    assert.ok(err instanceof HttpError, String(err));
    return `${err.status} ${err.code}`;
  }
}

Deno.test("readOptionalJsonObject: bare is {}, anything sent is held to the JSON object rules", async () => {
  const post = (headers: Record<string, string>, body?: BodyInit) =>
    outcome(new Request("http://x/", { method: "POST", headers, body }));
  const json = { "content-type": "application/json" };
  assert.deepEqual(await post({}), {});
  assert.deepEqual(await post({ "content-length": "0" }), {});
  assert.deepEqual(await post({}, chunked("")), {});
  assert.deepEqual(await post(json, '{"limit":5}'), { limit: 5 });
  assert.deepEqual(await post({ "content-type": "Application/JSON; charset=utf-8" }, "{}"), {});
  assert.equal(await post(json, ""), "400 invalid_json");
  assert.equal(await post(json, "   "), "400 invalid_json");
  assert.equal(await post(json, "{"), "400 invalid_json");
  assert.equal(await post(json, "[1]"), "400 invalid_request");
  assert.equal(await post(json, "null"), "400 invalid_request");
  assert.equal(await post({ "content-type": "text/plain" }, ""), "415 unsupported_media_type");
  assert.equal(await post({ "content-type": "text/plain" }, "{}"), "415 unsupported_media_type");
  // A chunked body with no type is not silently ignored.
  assert.equal(await post({}, chunked('{"limit":1}')), "415 unsupported_media_type");
  assert.equal(await post({}, chunked("x".repeat(70 * 1024))), "413 payload_too_large");
  assert.equal(await post(json, "x".repeat(70 * 1024)), "413 payload_too_large");
});

Deno.test({
  name: "optional bodies over HTTP: outbox-dispatch and reconcile read them the same way",
  ...opts,
  fn: async () => {
    const s = await stack();
    try {
      const token = s.serviceRoleKey;
      const json = { "content-type": "application/json" };
      for (const fn of ["outbox-dispatch", "reconcile", "gateway-audit"]) {
        // A typed JSON request with nothing in it is not JSON (it was the defaults for the outbox).
        assertContractError(
          await raw(s, fn, { method: "POST", token, headers: json, body: "" }),
          400,
          "invalid_json",
        );
        // A chunked body without a type is refused, not ignored (reconcile and the audit ran).
        assertContractError(
          await raw(s, fn, { method: "POST", token, body: chunked('{"limit":"x"}') }),
          415,
          "unsupported_media_type",
        );
      }
      const bare = await raw(s, "outbox-dispatch", { method: "POST", token });
      assert.equal(bare.status, 200, JSON.stringify(bare.body));
      assert.equal(typeof (bare.body as { claimed: number }).claimed, "number");
    } finally {
      await s.close();
    }
  },
});
