#!/usr/bin/env bash
# Run llama.cpp's RPC server on a helper machine, so that `specchat --rpc HOST:PORT` can place the
# target's layers on it (the draft stays on the client).
#
#   bash packaging/rpc-server.sh --host H --port P [--threads N] [--cache] [--build-only]
#
# The first run builds `rpc-server` (llama.cpp's ggml-rpc-server) from the llama-cpp-python source
# of the version specchat runs (a few minutes, once) and caches the program under
# ${SPECCHAT_CACHE_DIR:-~/.cache/specchat}/rpc-server/<version>-<backend>/; later runs start at once.
# Needs Python and a C++ compiler (cmake: the system's, else the PyPI wheel, cached); the source
# is fetched with pip the first time (then cached: later builds work offline).
#
# Options:
#   --host H          address to listen on (127.0.0.1: this machine only; 0.0.0.0: every network)
#   --port P          TCP port (e.g. 50052)
#   --threads N       CPU threads of the server (default: llama.cpp's choice)
#   --cache           let the server keep received tensors in a local file cache (faster reloads)
#   --build-only      build (or find) the program, print its path and exit
#   --backend B       auto (default), cpu, cuda, metal or vulkan: what the server computes on
#   --version X       llama-cpp-python version (default: the one installed for specchat here, else
#                     the one specchat is tested with; match the client's: `specchat doctor`)
#   --sdist PATH      llama-cpp-python source (.tar.gz or unpacked folder) instead of pip download
# Security: llama.cpp's RPC protocol has no authentication; run it on trusted networks only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ME="rpc-server.sh"
HOST=""; PORT=""; THREADS=""; USE_CACHE=0; BUILD_ONLY=0; BACKEND=auto
VERSION="${LLAMA_CPP_VERSION:-}"; SDIST=""
CACHE="${SPECCHAT_CACHE_DIR:-$HOME/.cache/specchat}/rpc-server"
TESTED_VERSION=0.3.36  # the llama-cpp-python specchat is tested with (RPC protocol 7.0.0)

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }
bad() { echo "$ME: $*" >&2; exit 2; }
fail() { echo "$ME: $*" >&2; exit 1; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || bad "$1 needs a value (see --help)"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --host|--port|--threads|--backend|--version|--sdist) need_value "$@" ;;
  esac
  case "$1" in
    --host) HOST="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --backend) BACKEND="$2"; shift 2 ;;
    --version) VERSION="$2"; shift 2 ;;
    --sdist) SDIST="$2"; shift 2 ;;
    --cache) USE_CACHE=1; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) bad "unknown option '$1' (see --help)" ;;
  esac
done

is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
if [ "$BUILD_ONLY" = 0 ]; then
  [ -n "$HOST" ] || bad "--host is required (127.0.0.1 for this machine, 0.0.0.0 for every network)"
  [ -n "$PORT" ] || bad "--port is required (e.g. --port 50052)"
fi
case "$HOST" in *[[:space:]]*|-*) bad "--host '$HOST' is not an address" ;; esac
if [ -n "$PORT" ]; then
  is_uint "$PORT" && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] \
    || bad "--port must be a number from 1 to 65535, not '$PORT'"
fi
if [ -n "$THREADS" ]; then
  is_uint "$THREADS" && [ "$THREADS" -ge 1 ] && [ "$THREADS" -le 4096 ] \
    || bad "--threads must be a positive number, not '$THREADS'"
fi
case "$BACKEND" in auto|cpu|cuda|metal|vulkan) ;; *)
  bad "unknown --backend '$BACKEND' (auto, cpu, cuda, metal, vulkan)" ;; esac
if [ -n "$SDIST" ] && [ ! -e "$SDIST" ]; then bad "--sdist $SDIST: no such file or folder"; fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
command -v "$PY" >/dev/null 2>&1 || fail "$PY not found: Python 3 is needed (set PYTHON)"
have() { command -v "$1" >/dev/null 2>&1; }

installed_version() {
  "$PY" -c 'from importlib.metadata import version; print(version("llama-cpp-python"))' 2>/dev/null
}

sdist_version() {  # the version of an unpacked or packed sdist, from its folder name
  basename "$1" | sed -n 's/^llama_cpp_python-\([0-9][0-9A-Za-z.+-]*[0-9A-Za-z]\)\(\.tar\.gz\)\{0,1\}$/\1/p'
}

detect_backend() {
  if [ "$(uname -s)" = Darwin ] && [ "$(uname -m)" = arm64 ]; then echo metal; return; fi
  if have nvidia-smi && { have nvcc || [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; }; then
    echo cuda; return
  fi
  echo cpu
}

backend_flags() {
  case "$1" in
    cpu) echo "-DGGML_METAL=OFF" ;;
    cuda) echo "-DGGML_CUDA=ON" ;;
    metal) echo "-DGGML_METAL=ON" ;;
    vulkan) echo "-DGGML_VULKAN=ON" ;;
  esac
}

# fetch_source DEST: unpack llama.cpp (the sdist's vendor/llama.cpp) into DEST/llama.cpp
fetch_source() {
  local dest="$1" tgz="$CACHE/src/llama_cpp_python-$VERSION.tar.gz" dl
  if [ -n "$SDIST" ] && [ -d "$SDIST" ]; then
    [ -f "$SDIST/vendor/llama.cpp/CMakeLists.txt" ] || fail "--sdist $SDIST has no vendor/llama.cpp"
    cp -r "$SDIST/vendor/llama.cpp" "$dest/llama.cpp"
    return
  fi
  [ -n "$SDIST" ] && tgz="$SDIST"
  if [ ! -f "$tgz" ]; then
    echo "downloading the llama-cpp-python $VERSION source (once)"
    mkdir -p "$CACHE/src"; dl="$(mktemp -d "$CACHE/src/dl.XXXXXX")"
    if ! "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        "llama-cpp-python==$VERSION" -d "$dl" > "$dl/pip.log" 2>&1; then
      tail -n 5 "$dl/pip.log" >&2; rm -rf "$dl"
      fail "cannot download the llama-cpp-python $VERSION source (offline? pass --sdist FILE)"
    fi
    mv "$dl"/llama_cpp_python-*.tar.gz "$tgz"; rm -rf "$dl"
  fi
  tar -xzf "$tgz" -C "$dest" --wildcards '*/vendor/llama.cpp/*' \
    || fail "cannot unpack $tgz (a llama-cpp-python sdist?)"
  mv "$dest"/llama_cpp_python-*/vendor/llama.cpp "$dest/llama.cpp"
}

# ensure_cmake: cmake (and ninja) on PATH; without a system one, the PyPI wheels in a small venv
# of their own in the cache (what pip's own build of llama-cpp-python uses), made once
ensure_cmake() {
  have cmake && return
  local tools="$CACHE/tools"
  if [ ! -x "$tools/bin/cmake" ]; then
    echo "cmake not found: installing cmake and ninja from the package index into $tools (once)"
    { "$PY" -m venv "$tools" && "$tools/bin/python" -m pip install --quiet \
        --disable-pip-version-check cmake ninja; } > "$CACHE/tools.log" 2>&1 \
      || { tail -n 5 "$CACHE/tools.log" >&2; rm -rf "$tools"
           fail "cmake not found and cannot be installed (offline?): install cmake, then rerun"; }
  fi
  PATH="$tools/bin:$PATH"
}

build() {  # build BIN for VERSION and KIND; the log stays next to it
  local work log t0=$SECONDS gen=() jobs
  ensure_cmake
  have c++ || have g++ || have clang++ || fail "no C++ compiler found (install g++ or clang++)"
  mkdir -p "$CACHE"; work="$(mktemp -d "$CACHE/build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  log="$CACHE/build-$VERSION-$KIND.log"
  echo "building llama.cpp's rpc-server from llama-cpp-python $VERSION for $KIND:" \
       "a few minutes, once (log: $log)"
  fetch_source "$work"
  have ninja && gen=(-G Ninja)
  jobs="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)}"
  # shellcheck disable=SC2046
  if ! { cmake -S "$work/llama.cpp" -B "$work/build" "${gen[@]}" -Wno-dev \
           -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_RPC=ON -DGGML_NATIVE=ON \
           -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=OFF -DLLAMA_BUILD_TESTS=OFF \
           -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON \
           $(backend_flags "$KIND") \
         && cmake --build "$work/build" --config Release --target ggml-rpc-server -j "$jobs"; \
       } > "$log" 2>&1; then
    tail -n 20 "$log" >&2
    fail "the build failed (full log: $log)"
  fi
  local built
  built="$(find "$work/build" -type f -name ggml-rpc-server -perm -u+x | head -n 1)"
  [ -n "$built" ] || fail "the build made no ggml-rpc-server (log: $log)"
  mkdir -p "$BIN_DIR"
  cp "$built" "$BIN.part" && mv "$BIN.part" "$BIN"
  rm -rf "$work"; trap - EXIT
  echo "built in $((SECONDS - t0)) s: $BIN"
}

# The build is serialized between concurrent runs (tests, CI) with a lock when flock exists.
build_once() {
  [ -x "$BIN" ] && return
  mkdir -p "$CACHE"
  if have flock; then
    exec 9> "$CACHE/.lock"
    flock 9
    [ -x "$BIN" ] || build
    flock -u 9; exec 9>&-
  else
    build
  fi
}

# check_host: prints loopback, private, all or public for --host, then fails if HOST:PORT cannot
# be bound (llama.cpp's server reports a failed bind but exits 0).
check_host() {
  "$PY" - "$HOST" "$PORT" <<'EOF'
import ipaddress, socket, sys
host, port = sys.argv[1].strip("[]"), int(sys.argv[2])
try:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
except OSError as exc:
    sys.exit(f"rpc-server.sh: cannot resolve --host {host}: {exc.strerror or exc}")
ips = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
if any(ip.is_unspecified for ip in ips):
    print("all")
elif all(ip.is_loopback for ip in ips):
    print("loopback")
elif all(ip.is_private or ip.is_link_local for ip in ips):
    print("private")
else:
    print("public")
sys.stdout.flush()
family, _, _, _, addr = infos[0]
try:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
except OSError as exc:
    sys.exit(f"rpc-server.sh: cannot listen on {host}:{port}: {exc.strerror or exc}")
EOF
}

warn_if_exposed() {  # $1: what check_host said. The RPC protocol has no authentication.
  case "$1" in
    loopback|"") ;;
    private) echo "$ME: note: anyone on this private network can use the server" \
                  "(llama.cpp's RPC protocol has no authentication)" >&2 ;;
    all) echo "$ME: WARNING: --host $HOST listens on every network interface and llama.cpp's" \
              "RPC protocol has no authentication: use it on trusted networks only (a firewall" \
              "limiting port $PORT to the client machine helps)" >&2 ;;
    *) echo "$ME: WARNING: $HOST is not a loopback or private address and llama.cpp's RPC" \
            "protocol has no authentication: anyone who reaches port $PORT can use this" \
            "machine's devices and memory. Use trusted networks only." >&2 ;;
  esac
}

if [ -z "$VERSION" ] && [ -n "$SDIST" ]; then VERSION="$(sdist_version "$SDIST")"; fi
[ -n "$VERSION" ] || VERSION="$(installed_version || true)"
if [ -z "$VERSION" ]; then
  VERSION="$TESTED_VERSION"
  [ -x "$CACHE/$VERSION-${BACKEND/auto/$(detect_backend)}/rpc-server" ] \
    || echo "$ME: llama-cpp-python is not installed here: using $VERSION, the version specchat is" \
            "tested with (--version X to match the client's; \`specchat doctor\` there shows it)" >&2
fi
case "$VERSION" in *[!0-9A-Za-z.+-]*) bad "--version '$VERSION' is not a version number" ;; esac
KIND="$BACKEND"; [ "$KIND" = auto ] && KIND="$(detect_backend)"
BIN_DIR="$CACHE/$VERSION-$KIND"
BIN="$BIN_DIR/rpc-server"

build_once
if [ "$BUILD_ONLY" = 1 ]; then echo "$BIN"; exit 0; fi
REACHABLE=0; REACH="$(check_host)" || REACHABLE=$?
warn_if_exposed "$REACH"
[ "$REACHABLE" = 0 ] || exit 1
ARGS=(-H "$HOST" -p "$PORT")
[ -n "$THREADS" ] && ARGS+=(-t "$THREADS")
[ "$USE_CACHE" = 1 ] && ARGS+=(-c)
echo "rpc-server $VERSION ($KIND) on $HOST:$PORT; clients: specchat ... --rpc <this machine>:$PORT" >&2
exec "$BIN" "${ARGS[@]}"
