#!/usr/bin/env python3
"""The JSON and HTTP half of tests/prometheus/scrape.sh: a real Prometheus scrapes the
router, and every query of infra/grafana-dashboard.json must return data. Python 3
standard library only; every request has a timeout, every loop a deadline.

Subcommands (scrape.sh calls them in this order):
  prom-config  derive the scrape config from infra/prometheus/prometheus.yml: the same
               file with only the interval and the target replaced (and, because the test
               turns client keys on, a bearer credentials file added to the job)
  traffic      one bounded batch of chats through the router: --phase ok (every route,
               JSON and SSE, a cached classification, 400s, a 401, a prompt edit),
               --phase fail (the primary is gone: 502s, and an ENRICH stream that
               fails after its headers), --phase recover (it is back)
  wait-scrapes wait until Prometheus has scraped the router N times after now
  check        the target is up; every dashboard query returns data (a table); every
               route, label and the backend failure reached Prometheus; no secret in
               /metrics, in Prometheus' answers, in its TSDB files or in the session logs

The parts, each its own file in this folder:
  prom.py             HTTP helpers, Prometheus' API, prom-config and wait-scrapes
  traffic.py          the traffic subcommand (the Router client and the three phases)
  check_dashboard.py  this file: the check subcommand (dashboard queries, coverage,
                      secrets) and main, which every subcommand goes through
"""

import argparse
import json
import math
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prom import Failure, expect, http, prom_config, prom_get, query, wait_scrapes  # noqa: E402
from traffic import traffic  # noqa: E402


def dashboard_targets(dashboard):
    """(panel title, refId, expr) of every Prometheus target: panels, rows' nested panels
    (collapsed rows keep theirs under `panels`), and the old `rows[].panels` layout."""
    found = []

    def walk(panels):
        for panel in panels or []:
            for target in panel.get("targets") or []:
                if isinstance(target.get("expr"), str) and target["expr"].strip():
                    found.append((panel.get("title", "?"), target.get("refId", "?"), target["expr"]))
            walk(panel.get("panels"))

    walk(dashboard.get("panels"))
    for row in dashboard.get("rows") or []:
        walk(row.get("panels"))
    return found


# What Grafana would put in for its built-in variables over a short window; the test has
# only seconds of data at a 1 s scrape interval, and every window below covers all of it.
BUILTINS = {
    "__rate_interval": "30s", "__interval": "15s", "__interval_ms": "15000",
    "__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
}


def substitute(expr, dashboard):
    """Replaces Grafana variables ($x, ${x}, ${x:fmt}, [[x]]): the built-ins above and the
    dashboard's own template variables (their current value, else `.*` for a variable
    that allows All or several values, else its query)."""
    values = dict(BUILTINS)
    for var in (dashboard.get("templating") or {}).get("list") or []:
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(current)
        if current in (None, "", "$__all"):
            current = ".*" if var.get("includeAll") or var.get("multi") else var.get("query", "")
        values[var["name"]] = str(current)

    def one(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise Failure(f"{expr}: unknown Grafana variable ${name}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", one, expr)


def describe(sample):
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.get("metric", {}).items()))
    return "{" + labels + "} " + sample["value"][1]


def check(args):
    failures = []
    passed = []
    leaks = []

    def step(name, fn):
        try:
            note = fn()
            passed.append(name)
            print(f"  ok   {name}" + (f": {note}" if note else ""))
        except Failure as err:
            print(f"  FAIL {name}: {err}")
            failures.append(name)

    def target_up():
        status, body, _ = prom_get(args.prom, "/api/v1/targets", state="active")
        expect(status == 200 and body.get("status") == "success", f"HTTP {status}")
        ours = [t for t in body["data"]["activeTargets"] if t["labels"].get("job") == args.job]
        expect(len(ours) == 1, f"{len(ours)} active targets for job {args.job}")
        t = ours[0]
        expect(t["health"] == "up", f"health {t['health']}, lastError {t.get('lastError')!r}")
        expect(not t.get("lastError"), f"lastError {t['lastError']!r}")
        expect(t["scrapeUrl"] == f"http://{args.target}/metrics", f"scrapeUrl {t['scrapeUrl']}")
        return f"{t['scrapeUrl']} health=up, interval {t.get('scrapeInterval')}, lastScrapeDuration {t['lastScrapeDuration']:.4f} s"

    step(f"Prometheus target {args.job} is up (/api/v1/targets)", target_up)

    with open(args.dashboard) as f:
        dashboard = json.load(f)
    targets = dashboard_targets(dashboard)
    rows = []
    for title, ref, expr in targets:
        promql = substitute(expr, dashboard)
        try:
            data, raw = query(args.prom, promql)
            leaks.extend(f"query {promql}" for s in args.secret if s.encode() in raw)
            result = data["result"]
            expect(data["resultType"] == "vector", f"result type {data['resultType']}")
            expect(result, "empty result: the panel would show no data")
            finite = [s for s in result if math.isfinite(float(s["value"][1]))]
            expect(finite, f"all {len(result)} series are NaN/Inf: the panel would show no data")
            rows.append(("ok", title, ref, promql, f"{len(result)} ({len(finite)} finite)",
                         describe(finite[0])))
            passed.append(f"{title} {ref}")
        except Failure as err:
            rows.append(("FAIL", title, ref, promql, "-", str(err)))
            failures.append(f"{title} {ref}")
    expect_min = args.min_queries
    print(f"\n{len(targets)} dashboard queries (infra/grafana-dashboard.json), "
          f"run at {time.strftime('%H:%M:%S')} through /api/v1/query:\n")
    print("| | panel | expr | series | first value |")
    print("|---|---|---|---|---|")
    for ok, title, ref, promql, count, first in rows:
        print(f"| {ok} | {title} ({ref}) | `{promql}` | {count} | `{first}` |")
    print()
    if len(targets) < expect_min:
        print(f"  FAIL only {len(targets)} queries found in the dashboard (expected at least {expect_min})")
        failures.append("query count")

    def coverage(expr, label, want):
        def run():
            data, raw = query(args.prom, expr)
            leaks.extend(f"query {expr}" for s in args.secret if s.encode() in raw)
            got = {s["metric"].get(label) for s in data["result"]}
            missing = set(want) - got
            expect(not missing, f"missing {sorted(missing)}; got {sorted(g for g in got if g)}")
            return ", ".join(sorted(got))
        step(f"{expr} covers {label}={','.join(want)}", run)

    coverage("sum by (route) (ai_router_requests_total)", "route",
             ["primary", "xai", "enrich", "meta", "rejected"])
    coverage("sum by (class) (ai_router_requests_total)", "class", ["SIMPLE", "COMPLEX", "ENRICH"])
    coverage('sum by (status) (ai_router_requests_total)', "status", ["2xx", "4xx", "5xx"])
    coverage("sum by (route) (ai_router_time_to_first_token_seconds_count)", "route",
             ["primary", "xai", "enrich", "meta"])
    coverage("sum by (result) (ai_router_classification_duration_seconds_count)", "result",
             ["label", "cached"])
    coverage("sum by (backend) (ai_router_backend_errors_total)", "backend", ["primary"])
    coverage("max by (backend) (ai_router_backend_up)", "backend", ["primary", "classifier", "xai"])
    coverage('sum by (result) (ai_router_prompt_reloads_total)', "result", ["changed"])

    # For the record (not a check): what the requests counter holds, by route and status.
    data, _ = query(args.prom, "sum by (route, status) (ai_router_requests_total)")
    print("  info requests by route and status: " + ", ".join(
        f"{s['metric'].get('route')}/{s['metric'].get('status')}={s['value'][1]}"
        for s in sorted(data["result"], key=lambda s: (s["metric"].get("route"), s["metric"].get("status")))))

    # Secrets: the xAI key and the client keys (two valid ones and the rejected one).
    def scan(needles):
        """Where each needle occurs: /metrics as the router serves it, everything Prometheus
        answers for the job (every series, each label name and each label's values), its
        TSDB files (the WAL, uncompressed) and the session logs."""
        where = {n: [] for n in needles}

        def look(place, data):
            for n in needles:
                if n.encode() in data:
                    where[n].append(place)

        status, _, text = http("GET", args.router.rstrip("/") + "/metrics",
                               headers={"Authorization": f"Bearer {args.client_key}"})
        expect(status == 200, f"/metrics with the client key: HTTP {status}")
        look("/metrics", text)
        _, raw = query(args.prom, f'{{job="{args.job}"}}')
        look("prometheus series", raw)
        _, body, raw = prom_get(args.prom, "/api/v1/labels")
        look("prometheus labels", raw)
        for label in body["data"]:
            _, _, raw = prom_get(args.prom, f"/api/v1/label/{urllib.parse.quote(label)}/values")
            look("prometheus label values", raw)
        with open(args.router_log, "rb") as f:
            look("router log", f.read())
        for folder, what in ((args.tsdb, "TSDB files"), (args.sessions, "session logs")):
            for dirpath, _, names in os.walk(folder):
                for name in names:
                    with open(os.path.join(dirpath, name), "rb") as f:
                        look(what, f.read())
        return {n: sorted(set(places)) for n, places in where.items()}

    def no_secrets():
        # A control first: the same scan must find what is really there, so an empty
        # answer below means absent, not unread (the TSDB's WAL must be uncompressed).
        control = scan(["ai_router_requests_total", "Name three colours", "ai-router listening"])
        for needle, places in (("ai_router_requests_total",
                                ["/metrics", "prometheus series", "prometheus label values", "TSDB files"]),
                               ("Name three colours", ["session logs"]),
                               ("ai-router listening", ["router log"])):
            missing = set(places) - set(control[needle])
            expect(not missing, f"control: {needle!r} not found in {sorted(missing)}: the scan is blind there")
        found = scan(args.secret)
        where = [f"key {n[:12]}... in {', '.join(p)}" for n, p in found.items() if p] + leaks
        expect(not where, "; ".join(where))
        return (f"{len(args.secret)} keys absent from /metrics, every series, label and value "
                f"in Prometheus, its TSDB files, the session logs and the router's log (the same scan finds the "
                f"metric names there)")

    step("no secret in the metrics", no_secrets)

    def metrics_protected():
        status, _, _ = http("GET", args.router.rstrip("/") + "/metrics")
        expect(status == 401, f"/metrics without a key: HTTP {status}, expected 401")
        return "/metrics without a key: 401 (so the scrape really used the bearer file)"

    step("/metrics is protected with client keys on", metrics_protected)

    if failures:
        print(f"\nfailed: {', '.join(failures)}")
    if args.counts:
        with open(args.counts, "w") as f:
            f.write(f"{len(passed)} {len(failures)}\n")
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prom-config")
    p.add_argument("--example", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--interval", default="1s")
    p.add_argument("--job", default="ai-router")
    p.add_argument("--credentials-file")
    p.add_argument("--out", required=True)
    p = sub.add_parser("traffic")
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--wrong-key", default="sk-wrong")
    p.add_argument("--round", type=int, default=1)
    p.add_argument("--phase", choices=["ok", "fail", "recover"], default="ok")
    p.add_argument("--prompts-dir")
    p = sub.add_parser("wait-scrapes")
    p.add_argument("--prom", required=True)
    p.add_argument("--job", default="ai-router")
    p.add_argument("--count", type=int, default=2)
    p.add_argument("--timeout", type=float, default=20)
    p = sub.add_parser("check")
    p.add_argument("--prom", required=True)
    p.add_argument("--router", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--job", default="ai-router")
    p.add_argument("--dashboard", required=True)
    p.add_argument("--min-queries", type=int, default=12)
    p.add_argument("--client-key", required=True)
    p.add_argument("--secret", action="append", default=[], help="a string that must appear nowhere")
    p.add_argument("--tsdb", required=True)
    p.add_argument("--sessions", required=True)
    p.add_argument("--router-log", required=True)
    p.add_argument("--counts", help="write 'PASSED FAILED' here")
    args = parser.parse_args()
    try:
        if args.command == "prom-config":
            prom_config(args)
        elif args.command == "traffic":
            traffic(args)
        elif args.command == "wait-scrapes":
            wait_scrapes(args)
        else:
            return check(args)
    except Failure as err:
        print(f"  FAIL {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
