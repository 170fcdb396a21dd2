"""End-to-end smoke test: the router in front of a real llama-server.

Run by `make e2e` (infra/demo/e2e.sh), which starts both servers and sets:
  AI_ROUTER_URL       the router's base URL, ending in /v1
  AI_ROUTER_SESSIONS  the router's session-log folder
  AI_ROUTER_BIN       the router binary (to start a second router with a dead backend)
  AI_ROUTER_ROOT      the repository root
Each check is what a user of curl, the OpenAI SDK or Open WebUI would look at.
Ends with the line "N passed, N failed" and exits non-zero on any failure.
"""

import glob
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.parse

import openai

URL = os.environ["AI_ROUTER_URL"]
SESSIONS = os.environ["AI_ROUTER_SESSIONS"]
BIN = os.environ["AI_ROUTER_BIN"]
ROOT = os.environ["AI_ROUTER_ROOT"]
QUESTION = [{"role": "user", "content": "Name three colours."}]

client = openai.OpenAI(base_url=URL, api_key="unused", max_retries=0, timeout=120)


def session(request_id, outcome=None, wait=10.0):
    """The session log for request_id (written off the request path, so poll)."""
    deadline = time.time() + wait
    while time.time() < deadline:
        for path in glob.glob(os.path.join(SESSIONS, f"*_{request_id}.json")):
            with open(path) as f:
                record = json.load(f)
            if outcome is None or record["outcome"] == outcome:
                return record
        time.sleep(0.1)
    raise AssertionError(f"no session log for {request_id} with outcome {outcome}")


def test_models_list():
    ids = [m.id for m in client.models.list()]
    # The automatic model first, then the routes a client may choose.
    assert ids == ["ai-router", "ai-router/cloud", "ai-router/search", "ai-router/local"], ids


def test_chat_non_stream():
    raw = client.chat.completions.with_raw_response.create(
        model="ai-router:latest", messages=QUESTION, max_tokens=5
    )
    reply = raw.parse()
    request_id = raw.headers["x-request-id"]
    assert raw.headers["x-ai-router-route"] in ("primary", "enrich"), raw.headers
    assert len(request_id) == 8, request_id
    assert reply.model == "ai-router", reply.model
    content = reply.choices[0].message.content
    assert isinstance(content, str) and content.strip(), reply
    record = session(request_id, "ok")
    classify, answer = record["steps"]
    assert classify["step"] == "classify" and classify["provider"] == "classifier", classify
    # The demo holds the classifier to the labels (llama-server's grammar): a real label,
    # with its probability from the log-probabilities, never a fallback.
    assert record["classification"] in ("SIMPLE", "MODERATE", "COMPLEX", "ENRICH"), record
    assert record["classification_fallback"] is None, record["classification_fallback"]
    assert record["classification_raw"] == classify["response_content"] == record["classification"]
    assert "grammar" in classify["params"], classify["params"]
    assert 0 < record["classification_confidence"]["p"] <= 1, record["classification_confidence"]
    assert answer["step"] == "answer" and answer["response_content"] == content
    assert record["route"] in ("primary", "enrich"), record["route"]
    # The router owns the length: max_tokens never reaches the local model.
    assert "max_tokens" not in answer["params"], answer["params"]
    print(f"    answer: {content.strip()[:80]!r}")


def test_chat_stream():
    stream = client.chat.completions.create(model="ai-router", messages=QUESTION, stream=True)
    chunks = list(stream)
    assert len(chunks) >= 2, chunks
    assert all(c.model == "ai-router" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip(), "the stream carried no text"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length"), chunks[-1]
    assert all(c.usage is None for c in chunks), "usage sent though not asked for"


def test_stream_usage_when_asked():
    stream = client.chat.completions.create(
        model="ai-router", messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0, chunks[-1]


def test_completions_are_passed_through_with_a_session_log():
    raw = client.completions.with_raw_response.create(
        model="my-completions", prompt="Once upon a time", max_tokens=8
    )
    reply = raw.parse()
    assert raw.headers["x-ai-router-route"] == "completions", raw.headers
    assert reply.model == "my-completions", reply.model
    assert reply.choices[0].text.strip(), reply
    record = session(raw.headers["x-request-id"], "ok")
    (step,) = record["steps"]
    assert record["route"] == "completions" and record["classification"] is None, record
    assert step["provider"] == "primary" and step["response_content"] == reply.choices[0].text
    # Passed as it came: the client's max_tokens reaches the model.
    assert step["params"]["max_tokens"] == 8, step["params"]
    stream = client.completions.create(
        model="my-completions", prompt="Once upon a time", max_tokens=8, stream=True
    )
    chunks = list(stream)
    assert all(c.model == "my-completions" for c in chunks), chunks
    assert "".join(c.choices[0].text for c in chunks if c.choices).strip(), chunks


def raw_stream_request():
    parts = urllib.parse.urlsplit(URL)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    body = json.dumps({"model": "ai-router", "stream": True, "messages": QUESTION})
    conn.request("POST", parts.path + "/chat/completions", body, {"Content-Type": "application/json"})
    return conn, conn.getresponse()


def test_raw_sse_reader():
    conn, response = raw_stream_request()
    assert response.status == 200
    assert response.getheader("content-type").startswith("text/event-stream")
    request_id = response.getheader("x-request-id")
    data = []
    for line in response:  # ends only if the router closes the body after [DONE]
        line = line.decode().rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].strip())
        else:
            assert line == "" or line.startswith(":"), f"unexpected SSE line {line!r}"
    conn.close()
    assert data[-1] == "[DONE]", data[-3:]
    for payload in data[:-1]:
        assert "error" not in json.loads(payload), payload
    record = session(request_id, "ok")
    answer = next(s for s in record["steps"] if s["step"] == "answer")
    assert record["stream"] is True and answer["ttft_ms"] is not None, answer


def test_curl():
    body = json.dumps({"model": "ai-router", "stream": True, "messages": QUESTION})
    out = subprocess.run(
        ["curl", "-sN", "--max-time", "120", URL + "/chat/completions",
         "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.rstrip().endswith("data: [DONE]"), out[-200:]


def test_bad_request_raises_bad_request_error():
    try:
        client.chat.completions.create(model="ai-router", messages=[])
    except openai.BadRequestError as e:
        assert e.status_code == 400
        assert e.body["param"] == "messages", e.body
        return
    raise AssertionError("no BadRequestError")


def test_unknown_route_raises_not_found_error():
    try:
        client.embeddings.create(model="ai-router", input="hi")
    except openai.NotFoundError as e:
        assert e.status_code == 404
        return
    raise AssertionError("no NotFoundError")


def test_dead_backend_raises_internal_server_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ,
               AI_ROUTER_SERVER__LISTEN=f"127.0.0.1:{port}",
               AI_ROUTER_BACKENDS__PRIMARY__BASE_URL=f"http://127.0.0.1:{dead_port}/v1",
               AI_ROUTER_SESSIONS__DIR=SESSIONS)
    proc = subprocess.Popen([BIN, "serve", "--config", "config/demo.toml"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        dead = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        for _ in range(100):
            try:
                dead.models.list()
                break
            except openai.APIConnectionError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"the second router did not start (exit code {proc.poll()})")
        for stream in (False, True):
            try:
                dead.chat.completions.create(model="ai-router", messages=QUESTION, stream=stream)
            except openai.InternalServerError as e:
                assert e.status_code == 502, e.status_code
                assert "primary" in e.message and "refused" in e.message, e.message
                continue
            raise AssertionError("no InternalServerError")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0, "the router did not exit cleanly on SIGTERM"


def test_open_webui_task_header_is_meta_without_classification():
    raw = client.chat.completions.with_raw_response.create(
        model="ai-router",
        messages=[{"role": "user", "content": "### Task:\nGenerate a concise, 3-5 word title."}],
        extra_headers={"X-OpenWebUI-Task": "title_generation"},
    )
    assert raw.headers["x-ai-router-route"] == "meta"
    record = session(raw.headers["x-request-id"], "ok")
    assert [s["step"] for s in record["steps"]] == ["answer"], "META called the classifier"
    assert record["meta_match"] == "header x-openwebui-task: title_generation"
    assert record["steps"][0]["params"]["chat_template_kwargs"] == {"enable_thinking": False}


def test_enrich_without_a_key_is_answered_locally_and_says_so():
    # Chosen from the model list (as in Open WebUI's menu): no classifier call.
    raw = client.chat.completions.with_raw_response.create(
        model="ai-router/search",
        messages=[{"role": "user", "content": "What's the weather in Oslo today?"}],
    )
    assert raw.headers["x-ai-router-route"] == "enrich"
    reply = raw.parse()
    assert reply.choices[0].message.content.strip()
    assert reply.model == "ai-router/search", reply.model
    record = session(raw.headers["x-request-id"], "ok")
    assert record["classification"] == "ENRICH" and record["client_choice"] == "ai-router/search"
    assert [s["step"] for s in record["steps"]] == ["answer"], "the classifier was asked"
    assert "XAI_API_KEY is not set" in record["route_fallback"], record["route_fallback"]


def test_classify_command():
    out = subprocess.run(
        [BIN, "classify", "--config", "config/demo.toml", "hello there"], cwd=ROOT,
        env=dict(os.environ, AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL=URL),
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert out.startswith("decision:") and "raw reply:" in out and "time:" in out, out
    assert "confidence:" in out and "fallback:    none" in out, out


def test_client_disconnect_is_logged():
    conn, response = raw_stream_request()
    request_id = response.getheader("x-request-id")
    first = response.readline()
    assert first.startswith(b"data:"), first
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    record = session(request_id, "client_disconnected")
    assert record["http_status"] == 499


def main():
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_")]
    passed = failed = 0
    for name, fn in tests:
        started = time.time()
        try:
            fn()
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {name} ({time.time() - started:.1f} s)")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name} ({time.time() - started:.1f} s)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
