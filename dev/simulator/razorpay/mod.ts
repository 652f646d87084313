// Stateful in-memory Razorpay simulator (real /v1 wire formats, /_sim controls) as a fetch handler.
//
// Mounting contract (the simulator has no server of its own):
// - Pass requests whose URL path is relative to the mount point ("/v1/orders", "/_sim/razorpay/...").
// - A "reset" fault makes fetch() throw SimulatedConnectionReset. The mount point must turn that into a
//   dropped connection. Deno.serve cannot drop a connection before the status line, so the closest it
//   can get is to answer with simulatedResetResponse() (status line, then the body stream errors and
//   Deno cuts the connection; the client's body read fails). A node:http mount can call
//   req.socket.destroy() for a true reset before any byte.
// - A "timeout" fault answers only when req.signal aborts (the client went away) or hold_ms passes
//   (default 60 s), so the mount must hand the original request's signal through and must not put its
//   own short deadline on simulator requests.
// Layout: ../README.md.
import { dispatch } from "../common/mod.ts";
import { handleApi } from "./api.ts";
import { handleControl } from "./control.ts";
import { notFoundUrl, serverError } from "./errors.ts";
import { API_ROUTES, CONTROL_ROUTES } from "./routes.ts";
import { type RazorpaySimOptions, RazorpayState } from "./state.ts";

export type {
  FaultMode,
  FaultSpec,
  SimDeliveryRecord,
  SimEventRecord,
  WebhookOptions,
} from "../common/mod.ts";
export { SimulatedConnectionReset, simulatedResetResponse } from "../common/mod.ts";
export { razorpayHmacHex } from "./events.ts";
export type { RazorpaySimOptions } from "./state.ts";

export class RazorpaySimulator {
  readonly #s: RazorpayState;

  constructor(opts: RazorpaySimOptions) {
    this.#s = new RazorpayState(opts);
  }

  setWebhookUrl(url: string | undefined): void {
    this.#s.hooks.url = url;
  }

  idle(): Promise<void> {
    return this.#s.hooks.idle();
  }

  fetch(req: Request): Promise<Response> {
    const s = this.#s;
    return dispatch({
      faults: s.faults,
      serverError,
      control: {
        when: (path) => path.startsWith("/_sim/"),
        handle: (req, url, path) => handleControl(s, CONTROL_ROUTES, req, url, path),
      },
      api: {
        when: (path) => path === "/v1" || path.startsWith("/v1/"),
        handle: (req, url, path) => handleApi(s, API_ROUTES, req, url, path),
      },
      notFound: notFoundUrl,
    }, req);
  }
}
