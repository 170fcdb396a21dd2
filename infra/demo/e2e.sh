#!/usr/bin/env bash
# `make e2e`: the smoke flow against a real backend. Starts llama-server and the router
# on free loopback ports (building both on first use), runs tests/e2e/smoke.py with the
# official OpenAI Python SDK, curl and a raw SSE reader, stops them, then runs
# tests/demo/check.py, which drives `make demo` itself as a new user would.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"

cache="${AI_ROUTER_CACHE:-${HOME}/.cache/ai-router}"
work="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-e2e.XXXXXX")"
started=${SECONDS}

# The SDK lives in a private venv so the system Python is left alone.
venv="${cache}/e2e-venv"
if [[ ! -x "${venv}/bin/python" ]] || ! "${venv}/bin/python" -c 'import openai' 2>/dev/null; then
    say "installing the OpenAI Python SDK into ${venv}…"
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --quiet --disable-pip-version-check -r "${root}/tests/e2e/requirements.txt"
fi

# The router strips max_tokens for local models, so the server's own cap bounds each
# answer: short answers keep the run to about a minute.
export DEMO_N_PREDICT="${DEMO_N_PREDICT:-48}"

build_router
llama_port="$(free_port)"
start_llama "${llama_port}" "${work}/llama-server.log"
port="$(free_port)"
start_router "${port}" "${llama_port}" "${work}/sessions" "${work}/router.log"

say "running tests/e2e/smoke.py against http://127.0.0.1:${port}/v1"
status=0
AI_ROUTER_URL="http://127.0.0.1:${port}/v1" \
AI_ROUTER_SESSIONS="${work}/sessions" \
AI_ROUTER_BIN="${router_bin}" \
AI_ROUTER_ROOT="${root}" \
    "${venv}/bin/python" "${root}/tests/e2e/smoke.py" || status=$?
if ((status != 0)); then
    say "router log (last lines):"
    tail -n 30 "${work}/router.log" >&2
fi
stop_stack

# `make demo` as a new user meets it: the pasted snippets, a second demo, Ctrl-C.
say "running tests/demo/check.py (make demo on free ports)"
"${venv}/bin/python" "${root}/tests/demo/check.py" || status=$?
say "e2e finished in $((SECONDS - started)) s (logs in ${work})"
exit "${status}"
