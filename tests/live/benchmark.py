#!/usr/bin/env python3
"""`make benchmark`: latency, throughput, concurrency and streaming figures for a running
ai-router at URL (default http://127.0.0.1:8080). Python 3 standard library only; request
counts are bounded and every request has a timeout.

  latency      REQUESTS chats one after another: end-to-end time (p50, p90, max)
  concurrency  REQUESTS chats CONCURRENCY at a time: requests/s, p50, p90, errors
  throughput   completion tokens per second over the concurrency phase (from `usage`)
  streaming    STREAMS streamed chats: time to first token, total time, tokens/s

By default the chats go the way Open WebUI's do (classifier, then the route it picks), so
the figures include classification. --meta sends Open WebUI's task header instead, which
skips the classifier and measures the router and the primary alone.
Environment: AI_ROUTER_URL, BENCH_REQUESTS (10), BENCH_CONCURRENCY (4), BENCH_STREAMS (5).
"""

import argparse
import collections
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

MAX_REQUESTS = 200  # a benchmark, not a load test: keep every run short and bounded
PROMPT = "In two sentences, explain what a reverse proxy does."


class Bench:
    def __init__(self, base, timeout, meta, model):
        self.base, self.timeout, self.meta, self.model = base, timeout, meta, model
        self.routes = collections.Counter()
        self.lock = threading.Lock()

    def body(self, stream):
        body = {"model": self.model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return json.dumps(body).encode()

    def open(self, stream):
        headers = {"Content-Type": "application/json"}
        if self.meta:
            headers["X-OpenWebUI-Task"] = "query_generation"
        req = urllib.request.Request(self.base + "/v1/chat/completions", data=self.body(stream),
                                     headers=headers, method="POST")
        resp = urllib.request.urlopen(req, timeout=self.timeout)
        with self.lock:
            self.routes[resp.headers.get("x-ai-router-route", "?")] += 1
        return resp

    def chat(self):
        """(seconds, completion tokens) of one non-streamed chat; raises on failure."""
        started = time.monotonic()
        with self.open(stream=False) as resp:
            answer = json.load(resp)
        tokens = (answer.get("usage") or {}).get("completion_tokens") or 0
        return time.monotonic() - started, tokens

    def stream(self):
        """(time to first token, total seconds, completion tokens) of one streamed chat."""
        started = time.monotonic()
        first, tokens = None, 0
        with self.open(stream=True) as resp:
            for raw in resp:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if first is None and (delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")):
                        first = time.monotonic() - started
                if event.get("usage"):
                    tokens = event["usage"].get("completion_tokens") or 0
        total = time.monotonic() - started
        return (first if first is not None else total), total, tokens


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def fmt(seconds):
    return f"{seconds * 1000:7.0f} ms" if seconds < 10 else f"{seconds:7.1f} s "


def attempt(fn):
    try:
        return fn(), None
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, str(getattr(error, "reason", error))


def main():
    parser = argparse.ArgumentParser(description="Benchmark a running ai-router.")
    parser.add_argument("--url", default=os.environ.get("AI_ROUTER_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--requests", type=int, default=int(os.environ.get("BENCH_REQUESTS", "10")))
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("BENCH_CONCURRENCY", "4")))
    parser.add_argument("--streams", type=int, default=int(os.environ.get("BENCH_STREAMS", "5")))
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("LIVE_TIMEOUT", "300")))
    parser.add_argument("--meta", action="store_true", help="skip the classifier (Open WebUI task header)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    for name in ("requests", "concurrency", "streams"):
        value = getattr(args, name)
        if not 1 <= value <= MAX_REQUESTS:
            sys.exit(f"--{name} must be between 1 and {MAX_REQUESTS}")
    base = args.url.rstrip("/").removesuffix("/v1")

    try:
        with urllib.request.urlopen(base + "/v1/models", timeout=10) as resp:
            model = json.load(resp)["data"][0]["id"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as error:
        sys.exit(f"cannot list models at {base}/v1/models: {error}")
    bench = Bench(base, args.timeout, args.meta, model)
    mode = "META (no classifier)" if args.meta else "classified, as Open WebUI chats are"
    print(f"ai-router benchmark against {base}: model {model}, {mode}")
    figures, errors = {}, []

    # Latency: one at a time.
    results = [attempt(bench.chat) for _ in range(args.requests)]
    times = [r[0] for r, e in results if r]
    errors += [e for _, e in results if e]
    if times:
        figures["latency"] = {"n": len(times), "p50_s": pct(times, 50), "p90_s": pct(times, 90), "max_s": max(times)}
        print(f"  latency      {len(times):3d} sequential   p50 {fmt(pct(times, 50))}  p90 {fmt(pct(times, 90))}  max {fmt(max(times))}")

    # Concurrency and throughput: REQUESTS chats, CONCURRENCY in flight.
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        results = list(pool.map(lambda _: attempt(bench.chat), range(args.requests)))
    wall = time.monotonic() - started
    done = [r for r, e in results if r]
    errors += [e for _, e in results if e]
    if done:
        times = [t for t, _ in done]
        tokens = sum(n for _, n in done)
        figures["concurrency"] = {"n": len(done), "concurrency": args.concurrency, "wall_s": wall,
                                  "requests_per_s": len(done) / wall, "p50_s": pct(times, 50), "p90_s": pct(times, 90)}
        figures["throughput"] = {"completion_tokens": tokens, "tokens_per_s": tokens / wall}
        print(f"  concurrency  {len(done):3d} x{args.concurrency:<3d}         {len(done) / wall:6.2f} req/s  p50 {fmt(pct(times, 50))}  p90 {fmt(pct(times, 90))}")
        print(f"  throughput   {tokens:6d} tokens     {tokens / wall:8.1f} completion tokens/s (all requests together)")

    # Streaming: time to first token and per-stream token rate.
    results = [attempt(bench.stream) for _ in range(args.streams)]
    done = [r for r, e in results if r]
    errors += [e for _, e in results if e]
    if done:
        ttft = [f for f, _, _ in done]
        rates = [n / (t - f) for f, t, n in done if n and t > f]
        figures["streaming"] = {"n": len(done), "ttft_p50_s": pct(ttft, 50), "ttft_max_s": max(ttft),
                                "tokens_per_s_p50": pct(rates, 50) if rates else None}
        rate = f"{pct(rates, 50):8.1f} tokens/s per stream (p50)" if rates else "   (no usage reported)"
        print(f"  streaming    {len(done):3d} sequential   first token p50 {fmt(pct(ttft, 50))}  max {fmt(max(ttft))}  {rate}")

    print("  routes       " + ", ".join(f"{route} {n}" for route, n in sorted(bench.routes.items())))
    figures["routes"] = dict(bench.routes)
    figures["errors"] = len(errors)
    for error in sorted(set(errors)):
        print(f"  error        {error}")
    if args.json:
        print(json.dumps(figures))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
