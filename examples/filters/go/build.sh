#!/usr/bin/env bash
# Builds build/filter.wasm: Go's wasip1 reactor module (-buildmode=c-shared, //go:wasmexport), made a
# component by `weir filter componentize` (weir's world and the WASI preview-1 adapter).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
minor="$( (go env GOVERSION 2>/dev/null || true) | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
if [ -z "$minor" ] || [ "$minor" -lt 25 ]; then
  echo "missing toolchain: Go 1.25 or newer (go:wasmexport with -buildmode=c-shared); install it from https://go.dev/dl/" >&2
  exit 69
fi
weir="${WEIR:-weir}"
if ! command -v "$weir" >/dev/null 2>&1; then
  echo "missing toolchain: the weir CLI (for 'weir filter componentize'); put it on PATH or set WEIR" >&2
  exit 69
fi
mkdir -p build
GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o build/core.wasm .
"$weir" filter componentize build/core.wasm -o build/filter.wasm
echo "$here/build/filter.wasm"
