# Sourced by the deployment checks (infra/check/all.sh, infra/kubernetes/check.sh): run
# named steps, count them, and end with one summary line and a status.
# shellcheck shell=bash

steps_started=${SECONDS}
passed=0
failed=0

# step NAME COMMAND...: runs COMMAND under a heading and counts it.
step() {
    local name="$1"
    shift
    printf '\n\033[1m--- %s\033[0m\n' "${name}"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        printf '  FAIL step: %s\n' "${name}"
    fi
}

# steps_done CHECK: the time taken and the count; the status is whether all passed.
steps_done() {
    printf '\n%s took %d s\n' "$1" "$((SECONDS - steps_started))"
    printf '%s: %d passed, %d failed\n' "$1" "${passed}" "${failed}"
    ((failed == 0))
}
