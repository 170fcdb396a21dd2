#!/usr/bin/env python3
"""The traffic subcommand of check_dashboard.py: one bounded batch of chats through the
router, each answer checked, so that every metric the dashboard reads has something to
count. --phase ok (every route, JSON and SSE, a cached classification, 400s, a 401, a
prompt edit), --phase fail (the primary is gone: 502s, and an ENRICH stream that fails
after its headers), --phase recover (it is back). Python 3 standard library only.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prom import expect, http  # noqa: E402

TITLE_PROMPT = (
    "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.\n"
    "### Chat History:\n<chat_history>\nUSER: How do I bake bread?\n</chat_history>"
)


class Router:
    def __init__(self, url, key):
        self.url = url.rstrip("/")
        self.key = key
        self.routes = {}

    def chat(self, body, headers=None, raw=None, key=None):
        hdrs = {"Authorization": f"Bearer {key or self.key}"}
        hdrs.update(headers or {})
        return http("POST", self.url + "/v1/chat/completions", body, hdrs, raw)

    def answer(self, name, text, stream=False, want_route=None, headers=None):
        """One chat that must succeed on `want_route`; a stream is read to [DONE]."""
        body = {"model": "ai-router", "stream": stream,
                "messages": [{"role": "user", "content": text}]}
        if stream:
            body["stream_options"] = {"include_usage": True}
        status, hdrs, data = self.chat(body, headers)
        route = hdrs.get("x-ai-router-route")
        expect(status == 200, f"{name}: HTTP {status}: {data[:300]!r}")
        expect(route == want_route, f"{name}: x-ai-router-route {route!r}, expected {want_route!r}")
        if stream:
            lines = [line for line in data.decode().splitlines() if line.startswith("data: ")]
            expect(lines and lines[-1] == "data: [DONE]", f"{name}: stream does not end in [DONE]")
            events = [json.loads(line[6:]) for line in lines[:-1]]
            text_out = "".join((c.get("delta") or {}).get("content") or ""
                               for e in events for c in e.get("choices") or [])
        else:
            answer = json.loads(data)
            text_out = answer["choices"][0]["message"].get("content") or ""
        expect(text_out.strip(), f"{name}: empty answer")
        self.routes[route] = self.routes.get(route, 0) + 1
        print(f"  ok   {name:<28} HTTP 200, route {route}")

    def stream_error(self, name, text, want_route):
        """A stream whose headers were sent before its backend failed (ENRICH sends them
        first): HTTP 200, then an error event and [DONE]."""
        body = {"model": "ai-router", "stream": True, "messages": [{"role": "user", "content": text}]}
        status, hdrs, data = self.chat(body)
        route = hdrs.get("x-ai-router-route")
        expect(status == 200 and route == want_route,
               f"{name}: HTTP {status}, route {route!r}, expected 200 on {want_route!r}")
        lines = [line[6:] for line in data.decode().splitlines() if line.startswith("data: ")]
        expect(len(lines) == 2 and lines[-1] == "[DONE]" and "error" in json.loads(lines[0]),
               f"{name}: expected an error event, then [DONE]: {data[:300]!r}")
        print(f"  ok   {name:<28} HTTP 200, route {route}, then an error event")

    def error(self, name, want_status, body=None, raw=None, stream=False, key=None):
        if raw is None and body is None:
            body = {"model": "ai-router", "stream": stream,
                    "messages": [{"role": "user", "content": name}]}
        status, _, data = self.chat(body, raw=raw, key=key)
        expect(status == want_status, f"{name}: HTTP {status}, expected {want_status}: {data[:300]!r}")
        envelope = json.loads(data).get("error")
        expect(isinstance(envelope, dict), f"{name}: no OpenAI error envelope: {data[:300]!r}")
        print(f"  ok   {name:<28} HTTP {status} ({envelope.get('type')})")


def traffic(args):
    router = Router(args.url, args.key)
    tag = f"round {args.round}"
    if args.phase == "ok":
        # Fake classifier keywords (tests/live/fake_openai.py): "prove"/"research" ->
        # COMPLEX, "weather"/"today"/"news"/"latest" -> ENRICH, else SIMPLE. Each text
        # names the round, so each round classifies afresh; the repeat is a cache hit.
        simple = f"Name three colours ({tag})."
        router.answer("SIMPLE json", simple, want_route="primary")
        router.answer("SIMPLE json, cached label", simple, want_route="primary")
        router.answer("SIMPLE stream", f"Say hello in French ({tag}).", True, "primary")
        router.answer("COMPLEX json", f"Prove that there are infinitely many primes ({tag}).",
                      want_route="xai")
        router.answer("COMPLEX stream", f"Prove this theorem of research interest ({tag}).",
                      True, "xai")
        router.answer("ENRICH json", f"What is the weather in Oslo today ({tag})?",
                      want_route="enrich")
        router.answer("ENRICH stream", f"Give me the latest news ({tag}).", True, "enrich")
        task = {"X-OpenWebUI-Task": "title_generation"}
        router.answer("META json", TITLE_PROMPT, want_route="meta", headers=task)
        router.answer("META stream", TITLE_PROMPT, True, "meta", headers=task)
        router.error("malformed JSON", 400, raw=b'{"model": "ai-router", "messages": [')
        router.error("no messages", 400, body={"model": "ai-router", "messages": []})
        router.error("wrong client key", 401, key=args.wrong_key)
        for path in ("/v1/models", "/health/ready"):
            status, _, _ = http("GET", router.url + path, headers={"Authorization": f"Bearer {args.key}"})
            expect(status == 200, f"GET {path}: HTTP {status}")
        # A prompt edit: the watcher reloads the folder (ai_router_prompt_reloads_total).
        with open(os.path.join(args.prompts_dir, "meta", "system.md"), "a") as f:
            f.write(f"\n<!-- edited by tests/prometheus, {tag} -->\n")
        missing = {"primary", "xai", "enrich", "meta"} - set(router.routes)
        expect(not missing, f"routes never answered: {sorted(missing)}")
    elif args.phase == "fail":
        # The primary's process is gone: refused, retried, then a 502 to the client.
        router.error("SIMPLE json, primary down", 502, body={
            "model": "ai-router", "messages": [{"role": "user", "content": f"Name a fruit ({tag})."}]})
        router.error("META stream, primary down", 502, body={
            "model": "ai-router", "stream": True,
            "messages": [{"role": "user", "content": TITLE_PROMPT}]})
        router.stream_error("ENRICH stream, primary down", f"Any news today ({tag})?", "enrich")
    else:
        router.answer("SIMPLE json, primary back", f"Name a tree ({tag}).", want_route="primary")
