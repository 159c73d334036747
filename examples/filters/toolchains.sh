#!/usr/bin/env bash
# Installs the toolchains that build weir's example filter in every language, each once per machine and
# cached by version under ~/.cache/weir/tools (or $WEIR_TOOLS), and writes the PATH they need into
# $WEIR_TOOLS/env, which the language tests (tests/e2e/languages.rs) read. About 5 minutes the first
# time (wit-bindgen-cli is a cargo install), then seconds. `.ci/run` runs it.
#
#   Rust:        rustup's wasm32-unknown-unknown target, or Debian's rustc-web (filters/build.sh)
#   Go:          the machine's Go (1.25 or newer)
#   JS and TS:   componentize-js and TypeScript, from npm
#   Python:      componentize-py, from PyPI
#   C:           clang, lld, wasi-libc and wasm32 compiler-rt, from Debian
#   Zig:         ziglang, from PyPI
#   C and Zig:   wit-bindgen-cli, from crates.io
set -euo pipefail
tools="${WEIR_TOOLS:-$HOME/.cache/weir/tools}"
mkdir -p "$tools"

WIT_BINDGEN_VERSION=0.63.0
COMPONENTIZE_JS_VERSION=0.23.0
TYPESCRIPT_VERSION=7.0.2
COMPONENTIZE_PY_VERSION=0.25.1
ZIG_VERSION=0.17.1

step() { echo "toolchains.sh: $*" >&2; }

# wit-bindgen (C and Zig bindings; Go's are committed in guest-sdk/go).
wit_bindgen="$tools/wit-bindgen-$WIT_BINDGEN_VERSION"
if [ ! -x "$wit_bindgen/bin/wit-bindgen" ]; then
  step "building wit-bindgen-cli $WIT_BINDGEN_VERSION (a few minutes, once)"
  cargo install -q wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" --locked \
    --no-default-features --features c,go --root "$wit_bindgen"
fi

# componentize-js and TypeScript.
js="$tools/js-$COMPONENTIZE_JS_VERSION-ts-$TYPESCRIPT_VERSION"
if [ ! -x "$js/node_modules/.bin/componentize-js" ] || [ ! -x "$js/node_modules/.bin/tsc" ]; then
  step "installing componentize-js $COMPONENTIZE_JS_VERSION and TypeScript $TYPESCRIPT_VERSION"
  mkdir -p "$js"
  (cd "$js" && echo '{"private": true}' > package.json &&
    npm install -s --no-audit --no-fund \
      "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" "typescript@$TYPESCRIPT_VERSION")
fi

# componentize-py and Zig, into a virtual environment of their own.
py="$tools/py-componentize-$COMPONENTIZE_PY_VERSION-zig-$ZIG_VERSION"
if [ ! -x "$py/bin/componentize-py" ] || ! "$py/bin/python" -c 'import ziglang' 2>/dev/null; then
  step "installing componentize-py $COMPONENTIZE_PY_VERSION and Zig $ZIG_VERSION"
  python3 -m venv "$py"
  "$py/bin/pip" install -q "componentize-py==$COMPONENTIZE_PY_VERSION" "ziglang==$ZIG_VERSION"
fi

# clang for wasm32-wasi, with Debian's wasi-libc.
clang_ready() {
  command -v clang >/dev/null 2>&1 && [ -f /usr/lib/wasm32-wasi/libc.a ] &&
    [ -f "$(clang -print-resource-dir)/lib/wasi/libclang_rt.builtins-wasm32.a" ]
}
if ! clang_ready; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing clang, lld and wasi-libc"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang lld wasi-libc >/dev/null
    # The wasm32 compiler-rt of the clang just installed (Debian 12: 14).
    major="$(clang -dumpversion | cut -d. -f1)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "libclang-rt-$major-dev-wasm32" >/dev/null
  else
    step "no clang for wasm32-wasi, and not root: the C example builds with Zig instead"
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  step "no Go on PATH: install Go 1.25 or newer (https://go.dev/dl/) for the Go example"
fi

# The PATH the builds need; `zig` is a small wrapper over the venv's ziglang.
mkdir -p "$tools/bin"
cat > "$tools/bin/zig" <<ZIG
#!/bin/sh
exec "$py/bin/python" -m ziglang "\$@"
ZIG
chmod +x "$tools/bin/zig"
echo "WEIR_TOOLS_PATH=$tools/bin:$wit_bindgen/bin:$js/node_modules/.bin:$py/bin" > "$tools/env"
step "ready: $tools/env"
