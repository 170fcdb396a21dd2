// The overview: drawn from each event of the live feed (/dashboard/api/live).
import { $, el, fill, localTime, ms, usd } from "./dom.js";
import { fillRouteChoices } from "./sessions.js";

const palette = ["#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#64748b"];
const routeColors = new Map();
function colorOf(name) {
  if (!routeColors.has(name)) routeColors.set(name, palette[routeColors.size % palette.length]);
  return routeColors.get(name);
}

let lastSpend = null;

export function renderOverview(o) {
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
  // A new feed starts before its first read of the spend: keep the last figures until then.
  if (o.spend && !o.spend.pending) lastSpend = o.spend;
  const spend = lastSpend || o.spend || {};
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

export function startLive() {
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
