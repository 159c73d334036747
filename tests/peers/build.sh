#!/usr/bin/env bash
# Builds weir's reference peers once and caches them, keyed by version and by a
# hash of the committed inputs, so a machine that built once never rebuilds:
#
#   collector  OpenTelemetry Collector v0.161.0 (tests/peers/collector), from Go modules
#              -> $CACHE/otelcol-v0.161.0-<hash8>/otelcol-weir
#   kafka      Apache Kafka broker 4.x (tests/peers/kafka/pom.xml), from Maven Central
#              -> $CACHE/kafka-<version>-<hash8>/libs/*.jar, log4j2.properties,
#                 server.properties.template
#   nats       Debian's nats-server (apt), used in place
#
# Usage: tests/peers/build.sh [collector|kafka|nats|all]   (default: all)
#
# CACHE is ${WEIR_PEERS_CACHE:-$HOME/.cache/weir/peers}. At the end it writes
# $CACHE/env with WEIR_OTELCOL=, WEIR_KAFKA_LIBS=, WEIR_NATS_SERVER= lines (the
# peers this machine has, whichever were asked for now or built before) and
# prints them.
#
# Exit status: 0 when every peer asked for is there; 3 when a toolchain is
# missing (the script says which, with its install line, still builds the
# other peers and writes $CACHE/env without that peer, so tests can skip what
# needs it); 1 when a build fails; 2 on bad usage.
#
# Builds run under `nice -n 19`, Go with -p 1 (WEIR_PEERS_GO_JOBS=N for more: .ci/run, which
# builds nothing else meanwhile, uses 2): the machine has 2 cores.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${WEIR_PEERS_CACHE:-$HOME/.cache/weir/peers}"
WHAT="${1:-all}"

case "$WHAT" in
  collector|kafka|nats|all) ;;
  -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [collector|kafka|nats|all]" >&2; exit 2 ;;
esac

mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"

# One build at a time per cache (tests may call this script in parallel).
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.lock"
  flock 9
fi

say() { printf '[peers] %s\n' "$*"; }
die() { printf '[peers] error: %s\n' "$*" >&2; exit 1; }
MISSING=()
# missing PEER INSTALL-LINE: the peer cannot be had on this machine.
missing() { printf '[peers] %s: skipped, install with: %s\n' "$1" "$2" >&2; MISSING+=("$1"); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# hash8 FILE...: the first 8 hex digits of the sha256 of the files' contents,
# in the order given.
hash8() { cat "$@" | sha256sum | cut -c1-8; }

# Values for $CACHE/env, filled in below.
OTELCOL=""
KAFKA_LIBS=""
NATS=""

# ---------------------------------------------------------------- collector
COLLECTOR_VERSION="v0.161.0"
collector_dir() {
  local d="$HERE/collector"
  echo "$CACHE/otelcol-$COLLECTOR_VERSION-$(hash8 "$d/go.mod" "$d/go.sum" "$d/main.go")"
}

build_collector() {
  local t0 src out tmp
  t0="$(now)"
  src="$HERE/collector"
  out="$(collector_dir)"
  if [[ -x "$out/otelcol-weir" ]]; then
    say "collector: cached $out/otelcol-weir"
    OTELCOL="$out/otelcol-weir"
    return
  fi
  if ! command -v go >/dev/null; then
    missing collector "Go >= 1.26 on PATH (Debian 12's golang-go is too old)"
    return
  fi
  grep -q "opentelemetry-collector-contrib/.* $COLLECTOR_VERSION\$" "$src/go.mod" \
    || die "collector: go.mod does not pin contrib at $COLLECTOR_VERSION (update COLLECTOR_VERSION in $0)"
  say "collector: building otelcol-weir $COLLECTOR_VERSION into $out (first build: ~15 s of module download, ~5 min of compile)"
  local t1
  t1="$(now)"
  (cd "$src" && nice -n 19 go mod download)
  say "collector: modules downloaded in $(since "$t1")"
  t1="$(now)"
  tmp="$(mktemp -d "$CACHE/.otelcol-build.XXXXXX")"
  # -mod=readonly: go.mod and go.sum are committed and must not change here.
  # -buildvcs=false: the binary does not need the repo's git state.
  if ! (cd "$src" && nice -n 19 go build -mod=readonly -buildvcs=false -p "${WEIR_PEERS_GO_JOBS:-1}" -trimpath -ldflags='-s -w' \
          -o "$tmp/otelcol-weir" .); then
    rm -rf "$tmp"
    die "collector: go build failed"
  fi
  "$tmp/otelcol-weir" --version >/dev/null || { rm -rf "$tmp"; die "collector: the built binary does not run"; }
  rm -rf "$out"
  mv "$tmp" "$out"
  say "collector: compiled in $(since "$t1")"
  say "collector: built $out/otelcol-weir ($(du -h "$out/otelcol-weir" | cut -f1)) in $(since "$t0")"
  OTELCOL="$out/otelcol-weir"
}

# ---------------------------------------------------------------- kafka
kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/kafka/pom.xml" | head -n1
}
kafka_dir() {
  local d="$HERE/kafka"
  echo "$CACHE/kafka-$(kafka_version)-$(hash8 "$d/pom.xml" "$d/log4j2.properties" "$d/server.properties.template")"
}

build_kafka() {
  local t0 src out tmp
  t0="$(now)"
  src="$HERE/kafka"
  out="$(kafka_dir)"
  if [[ -f "$out/libs/.complete" ]]; then
    say "kafka: cached $out/libs"
    KAFKA_LIBS="$out/libs"
    return
  fi
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    missing kafka "apt-get install -y openjdk-17-jdk-headless maven"
    return
  fi
  say "kafka: resolving Kafka $(kafka_version) from Maven Central into $out/libs (first run: ~10 s)"
  tmp="$(mktemp -d "$CACHE/.kafka-build.XXXXXX")"
  # Maven's local repository is the default, ~/.m2/repository.
  # Its output (only escape codes under -q) is shown when it fails.
  if ! nice -n 19 mvn -B -q -f "$src/pom.xml" dependency:copy-dependencies -Dkafka.libs.dir="$tmp/libs" \
        >"$tmp/mvn.log" 2>&1; then
    tail -n 40 "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "kafka: mvn dependency:copy-dependencies failed"
  fi
  rm -f "$tmp/mvn.log"
  ls "$tmp/libs"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "kafka: no kafka_2.13 jar was copied"; }
  cp "$src/log4j2.properties" "$src/server.properties.template" "$tmp/"
  touch "$tmp/libs/.complete"
  rm -rf "$out"
  mv "$tmp" "$out"
  say "kafka: $(find "$out/libs" -name '*.jar' | wc -l) jars ($(du -sh "$out/libs" | cut -f1)) in $(since "$t0")"
  KAFKA_LIBS="$out/libs"
}

# ---------------------------------------------------------------- nats
find_nats() {
  local p
  p="$(command -v nats-server 2>/dev/null || true)"
  [[ -z "$p" && -x /usr/sbin/nats-server ]] && p=/usr/sbin/nats-server
  [[ -z "$p" && -x /usr/bin/nats-server ]] && p=/usr/bin/nats-server
  echo "$p"
}

build_nats() {
  local t0 p
  t0="$(now)"
  p="$(find_nats)"
  if [[ -n "$p" ]]; then
    say "nats: installed $p"
    NATS="$p"
    return
  fi
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
    say "nats: installing Debian's nats-server (apt-get install -y nats-server)"
    # The package's postinst may try to start a service; there is none to
    # start in a container, and the tests start their own server anyway.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
    }
    p="$(find_nats)"
    [[ -n "$p" ]] || die "nats: apt-get installed nats-server but no binary was found"
    say "nats: installed $p in $(since "$t0")"
    NATS="$p"
  else
    missing nats "sudo apt-get install -y nats-server"
  fi
}

# ---------------------------------------------------------------- main
T0="$(now)"
case "$WHAT" in
  collector) build_collector ;;
  kafka) build_kafka ;;
  nats) build_nats ;;
  all) build_collector; build_kafka; build_nats ;;
esac

# Fill in the peers that were not asked for this time but are in the cache or
# installed, so $CACHE/env always names everything this machine has.
if [[ -z "$OTELCOL" ]]; then
  d="$(collector_dir)"
  [[ -x "$d/otelcol-weir" ]] && OTELCOL="$d/otelcol-weir"
fi
if [[ -z "$KAFKA_LIBS" ]]; then
  d="$(kafka_dir)"
  [[ -f "$d/libs/.complete" ]] && KAFKA_LIBS="$d/libs"
fi
[[ -z "$NATS" ]] && NATS="$(find_nats)"

{
  [[ -n "$OTELCOL" ]] && echo "WEIR_OTELCOL=$OTELCOL"
  [[ -n "$KAFKA_LIBS" ]] && echo "WEIR_KAFKA_LIBS=$KAFKA_LIBS"
  [[ -n "$NATS" ]] && echo "WEIR_NATS_SERVER=$NATS"
  true
} > "$CACHE/env.tmp"
mv "$CACHE/env.tmp" "$CACHE/env"

say "wrote $CACHE/env in $(since "$T0"):"
cat "$CACHE/env"
if ((${#MISSING[@]})); then
  say "missing: ${MISSING[*]} (see the install lines above)"
  exit 3
fi
