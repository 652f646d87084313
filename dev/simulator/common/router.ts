// A route table: method + path pattern → handler, matched segment by segment.
//
// Patterns are whole paths as the gateway's API reference writes them, with ":name" for a path
// parameter ("/v1/payment_intents/:id/capture"). A parameter matches any one segment, the empty
// one included (the handler then answers "no such ..." as the gateway does). Routes are tried in
// table order, so a literal route that shadows a parameter ("/v1/customers/search" before
// "/v1/customers/:id") must come first.

/** What a route handler receives besides the simulator's state (Razorpay, RazorpayX, Stripe's controls). */
export interface SimCall {
  req: Request;
  url: URL;
  /** Path parameters by name, from the route's pattern. */
  ids: Record<string, string>;
}

export interface Route<H> {
  method: string;
  pattern: string;
  handler: H;
}

export interface RouteMatch<H> {
  handler: H;
  /** The path parameters by name, e.g. {id: "pi_123"} for "/v1/payment_intents/:id". */
  ids: Record<string, string>;
}

export function route<H>(method: string, pattern: string, handler: H): Route<H> {
  return { method: method.toUpperCase(), pattern, handler };
}

export class Router<H> {
  readonly #routes: { method: string; segs: string[]; handler: H }[];

  constructor(routes: readonly Route<H>[]) {
    this.#routes = routes.map((r) => ({
      method: r.method,
      segs: r.pattern.split("/"),
      handler: r.handler,
    }));
  }

  /** The first route for this (upper-case) method and path, or undefined. */
  match(method: string, path: string): RouteMatch<H> | undefined {
    const segs = path.split("/");
    for (const r of this.#routes) {
      if (r.method !== method || r.segs.length !== segs.length) continue;
      const ids: Record<string, string> = {};
      const hit = r.segs.every((s, i) => {
        if (!s.startsWith(":")) return s === segs[i];
        ids[s.slice(1)] = segs[i];
        return true;
      });
      if (hit) return { handler: r.handler, ids };
    }
    return undefined;
  }
}

/** The handlers of the controls every simulator has. */
export interface CommonControls<H> {
  events: H;
  deliveries: H;
  listFaults: H;
  addFaults: H;
  clearFaults: H;
  getConfig: H;
  setConfig: H;
}

/**
 * The controls every simulator has, under its prefix ("/_sim/razorpay"): GET events and
 * deliveries, GET/POST/DELETE faults, GET/POST config.
 */
export function commonControls<H>(prefix: string, h: CommonControls<H>): Route<H>[] {
  return [
    route("GET", `${prefix}/events`, h.events),
    route("GET", `${prefix}/deliveries`, h.deliveries),
    route("GET", `${prefix}/faults`, h.listFaults),
    route("POST", `${prefix}/faults`, h.addFaults),
    route("DELETE", `${prefix}/faults`, h.clearFaults),
    route("GET", `${prefix}/config`, h.getConfig),
    route("POST", `${prefix}/config`, h.setConfig),
  ];
}
