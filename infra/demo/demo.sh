#!/usr/bin/env bash
# `make demo`: the router on a real local model, no GPU and no cloud key.
# Builds the router and llama.cpp's llama-server (cached after the first run), starts
# llama-server with a 270M Gemma model on 127.0.0.1, starts the router in front of it
# with config/demo.toml, prints what to try, and stops both on Ctrl-C.
#
# Environment: DEMO_PORT (router, default 8080), LLAMA_PORT (default 8081).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"

port="${DEMO_PORT:-8080}"
llama_port="${LLAMA_PORT:-8081}"
logs="${root}/logs"
mkdir -p "${logs}/sessions"

build_router
start_llama "${llama_port}" "${logs}/llama-server.log"
start_router "${port}" "${llama_port}" "${logs}/sessions" "${logs}/router.log"

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

  Each request writes a session log:  ls logs/sessions/   (router log: logs/router.log)
  Readiness of the backends:          curl http://127.0.0.1:${port}/health/ready
  Press Ctrl-C to stop both servers.

TXT
# Wait on the router; if either server dies, stop the other and report it. Ctrl-C
# reaches the servers too (same process group), so tell that apart from a crash.
interrupted=0
trap 'interrupted=1' INT TERM
while ((!interrupted)) && kill -0 "${router_pid}" 2>/dev/null && kill -0 "${llama_pid}" 2>/dev/null; do
    sleep 1
done
sleep 0.3 # let a pending Ctrl-C's trap run before deciding which case this is
if ((interrupted)); then
    say "stopping…"
    exit 0
fi
say "a server stopped unexpectedly; see logs/router.log and logs/llama-server.log"
exit 1
