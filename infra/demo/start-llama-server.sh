#!/usr/bin/env bash
# Usage: start-llama-server.sh PORT [LOGFILE]
#
# Start a real OpenAI-compatible backend (llama.cpp llama-server with the
# cached Gemma 3 270M GGUF) on 127.0.0.1:PORT, wait until GET /health answers
# 200, print the server's PID on stdout and return. The server keeps running
# in the background; the caller is responsible for `kill PID` later.
#
# It reuses build-llama-server.sh and fetch-model.sh, so the first run builds
# (~10 min) and assembles the model; later runs start in a few seconds.
#
# Environment:
#   LLAMA_SERVER, DEMO_MODEL, AI_ROUTER_CACHE   see the two helper scripts.
#   HEALTH_TIMEOUT   seconds to wait for /health == 200 (default 120).
#   DEMO_MODEL_ALIAS model id reported by /v1/models (default gemma-3-270m).
#   DEMO_CTX_SIZE    total context (KV cache) tokens (default 8192).
#   DEMO_PARALLEL    server slots, i.e. concurrent requests (default 2).
#   DEMO_N_PREDICT   max tokens generated when a request has no max_tokens
#                    (default 256; a request's own max_tokens still wins).
#   LLAMA_SERVER_ARGS extra arguments, split on whitespace, appended last.
set -euo pipefail

log() { printf '[start-llama-server] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 PORT [LOGFILE]"
port="$1"
if ! [[ "${port}" =~ ^[0-9]{1,5}$ ]] || ((10#${port} < 1 || 10#${port} > 65535)); then
    die "bad PORT: ${port}"
fi
logfile="${2:-${TMPDIR:-/tmp}/llama-server-${port}.log}"
health_timeout="${HEALTH_TIMEOUT:-120}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Refuse to start if something already listens on the port: otherwise our
# server would fail to bind while the health check happily talks to the
# other process and we would report a PID that is already dead.
if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
    die "127.0.0.1:${port} is already in use"
fi

bin="$("${here}/build-llama-server.sh" | tail -n 1)"
model="$("${here}/fetch-model.sh" | tail -n 1)"
[[ -x "${bin}" ]] || die "build-llama-server.sh gave no executable (${bin})"
[[ -f "${model}" ]] || die "fetch-model.sh gave no model file (${model})"

# Flags, and why:
#   --host 127.0.0.1      loopback only; nothing else on this box should see it.
#   -c 8192 -np 2         two slots so the router's concurrency is real; the
#                         context is split, so each request gets 4096 tokens.
#                         The 270M model's KV cache for that is tiny.
#   -t nproc              all (2) cores for decoding; requests are small.
#   --jinja + template    the GGUF is the *base* Gemma 3 270M and ships no chat
#                         template; llama-server would fall back to ChatML,
#                         which Gemma does not know. Our Jinja template renders
#                         Gemma turns and folds every system message into the
#                         next user turn, so any OpenAI message list works.
#   -n 256                the base model almost never emits end-of-turn, so a
#                         request without max_tokens would otherwise generate
#                         until the slot's context is full (~4000 tokens,
#                         ~85 s here). 256 tokens take ~5 s.
#   --no-webui            the binary is built without UI assets anyway.
#   --alias               a short, stable model id for /v1/models instead of
#                         the GGUF file name.
args=(
    --model "${model}"
    --host 127.0.0.1 --port "${port}"
    --ctx-size "${DEMO_CTX_SIZE:-8192}"
    --parallel "${DEMO_PARALLEL:-2}"
    --threads "$(nproc)"
    --jinja --chat-template-file "${here}/gemma-chat-template.jinja"
    --n-predict "${DEMO_N_PREDICT:-256}"
    --no-webui
    --alias "${DEMO_MODEL_ALIAS:-gemma-3-270m}"
)
if [[ -n "${LLAMA_SERVER_ARGS:-}" ]]; then
    read -r -a extra <<<"${LLAMA_SERVER_ARGS}"
    args+=("${extra[@]}")
fi

mkdir -p "$(dirname "${logfile}")"
log "starting ${bin} on 127.0.0.1:${port} (log: ${logfile})"
start_ts=${SECONDS}
# stdin/stdout/stderr all redirected: if the server inherited our stdout, a
# caller doing pid=$(start-llama-server.sh ...) would block until it exits.
"${bin}" "${args[@]}" </dev/null >"${logfile}" 2>&1 &
pid=$!

fail() {
    log "ERROR: $*; last log lines:"
    tail -n 40 "${logfile}" >&2 || true
    kill "${pid}" 2>/dev/null || true
    exit 1
}

# /health answers 503 {"error":{...,"message":"Loading model"}} while the
# model loads and 200 {"status":"ok"} once it can serve requests.
deadline=$((SECONDS + health_timeout))
while :; do
    kill -0 "${pid}" 2>/dev/null || fail "llama-server (pid ${pid}) exited during startup"
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        "http://127.0.0.1:${port}/health" || true)"
    [[ "${code}" == "200" ]] && break
    ((SECONDS < deadline)) || fail "no 200 from /health within ${health_timeout} s (last: ${code})"
    sleep 0.25
done
log "healthy after $((SECONDS - start_ts)) s (pid ${pid})"
printf '%s\n' "${pid}"
