#!/usr/bin/env python3
"""`make cluster-test`'s load client: the soak's request mix (tests/soak/clients.py:
streams, META task prompts with and without X-OpenWebUI-Task, classified chats, ENRICH
with its search hop, regenerates, long pastes, images, hang-ups and bad requests) sent
through BOTH router replicas in turn, from the client host's namespace, for --secs.

Each client thread keeps one keep-alive connection per replica, like an SDK behind a
load balancer, and sends its requests to the replicas alternately. The answers are
checked by the soak's own Client.send (status, route, body or SSE stream to [DONE]).
A request that never reached a router (connection refused: the replica is down) or
whose kept-alive connection the router closed before answering (it is draining) is
sent again to the other replica, as a load balancer or the OpenAI SDK would; those
retries are counted apart. Nothing else is retried.

A watcher thread reads each replica's /metrics every --watch-every seconds and keeps
`ai_router_endpoint_up{backend="primary"}` per endpoint, so the judge can tell when an
endpoint was ejected and readmitted on each replica.

Writes --started (the load's start, once the clients run) and, at the end, --out: every
request (kind, replica, retries, times, result, x-request-id) and every watch sample.
Timestamps are wall-clock (time.time()) so they compare with cluster.sh's events.
Python 3 standard library only.
"""

import argparse
import http.client
import json
import os
import random
import re
import sys
import threading
import time
import types
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "soak"))
from clients import Client  # noqa: E402  (tests/soak/clients.py: the mix and its checks)

# Before any answer: the request never reached a router that would answer it.
NOT_ANSWERED = (ConnectionRefusedError, ConnectionResetError, BrokenPipeError)
METRIC = re.compile(r'^ai_router_endpoint_up\{([^}]*)\}\s+(\S+)', re.M)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class TrackedConnection(http.client.HTTPConnection):
    """Knows whether the router answered (sent a status line) on this connection."""

    answered = False
    opened = None  # when the TCP connection was made (time.time())

    def connect(self):
        super().connect()
        self.opened = time.time()

    def getresponse(self):
        response = super().getresponse()
        self.answered = True
        return response


class ClusterClient(Client):
    """The soak's client, sending to the replicas in turn; retries only what never
    reached a router that would answer it."""

    def __init__(self, index, args, records, lock, deadline):
        super().__init__(index, args, None, time.monotonic(), deadline)
        self.replicas = args.replicas
        self.records = records
        self.lock = lock
        self.conns = {}
        self.target = index % len(self.replicas)

    def connection(self):
        conn = self.conns.get(self.target)
        if conn is None:
            host, port = self.replicas[self.target]["addr"]
            conn = TrackedConnection(host, port, timeout=self.args.timeout)
            self.conns[self.target] = conn
        conn.answered = False
        return conn

    def drop(self):
        conn = self.conns.pop(self.target, None)
        if conn is not None:
            conn.close()

    def drop_all(self):
        for target in list(self.conns):
            self.target = target
            self.drop()

    def run(self):
        rng = self.work.rng
        time.sleep(rng.uniform(0, 0.5))
        turn = self.index
        while time.monotonic() < self.deadline:
            self.seq += 1
            kind = rng.choices(self.work.kinds, self.work.kind_weights)[0]
            request = self.work.make(kind, f"c{self.index}-{self.seq}", self.recent)
            turn += 1
            self.target = turn % len(self.replicas)
            record = {"kind": request.kind, "label": request.label, "stream": request.stream,
                      "t0": time.time(), "retries": []}
            for _ in range(len(self.replicas) + 1):
                record["replica"] = self.replicas[self.target]["name"]
                record["t_send"] = time.time()
                try:
                    ok, detail, ttfb, rid = self.send(request)
                except NOT_ANSWERED as e:
                    conn = self.conns.get(self.target)
                    if isinstance(e, ConnectionRefusedError) or (conn is not None and not conn.answered):
                        why = "refused" if isinstance(e, ConnectionRefusedError) else "closed before answering"
                        record["retries"].append([record["replica"], why, conn.opened if conn else None])
                        self.drop()
                        self.target = (self.target + 1) % len(self.replicas)
                        continue
                    ok, detail, ttfb, rid = False, f"transport: {type(e).__name__}: {e}", None, None
                    self.drop()
                except (OSError, http.client.HTTPException, ValueError) as e:
                    ok, detail, ttfb, rid = False, f"transport: {type(e).__name__}: {e}", None, None
                    self.drop()
                break
            else:
                ok, detail, ttfb, rid = False, "every replica refused", None, None
            record.update(t1=time.time(), ok=ok, detail=detail, ttfb=ttfb, rid=rid,
                          result=classify(ok, detail))
            with self.lock:
                self.records.append(record)
            if ok and request.kind in ("stream", "json") and request.label:
                self.recent.append(request)
            time.sleep(rng.uniform(0, self.args.think))
        self.drop_all()


def classify(ok, detail):
    """ok; inband: a stream that had started and ended with an in-band error, then
    [DONE] (allowed, counted); failed: anything else."""
    if ok:
        return "ok"
    if "in-band error" in detail and "no [DONE]" not in detail and not detail.startswith("transport"):
        return "inband"
    return "failed"


def watch(args, samples, stop):
    """Every --watch-every s: each replica's ai_router_endpoint_up for the primary's pool."""
    while not stop.is_set():
        for replica in args.replicas:
            t = time.time()
            try:
                with urllib.request.urlopen(replica["url"] + "/metrics", timeout=1) as r:
                    text = r.read().decode()
            except OSError as e:
                samples.append({"t": t, "replica": replica["name"], "error": type(e).__name__})
                continue
            up = {}
            for labels, value in METRIC.findall(text):
                fields = dict(LABEL.findall(labels))
                if fields.get("backend") == args.watch_backend:
                    up[fields.get("endpoint")] = float(value)
            samples.append({"t": t, "replica": replica["name"], "up": up})
        stop.wait(args.watch_every)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replica", action="append", required=True, metavar="NAME=URL",
                   help="a router replica, e.g. r1=http://10.77.0.2:8080 (give each)")
    p.add_argument("--secs", type=float, default=60)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--think", type=float, default=0.3, help="longest pause between a client's requests, s")
    p.add_argument("--timeout", type=float, default=20.0, help="socket timeout per request, s")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--watch-backend", default="primary")
    p.add_argument("--watch-every", type=float, default=0.2)
    p.add_argument("--started", required=True, help="file written with the load's start time")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    args.replicas = []
    for spec in args.replica:
        name, url = spec.split("=", 1)
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        args.replicas.append({"name": name, "url": url, "addr": (host, int(port))})
    random.seed(args.seed)

    records, lock, samples, stop = [], threading.Lock(), [], threading.Event()
    watcher = threading.Thread(target=watch, args=(args, samples, stop), daemon=True)
    watcher.start()
    started = time.time()
    deadline = time.monotonic() + args.secs
    clients = [ClusterClient(i, types.SimpleNamespace(**vars(args)), records, lock, deadline)
               for i in range(args.clients)]
    for c in clients:
        c.start()
    with open(args.started + ".tmp", "w") as f:
        json.dump({"t": started}, f)
    os.replace(args.started + ".tmp", args.started)
    print(f"[traffic] {args.clients} clients through {', '.join(r['name'] for r in args.replicas)} "
          f"for {args.secs:.0f} s", file=sys.stderr, flush=True)
    for c in clients:
        c.join()
    ended = time.time()
    stop.set()
    watcher.join()
    with open(args.out + ".tmp", "w") as f:
        json.dump({"started": started, "ended": ended, "clients": args.clients,
                   "replicas": [r["name"] for r in args.replicas],
                   "requests": records, "watch": samples}, f)
    os.replace(args.out + ".tmp", args.out)
    failed = sum(r["result"] == "failed" for r in records)
    print(f"[traffic] {len(records)} requests in {ended - started:.0f} s, {failed} failed",
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
