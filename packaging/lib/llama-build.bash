# llama-cpp-python builds for one accelerator backend, for install.sh and vulkan-check.sh (sourced).
#
# What a backend's build needs is checked before it is chosen (tools, headers, their versions), a
# Vulkan build gets what it can installed (Debian/Ubuntu packages as root; newer Vulkan headers
# from Debian's next release, extracted into the cache), and each wheel is built once and cached:
#   ${SPECCHAT_CACHE_DIR:-~/.cache/specchat}/llama-cpp-python/<version>-<backend>-<CMAKE_ARGS sum>/
# Callers set PYTHON (an interpreter with venv) and may set LLAMA_CPP_VERSION and CMAKE_ARGS.

# shellcheck shell=bash
LLAMA_CACHE="${SPECCHAT_CACHE_DIR:-$HOME/.cache/specchat}"
LLAMA_TESTED_VERSION=0.3.36  # the llama-cpp-python specchat is tested with
LLAMA_VERSION="${LLAMA_CPP_VERSION:-$LLAMA_TESTED_VERSION}"
# The newest Vulkan API that llama-cpp-python 0.3.36's Vulkan backend uses without a version
# guard is VK_EXT_layer_settings (vk::LayerSettingEXT), public in Vulkan-Headers 1.3.272.
VULKAN_HEADERS_MIN=1.3.272
# Where newer headers come from on Debian-family systems (headers only: nothing is installed).
VULKAN_HEADERS_SUITE="${SPECCHAT_VULKAN_HEADERS_SUITE:-trixie}"
VULKAN_HEADERS_MIRROR="${SPECCHAT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

have() { command -v "$1" >/dev/null 2>&1; }

version_ge() {  # version_ge A B: A >= B (dotted numbers)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

# cmake_arg NAME: the value of -DNAME=... (or -DNAME:TYPE=...) in CMAKE_ARGS, if given
cmake_arg() {
  local word
  for word in ${CMAKE_ARGS:-}; do
    case "$word" in -D"$1"=*|-D"$1":*=*) echo "${word#*=}"; return ;; esac
  done
}

# vk_header_version DIR: "1.3.239" from DIR/vulkan/vulkan_core.h (empty when absent)
vk_header_version() {
  local core="$1/vulkan/vulkan_core.h" api patch
  [ -f "$core" ] || return 0
  patch="$(sed -n 's/^#define VK_HEADER_VERSION \([0-9][0-9]*\).*/\1/p' "$core" | head -n 1)"
  api="$(sed -n 's/^#define VK_HEADER_VERSION_COMPLETE VK_MAKE_API_VERSION(0, *\([0-9]*\), *\([0-9]*\),.*/\1.\2/p' \
    "$core" | head -n 1)"
  [ -n "$patch" ] && echo "${api:-1.0}.$patch"
}

cached_vulkan_headers() {  # the newest headers fetched into the cache, if any
  local dir best="" best_v="" v
  for dir in "$LLAMA_CACHE"/vulkan-headers/*/usr/include; do
    v="$(vk_header_version "$dir")"
    [ -n "$v" ] || continue
    if [ -z "$best_v" ] || version_ge "$v" "$best_v"; then best="$dir"; best_v="$v"; fi
  done
  echo "$best"
}

# vk_include_dir: the folder CMake will take the Vulkan headers from: -DVulkan_INCLUDE_DIR, the
# Vulkan SDK, headers fetched into the cache, then the system's
vk_include_dir() {
  local given dir
  given="$(cmake_arg Vulkan_INCLUDE_DIR)"
  if [ -n "$given" ]; then echo "$given"; return; fi
  if [ -n "${VULKAN_SDK:-}" ] && [ -f "$VULKAN_SDK/include/vulkan/vulkan_core.h" ]; then
    echo "$VULKAN_SDK/include"; return
  fi
  dir="$(cached_vulkan_headers)"
  if [ -n "$dir" ]; then echo "$dir"; return; fi
  for dir in /usr/local/include /usr/include; do
    [ -f "$dir/vulkan/vulkan_core.h" ] && { echo "$dir"; return; }
  done
}

have_glslc() { have glslc || [ -x "${VULKAN_SDK:-/nonexistent}/bin/glslc" ]; }

have_spirv_headers() {  # find_package(SPIRV-Headers CONFIG) in llama.cpp's Vulkan CMake file
  local prefix
  for prefix in ${VULKAN_SDK:-} ${CMAKE_PREFIX_PATH:+${CMAKE_PREFIX_PATH//:/ }} /usr/local /usr /opt/homebrew; do
    compgen -G "$prefix/share/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake" >/dev/null && return
    compgen -G "$prefix/lib*/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake" >/dev/null && return
    compgen -G "$prefix/lib/*/cmake/SPIRV-Headers/SPIRV-HeadersConfig.cmake" >/dev/null && return
  done
  return 1
}

have_vulkan_loader() {  # libvulkan.so (the link-time name) or the SDK's
  compgen -G "${VULKAN_SDK:-/nonexistent}/lib/libvulkan.*" >/dev/null && return
  compgen -G "/usr/lib/*/libvulkan.so" >/dev/null || compgen -G "/usr/lib*/libvulkan.so" >/dev/null \
    || compgen -G "/usr/local/lib/libvulkan.*" >/dev/null || compgen -G "/opt/homebrew/lib/libvulkan.*" >/dev/null
}

have_cxx() { have c++ || have g++ || have clang++; }

# vulkan_problems: what the Vulkan build lacks, one item a line (nothing: it can be built).
# Each item names the Debian/Ubuntu package after a colon, for install_vulkan_packages.
vulkan_problems() {
  local inc v
  have_cxx || echo "a C++ compiler:g++"
  have_glslc || echo "glslc, the GLSL shader compiler (Debian/Ubuntu glslc, Fedora glslc, Arch shaderc):glslc"
  have_spirv_headers || echo "SPIRV-Headers (Debian/Ubuntu spirv-headers, Fedora spirv-headers-devel, Arch spirv-headers):spirv-headers"
  have_vulkan_loader || echo "the Vulkan loader library libvulkan.so (Debian/Ubuntu libvulkan-dev, Fedora vulkan-loader-devel):libvulkan-dev"
  inc="$(vk_include_dir)"
  if [ -z "$inc" ]; then
    echo "the Vulkan headers (vulkan/vulkan_core.h; Debian/Ubuntu libvulkan-dev, Fedora vulkan-headers), $VULKAN_HEADERS_MIN or newer:libvulkan-dev"
    return
  fi
  v="$(vk_header_version "$inc")"
  if ! version_ge "${v:-0}" "$VULKAN_HEADERS_MIN"; then
    echo "Vulkan headers $VULKAN_HEADERS_MIN or newer: $inc has ${v:-an unknown version}, and llama-cpp-python $LLAMA_VERSION's Vulkan backend needs vk::LayerSettingEXT (the Vulkan SDK, or CMAKE_ARGS=-DVulkan_INCLUDE_DIR=DIR with newer headers):headers"
  fi
}

# cuda_problems: what the CUDA build lacks (nvcc and cuBLAS, which the build links)
cuda_problems() {
  local nvcc cuda
  have_cxx || echo "a C++ compiler"
  nvcc="$(command -v nvcc || true)"
  [ -z "$nvcc" ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] && nvcc="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
  if [ -z "$nvcc" ]; then echo "nvcc, the CUDA toolkit's compiler (CUDA_HOME=${CUDA_HOME:-/usr/local/cuda})"; return; fi
  cuda="$(cd "$(dirname "$nvcc")/.." && pwd)"
  compgen -G "$cuda/include/cublas_v2.h" >/dev/null || compgen -G "$cuda/targets/*/include/cublas_v2.h" >/dev/null \
    || [ -f /usr/include/cublas_v2.h ] || echo "cuBLAS (cublas_v2.h next to $nvcc): install the full CUDA toolkit"
}

# backend_problems BACKEND: what that build lacks, one item a line (package names stripped)
backend_problems() {
  case "$1" in
    vulkan) vulkan_problems | sed 's/:[^:]*$//' ;;
    cuda) cuda_problems ;;
    *) ;;
  esac
}

# vulkan_gpu_present: vulkaninfo lists a device that is a GPU (lavapipe's CPU device is not one)
vulkan_gpu_present() {
  have vulkaninfo || return 1
  vulkaninfo --summary 2>/dev/null | grep -Eq 'deviceType *= *PHYSICAL_DEVICE_TYPE_(DISCRETE|INTEGRATED|VIRTUAL)_GPU'
}

# vulkan_cpu_device_only: vulkaninfo lists only CPU-type devices (Mesa's lavapipe, "llvmpipe")
vulkan_cpu_device_only() {
  have vulkaninfo || return 1
  local summary
  summary="$(vulkaninfo --summary 2>/dev/null)" || return 1
  grep -q 'deviceType *= *PHYSICAL_DEVICE_TYPE_CPU' <<<"$summary" && ! vulkan_gpu_present
}

# one_paragraph PREFIX: the lines on stdin joined with "; " after PREFIX, ended with a period
one_paragraph() {
  local items
  items="$(paste -sd ';' - | sed 's/;/; /g')"
  echo "$1$items."
}

# fetch_vulkan_headers: Debian $VULKAN_HEADERS_SUITE's libvulkan-dev, headers only, into the cache
# (apt with a private source list and state: the system's sources and packages stay as they are).
# Prints the include folder.
fetch_vulkan_headers() {
  local work arch apt_opts deb dest v
  have apt-get && have dpkg-deb || return 1
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || return 1
  arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
  work="$(mktemp -d)"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/dl"
  echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
       "$VULKAN_HEADERS_MIRROR $VULKAN_HEADERS_SUITE main" > "$work/sources.list"
  : > "$work/status"
  apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o "Dir::State::Lists=$work/lists" -o "Dir::State::status=$work/status"
            -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root
            -o "APT::Architecture=$arch")
  if ! { apt-get "${apt_opts[@]}" -q update && (cd "$work/dl" && apt-get "${apt_opts[@]}" -q download libvulkan-dev); } \
      > "$work/apt.log" 2>&1; then
    tail -n 3 "$work/apt.log" >&2; rm -rf "$work"; return 1
  fi
  deb="$(ls "$work"/dl/libvulkan-dev_*.deb)"
  dpkg-deb -x "$deb" "$work/x"
  v="$(vk_header_version "$work/x/usr/include")"
  [ -n "$v" ] || { rm -rf "$work"; return 1; }
  dest="$LLAMA_CACHE/vulkan-headers/$v"
  mkdir -p "$dest"
  rm -rf "$dest/usr"; mv "$work/x/usr" "$dest/usr"
  rm -rf "$work"
  echo "$dest/usr/include"
}

# install_vulkan_packages PKG...: apt-get install as root (Debian/Ubuntu); else say the command
install_vulkan_packages() {
  if have apt-get && [ "$(id -u)" = 0 ]; then
    echo "installing the Vulkan build's packages: apt-get install -y $*" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1
  else
    return 1
  fi
}

# prepare_vulkan: install and fetch what the Vulkan build lacks, when this machine allows it;
# prints the items still missing (nothing: ready). DRY=1 only says what it would do.
prepare_vulkan() {
  local dry="${1:-0}" problems pkgs headers
  problems="$(vulkan_problems)"
  if ! have apt-get; then sed 's/:[^:]*$//' <<<"$problems"; return; fi
  pkgs="$(sed -n 's/.*:\([a-z][a-z0-9.+-]*\)$/\1/p' <<<"$problems" | grep -v '^headers$' | sort -u | tr '\n' ' ')"
  if [ -n "$pkgs" ]; then
    if [ "$dry" = 1 ]; then echo "would install: apt-get install -y $pkgs" >&2
    elif ! install_vulkan_packages $pkgs; then
      echo "not root: the Vulkan build's packages are installed by: sudo apt-get install $pkgs" >&2
    fi
    problems="$(vulkan_problems)"
  fi
  if grep -q ':headers$' <<<"$problems"; then
    if [ "$dry" = 1 ]; then
      echo "would fetch Vulkan headers (Debian $VULKAN_HEADERS_SUITE's libvulkan-dev) into $LLAMA_CACHE/vulkan-headers" >&2
    else
      echo "fetching newer Vulkan headers (Debian $VULKAN_HEADERS_SUITE's libvulkan-dev, headers only) into $LLAMA_CACHE/vulkan-headers" >&2
      headers="$(fetch_vulkan_headers)" && echo "Vulkan headers $(vk_header_version "$headers"): $headers" >&2
      problems="$(vulkan_problems)"
    fi
  fi
  [ "$dry" = 1 ] && return
  sed 's/:[^:]*$//' <<<"$problems"
}

# backend_cmake_flags BACKEND: the CMake flags that pick BACKEND (plus the header folder that a
# Vulkan build takes from the cache)
backend_cmake_flags() {
  local inc
  case "$1" in
    cpu) echo "" ;;
    cuda) echo "-DGGML_CUDA=on" ;;
    metal) echo "-DGGML_METAL=on" ;;
    vulkan)
      inc="$(vk_include_dir)"
      if [ -z "$(cmake_arg Vulkan_INCLUDE_DIR)" ] && [ -n "$inc" ] && [ "$inc" = "$(cached_vulkan_headers)" ]; then
        echo "-DGGML_VULKAN=on -DVulkan_INCLUDE_DIR=$inc"
      else
        echo "-DGGML_VULKAN=on"
      fi ;;
  esac
}

# full_cmake_args BACKEND: the backend's flags, then the user's CMAKE_ARGS, then RPC on unless set
full_cmake_args() {
  local flags args
  flags="$(backend_cmake_flags "$1")"
  args="${flags}${flags:+${CMAKE_ARGS:+ }}${CMAKE_ARGS:-}"
  case " $args " in *" -DGGML_RPC="*|*" -DGGML_RPC:"*) ;; *) args="${args:+$args }-DGGML_RPC=ON" ;; esac
  echo "$args"
}

# wheel_dir BACKEND ARGS: the cache folder of that build
wheel_dir() {
  echo "$LLAMA_CACHE/llama-cpp-python/$LLAMA_VERSION-$1-$(printf '%s' "$2" | cksum | cut -d' ' -f1)"
}

build_python() {  # a venv in the cache that builds the wheels (pip, isolated from the system)
  local venv="$LLAMA_CACHE/llama-cpp-python/build-venv"
  if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv" || return 1
  fi
  echo "$venv/bin/python"
}

llama_sdist() {  # the llama-cpp-python source, downloaded once
  local py="$1" src="$LLAMA_CACHE/llama-cpp-python/src" tgz dl
  tgz="$src/llama_cpp_python-$LLAMA_VERSION.tar.gz"
  if [ ! -f "$tgz" ]; then
    mkdir -p "$src"; dl="$(mktemp -d "$src/dl.XXXXXX")"
    if ! "$py" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        "llama-cpp-python==$LLAMA_VERSION" -d "$dl" > "$dl/pip.log" 2>&1; then
      tail -n 3 "$dl/pip.log" >&2; rm -rf "$dl"; return 1
    fi
    mv "$dl"/llama_cpp_python-*.tar.gz "$tgz"; rm -rf "$dl"
  fi
  echo "$tgz"
}

# failure_reason LOG: the first line of a failed build log that says what went wrong
failure_reason() {
  local line
  line="$(grep -m 1 -A 1 'CMake Error' "$1" | tail -n 1 | sed 's/^[[:space:]]*//')"
  [ -n "$line" ] || line="$(grep -m 1 -E 'fatal error|error:|Could NOT find|ERROR:' "$1" | sed 's/^[[:space:]]*//')"
  [ -n "$line" ] || line="$(grep -v '^[[:space:]]*$' "$1" | tail -n 1)"
  echo "${line:0:300}"
}

# build_wheel BACKEND ARGS: sets BUILT_DIR, the folder holding the llama-cpp-python wheel built with
# CMAKE_ARGS=ARGS (built on the first call, then reused); on failure sets BUILD_FAILURE (one line)
# and returns 1. BUILD_LOG is the build's log.
build_wheel() {
  local backend="$1" args="$2" dir py tgz t0=$SECONDS
  dir="$(wheel_dir "$backend" "$args")"
  BUILD_LOG="$dir.log"; BUILD_FAILURE=""; BUILT_DIR=""
  if compgen -G "$dir/llama_cpp_python-*.whl" >/dev/null; then BUILT_DIR="$dir"; return; fi
  mkdir -p "$(dirname "$dir")"
  if ! py="$(build_python)"; then BUILD_FAILURE="cannot make a Python venv with ${PYTHON:-python3}"; return 1; fi
  if ! tgz="$(llama_sdist "$py")"; then
    BUILD_FAILURE="cannot download the llama-cpp-python $LLAMA_VERSION source (offline?)"; return 1
  fi
  echo "building llama-cpp-python $LLAMA_VERSION for $backend (once, cached; log: $BUILD_LOG)" >&2
  rm -rf "$dir.part"; mkdir -p "$dir.part"
  if ! CMAKE_ARGS="$args" "$py" -m pip wheel --no-deps --no-cache-dir --disable-pip-version-check \
      -v "$tgz" -w "$dir.part" > "$BUILD_LOG" 2>&1; then
    BUILD_FAILURE="$(failure_reason "$BUILD_LOG")"; rm -rf "$dir.part"; return 1
  fi
  printf '%s\n' "$args" > "$dir.part/CMAKE_ARGS"
  rm -rf "$dir"; mv "$dir.part" "$dir"
  echo "built in $((SECONDS - t0)) s: $dir" >&2
  BUILT_DIR="$dir"
}
