#!/usr/bin/env bash
# `make help` lists every target, each with its one-line help, and every target the
# issues promise exists and is .PHONY.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
help="$(make --no-print-directory -C "${root}" help | sed 's/\x1b\[[0-9;]*m//g')"

python3 - "${root}/Makefile" "${help}" <<'PY'
import re, sys

makefile, help_text = open(sys.argv[1]).read(), sys.argv[2]
targets = re.findall(r"^([a-z][a-z0-9-]*):(?!=)(.*)$", makefile, re.M)
phony = set(" ".join(re.findall(r"^\.PHONY:(.*)$", makefile, re.M)).split())
listed = {line.split()[0]: line for line in help_text.splitlines() if line.strip()}
promised = ("help build demo test e2e lint fmt check clean up down restart ps health status logs "
            "logs-router logs-primary logs-ai image test-live benchmark review compose-check k8s-check "
            "k8s-sync").split()
problems = [f"{t}: no '## ' help" for t, rest in targets if "## " not in rest]
problems += [f"{t}: not in make help" for t, _ in targets if t not in listed]
problems += [f"{t}: not .PHONY" for t, _ in targets if t not in phony]
problems += [f"{t}: missing" for t in promised if t not in {t for t, _ in targets}]
for p in problems:
    print(f"  FAIL make help: {p}")
if problems:
    sys.exit(1)
print(f"  ok   make help lists all {len(targets)} targets, each with one line, all .PHONY")
PY
