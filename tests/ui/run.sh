#!/usr/bin/env bash
# `make test-ui`: the dashboard in a real browser. Starts two routers (debug build, or
# UI_ROUTER_BIN) on tests/live/fake_openai.py's fake backends, both listening on every
# address so they can be reached from a non-loopback one: one as shipped (loopback only),
# one with an admin key; then drives Debian's Chromium through tests/ui/test_dashboard.py. Screenshots go to target/ui-screenshots/.
# Everything started here is stopped by PID on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-ui.XXXXXX")"
shots="${UI_SCREENSHOTS:-${root}/target/ui-screenshots}"

say() { printf '\033[1m[ui]\033[0m %s\n' "$*" >&2; }
# shellcheck source=SCRIPTDIR/../lib/procs.sh
source "${here}/../lib/procs.sh"

for tool in chromium chromedriver; do
    command -v "${tool}" >/dev/null || { say "${tool} is missing: apt-get install -y chromium chromium-driver"; exit 1; }
done
# Selenium, pinned, in a private venv so the system Python is left alone; it is handed
# Debian's chromedriver, so it never downloads a driver of its own.
venv="${AI_ROUTER_CACHE:-${HOME}/.cache/ai-router}/ui-venv"
if [[ ! -x "${venv}/bin/python" ]] || ! "${venv}/bin/python" -c 'import selenium' 2>/dev/null; then
    say "installing selenium into ${venv}"
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --quiet --disable-pip-version-check -r "${here}/requirements.txt"
fi

target="${CARGO_TARGET_DIR:-${root}/target}"
router_bin="${UI_ROUTER_BIN:-${target}/debug/ai-router}"
if [[ -z "${UI_ROUTER_BIN:-}" ]]; then
    say "building the router (cargo build --locked)"
    cargo build --locked --manifest-path "${root}/Cargo.toml" >&2
fi

# An address of this machine that is not loopback: a browser reaching the router there
# is a non-loopback peer, the honest way to see the dashboard refuse one.
outside="$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')"
[[ -n "${outside}" ]] || { say "no non-loopback IPv4 address on this machine: cannot try the refusal"; exit 1; }

# xAI's fake serves the shipped model name, so its answers are priced and the overview
# has a spend to show.
python3 -u "${root}/tests/live/fake_openai.py" --xai-key ui-test-xai-key-0123456789 \
    --xai-model grok-4-1-fast-reasoning --chunk-delay 0.15 \
    >"${work}/fake.out" 2>"${work}/fake.log" &
pids+=($!)
for _ in $(seq 50); do
    grep -q '^listening on' "${work}/fake.out" && break
    sleep 0.1
done
fake_port="$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "${work}/fake.out")"
[[ -n "${fake_port}" ]] || { cat "${work}/fake.log" >&2; say "the fake backend did not start"; exit 1; }
fake="http://127.0.0.1:${fake_port}/v1"

# The prompts are a copy, so the test can edit one and watch the reload.
cp -r "${root}/prompts" "${work}/prompts"
# start_router NAME [VAR=VALUE...]: a router on every address at a free port, on the fake
# backends, with its own session folder and these extra variables; sets `port`.
start_router() {
    local name="$1"
    shift
    port="$(free_port)"
    (
        cd "${root}"
        export AI_ROUTER_SERVER__LISTEN="0.0.0.0:${port}"
        export AI_ROUTER_SERVER__PROMPTS_DIR="${work}/prompts"
        export AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL="${fake}"
        export AI_ROUTER_BACKENDS__CLASSIFIER__MODEL="fake-classifier"
        export AI_ROUTER_BACKENDS__PRIMARY__BASE_URL="${fake}"
        export AI_ROUTER_BACKENDS__PRIMARY__MODEL="fake-primary"
        export AI_ROUTER_BACKENDS__XAI__BASE_URL="${fake}"
        export XAI_MODEL="grok-4-1-fast-reasoning"
        export XAI_API_KEY="ui-test-xai-key-0123456789"
        export AI_ROUTER_SESSIONS__DIR="${work}/sessions-${name}"
        for assignment in "$@"; do export "${assignment?}"; done
        exec "${router_bin}" serve --config config/router.toml
    ) >"${work}/router-${name}.log" 2>&1 &
    local pid=$!
    pids+=("${pid}")
    if ! wait_for "http://127.0.0.1:${port}/health" 60 "${pid}"; then
        tail -n 30 "${work}/router-${name}.log" >&2
        say "the ${name} router did not start; its log is above"
        exit 1
    fi
}

# One router as a fresh install runs it (loopback only), one with an admin key.
start_router open
open_port="${port}"
admin_key="ui-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
start_router keyed AI_ROUTER_DASHBOARD__ADMIN_KEY_ENV=UI_ADMIN_KEY "UI_ADMIN_KEY=${admin_key}"
keyed_port="${port}"

mkdir -p "${shots}"
say "driving Chromium: http://127.0.0.1:${open_port}/dashboard (and from ${outside})"
status=0
UI_ADMIN_KEY="${admin_key}" "${venv}/bin/python" "${here}/test_dashboard.py" \
    --url "http://127.0.0.1:${open_port}" --outside-url "http://${outside}:${open_port}" \
    --keyed-url "http://${outside}:${keyed_port}" --prompts "${work}/prompts" \
    --screenshots "${shots}" || status=1
if ((status)); then
    tail -n 40 "${work}/router-open.log" "${work}/router-keyed.log" >&2
    say "failed; screenshots in ${shots}"
else
    say "passed; screenshots in ${shots}"
    rm -rf "${work}"
fi
exit "${status}"
