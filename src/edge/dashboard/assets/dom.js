// Small helpers every view uses. Text from outside goes in as text nodes, never as HTML,
// so a message containing <script> is shown, not run.
export const $ = (id) => document.getElementById(id);

// An element with `attrs` and `children`; strings become text nodes.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fill(parent, ...children) {
  parent.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

export function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// A JSON GET; an OpenAI-shaped error becomes a thrown Error with its message.
export async function getJson(path) {
  const reply = await fetch(path, { headers: { accept: "application/json" } });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error((body.error && body.error.message) || `HTTP ${reply.status}`);
  return body;
}

export const ms = (v) => (v === null || v === undefined ? "–" : `${v} ms`);
// Dollars to the cent, or to the millionth when less than a cent (a few local tokens' worth).
export const usd = (v) => (typeof v !== "number" ? "–" : `$${v.toFixed(v > 0 && v < 0.01 ? 6 : 2)}`);
export const localTime = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
