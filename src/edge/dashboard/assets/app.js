// The dashboard's entry: a view per hash (#/overview, #/sessions, #/session/ID,
// #/playground, #/prompts), and the live feed that keeps the overview current.
import { $, fill, getJson, showError } from "./dom.js";
import { renderOverview, startLive } from "./overview.js";
import { ask, conversation } from "./playground.js";
import { loadPrompts } from "./prompts.js";
import { filterSubmit, loadSessions, loadStory } from "./sessions.js";

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
