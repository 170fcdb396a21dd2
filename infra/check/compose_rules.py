#!/usr/bin/env python3
"""The stack's rules, checked on the Compose file as Docker Compose renders it (JSON, from
infra/check/compose.sh) and on the raw files. Prints one line per rule and a count; exits
1 if any rule fails. Python 3.11+ (tomllib), standard library only.

Usage: compose_rules.py RENDERED.json   (run from anywhere; paths are from the repo root)
"""

import json
import os
import re
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSE = os.path.join(ROOT, "infra", "docker-compose.yml")
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}
# Dependencies that deliberately do not wait for health, and why (kept in the compose file).
STARTED_ONLY = {("ai-router", "vllm-router")}  # the router falls back while the classifier loads
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)

results = []


def rule(name):
    def register(fn):
        results.append((name, fn))
        return fn
    return register


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def flags(service):
    """{--flag: value or True} from a vLLM service's command (`--a=b` or `--a b` or `--a`)."""
    out, args = {}, service.get("command") or []
    i = 1  # args[0] is the model
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            out[key] = value
        elif arg.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            out[arg] = args[i + 1]
            i += 1
        elif arg.startswith("--"):
            out[arg] = True
        i += 1
    return out


def vllm_services(c):
    return {n: s for n, s in c["services"].items() if (s.get("entrypoint") or [None])[0] == "vllm"}


@rule("every service has a health check")
def health_checks(c):
    bad = [n for n, s in c["services"].items()
           if not s.get("healthcheck") or s["healthcheck"].get("disable")
           or (s["healthcheck"].get("test") or ["NONE"])[0] == "NONE"]
    return not bad, f"without: {', '.join(bad)}" if bad else f"{len(c['services'])} services"


@rule("every service has a restart policy")
def restart(c):
    bad = [n for n, s in c["services"].items() if s.get("restart") not in RESTART_POLICIES]
    return not bad, f"without: {', '.join(bad)}" if bad else ""


@rule("dependencies wait for health (except where the file says why)")
def depends(c):
    bad = []
    for name, service in c["services"].items():
        for dep, spec in (service.get("depends_on") or {}).items():
            if spec.get("condition") != "service_healthy" and (name, dep) not in STARTED_ONLY:
                bad.append(f"{name} -> {dep} ({spec.get('condition')})")
    chain = c["services"].get("vllm-router", {}).get("depends_on", {}).get("vllm-primary", {})
    if chain.get("condition") != "service_healthy":
        bad.append("vllm-router must start after vllm-primary is healthy (one GPU, sequential profiling)")
    return not bad, "; ".join(bad)


def env_files(service):
    """Which env files a service reads: compose.sh adds a marker variable to each scratch
    copy (rendering merges env_file into `environment`, so the file names are gone)."""
    env = service.get("environment") or {}
    return sorted(name for name, mark in ((".env", "CHECK_MARK_ENV_FILE"),
                                          (".secrets", "CHECK_MARK_SECRETS_FILE")) if mark in env)


@rule("every env file a service reads has a committed .example")
def env_examples(c):
    named = set(re.findall(r"^\s*-?\s*path:\s*\.\./([^\s#]+)", read("infra/docker-compose.yml"), re.M))
    missing = [f for f in sorted(named) if not os.path.exists(os.path.join(ROOT, f + ".example"))]
    readers = {n: env_files(s) for n, s in c["services"].items()}
    unread = [f for f in sorted(named) if not any(f in files for files in readers.values())]
    ok = bool(named) and not missing and not unread and named <= {".env", ".secrets"}
    note = f"missing: {', '.join(missing)}" if missing else "; ".join(
        f"{n}: {' '.join(files) or '-'}" for n, files in readers.items())
    return ok, note


@rule("every ${VAR} in the Compose file is documented in .env.example")
def variables(c):
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", read("infra/docker-compose.yml")))
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", read(".env.example"), re.M))
    missing = sorted(used - documented)
    return not missing, f"undocumented: {', '.join(missing)}" if missing else f"{len(used)} variables"


@rule("no secret in the Compose file or .env.example")
def no_secrets(c):
    bad = []
    for path in ("infra/docker-compose.yml", ".env.example"):
        for number, line in enumerate(read(path).splitlines(), 1):
            match = re.match(r"^\s*-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*[:=]\s*(.*)$", line)
            if match and SECRET_NAME.search(match.group(1)) and not line.lstrip().startswith("#"):
                value = match.group(2).split("#")[0].strip().strip("'\"")
                if value and not value.startswith("${"):
                    bad.append(f"{path}:{number}: {match.group(1)}")
    secret_names = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", read(".secrets.example"), re.M))
    for number, line in enumerate(read(".secrets.example").splitlines(), 1):
        if re.match(r"^[A-Z_][A-Z0-9_]*=.+", line):
            bad.append(f".secrets.example:{number}: has a value")
    leaked = sorted(n for n in secret_names if re.search(rf"^{n}=", read(".env.example"), re.M))
    bad += [f".env.example sets {n}" for n in leaked]
    return not bad, "; ".join(bad) if bad else f"secrets only in .secrets ({', '.join(sorted(secret_names))})"


@rule("both vLLM servers share one GPU and one --max-model-len")
def same_gpu_and_context(c):
    servers = vllm_services(c)
    lens = {n: flags(s).get("--max-model-len") for n, s in servers.items()}
    gpus = {n: json.dumps(s.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices"))
            for n, s in servers.items()}
    ok = len(servers) == 2 and len(set(lens.values())) == 1 and None not in lens.values() and len(set(gpus.values())) == 1
    return ok, f"--max-model-len {lens}; devices {set(gpus.values())}"


@rule("GPU memory: the two --gpu-memory-utilization add up to at most 0.90")
def memory_split(c):
    shares = {n: float(flags(s).get("--gpu-memory-utilization", 0.9)) for n, s in vllm_services(c).items()}
    total = sum(shares.values())
    return total <= 0.90, f"{shares} = {total:.2f}"


@rule("vLLM serves the model names config/router.toml asks for")
def served_names(c):
    config = tomllib.loads(read("config/router.toml"))
    want = {"vllm-primary": config["backends"]["primary"]["model"],
            "vllm-router": config["backends"]["classifier"]["model"]}
    bad = []
    for name, model in want.items():
        service = c["services"].get(name, {})
        served = flags(service).get("--served-model-name")
        if served != model:
            bad.append(f"{name} serves {served!r}, config/router.toml wants {model!r}")
        base = config["backends"]["primary" if name == "vllm-primary" else "classifier"]["base_url"]
        # One URL, or a pool of them: the Compose service must be one of the pool.
        urls = base if isinstance(base, list) else [base]
        if not any(str(u).startswith(f"http://{name}:8000/") for u in urls):
            bad.append(f"config/router.toml reaches {name} at {base!r}, not http://{name}:8000/v1")
    return not bad, "; ".join(bad) if bad else ", ".join(want.values())


@rule("vLLM flags the issue asks for: fp8 KV cache, prefix caching, parsers")
def required_flags(c):
    bad = []
    for name, service in vllm_services(c).items():
        f = flags(service)
        for flag, value in (("--kv-cache-dtype", "fp8"), ("--enable-prefix-caching", True)):
            if f.get(flag) != value:
                bad.append(f"{name}: {flag}")
    primary = flags(c["services"].get("vllm-primary", {}))
    for flag in ("--reasoning-parser", "--tool-call-parser", "--enable-auto-tool-choice"):
        if flag not in primary:
            bad.append(f"vllm-primary: {flag}")
    return not bad, "missing " + ", ".join(bad) if bad else ""


@rule("every vLLM flag is explained in infra/vllm-flags.md")
def flags_documented(c):
    doc = read("infra/vllm-flags.md")
    used = sorted({f for s in vllm_services(c).values() for f in flags(s)})
    missing = [f for f in used if f"`{f}" not in doc]
    return not missing, f"not in the doc: {', '.join(missing)}" if missing else f"{len(used)} flags"


@rule("the router: config, prompts and logs mounted, both env files, serve command")
def router_service(c):
    s = c["services"].get("ai-router", {})
    targets = {v.get("target"): v for v in s.get("volumes") or []}
    bad = [t for t in ("/app/config", "/app/prompts", "/app/logs") if t not in targets]
    if targets.get("/app/logs", {}).get("read_only"):
        bad.append("/app/logs must be writable")
    files = env_files(s)
    if files != [".env", ".secrets"]:
        bad.append(f"env files {files}")
    if s.get("command") != ["serve", "--config", "config/router.toml"]:
        bad.append(f"command {s.get('command')}")
    return not bad, "; ".join(bad)


@rule("the router's stop grace period outlasts server.shutdown_grace_secs")
def stop_grace(c):
    grace = tomllib.loads(read("config/router.toml")).get("server", {}).get("shutdown_grace_secs", 30)
    raw = c["services"].get("ai-router", {}).get("stop_grace_period", "10s")
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", raw)
    seconds = int(match.group(1) or 0) * 60 + int(match.group(2) or 0) if match else 0
    return seconds > grace, f"stop_grace_period {raw}, shutdown_grace_secs {grace}"


@rule("trusted_proxies in Compose names exactly the pinned network")
def trusted(c):
    subnets = [p["subnet"] for p in c["networks"]["default"].get("ipam", {}).get("config", [])]
    env = c["services"].get("ai-router", {}).get("environment", {}) or {}
    proxies = json.loads(env.get("AI_ROUTER_SERVER__TRUSTED_PROXIES", "[]"))
    ok = len(subnets) == 1 and subnets[0] in proxies
    return ok, f"network {subnets}, trusted {proxies}"


@rule("images are pinned (a tag, never latest) and no service mounts the Docker socket")
def pinned(c):
    bad = []
    for name, service in c["services"].items():
        image = service.get("image", "")
        if "build" not in service and (":" not in image.split("/")[-1] or image.endswith(":latest")):
            bad.append(f"{name}: {image}")
        for volume in service.get("volumes") or []:
            if "docker.sock" in str(volume.get("source", "")):
                bad.append(f"{name} mounts the Docker socket")
    return not bad, "; ".join(bad)


@rule("cloudflared is opt-in (profile tunnel); Traefik's dashboard is off")
def optional(c):
    bad = []
    if c["services"].get("cloudflared", {}).get("profiles") != ["tunnel"]:
        bad.append("cloudflared is not in profile tunnel")
    if not re.search(r"^api:\s*\n\s+dashboard:\s*false", read("infra/traefik/traefik.yml"), re.M):
        bad.append("infra/traefik/traefik.yml does not say api.dashboard: false")
    return not bad, "; ".join(bad)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        rendered = json.load(f)
    passed = failed = 0
    for name, fn in results:
        try:
            ok, note = fn(rendered)
        except (KeyError, ValueError, TypeError, OSError) as error:
            ok, note = False, f"{type(error).__name__}: {error}"
        passed += ok
        failed += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + note if note else ''}")
    print(f"compose rules: {'all ' + str(passed) + ' hold' if not failed else str(failed) + ' of ' + str(passed + failed) + ' broken'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
