#!/usr/bin/env bash
# Install specchat with a llama-cpp-python build for this machine's accelerator.
#
#   packaging/install.sh [--backend auto|cpu|cuda|metal|vulkan] [--wheel FILE] [--dry-run]
#
# llama-cpp-python compiles llama.cpp from source during the install; CMAKE_ARGS picks the backend:
#   cpu     (none)                 any machine
#   cuda    -DGGML_CUDA=on         NVIDIA GPU + CUDA toolkit (nvcc, cuBLAS); compiled for the GPU
#                                  present (add -DCMAKE_CUDA_ARCHITECTURES=86 to pick another)
#   metal   -DGGML_METAL=on        Apple Silicon (also llama.cpp's default there)
#   vulkan  -DGGML_VULKAN=on       AMD/Intel/NVIDIA GPU + Vulkan SDK (glslc)
# plus -DGGML_RPC=ON on every backend: llama.cpp's RPC client, for targets spread over machines
# (`specchat --rpc`, helpers run packaging/rpc-server.sh); -DGGML_RPC=OFF in CMAKE_ARGS opts out.
# "auto" (the default) picks the first that this machine can build. Installs with pipx when it is
# available (from this clone, or from --wheel FILE), else into a virtual environment under
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
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

have() { command -v "$1" >/dev/null 2>&1; }

detect() {
  local os arch
  os="$(uname -s)"; arch="$(uname -m)"
  if [ "$os" = Darwin ] && [ "$arch" = arm64 ]; then echo metal; return; fi
  if have nvidia-smi && { have nvcc || [ -x "$CUDA_HOME/bin/nvcc" ]; }; then echo cuda; return; fi
  if have nvidia-smi; then
    echo "install.sh: an NVIDIA GPU is present but the CUDA toolkit (nvcc) is not; building for CPU" \
         "(install the toolkit, then rerun with --backend cuda)" >&2
  fi
  if have vulkaninfo && have glslc; then echo vulkan; return; fi
  echo cpu
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

[ "$BACKEND" = auto ] && BACKEND="$(detect)"
case "$BACKEND" in
  cpu) CMAKE="" ;;
  cuda) CMAKE="-DGGML_CUDA=on"
        [ -x "$CUDA_HOME/bin/nvcc" ] && ! have nvcc && export PATH="$CUDA_HOME/bin:$PATH" ;;
  metal) CMAKE="-DGGML_METAL=on" ;;
  vulkan) CMAKE="-DGGML_VULKAN=on" ;;
  *) echo "install.sh: unknown backend '$BACKEND' (cpu, cuda, metal, vulkan, auto)" >&2; exit 2 ;;
esac
# Keep flags the user already gave (e.g. -DCMAKE_CUDA_ARCHITECTURES=86, or -DGGML_RPC=OFF).
CMAKE_ARGS="${CMAKE}${CMAKE:+${CMAKE_ARGS:+ }}${CMAKE_ARGS:-}"
case " $CMAKE_ARGS " in *" -DGGML_RPC="*|*" -DGGML_RPC:"*) ;; *)
  CMAKE_ARGS="${CMAKE_ARGS:+$CMAKE_ARGS }-DGGML_RPC=ON" ;; esac
export CMAKE_ARGS
# pip's wheel cache does not know about CMAKE_ARGS: never reuse a wheel cached from another build
# (a CPU wheel for a GPU build, or one without RPC).
PIP_ARGS="--no-cache-dir"

echo "backend: $BACKEND"
echo "CMAKE_ARGS=$CMAKE_ARGS"
if have pipx; then
  CMD=(pipx install --force ${PIP_ARGS:+--pip-args="$PIP_ARGS"} "$SOURCE")
else
  VENV="${XDG_DATA_HOME:-$HOME/.local/share}/specchat/venv"
  CMD=("$PYTHON" -m venv "$VENV" "&&" "$VENV/bin/pip" install $PIP_ARGS --upgrade "$SOURCE")
fi
echo "install: ${CMD[*]}"
[ "$DRY_RUN" = 1 ] && exit 0

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
echo "next: $SPECCHAT_BIN --pair demo"
