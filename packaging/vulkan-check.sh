#!/usr/bin/env bash
# The GPU path for real without a GPU: llama.cpp's Vulkan backend on Mesa's lavapipe (a conformant
# Vulkan device that computes on the CPU), with the real models: offload (full, partial, "auto"
# under a memory budget) checked against llama.cpp's own load log, speculative output against the
# target alone, the failure cases, doctor and bench.
#
#   bash packaging/vulkan-check.sh [--build-only | --numerics] [PYTEST ARGS...]
#
# The first run builds llama-cpp-python with -DGGML_VULKAN=on (about 10 minutes on 2 cores; the
# same cached build install.sh --backend vulkan uses, under
# ${SPECCHAT_CACHE_DIR:-~/.cache/specchat}/llama-cpp-python/) and a venv for it
# (.../vulkan-check/); later runs start at once. On Debian/Ubuntu as root it installs what it needs
# (glslc, spirv-headers, libvulkan-dev, mesa-vulkan-drivers) and fetches Vulkan headers new enough
# (Debian 13's) when the system's are older than llama.cpp needs; elsewhere it says what is
# missing. The tests (pytest -m vulkan, tests/vulkan) print short outputs: lavapipe is slow.
# --numerics then prints how Vulkan's logits compare with the CPU's and across batch sizes
# (tests/vulkan/numerics.py on SmolLM2-135M and Qwen2.5-Coder-0.5B; a few more minutes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ME="vulkan-check.sh"
PYTHON="${PYTHON:-python3}"
BUILD_ONLY=0; NUMERICS=0
case "${1:-}" in
  --build-only) BUILD_ONLY=1; shift ;;
  --numerics) NUMERICS=1; shift ;;
  -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

# shellcheck source=lib/llama-build.bash
. "$ROOT/packaging/lib/llama-build.bash"
T0=$SECONDS

lavapipe_present() {  # Mesa's Vulkan driver for the CPU (its ICD file)
  compgen -G "/usr/share/vulkan/icd.d/lvp_icd*.json" >/dev/null \
    || compgen -G "/etc/vulkan/icd.d/lvp_icd*.json" >/dev/null
}

if ! lavapipe_present; then
  if ! install_vulkan_packages mesa-vulkan-drivers; then
    echo "$ME: Mesa's lavapipe Vulkan driver is missing: install mesa-vulkan-drivers" \
         "(Debian/Ubuntu; Fedora mesa-vulkan-drivers, Arch vulkan-swrast)" >&2
    exit 1
  fi
fi
MISSING="$(prepare_vulkan 0)"
if [ -n "$MISSING" ]; then
  one_paragraph "$ME: cannot build llama.cpp's Vulkan backend here: it needs " <<<"$MISSING" >&2
  exit 1
fi

ARGS="$(CMAKE_ARGS="" full_cmake_args vulkan)"
if ! build_wheel vulkan "$ARGS"; then
  echo "$ME: the Vulkan build failed: $BUILD_FAILURE (full log: $BUILD_LOG)" >&2
  exit 1
fi
WHEELS="$BUILT_DIR"
echo "Vulkan build: $WHEELS ($(ls "$WHEELS"/llama_cpp_python-*.whl | xargs -n 1 basename))"

# A venv with that build and specchat's dependencies; the tests import specchat from this checkout.
VENV="$LLAMA_CACHE/vulkan-check/venv-$(basename "$WHEELS")"
STAMP="$VENV/.pyproject-$(cksum < "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ]; then
  echo "making the check's venv: $VENV (once)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  printf 'llama-cpp-python==%s\n' "$LLAMA_VERSION" > "$WHEELS/constraints.txt"
  PIP_FIND_LINKS="$WHEELS" PIP_CONSTRAINT="$WHEELS/constraints.txt" \
    "$VENV/bin/pip" install -q --disable-pip-version-check "$ROOT[dev]"
  touch "$STAMP"
fi
echo "ready in $((SECONDS - T0)) s"
[ "$BUILD_ONLY" = 1 ] && exit 0

# llama.cpp skips CPU-type Vulkan devices unless GGML_VK_VISIBLE_DEVICES names them.
export GGML_VK_VISIBLE_DEVICES="${GGML_VK_VISIBLE_DEVICES:-0}"
export SPECCHAT_REQUIRE_VULKAN=1  # a build or device that is not there fails the tests
export PYTHONPATH="$ROOT/app${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT"
T1=$SECONDS
set +e
"$VENV/bin/python" -m pytest -m vulkan tests/vulkan -p no:cacheprovider -q "$@"
RC=$?
set -e
echo "vulkan tests: $((SECONDS - T1)) s (exit $RC)"
if [ "$NUMERICS" = 1 ]; then
  MODELS="$("$VENV/bin/python" -c 'from specchat.config.registry import load_registry
from specchat.sources import resolve_model
demo = load_registry().get("demo")
print(resolve_model(demo.draft, progress=False), resolve_model(demo.target, progress=False))')"
  # shellcheck disable=SC2086
  "$VENV/bin/python" tests/vulkan/numerics.py $MODELS
fi
echo "whole check: $((SECONDS - T0)) s"
exit "$RC"
