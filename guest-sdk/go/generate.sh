#!/usr/bin/env bash
# Regenerates wit/ (the bindings of weir's filter interface) with wit-bindgen's Go generator
# (`cargo install wit-bindgen-cli --version 0.63.0`). The generated code imports the Bytecode Alliance's
# runtime package (go.bytecodealliance.org/pkg), which the Go module proxy does not serve here; it is
# pointed at witrt/, this module's own small implementation of the part it uses.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
rm -rf wit/imports wit/exports/wit_exports
wit-bindgen go ../../wit/0.3.1 --world filter --pkg-name weir/filter/wit --out-dir wit --format=false
find wit -name '*.go' -exec sed -i \
  -e 's#"go.bytecodealliance.org/pkg/wit/runtime"#"weir/filter/witrt/runtime"#' \
  -e 's#"go.bytecodealliance.org/pkg/wit/types"#"weir/filter/witrt/types"#' {} +
# The generator writes an empty.s beside each package (for the body-less import declarations).
gofmt -w wit
