#!/usr/bin/env bash
# Builds build/filter.wasm: Go's wasip1 reactor module (-buildmode=c-shared, //go:wasmexport), made a
# component by `weir filter componentize` (weir's world and the WASI preview-1 adapter).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
if ! command -v go >/dev/null 2>&1; then
  echo "missing toolchain: Go 1.25 or newer; install it from https://go.dev/dl/ (or: apt-get install golang-go, if 1.25+)" >&2
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
