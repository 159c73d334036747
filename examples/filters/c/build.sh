#!/usr/bin/env bash
# Builds build/filter.wasm: wit-bindgen's C bindings and filter.c, compiled for wasm32-wasi as a
# reactor (a core module with its world embedded; weir makes it a component, with the WASI adapter,
# when it loads it). The compiler: $CC if set, else clang with wasi-libc, else `zig cc`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
missing() { echo "missing toolchain: $1; install it with: $2" >&2; exit 69; }
command -v wit-bindgen >/dev/null 2>&1 ||
  missing "wit-bindgen" "cargo install wit-bindgen-cli --version 0.63.0 --no-default-features --features c,go"
# The project's own copy of weir's WIT (`weir filter new` writes one), else the repository's.
wit="$here/wit"; [ -d "$wit" ] || wit="$here/../../../wit/0.3.1"
mkdir -p build/gen
wit-bindgen c "$wit" --world filter --out-dir build/gen >/dev/null
if [ -n "${CC:-}" ]; then
  cc=($CC)
elif command -v clang >/dev/null 2>&1 && [ -f /usr/lib/wasm32-wasi/libc.a ] &&
  [ -f "$(clang -print-resource-dir)/lib/wasi/libclang_rt.builtins-wasm32.a" ]; then
  cc=(clang --target=wasm32-wasi --sysroot=/usr)
elif python3 -c 'import ziglang' 2>/dev/null; then
  cc=(python3 -m ziglang cc -target wasm32-wasi)
else
  missing "a C compiler for wasm32-wasi" \
    "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32 (or: pip install ziglang)"
fi
"${cc[@]}" -O2 -Wl,--strip-debug -mexec-model=reactor -Ibuild/gen -o build/filter.wasm \
  filter.c build/gen/filter.c build/gen/filter_component_type.o
echo "$here/build/filter.wasm"
