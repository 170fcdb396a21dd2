#!/usr/bin/env python3
"""`make bench` (after bench.sh has installed nginx and oha and built the router): starts
the fake upstream, the nginx hop and the router on free 127.0.0.1 ports, measures them
side by side, prints one table against issue 7's targets and writes the figures as JSON
to tests/bench/results/<UTC stamp>.json. See tests/bench/README.md for how to read it.

Runs are interleaved (every round runs every path, in a rotated order) so that ratios
hold on a noisy machine. Every request count and duration is bounded; the processes this
script starts are stopped by PID on exit, error or Ctrl-C.

Environment (defaults in brackets, BENCH_QUICK=1 for a run under a minute):
  BENCH_BIN           router binary [target/release/ai-router]
  BENCH_ROOT          where the router runs: its config/router.toml and prompts/ [this checkout]
  BENCH_ROUNDS        latency rounds [5]        BENCH_LAT_N     requests per latency run [4000]
  BENCH_TP_ROUNDS     throughput rounds [3]     BENCH_TP_SECS   seconds per throughput run [3]
  BENCH_STREAMS       streams per path [20]     BENCH_CHUNKS    chunks per stream [20]
  BENCH_GAP_MS        gap between chunks [10]   BENCH_FIRST_MS  wait for the first chunk [50]
  BENCH_NGINX_WORKERS nginx worker_processes [auto]
  BENCH_OUT           results folder [tests/bench/results]
  BENCH_NICE          run everything at this nice level, e.g. -10 (root) on a machine
                      shared with builds: the bench's processes then win the CPU [unchanged]
  BENCH_COMMIT        the label of the measured build in the table [git rev-parse HEAD]
  OHA                 the oha binary [oha on PATH, else ~/.cargo/bin/oha]
"""

import datetime
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procs  # noqa: E402
import report  # noqa: E402
import servers  # noqa: E402
import streamprobe  # noqa: E402

META = {"X-OpenWebUI-Task": "title_generation"}
REQUEST = {"model": "ai-router", "stream": False, "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "Name the three colours of its flag, and say which side each is on."},
]}
CHAT = "/v1/chat/completions"
# The nginx hop's path to the canned 50-chunk stream (servers.STREAM_CHUNKS).
STREAM_PATH = "/sse/v1/chat/completions"


def options():
    quick = os.environ.get("BENCH_QUICK") == "1"
    defaults = {"rounds": (5, 2), "lat_n": (4000, 1500), "tp_rounds": (3, 1),
                "tp_secs": (3, 1.5), "streams": (20, 6), "chunks": (20, 20),
                "gap_ms": (10, 10), "first_ms": (50, 50)}
    out = {"quick": quick, "nginx_workers": os.environ.get("BENCH_NGINX_WORKERS", "auto")}
    for key, (full, fast) in defaults.items():
        value = os.environ.get(f"BENCH_{key.upper()}")
        out[key] = type(full)(value) if value else (fast if quick else full)
    return out


def oha_binary():
    found = os.environ.get("OHA") or shutil.which("oha")
    fallback = os.path.expanduser("~/.cargo/bin/oha")
    if not found and os.access(fallback, os.X_OK):
        found = fallback
    if not found:
        sys.exit("bench: oha not found (tests/bench/bench.sh installs it)")
    return found


class Bench:
    def __init__(self, opts, workdir, servers_, oha):
        self.opts, self.workdir, self.s, self.oha = opts, workdir, servers_, oha
        self.body_path = os.path.join(workdir, "request.json")
        with open(self.body_path, "w") as f:
            json.dump(REQUEST, f)
        self.stream_body_path = os.path.join(workdir, "request-stream.json")
        with open(self.stream_body_path, "w") as f:
            json.dump({**REQUEST, "stream": True}, f)
        p = servers_.ports
        stream = (STREAM_PATH, self.stream_body_path)
        self.paths = {
            "direct": (p["upstream"], {}),
            "nginx": (p["hop"], {}),
            "meta": (p["router"], META),
            "simple": (p["router"], {}),
            "meta_sessions": (p["router_sessions"], META),
        }
        # Measured for throughput only: (port, headers[, URL path, body file]).
        # `make profile` starts only the routers it counts, so a missing one is left out.
        self.throughput_paths = {
            name: path for name, path in {
                "meta_segments": (p.get("router_segments"), META),
                "meta_tmpfs": (p.get("router_tmpfs"), META),
                "stream_nginx": (p["hop"], {}, *stream),
                "stream_router": (p.get("router_stream"), META, CHAT, self.stream_body_path),
            }.items() if path[0] is not None
        }
        self.all_cpus = os.sched_getaffinity(0)
        self.cpus = self.all_cpus
        self.cpu_pids = {
            "nginx": procs.family(servers_.pids["hop"]),
            "meta": [servers_.pids["router"]],
            "simple": [servers_.pids["router"]],
            "meta_sessions": [servers_.pids["router_sessions"]],
            "stream_nginx": procs.family(servers_.pids["hop"]),
        }
        for path, router in (("meta_segments", "router_segments"),
                             ("meta_tmpfs", "router_tmpfs"),
                             ("stream_router", "router_stream")):
            if router in servers_.pids:
                self.cpu_pids[path] = [servers_.pids[router]]

    def oha_run(self, path, concurrency, n=None, secs=None, db=None):
        found = self.paths.get(path) or self.throughput_paths[path]
        port, headers, url_path, body_path = (*found, CHAT, self.body_path)[:4]
        cpus = self.cpus
        argv = [self.oha, "--no-tui", "--output-format", "json", "-m", "POST",
                "-T", "application/json", "-D", body_path, "-c", str(concurrency),
                "-t", "10s"]
        for name, value in headers.items():
            argv += ["-H", f"{name}: {value}"]
        argv += ["-n", str(n)] if n else ["-z", f"{secs}s", "-w"]
        if db:
            argv += ["--db-url", db]
        argv.append(f"http://127.0.0.1:{port}{url_path}")
        pids = self.cpu_pids.get(path, [])
        cpu_before = procs.cpu_split(pids)
        done = subprocess.run(argv, capture_output=True, timeout=(secs or 60) + 60,
                              preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        # The session writer may still be working through a backlog: wait for it (so it
        # neither steals CPU from the next run nor escapes this run's CPU count).
        drain = settle(pids) if path in ("meta_sessions", "meta_segments", "meta_tmpfs") else 0.0
        user, system = (after - before for after, before in
                        zip(procs.cpu_split(pids), cpu_before))
        cpu = user + system
        if done.returncode != 0:
            raise RuntimeError(f"oha failed on {path}: {done.stderr.decode()[-2000:]}")
        result = json.loads(done.stdout)
        codes = result.get("statusCodeDistribution", {})
        ok = codes.get("200", 0)
        errors = sum(v for k, v in codes.items() if k != "200")
        errors += sum(result.get("errorDistribution", {}).values())
        wall = result["summary"]["total"]
        kinds = {f"HTTP {k}": v for k, v in codes.items() if k != "200"}
        kinds.update(result.get("errorDistribution", {}))
        return {"ok": ok, "errors": errors, "error_kinds": kinds,
                "rps": ok / wall if wall else 0.0,
                "drain_s": drain,
                "cpu_us_per_req": (cpu / ok * 1e6) if ok and pids else None,
                # The kernel's share (sockets, wake-ups): callgrind does not count it.
                "cpu_system_share": (system / cpu) if cpu else None,
                "p50_ms": result["latencyPercentiles"].get("p50", 0) * 1000,
                "p99_ms": result["latencyPercentiles"].get("p99", 0) * 1000}

    def pin(self, pinned):
        """Puts every server thread, oha and this process on one CPU (`pinned`), or lets
        them use every CPU. Pinned, a request never waits for another CPU to wake up:
        on this VM each cross-CPU wake-up costs ~50 µs, and which CPU a process happens
        to sit on makes c=1 runs bimodal. Pinned figures measure the software path."""
        self.cpus = {min(self.all_cpus)} if pinned else self.all_cpus
        pids = [p for pid in self.s.pids.values() for p in procs.family(pid)]
        procs.pin(pids, self.cpus)
        os.sched_setaffinity(0, self.cpus)

    # --- phases -----------------------------------------------------------------------

    def preflight(self):
        """One request on each path; checks routes and that SIMPLE really classified."""
        expected = {"meta": "meta", "meta_sessions": "meta", "simple": "primary"}
        for path, (port, headers) in self.paths.items():
            status, route, _ = post(port, headers)
            if status != 200 or route != expected.get(path, route):
                raise RuntimeError(f"preflight: {path} answered {status}, route {route!r}")
        _, _, request_id = post(self.s.ports["router_sessions"], {})
        record = session_file(self.s.sessions_dir, request_id)
        if record.get("classification") != "SIMPLE" or record.get("classification_fallback"):
            raise RuntimeError(f"preflight: the fake classifier was not used: {record}")
        status, route, _ = post(self.s.ports["router_segments"], META)
        if status != 200 or route != "meta":
            raise RuntimeError(f"preflight: meta_segments answered {status}, route {route!r}")
        for path in [*self.paths, *self.throughput_paths]:
            self.oha_run(path, 4, n=300)

    def latency(self, mode):
        opts = self.opts
        order = list(self.paths)
        dbs = {path: os.path.join(self.workdir, f"lat-{mode}-{path}.db") for path in order}
        rounds = {path: [] for path in order}
        for r in range(opts["rounds"]):
            for path in order[r % len(order):] + order[:r % len(order)]:
                rounds[path].append(self.oha_run(path, 1, n=opts["lat_n"], db=dbs[path]))
            print(f"  {mode}: round {r + 1}/{opts['rounds']} done", flush=True)
        out = {}
        for path in order:
            durations = read_durations(dbs[path])
            out[path] = {**percentiles(durations), "requests": len(durations),
                         "errors": sum(x["errors"] for x in rounds[path]),
                         "round_p50_ms": [round(x["p50_ms"], 4) for x in rounds[path]],
                         "cpu_us_per_req": median([x["cpu_us_per_req"] for x in rounds[path]])}
        return out

    def throughput(self, concurrency, paths, baseline="nginx"):
        opts = self.opts
        runs = {path: [] for path in paths}
        for r in range(opts["tp_rounds"]):
            for path in paths[r % len(paths):] + paths[:r % len(paths)]:
                runs[path].append(self.oha_run(path, concurrency, secs=opts["tp_secs"]))
        out = {}
        for path in paths:
            ratios = [x["rps"] / n["rps"] for x, n in zip(runs[path], runs[baseline])
                      if n["rps"]]
            out[path] = {"rps": median([x["rps"] for x in runs[path]]),
                         "ratio_to_nginx": median(ratios),
                         "errors": sum(x["errors"] for x in runs[path]),
                         "error_kinds": merged_kinds(runs[path]),
                         "requests": sum(x["ok"] for x in runs[path]),
                         "cpu_us_per_req": median([x["cpu_us_per_req"] for x in runs[path]]),
                         "cpu_system_share": median([x["cpu_system_share"] for x in runs[path]]),
                         "p50_ms": median([x["p50_ms"] for x in runs[path]]),
                         "p99_ms": median([x["p99_ms"] for x in runs[path]]),
                         "drain_s": max(x["drain_s"] for x in runs[path])}
        return out

    def streaming(self):
        p = self.s.ports
        paths = {"direct": (p["sse"], {}), "nginx": (p["hop_sse"], {}),
                 "meta": (p["router_sse"], META), "simple": (p["router_sse"], {})}
        body = json.dumps({**REQUEST, "stream": True}).encode()
        conns = {path: streamprobe.Connection(port) for path, (port, _) in paths.items()}
        results = {path: [] for path in paths}
        try:
            for _ in range(self.opts["streams"]):
                for path, (_, headers) in paths.items():
                    try:
                        results[path].append(conns[path].stream(CHAT, headers, body))
                    except (OSError, streamprobe.ProbeError, ValueError) as e:
                        results[path].append({"error": str(e)})
                        conns[path].close()
                        conns[path] = streamprobe.Connection(paths[path][0])
        finally:
            for conn in conns.values():
                conn.close()
        return {path: stream_figures(runs, self.opts) for path, runs in results.items()}

    def memory(self, names):
        return {name: dict(zip(("rss_mb", "hwm_mb"), procs.memory_mb(
            procs.family(self.s.pids[name]) if name == "hop" else [self.s.pids[name]])))
            for name in names}


# --- helpers ------------------------------------------------------------------------------

def merged_kinds(runs):
    """What went wrong across `runs`, by oha's name for it, with counts."""
    kinds = {}
    for run in runs:
        for kind, count in run.get("error_kinds", {}).items():
            kinds[kind] = kinds.get(kind, 0) + count
    return kinds


def settle(pids, limit=30.0, window=0.2):
    """Waits until `pids` use under 5% of a CPU over `window`; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = procs.cpu_seconds(pids)
        time.sleep(window)
        if procs.cpu_seconds(pids) - before < 0.05 * window:
            break
    return round(time.monotonic() - started - window, 2)


def post(port, headers):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{CHAT}",
                                     data=json.dumps(REQUEST).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=10) as response:
        json.load(response)
        return (response.status, response.headers.get("x-ai-router-route"),
                response.headers.get("x-request-id"))


def session_file(folder, request_id, wait=5.0):
    """The session record of `request_id`, once the writer has put it on disk."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for name in os.listdir(folder):
            if name.endswith(f"_{request_id}.json"):
                with open(os.path.join(folder, name)) as f:
                    return json.load(f)
        time.sleep(0.05)
    raise RuntimeError(f"preflight: no session file for request {request_id} in {folder}")


def read_durations(db):
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT duration FROM oha WHERE status = 200").fetchall()
    return sorted(r[0] * 1000 for r in rows)


def percentiles(sorted_ms):
    def at(p):
        if not sorted_ms:
            return None
        return sorted_ms[min(len(sorted_ms) - 1, int(p / 100 * len(sorted_ms)))]
    return {"p50_ms": at(50), "p99_ms": at(99), "p999_ms": at(99.9)}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def stream_figures(runs, opts):
    good = [r for r in runs if "error" not in r and r["chunks"]]
    errors = len(runs) - len(good)
    ttfc, legs, firsts, delays, batched, over, missing = [], [], [], [], 0, 0, 0
    for r in good:
        chunks = sorted(r["chunks"], key=lambda c: c["seq"])
        missing += opts["chunks"] - len(chunks)
        first = chunks[0]
        # Request leg + first chunk's delivery: the fake's own wait is left out.
        legs.append((r["upstream_recv_ns"] - r["sent_ns"]) / 1e6)
        firsts.append((first["arrived_ns"] - first["sent_ns"]) / 1e6)
        ttfc.append(legs[-1] + firsts[-1])
        for prev, chunk in zip([None] + chunks, chunks):
            delay = (chunk["arrived_ns"] - chunk["sent_ns"]) / 1e6
            delays.append(delay)
            over += delay > 1.0
            batched += prev is not None and prev["recv"] == chunk["recv"]
    delays.sort()
    return {"streams": len(good), "errors": errors, "missing_chunks": missing,
            "ttfc_ms": median(ttfc), "request_leg_ms": median(legs),
            "first_delivery_ms": median(firsts),
            "chunk_delay_ms": {"p50": percentile(delays, 50), "p99": percentile(delays, 99),
                               "max": delays[-1] if delays else None},
            "chunks": len(delays), "chunks_over_1ms": over, "chunks_batched": batched}


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def machine(oha, binary):
    def out(argv):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                                  cwd=servers.ROUTER_ROOT)
            return (done.stdout + done.stderr).strip()
        except OSError:
            return ""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo")
               if line.startswith("MemTotal"))
    commit = os.environ.get("BENCH_COMMIT") or out(["git", "rev-parse", "--short", "HEAD"])
    if os.environ.get("BENCH_COMMIT") or " " in commit:
        dirty = False
        commit = commit if " " not in commit else "unknown"
    else:
        dirty = bool(out(["git", "status", "--porcelain", "--", "src", "Cargo.toml",
                          "Cargo.lock"]))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1),
            "kernel": os.uname().release, "nginx": out([servers.nginx_binary(), "-v"]),
            "oha": out([oha, "--version"]), "rustc": out(["rustc", "-V"]),
            "router_binary": binary, "commit": commit + ("-dirty" if dirty else "")}


def main():
    opts = options()
    oha = oha_binary()
    binary = os.environ.get("BENCH_BIN") or os.path.join(servers.ROUTER_ROOT,
                                                          "target/release/ai-router")
    if not os.access(binary, os.X_OK):
        sys.exit(f"bench: no router binary at {binary} (cargo build --release --locked)")
    if os.environ.get("BENCH_NICE"):
        # Inherited by every server and load generator started from here.
        os.setpriority(os.PRIO_PROCESS, 0, int(os.environ["BENCH_NICE"]))
    workdir = tempfile.mkdtemp(prefix="ai-router-bench-")
    fleet = procs.Fleet(workdir)
    started = time.monotonic()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    try:
        load_start = loadavg()
        if load_start > 0.7:
            print(f"bench: WARNING the load average is {load_start:.2f} before the run: other "
                  "work on this machine will skew the figures", flush=True)
        print(f"bench: servers in {workdir}", flush=True)
        s = servers.start(fleet, workdir, binary, opts)
        bench = Bench(opts, workdir, s, oha)
        time.sleep(1.0)
        idle = bench.memory(["router", "router_sessions", "hop"])
        print("bench: preflight and warm-up", flush=True)
        bench.preflight()
        figures = {}
        for mode in ("pinned", "unpinned"):
            bench.pin(mode == "pinned")
            print(f"bench: latency at c=1, {mode}", flush=True)
            figures[f"latency_c1_{mode}"] = bench.latency(mode)
            print(f"bench: streaming, {mode}", flush=True)
            figures[f"streaming_{mode}"] = bench.streaming()
        bench.pin(False)
        print("bench: throughput at c=32", flush=True)
        figures["throughput_c32"] = bench.throughput(
            32, ["nginx", "direct", "meta", "meta_sessions", "meta_segments",
                 *(["meta_tmpfs"] if "meta_tmpfs" in bench.throughput_paths else []), "simple"])
        print("bench: throughput of 50-chunk streams at c=32", flush=True)
        figures["throughput_streams_c32"] = bench.throughput(
            32, ["stream_nginx", "stream_router"], baseline="stream_nginx")
        print("bench: throughput at c=256", flush=True)
        figures["throughput_c256"] = bench.throughput(256, ["nginx", "meta", "meta_sessions"])
        figures["memory"] = {"idle": idle,
                             "after_c256": bench.memory(["router", "router_sessions", "hop"]),
                             "stream_router": bench.memory(["router_sse"])}
        figures["classification_cache_off"] = bool(s.cache_off)
        figures["session_files"] = len(os.listdir(s.sessions_dir))
        figures["loadavg"] = {"start": load_start, "end": loadavg(),
                              "nice": os.getpriority(os.PRIO_PROCESS, 0)}
    except KeyboardInterrupt as e:
        print(f"\nbench: interrupted ({e}); stopping what it started", file=sys.stderr)
        fleet.stop_all()
        return 130
    finally:
        fleet.stop_all()
        shutil.rmtree(servers.tmpfs_dir(workdir), ignore_errors=True)
    elapsed = time.monotonic() - started
    now = datetime.datetime.now(datetime.timezone.utc)
    result = report.build(figures, opts, machine(oha, binary), now, elapsed)
    print(report.table(result))
    out_dir = os.environ.get("BENCH_OUT") or os.path.join(servers.HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, now.strftime("%Y%m%dT%H%M%SZ") + ".json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"bench: figures written to {os.path.relpath(path, servers.ROOT)} "
          f"({elapsed:.0f} s)")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
