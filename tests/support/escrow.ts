// Test support for marketplace escrow: engagements through the API, funded at a simulator.
import assert from "node:assert/strict";
import { client, invoke, raw, type Reply, type TestStack, type TestUser } from "./stack.ts";
import { createOrder, type Gw, type Paid, pay } from "./refunds.ts";

export interface Engagement {
  id: string;
  status: string;
  amount: number;
  currency: string;
  funding_order_id: string | null;
  completed_at: string | null;
  release_at: string | null;
  payee_amount: number | null;
  fee_amount: number | null;
  penalty_amount: number | null;
}

export function post(s: TestStack, path: string, token: string, body?: unknown): Promise<Reply> {
  return raw(s, path, {
    method: "POST",
    token,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

export const get = (s: TestStack, path: string, token: string) =>
  raw(s, path, { method: "GET", token });

export async function createEngagement(
  s: TestStack,
  payer: TestUser,
  payee: TestUser,
  extra: Record<string, unknown> = {},
): Promise<Engagement> {
  const r = await invoke(client(s, payer.token), "engagements", {
    payee_account_id: payee.accountId,
    amount: 10000,
    currency: "INR",
    ...extra,
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.engagement;
}

/** Funds an engagement through a gateway: create-order (escrow), pay, verify. */
export async function fund(
  s: TestStack,
  payer: TestUser,
  e: Engagement,
  gw: Gw = "razorpay",
  hooks: Record<string, unknown> = {},
): Promise<Paid> {
  const order = await createOrder(s, payer, {
    gateway: gw,
    purpose: "escrow",
    engagement_id: e.id,
  });
  assert.equal(order.amount, e.amount);
  return await pay(s, payer, gw, order, hooks);
}

export async function complete(s: TestStack, payer: TestUser, id: string, rating: number) {
  const r = await post(s, `engagements/${id}/complete`, payer.token, { rating });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.engagement as Engagement;
}

export async function settleRun(s: TestStack) {
  const r = await post(s, "escrow-settle", s.serviceRoleKey);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body as {
    claimed: number;
    settled: number;
    skipped: number;
    auto_completed: number;
    refunds_created: number;
  };
}

export async function engagementRow(s: TestStack, id: string) {
  const [e] = await s.db`select * from public.engagements where id = ${id}`;
  return e;
}

/** The signed sum of a house account's entries. */
export async function houseBalance(s: TestStack, account: string) {
  const [r] = await s.db`select coalesce(sum(amount), 0)::bigint as total
    from public.ledger_entries where system_account = ${account}`;
  return Number(r.total);
}

export const escrowAccount = (id: string) => `escrow:${id.replaceAll("-", "")}`;

export async function audit(s: TestStack) {
  const rows = await s.db`select * from settle.ledger_audit()`;
  return rows.map((r) => `${r.invariant} ${r.subject}: ${r.detail}`);
}
