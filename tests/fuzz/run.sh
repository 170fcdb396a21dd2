#!/usr/bin/env bash
# `make fuzz`: runs the chat_request fuzz target for FUZZ_SECS (default 60) seconds on one
# core, seeded with tests/fuzz/seeds and the real Open WebUI bodies in tests/fixtures. The
# growing corpus is kept in ~/.cache/ai-router/fuzz so later runs start where this one
# stopped; crashes land in tests/fuzz/artifacts/ (see tests/fuzz/README.md to reproduce).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
corpus="${AI_ROUTER_CACHE:-${HOME}/.cache/ai-router}/fuzz/chat_request"

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "make fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "make fuzz needs cargo-fuzz: cargo install cargo-fuzz --locked" >&2
    exit 1
fi
mkdir -p "${corpus}"
cd "${root}"
exec cargo +nightly fuzz run --fuzz-dir tests/fuzz chat_request "${corpus}" \
    tests/fuzz/seeds/chat_request tests/fixtures/openwebui -- \
    -max_total_time="${FUZZ_SECS:-60}" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
    -print_final_stats=1
