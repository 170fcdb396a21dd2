#!/usr/bin/env bash
# infra/Dockerfile as far as a machine without a Docker engine can check it: hadolint,
# the build stage's cargo command against the Makefile's, the runtime stage's rules, the
# .dockerignore, whether the build stage's COPYs bring everything the crate needs (they
# are replayed into a scratch folder that `cargo check` compiles), and whether the release
# binary built here would run on the runtime base (its shared libraries and glibc). The
# release build itself is live.sh's `cargo build --release --locked`, the build stage's
# exact command.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
bin="$("${here}/tools.sh" | tail -n 1)"

"${bin}/hadolint" "${root}/infra/Dockerfile"
printf '  ok   hadolint %s: no findings\n' "$("${bin}/hadolint" --version | awk '{print $NF}')"

binary="${root}/target/release/ai-router"
[[ -x "${binary}" ]] || cargo build --release --locked --manifest-path "${root}/Cargo.toml" >&2
python3 - "${root}" "${binary}" <<'PY'
import json, re, subprocess, sys

root, binary = sys.argv[1], sys.argv[2]
text = open(f"{root}/infra/Dockerfile").read()
logical = re.sub(r"\\\n\s*", " ", text)  # join continued lines
lines = [l.strip() for l in logical.splitlines() if l.strip() and not l.strip().startswith("#")]
stages, current = [], None
for line in lines:
    if line.upper().startswith("FROM "):
        current = {"from": line, "lines": []}
        stages.append(current)
    elif current is not None:
        current["lines"].append(line)
failures = []

def rule(ok, name, note=""):
    print(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + note if note else ''}")
    if not ok:
        failures.append(name)

build, runtime = (stages[0], stages[-1]) if len(stages) >= 2 else ({"from": "", "lines": []},) * 2
rule(len(stages) >= 2 and re.search(r"\sAS\s+build$", build["from"], re.I), "multi-stage: a build stage, then a runtime stage", f"{len(stages)} stages")

makefile = open(f"{root}/Makefile").read()
make_build = re.search(r"^build:.*\n\t(.+)$", makefile, re.M)
cargo = re.search(r"cargo build[^&\n]*", " ".join(build["lines"]))
rule(cargo and make_build and cargo.group(0).strip() == make_build.group(1).strip() == "cargo build --release --locked",
     "the build stage runs `make build`'s command", cargo.group(0).strip() if cargo else "no cargo build")

user = [l.split()[1] for l in runtime["lines"] if l.upper().startswith("USER ")]
rule(user and user[-1].split(":")[0] not in ("root", "0"), "runs as a non-root user", user[-1] if user else "no USER")
copies = " ".join(l for l in runtime["lines"] if l.upper().startswith("COPY ") and "--from" not in l)
rule(all(re.search(rf"\b{d}\b", copies) for d in ("config", "prompts")), "config/ and prompts/ defaults are baked in")
entry = [l for l in runtime["lines"] if l.upper().startswith(("ENTRYPOINT", "CMD "))]
rule(any("ai-router" in l for l in entry) and any('"serve", "--config", "config/router.toml"' in l for l in entry),
     "starts `ai-router serve --config config/router.toml`")
base_ok = "bookworm" in build["from"] and "debian12" in runtime["from"]
rule(base_ok, "build and runtime bases are the same Debian release (glibc)", f"{build['from'].split()[1]} -> {runtime['from'].split()[1]}")

check = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])", logical, re.M)
probe = json.loads(check.group(1)) if check else []
rule(probe and probe[-1].endswith(":8080/health"), "HEALTHCHECK calls /health", " ".join(probe))
compose = open(f"{root}/infra/docker-compose.yml").read()
block = re.search(r"^  ai-router:\n(.*?)^  \S", compose, re.M | re.S).group(1)
test = re.search(r"test: (\[.*\])", block)
rule(test and json.loads(test.group(1))[1:] == probe, "the Compose health check is the image's")

# The runtime base (distroless cc-debian12) has glibc 2.36, libgcc_s and nothing else.
allowed = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2", "libdl.so.2", "libpthread.so.0", "librt.so.1"}
needed = set(re.findall(r"Shared library: \[(.+?)\]", subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout))
rule(needed and needed <= allowed, "the release binary needs only libraries the runtime base has", ", ".join(sorted(needed)))
versions = re.findall(r"GLIBC_(\d+)\.(\d+)", subprocess.run(["objdump", "-T", binary], capture_output=True, text=True).stdout)
newest = max((int(a), int(b)) for a, b in versions) if versions else (0, 0)
rule(newest <= (2, 36), "and no newer glibc than the runtime base's 2.36", f"GLIBC_{newest[0]}.{newest[1]}")

ignore = [l.strip() for l in open(f"{root}/.dockerignore") if l.strip() and not l.startswith("#")]
sources = set(re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", logical, re.M))
sources = {s for group in sources for s in group.split()}
included = {l[1:].rstrip("/") for l in ignore if l.startswith("!")}
leaks = [l for l in ignore if l.startswith("!") and re.search(r"\.env|\.secrets|target|logs", l)]
last = ignore[-6:]
excluded = all(any(p in l for l in last) for p in ("target/", "logs/", ".env", ".secrets"))
rule(ignore[:1] == ["*"] and sources <= included and not leaks and excluded,
     ".dockerignore sends only what COPY needs, never target/, logs/, .env, .secrets",
     f"COPY {' '.join(sorted(sources))}")
sys.exit(1 if failures else 0)
PY

# Replay the build stage's COPY lines (the ones without --from) into a scratch folder and
# compile it: a file the crate needs but the stage does not copy (an include_str! of a
# prompt, say) fails here instead of in the admin's `make up`.
context="$(mktemp -d "${TMPDIR:-/tmp}/ai-router-context.XXXXXX")"
trap 'rm -rf "${context}"' EXIT
workdir="$(python3 - "${root}" "${context}" <<'PY'
import os, re, shutil, sys

root, dest = sys.argv[1], sys.argv[2]
text = re.sub(r"\\\n\s*", " ", open(f"{root}/infra/Dockerfile").read())
stage = text.split("\nFROM ")[1]  # the first stage after the first FROM: the build stage
workdir = "/"
for line in stage.splitlines():
    words = line.split()
    if words[:1] == ["WORKDIR"]:
        workdir = words[1]
    if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
        args = [w for w in words[1:] if not w.startswith("--")]
        target = os.path.join(workdir, args[-1])
        for source in args[:-1]:
            into = os.path.join(dest + target, os.path.basename(source)) if target.endswith("/") else dest + target
            os.makedirs(os.path.dirname(into.rstrip("/")), exist_ok=True)
            (shutil.copytree if os.path.isdir(f"{root}/{source}") else shutil.copy)(f"{root}/{source}", into)
print(workdir)  # where the stage builds: the scratch copy's Cargo.toml is there
PY
)"
if CARGO_TARGET_DIR="${root}/target" cargo check --locked --quiet \
    --manifest-path "${context}${workdir}/Cargo.toml" >"${context}/check.log" 2>&1; then
    printf '  ok   the build stage copies everything the crate needs (cargo check on its COPYs)\n'
else
    tail -n 20 "${context}/check.log"
    printf '  FAIL the build stage does not copy everything the crate needs (log above)\n'
    exit 1
fi
