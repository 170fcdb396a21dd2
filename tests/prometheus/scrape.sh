#!/usr/bin/env bash
# A real Prometheus scrapes the release router's /metrics, and every query of
# infra/grafana-dashboard.json returns data (see tests/prometheus/README.md).
#
# Starts, all on 127.0.0.1 and free ports: two fake backends (tests/live/fake_openai.py;
# one plays the classifier and xAI, the other the primary, so the primary can be stopped
# and restarted for a real backend failure), the router (config/router.toml with its
# address, backends, keys, prompts and session folders overridden, client keys on), and
# Prometheus (/usr/bin/prometheus, a scratch TSDB, a config derived from
# infra/prometheus/prometheus.yml that scrapes every 1 s). Then two rounds of bounded
# traffic, each followed by two scrapes, and the checks of check_dashboard.py. Everything
# started here is stopped by PID on exit; Prometheus must exit cleanly.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
helper="${here}/check_dashboard.py"
started=${SECONDS}

say() { printf '\033[1m[prometheus]\033[0m %s\n' "$*" >&2; }

prometheus_bin="${PROMETHEUS_BIN:-$(command -v prometheus || true)}"
if [[ -z "${prometheus_bin}" || ! -x "${prometheus_bin}" ]]; then
    say "Prometheus is not installed. Install Debian's package, then run this again:"
    say "    apt-get install -y prometheus"
    say "(no service is needed: this script runs /usr/bin/prometheus itself; PROMETHEUS_BIN=... picks another binary)"
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-prometheus.XXXXXX")"

# shellcheck source=SCRIPTDIR/../lib/procs.sh
source "${here}/../lib/procs.sh"

forget() { # PID: no longer ours to stop
    local pid kept=()
    for pid in "${pids[@]}"; do [[ "${pid}" == "$1" ]] || kept+=("${pid}"); done
    pids=("${kept[@]}")
}

random_hex() { python3 -c 'import secrets; print(secrets.token_hex(12))'; }

fake_pid='' fake_port=''
start_fake() { # NAME [PORT]: starts a fake backend; sets fake_pid and fake_port
    local name="$1" port="${2:-0}" found=
    python3 -u "${root}/tests/live/fake_openai.py" --port "${port}" --xai-key "${xai_key}" \
        >"${work}/${name}.out" 2>>"${work}/${name}.log" &
    fake_pid=$!
    pids+=("${fake_pid}")
    for _ in $(seq 50); do
        found="$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "${work}/${name}.out" 2>/dev/null || true)"
        [[ -n "${found}" ]] && break
        sleep 0.1
    done
    [[ -n "${found}" ]] || { cat "${work}/${name}.log" >&2; say "the fake backend ${name} did not start"; exit 1; }
    fake_port="${found}"
}

say "building the router (cargo build --release --locked)"
cargo build --release --locked --manifest-path "${root}/Cargo.toml" >&2
router_bin="${root}/target/release/ai-router"
build_done=${SECONDS}

# Secrets that must never show up in metrics: the xAI key, a client key, and the wrong
# key of a rejected request.
xai_key="xai-PROMTEST-$(random_hex)"
client_key="sk-client-PROMTEST-$(random_hex)"
wrong_key="sk-wrong-PROMTEST-$(random_hex)"
other_key="sk-client-other-PROMTEST-$(random_hex)" # a second accepted key, never sent
printf '%s' "${client_key}" >"${work}/client_key"
chmod 600 "${work}/client_key"

start_fake fake
main_port="${fake_port}"
start_fake primary
primary_port="${fake_port}" primary_pid="${fake_pid}"

# A scratch prompts folder: the test edits it to produce a prompt reload.
cp -r "${root}/prompts" "${work}/prompts"
port="$(free_port)"
(
    cd "${root}"
    export AI_ROUTER_SERVER__LISTEN="127.0.0.1:${port}"
    export AI_ROUTER_SERVER__PROMPTS_DIR="${work}/prompts"
    export AI_ROUTER_SERVER__API_KEYS_ENV="PROMTEST_CLIENT_KEYS"
    export PROMTEST_CLIENT_KEYS="${client_key},${other_key}"
    export AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL="http://127.0.0.1:${main_port}/v1"
    export AI_ROUTER_BACKENDS__CLASSIFIER__MODEL="fake-classifier"
    export AI_ROUTER_BACKENDS__PRIMARY__BASE_URL="http://127.0.0.1:${primary_port}/v1"
    export AI_ROUTER_BACKENDS__PRIMARY__MODEL="fake-primary"
    export AI_ROUTER_BACKENDS__XAI__BASE_URL="http://127.0.0.1:${main_port}/v1"
    export XAI_MODEL="fake-grok"
    export XAI_API_KEY="${xai_key}"
    export AI_ROUTER_SESSIONS__DIR="${work}/sessions"
    exec "${router_bin}" serve --config config/router.toml
) >"${work}/router.log" 2>&1 &
router_pid=$!
pids+=("${router_pid}")
router="http://127.0.0.1:${port}"
if ! wait_for "${router}/health" 30 "${router_pid}"; then
    tail -n 30 "${work}/router.log" >&2
    say "the router did not start; its log is above"
    exit 1
fi

say "Prometheus ($("${prometheus_bin}" --version 2>&1 | head -n 1)) scraping ${router}/metrics every 1 s"
prom_port="$(free_port)"
prom="http://127.0.0.1:${prom_port}"
python3 "${helper}" prom-config --example "${root}/infra/prometheus/prometheus.yml" \
    --target "127.0.0.1:${port}" --interval 1s --credentials-file "${work}/client_key" \
    --out "${work}/prometheus.yml" >&2
if command -v promtool >/dev/null; then
    promtool check config "${work}/prometheus.yml" >&2
fi
"${prometheus_bin}" --config.file="${work}/prometheus.yml" \
    --storage.tsdb.path="${work}/tsdb" --web.listen-address="127.0.0.1:${prom_port}" \
    --no-storage.tsdb.wal-compression \
    >"${work}/prometheus.log" 2>&1 &
prom_pid=$!
pids+=("${prom_pid}")
if ! wait_for "${prom}/-/ready" 30 "${prom_pid}"; then
    tail -n 30 "${work}/prometheus.log" >&2
    say "Prometheus did not start; its log is above"
    exit 1
fi

# Two rounds, so that every counter and histogram grows between scrapes (rate() > 0):
# every route, JSON and SSE, errors; then the primary's process is stopped (502s) and
# started again on the same port.
for round in 1 2; do
    say "traffic, round ${round}"
    python3 "${helper}" traffic --url "${router}" --key "${client_key}" --wrong-key "${wrong_key}" \
        --round "${round}" --phase ok --prompts-dir "${work}/prompts"
    kill "${primary_pid}"
    wait "${primary_pid}" 2>/dev/null || true
    forget "${primary_pid}"
    python3 "${helper}" traffic --url "${router}" --key "${client_key}" --round "${round}" --phase fail
    start_fake primary "${primary_port}"
    primary_pid="${fake_pid}"
    python3 "${helper}" traffic --url "${router}" --key "${client_key}" --round "${round}" --phase recover
    python3 "${helper}" wait-scrapes --prom "${prom}" --count 2 --timeout 20
done

say "checks"
status=0
python3 "${helper}" check --prom "${prom}" --router "${router}" --target "127.0.0.1:${port}" \
    --dashboard "${root}/infra/grafana-dashboard.json" --client-key "${client_key}" \
    --secret "${xai_key}" --secret "${client_key}" --secret "${wrong_key}" --secret "${other_key}" \
    --tsdb "${work}/tsdb" --sessions "${work}/sessions" --router-log "${work}/router.log" --counts "${work}/counts" || status=1
read -r passed failed <"${work}/counts" || { passed=0 failed=1; }

# Prometheus must not have complained while it ran, and must stop cleanly on SIGTERM.
if grep -E 'level=(error|warn)' "${work}/prometheus.log" >&2; then
    printf '  FAIL Prometheus logged errors or warnings (above)\n'
    failed=$((failed + 1))
else
    printf '  ok   Prometheus logged no error or warning\n'
    passed=$((passed + 1))
fi
kill -TERM "${prom_pid}"
for _ in $(seq 150); do # 30 s
    kill -0 "${prom_pid}" 2>/dev/null || break
    sleep 0.2
done
kill -0 "${prom_pid}" 2>/dev/null && kill -KILL "${prom_pid}"
prom_status=0
wait "${prom_pid}" || prom_status=$?
forget "${prom_pid}"
if ((prom_status == 0)) && grep -q 'See you next time' "${work}/prometheus.log"; then
    printf '  ok   Prometheus exited cleanly on SIGTERM\n'
    passed=$((passed + 1))
else
    printf '  FAIL Prometheus exited with status %s (not within 30 s of SIGTERM, or not cleanly)\n' "${prom_status}"
    tail -n 20 "${work}/prometheus.log" >&2
    failed=$((failed + 1))
fi
((failed == 0)) || status=1

if ((status)); then
    say "router log (last lines):"
    tail -n 30 "${work}/router.log" >&2
fi
say "done in $((SECONDS - started)) s ($((SECONDS - build_done)) s after the build); logs in ${work}"
printf 'prometheus: %d passed, %d failed\n' "${passed}" "${failed}"
exit "${status}"
