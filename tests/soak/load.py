#!/usr/bin/env python3
"""The soak test's load, sampler and judge (tests/soak/soak.sh starts the router and the
fake backends, then runs this). Python 3 standard library only.

Clients (threads, one keep-alive connection each, like an SDK or Open WebUI) send a mix
that looks like real use for --secs seconds while a sampler reads the router's memory,
fds and /metrics every --sample seconds; this file is the judge and the entry point.

At the end it waits for the router to go idle and judges (see README.md, "Pass rule"):
memory flat, fds back to baseline, no unexpected failure, session writes = requests
sent, session files consistent with what was sent, in-flight gauge back to 0; and for
the misbehaving backend's requests (hostile.py), counted apart: each ended as allowed,
within its time bound, with a bounded session file, and every never-ending sender of
fake_hostile.py stopped once the router let go. It prints a summary, writes
<out>/<stamp>.csv and <stamp>.json, and exits 1 on a failure.

The parts, each its own file in this folder:
  clients.py  the request mix (Workload) and the client threads that send it and check
              every answer (Client, Tally)
  hostile.py  the clients whose requests go to the misbehaving backend, and their tally
  sampler.py  the sampler: /proc/PID (memory, threads, CPU, fds by kind) and /metrics
  load.py     this file: baseline, load, settle, the checks, the summary and main
"""

import argparse
import collections
import csv
import json
import os
import re
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import KINDS, PROVOKED, Client, Tally, route_of  # noqa: E402
from hostile import (HostileClient, HostileTally, hostile_checks, hostile_senders,  # noqa: E402
                     hostile_summary, print_hostile)
from sampler import CSV_FIELDS, Sampler, fd_breakdown, log, scrape  # noqa: E402


# --- the judge ------------------------------------------------------------------------
def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def wait_until(what, predicate, timeout, step=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value[0] or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def check_sessions(sessions_dir, tally):
    """Every file in the sessions folder: a request the clients sent, logged as expected."""
    names = [n for n in os.listdir(sessions_dir) if n.endswith(".json") and not n.startswith(".")]
    unknown, mismatches, cached, checked = [], [], 0, 0
    for name in names:
        rid = name[:-5].rsplit("_", 1)[-1]
        sent = tally.ids.get(rid)
        if sent is None:
            unknown.append(name)
            continue
        kind, label, _stream = sent
        # A misbehaving backend's request: what its client saw (hostile.py, which also
        # read the file as the request ended); none after a transport error.
        want = tally.hostile.want.get(rid) if kind == "hostile" else None
        if kind == "hostile" and want is None:
            continue
        try:
            with open(os.path.join(sessions_dir, name)) as f:
                record = json.load(f)
        except (OSError, ValueError) as e:
            mismatches.append(f"{name}: unreadable ({e})")
            continue
        checked += 1
        cached += bool(record.get("classification_cached"))
        if want is not None:
            pass
        elif label is None:
            want = {"outcome": "error", "http_status": 400}
        elif kind == "disconnect":
            want = {"outcome": "client_disconnected", "route": route_of(kind, label), "classification": label}
        else:
            want = {"outcome": "ok", "http_status": 200, "route": route_of(kind, label), "classification": label}
        wrong = {k: record.get(k) for k, v in want.items() if record.get(k) != v}
        if wrong:
            mismatches.append(f"{rid} ({kind}): wanted {want}, got {wrong}")
    return {"files": len(names), "checked": checked, "unknown_ids": len(unknown), "unknown_examples": unknown[:5],
            "mismatches": len(mismatches), "mismatch_examples": mismatches[:10], "classification_cached": cached}


def router_log_findings(path):
    """WARN/ERROR lines in the router's log, grouped by their message, and the
    per-request "session finished" lines that carry no request id (no request span)."""
    if not path or not os.path.exists(path):
        return {}
    found = collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
            if "session finished" in plain and "request_id=" not in plain:
                what = re.search(r"outcome=(\w+) route=\"?(\w+)", plain)
                found["INFO session finished without request_id: "
                      + (f"{what.group(1)} {what.group(2)}" if what else "?")] += 1
            m = re.search(r"\b(WARN|ERROR)\b\s+(.*)", plain)
            if m:
                message = re.sub(r"\b[0-9a-f]{8}\b|\d+(\.\d+)?(ms|s|µs)?", "#", m.group(2))[:160]
                found[f"{m.group(1)} {message}"] += 1
    return dict(found.most_common(10))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="the router, http://127.0.0.1:PORT")
    p.add_argument("--pid", type=int, required=True, help="the router's PID")
    p.add_argument("--backend-port", type=int, required=True, help="the fake backends' port")
    p.add_argument("--hostile-port", type=int, help="the misbehaving backend's port (fake_hostile.py)")
    p.add_argument("--hostile-clients", type=int, default=0, help="clients sending only to it")
    p.add_argument("--hostile-timeout", type=float, default=2.0, help="its timeout_secs")
    p.add_argument("--hostile-response-timeout", type=float, default=4.0, help="its response_timeout_secs")
    p.add_argument("--hostile-margin", type=float, default=5.0,
                   help="allowed on top of those before a misbehaving request counts as hung, s")
    p.add_argument("--hostile-session-mb", type=float, default=3.0, help="largest session file allowed, MiB")
    p.add_argument("--hostile-max-bytes", type=int, default=2097152, help="its max_response_bytes")
    p.add_argument("--max-answer-bytes", type=int, default=1048576, help="the router's sessions.max_answer_bytes")
    p.add_argument("--sessions-dir", required=True)
    p.add_argument("--max-files", type=int, required=True, help="the router's sessions.max_files")
    p.add_argument("--secs", type=float, default=600)
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--think", type=float, default=0.4, help="longest pause between a client's requests, s")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--timeout", type=float, default=30.0, help="socket timeout per request, s")
    p.add_argument("--rss-pct", type=float, default=10.0, help="allowed RSS growth, percent ...")
    p.add_argument("--rss-mb", type=float, default=2.0, help="... plus this many MB")
    p.add_argument("--settle", type=float, default=45.0, help="longest wait for the router to go idle, s")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, help="folder for <stamp>.csv and <stamp>.json")
    p.add_argument("--router-log")
    p.add_argument("--label", default="", help="what was measured (commit), for the JSON")
    p.add_argument("--stamp", default=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                   help="the results' file name, without extension")
    args = p.parse_args()
    args.host, args.port = args.url.split("//", 1)[1].rsplit(":", 1)
    args.port = int(args.port)
    args.backend_ports = {args.backend_port} | ({args.hostile_port} if args.hostile_port else set())

    tally = Tally()
    tally.hostile = HostileTally()
    start = time.monotonic()
    args.load_started = 0.0
    sampler = Sampler(args, tally, start)

    # Baseline: the router idle, no client or backend socket open (health probes come and go).
    def idle_fds():
        fds = fd_breakdown(args.pid, args.port, args.backend_ports)
        return fds["sock_client"] == 0 and fds["sock_backend"] == 0, fds

    _, base = wait_until("baseline", idle_fds, 20)
    baseline_fds = base["total"]
    first = sampler.sample()
    log(f"baseline: RSS {first['rss_mb']:.1f} MB, {baseline_fds} fds ({dict(base)}), "
        f"{first['threads']} threads")

    sampler.phase = "load"
    args.load_started = time.monotonic() - start
    deadline = time.monotonic() + args.secs
    thread = threading.Thread(target=sampler.run, name="sampler", daemon=True)
    thread.start()
    clients = [Client(i, args, tally, start, deadline) for i in range(args.clients)]
    clients += [HostileClient(i, args, tally, start, deadline) for i in range(args.hostile_clients)]
    log(f"load: {args.clients} clients (+ {args.hostile_clients} to the misbehaving backend) for "
        f"{args.secs:.0f} s, think 0-{args.think:.2f} s, a sample every {args.sample:g} s")
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    load_secs = time.monotonic() - start - args.load_started
    sampler.stop.set()
    thread.join()
    sampler.stop.clear()
    sampler.phase = "settle"

    # Settle: every record written, nothing in flight, fds back down.
    def settled_writes():
        m = scrape(args.url)
        return m["writes_ok"] + m["writes_error"] >= tally.chat_posts and m["in_flight"] == 0, m

    alive = os.path.exists(f"/proc/{args.pid}")
    metrics = wait_until("writes", settled_writes, args.settle)[1] if alive else {}

    def fds_back():
        fds = fd_breakdown(args.pid, args.port, args.backend_ports)
        return fds["total"] <= baseline_fds and fds["sock_client"] == 0, fds

    end_fds = wait_until("fds", fds_back, args.settle)[1] if alive else collections.Counter()
    after = sampler.sample() if alive else None
    sessions = check_sessions(args.sessions_dir, tally)
    senders = hostile_senders(args, tally) if args.hostile_port else None
    findings = router_log_findings(args.router_log)

    # Memory: the load samples in fifths; the first is warm-up.
    load_rows = [r for r in sampler.rows if r["phase"] == "load"]
    rss = [r["rss_mb"] for r in load_rows]
    fifth = max(1, len(rss) // 5)
    warm = statistics.median(rss[fifth:2 * fifth]) if len(rss) >= 5 else None
    end = statistics.median(rss[-fifth:]) if len(rss) >= 5 else None
    tolerance = warm * args.rss_pct / 100 + args.rss_mb if warm else None
    growth = end - warm if warm else None
    steady = load_rows[fifth:]
    slope = None
    if len(steady) >= 3:
        xs = [r["t_s"] for r in steady]
        ys = [r["rss_mb"] for r in steady]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0  # MB/s
    rate = tally.chat_posts / load_secs if load_secs else 0
    # Requests between the middles of the second and the last fifth: a leak of
    # tolerance / that many bytes per request would just fail the rule.
    span_requests = rate * 0.6 * load_secs
    detectable = tolerance * 1024 * 1024 / span_requests if tolerance and span_requests else None

    sent = tally.chat_posts
    provoked = sum(tally.sent[k] for k in PROVOKED)
    unexpected = sum(tally.failed.values())
    checks = []

    def check(name, ok, detail):
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    check("router alive", alive and sampler.error is None,
          "yes" if alive and sampler.error is None else f"no: {sampler.error or 'process gone'}")
    if warm is not None:
        check("memory flat", growth <= tolerance,
              f"median RSS last fifth {end:.2f} MB vs second fifth {warm:.2f} MB: {growth:+.2f} MB "
              f"(allowed +{tolerance:.2f} = {args.rss_pct:g}% + {args.rss_mb:g} MB)")
    else:
        check("memory flat", False, f"only {len(rss)} samples: run longer or sample more often")
    check("fds back to baseline", alive and end_fds["total"] <= baseline_fds and end_fds["sock_client"] == 0,
          f"{end_fds['total']} open after the load vs {baseline_fds} before "
          f"({end_fds['sock_client']} client sockets, {end_fds['sock_backend']} backend sockets left)")
    normal = sum(tally.sent.values())
    check("no unexpected failures", unexpected == 0,
          f"{unexpected} of {normal} ordinary requests failed" + (f"; first: {tally.failures[0]}" if tally.failures else ""))
    writes = int(metrics.get("writes_ok", 0))
    check("session writes = requests sent", writes == sent and metrics.get("writes_error", 1) == 0,
          f"{writes} written ok, {int(metrics.get('writes_error', 0))} failed, {sent} chat requests sent")
    check("router counted every request", int(metrics.get("requests", 0)) == sent,
          f"ai_router_requests_total = {int(metrics.get('requests', 0))}, sent {sent}")
    check("in-flight gauge back to 0", metrics.get("in_flight", 1) == 0,
          f"ai_router_in_flight_requests = {metrics.get('in_flight')}")
    check("request ids unique", len(tally.ids) == tally.id_count,
          f"{len(tally.ids)} distinct x-request-id values in {tally.id_count} responses")
    want_files = min(sent, args.max_files)
    if args.hostile_clients:
        peak = max([after["hwm_mb"] if after else 0] + [r["rss_mb"] for r in sampler.rows])
        hostile_checks(check, args, tally.hostile, senders, peak)
    check("session files match what was sent",
          sessions["files"] == want_files and sessions["unknown_ids"] == 0 and sessions["mismatches"] == 0,
          f"{sessions['files']} files (want min(sent, max_files) = {want_files}), {sessions['unknown_ids']} "
          f"with unknown ids, {sessions['mismatches']} of {sessions['checked']} not as expected")
    passed = all(c["ok"] for c in checks)

    all_rows = sampler.rows
    summary = {
        "pass": passed,
        "reasons": [f"{c['check']}: {c['detail']}" for c in checks if not c["ok"]],
        "label": args.label,
        "settings": {"secs": args.secs, "clients": args.clients, "think_max_s": args.think,
                     "hostile_clients": args.hostile_clients,
                     "sample_s": args.sample, "max_files": args.max_files, "rss_pct": args.rss_pct,
                     "rss_mb": args.rss_mb, "seed": args.seed},
        "requests": {"sent": sent, "ordinary": normal, "misbehaving_backend": sent - normal,
                     "per_s": round(rate, 1), "load_secs": round(load_secs, 1),
                     "provoked": provoked, "unexpected_failures": unexpected,
                     "by_kind": {k: {"sent": tally.sent[k], "ok": tally.ok[k], "failed": tally.failed[k],
                                     "p50_ms": ms(pct(tally.latency[k], 0.5)), "p95_ms": ms(pct(tally.latency[k], 0.95)),
                                     "max_ms": ms(max(tally.latency[k], default=None)),
                                     "ttfb_p50_ms": ms(pct(tally.ttfb[k], 0.5))} for k in KINDS},
                     "by_label": dict(tally.by_label), "failures": tally.failures},
        "rss_mb": {"start": first["rss_mb"], "warm_median": warm, "end_median": end,
                   "max": max(rss, default=None), "hwm": after["hwm_mb"] if after else None,
                   "after_idle": after["rss_mb"] if after else None, "growth": round(growth, 3) if growth is not None else None,
                   "growth_pct": round(100 * growth / warm, 2) if warm else None, "tolerance": round(tolerance, 3) if tolerance else None,
                   "slope_mb_per_hour": round(slope * 3600, 2) if slope is not None else None,
                   "slope_bytes_per_request": round(slope * 1024 * 1024 / rate, 1) if slope is not None and rate else None,
                   "detectable_leak_bytes_per_request": round(detectable) if detectable else None,
                   "samples": len(rss)},
        "threads": {"start": first["threads"], "max": max((r["threads"] for r in all_rows), default=None),
                    "end": after["threads"] if after else None},
        "cpu": {"router_s": round(after["cpu_s"] - first["cpu_s"], 1) if after else None,
                "per_request_ms": round(1000 * (after["cpu_s"] - first["cpu_s"]) / sent, 3) if after and sent else None,
                "loadavg1_median": statistics.median(r["loadavg1"] for r in load_rows) if load_rows else None},
        "fds": {"baseline": baseline_fds, "baseline_by_kind": dict(base), "end": end_fds.get("total"),
                "end_by_kind": dict(end_fds), "max": max((r["fds"] for r in all_rows), default=None)},
        "sessions": {"writes_ok": writes, "writes_error": int(metrics.get("writes_error", 0)),
                     "router_requests_total": int(metrics.get("requests", 0)),
                     "in_flight_end": metrics.get("in_flight"), "max_files": args.max_files, **sessions},
        "router_log": findings,
        "hostile": hostile_summary(args, tally.hostile, senders) if args.hostile_clients else None,
        "checks": checks,
    }

    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, f"{args.stamp}.csv")
    json_path = os.path.join(args.out, f"{args.stamp}.json")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(all_rows)
    with open(json_path, "w") as f:
        json.dump(summary, f, indent=2)
    print_summary(summary, csv_path, json_path)
    sys.exit(0 if passed else 1)


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


def fmt(value, spec=".2f"):
    return "—" if value is None else format(value, spec)


def print_summary(s, csv_path, json_path):
    r = s["requests"]
    print()
    print(f"Soak: {r['sent']} chat requests in {r['load_secs']:.0f} s ({r['per_s']}/s; {r['ordinary']} ordinary, "
          f"{r['misbehaving_backend']} to the misbehaving backend), "
          f"{s['settings']['clients']} + {s['settings']['hostile_clients']} clients; router CPU {s['cpu']['router_s']} s "
          f"({s['cpu']['per_request_ms']} ms/request), load average {fmt(s['cpu']['loadavg1_median'])}")
    print(f"  {'kind':<12} {'sent':>6} {'ok':>6} {'failed':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  what")
    for kind, k in r["by_kind"].items():
        print(f"  {kind:<12} {k['sent']:>6} {k['ok']:>6} {k['failed']:>6} {fmt(k['p50_ms'], '.1f'):>8} "
              f"{fmt(k['p95_ms'], '.1f'):>8} {fmt(k['max_ms'], '.1f'):>8}  {KINDS[kind][1]}")
    print("  by label:  " + ", ".join(f"{k} {v}" for k, v in sorted(r["by_label"].items())) +
          f"; provoked (disconnect + bad) {r['provoked']}")
    for failure in r["failures"][:5]:
        print(f"  failure at t={failure[0]} s [{failure[1]}]: {failure[2][:200]}")
    m = s["rss_mb"]
    print(f"RSS MB: start {fmt(m['start'])}, warm (median 2nd fifth) {fmt(m['warm_median'])}, "
          f"end (median last fifth) {fmt(m['end_median'])}, max sampled {fmt(m['max'])}, VmHWM {fmt(m['hwm'])}, "
          f"idle after {fmt(m['after_idle'])}")
    print(f"  growth {fmt(m['growth'], '+.2f')} MB ({fmt(m['growth_pct'], '+.1f')} %), allowed "
          f"+{fmt(m['tolerance'])} MB; trend {fmt(m['slope_mb_per_hour'], '+.2f')} MB/h "
          f"({fmt(m['slope_bytes_per_request'], '+.1f')} B/request); this run would catch a leak of "
          f"~{fmt(m['detectable_leak_bytes_per_request'], '.0f')} B/request; {m['samples']} samples")
    f = s["fds"]
    print(f"fds: baseline {f['baseline']}, max {f['max']}, end {f['end']} {f['end_by_kind']}; "
          f"threads {s['threads']['start']} → max {s['threads']['max']} → {s['threads']['end']}")
    se = s["sessions"]
    print(f"sessions: {se['writes_ok']} written (errors {se['writes_error']}), router counted "
          f"{se['router_requests_total']}, {se['files']} files kept (max_files {se['max_files']}), "
          f"{se['checked']} checked, {se['mismatches']} not as expected, {se['classification_cached']} cached "
          f"classifications")
    for example in se["mismatch_examples"][:5]:
        print(f"  {example}")
    if s["router_log"]:
        print("router log (warnings, errors, per-request lines without a request id):")
        for message, count in s["router_log"].items():
            print(f"  {count:>6} × {message}")
    if s["hostile"]:
        print_hostile(s["hostile"])
    for c in s["checks"]:
        print(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {c['detail']}")
    print(f"samples: {csv_path}\nsummary: {json_path}")
    print("load checks: PASS" if s["pass"] else "load checks: FAIL: " + "; ".join(s["reasons"]))


if __name__ == "__main__":
    main()
