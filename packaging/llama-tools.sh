#!/usr/bin/env bash
# Build llama.cpp's own benchmark programs for side-by-side runs with specchat:
#
#   bash packaging/llama-tools.sh [--backend B] [--version X] [--sdist PATH]
#   specchat bench --llama-cpp-bin "$(bash packaging/llama-tools.sh)" ...
#
# Builds llama-bench, llama-speculative-simple and llama-simple from the llama-cpp-python source
# of the version specchat runs (a few minutes, once), caches them under
# ${SPECCHAT_CACHE_DIR:-~/.cache/specchat}/llama-tools/<version>-<backend>/ and prints that folder.
# Same toolchain needs as packaging/rpc-server.sh (Python, a C++ compiler, cmake or pip).
#
# Options:
#   --backend B       auto (default), cpu, cuda, metal or vulkan
#   --version X       llama-cpp-python version (default: the one installed for specchat here)
#   --sdist PATH      llama-cpp-python source (.tar.gz or unpacked folder) instead of pip download
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ME="llama-tools.sh"
BACKEND=auto; VERSION="${LLAMA_CPP_VERSION:-}"; SDIST=""
CACHE="${SPECCHAT_CACHE_DIR:-$HOME/.cache/specchat}/llama-tools"
TOOLS=(llama-bench:llama-bench llama-speculative-simple:llama-speculative-simple
       llama-simple:llama-simple)

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
bad() { echo "$ME: $*" >&2; exit 2; }
fail() { echo "$ME: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --backend|--version|--sdist) [ $# -ge 2 ] && [ -n "$2" ] || bad "$1 needs a value" ;;
  esac
  case "$1" in
    --backend) BACKEND="$2"; shift 2 ;;
    --version) VERSION="$2"; shift 2 ;;
    --sdist) SDIST="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) bad "unknown option '$1' (see --help)" ;;
  esac
done
case "$BACKEND" in auto|cpu|cuda|metal|vulkan) ;; *)
  bad "unknown --backend '$BACKEND' (auto, cpu, cuda, metal, vulkan)" ;; esac
if [ -n "$SDIST" ] && [ ! -e "$SDIST" ]; then bad "--sdist $SDIST: no such file or folder"; fi

# shellcheck source=packaging/lib/llama-programs.bash
. "$HERE/lib/llama-programs.bash"

if [ -z "$VERSION" ] && [ -n "$SDIST" ]; then VERSION="$(sdist_version "$SDIST")"; fi
[ -n "$VERSION" ] || VERSION="$(installed_version || true)"
[ -n "$VERSION" ] || fail "llama-cpp-python is not installed here: pass --version X"
case "$VERSION" in *[!0-9A-Za-z.+-]*) bad "--version '$VERSION' is not a version number" ;; esac
KIND="$BACKEND"; [ "$KIND" = auto ] && KIND="$(detect_backend)"
BIN_DIR="$CACHE/$VERSION-$KIND"

build_once "${TOOLS[@]}" >&2
echo "$BIN_DIR"
