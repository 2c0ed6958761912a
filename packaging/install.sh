#!/usr/bin/env bash
# Install specchat with a llama-cpp-python build for this machine's accelerator.
#
#   packaging/install.sh [--backend auto|cpu|cuda|metal|vulkan] [--wheel FILE] [--dry-run]
#
# llama-cpp-python compiles llama.cpp from source; CMAKE_ARGS picks the backend:
#   cpu     (none)                 any machine
#   cuda    -DGGML_CUDA=on         NVIDIA GPU + CUDA toolkit (nvcc, cuBLAS); compiled for the GPU
#                                  present (add -DCMAKE_CUDA_ARCHITECTURES=86 to pick another)
#   metal   -DGGML_METAL=on        Apple Silicon (also llama.cpp's default there)
#   vulkan  -DGGML_VULKAN=on       AMD/Intel/NVIDIA GPU + glslc, SPIRV-Headers, Vulkan headers
#                                  1.3.272 or newer (Debian 12's are fetched from Debian 13)
# plus -DGGML_RPC=ON on every backend: llama.cpp's RPC client, for targets spread over machines
# (`specchat --rpc`, helpers run packaging/rpc-server.sh); -DGGML_RPC=OFF in CMAKE_ARGS opts out.
# "auto" (the default) picks the first GPU backend this machine has a GPU for and whose build needs
# are met (else says what is missing), and installs the CPU build if that GPU build fails. A backend
# asked for by name gets what it needs installed where possible (Vulkan: apt packages as root,
# newer headers), else the script stops saying what is missing. llama-cpp-python (LLAMA_CPP_VERSION,
# default the tested version) is built once per backend and CMAKE_ARGS, cached under
# ${SPECCHAT_CACHE_DIR:-~/.cache/specchat}/llama-cpp-python/. Installs with pipx when available
# (from this clone, or from --wheel FILE), else into a virtual environment under
# ~/.local/share/specchat/venv with a `specchat` link in ~/.local/bin.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BACKEND=auto
SOURCE="$ROOT"
DRY_RUN=0
PYTHON="${PYTHON:-python3}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"

while [ $# -gt 0 ]; do
  case "$1" in
    --backend) BACKEND="${2:?--backend needs a value}"; shift 2 ;;
    --backend=*) BACKEND="${1#*=}"; shift ;;
    --wheel) SOURCE="${2:?--wheel needs a file}"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# shellcheck source=lib/llama-build.bash
. "$ROOT/packaging/lib/llama-build.bash"

gpu_candidates() {  # the GPU backends this machine has hardware for, best first
  local os arch
  os="$(uname -s)"; arch="$(uname -m)"
  if [ "$os" = Darwin ] && [ "$arch" = arm64 ]; then echo metal; return; fi
  have nvidia-smi && echo cuda
  vulkan_gpu_present && echo vulkan
  return 0
}

# detect: the first GPU backend whose build needs are all met, else cpu; says why each other one
# is passed over (one paragraph each)
detect() {
  local b problems
  for b in $(gpu_candidates); do
    problems="$(backend_problems "$b")"
    if [ -z "$problems" ]; then echo "$b"; return; fi
    one_paragraph "install.sh: not building for $b: this machine has the hardware, but its build needs " \
      <<<"$problems" >&2
    if [ "$b" = vulkan ]; then
      echo "  (--backend vulkan installs what it can itself: Debian/Ubuntu packages as root, newer headers)" >&2
    else
      echo "  (fix that and rerun with --backend $b)" >&2
    fi
  done
  if vulkan_cpu_device_only; then
    echo "install.sh: the only Vulkan device here is a CPU one (Mesa's llvmpipe): building for CPU" \
         "(--backend vulkan builds for it anyway, e.g. to test the GPU path)" >&2
  fi
  echo cpu
}

# requested_backend_ready BACKEND: installs/fetches what it can (Vulkan), then refuses what is
# still missing, with the command for the CPU build
requested_backend_ready() {
  local problems
  if [ "$1" = vulkan ]; then problems="$(prepare_vulkan "$DRY_RUN")"; else problems="$(backend_problems "$1")"; fi
  [ -z "$problems" ] && return
  one_paragraph "install.sh: cannot build for $1: it needs " <<<"$problems" >&2
  echo "  For the CPU build instead: bash $0 --backend cpu" >&2
  exit 1
}

# llama.cpp renamed its backend options LLAMA_* -> GGML_* (LLAMA_CUBLAS is now a hard CMake error,
# the others only warn or are ignored): refuse the old names instead of building the wrong thing.
for old_new in LLAMA_CUBLAS:GGML_CUDA LLAMA_CUDA:GGML_CUDA LLAMA_METAL:GGML_METAL \
               LLAMA_VULKAN:GGML_VULKAN LLAMA_HIPBLAS:GGML_HIP GGML_HIPBLAS:GGML_HIP \
               LLAMA_NATIVE:GGML_NATIVE LLAMA_BLAS:GGML_BLAS; do
  case " ${CMAKE_ARGS:-} " in
    *"-D${old_new%%:*}="*|*"-D${old_new%%:*}:"*)
      echo "install.sh: CMAKE_ARGS uses -D${old_new%%:*}, which llama.cpp renamed -D${old_new#*:}" >&2
      exit 2 ;;
  esac
done

case "$BACKEND" in auto|cpu|cuda|metal|vulkan) ;; *)
  echo "install.sh: unknown backend '$BACKEND' (cpu, cuda, metal, vulkan, auto)" >&2; exit 2 ;; esac
EXPLICIT=1
if [ "$BACKEND" = auto ]; then EXPLICIT=0; BACKEND="$(detect)"; else requested_backend_ready "$BACKEND"; fi
if [ "$BACKEND" = cuda ] && [ -x "$CUDA_HOME/bin/nvcc" ] && ! have nvcc; then
  export PATH="$CUDA_HOME/bin:$PATH"
fi
# Keep flags the user already gave (e.g. -DCMAKE_CUDA_ARCHITECTURES=86, or -DGGML_RPC=OFF).
USER_CMAKE_ARGS="${CMAKE_ARGS:-}"
CMAKE_ARGS="$(full_cmake_args "$BACKEND")"
# pip's wheel cache does not know about CMAKE_ARGS: never reuse a wheel cached from another build
# (a CPU wheel for a GPU build, or one without RPC). Our own cache is keyed by them.
PIP_ARGS="--no-cache-dir"

echo "backend: $BACKEND"
echo "CMAKE_ARGS=$CMAKE_ARGS"
echo "llama-cpp-python $LLAMA_VERSION: built once into $(wheel_dir "$BACKEND" "$CMAKE_ARGS")"
if have pipx; then
  CMD=(pipx install --force ${PIP_ARGS:+--pip-args="$PIP_ARGS"} "$SOURCE")
else
  VENV="${XDG_DATA_HOME:-$HOME/.local/share}/specchat/venv"
  CMD=("$PYTHON" -m venv "$VENV" "&&" "$VENV/bin/pip" install $PIP_ARGS --upgrade "$SOURCE")
fi
echo "install: ${CMD[*]}"
[ "$DRY_RUN" = 1 ] && exit 0

# build_or_fall_back: WHEELS, the wheel folder for BACKEND; when a GPU build fails, one paragraph on why,
# then the CPU build (auto) or a stop with the command that gets it (a backend the user asked for)
build_or_fall_back() {
  if build_wheel "$BACKEND" "$CMAKE_ARGS"; then WHEELS="$BUILT_DIR"; return; fi
  if [ "$BACKEND" = cpu ]; then
    echo "install.sh: the llama-cpp-python build failed: $BUILD_FAILURE (full log: $BUILD_LOG)" >&2
    exit 1
  fi
  if [ "$EXPLICIT" = 1 ]; then
    echo "install.sh: the $BACKEND build of llama-cpp-python $LLAMA_VERSION failed: $BUILD_FAILURE" \
         "(full log: $BUILD_LOG). Nothing was installed. For the CPU build instead:" \
         "bash $0 --backend cpu" >&2
    exit 1
  fi
  echo "install.sh: the $BACKEND build of llama-cpp-python $LLAMA_VERSION failed: $BUILD_FAILURE" \
       "(full log: $BUILD_LOG). Installing the CPU build instead: specchat works, on the CPU;" \
       "once the cause is fixed, rerun with --backend $BACKEND." >&2
  BACKEND=cpu
  CMAKE_ARGS="$(CMAKE_ARGS="$USER_CMAKE_ARGS" full_cmake_args cpu)"
  echo "backend: cpu"
  echo "CMAKE_ARGS=$CMAKE_ARGS"
  build_wheel cpu "$CMAKE_ARGS" || {
    echo "install.sh: the CPU build failed too: $BUILD_FAILURE (full log: $BUILD_LOG)" >&2; exit 1; }
  WHEELS="$BUILT_DIR"
}

build_or_fall_back
# pip takes llama-cpp-python from the built wheel: the version pinned, the wheel preferred to the
# source at that version
printf 'llama-cpp-python==%s\n' "$LLAMA_VERSION" > "$WHEELS/constraints.txt"
export PIP_FIND_LINKS="$WHEELS" PIP_CONSTRAINT="$WHEELS/constraints.txt"
if have pipx; then
  "${CMD[@]}"
else
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install $PIP_ARGS --upgrade "$SOURCE"
  mkdir -p "$HOME/.local/bin"
  ln -sf "$VENV/bin/specchat" "$HOME/.local/bin/specchat"
  echo "linked $HOME/.local/bin/specchat (add $HOME/.local/bin to PATH if needed)"
fi
SPECCHAT_BIN="$(command -v specchat || echo "$HOME/.local/bin/specchat")"
"$SPECCHAT_BIN" doctor || true
if [ "$BACKEND" = vulkan ] && vulkan_cpu_device_only; then
  echo "note: the only Vulkan device here is Mesa's llvmpipe, a CPU: llama.cpp uses it only when" \
       "told to (GGML_VK_VISIBLE_DEVICES=0 specchat doctor); it tests the GPU path, it is not faster"
fi
echo "next: $SPECCHAT_BIN --pair demo"
