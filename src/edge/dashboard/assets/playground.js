// The playground: a chat streamed through the router's real pipeline, with the decision
// and the steps' timings read back from its session beside it.
import { $, el, fill, getJson, ms } from "./dom.js";
import { facts, stepRow, why } from "./sessions.js";

export const conversation = [];

export async function ask(event) {
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
