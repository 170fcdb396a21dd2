#!/usr/bin/env python3
"""`make health` and `make status`: each Compose service's state and health (with the
reason when it is not healthy) and the router's own view of its backends (/health/ready).

Usage: health.py verbose|line -- COMPOSE COMMAND...   (infra/ops/compose.sh passes the
compose command with its -f and --env-file). Exit status 0 only when every service of the
active profiles is healthy and the router says "ready" or "degraded".

A backend whose `base_url` is a list (a pool) gets one line per endpoint: its URL, state,
requests in flight, latency and, when it is failing, its last error. A pool with an
endpoint down is a yellow line: it still answers, on the endpoints that are up.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOLD, RED, GREEN, YELLOW, RESET = "\033[1m", "\033[31m", "\033[32m", "\033[33m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = RED = GREEN = YELLOW = RESET = ""


def run(args, timeout=30):
    """stdout of a command, or "" when it fails."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def json_records(text):
    """`compose ps --format json` prints a JSON array (older v2) or one object a line."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def env_file_value(name, default):
    """A value from the repository's .env (the last assignment wins), else the default."""
    value = default
    try:
        with open(os.path.join(ROOT, ".env"), encoding="utf-8") as env:
            for line in env:
                key, sep, rest = line.strip().partition("=")
                if sep and key == name and rest.strip():
                    value = rest.strip().strip("'\"")
    except OSError:
        pass
    return value


def service_states(compose):
    """[(service, state, health, container id)] for every service of the active profiles."""
    services = run(compose + ["config", "--services"]).split()
    containers = json_records(run(compose + ["ps", "--all", "--format", "json"]))
    by_service = {c.get("Service"): c for c in containers}
    states = []
    for service in services:
        c = by_service.get(service)
        if c is None:
            states.append((service, "not created", "", ""))
        else:
            states.append((service, c.get("State", "?"), c.get("Health", ""), c.get("ID", "")))
    return states


def why_not_healthy(compose, service, container):
    """The last health-check output, exit code, restarts and log lines of a container."""
    if not container:
        return ["no container: `make up` creates it"]
    lines = []
    inspected = json_records(run(["docker", "inspect", container]))
    if inspected:
        state = inspected[0].get("State", {})
        restarts = inspected[0].get("RestartCount", 0)
        if state.get("Status") != "running":
            lines.append(f"exit code {state.get('ExitCode')}" + (f": {state['Error']}" if state.get("Error") else ""))
        if restarts:
            lines.append(f"restarted {restarts} times")
        log = (state.get("Health") or {}).get("Log") or []
        if log:
            last = log[-1]
            output = " ".join((last.get("Output") or "").split())[:300]
            lines.append(f"last health check: exit {last.get('ExitCode')} {output}".rstrip())
    tail = run(compose + ["logs", "--no-color", "--no-log-prefix", "--tail", "5", service])
    lines += [f"log: {line}" for line in tail.splitlines()[-5:]]
    return lines


def router_ready():
    """(HTTP status, JSON body or None, error) of the router's /health/ready on this host."""
    port = env_file_value("ROUTER_PORT", "8080")
    url = f"http://127.0.0.1:{port}/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response), ""
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.load(error), ""
        except ValueError:
            return error.code, None, f"{url}: HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, None, f"{url}: {getattr(error, 'reason', error)}"


def gpu_memory():
    """'used / total MiB' per GPU from nvidia-smi, if it is installed."""
    out = run(["nvidia-smi", "--query-gpu=index,memory.used,memory.total", "--format=csv,noheader,nounits"])
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append(f"GPU {parts[0]}: {parts[1]} / {parts[2]} MiB used")
    return gpus


def healthy(state, health):
    # A service without a health check counts when it runs; every service here has one.
    return state == "running" and health in ("healthy", "")


def verbose(compose):
    states = service_states(compose)
    if not states:
        print(f"{RED}cannot read the Compose project (is .env valid? try: make ps){RESET}")
        return 1
    ok = True
    print(f"{BOLD}services{RESET}")
    for service, state, health, container in states:
        good = healthy(state, health)
        ok &= good
        colour = GREEN if good else (YELLOW if health == "starting" else RED)
        label = f"{state}, {health}" if health else state
        print(f"  {colour}{'ok ' if good else '!! '}{RESET}{service:<13} {label}")
        if not good:
            if health == "starting":
                print("      still starting (vLLM: loading, compiling, capturing CUDA graphs; first run: downloading)")
            for line in why_not_healthy(compose, service, container):
                print(f"      {line}")
    for gpu in gpu_memory():
        print(f"  {gpu}")

    print(f"{BOLD}router backends{RESET} (/health/ready)")
    return 0 if router_backends() and ok else 1


def partly_down(backend):
    """A pool that answers, but not on every endpoint."""
    endpoints = backend.get("endpoints") or []
    return backend.get("status") == "up" and backend.get("endpoints_up", len(endpoints)) < len(endpoints)


def endpoint_line(endpoint):
    """One endpoint of a pool: URL, state, in flight, latency, and its error when failing."""
    watch = endpoint.get("watch") or {}
    probe = endpoint.get("probe") or {}
    state = watch.get("state", "?")
    good = state == "up" and probe.get("status") == "up"
    colour = GREEN if good else (YELLOW if state == "up" else RED)
    latency = f", {watch['latency_ms']} ms" if watch.get("latency_ms") is not None else ""
    text = f"{endpoint.get('url', '?')}  {state}, {watch.get('in_flight', 0)} in flight{latency}"
    error = probe.get("error") or (watch.get("last_error") if not good or watch.get("failures_in_a_row") else None)
    if error:
        failures = watch.get("failures_in_a_row", 0)
        text += f"; {failures} failures in a row, last: {error}" if failures else f"; {error}"
    return f"{colour}{'ok ' if good else '!! '}{RESET}{text}"


def router_backends():
    """Prints each backend of the router's /health/ready (and each endpoint of a pool);
    True when every backend is up or knowingly unconfigured and the router is ready or
    degraded."""
    status, body, error = router_ready()
    if body is None:
        print(f"  {RED}!! {RESET}router not reachable: {error}")
        return False
    ok = True
    for name, backend in body.get("backends", {}).items():
        state = backend.get("status", "?")
        endpoints = backend.get("endpoints") or []
        # No xAI key is a choice (COMPLEX and ENRICH answer locally), not a fault.
        good = state in ("up", "unconfigured")
        ok &= good
        partly = partly_down(backend)
        colour = RED if not good else (YELLOW if state == "unconfigured" or partly else GREEN)
        latency = f" {backend['latency_ms']} ms" if "latency_ms" in backend else ""
        if len(endpoints) > 1:
            where = f"{backend.get('endpoints_up', 0)}/{len(endpoints)} endpoints up"
        else:
            where = f"at {backend.get('url', '')}"
        print(f"  {colour}{'ok ' if good else '!! '}{RESET}{name:<13} {state}{latency}  {backend.get('model', '')} {where}")
        if len(endpoints) > 1:
            for endpoint in endpoints:
                print(f"      {endpoint_line(endpoint)}")
        elif backend.get("error"):
            print(f"      {backend['error']}")
        if name == "xai" and state == "unconfigured":
            print("      COMPLEX and ENRICH are answered locally until XAI_API_KEY is set in .secrets")
    overall = body.get("status", "?")
    print(f"  overall: {overall} (HTTP {status})")
    return ok and overall in ("ready", "degraded")


def line(compose):
    states = service_states(compose)
    good = [s for s, state, health, _ in states if healthy(state, health)]
    bad = [f"{s} {health or state}" for s, state, health, _ in states if not healthy(state, health)]
    router, backends_ok, partly = router_line()
    services = f"{len(good)}/{len(states)} services healthy" + (f" ({'; '.join(bad)})" if bad else "")
    ok = states and not bad and backends_ok
    colour = (YELLOW if partly else GREEN) if ok else RED
    print(f"{colour}{'OK' if ok else 'NOT OK'}{RESET} · {services} · {router}")
    return 0 if ok else 1


def router_line():
    """(text, every backend up or unconfigured, a pool has an endpoint down) for `make status`."""
    status, body, error = router_ready()
    if body is None:
        return f"router unreachable ({error})", False, False
    backends = body.get("backends", {})

    def one(name, b):
        endpoints = b.get("endpoints") or []
        pool = f" ({b.get('endpoints_up', 0)}/{len(endpoints)} endpoints)" if len(endpoints) > 1 else ""
        return f"{name} {b.get('status', '?')}{pool}"

    router = f"router {body.get('status', '?')}: " + ", ".join(one(name, b) for name, b in backends.items())
    backends_ok = all(b.get("status") in ("up", "unconfigured") for b in backends.values())
    return router, backends_ok, any(partly_down(b) for b in backends.values())


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("verbose", "line") or sys.argv[2] != "--":
        sys.exit(__doc__)
    compose = sys.argv[3:]
    sys.exit(verbose(compose) if sys.argv[1] == "verbose" else line(compose))


if __name__ == "__main__":
    main()
