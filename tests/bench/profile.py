#!/usr/bin/env python3
"""Where the router's time goes, counted in instructions (repeatable on a noisy machine):
runs the release router under `valgrind --tool=callgrind`, sends a fixed number of
requests per scenario at concurrency 1, and dumps the counters after each one.

Scenarios (counters zeroed before each, dumped after):
  meta     non-streamed META requests (no classifier), sessions off
  simple   non-streamed requests classified by the canned "SIMPLE", sessions off
  stream   streamed META requests (BENCH_CHUNKS chunks each), sessions off
  sessions non-streamed META requests, sessions on (the writer thread included)

Prints instructions per request per scenario, the top functions by self cost and the
cost grouped by component, and leaves the callgrind files in PROFILE_OUT
(default tests/bench/results/profile-<stamp>/) for `callgrind_annotate` or kcachegrind.

Environment: BENCH_BIN, PROFILE_N (requests per scenario, 300), PROFILE_STREAMS (30),
BENCH_CHUNKS (20), PROFILE_TOP (25).
"""

import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import procs  # noqa: E402
import servers  # noqa: E402
import streamprobe  # noqa: E402

# Self cost is grouped by the first pattern that matches the demangled function name.
GROUPS = [
    ("memcpy/memmove/memset", r"mem(cpy|move|set)|__memcpy|__memmove|__memset"),
    ("malloc/free", r"malloc|free|realloc|calloc|_int_|tcache|arena|sysmalloc|__rust_(alloc|dealloc|realloc)"),
    ("serde_json parse", r"serde_json::(de|read)|serde::de|Deserializ|visit_|parse_(str|whitespace|number|integer|ident|any)"),
    ("serde_json serialise", r"serde_json::ser|format_escaped_str|Serializ|itoa|ryu"),
    ("serde_json Value/Map (clone, drop, insert)", r"serde_json::(value|map)|btree|BTree|drop_in_place<serde_json"),
    ("tracing", r"tracing|sharded_slab|thread_local"),
    ("hyper (HTTP/1 parse, encode)", r"hyper|httparse|http::header|http::uri|HeaderMap|HeaderName|HeaderValue"),
    ("reqwest/hyper-util client", r"reqwest|hyper_util|tower::|want::"),
    ("axum/tower-http", r"axum|tower_http|matchit"),
    ("tokio runtime, I/O, timers", r"tokio|mio::|futures_util|futures_core|parking_lot|epoll"),
    ("eventsource/SSE", r"eventsource|sse::|nom::"),
    ("chrono, time", r"chrono|clock_gettime|__vdso|localtime|tz"),
    ("session records", r"ai_router::session|session_writer|rotation|SessionRecord|StepRecord"),
    ("other ai_router", r"ai_router"),
    ("formatting, strings", r"core::fmt|alloc::fmt|fmt::write|to_string|String|str::|memchr"),
    ("libc, loader, kernel entry", r"libc|syscall|__GI_|_dl_|pthread|__lll|futex|__send|__recv|writev|epoll|read$|write$"),
]


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def dump(pid, label, out_dir, previous):
    """Dumps the counters and returns the new callgrind part file."""
    run(["callgrind_control", "--dump=" + label, str(pid)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = set(f for f in os.listdir(out_dir) if f.startswith("callgrind.out"))
        new = parts - previous
        if new:
            time.sleep(0.5)
            return sorted(new)[0], parts
        time.sleep(0.1)
    raise RuntimeError("callgrind did not dump")


def annotate(path, top):
    text = run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path]).stdout
    total = None
    rows = []
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(\([\s\d.]+%\)\s+)?PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
            continue
        m = re.match(r"^\s*([\d,]+)\s+(?:\([\s\d.]+%\)\s+)?(\S.*?)\s*(\[.*\])?$", line)
        if m and ":" in m.group(2) and total is not None:
            rows.append((int(m.group(1).replace(",", "")), m.group(2).split(":", 1)[1]
                         if m.group(2).startswith("???:") else m.group(2)))
    inclusive = run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path]).stdout
    inc_rows = []
    for line in inclusive.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+(?:\([\s\d.]+%\)\s+)?(\S.*?)\s*(\[.*\])?$", line)
        if m and ":" in m.group(2) and "PROGRAM TOTALS" not in line:
            name = m.group(2).split(":", 1)[1] if m.group(2).startswith("???:") else m.group(2)
            inc_rows.append((int(m.group(1).replace(",", "")), name))
    return total, rows, inc_rows


def group(rows):
    sums = {name: 0 for name, _ in GROUPS}
    sums["unattributed"] = 0
    for cost, name in rows:
        for group_name, pattern in GROUPS:
            if re.search(pattern, name):
                sums[group_name] += cost
                break
        else:
            sums["unattributed"] += cost
    return sums


def main():
    n = int(os.environ.get("PROFILE_N", "300"))
    streams = int(os.environ.get("PROFILE_STREAMS", "30"))
    top = int(os.environ.get("PROFILE_TOP", "25"))
    binary = os.environ.get("BENCH_BIN") or os.path.join(servers.ROOT, "target/release/ai-router")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = os.environ.get("PROFILE_OUT") or os.path.join(servers.HERE, "results",
                                                            f"profile-{stamp}")
    os.makedirs(out_dir, exist_ok=True)
    opts = {**bench.options(), "gap_ms": 2, "first_ms": 5}
    workdir = tempfile.mkdtemp(prefix="ai-router-profile-")
    fleet = procs.Fleet(workdir)
    oha = bench.oha_binary()
    results = {}
    try:
        s = servers.start_backends(fleet, workdir, opts)
        sse = f"http://127.0.0.1:{s.ports['sse']}"
        for name, sessions in (("router", False), ("router_sessions", True)):
            wrapper = ["valgrind", "--tool=callgrind", "--collect-systime=no",
                       f"--callgrind-out-file={out_dir}/callgrind.out.{name}"]
            servers.start_router(fleet, s, name, binary, sse, sessions, wrapper, timeout=120)
        b = bench.Bench(opts, workdir, s, oha)
        b.paths.update({"meta": (s.ports["router"], bench.META),
                        "simple": (s.ports["router"], {}),
                        "sessions": (s.ports["router_sessions"], bench.META)})
        b.cpu_pids = {}
        body = json.dumps({**bench.REQUEST, "stream": True}).encode()
        parts = set(os.listdir(out_dir))
        plan = [("meta", "router"), ("simple", "router"), ("stream", "router"),
                ("sessions", "router_sessions")]
        for scenario, router in plan:
            pid = s.pids[router]
            print(f"profile: {scenario}: warm-up", flush=True)
            if scenario == "stream":
                conn = streamprobe.Connection(s.ports[router], timeout=60)
                conn.stream(bench.CHAT, bench.META, body)
            else:
                b.oha_run(scenario, 1, n=50)
            run(["callgrind_control", "--zero", str(pid)])
            print(f"profile: {scenario}: measuring", flush=True)
            if scenario == "stream":
                for _ in range(streams):
                    conn.stream(bench.CHAT, bench.META, body)
                conn.close()
                count = streams
            else:
                result = b.oha_run(scenario, 1, n=n)
                count = result["ok"]
                if result["errors"]:
                    raise RuntimeError(f"{scenario}: {result['errors']} errors under valgrind")
            if scenario == "sessions":
                time.sleep(2)  # let the writer thread drain its queue into this dump
            part, parts = dump(pid, scenario, out_dir, parts)
            total, rows, inc = annotate(os.path.join(out_dir, part), top)
            results[scenario] = {"requests": count, "file": part, "total_ir": total,
                                 "ir_per_request": total / count,
                                 "groups_per_request": {k: v / count for k, v in
                                                        group(rows).items()},
                                 "top_self": [(c / count, name) for c, name in rows[:top]],
                                 "top_inclusive": [(c / count, name) for c, name in inc[:top]]}
    finally:
        fleet.stop_all(grace=30)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(results, f, indent=2)
    for scenario, r in results.items():
        print(f"\n=== {scenario}: {r['ir_per_request']:,.0f} instructions per request "
              f"({r['requests']} requests)")
        print("  by component (self cost):")
        for name, cost in sorted(r["groups_per_request"].items(), key=lambda kv: -kv[1]):
            if cost:
                print(f"    {cost:>10,.0f}  {100 * cost / r['ir_per_request']:5.1f}%  {name}")
        print("  top functions (self cost per request):")
        for cost, name in r["top_self"]:
            print(f"    {cost:>10,.0f}  {name[:150]}")
    print(f"\nprofile: callgrind files and summary.json in {os.path.relpath(out_dir, servers.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
