// Stand-ins for the gateways' checkout UIs, which cannot load with the network closed. They
// drive the local simulators' /_sim controls the way a customer would drive the real thing.
//
// In production, replace openCheckout with the gateway's own UI and keep everything else:
// - Razorpay: new Razorpay({ key: checkout.key_id, order_id: checkout.order_id,
//     handler: (proof) => resolve({ kind: "paid", proof }),
//     modal: { ondismiss: () => resolve({ kind: "closed" }) } })
//     .on("payment.failed", (r) => resolve({ kind: "failed", message: r.error.description }))
//     .open();
// - Stripe: stripe.confirmPayment({ clientSecret: checkout.client_secret, elements, ... }),
//     then { kind: "paid", proof: { payment_intent_id: checkout.payment_intent_id } }.
// Either way the proof goes to the verify function, which asks the gateway itself.
import { $ } from "./ui.js";

const TEST_CARD = "4242424242424242";

async function post(url, body) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { ok: res.ok, body: await res.json() };
}

/** The customer pays (outcome "success") or fails to pay at Razorpay's simulated Checkout. */
async function razorpay(config, checkout, outcome) {
  const url = `${config.razorpay_simulator_url}/_sim/razorpay/orders/${checkout.order_id}/pay`;
  const { body } = await post(url, { outcome });
  if (body.error) return { kind: "failed", message: body.error.description };
  return { kind: "paid", proof: body }; // razorpay_order_id, razorpay_payment_id, signature
}

/** The customer confirms the PaymentIntent with a test card, as Stripe.js would. */
async function stripe(config, checkout, outcome) {
  const url =
    `${config.stripe_simulator_url}/_sim/stripe/payment_intents/${checkout.payment_intent_id}/confirm`;
  const { ok, body } = await post(url, { outcome, card: TEST_CARD });
  if (!ok) return { kind: "failed", message: body.error?.message ?? "payment failed" };
  if (body.status === "succeeded" || body.status === "requires_capture") {
    return { kind: "paid", proof: { payment_intent_id: body.id } };
  }
  return { kind: "failed", message: body.last_payment_error?.message ?? body.status };
}

const GATEWAYS = { razorpay, stripe };

/**
 * Shows the checkout for an order and resolves with what the customer did:
 * { kind: "paid", proof } | { kind: "failed", message } | { kind: "closed" }.
 * The first click disables all three buttons, so a double click pays once.
 */
export function openCheckout(config, order, checkout) {
  const buttons = [$("pay"), $("fail"), $("close")];
  $("checkout-title").textContent = `${order.gateway} checkout (simulated)`;
  $("checkout-summary").textContent = `${order.label} · order ${order.id}`;
  $("checkout").hidden = false;
  for (const b of buttons) b.disabled = false;
  return new Promise((resolve) => {
    const choose = (run) => () => {
      if (buttons[0].disabled) return;
      for (const b of buttons) b.disabled = true;
      run()
        .catch((err) => ({ kind: "failed", message: `checkout: ${err.message}` }))
        .then((result) => {
          $("checkout").hidden = true;
          resolve(result);
        });
    };
    const pay = (outcome) => () => GATEWAYS[order.gateway](config, checkout, outcome);
    $("pay").onclick = choose(pay("success"));
    $("fail").onclick = choose(pay("failure"));
    $("close").onclick = choose(() => Promise.resolve({ kind: "closed" }));
  });
}
