#!/usr/bin/env python3
"""A fake OpenAI-compatible backend that streams: every POST .../chat/completions with
`"stream": true` gets an SSE answer of CHUNKS content chunks, the first after FIRST_MS, then one every GAP_MS, a
finish chunk, a usage chunk and `data: [DONE]`.

Each content chunk carries, in its text, the CLOCK_MONOTONIC nanoseconds at which the
request was read and at which that chunk was handed to the kernel:
`"<seq>:<recv_ns>:<sent_ns>|"`. The client (on the same machine, so the same clock)
compares arrival with `sent_ns`, which makes the measure independent of this server's own
scheduling jitter: a late or batched chunk shows up as a long send-to-arrival delay.

A thread per connection and `time.sleep` (nanosleep, unlike asyncio's millisecond epoll
timeouts) keep the schedule tight; each HTTP chunk leaves in one `sendall` with
TCP_NODELAY, so nothing here batches chunks. A request without `"stream": true` gets one
canned JSON completion at once (the profiler uses that; the bench's throughput runs use
nginx, which is much faster). Standard library only.

usage: fake_sse.py PORT [CHUNKS] [GAP_MS] [FIRST_MS]
"""

import json
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "fake",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Blue, white, red."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 42, "completion_tokens": 5, "total_tokens": 47},
}


def chunk(payload):
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    chunks, gap, first = 20, 0.010, 0.050

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b'{"object":"list","data":[{"id":"fake","object":"model"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = self.rfile.read(length)
        recv_ns = time.monotonic_ns()
        if b'"stream":true' not in request.replace(b" ", b""):
            body = json.dumps(COMPLETION).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
                "model": "fake"}
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        sock = self.connection
        due = time.monotonic() + self.first
        for seq in range(self.chunks):
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            due += self.gap
            sent_ns = time.monotonic_ns()
            delta = {"content": f"{seq}:{recv_ns}:{sent_ns}|"}
            if seq == 0:
                delta["role"] = "assistant"
            sock.sendall(chunk({**base, "choices": [
                {"index": 0, "delta": delta, "finish_reason": None}]}))
        tail = chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        tail += chunk({**base, "choices": [], "usage": {
            "prompt_tokens": 12, "completion_tokens": self.chunks,
            "total_tokens": 12 + self.chunks}})
        done = b"data: [DONE]\n\n"
        tail += b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done)
        sock.sendall(tail)


def main():
    port = int(sys.argv[1])
    if len(sys.argv) > 2:
        Handler.chunks = int(sys.argv[2])
    if len(sys.argv) > 3:
        Handler.gap = float(sys.argv[3]) / 1000
    if len(sys.argv) > 4:
        Handler.first = float(sys.argv[4]) / 1000
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
