#!/usr/bin/env bash
# How speculation's speedup grows with network latency when the target runs on llama.cpp's
# rpc-server: one machine, the server on loopback behind a relay that adds a fixed delay to every
# message each way (specchat.bench.relay), `specchat bench` side by side at each delay.
#
#   bash packaging/rpc-latency.sh [--delays 0,2,10] [--max-tokens 48] [--rounds 1] [--out DIR]
#                                 [--target GGUF] [--draft GGUF] [--prompt-set edit]
#                                 [--server-threads N] [-- more specchat bench arguments]
#
# Default target: Qwen2.5-Coder-0.5B (the demo pair's target, fetched into specchat's cache when
# missing); default drafting: --lookup (the suffix drafter, no draft model) on the code-edit
# prompts, where it drafts well. --draft GGUF times a local draft model instead (bench's fixed
# lengths, adaptive and chain modes; what the README shows: `--draft SmolLM2-135M-Instruct.Q4_1.gguf
# -- --cross-vocab --draft-lengths 4 --no-lookup`). Needs llama-cpp-python built with RPC
# (packaging/install.sh or the README's commands); builds rpc-server on first use
# (packaging/rpc-server.sh, cached). Writes DIR/bench-<D>ms.json, DIR/relay-<D>ms.log and
# DIR/summary.txt (the table printed at the end); DIR defaults to a new folder in /tmp.
# ~3 min on a 2-core CPU with the defaults, 6 min with --max-tokens 64 --rounds 2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ME="rpc-latency.sh"
DELAYS="0,2,10"; MAX_TOKENS=48; ROUNDS=1; OUT=""; TARGET=""; PROMPT_SET=edit; SERVER_THREADS=""
DRAFTING=(--lookup); DRAFT=""
BENCH_EXTRA=()
bad() { echo "$ME: $*" >&2; exit 2; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || bad "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --delays|--max-tokens|--rounds|--out|--target|--draft|--prompt-set|--server-threads)
      need_value "$@" ;;
  esac
  case "$1" in
    --delays) DELAYS="$2"; shift 2 ;;
    --max-tokens) MAX_TOKENS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --target) TARGET="$2"; shift 2 ;;
    --prompt-set) PROMPT_SET="$2"; shift 2 ;;
    --server-threads) SERVER_THREADS="$2"; shift 2 ;;
    --draft) DRAFT="$2"; DRAFTING=(--draft "$2"); shift 2 ;;
    --) shift; BENCH_EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) bad "unknown option '$1' (see --help)" ;;
  esac
done
is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
is_uint "$MAX_TOKENS" && [ "$MAX_TOKENS" -ge 1 ] || bad "--max-tokens must be a positive number"
is_uint "$ROUNDS" && [ "$ROUNDS" -ge 1 ] || bad "--rounds must be a positive number"
[ -z "$SERVER_THREADS" ] || is_uint "$SERVER_THREADS" || bad "--server-threads must be a number"
IFS=, read -r -a DELAY_LIST <<< "$DELAYS"
for d in "${DELAY_LIST[@]}"; do
  [[ "$d" =~ ^[0-9]+(\.[0-9]+)?$ ]] || bad "--delays takes milliseconds like 0,2,10, not '$DELAYS'"
done
[ -z "$TARGET" ] || [ -f "$TARGET" ] || bad "--target $TARGET: no such file"
[ -z "$DRAFT" ] || [ -f "$DRAFT" ] || bad "--draft $DRAFT: no such file"

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export PYTHONPATH="$ROOT/app${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-${TMPDIR:-/tmp}/specchat-rpc-latency-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_port PORT PID: until 127.0.0.1:PORT accepts a connection (or PID exits)
wait_port() {
  local i
  for i in $(seq 1 300); do
    kill -0 "$2" 2>/dev/null || return 1
    "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
      "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

if [ -z "$TARGET" ]; then
  TARGET="$("$PY" - <<'EOF'
from specchat.config.registry import load_registry
from specchat.sources import resolve_model
print(resolve_model(load_registry(None).get("demo").target, progress=False))
EOF
)"
fi
BIN="$(bash "$HERE/rpc-server.sh" --build-only | tail -n 1)"
SPORT="$(free_port)"
"$BIN" -H 127.0.0.1 -p "$SPORT" ${SERVER_THREADS:+-t "$SERVER_THREADS"} > "$OUT/rpc-server.log" 2>&1 &
SERVER_PID=$!; PIDS+=("$SERVER_PID")
wait_port "$SPORT" "$SERVER_PID" || { cat "$OUT/rpc-server.log" >&2; echo "$ME: rpc-server did not start" >&2; exit 1; }
echo "rpc-server on 127.0.0.1:$SPORT ($BIN); target $(basename "$TARGET"); out: $OUT"

for d in "${DELAY_LIST[@]}"; do
  RPORT="$(free_port)"
  "$PY" -m specchat.bench.relay --listen "127.0.0.1:$RPORT" --to "127.0.0.1:$SPORT" \
    --delay-ms "$d" 2> "$OUT/relay-${d}ms.log" &
  RELAY_PID=$!; PIDS+=("$RELAY_PID")
  wait_port "$RPORT" "$RELAY_PID" || { cat "$OUT/relay-${d}ms.log" >&2; exit 1; }
  echo "== +$d ms per message each way: specchat bench (target alone vs ${DRAFT:+draft }${DRAFTING[*]})"
  t0=$SECONDS
  "$PY" -m specchat bench --target "$TARGET" "${DRAFTING[@]}" --rpc "127.0.0.1:$RPORT" --offline \
    --prompt-set "$PROMPT_SET" --max-tokens "$MAX_TOKENS" --rounds "$ROUNDS" --physics-reps 1 \
    --json "${BENCH_EXTRA[@]}" > "$OUT/bench-${d}ms.json" 2> "$OUT/bench-${d}ms.log" \
    || { tail -n 20 "$OUT/bench-${d}ms.log" >&2; echo "$ME: bench failed at $d ms" >&2; exit 1; }
  echo "   $((SECONDS - t0)) s"
  kill -TERM "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true
done

"$PY" - "$OUT" "${DELAY_LIST[@]}" <<'EOF' | tee "$OUT/summary.txt"
import json, re, sys
from pathlib import Path
out, delays = Path(sys.argv[1]), sys.argv[2:]
def med(s):
    return None if not s else s["median"]
def fmt(v, f):
    return "-" if v is None else format(v, f)
rows = []
for d in delays:
    doc = json.loads((out / f"bench-{d}ms.json").read_text())
    relay = (out / f"relay-{d}ms.log").read_text()
    m = re.search(r"to server (\d+) messages", relay)
    base = next(x for x in doc["modes"] if x["mode"] == "target")
    for x in doc["modes"]:
        ident = f"{x['identical']}/{x['compared']}" if x.get("compared") else "-"
        rows.append((d, x["mode"], med(x["tokens_per_second"]), x["speedup"],
                     x.get("acceptance_rate"), x.get("tokens_per_pass"), ident))
    print(f"+{d} ms: relay carried {m.group(1) if m else '?'} messages to the server; "
          f"target alone {fmt(med(base['tokens_per_second']), '.1f')} tok/s", file=sys.stderr)
print(f"{'delay/msg':>9}  {'mode':<12} {'tok/s':>7} {'speedup (range)':>19} {'accept':>7} "
      f"{'tok/pass':>8} {'identical':>9}")
for d, mode, tps, sp, acc, tpp, ident in rows:
    spread = "-" if not sp else f"{sp['median']:.2f}x ({sp['min']:.2f}-{sp['max']:.2f})"
    print(f"{d + ' ms':>9}  {mode:<12} {fmt(tps, '7.1f')} {spread:>19} {fmt(acc, '7.2f')} "
          f"{fmt(tpp, '8.2f')} {ident:>9}")
EOF
