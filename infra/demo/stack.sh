# Sourced by demo.sh and e2e.sh: starts llama-server and the router on loopback and
# stops both (by PID) when the calling script exits, however it exits.
# shellcheck shell=bash

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
started_pids=()

say() { printf '\033[1m[demo]\033[0m %s\n' "$*" >&2; }

stop_stack() {
    local pid
    for pid in "${started_pids[@]}"; do
        kill "${pid}" 2>/dev/null || true
    done
    # llama-server is not this shell's child, so `wait` cannot see it: poll (5 s at most).
    for pid in "${started_pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "${pid}" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "${pid}" 2>/dev/null || true
    done
    started_pids=()
}
trap stop_stack EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # URL SECONDS
    local url="$1" deadline=$((SECONDS + $2))
    until curl -sf --max-time 2 "${url}" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# build_router: release build of the router, with cargo's progress on the terminal.
build_router() {
    say "building ai-router (release)…"
    cargo build --release --locked --manifest-path "${root}/Cargo.toml" >&2
    router_bin="${root}/target/release/ai-router"
}

# start_llama PORT LOGFILE: builds llama-server and the model on first use (cached).
start_llama() {
    say "starting llama-server on 127.0.0.1:$1 (the first run builds it: about 10 minutes)…"
    llama_pid="$("${here}/start-llama-server.sh" "$1" "$2" | tail -n 1)"
    started_pids+=("${llama_pid}")
}

# start_router PORT LLAMA_PORT SESSIONS_DIR LOGFILE: the router with config/demo.toml,
# its listen address, backends and session folder overridden by environment.
start_router() {
    local port="$1" llama_port="$2" sessions="$3" logfile="$4"
    (
        cd "${root}" || exit 1
        export AI_ROUTER_SERVER__LISTEN="127.0.0.1:${port}"
        export AI_ROUTER_BACKENDS__PRIMARY__BASE_URL="http://127.0.0.1:${llama_port}/v1"
        export AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL="http://127.0.0.1:${llama_port}/v1"
        export AI_ROUTER_SESSIONS__DIR="${sessions}"
        # The demo promises no cloud calls: a key in the admin's shell is not used.
        unset XAI_API_KEY
        exec "${router_bin}" serve --config config/demo.toml
    ) >"${logfile}" 2>&1 &
    router_pid=$!
    started_pids+=("${router_pid}")
    # Our router must be the one answering: were it dead, the port could be another's.
    if ! wait_http "http://127.0.0.1:${port}/health" 30 || ! kill -0 "${router_pid}" 2>/dev/null; then
        tail -n 20 "${logfile}" >&2
        say "the router did not start; its log is above"
        exit 1
    fi
}
