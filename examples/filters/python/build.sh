#!/usr/bin/env bash
# Builds build/filter.wasm from app.py and weir's helper module weir_filter.py with componentize-py (it bundles CPython:
# about 40 MB, and a minute the first time).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
if ! command -v componentize-py >/dev/null 2>&1; then
  echo "missing toolchain: componentize-py; install it with: pip install componentize-py==0.25.1" >&2
  exit 69
fi
# The project's own copies of weir's WIT and Python helper (`weir filter new` writes them), else the
# repository's.
wit="$here/wit"; [ -d "$wit" ] || wit="$here/../../../wit/0.3.1"
sdk="$here"; [ -f "$sdk/weir_filter.py" ] || sdk="$here/../../../guest-sdk/python"
mkdir -p build
componentize-py -d "$wit" -w filter componentize app -p . -p "$sdk" -o build/filter.wasm
echo "$here/build/filter.wasm"
