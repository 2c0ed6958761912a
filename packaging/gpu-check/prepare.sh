#!/usr/bin/env bash
# Prepare what the offline GPU check carries: the trimmed llama-cpp-python source and the wheels,
# in packaging/gpu-check/carry/ (ignored by git). Needs a network; run it once here, then carry
# that folder with the working tree (64 MiB in all) and run packaging/gpu-check/run.sh there.
#
#   packaging/gpu-check/prepare.sh [--force]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CARRY="$HERE/carry"
LIMIT_MIB=64
[ "${1:-}" = --force ] && rm -rf "$CARRY"
mkdir -p "$CARRY"
[ -f "$CARRY/llama-cpp-python-src.tar.gz" ] || bash "$HERE/trim_sdist.sh"
ls "$CARRY"/wheels/*.whl >/dev/null 2>&1 || bash "$HERE/fetch_wheels.sh" "$CARRY/wheels"

carry_kib="$(du -sk "$CARRY" | cut -f1)"
# the rest of the working tree: tracked and untracked files that git does not ignore
tree_kib="$(cd "$ROOT" && git ls-files -co --exclude-standard -z | du -ck --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)"
total_kib=$((carry_kib + tree_kib))
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo "carried: source $(du -h "$CARRY/llama-cpp-python-src.tar.gz" | cut -f1) +" \
  "wheels $(du -sh "$CARRY/wheels" | cut -f1) = $(mib "$carry_kib") MiB;" \
  "working tree $(mib "$tree_kib") MiB; total $(mib "$total_kib") of $LIMIT_MIB MiB"
if [ "$total_kib" -ge $((LIMIT_MIB * 1024)) ]; then
  echo "prepare.sh: over the $LIMIT_MIB MiB limit" >&2
  exit 1
fi
