#!/usr/bin/env bash
# `make eval`: `ai-router eval` over the golden set against the demo's model. Starts
# llama-server on a free loopback port (built and downloaded once, then cached), runs
# the eval with config/demo.toml and its classifier pointed there, and stops it.
# Arguments go to `ai-router eval` (e.g. --against DIR, --json, --min-accuracy 0.8).
# The figures are the 270M stand-in's, not the GPU stack's classifier's. One case at a
# time (EVAL_CONCURRENCY): on a CPU, parallel requests only queue into timeouts.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=stack.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"

cache="${AI_ROUTER_CACHE:-${HOME}/.cache/ai-router}"
work="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-eval.XXXXXX")"
set_file="${EVAL_SET:-evals/golden.jsonl}"
if [[ ! -f "${root}/${set_file}" && ! -f "${set_file}" ]]; then
    say "${set_file} is not there yet: using the small test set tests/fixtures/eval/small.jsonl"
    set_file="tests/fixtures/eval/small.jsonl"
fi

# AI_ROUTER_BIN: a router binary already built (skips the release build).
if [[ -n "${AI_ROUTER_BIN:-}" ]]; then
    router_bin="${AI_ROUTER_BIN}"
else
    build_router
fi
llama_port="$(free_port)"
start_llama "${llama_port}" "${work}/llama-server.log"

say "ai-router eval --set ${set_file} $* (classifier: llama-server on 127.0.0.1:${llama_port}; cache ${cache})"
status=0
(
    cd "${root}"
    AI_ROUTER_BACKENDS__CLASSIFIER__BASE_URL="http://127.0.0.1:${llama_port}/v1" \
    AI_ROUTER_BACKENDS__PRIMARY__BASE_URL="http://127.0.0.1:${llama_port}/v1" \
        "${router_bin}" eval --config config/demo.toml --set "${set_file}" \
        --concurrency "${EVAL_CONCURRENCY:-1}" "$@"
) || status=$?
stop_stack
exit "${status}"
