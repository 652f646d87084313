// A small fetch client for RazorpayX (contacts, fund accounts, payouts): configurable base URL,
// timeouts, and errors that say whether the payout was refused or its fate is unknown.
import {
  BasicAuthJsonClient,
  type BasicAuthOptions,
  isTimeout,
} from "../../gateways/http_client.ts";
import { PayoutGatewayError, refusalStatus } from "../types.ts";
import type { RzpxContact, RzpxError, RzpxFundAccount, RzpxPayout } from "./wire.ts";

/** The page size of GET /v1/payouts (count 1..100). */
export const PAYOUT_PAGE = 100;

export type RazorpayXClientOptions = BasicAuthOptions;

export class RazorpayXClient extends BasicAuthJsonClient {
  async #request<T>(method: string, path: string, body?: unknown, headers: HeadersInit = {}) {
    const { res, parsed } = await this.send(
      method,
      path,
      body,
      headers,
      (_phase, err) =>
        new PayoutGatewayError(
          503,
          "razorpayx",
          isTimeout(err)
            ? "razorpayx timed out"
            : `razorpayx unreachable: ${String(err).slice(0, 200)}`,
        ),
    );
    if (!res.ok) {
      const description = (parsed as RzpxError | undefined)?.error?.description ?? "no error body";
      throw new PayoutGatewayError(
        res.status === 503 || res.status === 504 ? 503 : 502,
        "razorpayx",
        `razorpayx answered ${res.status}: ${description}`,
        refusalStatus(res.status),
      );
    }
    if (parsed === undefined) {
      throw new PayoutGatewayError(502, "razorpayx", "razorpayx answered without a JSON body");
    }
    return parsed as T;
  }

  createContact(body: { name: string; type: string; reference_id: string }): Promise<RzpxContact> {
    return this.#request("POST", "/v1/contacts", body);
  }

  createFundAccount(body: Record<string, unknown>): Promise<RzpxFundAccount> {
    return this.#request("POST", "/v1/fund_accounts", body);
  }

  /** POST /v1/payouts with the mandatory X-Payout-Idempotency: a retry returns the same payout. */
  createPayout(body: Record<string, unknown>, idempotencyKey: string): Promise<RzpxPayout> {
    return this.#request("POST", "/v1/payouts", body, { "x-payout-idempotency": idempotencyKey });
  }

  fetchPayout(id: string): Promise<RzpxPayout> {
    return this.#request("GET", `/v1/payouts/${encodeURIComponent(id)}`);
  }

  /**
   * GET /v1/payouts of our account number created in [from, to], 100 a page by `skip`, newest
   * first: a payout created meanwhile can shift a page, so ids seen twice are dropped.
   */
  async listPayouts(accountNumber: string, from: number, to: number): Promise<RzpxPayout[]> {
    const seen = new Map<string, RzpxPayout>();
    for (let skip = 0;; skip += PAYOUT_PAGE) {
      const q = new URLSearchParams({
        account_number: accountNumber,
        from: String(from),
        to: String(to),
        count: String(PAYOUT_PAGE),
        skip: String(skip),
      });
      const page = await this.#request<{ items: RzpxPayout[] }>("GET", `/v1/payouts?${q}`);
      for (const item of page.items) if (!seen.has(item.id)) seen.set(item.id, item);
      if (page.items.length < PAYOUT_PAGE) return [...seen.values()];
    }
  }
}
