#!/usr/bin/env bash
# A short, bounded libFuzzer run of the parser targets, for CI: builds them (against weir-wire only, about
# two minutes), then runs each for FUZZ_SECONDS (default 20) seeded with the committed corpus. New inputs go
# to a temporary directory, so the checkout is left as it was. A crash fails the run and leaves the input
# under fuzz/artifacts/<target>/ (replay it with `cargo +nightly fuzz run <target> <file>`). FUZZ_TARGETS picks
# targets (space-separated).
#
# No sanitizer: the parsers are safe Rust, so what a run can find is a panic, an abort, a timeout or an
# out-of-memory, which libFuzzer reports without ASan. Longer runs, with ASan: see the README.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
read -r -a targets <<<"${FUZZ_TARGETS:-otlp_protobuf otlp_json gzip zstd queue_segment kernels hostile_body}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# cargo-fuzz passes unstable flags: use the nightly toolchain when there is one, else stable with
# RUSTC_BOOTSTRAP (no download needed).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  echo "== fuzz $t (${seconds}s)"
  status=0
  cargo "${toolchain[@]}" fuzz run --sanitizer none --release "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    >"$scratch/$t.log" 2>&1 || status=$?
  # The summary only; libFuzzer's progress lines are in the log, printed whole on failure.
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done ' "$scratch/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$scratch/$t.log" >&2
    echo "fuzz target $t failed (exit $status); the input is under fuzz/artifacts/$t/" >&2
    exit "$status"
  fi
done
