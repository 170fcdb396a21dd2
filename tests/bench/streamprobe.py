"""The streaming probe: a raw-socket HTTP/1.1 client that times every SSE event as it
arrives and reads the send stamps `fake_sse.py` puts in each chunk.

For each stream it returns the client's send time, the upstream's request-read time, and
per content chunk its sequence number, the upstream's send time, its arrival time here
and which `recv()` delivered it. All times are CLOCK_MONOTONIC nanoseconds, shared by
every process on the machine.
"""

import json
import socket
import time


class ProbeError(Exception):
    pass


class Connection:
    """One keep-alive connection to 127.0.0.1:port, used for one stream after another."""

    def __init__(self, port, timeout=10.0):
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def close(self):
        self.sock.close()

    def stream(self, path, headers, body):
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                "Content-Type: application/json", "Accept: text/event-stream",
                f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        sent = time.monotonic_ns()
        self.sock.sendall(request)
        return self._read(sent)

    def _recv(self):
        data = self.sock.recv(65536)
        now = time.monotonic_ns()
        if not data:
            raise ProbeError("connection closed mid-response")
        return data, now

    def _read(self, sent):
        raw, recv_time = self.pending, time.monotonic_ns()
        while b"\r\n\r\n" not in raw:
            data, recv_time = self._recv()
            raw += data
        header, raw = raw.split(b"\r\n\r\n", 1)
        status = int(header.split(b" ", 2)[1])
        fields = {}
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if status != 200 or fields.get(b"transfer-encoding") != b"chunked":
            raise ProbeError(f"status {status}, headers {fields}")
        result = {"sent_ns": sent, "upstream_recv_ns": None, "chunks": [], "recvs": 0,
                  "route": fields.get(b"x-ai-router-route", b"").decode()}
        body, text, recv_index = raw, b"", 0
        while True:
            body, decoded, finished = dechunk(body)
            text += decoded
            while b"\n\n" in text:
                event, text = text.split(b"\n\n", 1)
                self._event(event, recv_time, recv_index, result)
            if finished is not None:
                self.pending = finished
                result["recvs"] = recv_index
                return result
            data, recv_time = self._recv()
            recv_index += 1
            body += data

    @staticmethod
    def _event(event, arrived, recv_index, result):
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            chunk = json.loads(data)
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content") or ""
                for stamp in filter(None, content.split("|")):
                    seq, recv_ns, sent_ns = (int(x) for x in stamp.split(":"))
                    result["upstream_recv_ns"] = recv_ns
                    result["chunks"].append({"seq": seq, "sent_ns": sent_ns,
                                             "arrived_ns": arrived, "recv": recv_index})


def dechunk(body):
    """Decodes the complete HTTP chunks at the start of `body`. Returns what is left, the
    decoded bytes, and (once the last chunk was read) the bytes after the message."""
    out = b""
    while True:
        line_end = body.find(b"\r\n")
        if line_end < 0:
            return body, out, None
        size = int(body[:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            if body[start:start + 2] == b"\r\n":
                return b"", out, body[start + 2:]
            return body, out, None
        if len(body) < start + size + 2:
            return body, out, None
        out += body[start:start + size]
        body = body[start + size + 2:]
