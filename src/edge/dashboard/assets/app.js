// The dashboard's one script. Every piece of text that comes from outside (messages,
// answers, prompts, errors) goes into the page as text (textContent, text nodes), never
// as HTML, so a message containing <script> is shown, not run.
"use strict";

const $ = (id) => document.getElementById(id);

// An element with `attrs` and `children`; strings become text nodes.
function el(tag, attrs, ...children) {
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

function fill(parent, ...children) {
  parent.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// A JSON GET; an OpenAI-shaped error becomes a thrown Error with its message.
async function getJson(path) {
  const reply = await fetch(path, { headers: { accept: "application/json" } });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error((body.error && body.error.message) || `HTTP ${reply.status}`);
  return body;
}

const ms = (v) => (v === null || v === undefined ? "–" : `${v} ms`);
const usd = (v) => (typeof v === "number" ? `$${v.toFixed(4)}` : "–");
const localTime = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

// ---------- views and the hash router

const views = ["overview", "sessions", "session", "playground", "prompts"];

function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "overview";
  const [path, query] = hash.split("?");
  const [name, arg] = path.split("/");
  const view = views.includes(name) ? name : "overview";
  for (const v of views) $(`view-${v}`).hidden = v !== view;
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.view === view || (view === "session" && link.dataset.view === "sessions");
    link.classList.toggle("current", current);
  }
  showError("");
  const params = new URLSearchParams(query || "");
  if (view === "sessions") loadSessions(params);
  if (view === "session") loadStory(arg || "");
  if (view === "prompts") loadPrompts();
}

// ---------- overview, pushed by the live feed

const palette = ["#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#64748b"];
const routeColors = new Map();
function colorOf(name) {
  if (!routeColors.has(name)) routeColors.set(name, palette[routeColors.size % palette.length]);
  return routeColors.get(name);
}

let lastOverview = null;

function renderOverview(o) {
  lastOverview = o;
  const start = o.since_start || {};
  const recent = o.recent || {};
  $("ov-requests").textContent = start.requests ?? "–";
  $("ov-requests-sub").textContent =
    `${start.in_flight ?? 0} in flight · ${start.outcomes?.error ?? 0} errors · since ${localTime(start.started_at)}`;
  const total = recent.total_ms || {};
  $("ov-latency").textContent = ms(total.p50);
  $("ov-latency-sub").textContent = `p95 ${ms(total.p95)} · p99 ${ms(total.p99)} · ${total.count ?? 0} requests`;
  const ttft = recent.ttft_ms || {};
  $("ov-ttft").textContent = ms(ttft.p50);
  $("ov-ttft-sub").textContent = `p95 ${ms(ttft.p95)} · p99 ${ms(ttft.p99)}`;
  const cls = recent.classifier || {};
  const backend = (o.backends || []).find((b) => b.name === o.classifier);
  $("ov-classifier").textContent = backend ? (backend.down ? "down" : "up") : "–";
  $("ov-classifier-sub").textContent =
    `${cls.calls ?? 0} calls, ${cls.fallbacks ?? 0} fallbacks (5 min) · p50 ${ms(cls.ms?.p50)} · ${start.classification_fallbacks ?? 0} fallbacks since start`;
  const spend = o.spend || {};
  if (spend.error) {
    $("ov-spend").textContent = "–";
    $("ov-spend-sub").textContent = spend.error;
  } else if (spend.pending) {
    $("ov-spend").textContent = "…";
    $("ov-spend-sub").textContent = "reading the session logs";
  } else {
    $("ov-spend").textContent = usd(spend.cloud_usd);
    $("ov-spend-sub").textContent =
      `${spend.window}: all-cloud would be ${usd(spend.all_cloud_usd)}, saved ${usd(spend.saving_usd)}`;
  }
  renderChart(recent.per_minute || []);
  const counts = start.routes || {};
  fill($("ov-routes"), ...(o.routes || []).map((r) =>
    el("tr", {},
      el("td", {}, el("a", { href: `#/sessions?label=${encodeURIComponent(r.label)}` }, r.label)),
      el("td", {}, el("a", { href: `#/sessions?route=${encodeURIComponent(r.route)}` }, r.route)),
      el("td", {}, r.backend),
      el("td", { class: "num" }, counts[r.route] ?? 0), el("td", {}, r.exposed_as || "–"))));
  const rows = [];
  for (const b of o.backends || []) {
    for (const e of b.endpoints || []) {
      const state = b.missing_key ? "no key" : e.state;
      rows.push(el("tr", {},
        el("td", {}, b.name), el("td", { class: "mono" }, e.url),
        el("td", {}, el("span", { class: `state ${state.replace(/\s/g, "-")}` }, state)),
        el("td", { class: "num" }, e.in_flight), el("td", { class: "num" }, ms(e.latency_ms)),
        el("td", { class: "num" }, e.failures_in_a_row), el("td", { class: "wrap" }, e.last_error || "")));
    }
  }
  fill($("ov-backends"), ...rows);
  fillRouteChoices(o.routes || []);
}

function renderChart(minutes) {
  const max = Math.max(1, ...minutes.map((m) => Object.values(m.routes).reduce((a, b) => a + b, 0)));
  const seen = new Set();
  const bars = minutes.map((m) => {
    const stack = el("div", { class: "stack" });
    let sum = 0;
    for (const [name, count] of Object.entries(m.routes)) {
      seen.add(name);
      sum += count;
      const part = el("div", { class: "part", title: `${name}: ${count}` });
      // CSSOM, not a style attribute: the policy allows no inline styles.
      part.style.height = `${(count / max) * 100}%`;
      part.style.background = colorOf(name);
      stack.append(part);
    }
    return el("div", { class: "bar", title: `${m.minute}: ${sum}` }, stack, el("span", { class: "count" }, sum || ""), el("span", { class: "tick" }, m.minute));
  });
  fill($("ov-chart"), ...bars);
  const legend = [...seen].map((name) => {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colorOf(name);
    return el("span", { class: "key" }, swatch, name);
  });
  fill($("ov-legend"), ...legend);
}

function startLive() {
  const status = $("live-status");
  const feed = new EventSource("/dashboard/api/live");
  feed.addEventListener("overview", (event) => {
    try {
      renderOverview(JSON.parse(event.data));
      status.textContent = `live · ${new Date().toLocaleTimeString()}`;
      status.className = "pill live";
    } catch (e) {
      status.textContent = "bad event";
    }
  });
  feed.onerror = () => {
    status.textContent = "reconnecting…";
    status.className = "pill off";
  };
}

// ---------- sessions

let choicesFilled = false;
function fillRouteChoices(routes) {
  if (choicesFilled || !routes.length) return;
  choicesFilled = true;
  const names = [...new Set(routes.map((r) => r.route)), "rejected"];
  for (const name of names) $("f-route").append(el("option", { value: name }, name));
  for (const r of routes) $("f-label").append(el("option", { value: r.label }, r.label));
  for (const r of routes.filter((r) => r.exposed_as)) {
    $("play-route").append(el("option", { value: r.label }, `${r.label} (${r.route})`));
  }
}

async function loadSessions(params) {
  const form = $("filters");
  for (const field of form.elements) {
    if (!field.name) continue;
    if (field.type === "checkbox") field.checked = params.get(field.name) === "true";
    else if (params.has(field.name)) field.value = params.get(field.name);
  }
  $("sessions-count").textContent = "reading…";
  try {
    const body = await getJson(`/dashboard/api/sessions?${params}`);
    const rows = body.sessions.map((s) => el("tr", { class: s.outcome === "error" ? "bad" : null },
      el("td", { class: "nowrap" }, localTime(s.timestamp)),
      el("td", {}, el("a", { href: `#/session/${encodeURIComponent(s.id)}`, class: "mono session-link" }, s.id)),
      el("td", {}, s.route || "rejected"),
      el("td", {}, s.label || "–", s.fallback ? el("span", { class: "tag", title: s.fallback }, "fallback") : null),
      el("td", {}, s.outcome, s.http_status && s.http_status !== 200 ? ` (${s.http_status})` : ""),
      el("td", { class: "num" }, s.total_ms),
      el("td", { class: "mono" }, s.client_ip),
      el("td", { class: "wrap query" }, s.user_query)));
    fill($("sessions-rows"), ...rows);
    $("sessions-count").textContent = `${rows.length} sessions` + (body.skipped_files ? ` · ${body.skipped_files} unreadable files skipped` : "");
  } catch (e) {
    $("sessions-count").textContent = "";
    showError(e.message);
  }
}

function filterSubmit(event) {
  event.preventDefault();
  const params = new URLSearchParams();
  for (const field of $("filters").elements) {
    if (!field.name) continue;
    if (field.type === "checkbox") { if (field.checked) params.set(field.name, "true"); }
    else if (field.value) params.set(field.name, field.value);
  }
  location.hash = `#/sessions?${params}`;
}

// ---------- one session's story

// The text of a message's content: a string, or the text parts of a list.
function contentText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((p) => (p && p.type === "text" ? p.text : `[${p && p.type}]`)).join("\n");
  }
  return content === null || content === undefined ? "" : JSON.stringify(content);
}

function facts(list, pairs) {
  const nodes = [];
  for (const [name, value] of pairs) {
    if (value === null || value === undefined || value === "" || value === false) continue;
    nodes.push(el("dt", {}, name), el("dd", {}, value instanceof Node ? value : String(value)));
  }
  fill(list, ...nodes);
}

function why(s) {
  const conf = s.classification_confidence;
  return [
    ["label", s.classification],
    ["route", s.route],
    ["chosen by client", s.client_choice],
    ["META rule", s.meta_match],
    ["classifier said", s.classification_raw],
    ["classifier ms", s.classification_ms],
    ["from cache", s.classification_cached ? "yes" : null],
    ["confidence", conf ? `${conf.p}${conf.runner_up ? ` (then ${conf.runner_up} ${conf.runner_up_p})` : ""}` : null],
    ["classifier fallback", s.classification_fallback],
    ["route fallback", s.route_fallback],
    ["sticky", s.sticky],
  ];
}

function stepRow(step, full) {
  const usage = step.usage || {};
  const tokens = `${usage.prompt_tokens ?? usage.input_tokens ?? "–"} / ${usage.completion_tokens ?? usage.output_tokens ?? "–"}`;
  const cells = [el("td", {}, step.step), el("td", {}, step.provider)];
  if (full) cells.push(el("td", { class: "mono" }, step.model));
  cells.push(el("td", { class: "num" }, step.duration_ms), el("td", { class: "num" }, step.ttft_ms ?? "–"));
  if (full) cells.push(el("td", {}, step.status ?? "–", step.error ? ` ${step.error}` : ""), el("td", {}, step.finish_reason || "–"), el("td", { class: "num" }, tokens));
  return el("tr", {}, ...cells);
}

async function loadStory(id) {
  fill($("story-facts"));
  fill($("story-messages"));
  fill($("story-steps"));
  $("story-answer").textContent = "";
  $("story-title").textContent = `Session ${id}`;
  try {
    const s = await getJson(`/dashboard/api/sessions/${encodeURIComponent(id)}`);
    $("story-same-route").href = `#/sessions?route=${encodeURIComponent(s.route || "rejected")}`;
    $("story-same-client").href = `#/sessions?client=${encodeURIComponent(s.client_ip || "")}`;
    const cost = s.cost || {};
    facts($("story-facts"), [
      ["time", localTime(s.timestamp)],
      ["client", s.client_ip],
      ["user agent", s.user_agent],
      ["outcome", `${s.outcome} (HTTP ${s.http_status})`],
      ["error", s.error],
      ["total", ms(s.total_ms)],
      ...why(s),
      ["cloud cost", cost.cloud ? `${usd(cost.cloud.cost_usd)} (${cost.cloud.input_tokens} in, ${cost.cloud.output_tokens} out)` : null],
      ["all-cloud would cost", cost.all_cloud ? usd(cost.all_cloud.cost_usd) : null],
    ]);
    const messages = Array.isArray(s.client_messages) ? s.client_messages : [];
    fill($("story-messages"), ...messages.map((m) =>
      el("div", { class: `msg ${m.role}` }, el("span", { class: "role" }, m.role), el("div", { class: "text" }, contentText(m.content)))));
    fill($("story-steps"), ...(s.steps || []).map((step) => stepRow(step, true)));
    const answer = (s.steps || []).filter((step) => step.step === "answer").pop();
    $("story-answer").textContent = answer ? answer.response_content : "(no answer step)";
  } catch (e) {
    showError(e.message);
  }
}

// ---------- playground

const conversation = [];

async function ask(event) {
  event.preventDefault();
  const input = $("play-input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  conversation.push({ role: "user", content: text });
  $("play-log").append(el("div", { class: "msg user" }, el("span", { class: "role" }, "user"), el("div", { class: "text" }, text)));
  const answerText = el("div", { class: "text" });
  const answer = el("div", { class: "msg assistant streaming" }, el("span", { class: "role" }, "assistant"), answerText);
  $("play-log").append(answer);
  $("play-send").disabled = true;
  facts($("play-facts"), [["route", "…"]]);
  fill($("play-steps"));
  let id = null;
  try {
    const reply = await fetch("/dashboard/api/chat", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: conversation, route: $("play-route").value || null }),
    });
    id = reply.headers.get("x-request-id");
    const routeName = reply.headers.get("x-ai-router-route");
    facts($("play-facts"), [["route", routeName || "–"], ["session", id ? sessionLink(id) : null]]);
    if (!reply.ok) {
      const body = await reply.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || `HTTP ${reply.status}`);
    }
    await readStream(reply, answerText, answer);
    conversation.push({ role: "assistant", content: answerText.textContent });
  } catch (e) {
    answer.classList.add("bad");
    answerText.textContent = e.message;
    conversation.pop();
  } finally {
    answer.classList.remove("streaming");
    $("play-send").disabled = false;
  }
  if (id) showDecision(id);
}

function sessionLink(id) {
  return el("a", { href: `#/session/${encodeURIComponent(id)}`, class: "mono" }, id);
}

// Reads an OpenAI SSE stream, appending each delta's text as it arrives; the model's
// reasoning, when it sends some, goes into a folded block above the answer.
async function readStream(reply, target, message) {
  let reasoning = null;
  const think = (text) => {
    if (!reasoning) {
      reasoning = el("div", { class: "text" });
      message.insertBefore(el("details", { class: "reasoning" }, el("summary", {}, "reasoning"), reasoning), target);
    }
    reasoning.append(document.createTextNode(text));
  };
  const reader = reply.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || "error in the stream");
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && (delta.reasoning_content || delta.reasoning)) think(delta.reasoning_content || delta.reasoning);
        if (delta && delta.content) target.append(document.createTextNode(delta.content));
      }
    }
  }
}

// The session file is written just after the answer ends: ask a few times.
async function showDecision(id) {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const s = await getJson(`/dashboard/api/sessions/${encodeURIComponent(id)}`);
      facts($("play-facts"), [["session", sessionLink(id)], ["total", ms(s.total_ms)], ...why(s)]);
      fill($("play-steps"), ...(s.steps || []).map((step) => stepRow(step, false)));
      return;
    } catch (e) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

// ---------- prompts

async function loadPrompts() {
  try {
    const body = await getJson("/dashboard/api/prompts");
    $("prompts-dir").textContent = `Folder: ${body.dir}`;
    // Open ones stay open when the list is drawn again.
    const open = new Set([...document.querySelectorAll("#prompts-list details[open]")].map((d) => d.dataset.name));
    fill($("prompts-list"), ...body.prompts.map((p) => el("details", { class: "prompt", "data-name": p.name, open: open.has(p.name) || p.reload_error ? "" : null },
      el("summary", {}, el("span", { class: "mono" }, p.name),
        p.fallback ? el("span", { class: "tag bad" }, "built-in copy") : null,
        p.reload_error ? el("span", { class: "tag bad" }, "reload failed") : null,
        el("span", { class: "sub loaded" }, `loaded ${localTime(p.loaded_at)}`)),
      el("p", { class: "sub mono" }, `${p.source}${p.file_modified ? ` · file changed ${localTime(p.file_modified)}` : ""}`),
      p.reload_error ? el("p", { class: "error reload-error" }, `The last reload kept this text: ${p.reload_error}`) : null,
      el("pre", { class: "text" }, p.text))));
  } catch (e) {
    showError(e.message);
  }
}

// ---------- start

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  $("filters").addEventListener("submit", filterSubmit);
  $("play-form").addEventListener("submit", ask);
  $("play-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("play-form").requestSubmit();
  });
  $("play-clear").addEventListener("click", () => {
    conversation.length = 0;
    fill($("play-log"));
  });
  getJson("/dashboard/api/overview").then(renderOverview).catch((e) => showError(e.message));
  startLive();
  route();
});
