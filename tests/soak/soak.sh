#!/usr/bin/env bash
# `make soak`: the release router under moderate, realistic load for SOAK_SECS (600) on
# fake backends on 127.0.0.1, sampled every few seconds; fails when its memory grows,
# fds or in-flight requests are left behind, a request fails that should not, or the
# session logs do not match the requests sent. See tests/soak/README.md.
#
# Starts tests/soak/fake_soak.py (tests/live/fake_openai.py with more classifier
# answers), tests/soak/fake_hostile.py (a backend that misbehaves in rotating ways, with
# its routes HOSTILE and HOSTILE_BARE added to the scratch config) and the router on free
# ports, runs tests/soak/load.py (clients, sampler, judge), then stops the router with
# SIGTERM and checks it exits 0. Everything started here is stopped by PID on exit. The
# figures go to tests/soak/results/ (SOAK_OUT).
#
# Settings: SOAK_SECS (600) · SOAK_CLIENTS (12) · SOAK_THINK_MS longest pause between a
# client's requests (400) · SOAK_CHUNK_MS between streamed events (30) · SOAK_SAMPLE_SECS
# (5; 2 under 300 s) · SOAK_MAX_FILES sessions.max_files (2000) · SOAK_RSS_PCT (10) and
# SOAK_RSS_MB (2): allowed growth · SOAK_SEED (1) · SOAK_OUT · SOAK_KEEP=1 keeps the
# work folder (config, logs, sessions) on a pass too · SOAK_BIN (measure this binary; skips
# the build) with SOAK_ROOT (the checkout whose config/ and prompts/ match it).
# The misbehaving backend: SOAK_HOSTILE_CLIENTS clients sending only to it (2; 0: none) ·
# its timeout_secs SOAK_HOSTILE_TIMEOUT (2) and response_timeout_secs
# SOAK_HOSTILE_RESPONSE_TIMEOUT (4) · its max_response_bytes SOAK_HOSTILE_MAX_BYTES
# (2097152; the shipped 16 MiB makes RSS swing by ~60 MB, which drowns the leak check) ·
# SOAK_HOSTILE_MARGIN (5): s allowed past a timeout ·
# SOAK_HOSTILE_SESSION_MB (3): its largest session file · SOAK_MAX_ANSWER_BYTES
# sessions.max_answer_bytes (1048576, the shipped default).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
root="${SOAK_ROOT:-${repo}}"
secs="${SOAK_SECS:-600}"
clients="${SOAK_CLIENTS:-12}"
think_ms="${SOAK_THINK_MS:-400}"
chunk_ms="${SOAK_CHUNK_MS:-30}"
max_files="${SOAK_MAX_FILES:-2000}"
hostile_clients="${SOAK_HOSTILE_CLIENTS:-2}"
hostile_timeout="${SOAK_HOSTILE_TIMEOUT:-2}"
hostile_response_timeout="${SOAK_HOSTILE_RESPONSE_TIMEOUT:-4}"
hostile_max_bytes="${SOAK_HOSTILE_MAX_BYTES:-2097152}"
max_answer_bytes="${SOAK_MAX_ANSWER_BYTES:-1048576}"
if ((secs >= 300)); then sample_default=5; else sample_default=2; fi
sample="${SOAK_SAMPLE_SECS:-${sample_default}}"
out="${SOAK_OUT:-${here}/results}"
work="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-soak.XXXXXX")"

say() { printf '\033[1m[soak]\033[0m %s\n' "$*" >&2; }
# shellcheck source=SCRIPTDIR/../lib/procs.sh
source "${here}/../lib/procs.sh"

if [[ -n "${SOAK_BIN:-}" ]]; then
    router_bin="${SOAK_BIN}"
    label="${SOAK_COMMIT:-${router_bin}}"
else
    say "building the router (cargo build --release --locked, as infra/Dockerfile does)"
    cargo build --release --locked --manifest-path "${repo}/Cargo.toml" >&2
    router_bin="${repo}/target/release/ai-router"
    label="$(git -C "${repo}" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ -n "$(git -C "${repo}" status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
        label="${label}+dirty"
    fi
fi
[[ -x "${router_bin}" ]] || { say "no router binary at ${router_bin}"; exit 1; }

# The fake backends pick their own port and say which on their first line.
python3 -u "${here}/fake_soak.py" --xai-key soak-test-key --chunk-delay "$(awk "BEGIN{print ${chunk_ms}/1000}")" \
    >"${work}/fake.out" 2>"${work}/fake.log" &
fake_pid=$!
pids+=("${fake_pid}")
for _ in $(seq 50); do
    grep -qs '^listening on' "${work}/fake.out" && break
    sleep 0.1
done
fake_port="$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "${work}/fake.out")"
[[ -n "${fake_port}" ]] || { cat "${work}/fake.log" >&2; say "the fake backends did not start"; exit 1; }
fake="http://127.0.0.1:${fake_port}/v1"

# The misbehaving backend, on its own port so that its endless senders never hold up the
# well-behaved fakes' threads.
hostile_args=()
if ((hostile_clients > 0)); then
    python3 -u "${here}/fake_hostile.py" --model fake-hostile --max-bytes "${hostile_max_bytes}" \
        >"${work}/fake-hostile.out" 2>"${work}/fake-hostile.log" &
    hostile_pid=$!
    pids+=("${hostile_pid}")
    for _ in $(seq 50); do
        grep -qs '^listening on' "${work}/fake-hostile.out" && break
        sleep 0.1
    done
    hostile_port="$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "${work}/fake-hostile.out")"
    [[ -n "${hostile_port}" ]] || { cat "${work}/fake-hostile.log" >&2; say "the misbehaving backend did not start"; exit 1; }
    hostile_args=(--hostile-port "${hostile_port}" --hostile-clients "${hostile_clients}"
        --hostile-timeout "${hostile_timeout}" --hostile-response-timeout "${hostile_response_timeout}"
        --hostile-max-bytes "${hostile_max_bytes}" --hostile-margin "${SOAK_HOSTILE_MARGIN:-5}" --hostile-session-mb "${SOAK_HOSTILE_SESSION_MB:-3}")
fi

# The scratch config: config/router.toml (the deployment's settings) copied here, with
# only what must differ set through the environment, as infra/check/live.sh does; and
# the misbehaving backend with its two routes appended (the environment cannot add a
# backend or a route). The fake classifier labels the hostile clients' messages so.
cp "${root}/config/router.toml" "${work}/router.toml"
if ((hostile_clients > 0)); then
    cat >>"${work}/router.toml" <<EOF

# Added by tests/soak/soak.sh: a backend that misbehaves (tests/soak/fake_hostile.py),
# with short timeouts so the soak need not wait long for it.
[backends.hostile]
base_url = "http://127.0.0.1:${hostile_port}/v1"
model = "fake-hostile"
connect_timeout_secs = 2
timeout_secs = ${hostile_timeout}
response_timeout_secs = ${hostile_response_timeout}
retries = 0
max_response_bytes = ${hostile_max_bytes}

[routes.HOSTILE]                   # its failures fail over to the primary
name = "hostile"
backend = "hostile"
prompt = "primary/system.md"
max_tokens = "strip"
failover = ["MODERATE"]

[routes.HOSTILE_BARE]              # its failures reach the client
name = "hostile-bare"
backend = "hostile"
prompt = "primary/system.md"
max_tokens = "strip"
failover = []
EOF
fi
port="$(free_port)"
export AI_ROUTER_SERVER__LISTEN="127.0.0.1:${port}"
export AI_ROUTER_SERVER__PROMPTS_DIR="${root}/prompts"
export AI_ROUTER_META__RULES_FILE="${root}/config/meta_rules.toml"
export AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL="${fake}"
export AI_ROUTER_BACKENDS__CLASSIFIER__MODEL="fake-classifier"
export AI_ROUTER_BACKENDS__PRIMARY__BASE_URL="${fake}"
export AI_ROUTER_BACKENDS__PRIMARY__MODEL="fake-primary"
export AI_ROUTER_BACKENDS__XAI__BASE_URL="${fake}"
export AI_ROUTER_BACKENDS__XAI__MODEL="fake-grok"
export XAI_API_KEY="soak-test-key"
export AI_ROUTER_SESSIONS__DIR="${work}/sessions"
export AI_ROUTER_SESSIONS__MAX_FILES="${max_files}"
export AI_ROUTER_SESSIONS__MAX_ANSWER_BYTES="${max_answer_bytes}"
export MIMALLOC_ARENA_EAGER_COMMIT=0 # as infra/Dockerfile sets it
export RUST_LOG="${RUST_LOG:-info}"
"${router_bin}" check --config "${work}/router.toml" >"${work}/effective-config.txt" 2>&1 || {
    cat "${work}/effective-config.txt" >&2
    say "the scratch config does not load"
    exit 1
}
(cd "${root}" && exec "${router_bin}" serve --config "${work}/router.toml") >"${work}/router.log" 2>&1 &
router_pid=$!
pids+=("${router_pid}")
if ! wait_for "http://127.0.0.1:${port}/health" 30 "${router_pid}"; then
    tail -n 30 "${work}/router.log" >&2
    say "the router did not start; its log is above"
    exit 1
fi
say "router ${label} (pid ${router_pid}) on 127.0.0.1:${port}, fake backends on ${fake_port}, misbehaving one on ${hostile_port:-none}, work folder ${work}"

status=0
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
python3 -u "${here}/load.py" --url "http://127.0.0.1:${port}" --pid "${router_pid}" \
    --backend-port "${fake_port}" --sessions-dir "${work}/sessions" --max-files "${max_files}" \
    --secs "${secs}" --clients "${clients}" --think "$(awk "BEGIN{print ${think_ms}/1000}")" \
    --sample "${sample}" --rss-pct "${SOAK_RSS_PCT:-10}" --rss-mb "${SOAK_RSS_MB:-2}" \
    --max-answer-bytes "${max_answer_bytes}" "${hostile_args[@]}" \
    --seed "${SOAK_SEED:-1}" --out "${out}" --router-log "${work}/router.log" --label "${label}" --stamp "${stamp}" || status=1

# A clean stop after the soak: SIGTERM, the session logs flushed, exit 0.
rc=1
if kill -0 "${router_pid}" 2>/dev/null; then
    kill -TERM "${router_pid}"
    started=${SECONDS}
    rc=0
    wait "${router_pid}" || rc=$?
    pids=("${fake_pid}" ${hostile_pid:+"${hostile_pid}"})
    shutdown="SIGTERM -> exit ${rc} after $((SECONDS - started)) s"
else
    shutdown="the router was not running any more"
fi
if ((rc == 0)); then
    printf '  ok   clean shutdown: %s\n' "${shutdown}"
else
    printf '  FAIL clean shutdown: %s\n' "${shutdown}"
    status=1
fi
# The shutdown's outcome joins the JSON summary (written by load.py).
if [[ -f "${out}/${stamp}.json" ]]; then
    python3 - "${out}/${stamp}.json" "${rc}" "${shutdown}" <<'PY'
import json, sys
path, rc, text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path) as f:
    summary = json.load(f)
summary["checks"].append({"check": "clean shutdown", "ok": rc == 0, "detail": text})
if rc != 0:
    summary["pass"] = False
    summary["reasons"].append(f"clean shutdown: {text}")
with open(path, "w") as f:
    json.dump(summary, f, indent=2)
PY
fi

if ((status)); then
    say "router log (last lines):"
    tail -n 20 "${work}/router.log" >&2
    say "FAIL; config, logs and sessions kept in ${work}"
elif [[ "${SOAK_KEEP:-0}" == 1 ]]; then
    say "PASS; config, logs and sessions kept in ${work}"
else
    rm -rf "${work}"
    say "PASS"
fi
exit "${status}"
