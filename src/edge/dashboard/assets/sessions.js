// The sessions: the filtered list, and one session's story (its messages, the decision
// and why, each step, the answer and its cost).
import { $, el, fill, getJson, localTime, ms, showError, usd } from "./dom.js";

let choicesFilled = false;
export function fillRouteChoices(routes) {
  if (choicesFilled || !routes.length) return;
  choicesFilled = true;
  const names = [...new Set(routes.map((r) => r.route)), "rejected"];
  for (const name of names) $("f-route").append(el("option", { value: name }, name));
  for (const r of routes) $("f-label").append(el("option", { value: r.label }, r.label));
  for (const r of routes.filter((r) => r.exposed_as)) {
    $("play-route").append(el("option", { value: r.label }, `${r.label} (${r.route})`));
  }
}

export async function loadSessions(params) {
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

export function filterSubmit(event) {
  event.preventDefault();
  const params = new URLSearchParams();
  for (const field of $("filters").elements) {
    if (!field.name) continue;
    if (field.type === "checkbox") { if (field.checked) params.set(field.name, "true"); }
    else if (field.value) params.set(field.name, field.value);
  }
  location.hash = `#/sessions?${params}`;
}


// The text of a message's content: a string, or the text parts of a list.
function contentText(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((p) => (p && p.type === "text" ? p.text : `[${p && p.type}]`)).join("\n");
  }
  return content === null || content === undefined ? "" : JSON.stringify(content);
}

export function facts(list, pairs) {
  const nodes = [];
  for (const [name, value] of pairs) {
    if (value === null || value === undefined || value === "" || value === false) continue;
    nodes.push(el("dt", {}, name), el("dd", {}, value instanceof Node ? value : String(value)));
  }
  fill(list, ...nodes);
}

export function why(s) {
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

export function stepRow(step, full) {
  const usage = step.usage || {};
  const tokens = `${usage.prompt_tokens ?? usage.input_tokens ?? "–"} / ${usage.completion_tokens ?? usage.output_tokens ?? "–"}`;
  const cells = [el("td", {}, step.step), el("td", {}, step.provider)];
  if (full) cells.push(el("td", { class: "mono" }, step.model));
  cells.push(el("td", { class: "num" }, step.duration_ms), el("td", { class: "num" }, step.ttft_ms ?? "–"));
  if (full) cells.push(el("td", {}, step.status ?? "–", step.error ? ` ${step.error}` : ""), el("td", {}, step.finish_reason || "–"), el("td", { class: "num" }, tokens));
  return el("tr", {}, ...cells);
}

export async function loadStory(id) {
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
