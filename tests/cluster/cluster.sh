#!/usr/bin/env bash
# `make cluster-test`: two router replicas, a three-host pool for the primary, a fake
# classifier, a fake xAI and a load client, each its own host (a network namespace with
# its own address on 10.77.0.0/24), joined by veth pairs to one bridge in a namespace of
# its own, so nothing touches the machine's network. Under a realistic mix sent through
# both replicas it cuts one pool host off (its bridge port down) and brings it back, then
# SIGTERMs replica r1 and starts it again; tests/cluster/judge.py asserts and prints the
# figures. See tests/cluster/README.md. Needs root (ip netns), iproute2, curl, python3.
#
# Settings: CLUSTER_SECS load (60) · CLUSTER_CLIENTS (8) · CLUSTER_THINK_MS (300) ·
# CLUSTER_CHUNK_MS between streamed events (150) · CLUSTER_CUT_AT s into the load (12) ·
# CLUSTER_CUT_SECS link down (10) · CLUSTER_STOP_AT s into the load (34) ·
# CLUSTER_GRACE shutdown_grace_secs (10) · CLUSTER_THRESHOLD failure_threshold (2) ·
# CLUSTER_PROBE_SECS probe_interval_secs (1) · CLUSTER_SEED (1) · CLUSTER_KEEP=1 keeps the
# work folder on a pass too · CLUSTER_BIN (test this binary; skips the build) ·
# CLUSTER_SUBNET first three octets (10.77.0) · CLUSTER_STRICT=0 counts a 504 on the cut host
# before its ejection apart instead of failing on it (the router's old gap, fixed; README.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
secs="${CLUSTER_SECS:-60}"
clients="${CLUSTER_CLIENTS:-8}"
think_ms="${CLUSTER_THINK_MS:-300}"
chunk_ms="${CLUSTER_CHUNK_MS:-150}"
cut_at="${CLUSTER_CUT_AT:-12}"
cut_secs="${CLUSTER_CUT_SECS:-10}"
stop_at="${CLUSTER_STOP_AT:-34}"
grace="${CLUSTER_GRACE:-10}"
threshold="${CLUSTER_THRESHOLD:-2}"
probe_secs="${CLUSTER_PROBE_SECS:-1}"
net="${CLUSTER_SUBNET:-10.77.0}"
# The primary's timeouts: a few seconds, so a silent host costs little.
connect_timeout=1 stream_timeout=3 response_timeout=5
wall_start=${SECONDS}

say() { printf '\033[1m[cluster]\033[0m %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
now() { printf '%s' "${EPOCHREALTIME}"; }
# Seconds since the load started (EPOCHREALTIME and the client's time.time() agree).
since_load() { awk -v a="${load_start}" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# Sleeps until OFFSET seconds after the load's start (a schedule, not a wait for a state).
sleep_until() {
    local left
    left="$(awk -v a="${load_start}" -v o="$1" -v b="$(now)" 'BEGIN { d = a + o - b; printf "%.3f", (d > 0 ? d : 0) }')"
    sleep "${left}"
}
event() { printf '%s %s\n' "$1" "${2:-$(now)}" >>"${work}/events.txt"; }

((EUID == 0)) || fail "needs root (network namespaces); CI runs as root"
for tool in ip curl python3 awk; do
    command -v "${tool}" >/dev/null || fail "${tool} is not installed"
done

if [[ -n "${CLUSTER_BIN:-}" ]]; then
    router_bin="${CLUSTER_BIN}"
else
    say "building the router (cargo build --release --locked)"
    cargo build --release --locked --manifest-path "${repo}/Cargo.toml" >&2
    router_bin="${CARGO_TARGET_DIR:-${repo}/target}/release/ai-router"
fi
[[ -x "${router_bin}" ]] || fail "no router binary at ${router_bin}"

work="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-cluster.XXXXXX")"
# Namespace names: a fixed prefix and a random suffix, so runs side by side never meet.
suffix="$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
sw="aic${suffix}-sw" # the switch: the bridge and one port per host
declare -A ns addr
hosts=(r1 r2 v1 v2 v3 cls xai cl)
addr=([r1]="${net}.2" [r2]="${net}.3" [v1]="${net}.11" [v2]="${net}.12" [v3]="${net}.13"
    [cls]="${net}.20" [xai]="${net}.21" [cl]="${net}.30")
for h in "${hosts[@]}"; do ns[${h}]="aic${suffix}-${h}"; done
made=()

# shellcheck source=SCRIPTDIR/../lib/procs.sh
source "${here}/../lib/procs.sh"
# A process that was waited for leaves the list: its PID may be someone else's now.
forget() {
    local keep=() pid
    for pid in "${pids[@]}"; do [[ "${pid}" == "$1" ]] || keep+=("${pid}"); done
    pids=("${keep[@]}")
}
# shellcheck disable=SC2317 # called by the EXIT trap
teardown() {
    local rc=$? name
    stop_all
    for name in "${made[@]}"; do ip netns delete "${name}" 2>/dev/null || true; done
    if ((rc != 0)); then
        say "work folder kept: ${work} (router logs, fakes' logs, sessions, traffic.json)"
    elif [[ "${CLUSTER_KEEP:-0}" == 1 ]]; then
        say "work folder kept: ${work}"
    else
        rm -rf "${work}"
    fi
    exit "${rc}"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stale="$(ip netns list | grep -c '^aic' || true)"
((stale < 40)) || fail "${stale} namespaces named aic* exist: earlier runs left them (ip netns list); not adding more"

# --- the network --------------------------------------------------------------------
say "network: bridge in ${sw}, hosts ${hosts[*]} on ${net}.0/24 (namespaces aic${suffix}-*)"
ip netns add "${sw}"
made+=("${sw}")
ip -n "${sw}" link add br0 type bridge
ip -n "${sw}" link set lo up
ip -n "${sw}" link set br0 up
for h in "${hosts[@]}"; do
    ip netns add "${ns[${h}]}"
    made+=("${ns[${h}]}")
    # The host's end is eth0 in its namespace; the switch's end is port p-<host>.
    ip -n "${sw}" link add "p-${h}" type veth peer name eth0 netns "${ns[${h}]}"
    ip -n "${sw}" link set "p-${h}" master br0 up
    ip -n "${ns[${h}]}" link set lo up
    ip -n "${ns[${h}]}" addr add "${addr[${h}]}/24" dev eth0
    ip -n "${ns[${h}]}" link set eth0 up
done
# in_ns HOST CMD...: run CMD on that host.
in_ns() { local h="$1"; shift; ip netns exec "${ns[${h}]}" "$@"; }
# Waits (at most SECONDS) until URL answers 2xx from the client host, while PID lives.
wait_url() { # URL SECONDS PID
    local deadline=$((SECONDS + $2))
    until in_ns cl curl -sf --max-time 2 -o /dev/null "$1"; do
        kill -0 "$3" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# --- the fake hosts -----------------------------------------------------------------
chunk_s="$(awk -v m="${chunk_ms}" 'BEGIN { print m / 1000 }')"
declare -A fake_pid
for h in v1 v2 v3 cls xai; do
    # `ip netns exec` execs the command: the PID is the fake's own.
    ip netns exec "${ns[${h}]}" python3 -u "${here}/fake_host.py" --listen "${addr[${h}]}:8000" \
        --xai-key cluster-test-key --chunk-delay "${chunk_s}" >"${work}/fake-${h}.log" 2>&1 &
    fake_pid[${h}]=$!
    pids+=("$!")
done
for h in v1 v2 v3 cls xai; do
    wait_url "http://${addr[${h}]}:8000/v1/models" 20 "${fake_pid[${h}]}" ||
        { cat "${work}/fake-${h}.log" >&2; fail "the fake on ${h} (${addr[${h}]}) did not answer from the client host"; }
done

# --- the router replicas --------------------------------------------------------------
pool="[\"http://${addr[v1]}:8000/v1\", \"http://${addr[v2]}:8000/v1\", \"http://${addr[v3]}:8000/v1\"]"
cp "${repo}/config/router.toml" "${work}/router.toml"
mkdir -p "${work}/sessions/r1" "${work}/sessions/r2"
# The deployment's config with only what differs set through the environment (as
# tests/soak/soak.sh does); the listen address and the sessions folder per replica.
router_env=(
    AI_ROUTER_SERVER__PROMPTS_DIR="${repo}/prompts"
    AI_ROUTER_META__RULES_FILE="${repo}/config/meta_rules.toml"
    AI_ROUTER_SERVER__SHUTDOWN_GRACE_SECS="${grace}"
    AI_ROUTER_HEALTH__FAILURE_THRESHOLD="${threshold}"
    AI_ROUTER_HEALTH__PROBE_INTERVAL_SECS="${probe_secs}"
    AI_ROUTER_BACKENDS__PRIMARY__BASE_URL="${pool}"
    AI_ROUTER_BACKENDS__PRIMARY__MODEL=fake-primary
    AI_ROUTER_BACKENDS__PRIMARY__CONNECT_TIMEOUT_SECS="${connect_timeout}"
    AI_ROUTER_BACKENDS__PRIMARY__TIMEOUT_SECS="${stream_timeout}"
    AI_ROUTER_BACKENDS__PRIMARY__RESPONSE_TIMEOUT_SECS="${response_timeout}"
    AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL="http://${addr[cls]}:8000/v1"
    AI_ROUTER_BACKENDS__CLASSIFIER__MODEL=fake-classifier
    AI_ROUTER_BACKENDS__CLASSIFIER__CONNECT_TIMEOUT_SECS=1
    AI_ROUTER_BACKENDS__CLASSIFIER__TIMEOUT_SECS=3
    AI_ROUTER_BACKENDS__CLASSIFIER__RESPONSE_TIMEOUT_SECS=5
    AI_ROUTER_BACKENDS__XAI__BASE_URL="http://${addr[xai]}:8000/v1"
    AI_ROUTER_BACKENDS__XAI__MODEL=fake-grok
    AI_ROUTER_BACKENDS__XAI__CONNECT_TIMEOUT_SECS=1
    AI_ROUTER_BACKENDS__XAI__TIMEOUT_SECS=5
    AI_ROUTER_BACKENDS__XAI__RESPONSE_TIMEOUT_SECS=5
    XAI_API_KEY=cluster-test-key
    MIMALLOC_ARENA_EAGER_COMMIT=0
    RUST_LOG="${RUST_LOG:-info}"
)
env "${router_env[@]}" AI_ROUTER_SERVER__LISTEN="${addr[r1]}:8080" \
    AI_ROUTER_SESSIONS__DIR="${work}/sessions/r1" \
    "${router_bin}" check --config "${work}/router.toml" >"${work}/effective-config.txt" 2>&1 ||
    { cat "${work}/effective-config.txt" >&2; fail "the scratch config does not load"; }

declare -A router_pid
# start_router NAME: the release binary on that host, its own sessions folder.
start_router() {
    local r="$1"
    (cd "${repo}" && exec ip netns exec "${ns[${r}]}" env "${router_env[@]}" \
        AI_ROUTER_SERVER__LISTEN="${addr[${r}]}:8080" AI_ROUTER_SESSIONS__DIR="${work}/sessions/${r}" \
        "${router_bin}" serve --config "${work}/router.toml") >>"${work}/router-${r}.log" 2>&1 &
    router_pid[${r}]=$!
    pids+=("$!")
    wait_url "http://${addr[${r}]}:8080/health" 30 "${router_pid[${r}]}" ||
        { tail -n 30 "${work}/router-${r}.log" >&2; fail "router ${r} did not start; its log is above"; }
}
# The pool's three endpoints up on replica NAME (its /metrics), for the start.
pool_up() {
    local text
    text="$(in_ns cl curl -sf --max-time 2 "http://${addr[$1]}:8080/metrics")" || return 1
    (($(grep -c '^ai_router_endpoint_up{.*backend="primary".* 1$' <<<"${text}") == 3))
}
# Requests replica NAME has in flight now (its /metrics; 0 when it does not answer).
in_flight() {
    in_ns cl curl -sf --max-time 1 "http://${addr[$1]}:8080/metrics" |
        awk '$1 == "ai_router_in_flight_requests" { n = $2 } END { print n + 0 }'
}
start_router r1
start_router r2
deadline=$((SECONDS + 20))
until pool_up r1 && pool_up r2; do
    ((SECONDS < deadline)) || fail "the pool's three endpoints are not all up on both replicas"
    sleep 0.2
done
say "replicas r1 ${addr[r1]} (pid ${router_pid[r1]}), r2 ${addr[r2]} (pid ${router_pid[r2]}); pool v1 v2 v3 up on both"

# --- the load, and what happens during it --------------------------------------------
ip netns exec "${ns[cl]}" python3 -u "${here}/traffic.py" \
    --replica "r1=http://${addr[r1]}:8080" --replica "r2=http://${addr[r2]}:8080" \
    --secs "${secs}" --clients "${clients}" --think "$(awk -v m="${think_ms}" 'BEGIN { print m / 1000 }')" \
    --seed "${CLUSTER_SEED:-1}" --started "${work}/started.json" --out "${work}/traffic.json" \
    2>"${work}/traffic.log" &
traffic_pid=$!
pids+=("${traffic_pid}")
deadline=$((SECONDS + 20))
until [[ -s "${work}/started.json" ]]; do
    kill -0 "${traffic_pid}" 2>/dev/null || fail "the load client stopped before it started"
    ((SECONDS < deadline)) || fail "the load client did not start"
    sleep 0.1
done
load_start="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["t"])' "${work}/started.json")"
event load_start "${load_start}"

# One pool host cut off: its switch port down (a pulled cable: no refusal, silence).
sleep_until "${cut_at}"
ip -n "${sw}" link set p-v2 down
event link_down
say "t=$(since_load) s: v2 (${addr[v2]}) cut off: switch port p-v2 down"
sleep_until "$((cut_at + cut_secs))"
ip -n "${sw}" link set p-v2 up
event link_up
say "t=$(since_load) s: v2 back: p-v2 up"

# Replica r1 stopped (SIGTERM) once v2 is back in both replicas' pools, then started again.
deadline=$((SECONDS + 30))
until pool_up r1 && pool_up r2; do
    ((SECONDS < deadline)) || fail "v2 was not readmitted on both replicas within 30 s of coming back"
    sleep 0.2
done
sleep_until "${stop_at}"
# ... at a moment when it holds requests (streams last ~1 s), so the drain has work to do.
deadline=$((SECONDS + 10))
until (($(in_flight r1) >= 2)) || ((SECONDS >= deadline)); do sleep 0.05; done
kill -TERM "${router_pid[r1]}"
event sigterm
say "t=$(since_load) s: SIGTERM to r1 (pid ${router_pid[r1]}), grace ${grace} s"
deadline=$((SECONDS + grace + 5))
while kill -0 "${router_pid[r1]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
if kill -0 "${router_pid[r1]}" 2>/dev/null; then
    event r1_exit_rc hung
    fail "r1 still running $((grace + 5)) s after SIGTERM"
fi
event r1_exited
rc=0
wait "${router_pid[r1]}" || rc=$?
forget "${router_pid[r1]}"
event r1_exit_rc "${rc}"
say "t=$(since_load) s: r1 exited with ${rc}; starting it again"
start_router r1
event r1_back
say "t=$(since_load) s: r1 serving again (pid ${router_pid[r1]})"

deadline=$((SECONDS + secs + 60))
while kill -0 "${traffic_pid}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
kill -0 "${traffic_pid}" 2>/dev/null && fail "the load client did not finish"
rc=0
wait "${traffic_pid}" || rc=$?
forget "${traffic_pid}"
cat "${work}/traffic.log" >&2
((rc == 0)) || fail "the load client failed (exit ${rc})"

# --- the judge ------------------------------------------------------------------------
status=0
# Strict unless CLUSTER_STRICT=0: a 504 on the cut host before its ejection fails the run.
judge_flags=()
if [[ "${CLUSTER_STRICT:-1}" == 0 ]]; then judge_flags+=(--lenient); fi
python3 "${here}/judge.py" --traffic "${work}/traffic.json" --events "${work}/events.txt" \
    --sessions "r1=${work}/sessions/r1" --sessions "r2=${work}/sessions/r2" \
    --bin "${router_bin}" --config "${work}/router.toml" --repo "${repo}" \
    --cut-endpoint "http://${addr[v2]}:8000/v1" --threshold "${threshold}" --probe-secs "${probe_secs}" \
    --stream-timeout "${stream_timeout}" --grace "${grace}" "${judge_flags[@]}" \
    --router-log "r1=${work}/router-r1.log" --router-log "r2=${work}/router-r2.log" \
    --out "${work}/summary.json" || status=1
say "wall time $((SECONDS - wall_start)) s (setup, ${secs} s of load, judging; teardown next)"
exit "${status}"
