#!/usr/bin/env bash
# Fetch the wheels the offline GPU machine needs to run specchat (Python 3.12, manylinux x86_64).
#
#   packaging/gpu-check/fetch_wheels.sh [DEST]      (default DEST: packaging/gpu-check/carry/wheels)
#
# The list comes from pyproject.toml: specchat's dependencies without llama-cpp-python (built
# there from source by run.sh), llama-cpp-python's own runtime dependencies, `gguf` (to write the
# synthetic pair) and matplotlib (the `plot` extra), plus pip itself (run.sh runs pip from its
# wheel, so the machine needs no pip of its own). Only binary wheels; nothing is installed here.
# numpy is left out (the GPU machine has it; its wheel alone is 16 MB): KEEP_NUMPY=1 keeps it.
# PYTHON_VERSION (3.12) and PLATFORMS (manylinux_2_28_x86_64 manylinux2014_x86_64) override.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DEST="${1:-$HERE/carry/wheels}"
PY="${PY:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
PYTHON_VERSION="${PYTHON_VERSION:-3.12}"
PLATFORMS="${PLATFORMS:-manylinux_2_28_x86_64 manylinux2014_x86_64}"
# llama-cpp-python's runtime dependencies (its pyproject.toml [project] dependencies).
LLAMA_DEPS=("typing-extensions>=4.5.0" "numpy>=1.20.0" "diskcache>=5.6.1" "jinja2>=2.11.3")

mkdir -p "$DEST"
mapfile -t REQS < <("$PY" - "$ROOT/pyproject.toml" <<'EOF'
import re, sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
extras = project["optional-dependencies"]
wanted = [*project["dependencies"], *extras["plot"],
          *[r for r in extras["dev"] if re.match(r"gguf\b", r)]]
for req in wanted:
    if not re.match(r"llama[-_]cpp[-_]python\b", req, re.I):
        print(req)
EOF
)
PLATFORM_ARGS=()
for p in $PLATFORMS; do PLATFORM_ARGS+=(--platform "$p"); done
echo "fetching wheels for Python $PYTHON_VERSION ($PLATFORMS) into $DEST"
"$PY" -m pip download --quiet --disable-pip-version-check --only-binary :all: \
  --python-version "$PYTHON_VERSION" --implementation cp "${PLATFORM_ARGS[@]}" \
  -d "$DEST" pip "${REQS[@]}" "${LLAMA_DEPS[@]}"
[ "${KEEP_NUMPY:-0}" = 1 ] || rm -f "$DEST"/numpy-*.whl
printf '%s\n' "${REQS[@]}" "${LLAMA_DEPS[@]}" > "$DEST/requirements.txt"
echo "wheels: $(find "$DEST" -name '*.whl' | wc -l) files, $(du -sh "$DEST" | cut -f1)"
