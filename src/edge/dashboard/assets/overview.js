// The overview: drawn from each event of the live feed (/dashboard/api/live).
import { $, el, fill, localTime, ms, usd } from "./dom.js";
import { fillRouteChoices } from "./sessions.js";

const palette = ["#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#64748b"];
const routeColors = new Map();
function colorOf(name) {
  if (!routeColors.has(name)) routeColors.set(name, palette[routeColors.size % palette.length]);
  return routeColors.get(name);
}


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
  const spend = o.spend || {};
  const day = spend.day || {};
  const month = spend.month || {};
  $("ov-spend").textContent = usd(day.cloud_usd);
  const budgets = Object.entries(spend.backends || {})
    .filter(([, b]) => b.state)
    .map(([name, b]) => `${name} budget ${b.state}${b.day && b.day.limit_usd ? ` (${usd(b.day.spent_usd)} of ${usd(b.day.limit_usd)} today)` : ""}`);
  $("ov-spend-sub").textContent = [
    `all-cloud would be ${usd(day.all_cloud_usd)} today, saved ${usd(day.saving_usd)}`,
    `month ${usd(month.cloud_usd)}, saved ${usd(month.saving_usd)}`,
    ...budgets,
  ].join(" · ");
  renderChart(recent.per_minute || []);
  renderRoutes(o.routes || [], start.routes || {});
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

// One row per route (several labels may share one), with its requests since start-up.
function renderRoutes(routes, counts) {
  const byRoute = new Map();
  for (const r of routes) {
    if (!byRoute.has(r.route)) byRoute.set(r.route, { backend: r.backend, labels: [], models: [] });
    const row = byRoute.get(r.route);
    row.labels.push(r.label);
    if (r.exposed_as) row.models.push(r.exposed_as);
  }
  const link = (query, text) => el("a", { href: `#/sessions?${query}` }, text);
  const rows = [...byRoute].map(([name, r]) => {
    const labels = el("td", {});
    r.labels.forEach((label, i) => labels.append(i ? ", " : "", link(`label=${encodeURIComponent(label)}`, label)));
    return el("tr", {},
      el("td", {}, link(`route=${encodeURIComponent(name)}`, name)), labels, el("td", {}, r.backend),
      el("td", { class: "num" }, counts[name] ?? 0), el("td", {}, r.models.join(", ") || "–"));
  });
  if (counts.rejected) {
    rows.push(el("tr", {}, el("td", {}, link("route=rejected", "rejected")), el("td", {}, "–"), el("td", {}, "–"),
      el("td", { class: "num" }, counts.rejected), el("td", {}, "–")));
  }
  fill($("ov-routes"), ...rows);
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
