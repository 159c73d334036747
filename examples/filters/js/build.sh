#!/usr/bin/env bash
# Builds build/filter.wasm from filter.js with componentize-js (it embeds the StarlingMonkey JavaScript
# engine: about 12 MB).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
# The tool: in the project's node_modules (`npm install`), or on PATH.
PATH="$here/node_modules/.bin:$PATH"
if ! command -v componentize-js >/dev/null 2>&1; then
  echo "missing toolchain: componentize-js; install it with: npm install" >&2
  exit 69
fi
# The project's own copy of weir's WIT (`weir filter new` writes one), else the repository's.
wit="$here/wit"; [ -d "$wit" ] || wit="$here/../../../wit/0.3.1"
mkdir -p build
componentize-js --wit "$wit" --world-name filter --disable http fetch-event \
  -o build/filter.wasm filter.js >/dev/null
echo "$here/build/filter.wasm"
