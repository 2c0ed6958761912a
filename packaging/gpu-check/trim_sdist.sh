#!/usr/bin/env bash
# Trim the llama-cpp-python sdist to what a CUDA (or CPU) build of it needs, plus llama.cpp's
# native llama-speculative-simple and llama-bench, and pack it small enough to travel to an
# offline GPU machine.
#
#   packaging/gpu-check/trim_sdist.sh [--sdist FILE.tar.gz] [--version X] [--out FILE.tar.gz]
#
# Without --sdist it runs `pip download --no-deps --no-binary :all: llama-cpp-python==X`, X being
# the version installed in .venv (the one the project runs; --version or LLAMA_CPP_VERSION
# overrides). Default output: packaging/gpu-check/carry/llama-cpp-python-src.tar.gz.
#
# Kept: the Python package (llama_cpp/), the CMake project, llama.cpp's src/include/common/vendor,
# ggml with only its CPU and CUDA backends, tools/mtmd (llama-cpp-python ships libmtmd),
# tools/llama-bench and examples/speculative-simple. Dropped: models and vocab files, docs,
# tests, benches, conversion scripts, the web UI and server, other backends (Metal, Vulkan, SYCL,
# OpenCL...), .git. tools/CMakeLists.txt and examples/CMakeLists.txt are cut down to the two
# programs kept (nothing else in the tree is edited).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SDIST=""
VERSION="${LLAMA_CPP_VERSION:-}"
OUT="$HERE/carry/llama-cpp-python-src.tar.gz"
while [ $# -gt 0 ]; do
  case "$1" in
    --sdist) SDIST="${2:?--sdist needs a file}"; shift 2 ;;
    --version) VERSION="${2:?--version needs a value}"; shift 2 ;;
    --out) OUT="${2:?--out needs a file}"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "trim_sdist.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=python3

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [ -z "$SDIST" ]; then
  if [ -z "$VERSION" ]; then
    VERSION="$("$PY" -c 'from importlib.metadata import version; print(version("llama-cpp-python"))')"
  fi
  echo "downloading the llama-cpp-python $VERSION sdist"
  "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$WORK/dl"
  SDIST="$(ls "$WORK"/dl/llama_cpp_python-*.tar.gz)"
fi
echo "trimming $(basename "$SDIST") ($(du -h "$SDIST" | cut -f1))"
tar -xzf "$SDIST" -C "$WORK"
SRC="$(find "$WORK" -maxdepth 1 -type d -name 'llama_cpp_python-*' | head -n 1)"
[ -n "$SRC" ] || { echo "trim_sdist.sh: no llama_cpp_python-* folder in $SDIST" >&2; exit 1; }
NAME="$(basename "$SRC")"
LCPP="$SRC/vendor/llama.cpp"

# keep_only DIR NAME...: delete every entry of DIR whose name is not listed
keep_only() {
  local dir="$1"; shift
  local entry name keep
  for entry in "$dir"/* "$dir"/.[!.]*; do
    [ -e "$entry" ] || continue
    name="$(basename "$entry")"; keep=0
    for k in "$@"; do [ "$name" = "$k" ] && keep=1; done
    [ "$keep" = 1 ] || rm -rf "$entry"
  done
}

# only_subdirs CMAKELISTS NAME...: comment out add_subdirectory(X) for X not listed
only_subdirs() {
  local file="$1"; shift
  local pattern
  pattern="$(printf '%s|' "$@")"; pattern="${pattern%|}"
  sed -E -i "/add_subdirectory\((${pattern})\)/! s/^([[:space:]]*)add_subdirectory\(/\1# trimmed: add_subdirectory(/" "$file"
}

keep_only "$SRC" CMakeLists.txt pyproject.toml PKG-INFO README.md LICENSE.md llama_cpp vendor
keep_only "$SRC/vendor" llama.cpp
keep_only "$LCPP" CMakeLists.txt LICENSE cmake include src common vendor licenses ggml tools \
  examples pocs
keep_only "$LCPP/ggml" CMakeLists.txt cmake include src
for entry in "$LCPP"/ggml/src/ggml-*; do
  [ -d "$entry" ] || continue
  case "$(basename "$entry")" in ggml-cpu|ggml-cuda) ;; *) rm -rf "$entry" ;; esac
done
keep_only "$LCPP/tools" CMakeLists.txt mtmd llama-bench
only_subdirs "$LCPP/tools/CMakeLists.txt" llama-bench
keep_only "$LCPP/examples" CMakeLists.txt speculative-simple
only_subdirs "$LCPP/examples/CMakeLists.txt" speculative-simple
find "$SRC" \( -name '*.gguf' -o -name '*.gguf.inp' -o -name '*.gguf.out' -o -name '.git*' \) \
  -exec rm -rf {} + 2>/dev/null || true
rm -rf "$SRC/llama_cpp/lib"  # a previous in-tree build's libraries, if any

mkdir -p "$(dirname "$OUT")"
tar -C "$WORK" -czf "$OUT.part" "$NAME"
mv "$OUT.part" "$OUT"
echo "trimmed source: $(du -sh "$SRC" | cut -f1) unpacked, $(du -h "$OUT" | cut -f1) packed -> $OUT"
