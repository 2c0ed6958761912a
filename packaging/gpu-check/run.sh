#!/usr/bin/env bash
# The GPU check: build llama-cpp-python with CUDA offline, make a synthetic pair, run specchat bench
# (target alone, fixed k, adaptive, lookup) and llama.cpp's native peer on it, keep JSON + plots.
#
#   bash packaging/gpu-check/run.sh --out DIR [--cpu [--build]] [--skip-build] [--no-native] ...
#
# GPU mode (default) needs nvidia-smi, nvcc, cmake, ninja, python3 (3.12, with numpy) and what
# packaging/gpu-check/prepare.sh put in packaging/gpu-check/carry/ (the trimmed llama-cpp-python
# source and the wheels); no network. It builds llama-cpp-python's CMake project with
# -DGGML_CUDA=on for this GPU's architecture only, plus llama-speculative-simple and llama-bench
# from the same tree, installs the Python side into BUILD/site, then runs on two pairs made from
# one synthetic draft: targets of cost COST x the draft's, agreement 1.0 and about 0.8.
# --cpu: the same end to end on CPU with a tiny pair. It uses the llama_cpp already installed for
# PYTHON and the native tools only if BUILD/cmake/bin has them; --cpu --build builds both from the
# carried source for CPU instead, exactly as GPU mode does for CUDA.
#
# Options:
#   --out DIR            JSON, plots, summary, doctor output and log go here (required)
#   --cpu                CPU only (see above)
#   --build              (--cpu) build llama-cpp-python and the native tools for CPU
#   --build-dir DIR      build tree (default packaging/gpu-check/build)
#   --skip-build         reuse the built tree in --build-dir (no configure, no compile, no install)
#   --configure-only     stop after CMake's configure step (checks the toolchain in seconds)
#   --no-native          skip the native llama.cpp peer
#   --llama-cpp-bin DIR  use the llama-speculative-simple and llama-bench in DIR
#   --jobs N             compile jobs (default: all cores)
#   --width N --depth N --heads N --kv-heads N --ff N --vocab N --type f16|f32|q8_0
#                        the synthetic draft's shape (GPU: 2048 4 16 4 5632 32000 f16)
#   --cost X             target cost / draft cost (GPU: 10)
#   --rounds N --max-tokens N --draft-lengths K,K --prompt-set NAME   passed to specchat bench
# Random weights are fine for timing: a pass costs what its shapes cost; the agreement is dialled
# in by `specchat bench make-pair`, not earned.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CARRY="$HERE/carry"
SRC_TGZ="$CARRY/llama-cpp-python-src.tar.gz"
OUT=""; CPU=0; BUILD_CPU=0; BUILD="$HERE/build"; SKIP_BUILD=0; CONFIGURE_ONLY=0
NATIVE=1; NATIVE_BIN=""; JOBS="$(nproc 2>/dev/null || echo 4)"
WIDTH=""; DEPTH=""; HEADS=""; KV_HEADS=""; FF=""; VOCAB=""; WTYPE=""; COST=""
ROUNDS=""; MAX_TOKENS=""; DRAFT_LENGTHS=""; PROMPT_SET="chat"

usage() { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "gpu-check: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
    --cpu) CPU=1; shift ;;
    --build) BUILD_CPU=1; shift ;;
    --build-dir) BUILD="${2:?}"; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --configure-only) CONFIGURE_ONLY=1; shift ;;
    --no-native) NATIVE=0; shift ;;
    --llama-cpp-bin) NATIVE_BIN="${2:?}"; shift 2 ;;
    --jobs) JOBS="${2:?}"; shift 2 ;;
    --width) WIDTH="${2:?}"; shift 2 ;;
    --depth) DEPTH="${2:?}"; shift 2 ;;
    --heads) HEADS="${2:?}"; shift 2 ;;
    --kv-heads) KV_HEADS="${2:?}"; shift 2 ;;
    --ff) FF="${2:?}"; shift 2 ;;
    --vocab) VOCAB="${2:?}"; shift 2 ;;
    --type) WTYPE="${2:?}"; shift 2 ;;
    --cost) COST="${2:?}"; shift 2 ;;
    --rounds) ROUNDS="${2:?}"; shift 2 ;;
    --max-tokens) MAX_TOKENS="${2:?}"; shift 2 ;;
    --draft-lengths) DRAFT_LENGTHS="${2:?}"; shift 2 ;;
    --prompt-set) PROMPT_SET="${2:?}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[ -n "$OUT" ] || die "--out DIR is required (see --help)"
[ "$BUILD_CPU" = 0 ] || [ "$CPU" = 1 ] || die "--build goes with --cpu (GPU mode always builds)"
if [ "$CPU" = 1 ]; then  # a tiny pair: seconds of compute
  : "${WIDTH:=64}" "${DEPTH:=2}" "${HEADS:=4}" "${KV_HEADS:=2}" "${FF:=128}" "${VOCAB:=512}"
  : "${WTYPE:=f32}" "${COST:=4}" "${ROUNDS:=1}" "${MAX_TOKENS:=16}" "${DRAFT_LENGTHS:=2,4}"
  NGL=0
else
  : "${WIDTH:=2048}" "${DEPTH:=4}" "${HEADS:=16}" "${KV_HEADS:=4}" "${FF:=5632}" "${VOCAB:=32000}"
  : "${WTYPE:=f16}" "${COST:=10}" "${ROUNDS:=2}" "${MAX_TOKENS:=128}" "${DRAFT_LENGTHS:=2,4,6,8}"
  NGL=-1
fi
# build steps run unless --skip-build; in --cpu mode only with --build
BUILDING=0
if [ "$SKIP_BUILD" = 0 ] && { [ "$CPU" = 0 ] || [ "$BUILD_CPU" = 1 ]; }; then BUILDING=1; fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
case "$BUILD" in /*) ;; *) BUILD="$PWD/$BUILD" ;; esac
SITE="$BUILD/site"; SRC_DIR="$BUILD/src"; CMAKE_DIR="$BUILD/cmake"; PAIRS="$BUILD/pairs"
BIN="$CMAKE_DIR/bin"  # llama.cpp puts its libraries and programs in <build>/bin
[ "$CPU" = 1 ] && PAIRS="$OUT/pairs"
LOG="$OUT/run.log"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1

T0=$SECONDS; PHASE=start; PHASE_T=$SECONDS; TIMINGS=()
phase() {
  [ "$PHASE" = start ] || TIMINGS+=("$(printf '%-30s %4ds' "$PHASE" $((SECONDS - PHASE_T)))")
  PHASE="$1"; PHASE_T=$SECONDS
  [ "$1" = done ] || echo "== [$(printf '%3d' $((SECONDS - T0)))s] $1"
}
trap 'echo "gpu-check: FAILED in phase \"$PHASE\" after $((SECONDS - T0))s (log: $LOG)"' ERR

# ---- what this machine has ---------------------------------------------------------------------
check_gpu_machine() {
  command -v nvidia-smi >/dev/null || die "nvidia-smi not found (--cpu runs without a GPU)"
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader
}

check_toolchain() {  # $1: cpu|cuda
  local tool
  for tool in cmake ninja; do command -v "$tool" >/dev/null || die "$tool not found"; done
  cmake --version | head -n 1
  if [ "$1" = cuda ]; then
    NVCC="$(command -v nvcc || echo "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")"
    [ -x "$NVCC" ] || die "nvcc not found (set CUDA_HOME)"
    "$NVCC" --version | tail -n 2
  fi
  [ -f "$SRC_TGZ" ] || die "no $SRC_TGZ: run packaging/gpu-check/prepare.sh where there is a network, then carry packaging/gpu-check/carry"
  ls "$CARRY"/wheels/*.whl >/dev/null 2>&1 || die "no wheels in $CARRY/wheels (run prepare.sh)"
  echo "carried: $(du -sh "$CARRY" | cut -f1) in $CARRY"
}

# ---- the build ---------------------------------------------------------------------------------
cuda_arch() {  # this GPU's compute capability, e.g. 90 (all GPUs of one kind assumed)
  local cap
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .' || true)"
  echo "${cap:-native}"
}

# cuBLAS and the driver library: in the CUDA toolkit, or (pip-assembled toolkits, as on machines
# whose CUDA comes with PyTorch) in the nvidia-cublas Python package next to PYTHON, or CUBLAS_DIR
# (a folder with include/cublas_v2.h and lib/libcublas.so.*). Prints extra CMake arguments; sets
# CUBLAS_LIB_DIR. Call it without a subshell.
CUBLAS_LIB_DIR=""
cuda_libs() {
  local toolkit inc="" lib sp d drv="" llp="${LD_LIBRARY_PATH:-}" candidates=()
  toolkit="$(dirname "$(dirname "$(readlink -f "$NVCC")")")"
  [ -f "$toolkit/include/cublas_v2.h" ] || toolkit="${CUDA_HOME:-/usr/local/cuda}"
  if [ ! -f "$toolkit/include/cublas_v2.h" ]; then
    for sp in $("$PY" -c 'import sys; print(" ".join(p for p in sys.path if p))'); do
      candidates+=("$sp"/nvidia/*/include)
    done
    for d in ${CUBLAS_DIR:+"$CUBLAS_DIR/include"} "${candidates[@]}"; do
      [ -f "$d/cublas_v2.h" ] && { inc="$d"; break; }
    done
    [ -n "$inc" ] || die "cuBLAS (cublas_v2.h) is neither in the CUDA toolkit nor in $PY's nvidia packages (set CUBLAS_DIR)"
    lib="$(dirname "$inc")/lib"
    mkdir -p "$BUILD/cuda-shim"  # unversioned names for CMake's find_library, versioned to run
    for d in "$lib"/libcublas.so.* "$lib"/libcublasLt.so.*; do
      ln -sf "$d" "$BUILD/cuda-shim/$(basename "$d")"
      ln -sf "$d" "$BUILD/cuda-shim/$(basename "$d" | sed 's/\.so\..*/.so/')"
    done
    echo "-DCUDA_cublas_LIBRARY=$BUILD/cuda-shim/libcublas.so"
    echo "-DCUDA_cublasLt_LIBRARY=$BUILD/cuda-shim/libcublasLt.so"
    echo "-DCMAKE_CUDA_FLAGS=-I$inc"
    CUBLAS_LIB_DIR="$lib"
    echo "cuBLAS from the Python package in $lib" >&2
  fi
  drv="$(ldconfig -p 2>/dev/null | awk '/libcuda\.so/ {print $NF; exit}' || true)"
  for d in ${llp//:/ } /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [ -n "$drv" ] && break
    drv="$(ls "$d"/libcuda.so* 2>/dev/null | head -n 1 || true)"
  done
  if [ -n "$drv" ]; then
    echo "-DCUDA_cuda_driver_LIBRARY=$drv"
  else
    echo "libcuda not found: building with GGML_CUDA_NO_VMM=ON" >&2
    echo "-DGGML_CUDA_NO_VMM=ON"
  fi
}

unpack_source() {  # again only when the carried tarball changed (ninja then rebuilds little)
  local stamp
  stamp="$(stat -c '%s %Y' "$SRC_TGZ")"
  if [ -f "$SRC_DIR/.stamp" ] && [ "$(cat "$SRC_DIR/.stamp")" = "$stamp" ]; then
    echo "source already unpacked in $SRC_DIR"
    return
  fi
  rm -rf "$SRC_DIR" "$CMAKE_DIR"; mkdir -p "$SRC_DIR"
  tar -xzf "$SRC_TGZ" -C "$SRC_DIR"
  mv "$SRC_DIR"/llama_cpp_python-* "$SRC_DIR/llama_cpp_python"
  echo "$stamp" > "$SRC_DIR/.stamp"
}

configure() {  # $1: cpu|cuda. The CMake project pip would build, plus the two native tools.
  local extra=()
  if [ "$1" = cuda ]; then
    cuda_libs > "$BUILD/cuda-args"
    mapfile -t extra < "$BUILD/cuda-args"
    extra+=("-DGGML_CUDA=on" "-DCMAKE_CUDA_ARCHITECTURES=$(cuda_arch)")
  fi
  echo "cmake ${extra[*]}"
  rm -f "$CMAKE_DIR/CMakeCache.txt"  # no option left over from an earlier configure
  cmake -S "$SRC_DIR/llama_cpp_python" -B "$CMAKE_DIR" -G Ninja -Wno-dev \
    -DCMAKE_BUILD_TYPE=Release -DGGML_CCACHE=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DSKBUILD_PLATLIB_DIR="$CMAKE_DIR/platlib" \
    -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$BIN" -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$BIN" \
    "${extra[@]}" > "$BUILD/cmake.log" 2>&1 || { tail -n 30 "$BUILD/cmake.log"; return 1; }
  grep -E "CUDA Toolkit found|CMAKE_CUDA_ARCHITECTURES|Including .* backend" "$BUILD/cmake.log" || true
}

compile() {
  ninja -C "$CMAKE_DIR" -j "$JOBS" llama ggml mtmd llama-speculative-simple llama-bench \
    | awk '/^\[[0-9]+\/[0-9]+\]/ { n++; last = $0; if (n % 20 == 0) { print; fflush() }; next }
           /FAILED|error:/ { print; fflush() }
           END { if (last != "") print last }'
}

install_python_side() {  # BUILD/site: the carried wheels, llama_cpp with the libraries built here
  local pip=("$PY" -m pip) version tag
  "$PY" -m pip --version >/dev/null 2>&1 || pip=("$PY" "$(ls "$CARRY"/wheels/pip-*.whl | head -n 1)/pip")
  tag="$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  if ls "$CARRY"/wheels/*.whl | grep -E -- '-cp3[0-9]+-cp3[0-9]+-' | grep -v -- "-$tag-$tag-" | grep -q .; then
    die "the carried wheels are not for $("$PY" --version 2>&1) ($tag): run fetch_wheels.sh with PYTHON_VERSION, or set PYTHON"
  fi
  rm -rf "$SITE"; mkdir -p "$SITE"
  # Exactly the carried wheels (resolved together for this Python), ahead of whatever versions
  # the machine has; numpy is the machine's own.
  "${pip[@]}" install -q --disable-pip-version-check --no-index --no-deps --no-compile \
    --target "$SITE" $(ls "$CARRY"/wheels/*.whl | grep -v '/pip-')
  cp -r "$SRC_DIR/llama_cpp_python/llama_cpp" "$SITE/llama_cpp"
  mkdir -p "$SITE/llama_cpp/lib"
  cp -P "$BIN"/lib*.so* "$SITE/llama_cpp/lib/"
  version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$SITE/llama_cpp/__init__.py")"
  mkdir -p "$SITE/llama_cpp_python-$version.dist-info"
  printf 'Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: %s\n' "$version" \
    > "$SITE/llama_cpp_python-$version.dist-info/METADATA"
  echo "specchat-gpu-check" > "$SITE/llama_cpp_python-$version.dist-info/INSTALLER"
  echo "$CUBLAS_LIB_DIR" > "$BUILD/cublas-lib-dir"
  echo "llama-cpp-python $version (built here) and $(ls "$CARRY"/wheels/*.whl | grep -vc '/pip-') wheels in $SITE"
}

build_all() {  # $1: cpu|cuda
  phase "unpack + configure ($1)"
  mkdir -p "$BUILD"
  unpack_source
  configure "$1"
  if [ "$CONFIGURE_ONLY" = 1 ]; then echo "configured in $CMAKE_DIR (--configure-only)"; exit 0; fi
  phase "compile ($1, $JOBS jobs)"
  compile
  phase "install the Python side"
  install_python_side
}

# ---- the machine, the build, the environment ---------------------------------------------------
phase "check the machine"
echo "mode: $([ "$CPU" = 1 ] && echo CPU || echo GPU), build tree $BUILD, $JOBS jobs"
echo "random weights are fine for timing: a pass costs what its shapes cost; the agreement is"
echo "dialled in by make-pair, not earned (the figures measure the engine on this machine)"
if [ "$CPU" = 0 ]; then
  echo "expected on 16 cores + one data-centre GPU (an estimate, not yet measured): compile 3-5"
  echo "min, Python side 20 s, pair (0.6 GB draft, two 5 GB targets) 1-2 min, bench 1-1.5 min per"
  echo "pair; under 9 min in all. If a run is cut short after the build, rerun with --skip-build."
  check_gpu_machine
fi
if [ "$CPU" = 1 ] && [ "$BUILDING" = 0 ]; then
  PY="${PYTHON:-}"
  if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
  fi
else
  PY="${PYTHON:-python3}"
fi
"$PY" --version
if [ "$BUILDING" = 1 ]; then
  KIND=cuda; [ "$CPU" = 1 ] && KIND=cpu
  check_toolchain "$KIND"
  build_all "$KIND"
elif [ "$SKIP_BUILD" = 1 ]; then
  [ -d "$SITE/llama_cpp/lib" ] || die "--skip-build: no built tree in $BUILD (run once without it)"
  CUBLAS_LIB_DIR="$(cat "$BUILD/cublas-lib-dir" 2>/dev/null || true)"
  echo "reusing the build in $BUILD"
fi
if [ -d "$SITE/llama_cpp/lib" ] && { [ "$CPU" = 0 ] || [ "$BUILD_CPU" = 1 ] || [ "$SKIP_BUILD" = 1 ]; }; then
  export PYTHONPATH="$SITE:$ROOT/app${PYTHONPATH:+:$PYTHONPATH}"
  export LD_LIBRARY_PATH="$SITE/llama_cpp/lib${CUBLAS_LIB_DIR:+:$CUBLAS_LIB_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else  # --cpu without a build: the llama_cpp installed for PYTHON
  export PYTHONPATH="$ROOT/app${PYTHONPATH:+:$PYTHONPATH}"
  "$PY" -c 'import llama_cpp, gguf' 2>/dev/null \
    || die "--cpu without --build uses the llama_cpp and gguf installed for $PY; install them (or add --build)"
fi
# llama-speculative-simple's closing statistics go through llama.cpp's asynchronous log, which
# drops messages logged while it flushes: on a busy machine about half the runs ended without the
# "decoded N tokens" line that specchat bench reads. The wrapper reruns such a run (3 tries);
# each try is a whole, separate measurement.
native_wrappers() {  # $1: folder with the real programs -> prints the folder to hand to the bench
  local wrap="$BUILD/native-wrap"
  mkdir -p "$wrap"
  ln -sf "$1/llama-bench" "$wrap/llama-bench"
  cat > "$wrap/llama-speculative-simple" <<WRAP
#!/usr/bin/env bash
tmp="\$(mktemp -d)"; trap 'rm -rf "\$tmp"' EXIT
for try in 1 2 3; do
  "$1/llama-speculative-simple" "\$@" > "\$tmp/out" 2> "\$tmp/err"; rc=\$?
  if [ \$rc -ne 0 ] || grep -aq "decoded .* tokens in" "\$tmp/err" "\$tmp/out"; then break; fi
  echo "llama-speculative-simple: no statistics printed (try \$try of 3)" >> "$LOG"
done
cat "\$tmp/out"; cat "\$tmp/err" >&2; exit \$rc
WRAP
  chmod +x "$wrap/llama-speculative-simple"
  echo "$wrap"
}
if [ "$NATIVE" = 1 ] && [ -z "$NATIVE_BIN" ]; then
  if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-speculative-simple" ]; then
    NATIVE_BIN="$BIN"
  else
    echo "native peer skipped: no llama-bench and llama-speculative-simple in $BIN"
    NATIVE=0
  fi
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
SPECCHAT=("$PY" -m specchat)

phase "doctor"
"${SPECCHAT[@]}" doctor > "$OUT/doctor.txt"
sed -n '1,/^memory/p' "$OUT/doctor.txt"
if grep -q "cannot load llama_cpp" "$OUT/doctor.txt"; then
  die "$(grep "cannot load llama_cpp" "$OUT/doctor.txt" | sed 's/^llama.cpp *//')"
fi
if [ "$CPU" = 0 ] && ! grep -q "GPU seen yes" "$OUT/doctor.txt"; then
  die "the llama.cpp build sees no GPU (see $OUT/doctor.txt)"
fi

# ---- the synthetic pair ------------------------------------------------------------------------
phase "synthetic draft + 2 targets"
mkdir -p "$PAIRS"
DRAFT="$PAIRS/draft-${WIDTH}x${DEPTH}-${WTYPE}.gguf"
"$PY" -m specchat.bench.synthetic "$DRAFT" --force --width "$WIDTH" --depth "$DEPTH" \
  --heads "$HEADS" --kv-heads "$KV_HEADS" --ff "$FF" --vocab "$VOCAB" --type "$WTYPE"
THREADS=(--threads "$(nproc 2>/dev/null || echo 4)")
# make-pair calibrates on CPU; no agreement check here: the bench measures what each pair gets.
"${SPECCHAT[@]}" bench make-pair "$DRAFT" "$PAIRS/target-a1.gguf" --force --no-check \
  --cost "$COST" --agreement 1.0
"${SPECCHAT[@]}" bench make-pair "$DRAFT" "$PAIRS/target-a08.gguf" --force --no-check \
  --cost "$COST" --agreement 0.8 --calib-tokens 24 "${THREADS[@]}"
ls -l "$PAIRS"/*.gguf | awk '{printf "  %9.1f MB  %s\n", $5 / 1e6, $NF}'

# ---- the bench on both pairs -------------------------------------------------------------------
BENCH_ARGS=(--draft "$DRAFT" --n-gpu-layers "$NGL" --offline --json --rounds "$ROUNDS"
            --max-tokens "$MAX_TOKENS" --draft-lengths "$DRAFT_LENGTHS" --prompt-set "$PROMPT_SET")
[ "$CPU" = 1 ] && BENCH_ARGS+=(--physics-reps 1 "${THREADS[@]}")
if [ "$NATIVE" = 1 ]; then
  mkdir -p "$BUILD"
  BENCH_ARGS+=(--llama-cpp-bin "$(native_wrappers "$NATIVE_BIN")")
  echo "native peer: $NATIVE_BIN"
fi
summarize() {
  "$PY" - "$1" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
def med(s): return None if not s else s["median"]
def fmt(v, f): return "-" if v is None else format(v, f)
print(f"  {'mode':<30} {'tok/s':>8} {'speedup':>8} {'accept':>7} {'predicted':>9} {'identical':>9}")
for m in doc["modes"]:
    ident = f"{m['identical']}/{m['compared']}" if m["compared"] else "-"
    print(f"  {m['mode']:<30} {fmt(med(m['tokens_per_second']), '8.1f')} "
          f"{fmt(med(m['speedup']), '8.2f')} {fmt(m['acceptance_rate'], '7.2f')} "
          f"{fmt(m['predicted_speedup'], '9.2f')} {ident:>9}")
p = doc.get("physics") or {}
if p:
    print(f"  physics: target {p['target_token_ms']:.3f} ms/token, draft "
          f"{p['draft_token_ms']:.3f} ms/token, c = {p['c']:.3f}")
EOF
}
: > "$OUT/summary.txt"
for pair in a1 a08; do
  label="agreement 1.0"; [ "$pair" = a08 ] && label="agreement ~0.8"
  phase "bench: $label"
  "${SPECCHAT[@]}" bench --target "$PAIRS/target-$pair.gguf" "${BENCH_ARGS[@]}" \
    --plot "$OUT/bench-$pair.png" > "$OUT/bench-$pair.json"
  { echo "pair $label (target cost ${COST}x the draft's, $(basename "$DRAFT"))"
    summarize "$OUT/bench-$pair.json"; } | tee -a "$OUT/summary.txt"
done
phase done
{ echo "phase timings"; printf '  %s\n' "${TIMINGS[@]}"; echo "  total $((SECONDS - T0))s"; } \
  | tee -a "$OUT/summary.txt"
echo "results in $OUT: bench-a1.json, bench-a08.json, their .png plots, summary.txt, doctor.txt, run.log"
