#!/usr/bin/env python3
"""A tiny OpenAI-compatible stand-in for the stack's three backends, so that
`make test-live` can run against a real router without a GPU (infra/check/live.sh).
Python 3 standard library only.

One process plays all three roles, told apart by the `model` the router sends:
  --classifier-model  answers a label chosen from keywords in the message it classifies
                      ("today", "news", "weather" -> ENRICH; "prove", "theorem" -> COMPLEX;
                      anything else -> SIMPLE), wrapped in a <think> block as the real
                      classifier may do;
  --xai-model         answers chats and POST /responses (ENRICH's search hop), and wants
                      `Authorization: Bearer <--xai-key>`;
  any other model     is the primary: a short answer, JSON or SSE.
Like vLLM it answers 404 to an unknown model, and it answers 400 when a local backend is
sent `max_tokens` (the router must strip it: reasoning models would be cut off).

Usage: fake_openai.py --classifier-model M --primary-model M --xai-model M --xai-key K
Prints "listening on 127.0.0.1:PORT" once ready (port 0 by default: the OS picks one).
"""

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = ["This is ", "a fake answer ", "from the test backend."]


def label_for(text):
    """The label the fake classifier gives a message, from keywords."""
    match = re.search(r"<message>(.*?)</message>", text, re.S)
    words = (match.group(1) if match else text).lower()
    if any(w in words for w in ("today", "news", "weather", "latest")):
        return "ENRICH"
    if any(w in words for w in ("prove", "theorem", "research")):
        return "COMPLEX"
    return "SIMPLE"


def last_user_text(messages):
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, fmt, *args):  # one line per request on stderr, for the CI log
        sys.stderr.write("[fake] %s %s\n" % (self.address_string(), fmt % args))

    # --- plumbing -----------------------------------------------------------------
    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message, code=None):
        self.send_json(status, {"error": {"message": message, "type": "invalid_request_error",
                                          "param": None, "code": code or status}})

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None

    # --- routes -------------------------------------------------------------------
    def do_GET(self):
        cfg = self.server.cfg
        if self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path in ("/v1/models", "/models"):
            models = [cfg.classifier_model, cfg.primary_model, cfg.xai_model]
            self.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "fake", "max_model_len": 32768} for m in models]})
        else:
            self.error(404, f"no route {self.path}")

    def do_POST(self):
        cfg = self.server.cfg
        body = self.read_json()
        if not isinstance(body, dict):
            return self.error(400, "body is not a JSON object")
        model = body.get("model")
        if self.path in ("/v1/responses", "/responses"):
            return self.search_responses(body)
        if self.path not in ("/v1/chat/completions", "/chat/completions"):
            return self.error(404, f"no route {self.path}")
        if model not in (cfg.classifier_model, cfg.primary_model, cfg.xai_model):
            return self.error(404, f"The model `{model}` does not exist.", "model_not_found")
        if model == cfg.xai_model:
            if self.headers.get("Authorization") != f"Bearer {cfg.xai_key}":
                return self.error(401, "fake xAI: missing or wrong API key")
        elif "max_tokens" in body or "max_completion_tokens" in body:
            return self.error(400, "fake local backend: max_tokens reached a local reasoning model")
        messages = body.get("messages") or []
        if model == cfg.classifier_model:
            text = f"<think>Looking at the message.</think>{label_for(last_user_text(messages))}"
            return self.send_json(200, self.completion(model, text))
        if body.get("stream"):
            return self.stream(model, body)
        return self.send_json(200, self.completion(model, "".join(ANSWER)))

    def search_responses(self, body):
        cfg = self.server.cfg
        if self.headers.get("Authorization") != f"Bearer {cfg.xai_key}":
            return self.error(401, "fake xAI: missing or wrong API key")
        if body.get("model") != cfg.xai_model:
            return self.error(404, f"The model `{body.get('model')}` does not exist.")
        self.send_json(200, {"id": "resp_fake", "object": "response", "output": [
            {"type": "web_search_call", "status": "completed"},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "Fake search result: it is sunny in Oslo.",
                 "annotations": [{"type": "url_citation", "url": "https://example.org/oslo"}]}]}]})

    # --- answers ------------------------------------------------------------------
    @staticmethod
    def completion(model, text):
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}

    def stream(self, model, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def chunk(delta, finish=None):
            return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        events = [chunk({"role": "assistant", "content": ""}), chunk({"reasoning_content": "Thinking briefly."})]
        events += [chunk({"content": part}) for part in ANSWER]
        events.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                           "model": model, "choices": [],
                           "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}})
        try:
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                time.sleep(self.server.cfg.chunk_delay)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the router dropped the request (client went away): fine


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--classifier-model", default="fake-classifier")
    parser.add_argument("--primary-model", default="fake-primary")
    parser.add_argument("--xai-model", default="fake-grok")
    parser.add_argument("--xai-key", default="fake-xai-key")
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between SSE events")
    cfg = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    server.cfg = cfg
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
