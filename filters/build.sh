#!/usr/bin/env bash
# Builds every filter and test fixture in filters/ to Wasm: target/wasm/<name>.wasm (core modules; weir
# componentizes them when it loads them), and the Python filters in filters/python/ to components
# (target/wasm/py-<name>.wasm, with componentize-py).
#
# Prefers an installed wasm32 target of the rustup toolchain (`rustup target add wasm32-unknown-unknown`).
# Where none can be installed, falls back to Debian's rustc-web, cargo-web, rust-web-src and lld-22 with
# -Zbuild-std (installed with apt-get when missing and running as root).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../target/wasm"
mkdir -p "$out"
cd "$here"

target=wasm32-unknown-unknown
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "build.sh: using rustup's $target target" >&2
  cargo build --release --target "$target"
else
  if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || ! command -v wasm-ld-22 >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "build.sh: no wasm32 target; installing Debian's rustc-web toolchain" >&2
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 >/dev/null
    else
      echo "build.sh: no wasm32 target. Run 'rustup target add $target' (or, on Debian, install rustc-web cargo-web rust-web-src lld-22)" >&2
      exit 1
    fi
  fi
  echo "build.sh: using Debian's rustc with -Zbuild-std" >&2
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C linker=wasm-ld-22" \
    /usr/bin/cargo build --release --target "$target" -Zbuild-std=std,panic_abort
fi

for wasm in "$here/target/$target/release/"*.wasm; do
  name="$(basename "$wasm" .wasm)"
  cp "$wasm" "$out/${name//_/-}.wasm"
  echo "$out/${name//_/-}.wasm"
done

# Filters in Python (python/<name>/app.py, on weir's helper module guest-sdk/python/weir_filter.py),
# made components by componentize-py (from PyPI).
if ! command -v componentize-py >/dev/null 2>&1; then
  echo "build.sh: installing componentize-py for the Python filters" >&2
  python3 -m pip install -q componentize-py==0.25.1 >&2
fi
for dir in "$here"/python/*/; do
  name="$(basename "$dir")"
  target_file="$out/py-$name.wasm"
  # Rebuild only when the source changed: componentizing bundles CPython and takes a while.
  if [ ! -f "$target_file" ] || [ -n "$(find "$dir" "$here/../guest-sdk/python" -newer "$target_file" -name '*.py')" ]; then
    componentize-py -d "$here/../wit/0.3.1" -w filter componentize app -p "$dir" \
      -p "$here/../guest-sdk/python" -o "$target_file" >&2
  fi
  echo "$target_file"
done
