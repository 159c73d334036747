#!/usr/bin/env bash
# Builds build/filter.wasm: a core module with its world embedded by wit-bindgen (weir makes it a
# component when it loads it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
target=wasm32-unknown-unknown
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  cargo build --release --target "$target"
elif [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ] && command -v wasm-ld-22 >/dev/null 2>&1; then
  # Where no wasm32 standard library can be downloaded: Debian's rustc-web, building std itself.
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C linker=wasm-ld-22" \
    /usr/bin/cargo build --release --target "$target" -Zbuild-std=std,panic_abort
else
  echo "missing toolchain: Rust's $target target; install it with: rustup target add $target" >&2
  exit 69
fi
mkdir -p build
cp "${CARGO_TARGET_DIR:-target}/$target/release/filter.wasm" build/filter.wasm
echo "$here/build/filter.wasm"
