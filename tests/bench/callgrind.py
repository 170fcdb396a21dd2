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
import shutil
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
    ("malloc/free (glibc)", r"malloc|free|realloc|calloc|_int_|tcache|unlink_chunk|sysmalloc|"
     r"__rust_(alloc|dealloc|realloc)"),
    ("memcpy/memmove/memcmp", r"mem(cpy|move|set|cmp|chr|rchr)|__memcpy|__memmove"),
    ("Vec/String growth", r"finish_grow|do_reserve_and_handle|grow_one|to_vec|reserve_inner"),
    ("URL parsing (reqwest, per request)", r"url::|idna::|percent_encoding|into_url"),
    ("serde_json parse", r"serde_json::(de|read)|serde::de|Deserializ|visit_|"
     r"parse_(str|whitespace|number|integer|ident|any)"),
    ("serde_json serialise", r"serde_json::ser|format_escaped_str|Serializ|itoa|ryu"),
    ("serde_json Value/Map: clone, drop, insert", r"serde_json::(value|map)|btree|BTree|"
     r"drop_in_place<serde_json"),
    ("tracing", r"tracing|sharded_slab"),
    ("eventsource/SSE", r"eventsource|sse::|nom::"),
    ("hyper + http (HTTP/1 parse, encode, headers)", r"hyper|httparse|http::|HeaderMap|"
     r"HeaderName|HeaderValue"),
    ("reqwest/tower client", r"reqwest|tower::|want::"),
    ("axum", r"axum|matchit"),
    ("tokio runtime, I/O, timers", r"tokio|mio::|futures_util|futures_core|futures_channel|"
     r"parking_lot|epoll"),
    ("bytes", r"^bytes::"),
    ("chrono, clock", r"chrono|clock_gettime|__vdso|Timespec|tz"),
    ("prometheus metrics", r"prometheus"),
    ("session records", r"ai_router::(record|observe)::|SessionRecord|"
     r"StepRecord"),
    ("other ai_router", r"ai_router"),
    ("formatting, str search", r"core::fmt|alloc::fmt|fmt::write|Display|to_string|String|"
     r"str::|pattern::|from_utf8|join_generic"),
    ("hashing", r"hash|Hasher|hashbrown"),
    ("libc, syscall wrappers", r"libc|syscall|__GI_|_dl_|pthread|__lll|futex|__send|__recv|"
     r"writev|read$|write$"),
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


# Thread entry frames that callgrind_annotate lists with their whole subtree's cost when
# a dump is taken mid-run; they own no instructions of their own.
ARTIFACTS = re.compile(r"clone\.S:clone|start_thread|thread_start|vtable\.shim|"
                       r"__rust_begin_short_backtrace")
# Inclusive costs worth reading: the router's own functions and the library calls that
# the profile shows to be expensive. Recursive entries ('2) are left out (counted twice).
MILESTONES = re.compile(
    r"^ai_router::|^url::ParseOptions::parse$|serde_json::value::de::.*Value>::deserialize$|"
    r"serde_json::value::ser::.*Value>::serialize$|drop_in_place<serde_json::value::Value>$|"
    r"clone::clone_subtree$|Value as core::fmt::Display>::fmt$|Client::execute_request$|"
    r"Http1Transaction>::parse$|EventStream<S> as .*poll_next$|^__rustc::__rust_alloc$|"
    r"^malloc$|^free$|^realloc$|drop_in_place<ai_router::|str>::replace$|Value::pointer$|"
    r"tracing::|chrono::.*format|SecondsFormat|to_rfc3339")


def _rows(path, inclusive):
    text = run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                "--threshold=100", path]).stdout
    total, rows = None, []
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?)\s*(\[[^\]]*\])?$", line)
        if not m:
            continue
        cost, name = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in name:
            total = cost
            continue
        if ARTIFACTS.search(name):
            continue
        rows.append((cost, name.split(":", 1)[1] if ":" in name[:40] else name))
    return total, rows


def annotate(path):
    total, self_rows = _rows(path, inclusive=False)
    _, inclusive = _rows(path, inclusive=True)
    milestones = [(c, n) for c, n in inclusive if MILESTONES.search(n) and "'2" not in n]
    return total, self_rows, milestones


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
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        sys.exit("callgrind: needs Debian's valgrind (apt-get install valgrind)")
    n = int(os.environ.get("PROFILE_N", "300"))
    streams = int(os.environ.get("PROFILE_STREAMS", "30"))
    top = int(os.environ.get("PROFILE_TOP", "25"))
    binary = os.environ.get("BENCH_BIN") or os.path.join(servers.ROUTER_ROOT,
                                                          "target/release/ai-router")
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
            print(f"callgrind: {scenario}: warm-up", flush=True)
            if scenario == "stream":
                conn = streamprobe.Connection(s.ports[router], timeout=60)
                conn.stream(bench.CHAT, bench.META, body)
            else:
                b.oha_run(scenario, 1, n=50)
            run(["callgrind_control", "--zero", str(pid)])
            print(f"callgrind: {scenario}: measuring", flush=True)
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
            total, rows, inc = annotate(os.path.join(out_dir, part))
            results[scenario] = {"requests": count, "file": part, "total_ir": total,
                                 "ir_per_request": total / count,
                                 "groups_per_request": {k: v / count for k, v in
                                                        group(rows).items()},
                                 "top_self": [(c / count, name) for c, name in rows[:top]],
                                 "milestones_inclusive": [(c / count, name) for c, name in inc]}
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
        print("  inclusive cost per request of the router's functions and costly calls:")
        for cost, name in r["milestones_inclusive"][:top]:
            print(f"    {cost:>10,.0f}  {name[:150]}")
    print(f"\nprofile: callgrind files and summary.json in {os.path.relpath(out_dir, servers.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
