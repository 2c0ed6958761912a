# Shared by packaging/rpc-server.sh and packaging/llama-tools.sh (sourced, not run): build
# programs of llama.cpp from the llama-cpp-python source of the version specchat runs, once, and
# cache them. The caller sets ME, ROOT, CACHE, SDIST, VERSION (may be empty) and defines fail().

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

# build TARGET:NAME...: build each cmake TARGET of llama.cpp for VERSION and KIND into
# BIN_DIR/NAME; the log stays next to it
build() {
  local work log t0=$SECONDS gen=() jobs targets=() spec built
  for spec in "$@"; do targets+=("${spec%%:*}"); done
  ensure_cmake
  have c++ || have g++ || have clang++ || fail "no C++ compiler found (install g++ or clang++)"
  mkdir -p "$CACHE"; work="$(mktemp -d "$CACHE/build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  log="$CACHE/build-$VERSION-$KIND.log"
  echo "building llama.cpp's ${targets[*]} from llama-cpp-python $VERSION for $KIND:" \
       "a few minutes, once (log: $log)"
  fetch_source "$work"
  have ninja && gen=(-G Ninja)
  jobs="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)}"
  # shellcheck disable=SC2046
  if ! { cmake -S "$work/llama.cpp" -B "$work/build" "${gen[@]}" -Wno-dev \
           -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_RPC=ON -DGGML_NATIVE=ON \
           -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_CCACHE=OFF -DLLAMA_BUILD_TESTS=OFF \
           -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON \
           $(backend_flags "$KIND") \
         && cmake --build "$work/build" --config Release --target "${targets[@]}" -j "$jobs"; \
       } > "$log" 2>&1; then
    tail -n 20 "$log" >&2
    fail "the build failed (full log: $log)"
  fi
  mkdir -p "$BIN_DIR"
  for spec in "$@"; do
    built="$(find "$work/build" -type f -name "${spec%%:*}" -perm -u+x | head -n 1)"
    [ -n "$built" ] || fail "the build made no ${spec%%:*} (log: $log)"
    cp "$built" "$BIN_DIR/${spec#*:}.part" && mv "$BIN_DIR/${spec#*:}.part" "$BIN_DIR/${spec#*:}"
  done
  rm -rf "$work"; trap - EXIT
  echo "built in $((SECONDS - t0)) s: $BIN_DIR"
}

# build_once TARGET:NAME...: build unless every NAME is in BIN_DIR already. The build is
# serialized between concurrent runs (tests, CI) with a lock when flock exists.
built_all() {
  local spec
  for spec in "$@"; do [ -x "$BIN_DIR/${spec#*:}" ] || return 1; done
}

build_once() {
  built_all "$@" && return
  mkdir -p "$CACHE"
  if have flock; then
    exec 9> "$CACHE/.lock"
    flock 9
    built_all "$@" || build "$@"
    flock -u 9; exec 9>&-
  else
    build "$@"
  fi
}
