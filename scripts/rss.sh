#!/usr/bin/env bash
# Measures udp-echo-server's resident memory (VmRSS) at rest and after floods
# from the benchmark kit's load generator (bench/loadgen.c; BENCH_KIT for
# another kit, see scripts/kit.sh; LOADGEN=PATH for a ready binary), to check
# the "under 8 MiB and flat" target. Bounded: each flood lasts DURATION seconds
# (default 10) on loopback.
#
#   scripts/rss.sh [server options...]      e.g. scripts/rss.sh --threads 2
#
# Run from the repository root after `cargo build --release`.
set -euo pipefail
duration=${DURATION:-10}
if [[ -z "${LOADGEN:-}" ]]; then
  . "$(dirname "${BASH_SOURCE[0]}")/kit.sh"
  build_kit
fi
loadgen=${LOADGEN:-$build/loadgen}
out=$(mktemp)
target/release/udp-echo-server --port 0 -q "$@" > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$pid/status"; }
echo "at rest:                      $(rss)"
for size in 64 1400 65507; do
  window=32; [[ $size -gt 9000 ]] && window=4
  result=$(taskset -c 1 "$loadgen" --port "$port" --size "$size" --window "$window" --flows 4 --duration "$duration" --json 2>/dev/null)
  rate=$(sed -n 's/.*"rtt_per_s": *\([0-9.]*\).*/\1/p' <<< "$result")
  echo "after ${duration} s flood, ${size} B: $(rss)   (${rate:-?} rt/s)"
done
echo "after all floods, at rest:    $(rss)"
