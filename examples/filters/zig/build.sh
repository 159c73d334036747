#!/usr/bin/env bash
# Builds build/filter.wasm: filter.zig over wit-bindgen's C bindings, for wasm32-wasi with Zig's own
# wasi-libc (a core module with its world embedded; weir makes it a component, with the WASI adapter,
# when it loads it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
missing() { echo "missing toolchain: $1; install it with: $2" >&2; exit 69; }
command -v wit-bindgen >/dev/null 2>&1 ||
  missing "wit-bindgen" "cargo install wit-bindgen-cli --version 0.63.0 --no-default-features --features c,go"
if command -v zig >/dev/null 2>&1; then
  zig=(zig)
elif python3 -c 'import ziglang' 2>/dev/null; then
  zig=(python3 -m ziglang)
else
  missing "Zig" "pip install ziglang==0.17.1"
fi
# The project's own copy of weir's WIT (`weir filter new` writes one), else the repository's.
wit="$here/wit"; [ -d "$wit" ] || wit="$here/../../../wit/0.3.1"
mkdir -p build/gen
wit-bindgen c "$wit" --world filter --out-dir build/gen >/dev/null
"${zig[@]}" translate-c build/gen/filter.h -target wasm32-wasi -lc --cache-dir build/zig-cache \
  > build/gen/filter_h.zig
"${zig[@]}" build-exe -target wasm32-wasi -fno-entry -rdynamic -lc -O ReleaseSmall \
  --cache-dir build/zig-cache -femit-bin=build/filter.wasm \
  -Ibuild/gen build/gen/filter.c build/gen/filter_component_type.o \
  --dep filter_h -Mroot=filter.zig -lc -Mfilter_h=build/gen/filter_h.zig
echo "$here/build/filter.wasm"
