#!/usr/bin/env bash
# `make demo`: the router on a real local model, no GPU and no cloud key.
# Builds the router and llama.cpp's llama-server (cached after the first run), starts
# llama-server with a 270M Gemma model on 127.0.0.1, starts the router in front of it
# with config/demo.toml, prints what to try, and stops both on Ctrl-C.
#
# Environment: DEMO_PORT (router, default 8080), LLAMA_PORT (default 8081), DEMO_LOGS
# (the router's and llama-server's logs and the session folder, default logs/).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"

port="${DEMO_PORT:-8080}"
llama_port="${LLAMA_PORT:-8081}"
logs="${DEMO_LOGS:-${root}/logs}"

# Before anything is built, started or written: a second demo (or anything else) on
# these ports would answer our readiness checks, and our log files are the running
# demo's too.
for busy in "${port}" "${llama_port}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/${busy}") 2>/dev/null; then
        say "127.0.0.1:${busy} is already in use (another make demo?). Stop it, or pick free ports:"
        say "  DEMO_PORT=8090 LLAMA_PORT=8091 make demo"
        exit 1
    fi
done
mkdir -p "${logs}/sessions"

build_router
start_llama "${llama_port}" "${logs}/llama-server.log"
start_router "${port}" "${llama_port}" "${logs}/sessions" "${logs}/router.log"

# The classify command reads config/demo.toml, which names llama-server's default port.
classify_env=""
if [[ "${llama_port}" != 8081 ]]; then
    classify_env="AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL=http://127.0.0.1:${llama_port}/v1 "
fi

# The snippets start at column 0 so that they can be pasted as they are (an indented
# heredoc terminator never closes).
cat >&2 <<TXT

  ai-router is running on http://127.0.0.1:${port}/v1 in front of llama-server (Gemma 3 270M).
  The model is tiny: expect fluent nonsense, not wisdom. The routing around it is real.

  Try it with curl (streaming):

curl -N http://127.0.0.1:${port}/v1/chat/completions -H 'Content-Type: application/json' \\
  -d '{"model":"ai-router","stream":true,"messages":[{"role":"user","content":"Name three colours."}]}'

  or with the OpenAI Python SDK (pip install openai):

python3 - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="http://127.0.0.1:${port}/v1", api_key="unused")
print([m.id for m in client.models.list()])
reply = client.chat.completions.create(model="ai-router",
    messages=[{"role": "user", "content": "Name three colours."}])
print(reply.choices[0].message.content)
PY

  How the router would route a message (the classifier, the rules, the route):

${classify_env}target/release/ai-router classify --config config/demo.toml "what's the weather in Oslo today?"

  Open WebUI: add an OpenAI API connection to http://127.0.0.1:${port}/v1 (any key) and, in the
  connection's Headers, {"X-OpenWebUI-Task": "{{TASK}}"}: its titles, tags and follow-ups then
  skip the classifier (README, "Using it"). The model menu offers ai-router (automatic) and
  ai-router/local, /cloud, /search (a route of your choice).

  Each request writes a session log:  ls ${logs}/sessions/   (router log: ${logs}/router.log)
  Readiness of the backends:          curl http://127.0.0.1:${port}/health/ready
  Press Ctrl-C to stop both servers.

TXT
# Wait on the router; if either server dies, stop the other and report it. Ctrl-C
# reaches the servers too (same process group), so tell that apart from a crash.
# `|| true`: Ctrl-C also ends `sleep` with a failure, which `set -e` would turn into
# this script's exit 130 (and make's "Error 130") before the trap's flag is read.
interrupted=0
trap 'interrupted=1' INT TERM
while ((!interrupted)) && kill -0 "${router_pid}" 2>/dev/null && kill -0 "${llama_pid}" 2>/dev/null; do
    sleep 1 || true
done
sleep 0.3 || true # let a pending Ctrl-C's trap run before deciding which case this is
if ((interrupted)); then
    say "stopping…"
    stop_stack
    say "stopped (logs and sessions stay in ${logs})"
    exit 0
fi
say "a server stopped unexpectedly; see ${logs}/router.log and ${logs}/llama-server.log"
exit 1
