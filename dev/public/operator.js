// The local operator page: payment_stats as a chart, the ledger audit, dead letters with replay,
// and reconciliation on demand. It holds the service role key, so it exists only locally.
import { formatMinor } from "./money.js";
import { $, action, el, idle, setReady } from "./ui.js";

const config = JSON.parse($("settle-config").textContent);
const supabase = globalThis.supabase.createClient(config.url, config.service_role_key, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
});
let exponents = {};

async function invoke(name, body = {}) {
  const { data, error } = await supabase.functions.invoke(name, { body });
  if (!error) return data;
  const payload = await error.context?.json?.().catch(() => ({}));
  throw new Error(`${error.context?.status} ${payload?.error?.code}: ${payload?.error?.message}`);
}

async function dev(path, method = "GET") {
  const res = await fetch(`/dev/operator/${path}`, {
    method,
    headers: { authorization: `Bearer ${config.service_role_key}` },
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`${res.status} ${body.error?.code}: ${body.error?.message}`);
  return body;
}

const money = (minor, currency) => formatMinor(minor, currency, exponents[currency] ?? 2);

/** One pair of bars per day: paid (green) and failed (red) orders, all gateways together. */
function chart(stats) {
  const days = new Map();
  for (const r of stats) {
    const d = days.get(r.day) ?? { paid: 0, failed: 0 };
    d.paid += r.orders_paid;
    d.failed += r.orders_failed;
    days.set(r.day, d);
  }
  const max = Math.max(1, ...[...days.values()].flatMap((d) => [d.paid, d.failed]));
  const top = 16, height = 120, bar = 14, group = 44;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", String(Math.max(200, days.size * group + 20)));
  svg.setAttribute("height", String(top + height + 20));
  const add = (tag, attrs, text) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  [...days].forEach(([day, d], i) => {
    const x = 10 + i * group;
    for (const [kind, n, dx] of [["paid", d.paid, 0], ["failed", d.failed, bar + 2]]) {
      const h = Math.round((n / max) * height);
      add("rect", {
        class: kind,
        x: x + dx,
        y: top + height - h,
        width: bar,
        height: h,
        "data-day": day,
        "data-count": n,
      });
      add("text", { x: x + dx + 2, y: top + height - h - 3 }, String(n));
    }
    add("text", { x, y: top + height + 14 }, day.slice(5));
  });
  $("chart").replaceChildren(days.size ? svg : "no orders in the last 14 days");
}

function render({ currencies, payment_stats: stats, ledger_audit: audit, dead_letters: dead }) {
  exponents = Object.fromEntries(currencies.map((c) => [c.code, c.exponent]));
  chart(stats);
  $("stats").replaceChildren(...stats.map((r) =>
    el(
      "tr",
      { "data-day": r.day, "data-gateway": r.gateway, "data-currency": r.currency },
      ...[r.day, r.gateway, r.orders_created, r.orders_paid, r.orders_failed]
        .map((v) => el("td", {}, String(v))),
      el("td", {}, r.success_rate === null ? "–" : `${r.success_rate}`),
      ...[r.gross, r.refunded, r.net].map((v) => el("td", {}, money(v, r.currency))),
    )
  ));
  $("audit").dataset.count = String(audit.length);
  $("audit").textContent = audit.length
    ? `${audit.length} violated invariant(s)`
    : "healthy: no violated invariants";
  $("audit-rows").replaceChildren(
    ...audit.map((a) => el("li", {}, `${a.invariant} ${a.subject}: ${a.detail}`)),
  );
  const none = el("tr", {}, el("td", { colSpan: 6 }, "none: every delivery went through"));
  $("dead").replaceChildren(
    ...(dead.length ? [] : [none]),
    ...dead.map((d) =>
      el(
        "tr",
        { "data-delivery": d.id },
        el("td", {}, d.id),
        el("td", {}, `${d.type} ${d.subject_type} ${d.subject_id}`),
        el("td", {}, d.subscriber),
        el("td", {}, `${d.attempts} (replayed ${d.replays}×)`),
        el("td", {}, `${d.last_http_status ?? ""} ${d.last_error ?? ""}`),
        el(
          "td",
          {},
          el("button", {
            class: "act replay",
            disabled: !idle(),
            onclick: () => replay(d.id),
          }, "Replay"),
        ),
      )
    ),
  );
}

const reload = () =>
  action("overview-status", "loading…", async () => {
    render(await dev("overview"));
    return { text: `loaded ${new Date().toISOString().slice(11, 19)} UTC` };
  });

const replay = (id) =>
  action("dead-status", `replaying delivery ${id}…`, async () => {
    await dev(`deliveries/${id}/replay`, "POST");
    render(await dev("overview"));
    return { text: `delivery ${id} is pending again` };
  });

$("reload").onclick = reload;
$("dispatch").onclick = () =>
  action("dead-status", "dispatching…", async () => {
    const summary = await invoke("outbox-dispatch");
    render(await dev("overview"));
    return { text: `dispatched: ${JSON.stringify(summary)}` };
  });
$("reconcile").onclick = () =>
  action("reconcile-status", "reconciling…", async () => {
    const summary = await invoke("reconcile");
    $("reconcile-result").textContent = `last run ${new Date().toISOString()}\n` +
      JSON.stringify(summary, null, 2);
    render(await dev("overview"));
    return { text: `done in ${summary.duration_ms} ms` };
  });
setReady(true);
reload();
