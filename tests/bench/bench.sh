#!/usr/bin/env bash
# `make bench`: installs what the benchmark needs when it is missing (Debian's nginx, and
# oha from crates.io into ~/.cargo/bin), builds the router in release mode, then runs
# tests/bench/bench.py, which starts the servers on free 127.0.0.1 ports, measures,
# prints the table and writes tests/bench/results/<UTC stamp>.json.
#
# BENCH_QUICK=1 for a run under a minute; see bench.py for every BENCH_* setting.
# BENCH_BIN=path skips the build and measures that binary instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
started=${SECONDS}
step() { printf '\n=== bench: %s (%d s so far)\n' "$*" "$((SECONDS - started))"; }

as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }

step "tools"
if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    echo "installing Debian's nginx (apt-get)"
    as_root apt-get update -qq
    as_root apt-get install -y -qq nginx >/dev/null
    # Debian starts the packaged service where it can; the bench runs its own instances.
fi
/usr/sbin/nginx -v 2>&1 || nginx -v
export PATH="${HOME}/.cargo/bin:${PATH}"
if ! command -v oha >/dev/null; then
    echo "installing oha from crates.io (cargo install oha --locked; about 6-7 minutes on 2 cores, once)"
    t0=${SECONDS}
    cargo install oha --locked
    echo "oha installed in $((SECONDS - t0)) s"
fi
oha --version
command -v python3 >/dev/null || { echo "bench: python3 is required" >&2; exit 1; }

if [[ -z "${BENCH_BIN:-}" ]]; then
    step "cargo build --release --locked"
    cargo build --release --locked
fi

step "measuring"
python3 tests/bench/bench.py
step "done"
