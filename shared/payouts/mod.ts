// The payout gateways of an app, built from its config on first use.
import type { App } from "../app.ts";
import { HttpError } from "../http.ts";
import { createRazorpayXGateway } from "./razorpayx/mod.ts";
import { createStripeConnectGateway, type StripeConnectGateway } from "./stripe/mod.ts";
import type { PayoutGateway, PayoutGatewayName } from "./types.ts";

export interface PayoutGateways {
  razorpayx?: ReturnType<typeof createRazorpayXGateway>;
  /** Stripe Connect: configured with Stripe and STRIPE_CONNECT_WEBHOOK_SECRET. */
  stripe?: StripeConnectGateway;
}

const built = new WeakMap<App, PayoutGateways>();

export function payoutGateways(app: App): PayoutGateways {
  let g = built.get(app);
  if (!g) {
    g = {};
    if (app.config.razorpayx) g.razorpayx = createRazorpayXGateway(app.config.razorpayx);
    const stripe = app.config.stripe;
    if (stripe?.connect) {
      g.stripe = createStripeConnectGateway({ ...stripe, connect: stripe.connect }, {
        now: () => app.now(),
      });
    }
    built.set(app, g);
  }
  return g;
}

export function payoutGateway(app: App, name: PayoutGatewayName): PayoutGateway {
  const g = payoutGateways(app)[name];
  if (!g) throw new HttpError(400, "invalid_request", `payout gateway ${name} is not configured`);
  return g;
}
