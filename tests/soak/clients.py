#!/usr/bin/env python3
"""The soak's clients: what they send and the threads that send it (used by load.py).

Workload makes the mix that looks like real use (see README.md, "What runs"): streamed
and non-streamed chats that the fake classifier labels SIMPLE, MODERATE, COMPLEX or
ENRICH, Open WebUI task requests (META, by header and by the real templates in
tests/fixtures/openwebui/), look-alike questions, regenerates (cache hits), messages the
classifier cannot label (fallback), long pastes, images, and on purpose: clients that
hang up mid-stream and malformed requests. Each Request carries the label, hence the
route, it must come back with (fake_soak.expected_label).

Client threads (one keep-alive connection each, like an SDK or Open WebUI) send it until
their deadline and check every answer (status, route header, body or SSE stream to
[DONE]); Tally counts what they saw, under one lock. Python 3 standard library only.
"""

import base64
import collections
import glob
import http.client
import json
import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_soak  # noqa: E402  (the fake classifier's labels, to predict each route)

ROUTE_OF = {"SIMPLE": "primary", "MODERATE": "primary", "COMPLEX": "xai",
            "ENRICH": "enrich", "META": "meta"}


def route_of(kind, label):
    """The route a request must come back on: its label's, but a chat with an image goes
    where images can be seen (routing.image_routes: COMPLEX, xAI, as shipped)."""
    return "xai" if kind == "image" else ROUTE_OF[label]
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# --- what the clients say -------------------------------------------------------------
TOPICS = {  # (label the fake classifier gives, weight, texts)
    "SIMPLE": (45, ["Name three colours.", "What is the capital of {place}?",
                    "Translate 'good morning' into {lang}.", "Give me a synonym for happy.",
                    "How many legs does a spider have?", "Write a haiku about {place}."]),
    "MODERATE": (25, ["Explain how a hash map works.", "Compare TCP and UDP for a chat app.",
                      "What is the difference between a process and a thread?",
                      "Explain the rules of chess to a child in {lang}."]),
    "COMPLEX": (15, ["Prove that there are infinitely many primes.",
                     "Research the trade-offs of B-trees against LSM trees and write a report.",
                     "Prove the theorem that every planar graph is five-colourable."]),
    "ENRICH": (15, ["What's the weather in {place} today?", "Any news about the {place} marathon?",
                    "What is the latest release of Python?", "What happened in {place} today?"]),
}
PLACES = ["Oslo", "Lyon", "Kyoto", "Quito", "Perth", "Tartu", "Accra", "Cusco"]
LANGS = ["French", "Norwegian", "Japanese", "Spanish", "Swahili"]
FILLER = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
          "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu "
          "log line request handler worker queue buffer socket thread").split()
TASK_HEADERS = ["title_generation", "tags_generation", "follow_up_generation", "query_generation"]
ANSWER_TEXT = "This is a fake answer from the test backend."

# kind: (weight, description). disconnect, bad_json and bad_field are provoked on purpose.
KINDS = {
    "stream": (50, "chat, streamed"),
    "json": (14, "chat, not streamed"),
    "meta_header": (14, "Open WebUI task, X-OpenWebUI-Task header"),
    "meta_text": (5, "Open WebUI task template (fixtures), no header"),
    "lookalike": (3, "question that looks like a task (fixtures)"),
    "regenerate": (4, "a recent chat resent as it was (cache hit)"),
    "no_label": (2, "classifier answers without a label (fallback)"),
    "long": (2, "6-30 KB pasted text (cut for classification)"),
    "image": (1, "text + 40 KB base64 image"),
    "disconnect": (3, "stream, client hangs up after 2 events (provoked)"),
    "bad_json": (1, "malformed JSON (provoked 400)"),
    "bad_field": (1, "messages is not a list (provoked 400)"),
}
PROVOKED = {"disconnect", "bad_json", "bad_field"}


def load_fixtures(prefix):
    bodies = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "openwebui", prefix + "*.json"))):
        with open(path) as f:
            body = json.load(f)
        body.setdefault("model", "ai-router")
        bodies.append((os.path.basename(path), body))
    return bodies


def text_of(message):
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def last_user(messages):
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message)
    return ""


class Request:
    """One request to send and what must come back."""

    def __init__(self, kind, body, stream, label=None, headers=None, raw=None):
        self.kind = kind
        self.body = body
        self.raw = raw if raw is not None else json.dumps(body).encode()
        self.stream = stream
        self.label = label  # expected label; None for a rejected request
        self.headers = headers or {}
        self.usage = bool(isinstance(body, dict) and (body.get("stream_options") or {}).get("include_usage"))


class Workload:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.tasks = load_fixtures("task-")
        self.lookalikes = load_fixtures("lookalike-")
        self.image = "data:image/png;base64," + base64.b64encode(os.urandom(30_000)).decode()
        self.kinds = list(KINDS)
        self.kind_weights = [KINDS[k][0] for k in self.kinds]
        self.labels = list(TOPICS)
        self.label_weights = [TOPICS[k][0] for k in self.labels]

    def fill(self, text):
        return text.format(place=self.rng.choice(PLACES), lang=self.rng.choice(LANGS))

    def conversation(self, question, tag):
        rng = self.rng
        messages = []
        if rng.random() < 0.3:
            messages.append({"role": "system", "content": "You are a helpful assistant. Answer briefly."})
        for _ in range(rng.choice([0, 0, 0, 1, 2, 3])):
            label = rng.choices(self.labels, self.label_weights)[0]
            messages.append({"role": "user", "content": self.fill(rng.choice(TOPICS[label][1]))})
            messages.append({"role": "assistant", "content": ANSWER_TEXT})
        messages.append({"role": "user", "content": f"{question} [{tag}]"})
        return messages

    def chat(self, kind, tag, stream, question=None):
        rng = self.rng
        if question is None:
            label = rng.choices(self.labels, self.label_weights)[0]
            question = self.fill(rng.choice(TOPICS[label][1]))
        body = {"model": "ai-router", "messages": self.conversation(question, tag), "stream": stream}
        if stream and rng.random() < 0.3:
            body["stream_options"] = {"include_usage": True}
        if rng.random() < 0.2:
            body["temperature"] = 0.7
        return Request(kind, body, stream, fake_soak.expected_label(last_user(body["messages"])))

    def make(self, kind, tag, recent):
        rng = self.rng
        if kind == "regenerate":
            if recent:
                old = rng.choice(recent)
                return Request("regenerate", old.body, old.stream, old.label, raw=old.raw)
            kind = "stream"
        if kind in ("stream", "disconnect"):
            request = self.chat(kind, tag, True)
        elif kind == "json":
            request = self.chat(kind, tag, False)
        elif kind == "no_label":
            request = self.chat(kind, tag, rng.random() < 0.5,
                                f"{self.fill('Tell me something about {place}')} ({fake_soak.NO_LABEL})")
        elif kind == "long":
            words = rng.randint(1000, 5000)
            paste = " ".join(rng.choice(FILLER) for _ in range(words))
            request = self.chat(kind, tag, rng.random() < 0.5,
                                f"Here is a log:\n{paste}\nWhat does it say about the worker?")
        elif kind == "image":
            body = {"model": "ai-router", "stream": rng.random() < 0.5, "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": f"What is in this picture? [{tag}]"},
                    {"type": "image_url", "image_url": {"url": self.image}}]}]}
            request = Request(kind, body, body["stream"], fake_soak.expected_label("What is in this picture?"))
        elif kind == "meta_header":
            stream = rng.random() < 0.1
            task = rng.choice(TASK_HEADERS)
            body = {"model": "ai-router", "stream": stream, "messages": [{"role": "user", "content":
                    f"### Task:\nDo the {task} task for this chat.\n<chat_history>\nUSER: "
                    f"{self.fill('What is the capital of {place}?')} [{tag}]\nASSISTANT: {ANSWER_TEXT}\n"
                    "</chat_history>"}]}
            if rng.random() < 0.5:
                body["max_tokens"] = 1000  # Open WebUI sets it; the router must strip it
            request = Request(kind, body, stream, "META", headers={"X-OpenWebUI-Task": task})
        elif kind == "meta_text":
            _, body = rng.choice(self.tasks)
            request = Request(kind, body, bool(body.get("stream")), "META")
        elif kind == "lookalike":
            _, body = rng.choice(self.lookalikes)
            request = Request(kind, body, bool(body.get("stream")),
                              fake_soak.expected_label(last_user(body["messages"])))
        elif kind == "bad_json":
            raw = rng.choice([b'{"model":"ai-router","messages":[{"role":"user","content":"hi"}',
                              b'{"model": "ai-router", "messages": [}', b"not json at all", b""])
            request = Request(kind, None, False, raw=raw)
        elif kind == "bad_field":
            request = Request(kind, {"model": "ai-router", "messages": "hello"}, False)
        else:
            raise ValueError(kind)
        request.kind = kind
        return request


# --- the clients ----------------------------------------------------------------------
class Tally:
    """Everything the clients saw, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = collections.Counter()
        self.ok = collections.Counter()
        self.failed = collections.Counter()
        self.by_label = collections.Counter()
        self.latency = collections.defaultdict(list)
        self.ttfb = collections.defaultdict(list)
        self.failures = []  # (t, kind, detail), first 50
        self.ids = {}  # x-request-id -> (kind, label, stream)
        self.id_count = 0  # responses that carried an id (more than len(ids): an id came twice)
        self.chat_posts = 0

    def record(self, request, ok, detail, elapsed, ttfb, rid, t):
        with self.lock:
            self.sent[request.kind] += 1
            self.chat_posts += 1
            if request.label:
                self.by_label[request.label] += 1
            if ok:
                self.ok[request.kind] += 1
                self.latency[request.kind].append(elapsed)
                if ttfb is not None:
                    self.ttfb[request.kind].append(ttfb)
            else:
                self.failed[request.kind] += 1
                if len(self.failures) < 50:
                    self.failures.append((round(t, 1), request.kind, detail))
            if rid:
                self.id_count += 1
                self.ids[rid] = (request.kind, request.label, request.stream)

    def totals(self):
        with self.lock:
            return self.chat_posts, sum(self.failed.values())


class Client(threading.Thread):
    def __init__(self, index, args, tally, start, deadline):
        super().__init__(name=f"client-{index}", daemon=True)
        self.index = index
        self.args = args
        self.tally = tally
        self.start_time = start
        self.deadline = deadline
        self.work = Workload(args.seed * 1000 + index)
        self.conn = None
        self.recent = collections.deque(maxlen=5)
        self.seq = 0

    def connection(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.args.host, self.args.port, timeout=self.args.timeout)
        return self.conn

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def run(self):
        rng = self.work.rng
        time.sleep(rng.uniform(0, 1.0))
        while time.monotonic() < self.deadline:
            self.seq += 1
            kind = rng.choices(self.work.kinds, self.work.kind_weights)[0]
            request = self.work.make(kind, f"c{self.index}-{self.seq}", self.recent)
            t0 = time.monotonic()
            try:
                ok, detail, ttfb, rid = self.send(request)
            except (OSError, http.client.HTTPException, ValueError) as e:
                ok, detail, ttfb, rid = False, f"transport: {type(e).__name__}: {e}", None, None
                self.drop()
            self.tally.record(request, ok, detail, time.monotonic() - t0, ttfb, rid, t0 - self.start_time)
            if ok and request.kind in ("stream", "json") and request.label:
                self.recent.append(request)
            time.sleep(rng.uniform(0, self.args.think))
        self.drop()

    def send(self, request):
        headers = {"Content-Type": "application/json", "User-Agent": "ai-router-soak/1"}
        headers.update(request.headers)
        if request.kind == "disconnect":
            self.drop()  # a fresh connection, closed mid-stream
        conn = self.connection()
        t0 = time.monotonic()
        conn.request("POST", "/v1/chat/completions", body=request.raw, headers=headers)
        resp = conn.getresponse()
        rid = resp.getheader("x-request-id")
        route = resp.getheader("x-ai-router-route")
        problems = []
        if not rid or not re.fullmatch(r"[0-9a-f]{8}", rid):
            problems.append(f"x-request-id {rid!r}")
        if request.label is None:  # provoked 400
            data = resp.read()
            try:
                code = json.loads(data)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            if resp.status != 400 or code not in ("invalid_json", "invalid_request"):
                problems.append(f"status {resp.status} code {code!r}, wanted 400 invalid_json/invalid_request: {data[:200]!r}")
            return not problems, "; ".join(problems), None, rid
        want_route = route_of(request.kind, request.label)
        if resp.status != 200:
            data = resp.read()
            return False, f"status {resp.status}: {data[:300]!r}", None, rid
        if route != want_route:
            problems.append(f"route {route!r}, wanted {want_route} (label {request.label})")
        if not request.stream:
            data = resp.read()
            try:
                answer = json.loads(data)
                content = answer["choices"][0]["message"]["content"]
                if answer.get("model") != "ai-router":
                    problems.append(f"model {answer.get('model')!r}")
                if not content:
                    problems.append("empty content")
            except (ValueError, KeyError, IndexError, TypeError):
                problems.append(f"not a completion: {data[:200]!r}")
            return not problems, "; ".join(problems), None, rid
        ttfb = None
        events = 0
        content = []
        usage_seen = done = False
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if ttfb is None:
                ttfb = time.monotonic() - t0
            if payload == b"[DONE]":
                done = True
                break
            events += 1
            chunk = json.loads(payload)
            if "error" in chunk:
                problems.append(f"in-band error {chunk['error']}")
            if chunk.get("model") != "ai-router":
                problems.append(f"chunk model {chunk.get('model')!r}")
            if chunk.get("usage") and not chunk.get("choices"):
                usage_seen = True
            for choice in chunk.get("choices") or []:
                content.append((choice.get("delta") or {}).get("content") or "")
            if request.kind == "disconnect" and events >= 2:
                self.drop()  # hang up mid-stream, on purpose
                return not problems, "; ".join(problems), ttfb, rid
        if request.kind == "disconnect":
            problems.append(f"stream ended after {events} events, before the client could hang up")
        else:
            resp.read()  # the end of the chunked body, so the connection can be reused
        if not done:
            problems.append(f"no [DONE] after {events} events")
        if not "".join(content):
            problems.append("no content streamed")
        if usage_seen != request.usage:
            problems.append(f"usage chunk {'relayed' if usage_seen else 'missing'}, include_usage={request.usage}")
        return not problems, "; ".join(problems), ttfb, rid
