#!/usr/bin/env bash
# What loading a filter costs weir's memory, per language: for each LANGUAGE=MODULE, a fresh weir (the
# debug exporter, 127.0.0.1 ports) gets the module pushed through the admin API with the CLI, and this
# reports, from /proc:
#   - the resident memory added once the filter is active, and that less its instances' own linear
#     memory (`instance_memory_bytes` x `instances` from `weir filter list --json`);
#   - the peak during the push above the steady state before it (VmHWM, reset just before the push);
#   - the time of a second push of the same bytes (compiled before: the cache).
# With --state-dir, weir runs with a state_dir (compiled modules cached on disk); without, the quick
# start (a private temporary cache). Usage:
#   benches/filter-memory.sh [--state-dir] [--weir target/release/weir] go=examples/filters/go/build/filter.wasm ...
set -euo pipefail
weir=target/release/weir
state=""
modules=()
while [ $# -gt 0 ]; do
  case "$1" in
    --state-dir) state=1 ;;
    --weir) weir="$2"; shift ;;
    *=*) modules+=("$1") ;;
    *) echo "usage: $0 [--state-dir] [--weir PATH] LANGUAGE=MODULE..." >&2; exit 64 ;;
  esac
  shift
done
config='{"drop_prefix": "health", "key": "team", "value": "checkout"}'
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$2/status"; }
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

printf '%-8s %12s %14s %16s %12s %12s\n' language "steady MiB" "added MiB" "added-linear" "push peak" "re-push"
for spec in "${modules[@]}"; do
  lang="${spec%%=*}"
  module="${spec#*=}"
  dir="$(mktemp -d)"
  admin="127.0.0.1:$(port)"
  args=(run --otlp-grpc "127.0.0.1:$(port)" --otlp-http "127.0.0.1:$(port)" --admin "$admin")
  if [ -n "$state" ]; then
    printf 'state_dir: "%s"\n' "$dir/state" > "$dir/weir.yaml"
    args+=(--config "$dir/weir.yaml")
  fi
  "$weir" "${args[@]}" > "$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://$admin/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 2
  before=$(kib VmRSS "$pid")
  echo 5 > "/proc/$pid/clear_refs"
  "$weir" filter push "$lang" "$module" --config "$config" --admin "http://$admin" >/dev/null
  peak=$(kib VmHWM "$pid")
  sleep 2
  after=$(kib VmRSS "$pid")
  read -r instances memory < <("$weir" filter list --json --admin "http://$admin" |
    python3 -c 'import json,sys; f = json.load(sys.stdin)["filters"][0]["stats"]; print(f["instances"], f["instance_memory_bytes"])')
  again=$("$weir" filter push "$lang" "$module" --config "$config" --admin "http://$admin" | sed -n 's/.* in //p')
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  awk -v l="$lang" -v b="$before" -v a="$after" -v p="$peak" -v n="$instances" -v m="$memory" -v t="$again" \
    'BEGIN { printf "%-8s %12.1f %14.1f %16.1f %12.1f %12s\n", l, b/1024, (a-b)/1024, (a-b)/1024 - n*m/1048576, (p-b)/1024, t }'
done
