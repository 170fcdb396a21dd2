#!/usr/bin/env python3
"""Prometheus plumbing for check_dashboard.py: plain HTTP to the router and to
Prometheus, Prometheus' scrape config, and waiting for its scrapes. Python 3 standard
library only; every request has a timeout, every loop a deadline.

  Failure, expect  a check that did not hold (what every part raises and reports)
  http             one request to the router or Prometheus: (status, headers, bytes)
  prom_config      subcommand prom-config: the scrape config derived from
                   infra/prometheus/prometheus.yml
  prom_get, query  Prometheus' HTTP API (/api/v1/...) as JSON
  wait_scrapes     subcommand wait-scrapes: N scrapes of the router after now
"""

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 15  # seconds, for any one HTTP request


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
