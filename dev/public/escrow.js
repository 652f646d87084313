// Marketplace escrow on the demo page: the signed-in user pays another account through an
// engagement (create, fund at the gateway's checkout, complete with a rating), and the payee sees
// what they will receive and when, then the settled split and their wallet's credit.
//
// Calls: POST /engagements, POST /create-order {purpose:"escrow"}, POST /engagements/{id}/complete,
// GET /engagements (both sides, through functions.invoke). Dev-only: GET /dev/accounts?email= (the
// payee's account id by email; a real marketplace already knows it) and POST /dev/escrow-settle
// (the scheduled settlement now, run by the dev server with the service role key).
import { parseMajor } from "./money.js";
import { $, action, describe, el, idle, log, setStatus } from "./ui.js";

let api; // what app.js lends: invoke, read, money, exponentOf, refresh, checkoutOrder, session

const when = (iso) => iso ? `${iso.slice(0, 16).replace("T", " ")} UTC` : "";

/** "0".."720" → a number of hours; anything else is refused before sending. */
function parseHours(text) {
  const t = String(text).trim();
  if (!/^\d{1,3}$/.test(t)) throw new Error("hold: a whole number of hours from 0 to 720");
  return Number(t);
}

// Section - rendering

function released(e) {
  if (e.status === "settled") return when(e.settled_at);
  if (e.release_at) return `from ${when(e.release_at)}`;
  if (e.status === "funded") return `${e.hold_hours} h after completion`;
  return "";
}

/** The split once settled; before that what the payee will receive with the rating so far. */
function split(e, side) {
  const m = (minor) => api.money(minor, e.currency);
  if (e.status === "settled") {
    const back = e.penalty_amount > 0 && side === "payer" ? " (refunded to you)" : "";
    const mine = side === "payee" ? `you received ${m(e.payee_amount)}: ` : "";
    return `${mine}payee ${m(e.payee_amount)} · fee ${m(e.fee_amount)} · penalty ` +
      `${m(e.penalty_amount)}${back}`;
  }
  if (e.status === "canceled" || e.expected_payee_amount === null) return "";
  const due = e.release_at ? ` from ${when(e.release_at)}` : " once completed and released";
  return side === "payee"
    ? `you will receive ${m(e.expected_payee_amount)}${due}`
    : `the payee gets ${m(e.expected_payee_amount)} so far`;
}

function actions(e, side) {
  if (side !== "payer") return [];
  const button = (cls, text, onclick, extra = {}) =>
    el("button", { class: `act ${cls}`, disabled: !idle(), onclick, ...extra }, text);
  if (e.status === "awaiting_payment") {
    return ["razorpay", "stripe"].map((gateway) =>
      button(
        "fund",
        `Fund with ${gateway === "razorpay" ? "Razorpay" : "Stripe"}`,
        () => fund(e, gateway),
        { "data-gateway": gateway },
      )
    );
  }
  if (e.status !== "funded") return [];
  const rating = el(
    "select",
    { class: "rating", "aria-label": "rating" },
    ...[5, 4, 3, 2, 1].map((n) => el("option", { value: String(n) }, `${n} ★`)),
  );
  return [rating, button("complete", "Complete", () => complete(e, Number(rating.value)))];
}

export function renderEngagements({ engagements }) {
  const me = api.session().account_id;
  const rows = engagements.map((e) => {
    const side = e.payer_account_id === me ? "payer" : "payee";
    const other = side === "payer" ? e.payee_account_id : e.payer_account_id;
    return el(
      "tr",
      {
        "data-engagement-id": e.id,
        "data-status": e.status,
        "data-side": side,
        "data-release-at": e.release_at ?? "",
        "data-expected": String(e.expected_payee_amount ?? ""),
        "data-payee-amount": String(e.payee_amount ?? ""),
        "data-fee": String(e.fee_amount ?? ""),
        "data-penalty": String(e.penalty_amount ?? ""),
      },
      el("td", {}, when(e.created_at).slice(0, 10)),
      el("td", {}, e.title ?? "", e.rating ? ` (rated ${e.rating})` : ""),
      el(
        "td",
        {},
        side === "payer" ? `you pay ${other.slice(0, 8)}` : `${other.slice(0, 8)} pays you`,
      ),
      el("td", {}, api.money(e.amount, e.currency)),
      el("td", {}, el("span", { class: "badge status-of", "data-status": e.status }, e.status)),
      el("td", { class: "released" }, released(e)),
      el("td", { class: "split" }, split(e, side)),
      el("td", {}, ...actions(e, side)),
    );
  });
  const none = el("tr", {}, el("td", { colSpan: 8 }, "no engagements yet"));
  $("engagements").replaceChildren(...(rows.length ? rows : [none]));
}

// Section - actions

/** Inside an action: pays the engagement's funding order at the checkout, reports the status. */
async function payInto(e, gateway) {
  const label = `${e.title ?? "engagement"}: ${api.money(e.amount, e.currency)} into escrow`;
  const body = { gateway, purpose: "escrow", engagement_id: e.id };
  const paid = await api.checkoutOrder(body, label, "escrow-status");
  if (paid.state === "cancelled") {
    return { state: "cancelled", text: `${paid.text}; the engagement awaits payment` };
  }
  if (paid.state) return paid;
  const { engagement } = await api.invoke(`engagements/${e.id}`, { method: "GET" });
  await api.refresh();
  return {
    text: `engagement ${engagement.status}: ${
      api.money(engagement.amount, engagement.currency)
    } held until you complete it`,
  };
}

function create(event) {
  event.preventDefault();
  if (!idle()) return;
  const currency = $("escrow-currency").value;
  const payee = $("escrow-payee").value.trim();
  const title = $("escrow-title").value.trim();
  let amount, hold;
  try {
    if (!payee) throw new Error("enter the payee's email");
    amount = parseMajor($("escrow-amount").value, api.exponentOf(currency));
    hold = parseHours($("escrow-hold").value);
  } catch (err) {
    setStatus("escrow-status", "failure", describe(err));
    return;
  }
  const gateway = $("escrow-gateway").value;
  return action("escrow-status", `looking up ${payee}…`, async () => {
    const { account_id } = await api.read(`accounts?email=${encodeURIComponent(payee)}`);
    setStatus("escrow-status", "loading", "creating the engagement…");
    const body = { payee_account_id: account_id, amount, currency, hold_hours: hold };
    if (title) body.title = title;
    const { engagement } = await api.invoke("engagements", { body });
    log(`engagement ${engagement.id} ${engagement.status} to ${payee}`);
    return await payInto(engagement, gateway);
  });
}

function fund(e, gateway) {
  return action("escrow-status", `creating the ${gateway} order…`, () => payInto(e, gateway));
}

function complete(e, rating) {
  return action("escrow-status", `completing with rating ${rating}…`, async () => {
    const { engagement: d } = await api.invoke(`engagements/${e.id}/complete`, {
      body: { rating },
    });
    await api.refresh();
    return {
      text: `completed with rating ${rating}: the payee gets ${
        api.money(d.expected_payee_amount, d.currency)
      } from ${when(d.release_at)}`,
    };
  });
}

function settleNow() {
  return action("escrow-status", "running escrow-settle…", async () => {
    const r = await api.read("escrow-settle", "POST");
    await api.refresh();
    const errors = r.refund_errors ? `, ${r.refund_errors} refund error(s)` : "";
    return {
      state: r.refund_errors ? "failure" : "success",
      text: `escrow-settle: ${r.settled} settled, ${r.refunds_created} refund(s) sent, ` +
        `${r.skipped} skipped${errors}`,
    };
  });
}

/** Wires the panel; `deps` are app.js's calls and state (see `api` above). */
export function setupEscrow(deps) {
  api = deps;
  $("escrow").onsubmit = create;
  $("escrow-settle").onclick = settleNow;
}
