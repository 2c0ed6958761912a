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

# shellcheck source=packaging/lib/llama-programs.bash
. "$HERE/lib/llama-programs.bash"  # PY, VERSION resolution, fetch_source, build_once ...

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

build_once ggml-rpc-server:rpc-server
if [ "$BUILD_ONLY" = 1 ]; then echo "$BIN"; exit 0; fi
REACHABLE=0; REACH="$(check_host)" || REACHABLE=$?
warn_if_exposed "$REACH"
[ "$REACHABLE" = 0 ] || exit 1
ARGS=(-H "$HOST" -p "$PORT")
[ -n "$THREADS" ] && ARGS+=(-t "$THREADS")
[ "$USE_CACHE" = 1 ] && ARGS+=(-c)
echo "rpc-server $VERSION ($KIND) on $HOST:$PORT; clients: specchat ... --rpc <this machine>:$PORT" >&2
exec "$BIN" "${ARGS[@]}"
