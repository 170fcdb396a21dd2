#!/usr/bin/env bash
# `make test-live` and `make benchmark` against the release router on fake backends, as
# CI's stand-in for the GPU stack: tests/live/fake_openai.py plays the classifier, the
# primary and xAI on one loopback port; the router runs config/router.toml (the Compose
# deployment's own settings) with only its listen address, backend URLs, model names,
# xAI key and session folder overridden. Also runs the image's health-check command
# (infra/Dockerfile) against it. Everything started here is stopped by PID on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-live.XXXXXX")"

say() { printf '\033[1m[live]\033[0m %s\n' "$*" >&2; }
# shellcheck source=SCRIPTDIR/../../tests/lib/procs.sh
source "${here}/../../tests/lib/procs.sh"

say "building the router (cargo build --release --locked, as infra/Dockerfile does)"
cargo build --release --locked --manifest-path "${root}/Cargo.toml" >&2
router_bin="${root}/target/release/ai-router"

# The fake backend picks its own port and says which on its first line.
python3 -u "${root}/tests/live/fake_openai.py" --xai-key live-test-key \
    >"${work}/fake.out" 2>"${work}/fake.log" &
pids+=($!)
for _ in $(seq 50); do
    grep -q '^listening on' "${work}/fake.out" && break
    sleep 0.1
done
fake_port="$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "${work}/fake.out")"
[[ -n "${fake_port}" ]] || { cat "${work}/fake.log" >&2; say "the fake backend did not start"; exit 1; }
fake="http://127.0.0.1:${fake_port}/v1"

port="$(free_port)"
(
    cd "${root}"
    export AI_ROUTER_SERVER__LISTEN="127.0.0.1:${port}"
    export AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL="${fake}"
    export AI_ROUTER_BACKENDS__CLASSIFIER__MODEL="fake-classifier"
    export AI_ROUTER_BACKENDS__PRIMARY__BASE_URL="${fake}"
    export AI_ROUTER_BACKENDS__PRIMARY__MODEL="fake-primary"
    export AI_ROUTER_BACKENDS__XAI__BASE_URL="${fake}"
    export XAI_MODEL="fake-grok"
    export XAI_API_KEY="live-test-key"
    export AI_ROUTER_SESSIONS__DIR="${work}/sessions"
    exec "${router_bin}" serve --config config/router.toml
) >"${work}/router.log" 2>&1 &
router_pid=$!
pids+=("${router_pid}")
if ! wait_for "http://127.0.0.1:${port}/health" 30 "${router_pid}"; then
    tail -n 30 "${work}/router.log" >&2
    say "the router did not start; its log is above"
    exit 1
fi

status=0
say "make test-live URL=http://127.0.0.1:${port} (fake backends)"
EXPECT_ROUTES="primary,xai,enrich,meta" LIVE_TIMEOUT=30 \
    python3 "${root}/tests/live/test_live.py" --url "http://127.0.0.1:${port}" || status=1

say "make benchmark, with small counts"
python3 "${root}/tests/live/benchmark.py" --url "http://127.0.0.1:${port}" \
    --requests 4 --concurrency 2 --streams 2 --timeout 30 || status=1
python3 "${root}/tests/live/benchmark.py" --url "http://127.0.0.1:${port}" \
    --requests 2 --concurrency 2 --streams 1 --timeout 30 --meta >/dev/null || status=1

# The image's HEALTHCHECK command, with the container's busybox path swapped for this
# machine's: it must pass against a live router and fail against a closed port.
if busybox="$(command -v busybox)"; then
    mapfile -t probe < <(python3 - "${root}/infra/Dockerfile" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
for arg in json.loads(re.search(r"^HEALTHCHECK .*?CMD (\[.*\])", text, re.M).group(1)):
    print(arg)
PY
    )
    probe[0]="${busybox}"
    if "${probe[@]/127.0.0.1:8080/127.0.0.1:${port}}" \
        && ! "${probe[@]/127.0.0.1:8080/127.0.0.1:$(free_port)}" 2>/dev/null; then
        printf '  ok   image health check: passes on a live router, fails on a closed port\n'
    else
        printf '  FAIL image health check (%s)\n' "${probe[*]}"
        status=1
    fi
else
    printf '  skip image health check: busybox is not installed (apt-get install busybox-static)\n'
fi

if ((status)); then
    say "router log (last lines):"
    tail -n 30 "${work}/router.log" >&2
fi
say "logs in ${work}"
exit "${status}"
