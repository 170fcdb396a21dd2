// The prompts in use: each file's text, when it was read in, and the last reload's error.
import { $, el, fill, getJson, localTime, showError } from "./dom.js";

export async function loadPrompts() {
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
