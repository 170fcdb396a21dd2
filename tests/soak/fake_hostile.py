#!/usr/bin/env python3
"""The soak's misbehaving backend: an OpenAI-compatible server on its own loopback port
that answers health probes (GET /v1/models) normally and every chat in the way its last
user message asks for with `mode=NAME` (hostile.py picks the modes, in rotation):

  trickle           stream: `data: {"cho…` one byte every 0.2 s, an event never completes;
                    JSON: a valid Content-Length, the body one byte every 0.2 s
  pings             stream: `: ping` comments every 0.2 s, never an event
  hang_headers      200 and headers, then silence (until the router hangs up)
  endless           stream: valid chunks of ~4 KiB of text every 5 ms, forever;
                    JSON: `{"choices":[{"message":{"content":"xxxx…` forever, no length
  oversized         JSON: a whole answer of --max-bytes + 64 KiB (Content-Length set);
                    stream: one event that size
  close_mid         stream: two chunks, then the connection closed without [DONE];
                    JSON: Content-Length 10000, 100 bytes sent, connection closed
  error_500         500 with Content-Length 256 MiB, a JSON error body sent until the
                    router hangs up (it should read 64 KiB at most)
  ping_after_token  stream: one content chunk, then `: ping` comments every 0.2 s

Nothing here ends by itself: every sender stops when the router closes the connection
(a write fails, or the socket reads EOF), or after --give-up seconds, which the judge
counts as a failure (the router never let go). GET /hostile/status says what was
served: per request its tag (the `[h…]` in the message), mode, bytes sent, start and end
(time.monotonic(), the same clock as load.py's: CLOCK_MONOTONIC is system-wide) and how
it ended; and how many senders are still running.

Usage: fake_hostile.py --model fake-hostile --max-bytes N; prints "listening on 127.0.0.1:PORT".
"""

import argparse
import json
import re
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TICK = 0.2  # seconds between the trickle's bytes and the pings
TEXT = ('The story goes on, and on: "another line", another clause; then a newline.\n' * 64)[:4096]


class RouterLeft(Exception):
    """The router closed the connection: the sender stops."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-hostile/1"

    def log_message(self, fmt, *args):  # probes and requests are not logged one by one
        pass

    # --- plumbing -----------------------------------------------------------------
    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def put(self, data):
        """Writes `data` now; RouterLeft when the router has closed the connection."""
        view = memoryview(data)
        while view:
            if time.monotonic() - self.began > self.server.cfg.give_up:
                raise TimeoutError  # the router neither reads nor hangs up
            try:
                n = self.connection.send(view)
            except TimeoutError:  # the socket's 1 s timeout: a full buffer, try again
                continue
            except OSError as e:  # BrokenPipe, ConnectionReset
                raise RouterLeft() from e
            view = view[n:]
            self.sent += n

    def pause(self, seconds):
        """Waits, but notices the router leaving (EOF or reset on the socket) and the
        give-up time."""
        end = time.monotonic() + seconds
        while True:
            if time.monotonic() - self.began > self.server.cfg.give_up:
                raise TimeoutError
            left = end - time.monotonic()
            if left <= 0:
                return
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.5))
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        raise RouterLeft()
                except OSError as e:
                    raise RouterLeft() from e
                time.sleep(min(left, 0.05))  # a pipelined byte: not ours to read

    def headers_only(self, status, content_type, length=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

    @staticmethod
    def chunk(delta, finish=None):
        return {"id": "chatcmpl-hostile", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": "fake-hostile", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def event(self, payload):
        self.put(f"data: {json.dumps(payload)}\n\n".encode())

    # --- routes -------------------------------------------------------------------
    def do_GET(self):
        if self.path in ("/v1/models", "/models"):
            self.send_json(200, {"object": "list", "data": [
                {"id": self.server.cfg.model, "object": "model", "owned_by": "fake"}]})
        elif self.path == "/hostile/status":
            self.send_json(200, self.server.status())
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        messages = body.get("messages") or [{}]
        text = str(next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), ""))
        mode = re.search(r"mode=(\w+)", text)
        tag = re.search(r"\[(h[\w-]+)\]", text)
        mode = mode.group(1) if mode else "unknown"
        stream = bool(body.get("stream"))
        self.sent = 0
        self.began = time.monotonic()
        self.connection.settimeout(1.0)
        entry = self.server.begin(tag.group(1) if tag else "?", mode, stream, self.began)
        ended = "finished"
        try:
            getattr(self, f"mode_{mode}", self.mode_unknown)(stream)
        except RouterLeft:
            ended = "router_closed"
        except TimeoutError:
            ended = "gave_up"
        except Exception as e:  # noqa: BLE001 - reported in the status, judged there
            ended = f"crashed: {type(e).__name__}: {e}"
        finally:
            self.close_connection = True
            self.server.end(entry, ended, self.sent)

    # --- the modes ----------------------------------------------------------------
    def mode_unknown(self, stream):
        self.send_json(400, {"error": {"message": "fake-hostile: no mode=NAME in the message"}})

    def mode_trickle(self, stream):
        if stream:
            self.headers_only(200, "text/event-stream")
            prefix = b'data: {"choices":'
            for i in range(10**9):
                self.put(prefix[i:i + 1] if i < len(prefix) else b" ")
                self.pause(TICK)
        else:
            self.headers_only(200, "application/json", 10**6)
            for _ in range(10**6):
                self.put(b" ")
                self.pause(TICK)

    def mode_pings(self, stream):
        self.headers_only(200, "text/event-stream")
        while True:
            self.put(b": ping\n\n")
            self.pause(TICK)

    def mode_hang_headers(self, stream):
        self.headers_only(200, "text/event-stream" if stream else "application/json")
        while True:
            self.pause(1.0)

    def mode_endless(self, stream):
        if stream:
            self.headers_only(200, "text/event-stream")
            self.event(self.chunk({"role": "assistant", "content": ""}))
            while True:
                self.event(self.chunk({"content": TEXT}))
                self.pause(0.005)
        else:
            self.headers_only(200, "application/json")
            self.put(b'{"id":"chatcmpl-hostile","object":"chat.completion","model":"fake-hostile",'
                     b'"choices":[{"index":0,"message":{"role":"assistant","content":"')
            block = b"x" * 65536
            while True:
                self.put(block)
                if time.monotonic() - self.began > self.server.cfg.give_up:
                    raise TimeoutError

    def mode_oversized(self, stream):
        size = self.server.cfg.max_bytes + 65536
        if stream:
            self.headers_only(200, "text/event-stream")
            payload = json.dumps(self.chunk({"content": "o" * size})).encode()
            self.put(b"data: " + payload + b"\n\n")
            self.put(b"data: [DONE]\n\n")
        else:
            answer = {"id": "chatcmpl-hostile", "object": "chat.completion", "model": "fake-hostile",
                      "choices": [{"index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": "o" * size}}]}
            data = json.dumps(answer).encode()
            self.headers_only(200, "application/json", len(data))
            self.put(data)
        self.pause(2.0)  # let the router read (or refuse) it before the socket closes

    def mode_close_mid(self, stream):
        if stream:
            self.headers_only(200, "text/event-stream")
            self.event(self.chunk({"role": "assistant", "content": ""}))
            self.event(self.chunk({"content": "Once upon a time"}))
            self.pause(0.1)
        else:
            self.headers_only(200, "application/json", 10000)
            self.put(b'{"id":"chatcmpl-hostile","object":"chat.completion","choices":[{"index":0,'
                     b'"message":{"role":"assistant","content":"Once upon a time' + b" " * 20)
        self.connection.shutdown(socket.SHUT_RDWR)

    def mode_error_500(self, stream):
        self.headers_only(500, "application/json", 256 * 1024 * 1024)
        self.put(b'{"error":{"message":"fake-hostile: internal error ')
        block = b"e" * 65536
        for _ in range(256 * 16 - 1):
            self.put(block)
            self.pause(0.01)

    def mode_ping_after_token(self, stream):
        if not stream:
            return self.mode_unknown(stream)
        self.headers_only(200, "text/event-stream")
        self.event(self.chunk({"role": "assistant", "content": "Once"}))
        while True:
            self.put(b": ping\n\n")
            self.pause(TICK)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cfg):
        super().__init__(("127.0.0.1", cfg.port), Handler)
        self.cfg = cfg
        self.lock = threading.Lock()
        self.served = []  # dicts, one per chat
        self.active = 0

    def begin(self, tag, mode, stream, began):
        entry = {"tag": tag, "mode": mode, "stream": stream, "start": began, "end": None,
                 "ended": None, "bytes": 0}
        with self.lock:
            self.served.append(entry)
            self.active += 1
        return entry

    def end(self, entry, ended, sent):
        with self.lock:
            entry.update(end=time.monotonic(), ended=ended, bytes=sent)
            self.active -= 1
        if ended not in ("finished", "router_closed"):
            sys.stderr.write(f"[fake-hostile] {entry}\n")

    def status(self):
        with self.lock:
            return {"active": self.active, "served": list(self.served)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default="fake-hostile")
    p.add_argument("--max-bytes", type=int, required=True, help="the router's max_response_bytes for this backend")
    p.add_argument("--give-up", type=float, default=120.0, help="a sender stops by itself after this many s")
    cfg = p.parse_args()
    server = Server(cfg)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
