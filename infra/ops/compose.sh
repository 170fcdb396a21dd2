#!/usr/bin/env bash
# The Makefile's Docker targets: Docker Compose on infra/docker-compose.yml (plus
# infra/docker-compose.override.yml if you made one) with the repository's .env, after
# checking that a Docker engine and the env files are there.
#
# Usage: compose.sh up | down | restart [SERVICE] | ps | logs [SERVICE] | health | status
#                   | image | models
#
# Environment: UP_TIMEOUT (seconds `up` waits for every service to be healthy, default
# 1800), TAIL (log lines `logs` starts with, default 200), AI_ROUTER_UID / AI_ROUTER_GID
# (who the router runs as; default: you, so its session logs in logs/ are yours).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
compose_files=(-f "${root}/infra/docker-compose.yml")
# Local changes (another GPU, a parser plugin…) go in an override file, kept out of git.
if [[ -f "${root}/infra/docker-compose.override.yml" ]]; then
    compose_files+=(-f "${root}/infra/docker-compose.override.yml")
fi

say() { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; exit 1; }

# need_docker: a reachable engine and Compose v2 or later, else a clear message.
need_docker() {
    command -v docker >/dev/null 2>&1 \
        || die "needs a Docker engine: the docker command is not installed (Docker Engine 25 or later, with the Compose plugin)"
    local info
    if ! info="$(docker info 2>&1)"; then
        printf '%s\n' "${info}" | tail -n 3 >&2
        die "needs a Docker engine: \`docker info\` cannot reach one (is the daemon running? is $(id -un) allowed to use it, e.g. in the docker group?)"
    fi
    if docker compose version >/dev/null 2>&1; then
        compose_cmd=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1 \
        && [[ "$(docker-compose version --short 2>/dev/null)" =~ ^v?([2-9]|[1-9][0-9]) ]]; then
        compose_cmd=(docker-compose)
    else
        die "needs Docker Compose v2 or later (the docker compose plugin); the old Python docker-compose 1.x cannot read this file"
    fi
}

# need_env_files: .env and .secrets exist (every service reads them), .secrets is private.
need_env_files() {
    local missing=() f
    for f in .env .secrets; do
        [[ -f "${root}/${f}" ]] || missing+=("${f}")
    done
    if ((${#missing[@]})); then
        die "missing ${missing[*]}: copy the examples first, then edit them (infra/README.md):
    cp .env.example .env && cp .secrets.example .secrets && chmod 600 .secrets"
    fi
    if [[ -n "$(find "${root}/.secrets" -perm /o=r 2>/dev/null)" ]]; then
        say "warning: .secrets is readable by every user of this machine: chmod 600 .secrets"
    fi
}

compose() {
    "${compose_cmd[@]}" "${compose_files[@]}" --env-file "${root}/.env" "$@"
}

# The router runs as the invoking user (the one behind sudo, if any) unless told otherwise
# in the environment or in .env, so that the session logs it writes in logs/ are theirs.
set_router_user() {
    if [[ -z "${AI_ROUTER_UID:-}" ]] && ! grep -q '^AI_ROUTER_UID=' "${root}/.env"; then
        export AI_ROUTER_UID="${SUDO_UID:-$(id -u)}"
    fi
    if [[ -z "${AI_ROUTER_GID:-}" ]] && ! grep -q '^AI_ROUTER_GID=' "${root}/.env"; then
        export AI_ROUTER_GID="${SUDO_GID:-$(id -g)}"
    fi
}

health() { python3 "${here}/health.py" "$1" -- "${compose_cmd[@]}" "${compose_files[@]}" --env-file "${root}/.env"; }

up() {
    set_router_user
    mkdir -p "${root}/logs/sessions"
    local timeout="${UP_TIMEOUT:-1800}"
    say "building the router image and starting the stack; waiting up to ${timeout} s for every service to be healthy"
    say "(the first start downloads about 26 GB of weights unless \`make models\` already did; follow it with \`make logs\`)"
    if ! compose up --detach --build --remove-orphans --wait --wait-timeout "${timeout}"; then
        say "the stack did not come up healthy:"
        health verbose || true
        exit 1
    fi
    local port
    port="$(sed -n 's/^ROUTER_PORT=\([0-9]*\).*/\1/p' "${root}/.env" | tail -n 1)"
    health line || true
    cat >&2 <<TXT

  ai-router is up.
    this host:   http://127.0.0.1:${port:-8080}/v1     (Open WebUI: an "OpenAI API" connection, any key)
    the LAN:     https://<this host>/v1              (Traefik; certificate: infra/traefik/README.md)
  Next: make health · make test-live · make logs-router · make benchmark

TXT
}

models() {
    # Each vLLM service's first command argument is its model: download it into the
    # shared Hugging Face cache with the vLLM image's own huggingface_hub.
    local service model
    for service in vllm-primary vllm-router; do
        model="$(compose config --format json | python3 -c '
import json, sys
print(json.load(sys.stdin)["services"][sys.argv[1]]["command"][0])' "${service}")"
        say "downloading ${model} (for ${service}) into the Hugging Face cache"
        compose run --rm --no-deps --entrypoint python3 "${service}" -c \
            'import sys; from huggingface_hub import snapshot_download as get; print(get(sys.argv[1]))' \
            "${model}"
    done
}

command="${1:-}"
shift || true
case "${command}" in
up)
    need_docker
    need_env_files
    up
    ;;
down)
    need_docker
    need_env_files
    compose down --remove-orphans
    ;;
restart)
    need_docker
    need_env_files
    if (($#)); then
        set_router_user
        compose restart "$@"
    else
        # Down, then up: `up` starts the vLLM servers one after the other (one GPU).
        compose down --remove-orphans
        up
    fi
    ;;
ps)
    need_docker
    need_env_files
    compose ps --all
    ;;
logs)
    need_docker
    need_env_files
    compose logs --follow --tail "${TAIL:-200}" "$@"
    ;;
health)
    need_docker
    need_env_files
    health verbose
    ;;
status)
    need_docker
    need_env_files
    health line
    ;;
image)
    need_docker
    say "building ai-router:local from infra/Dockerfile"
    docker build --file "${root}/infra/Dockerfile" --tag ai-router:local "${root}"
    ;;
models)
    need_docker
    need_env_files
    models
    ;;
*)
    die "usage: $0 up|down|restart [SERVICE]|ps|logs [SERVICE]|health|status|image|models"
    ;;
esac
