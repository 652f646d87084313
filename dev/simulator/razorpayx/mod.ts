// Stateful in-memory RazorpayX simulator (contacts, fund accounts, payouts; /_sim controls) as a
// fetch handler, mounted like the Razorpay one (dev/simulator/razorpay/mod.ts explains the contract:
// paths relative to the mount point, a "reset" fault throws SimulatedConnectionReset).
//
// A payout is created "processing" (payout.initiated is sent) and stays there until a control
// call moves it along its lifecycle (processed, reversed, failed, ...), each move signed and sent
// as payout.<status> with the webhook options (duplicate, reorder, delay, drop, retry) and chaos
// the other simulators share. X-Payout-Idempotency is mandatory, as in live RazorpayX.
import { createHmac } from "node:crypto";
import {
  canonical,
  FaultBook,
  holdUntilAbort,
  parseWebhookOptions,
  readSimConfig,
  type SimEventRecord,
  SimulatedConnectionReset,
  WebhookDispatcher,
  type WebhookOptions,
} from "../common/mod.ts";
import {
  type Contact,
  eventFor,
  type FundAccount,
  invalid,
  type Json,
  jsonResponse,
  moved,
  newContact,
  newFundAccount,
  newPayout,
  notFoundId,
  type Payout,
  type PayoutStatus,
  randomId,
  sameContact,
  sameFundAccount,
  serverError,
  TRANSITIONS,
} from "./resources.ts";

export interface RazorpayXSimOptions {
  keyId: string;
  keySecret: string;
  /** The business's RazorpayX account number every payout must name. */
  accountNumber: string;
  /** The RazorpayX Dashboard's webhook secret (not the Razorpay PG one). */
  webhookSecret: string;
  webhookUrl?: string;
  nowMs?: () => number;
}

interface StoredEvent extends SimEventRecord {
  payoutId: string;
}

const ACCOUNT_ID = "acc_SettleSimX0001";
const IDEMPOTENCY = /^[A-Za-z0-9 _-]{4,36}$/;

class BadBody extends Error {}

async function readBody(req: Request): Promise<Json> {
  const text = await req.text();
  if (text.trim() === "") return {};
  try {
    const v = JSON.parse(text);
    if (v !== null && typeof v === "object" && !Array.isArray(v)) return v as Json;
  } catch { /* below */ }
  throw new BadBody("The request body must be a JSON object");
}

export class RazorpayXSimulator {
  readonly #opts: RazorpayXSimOptions;
  readonly #now: () => number;
  readonly #auth: string;
  readonly #contacts = new Map<string, Contact>();
  readonly #fundAccounts = new Map<string, FundAccount>();
  readonly #payouts = new Map<string, Payout>();
  /** X-Payout-Idempotency key -> the body it came with and the payout it made. */
  readonly #keys = new Map<string, { fingerprint: string; payoutId: string }>();
  readonly #events: StoredEvent[] = [];
  readonly #faults = new FaultBook();
  readonly #hooks: WebhookDispatcher<StoredEvent>;
  #defaultWebhooks: WebhookOptions = {};
  /** Payout create requests received (each try counts), for "sent once" assertions. */
  #createRequests = 0;

  constructor(opts: RazorpayXSimOptions) {
    this.#opts = opts;
    this.#now = opts.nowMs ?? Date.now;
    this.#auth = `Basic ${btoa(`${opts.keyId}:${opts.keySecret}`)}`;
    this.#hooks = new WebhookDispatcher<StoredEvent>({
      label: "razorpayx",
      timeoutMs: 5_000,
      url: opts.webhookUrl,
      headers: (e) => ({
        "content-type": "application/json",
        "x-razorpay-signature": e.signature,
        "x-razorpay-event-id": e.event_id,
        "user-agent": "Razorpay-Webhook/v1",
      }),
    });
  }

  setWebhookUrl(url: string | undefined): void {
    this.#hooks.url = url;
  }

  idle(): Promise<void> {
    return this.#hooks.idle();
  }

  async fetch(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    try {
      if (path.startsWith("/_sim/razorpayx")) return await this.#control(req, url, path);
      if (path.startsWith("/v1/")) return await this.#api(req, path);
    } catch (e) {
      if (e instanceof BadBody) return invalid(e.message);
      throw e;
    }
    return jsonResponse(404, { error: { code: "NOT_FOUND", description: "no such URL" } });
  }

  // ---------------------------------------------------------------- /v1 API

  async #api(req: Request, path: string): Promise<Response> {
    const fault = this.#faults.take(req.method, path);
    if (fault?.mode === "error_500" || fault?.mode === "error_502" || fault?.mode === "error_503") {
      return serverError(Number(fault.mode.slice(-3)));
    }
    if (fault?.mode === "reset") throw new SimulatedConnectionReset();
    if (fault?.mode === "timeout") {
      await holdUntilAbort(req.signal, fault.holdMs);
      return serverError(504);
    }
    if (fault?.mode === "delay") await holdUntilAbort(req.signal, fault.holdMs);
    const res = req.headers.get("authorization") === this.#auth
      ? await this.#route(req, path)
      : jsonResponse(401, { error: { code: "BAD_REQUEST_ERROR", description: "Unauthorized" } });
    // The *_after modes do the work first: the payout exists but the client never hears of it.
    if (fault?.mode === "reset_after") {
      await res.body?.cancel();
      throw new SimulatedConnectionReset();
    }
    if (fault?.mode === "timeout_after") {
      await res.body?.cancel();
      await holdUntilAbort(req.signal, fault.holdMs);
      return serverError(504);
    }
    return res;
  }

  async #route(req: Request, path: string): Promise<Response> {
    const m = req.method.toUpperCase();
    const seg = path.split("/").slice(2);
    const one = <T>(map: Map<string, T>) => {
      const v = map.get(seg[1]);
      return v ? jsonResponse(200, v) : notFoundId();
    };
    if (seg[0] === "contacts" && seg.length === 1 && m === "POST") {
      return this.#createContact(await readBody(req));
    }
    if (seg[0] === "contacts" && seg.length === 2 && m === "GET") return one(this.#contacts);
    if (seg[0] === "fund_accounts" && seg.length === 1 && m === "POST") {
      return this.#createFundAccount(await readBody(req));
    }
    if (seg[0] === "fund_accounts" && seg.length === 2 && m === "GET") {
      return one(this.#fundAccounts);
    }
    if (seg[0] === "payouts" && seg.length === 1 && m === "POST") {
      return this.#createPayout(await readBody(req), req.headers.get("x-payout-idempotency"));
    }
    if (seg[0] === "payouts" && seg.length === 2 && m === "GET") return one(this.#payouts);
    return jsonResponse(404, { error: { code: "NOT_FOUND", description: "no such URL" } });
  }

  #createContact(body: Json): Response {
    const c = newContact(body, this.#unix());
    if (c instanceof Response) return c;
    const existing = [...this.#contacts.values()].find((x) => sameContact(x, c));
    if (existing) return jsonResponse(200, existing);
    this.#contacts.set(c.id, c);
    return jsonResponse(201, c);
  }

  #createFundAccount(body: Json): Response {
    const fa = newFundAccount(body, this.#unix());
    if (fa instanceof Response) return fa;
    if (!this.#contacts.has(fa.contact_id)) return invalid("The id provided does not exist");
    const existing = [...this.#fundAccounts.values()].find((x) => sameFundAccount(x, fa));
    if (existing) return jsonResponse(200, existing);
    this.#fundAccounts.set(fa.id, fa);
    return jsonResponse(201, fa);
  }

  #createPayout(body: Json, key: string | null): Response {
    this.#createRequests += 1;
    if (key === null) {
      return invalid(
        "Idempotency key is missing. Include idempotency header and key in the request.",
        "X-Payout-Idempotency",
      );
    }
    if (!IDEMPOTENCY.test(key)) {
      return invalid("The idempotency key is 4-36 letters, digits, spaces, _ or -.", "key");
    }
    const fingerprint = canonical(body);
    const seen = this.#keys.get(key);
    if (seen) {
      if (seen.fingerprint !== fingerprint) {
        return invalid("Different request body sent for the same Idempotency Header", null);
      }
      return jsonResponse(200, this.#payouts.get(seen.payoutId));
    }
    const fa = this.#fundAccounts.get(String(body.fund_account_id));
    const p = newPayout(body, {
      accountNumber: this.#opts.accountNumber,
      fundAccount: fa,
      now: this.#unix(),
    });
    if (p instanceof Response) return p;
    this.#payouts.set(p.id, p);
    this.#keys.set(key, { fingerprint, payoutId: p.id });
    this.#hooks.schedule([this.#emit(p)], this.#defaultWebhooks);
    return jsonResponse(200, p);
  }

  // ---------------------------------------------------------------- webhooks

  #emit(p: Payout): StoredEvent {
    const body = JSON.stringify({
      entity: "event",
      account_id: ACCOUNT_ID,
      event: eventFor(p.status),
      contains: ["payout"],
      payload: { payout: { entity: structuredClone(p) } },
      created_at: this.#unix(),
    });
    const ev: StoredEvent = {
      event_id: randomId("evt_"),
      type: eventFor(p.status),
      body,
      signature: createHmac("sha256", this.#opts.webhookSecret).update(body, "utf8").digest("hex"),
      payoutId: p.id,
    };
    this.#events.push(ev);
    return ev;
  }

  // ---------------------------------------------------------------- control endpoints

  async #control(req: Request, url: URL, path: string): Promise<Response> {
    const m = req.method.toUpperCase();
    const seg = path.split("/").slice(3); // drop "", "_sim", "razorpayx"
    if (seg.length === 3 && seg[0] === "payouts" && seg[2] === "transition" && m === "POST") {
      return this.#transition(seg[1], await readBody(req));
    }
    if (seg.length === 1 && seg[0] === "payouts" && m === "GET") {
      return jsonResponse(200, {
        payouts: [...this.#payouts.values()],
        create_requests: this.#createRequests,
        idempotency_keys: [...this.#keys].map(([key, v]) => ({ key, payout_id: v.payoutId })),
      });
    }
    if (seg.length === 1 && seg[0] === "events" && m === "GET") {
      const id = url.searchParams.get("payout_id");
      return jsonResponse(200, {
        events: this.#events.filter((e) => id === null || e.payoutId === id)
          .map(({ event_id, type, body, signature }) => ({ event_id, type, body, signature })),
      });
    }
    if (seg.length === 1 && seg[0] === "deliveries" && m === "GET") {
      return jsonResponse(200, { deliveries: this.#hooks.deliveries });
    }
    if (seg.length === 1 && seg[0] === "faults") return await this.#faultsRoute(req, m);
    if (seg.length === 1 && seg[0] === "config" && (m === "GET" || m === "POST")) {
      if (m === "POST") {
        const config = readSimConfig(await readBody(req));
        if ("problem" in config) return invalid(config.problem.message, config.problem.param);
        if (config.webhookUrl !== undefined) this.setWebhookUrl(config.webhookUrl ?? undefined);
        if (config.webhooks) this.#defaultWebhooks = config.webhooks;
        if (config.chaos !== undefined) this.#hooks.setChaos(config.chaos);
      }
      return jsonResponse(200, {
        webhook_url: this.#hooks.url ?? null,
        webhooks: this.#defaultWebhooks,
        ...this.#hooks.chaos(),
      });
    }
    return jsonResponse(404, { error: { code: "NOT_FOUND", description: "no such control" } });
  }

  async #faultsRoute(req: Request, m: string): Promise<Response> {
    if (m === "DELETE") this.#faults.clear();
    if (m === "POST") {
      const problem = this.#faults.add((await readBody(req)).faults);
      if (problem) return invalid(problem.message, problem.param);
    }
    return jsonResponse(200, { faults: this.#faults.list() });
  }

  /** {status, reason?, webhooks?}: the bank (or RazorpayX) moves a payout along its lifecycle. */
  #transition(id: string, body: Json): Response {
    const p = this.#payouts.get(id);
    if (!p) return notFoundId();
    const status = body.status as PayoutStatus;
    if (!TRANSITIONS[p.status].includes(status)) {
      return invalid(`A ${p.status} payout cannot become ${String(status)}`, "status");
    }
    const next = moved(p, status, typeof body.reason === "string" ? body.reason : undefined);
    this.#payouts.set(id, next);
    const hooks = { ...this.#defaultWebhooks, ...parseWebhookOptions(body.webhooks) };
    this.#hooks.schedule([this.#emit(next)], hooks);
    return jsonResponse(200, next);
  }

  #unix(): number {
    return Math.floor(this.#now() / 1000);
  }
}
