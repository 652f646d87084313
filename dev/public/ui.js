// Small DOM helpers shared by the demo and operator pages: elements, status lines, and the
// one-action-at-a-time guard that keeps a double click from submitting twice.

export const $ = (id) => document.getElementById(id);

/** el("button", { class: "act", onclick }, "Refund") — attributes, properties and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on") || k === "disabled" || k === "hidden") node[k] = v;
    else if (k.startsWith("data-") || k === "class") node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

/** A status line per action: data-state is loading, success, failure or cancelled. */
export function setStatus(id, state, text) {
  const line = $(id);
  line.dataset.state = state;
  line.textContent = text;
  log(`[${id}] ${state}: ${text}`);
}

export function log(text) {
  const out = $("log");
  if (out) out.textContent += `${new Date().toISOString().slice(11, 19)} ${text}\n`;
}

/** The message to show for anything an action threw. */
export function describe(err) {
  return err instanceof Error ? err.message : String(err);
}

let inFlight = false;
let ready = false;

/** Whether action buttons (class "act") may be pressed now; renderers use it for new buttons. */
export const idle = () => ready && !inFlight;

function syncButtons() {
  for (const b of document.querySelectorAll("button.act")) b.disabled = !idle();
}

/** Action buttons come alive once the page is ready (signed in, catalog loaded). */
export function setReady(value) {
  ready = value;
  syncButtons();
}

/**
 * Runs one user action. Every action button is disabled before the first await, so a second
 * click (or a double click) does nothing until this one settles; the status line says
 * loading…, then what fn returned ({state, text}) or the failure it threw.
 */
export async function action(statusId, loading, fn) {
  if (!idle()) return;
  inFlight = true;
  syncButtons();
  setStatus(statusId, "loading", loading);
  try {
    const { state = "success", text } = await fn();
    setStatus(statusId, state, text);
  } catch (err) {
    setStatus(statusId, "failure", describe(err));
  } finally {
    inFlight = false;
    syncButtons();
  }
}
