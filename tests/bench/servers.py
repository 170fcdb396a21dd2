"""Starts the bench's servers on free 127.0.0.1 ports:

- `upstream`: nginx answering POST /v1/chat/completions with a canned completion and
  POST /classifier/v1/chat/completions with a canned "SIMPLE" (the instant classifier);
- `sse`: fake_sse.py, the streaming backend that stamps each chunk with its send time;
- `hop`: nginx `proxy_pass` in front of both (keep-alive upstream pools; buffering off
  for SSE): the bare hop, the floor every figure is compared with;
- `router` (sessions off), `router_sessions` (sessions on, in a temp folder) and
  `router_sse` (sessions off, primary = the SSE fake): the release binary under test.
"""

import json
import os
import subprocess
from dataclasses import dataclass, field

import procs

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Where the router runs (config/router.toml, prompts/): a checkout that matches the binary.
ROUTER_ROOT = os.environ.get("BENCH_ROOT") or ROOT
# A memory file system, for session files without a disk under them.
SHM = "/dev/shm"

COMPLETION = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
    "model": "fake-model",
    "choices": [{"index": 0, "message": {
        "role": "assistant",
        "content": "Blue on the hoist side, white in the middle, red on the fly side."},
        "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 42, "completion_tokens": 17, "total_tokens": 59},
}
MODELS = {"object": "list", "data": [{"id": "served-model", "object": "model"}]}
LABEL = {**COMPLETION, "choices": [{"index": 0, "message": {
    "role": "assistant", "content": "SIMPLE"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 300, "completion_tokens": 1, "total_tokens": 301}}


def nginx_binary():
    for path in ("/usr/sbin/nginx", "/usr/bin/nginx"):
        if os.access(path, os.X_OK):
            return path
    raise RuntimeError("nginx is not installed (tests/bench/bench.sh installs it)")


def _canned(body):
    text = json.dumps(body, separators=(",", ":"))
    assert "'" not in text
    return f"default_type application/json; return 200 '{text}';"


# The canned stream for the throughput of streams: what vLLM sends for a 50-chunk answer.
STREAM_CHUNKS = 50


def write_canned_stream(workdir):
    """The canned stream as a static file (nginx's `return` takes 4 KiB at most), at the
    path the upstream serves it from: `/sse/v1/chat/completions` under `workdir/static`."""
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
             "model": "served-model",
             "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}]}
    events = [json.dumps(chunk, separators=(",", ":"))] * (STREAM_CHUNKS - 1)
    chunk["choices"][0]["finish_reason"] = "stop"
    events.append(json.dumps(chunk, separators=(",", ":")))
    folder = os.path.join(workdir, "static", "sse", "v1", "chat")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "completions"), "w") as f:
        f.write("".join(f"data: {e}\n\n" for e in events) + "data: [DONE]\n\n")
    for path in (os.path.join(workdir, "static"), os.path.join(workdir, "static", "sse"),
                 os.path.join(workdir, "static", "sse", "v1"), folder):
        os.chmod(path, 0o755)  # nginx workers run as an unprivileged user


def _common(workdir, name, workers):
    temp = os.path.join(workdir, f"{name}-temp")
    os.makedirs(temp, exist_ok=True)
    return f"""
worker_processes {workers};
daemon off;
master_process on;
pid {workdir}/{name}.pid;
error_log {workdir}/{name}-error.log warn;
events {{ worker_connections 4096; }}
"""[1:], f"""
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
"""


def upstream_conf(workdir, port, workers):
    top, http = _common(workdir, "upstream", workers)
    return top + f"""http {{{http}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /v1/chat/completions {{ {_canned(COMPLETION)} }}
        location = /classifier/v1/chat/completions {{ {_canned(LABEL)} }}
        # The routers' health probes: a backend that fails them is ejected, and the first
        # requests of a run after a quiet spell would get a 503.
        location = /v1/models {{ {_canned(MODELS)} }}
        location = /classifier/v1/models {{ {_canned(MODELS)} }}
        location = /sse/v1/models {{ {_canned(MODELS)} }}
        # A POST to a static file is a 405 in nginx: answered with the file instead.
        location ^~ /sse/ {{ root {workdir}/static; default_type text/event-stream;
                             error_page 405 =200 $uri; }}
        location / {{ return 404; }}
    }}
}}
"""


def hop_conf(workdir, port, sse_port, upstream_port, fake_sse_port, workers):
    top, http = _common(workdir, "hop", workers)
    proxy = ("proxy_http_version 1.1; proxy_set_header Connection \"\"; "
             "proxy_set_header Host $host;")
    return top + f"""http {{{http}
    upstream canned {{ server 127.0.0.1:{upstream_port}; keepalive 512; }}
    upstream sse {{ server 127.0.0.1:{fake_sse_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ proxy_pass http://canned; {proxy} }}
        location /sse/ {{ proxy_pass http://canned; {proxy} proxy_buffering off; }}
    }}
    server {{
        listen 127.0.0.1:{sse_port};
        location / {{ proxy_pass http://sse; {proxy} proxy_buffering off; }}
    }}
}}
"""


@dataclass
class Servers:
    ports: dict = field(default_factory=dict)
    pids: dict = field(default_factory=dict)
    sessions_dir: str = ""
    # Session files on tmpfs (`tmpfs_dir`), when the machine has one.
    tmpfs_dir: str = ""
    cache_off: object = None


def start(fleet, workdir, binary, options):
    """Starts every server and returns their ports and PIDs."""
    s = start_backends(fleet, workdir, options)
    upstream = f"http://127.0.0.1:{s.ports['upstream']}"
    sse = f"http://127.0.0.1:{s.ports['sse']}"
    for name, primary, sessions in (("router", upstream, False),
                                    ("router_sessions", upstream, True),
                                    ("router_sse", sse, False),
                                    ("router_stream", f"{upstream}/sse", False)):
        start_router(fleet, s, name, binary, primary, sessions)
    # Session logs as daily segments, in a folder of their own.
    segments = {"AI_ROUTER_SESSIONS__FORMAT": "segments",
                "AI_ROUTER_SESSIONS__DIR": os.path.join(workdir, "segments")}
    start_router(fleet, s, "router_segments", binary, upstream, True, extra=segments)
    # One file per request on tmpfs, to tell the file system's own cost from the router's.
    if os.path.isdir(SHM):
        s.tmpfs_dir = tmpfs_dir(workdir)
        os.makedirs(s.tmpfs_dir)
        start_router(fleet, s, "router_tmpfs", binary, upstream, True,
                     extra={"AI_ROUTER_SESSIONS__DIR": s.tmpfs_dir})
    return s


def tmpfs_dir(workdir):
    """The session folder on tmpfs that goes with `workdir` (for the caller to remove)."""
    return os.path.join(SHM, os.path.basename(workdir))


def start_backends(fleet, workdir, options):
    """The canned nginx upstream, the SSE fake and the nginx hop in front of both."""
    nginx = nginx_binary()
    workers = options["nginx_workers"]
    s = Servers()
    for name in ("upstream", "hop", "hop_sse", "sse"):
        s.ports[name] = procs.free_port()
    os.chmod(workdir, 0o755)  # nginx workers run as an unprivileged user
    write_canned_stream(workdir)
    confs = {
        "upstream": upstream_conf(workdir, s.ports["upstream"], workers),
        "hop": hop_conf(workdir, s.ports["hop"], s.ports["hop_sse"], s.ports["upstream"],
                        s.ports["sse"], workers),
    }
    for name, text in confs.items():
        path = os.path.join(workdir, f"{name}.conf")
        with open(path, "w") as f:
            f.write(text)
        proc = fleet.spawn(name, [nginx, "-p", workdir, "-e", f"{workdir}/{name}-error.log",
                                  "-c", path])
        fleet.wait_port(name, proc, s.ports[name])
        s.pids[name] = proc.pid
    proc = fleet.spawn("sse", ["python3", os.path.join(HERE, "fake_sse.py"),
                               str(s.ports["sse"]), str(options["chunks"]),
                               str(options["gap_ms"]), str(options["first_ms"])])
    fleet.wait_port("sse", proc, s.ports["sse"])
    s.pids["sse"] = proc.pid
    s.sessions_dir = os.path.join(workdir, "sessions")
    s.cache_off = None
    return s


def start_router(fleet, s, name, binary, primary, sessions, wrapper=(), timeout=15.0,
                 extra=None):
    """Starts the router `binary` as `name` (optionally under `wrapper`, e.g. valgrind),
    answering with `primary` and classifying with the canned "SIMPLE"."""
    if s.cache_off is None:
        s.cache_off = cache_off_env(binary)
    s.ports[name] = procs.free_port()
    classifier = f"http://127.0.0.1:{s.ports['upstream']}/classifier/v1"
    env = router_env(s.ports[name], f"{primary}/v1", classifier, sessions, s.sessions_dir,
                     {**s.cache_off, **(extra or {})})
    proc = fleet.spawn(name, [*wrapper, binary, "serve", "--config", "config/router.toml"],
                       env=env, cwd=ROUTER_ROOT)
    fleet.wait_port(name, proc, s.ports[name], path="/health", timeout=timeout)
    s.pids[name] = proc.pid


def router_env(port, primary, classifier, sessions, sessions_dir, extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ROUTER_")}
    env.update({
        "RUST_LOG": "warn",
        # As the image ships it (infra/Dockerfile): mimalloc without eager arena commit.
        "MIMALLOC_ARENA_EAGER_COMMIT": "0",
        "AI_ROUTER_SERVER__LISTEN": f"127.0.0.1:{port}",
        "AI_ROUTER_SERVER__SHUTDOWN_GRACE_SECS": "1",
        "AI_ROUTER_SERVER__PROMPTS_DIR": "prompts",
        "AI_ROUTER_BACKENDS__PRIMARY__BASE_URL": primary,
        "AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL": classifier,
        "AI_ROUTER_META__RULES_FILE": "config/meta_rules.toml",
        "AI_ROUTER_SESSIONS__ENABLED": "true" if sessions else "false",
        "AI_ROUTER_SESSIONS__DIR": sessions_dir,
        **extra,
    })
    return env


def cache_off_env(binary):
    """Turns the classification cache off when this build has one, so that every SIMPLE
    request really calls the classifier (oha sends the same body each time)."""
    extra = {"AI_ROUTER_ROUTING__CACHE_ENTRIES": "0"}
    env = router_env(0, "http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1", False, "/tmp",
                     extra)
    probe = subprocess.run([binary, "check", "--config", "config/router.toml"], cwd=ROUTER_ROOT,
                           env=env, capture_output=True, timeout=30)
    return extra if probe.returncode == 0 else {}
