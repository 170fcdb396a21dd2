# shellcheck shell=bash
# Shared by the scripts that start the release router and fake backends on 127.0.0.1
# (infra/check/live.sh, tests/soak/soak.sh, tests/prometheus/scrape.sh). Sourcing it
# sets up `pids` and an EXIT trap that stops, by PID, every process a script added there,
# so a script never stops anything it did not start.

pids=()

# shellcheck disable=SC2317 # called by the EXIT trap
stop_all() {
    local pid
    for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
}
trap stop_all EXIT

# A loopback port that was free a moment ago.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until URL answers 2xx, for at most SECONDS, while PID lives; extra arguments go
# to curl (a header, say).
wait_for() { # URL SECONDS PID [CURL ARGS...]
    local url="$1" deadline=$((SECONDS + $2)) pid="$3"
    shift 3
    until curl -sf --max-time 2 "$@" "${url}" >/dev/null 2>&1; do
        kill -0 "${pid}" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
