// The settle demo app: sign in, then every feature through supabase-js functions.invoke, with
// the rows (wallets, orders) read back through RLS. Plain ES module, no framework: copy freely.
import { openCheckout } from "./checkout.js";
import { renderEngagements, setupEscrow } from "./escrow.js";
import { formatMinor, parseMajor } from "./money.js";
import { $, action, describe, el, idle, log, setReady, setStatus } from "./ui.js";

const config = JSON.parse($("settle-config").textContent);
let supabase; // the signed-in client
let token;
let session = { email: "", account_id: "" }; // who is signed in, and their personal account
let catalog = { currencies: [], plans: [] };

// Section - talking to settle

/** An error the API answered ({"error":{code,message}}), shown as "400 invalid_request: …". */
class ApiError extends Error {
  constructor(status, error) {
    super(`${status} ${error?.code ?? "error"}: ${error?.message ?? "request failed"}`);
    this.status = status;
    this.code = error?.code;
  }
}

/** Calls a settle function as the signed-in user; resolves with the JSON body or throws. */
async function invoke(name, { method = "POST", body } = {}) {
  const { data, error } = await supabase.functions.invoke(name, { method, body });
  if (!error) return data;
  const res = error.context; // FunctionsHttpError carries the Response
  if (!(res instanceof Response)) throw error;
  const payload = await res.json().catch(() => ({}));
  throw new ApiError(res.status, payload.error);
}

/**
 * Reads the user's rows. Locally there is no PostgREST, so the dev server answers /dev/<name>
 * as the user (RLS applies). In production: await supabase.from("orders").select("*"). Also the
 * dev-only helpers (POST /dev/escrow-settle).
 */
async function read(name, method = "GET") {
  const res = await fetch(`/dev/${name}`, {
    method,
    headers: { apikey: config.anon_key, authorization: `Bearer ${token}` },
  });
  const body = await res.json();
  if (!res.ok) throw new ApiError(res.status, body.error);
  return body;
}

const exponentOf = (currency) => catalog.currencies.find((c) => c.code === currency)?.exponent ?? 2;
const money = (minor, currency) => formatMinor(minor, currency, exponentOf(currency));
const day = (iso) => iso ? new Date(iso).toISOString().slice(0, 10) : "";

// Section - rendering what the database says

function renderWallets({ wallets }) {
  const items = wallets.map((w) =>
    el(
      "li",
      { "data-currency": w.currency, "data-minor": String(w.balance) },
      money(w.balance, w.currency),
    )
  );
  $("wallets").replaceChildren(...(items.length ? items : [el("li", {}, "no wallet yet")]));
}

function orderLabel(o) {
  if (o.purpose === "plan") return catalog.plans.find((p) => p.id === o.plan_id)?.name ?? o.plan_id;
  if (o.purpose === "escrow") return `escrow funding (engagement ${o.engagement_id.slice(0, 8)})`;
  return o.purpose === "wallet_topup" ? `${o.currency} wallet top-up` : o.product_id;
}

/**
 * Refund for a paid order; Pay (again) for an unpaid one whose checkout this page holds. Escrow
 * money leaves only by settlement or cancellation, so an escrow order has no Refund button.
 */
function orderAction(o) {
  const button = (cls, text, onclick) =>
    el("button", { class: `act ${cls}`, disabled: !idle(), onclick }, text);
  if ((o.status === "paid" || o.status === "partially_refunded") && o.purpose !== "escrow") {
    return button("refund", "Refund", () => refund(o));
  }
  if ((o.status === "created" || o.status === "failed") && checkouts.has(o.id)) {
    return button("pay-again", o.status === "failed" ? "Pay again" : "Pay", () => payAgain(o.id));
  }
  return "";
}

function renderOrders({ orders }) {
  $("orders").replaceChildren(...orders.map((o) => {
    const refunded = o.amount_refunded ? ` (${money(o.amount_refunded, o.currency)} back)` : "";
    return el(
      "tr",
      { "data-order-id": o.id, "data-status": o.status },
      el("td", {}, day(o.created_at)),
      el("td", {}, orderLabel(o)),
      el("td", {}, money(o.amount, o.currency)),
      el("td", {}, o.gateway),
      el(
        "td",
        {},
        el("span", { class: "badge status-of", "data-status": o.status }, o.status),
        refunded,
      ),
      el("td", {}, orderAction(o)),
    );
  }));
}

function renderSubscription(s) {
  const sub = s.subscription;
  const line = $("subscription");
  line.dataset.status = sub?.status ?? "none";
  line.dataset.periodEnd = sub?.current_period_end ?? "";
  const plan = sub && (catalog.plans.find((p) => p.id === sub.plan_id)?.name ?? sub.plan_id);
  line.textContent = !sub ? "none (free plan)" : `${plan}: ${sub.status} until ` +
    `${day(sub.current_period_end)}${sub.cancel_at_period_end ? ", then cancels" : ""}`;
  $("cancel-subscription").hidden = !(sub?.status === "active" && !sub.cancel_at_period_end);
}

function renderCards({ payment_methods: cards }) {
  $("cards").replaceChildren(
    ...(cards.length ? [] : [el("li", {}, "no saved cards")]),
    ...cards.map((c) =>
      el(
        "li",
        { "data-id": c.id, "data-last4": c.last4, "data-default": String(c.is_default) },
        `${c.brand} •••• ${c.last4}, expires ${c.exp_month}/${c.exp_year}`,
        c.is_default ? " (default) " : " ",
        c.is_default ? "" : el("button", {
          class: "act make-default",
          disabled: !idle(),
          onclick: () => makeDefault(c),
        }, "Make default"),
        el("button", {
          class: "act delete",
          disabled: !idle(),
          onclick: () => deleteCard(c),
        }, "Delete"),
      )
    ),
  );
}

function renderPlans() {
  $("plans").replaceChildren(...catalog.plans.map((p) =>
    el(
      "li",
      { "data-plan": p.id },
      `${p.name}: ${money(p.amount, p.currency)} per ${p.billing_interval} `,
      ...["razorpay", "stripe"].map((gateway) =>
        el("button", {
          class: "act buy",
          "data-gateway": gateway,
          disabled: !idle(),
          onclick: () => buy({ gateway, purpose: "plan", plan_id: p.id }, p.name),
        }, `Buy with ${gateway === "razorpay" ? "Razorpay" : "Stripe"}`)
      ),
    )
  ));
}

async function refresh() {
  const [wallets, orders, subscription, cards, engagements] = await Promise.all([
    read("wallets"),
    read("orders"),
    invoke("subscriptions", { method: "GET" }),
    invoke("payment-methods", { method: "GET" }),
    invoke("engagements", { method: "GET" }),
  ]);
  renderWallets(wallets);
  renderOrders(orders);
  renderSubscription(subscription);
  renderCards(cards);
  renderEngagements(engagements);
}

/**
 * Waits (bounded) until the database shows what a gateway webhook changes. Declines and saved
 * cards reach settle as webhooks, after the checkout has answered; the page asks again rather
 * than guess. (With Supabase Realtime the page could subscribe to the row instead.)
 */
async function until(fetchValue, done, { tries = 40, everyMs = 250 } = {}) {
  for (let i = 0;; i++) {
    const value = await fetchValue();
    if (done(value) || i >= tries) return value;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// Section - actions

/** Checkouts of the orders created on this page, so a failed or closed one can be paid later. */
const checkouts = new Map(); // order id → { order, checkout }

/** Creates an order, then opens its checkout. */
function buy(body, label) {
  return action(
    "checkout-status",
    `creating the ${body.gateway} order…`,
    () => checkoutOrder(body, label, "checkout-status"),
  );
}

/** Inside an action: creates the order, opens its checkout, answers what pay() answers. */
async function checkoutOrder(body, label, statusId) {
  const { order, checkout } = await invoke("create-order", { body });
  log(`created ${order.id} (${order.status}) at ${order.gateway}`);
  checkouts.set(order.id, { order: { ...order, label }, checkout });
  await refresh();
  return await pay(order.id, statusId);
}

/** Opens an order's checkout again (after a decline, or after it was closed). */
function payAgain(orderId) {
  return action("checkout-status", "opening the checkout…", () => pay(orderId));
}

/**
 * Shows the checkout and reports what the customer did, with the order's status from the DB:
 * { state?, text } as an action answers (no state: paid).
 */
async function pay(orderId, statusId = "checkout-status") {
  const { order, checkout } = checkouts.get(orderId);
  setStatus(statusId, "loading", `waiting for the customer at ${order.gateway}…`);
  const result = await openCheckout(config, order, checkout);
  if (result.kind === "closed") {
    await refresh();
    return { state: "cancelled", text: "checkout closed: nothing was charged" };
  }
  if (result.kind === "failed") {
    setStatus(statusId, "loading", `${result.message}; waiting for settle to hear…`);
    const { orders } = await until(
      () => read("orders"),
      ({ orders }) => orders.find((o) => o.id === order.id)?.status !== "created",
    );
    await refresh();
    const status = orders.find((o) => o.id === order.id)?.status;
    return { state: "failure", text: `payment failed: ${result.message} (order ${status})` };
  }
  setStatus(statusId, "loading", "verifying the payment…");
  const verified = await invoke("verify", { body: result.proof });
  await refresh();
  return { text: `${order.label}: order ${verified.order.status}` };
}

function refund(order) {
  return action("orders-status", "refunding…", async () => {
    const { refund, order: after } = await invoke("refunds", { body: { order_id: order.id } });
    await refresh();
    return {
      text: `refund ${refund.status}: ${
        money(refund.amount, refund.currency)
      }, order ${after.status}`,
    };
  });
}

function cancelSubscription() {
  return action("plan-status", "cancelling the subscription…", async () => {
    const { subscription } = await invoke("subscriptions/cancel", {
      body: { at_period_end: true },
    });
    await refresh();
    return { text: `subscription cancels on ${day(subscription.current_period_end)}` };
  });
}

/** Saves a card: a SetupIntent, confirmed at Stripe (simulated), then the webhook saves it. */
function addCard() {
  return action("cards-status", "saving the card…", async () => {
    const before = (await invoke("payment-methods", { method: "GET" })).payment_methods.length;
    const setup = await invoke("payment-methods/setup", { body: {} });
    // Stands in for stripe.confirmCardSetup(setup.client_secret, { payment_method: { card } }).
    const res = await fetch(
      `${config.stripe_simulator_url}/_sim/stripe/setup_intents/${setup.setup_intent_id}/confirm`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ card: $("card-number").value }),
      },
    );
    const intent = await res.json();
    if (!res.ok || intent.status !== "succeeded") {
      const message = intent.error?.message ?? intent.last_setup_error?.message ?? intent.status;
      return { state: "failure", text: `card not saved: ${message}` };
    }
    const cards = await until(
      () => invoke("payment-methods", { method: "GET" }),
      ({ payment_methods }) => payment_methods.length > before,
    );
    await refresh();
    const card = cards.payment_methods.at(-1);
    return cards.payment_methods.length > before
      ? { text: `saved ${card.brand} •••• ${card.last4}` }
      : { state: "failure", text: "Stripe saved the card but settle has not heard yet" };
  });
}

function makeDefault(card) {
  return action("cards-status", "making it the default…", async () => {
    await invoke(`payment-methods/${card.id}/default`, { body: {} });
    await refresh();
    return { text: `•••• ${card.last4} is the default` };
  });
}

function deleteCard(card) {
  return action("cards-status", "deleting the card…", async () => {
    await invoke(`payment-methods/${card.id}`, { method: "DELETE" });
    await refresh();
    return { text: `deleted •••• ${card.last4}` };
  });
}

function topUp(event) {
  event.preventDefault();
  const currency = $("currency").value;
  const gateway = $("gateway").value;
  let amount;
  try {
    amount = parseMajor($("amount").value, exponentOf(currency));
  } catch (err) {
    setStatus("checkout-status", "failure", describe(err));
    return;
  }
  const label = `${money(amount, currency)} top-up`;
  return buy({ gateway, purpose: "wallet_topup", amount, currency }, label);
}

// Section - signing in

/**
 * Stands in for Supabase Auth (supabase.auth.signInWithPassword(...) in production): the dev
 * server hands out a token for a seeded user, and the client sends it with every call.
 */
async function signIn(email) {
  setReady(false);
  setStatus("sign-in-status", "loading", `signing in as ${email}…`);
  const res = await fetch(`/dev/token?email=${encodeURIComponent(email)}`);
  const me = await res.json();
  if (!res.ok) {
    $("who").textContent = "nobody";
    setStatus(
      "sign-in-status",
      "failure",
      `sign-in failed for ${email}: ${me.error?.message}`,
    );
    return;
  }
  token = me.access_token;
  session = { email, account_id: me.account_id };
  supabase = globalThis.supabase.createClient(config.url, config.anon_key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: { headers: { Authorization: `Bearer ${token}` } },
  });
  try {
    catalog = await read("catalog");
    $("currency").replaceChildren(...catalog.currencies.map((c) => el("option", {}, c.code)));
    $("currency").value = "INR";
    $("escrow-currency").replaceChildren(
      ...catalog.currencies.map((c) => el("option", {}, c.code)),
    );
    $("escrow-currency").value = "INR";
    $("my-account").textContent = session.account_id;
    // The seeded pair pay each other; any other user names a payee by email.
    $("escrow-payee").value = email === "bob@example.com" ? "alice@example.com" : "bob@example.com";
    renderPlans();
    await refresh();
  } catch (err) {
    setStatus("sign-in-status", "failure", describe(err));
    return;
  }
  $("who").textContent = email;
  setStatus("sign-in-status", "success", "signed in");
  setReady(true);
}

setupEscrow({
  invoke,
  read,
  money,
  exponentOf,
  refresh,
  checkoutOrder,
  session: () => session,
});
$("topup").onsubmit = topUp;
$("add-card").onclick = addCard;
$("cancel-subscription").onclick = cancelSubscription;
$("sign-in").onsubmit = (event) => {
  event.preventDefault();
  signIn($("email").value || "alice@example.com");
};
const email = new URLSearchParams(location.search).get("email") ?? "alice@example.com";
$("email").value = email;
signIn(email); // not awaited: the page loads while it signs in
