// errorResponse maps every error to the contract itself, a gateway's failure included: services
// let GatewayError propagate and the answer is 502/503 with the same warn log line everywhere.
import assert from "node:assert/strict";
import { errorResponse } from "../shared/http.ts";
import { GatewayError } from "../shared/gateways/types.ts";

async function mapped(err: unknown): Promise<{ status: number; body: unknown; logged: string[] }> {
  const logged: string[] = [];
  const original = console.error;
  console.error = (line: string) => logged.push(line);
  try {
    const res = errorResponse(err, { "x-test": "1" });
    assert.equal(res.headers.get("x-test"), "1");
    return { status: res.status, body: await res.json(), logged };
  } finally {
    console.error = original;
  }
}

Deno.test("errorResponse: a gateway refusal is 502 gateway_error, its cause only in the log", async () => {
  const r = await mapped(new GatewayError(502, "stripe", "stripe: card_declined secret-detail"));
  assert.equal(r.status, 502);
  assert.deepEqual(r.body, {
    error: { code: "gateway_error", message: "stripe refused the request" },
  });
  assert.deepEqual(r.logged.map((l) => JSON.parse(l)), [{
    level: "warn",
    msg: "gateway error",
    gateway: "stripe",
    error: "stripe: card_declined secret-detail",
  }]);
});

Deno.test("errorResponse: a gateway outage is 503 gateway_unavailable", async () => {
  const r = await mapped(new GatewayError(503, "razorpay", "razorpay: timeout"));
  assert.equal(r.status, 503);
  assert.deepEqual(r.body, {
    error: { code: "gateway_unavailable", message: "razorpay is unavailable; retry later" },
  });
  assert.equal(JSON.parse(r.logged[0]).level, "warn");
});
