#!/usr/bin/env python3
"""`make test-live`: integration checks against a running ai-router at URL (default
http://127.0.0.1:8080), the same script for the real GPU stack and for CI's router on
fake backends. Python 3 standard library only; every request has a timeout.

Checks: /health, /health/ready (every backend up; xAI may be unconfigured), /v1/models,
plain chats (well-formed answer, `x-ai-router-route` one of primary|xai|enrich|meta,
`x-request-id`), META via Open WebUI's `X-OpenWebUI-Task` header, streaming (every data
line JSON, usage when asked, `[DONE]` last, then the body ends), and OpenAI's error
envelope for bad requests. On the real stack the plain chats go through the classifier,
so one or two of them may be answered by xAI (a fraction of a cent).

Prints one line per check, then "N passed, N failed"; exits 1 if any check failed.
Environment: AI_ROUTER_URL (instead of --url), LIVE_TIMEOUT (seconds per request, 180),
EXPECT_ROUTES (e.g. "primary,xai,enrich,meta": fail unless each was seen; CI sets it).
"""

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

ROUTES = {"primary", "xai", "enrich", "meta"}
# Open WebUI's title task, as it sends it (`### Task:` frame, chat history, the header).
TITLE_PROMPT = (
    "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.\n"
    "### Output:\nJSON format: { \"title\": \"your concise title here\" }\n"
    "### Chat History:\n<chat_history>\nUSER: How do I bake sourdough bread at home?\n"
    "ASSISTANT: Start with an active starter, then mix, fold, proof and bake.\n</chat_history>"
)


class Failure(Exception):
    pass


class Client:
    def __init__(self, base, timeout):
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.routes_seen = set()

    def request(self, method, path, body=None, headers=None, raw=None):
        """(status, headers, parsed JSON or text) of one request; HTTP errors included."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.headers, parse(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, err.headers, parse(err.read())
        except (urllib.error.URLError, OSError) as err:
            raise Failure(f"{method} {path}: {getattr(err, 'reason', err)}") from None

    def open_stream(self, body):
        req = urllib.request.Request(self.base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            raise Failure(f"stream: HTTP {err.code}: {parse(err.read())}") from None
        except (urllib.error.URLError, OSError) as err:
            raise Failure(f"stream: {getattr(err, 'reason', err)}") from None


def parse(data):
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def expect(condition, message):
    if not condition:
        raise Failure(message)


def check_route_headers(client, headers, want=None):
    route = headers.get("x-ai-router-route")
    expect(route in ROUTES, f"x-ai-router-route is {route!r}, not one of {sorted(ROUTES)}")
    if want:
        expect(route == want, f"x-ai-router-route is {route!r}, expected {want!r}")
    request_id = headers.get("x-request-id") or ""
    expect(re.fullmatch(r"[0-9a-f]{8}", request_id), f"x-request-id is {request_id!r}, not 8 hex chars")
    client.routes_seen.add(route)
    return route


def check_completion(body, model):
    expect(isinstance(body, dict), f"answer is not JSON: {str(body)[:200]}")
    expect(body.get("object") == "chat.completion", f"object is {body.get('object')!r}")
    expect(body.get("model") == model, f"answer names model {body.get('model')!r}, not {model!r}")
    choices = body.get("choices") or []
    expect(choices and isinstance(choices[0].get("message"), dict), "no choices[0].message")
    message = choices[0]["message"]
    text = message.get("content") or message.get("reasoning_content") or message.get("reasoning") or ""
    expect(isinstance(text, str) and text.strip(), "empty answer (no content, no reasoning)")
    return text


def check_envelope(status, body, want_status):
    expect(status == want_status, f"HTTP {status}, expected {want_status}: {str(body)[:200]}")
    error = body.get("error") if isinstance(body, dict) else None
    expect(isinstance(error, dict), f"no OpenAI error envelope: {str(body)[:200]}")
    expect(isinstance(error.get("message"), str) and error["message"], "error.message missing")
    expect(isinstance(error.get("type"), str), "error.type missing")
    expect("param" in error and "code" in error, "error.param or error.code missing")
    return error


# --- the checks, in order -----------------------------------------------------------

def health(client, ctx):
    status, _, body = client.request("GET", "/health")
    expect(status == 200 and isinstance(body, dict) and body.get("status") == "ok", f"HTTP {status}: {body}")


def ready(client, ctx):
    status, _, body = client.request("GET", "/health/ready")
    expect(isinstance(body, dict) and "backends" in body, f"HTTP {status}: {str(body)[:200]}")
    notes, down = [], []
    for name, backend in body["backends"].items():
        state = backend.get("status")
        notes.append(f"{name} {state}")
        if state not in ("up", "unconfigured"):
            down.append(f"{name} {state}: {backend.get('error')}")
    expect(status == 200, f"HTTP {status}, status {body.get('status')}: {'; '.join(down)}")
    expect(not down, "; ".join(down))
    return ", ".join(notes)


def models(client, ctx):
    status, headers, body = client.request("GET", "/v1/models")
    expect(status == 200 and isinstance(body, dict), f"HTTP {status}: {str(body)[:200]}")
    expect(body.get("object") == "list" and body.get("data"), f"not a model list: {body}")
    ids = [m.get("id") for m in body["data"]]
    expect(all(isinstance(i, str) and i for i in ids), f"model without id: {body['data']}")
    ctx["model"] = ids[0]
    return "models: " + ", ".join(ids)


def chat(prompt):
    def run(client, ctx):
        body = {"model": ctx["model"], "messages": [{"role": "user", "content": prompt}]}
        status, headers, answer = client.request("POST", "/v1/chat/completions", body)
        expect(status == 200, f"HTTP {status}: {str(answer)[:300]}")
        route = check_route_headers(client, headers)
        text = check_completion(answer, ctx["model"])
        return f"route {route}: {' '.join(text.split())[:60]!r}"
    return run


def meta(client, ctx):
    body = {"model": ctx["model"], "stream": False, "messages": [{"role": "user", "content": TITLE_PROMPT}]}
    status, headers, answer = client.request("POST", "/v1/chat/completions", body,
                                             headers={"X-OpenWebUI-Task": "title_generation"})
    expect(status == 200, f"HTTP {status}: {str(answer)[:300]}")
    check_route_headers(client, headers, want="meta")
    text = check_completion(answer, ctx["model"])
    return f"route meta: {' '.join(text.split())[:60]!r}"


def stream(client, ctx):
    body = {"model": ctx["model"], "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Name three colours, one word each."}]}
    started = time.monotonic()
    first = None
    text, usage, done, data_lines = "", None, False, 0
    with client.open_stream(body) as resp:
        expect(resp.status == 200, f"HTTP {resp.status}")
        expect(resp.headers.get("Content-Type", "").startswith("text/event-stream"),
               f"Content-Type {resp.headers.get('Content-Type')!r}")
        route = check_route_headers(client, resp.headers)
        for raw in resp:  # ends when the router closes the body (it must, after [DONE])
            line = raw.decode().rstrip("\r\n")
            if not line or line.startswith(":"):
                continue  # event separator, or a keep-alive comment
            expect(not line.startswith("event:"), f"an `event:` line (SDKs mishandle them): {line}")
            expect(line.startswith("data: "), f"not a data line: {line[:120]}")
            expect(not done, f"data after [DONE]: {line[:120]}")
            payload = line[len("data: "):]
            if payload == "[DONE]":
                done = True
                continue
            data_lines += 1
            try:
                event = json.loads(payload)
            except ValueError:
                raise Failure(f"data line is not JSON: {payload[:120]}") from None
            expect("error" not in event, f"error in the stream: {event.get('error')}")
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                piece = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""
                if piece and first is None:
                    first = time.monotonic() - started
                text += delta.get("content") or ""
            usage = event.get("usage") or usage
    expect(done, "the stream ended without data: [DONE]")
    expect(first is not None, "no content or reasoning in the stream")
    expect(isinstance(usage, dict), "no usage chunk although stream_options.include_usage was set")
    return f"route {route}: {data_lines} events, first token after {first:.2f} s, {usage.get('completion_tokens')} tokens"


def bad_json(client, ctx):
    status, _, body = client.request("POST", "/v1/chat/completions", raw=b'{"model": "x", "messages": [')
    error = check_envelope(status, body, 400)
    return f"400 {error.get('code')}"


def missing_messages(client, ctx):
    status, _, body = client.request("POST", "/v1/chat/completions", {"model": ctx["model"]})
    error = check_envelope(status, body, 400)
    expect(error.get("param") == "messages", f"param is {error.get('param')!r}, expected 'messages'")
    return f"400 {error.get('code')} param=messages"


def unknown_path(client, ctx):
    status, _, body = client.request("GET", "/v1/no-such-endpoint")
    error = check_envelope(status, body, 404)
    return f"404 {error.get('code')}"


def routes_seen(client, ctx):
    want = {r.strip() for r in ctx["expect_routes"].split(",") if r.strip()}
    missing = want - client.routes_seen
    expect(not missing, f"never answered on: {', '.join(sorted(missing))} (seen: {', '.join(sorted(client.routes_seen))})")
    return "seen: " + ", ".join(sorted(client.routes_seen))


def main():
    parser = argparse.ArgumentParser(description="Integration checks against a running ai-router.")
    parser.add_argument("--url", default=os.environ.get("AI_ROUTER_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("LIVE_TIMEOUT", "180")))
    parser.add_argument("--expect-routes", default=os.environ.get("EXPECT_ROUTES", ""))
    args = parser.parse_args()
    base = args.url.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    client = Client(base, args.timeout)
    ctx = {"model": "ai-router", "expect_routes": args.expect_routes}

    checks = [
        ("GET /health", health),
        ("GET /health/ready", ready),
        ("GET /v1/models", models),
        ("chat: a simple question", chat("Reply with exactly one word: pong.")),
        ("chat: a question about today", chat("What is the weather in Oslo today? One sentence.")),
        ("chat: a proof", chat("Prove that the square root of 2 is irrational, in at most four sentences.")),
        ("META: Open WebUI title task", meta),
        ("streaming", stream),
        ("error: malformed JSON", bad_json),
        ("error: no messages", missing_messages),
        ("error: unknown path", unknown_path),
    ]
    if args.expect_routes:
        checks.append((f"routes {args.expect_routes}", routes_seen))

    print(f"ai-router live checks against {base}")
    passed = failed = 0
    for name, check in checks:
        started = time.monotonic()
        try:
            note = check(client, ctx)
        except Failure as failure:
            failed += 1
            print(f"  FAIL {name}: {failure}")
            continue
        except Exception as error:  # a bug in a check or a garbled answer: report, go on
            failed += 1
            print(f"  FAIL {name}: {type(error).__name__}: {error}")
            continue
        passed += 1
        elapsed = time.monotonic() - started
        print(f"  ok   {name} ({elapsed:.2f} s){': ' + note if note else ''}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
