// Stateful in-memory RazorpayX simulator (contacts, fund accounts, payouts; /_sim controls) as a
// fetch handler, mounted like the Razorpay one (dev/simulator/razorpay/mod.ts explains the contract:
// paths relative to the mount point, a "reset" fault throws SimulatedConnectionReset).
//
// A payout is created "processing" (payout.initiated is sent) and stays there until a control
// call moves it along its lifecycle (processed, reversed, failed, ...), each move signed and sent
// as payout.<status> with the webhook options (duplicate, reorder, delay, drop, retry) and chaos
// the other simulators share. X-Payout-Idempotency is mandatory, as in live RazorpayX.
// Layout: ../README.md.
import { dispatch } from "../common/mod.ts";
import { handleApi } from "./api.ts";
import { handleControl } from "./control.ts";
import { BadBody, invalid, notFoundUrl, serverError } from "./errors.ts";
import { API_ROUTES, CONTROL_ROUTES } from "./routes.ts";
import { type RazorpayXSimOptions, RazorpayXState } from "./state.ts";

export type { RazorpayXSimOptions } from "./state.ts";

export class RazorpayXSimulator {
  readonly #s: RazorpayXState;

  constructor(opts: RazorpayXSimOptions) {
    this.#s = new RazorpayXState(opts);
  }

  setWebhookUrl(url: string | undefined): void {
    this.#s.hooks.url = url;
  }

  idle(): Promise<void> {
    return this.#s.hooks.idle();
  }

  async fetch(req: Request): Promise<Response> {
    const s = this.#s;
    try {
      return await dispatch({
        faults: s.faults,
        serverError,
        control: {
          when: (path) => path.startsWith("/_sim/razorpayx"),
          handle: (req, url, path) => handleControl(s, CONTROL_ROUTES, req, url, path),
        },
        api: {
          when: (path) => path.startsWith("/v1/"),
          handle: (req, url, path) => handleApi(s, API_ROUTES, req, url, path),
        },
        notFound: notFoundUrl,
      }, req);
    } catch (e) {
      if (e instanceof BadBody) return invalid(e.message);
      throw e;
    }
  }
}
