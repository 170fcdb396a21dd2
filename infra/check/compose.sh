#!/usr/bin/env bash
# The Compose file validates with the real Docker Compose (v5, which needs no engine for
# `config`), with and without the tunnel profile, using the committed env examples; then
# infra/check/compose_rules.py checks the stack's own rules on the rendered file.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
bin="$("${here}/tools.sh" | tail -n 1)"

# A scratch copy of the layout: the examples stand in for .env and .secrets, so a
# developer's own files are neither needed nor read.
work="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-compose.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/infra"
cp "${root}/infra/docker-compose.yml" "${work}/infra/"
cp "${root}/.env.example" "${work}/.env"
cp "${root}/.secrets.example" "${work}/.secrets"
# Markers: the rendered file merges env files into `environment`; these tell which
# service read which file (compose_rules.py).
printf '\nCHECK_MARK_ENV_FILE=1\n' >>"${work}/.env"
printf '\nCHECK_MARK_SECRETS_FILE=1\n' >>"${work}/.secrets"
compose=("${bin}/docker-compose" -f "${work}/infra/docker-compose.yml" --env-file "${work}/.env")

"${compose[@]}" config --quiet
printf '  ok   docker compose config: valid (%s)\n' "$("${bin}/docker-compose" version --short)"
services="$(COMPOSE_PROFILES=tunnel "${compose[@]}" config --services | sort | tr '\n' ' ')"
[[ "${services}" == "ai-router cloudflared traefik vllm-primary vllm-router " ]] || {
    printf '  FAIL services with the tunnel profile: %s\n' "${services}"
    exit 1
}
printf '  ok   services: %s(cloudflared only with COMPOSE_PROFILES=tunnel)\n' "${services}"

COMPOSE_PROFILES=tunnel "${compose[@]}" config --format json >"${work}/rendered.json"
python3 "${here}/compose_rules.py" "${work}/rendered.json"
