#!/usr/bin/env bash
# Builds build/filter.wasm: filter.ts and weir's SDK (weir.ts) type-checked and compiled by tsc, then
# made a component by componentize-js (it embeds the StarlingMonkey JavaScript engine: about 12 MB).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
missing() { echo "missing toolchain: $1; install it with: $2" >&2; exit 69; }
# The tools: in the project's node_modules (`npm install`), or on PATH.
PATH="$here/node_modules/.bin:$PATH"
command -v tsc >/dev/null 2>&1 && command -v componentize-js >/dev/null 2>&1 ||
  missing "tsc and componentize-js" "npm install"
# The project's own copies of weir's WIT and SDK (`weir filter new` writes them), else the repository's.
wit="$here/wit"; [ -d "$wit" ] || wit="$here/../../../wit/0.3.1"
sdk="$here/weir"; [ -d "$sdk" ] || sdk="$here/../../../guest-sdk/ts"
rm -rf build/src build/js && mkdir -p build/src
cp filter.ts "$sdk/weir.ts" "$sdk/wit.d.ts" build/src/
tsc -p tsconfig.json
componentize-js --wit "$wit" --world-name filter --disable http fetch-event \
  -o build/filter.wasm build/js/filter.js >/dev/null
echo "$here/build/filter.wasm"
