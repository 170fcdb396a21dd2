#!/usr/bin/env bash
# `make compose-check`: every check of the deployment files that runs without a Docker
# engine or a GPU. Each step prints its own lines; the last line counts the steps.
#   compose.sh     the Compose file validates (Docker Compose v5) and keeps the stack's rules
#   dockerfile.sh  hadolint, the build and runtime stages' rules, .dockerignore, the binary
#   make-help.sh   `make help` lists every target
#   scripts        shellcheck and Python syntax of the infra and live-test scripts
#   live.sh        `make test-live` and `make benchmark` against the release router on fake backends
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
# shellcheck source=SCRIPTDIR/steps.sh
source "${here}/steps.sh"

scripts() {
    local ok=0
    if command -v shellcheck >/dev/null; then
        shellcheck -x "${root}"/infra/check/*.sh "${root}"/infra/ops/*.sh || ok=1
        ((ok)) || printf '  ok   shellcheck: infra/check/*.sh infra/ops/*.sh\n'
    else
        printf '  skip shellcheck is not installed (apt-get install shellcheck)\n'
    fi
    # Parse only: py_compile would leave __pycache__ folders in the work tree.
    python3 -c 'import ast, sys
for path in sys.argv[1:]:
    ast.parse(open(path).read(), path)' "${root}"/tests/live/*.py "${root}"/infra/check/*.py "${root}"/infra/ops/*.py || ok=1
    ((ok)) || printf '  ok   python: tests/live, infra/check, infra/ops compile\n'
    return "${ok}"
}

step "Compose file" "${here}/compose.sh"
step "Dockerfile and image" "${here}/dockerfile.sh"
step "make help" "${here}/make-help.sh"
step "scripts" scripts
step "test-live and benchmark on fake backends" "${here}/live.sh"

steps_done compose-check
