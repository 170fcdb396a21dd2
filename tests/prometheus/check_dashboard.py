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
"""

import argparse
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 15  # seconds, for any one HTTP request
TITLE_PROMPT = (
    "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.\n"
    "### Chat History:\n<chat_history>\nUSER: How do I bake bread?\n</chat_history>"
)


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def http(method, url, body=None, headers=None, raw=None, timeout=TIMEOUT):
    """(status, headers, bytes) of one request; HTTP error statuses are answers too."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()
    except (urllib.error.URLError, OSError) as err:
        raise Failure(f"{method} {url}: {getattr(err, 'reason', err)}") from None


# --- prom-config ------------------------------------------------------------------------

def prom_config(args):
    """The example with `scrape_interval` and the target replaced, each exactly once, so
    that a reshaped example fails here instead of silently testing something else."""
    with open(args.example) as f:
        text = f.read()
    replacements = [
        (r"(?m)^(\s*scrape_interval:\s*)\S+", rf"\g<1>{args.interval}"),
        (r'(?m)^(\s*-\s*targets:\s*\[)"[^"\]]*"(\])', rf'\g<1>"{args.target}"\g<2>'),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        expect(count == 1, f"{args.example}: expected one match of {pattern!r}, found {count}")
    jobs = re.findall(r"(?m)^\s*-\s*job_name:\s*(\S+)", text)
    expect(jobs == [args.job], f"{args.example}: expected the one job {args.job!r}, found {jobs}")
    if args.credentials_file and re.search(r"(?m)^\s*credentials_file:", text):
        # The example already sends a key (uncommented): only its file is replaced.
        text, count = re.subn(r"(?m)^(\s*credentials_file:\s*)\S+", rf"\g<1>{args.credentials_file}", text)
        expect(count == 1, f"{args.example}: expected one credentials_file, found {count}")
    elif args.credentials_file:
        # The router runs with client keys (server.api_keys_env) and protect_stats, so
        # /metrics wants `Authorization: Bearer <key>`, as a protected deployment would.
        match = re.search(r"(?m)^(\s*)metrics_path:.*$", text)
        expect(match, f"{args.example}: no metrics_path line")
        indent = match.group(1)
        auth = (f"\n{indent}authorization:\n{indent}  type: Bearer\n"
                f"{indent}  credentials_file: {args.credentials_file}")
        text = text[:match.end()] + auth + text[match.end():]
    with open(args.out, "w") as f:
        f.write(text)
    print(text, end="")


# --- traffic ----------------------------------------------------------------------------

class Router:
    def __init__(self, url, key):
        self.url = url.rstrip("/")
        self.key = key
        self.routes = {}

    def chat(self, body, headers=None, raw=None, key=None):
        hdrs = {"Authorization": f"Bearer {key or self.key}"}
        hdrs.update(headers or {})
        return http("POST", self.url + "/v1/chat/completions", body, hdrs, raw)

    def answer(self, name, text, stream=False, want_route=None, headers=None):
        """One chat that must succeed on `want_route`; a stream is read to [DONE]."""
        body = {"model": "ai-router", "stream": stream,
                "messages": [{"role": "user", "content": text}]}
        if stream:
            body["stream_options"] = {"include_usage": True}
        status, hdrs, data = self.chat(body, headers)
        route = hdrs.get("x-ai-router-route")
        expect(status == 200, f"{name}: HTTP {status}: {data[:300]!r}")
        expect(route == want_route, f"{name}: x-ai-router-route {route!r}, expected {want_route!r}")
        if stream:
            lines = [line for line in data.decode().splitlines() if line.startswith("data: ")]
            expect(lines and lines[-1] == "data: [DONE]", f"{name}: stream does not end in [DONE]")
            events = [json.loads(line[6:]) for line in lines[:-1]]
            text_out = "".join((c.get("delta") or {}).get("content") or ""
                               for e in events for c in e.get("choices") or [])
        else:
            answer = json.loads(data)
            text_out = answer["choices"][0]["message"].get("content") or ""
        expect(text_out.strip(), f"{name}: empty answer")
        self.routes[route] = self.routes.get(route, 0) + 1
        print(f"  ok   {name:<28} HTTP 200, route {route}")

    def stream_error(self, name, text, want_route):
        """A stream whose headers were sent before its backend failed (ENRICH sends them
        first): HTTP 200, then an error event and [DONE]."""
        body = {"model": "ai-router", "stream": True, "messages": [{"role": "user", "content": text}]}
        status, hdrs, data = self.chat(body)
        route = hdrs.get("x-ai-router-route")
        expect(status == 200 and route == want_route,
               f"{name}: HTTP {status}, route {route!r}, expected 200 on {want_route!r}")
        lines = [line[6:] for line in data.decode().splitlines() if line.startswith("data: ")]
        expect(len(lines) == 2 and lines[-1] == "[DONE]" and "error" in json.loads(lines[0]),
               f"{name}: expected an error event, then [DONE]: {data[:300]!r}")
        print(f"  ok   {name:<28} HTTP 200, route {route}, then an error event")

    def error(self, name, want_status, body=None, raw=None, stream=False, key=None):
        if raw is None and body is None:
            body = {"model": "ai-router", "stream": stream,
                    "messages": [{"role": "user", "content": name}]}
        status, _, data = self.chat(body, raw=raw, key=key)
        expect(status == want_status, f"{name}: HTTP {status}, expected {want_status}: {data[:300]!r}")
        envelope = json.loads(data).get("error")
        expect(isinstance(envelope, dict), f"{name}: no OpenAI error envelope: {data[:300]!r}")
        print(f"  ok   {name:<28} HTTP {status} ({envelope.get('type')})")


def traffic(args):
    router = Router(args.url, args.key)
    tag = f"round {args.round}"
    if args.phase == "ok":
        # Fake classifier keywords (tests/live/fake_openai.py): "prove"/"research" ->
        # COMPLEX, "weather"/"today"/"news"/"latest" -> ENRICH, else SIMPLE. Each text
        # names the round, so each round classifies afresh; the repeat is a cache hit.
        simple = f"Name three colours ({tag})."
        router.answer("SIMPLE json", simple, want_route="primary")
        router.answer("SIMPLE json, cached label", simple, want_route="primary")
        router.answer("SIMPLE stream", f"Say hello in French ({tag}).", True, "primary")
        router.answer("COMPLEX json", f"Prove that there are infinitely many primes ({tag}).",
                      want_route="xai")
        router.answer("COMPLEX stream", f"Prove this theorem of research interest ({tag}).",
                      True, "xai")
        router.answer("ENRICH json", f"What is the weather in Oslo today ({tag})?",
                      want_route="enrich")
        router.answer("ENRICH stream", f"Give me the latest news ({tag}).", True, "enrich")
        task = {"X-OpenWebUI-Task": "title_generation"}
        router.answer("META json", TITLE_PROMPT, want_route="meta", headers=task)
        router.answer("META stream", TITLE_PROMPT, True, "meta", headers=task)
        router.error("malformed JSON", 400, raw=b'{"model": "ai-router", "messages": [')
        router.error("no messages", 400, body={"model": "ai-router", "messages": []})
        router.error("wrong client key", 401, key=args.wrong_key)
        for path in ("/v1/models", "/health/ready"):
            status, _, _ = http("GET", router.url + path, headers={"Authorization": f"Bearer {args.key}"})
            expect(status == 200, f"GET {path}: HTTP {status}")
        # A prompt edit: the watcher reloads the folder (ai_router_prompt_reloads_total).
        with open(os.path.join(args.prompts_dir, "meta", "system.md"), "a") as f:
            f.write(f"\n<!-- edited by tests/prometheus, {tag} -->\n")
        missing = {"primary", "xai", "enrich", "meta"} - set(router.routes)
        expect(not missing, f"routes never answered: {sorted(missing)}")
    elif args.phase == "fail":
        # The primary's process is gone: refused, retried, then a 502 to the client.
        router.error("SIMPLE json, primary down", 502, body={
            "model": "ai-router", "messages": [{"role": "user", "content": f"Name a fruit ({tag})."}]})
        router.error("META stream, primary down", 502, body={
            "model": "ai-router", "stream": True,
            "messages": [{"role": "user", "content": TITLE_PROMPT}]})
        router.stream_error("ENRICH stream, primary down", f"Any news today ({tag})?", "enrich")
    else:
        router.answer("SIMPLE json, primary back", f"Name a tree ({tag}).", want_route="primary")


# --- Prometheus -------------------------------------------------------------------------

def prom_get(prom, path, **params):
    url = prom.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    status, _, data = http("GET", url)
    try:
        body = json.loads(data)
    except ValueError:
        raise Failure(f"GET {path}: HTTP {status}, not JSON: {data[:200]!r}") from None
    return status, body, data


def query(prom, expr):
    status, body, data = prom_get(prom, "/api/v1/query", query=expr)
    expect(status == 200 and body.get("status") == "success",
           f"{expr}: HTTP {status}, {body.get('errorType')}: {body.get('error')}")
    return body["data"], data


def wait_scrapes(args):
    """Waits for `count` scrapes of the job that started after now (the scraped sample's
    own timestamp), so that everything sent before is in the TSDB, twice over."""
    since = time.time()
    deadline = since + args.timeout
    seen = set()
    while True:
        data, _ = query(args.prom, f'timestamp(up{{job="{args.job}"}})')
        for sample in data["result"]:
            stamp = float(sample["value"][1])
            if stamp > since:
                seen.add(stamp)
        if len(seen) >= args.count:
            print(f"  ok   {len(seen)} scrapes after t={since:.1f} (in {time.time() - since:.1f} s)")
            return
        expect(time.time() < deadline, f"only {len(seen)} scrapes of {args.job} in {args.timeout} s")
        time.sleep(0.2)


# --- check ------------------------------------------------------------------------------

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
