#!/usr/bin/env bash
# Client benchmarks against the C reference servers of bench/ (BENCH_KIT for
# another kit, see scripts/kit.sh), side by side with the kit's C load
# generator in the same run, REPS times (default 3):
#   ping:  udp-echo-client -c N -i 0   vs  loadgen --window 1   (p50 µs)  on c-simple
#   flood: udp-echo-client --flood -w W  vs  loadgen --window W   (rt/s)  on c-MODE
#          (W = --flood-window, default 32; MODE = --flood-server, default mmsg)
# The ping column is given twice: with the kernel's receive time stamps (the
# default) and with the client's own clock (UDP_ECHO_CLIENT_OFFLOAD=no-kernel-time).
# Server on CPU 0, client on CPU 1, as compare.sh does. Loopback only, bounded.
#
#   scripts/client-bench.sh [--reps N] [--duration S] [--flood-window W] [--flood-server MODE]
set -euo pipefail
reps=3 duration=3 window=32 mode=mmsg
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --flood-window) window=$2; shift 2 ;;
    --flood-server) mode=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
. "$(dirname "${BASH_SOURCE[0]}")/kit.sh"
. "$(dirname "${BASH_SOURCE[0]}")/steal.sh"
steal_mark
build_kit
client=target/release/udp-echo-client
[[ -x $client ]] || { echo "build first: cargo build --release" >&2; exit 2; }

start_ref() {  # mode -> sets ref_pid, ref_port
  local out; out=$(mktemp)
  taskset -c 0 "$build/refserver" --mode "$1" --port 0 > "$out" 2>/dev/null &
  ref_pid=$!
  for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
  ref_port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out"); rm -f "$out"
}
field() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p"; }
p50() { python3 -c 'import json,sys; print(json.load(sys.stdin)["rtt_us"]["p50"])'; }

printf '| run | loadgen w1 p50 µs | client ping p50 µs | ratio | client ping p50 µs, own clock | loadgen w%s rt/s (c-%s) | client flood rt/s | ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|\n' "$window" "$mode"
for ((r = 1; r <= reps; r++)); do
  start_ref simple
  lg=$(taskset -c 1 "$build/loadgen" --port "$ref_port" --window 1 --duration "$duration" --json 2>/dev/null | field p50_us)
  count=$(python3 -c "print(int($duration * 1e6 / max(float('$lg'), 1)))")
  cp=$(taskset -c 1 "$client" -q -p "$ref_port" -c "$count" -i 0 --json | p50)
  cu=$(UDP_ECHO_CLIENT_OFFLOAD=no-kernel-time taskset -c 1 "$client" -q -p "$ref_port" -c "$count" -i 0 --json | p50)
  kill "$ref_pid"; wait "$ref_pid" 2>/dev/null || true
  start_ref "$mode"
  lf=$(taskset -c 1 "$build/loadgen" --port "$ref_port" --window "$window" --duration "$duration" --json 2>/dev/null | field rtt_per_s)
  cf=$(taskset -c 1 "$client" -q -p "$ref_port" --flood -w "$window" -D "$duration" --json | field rtt_per_s)
  kill "$ref_pid"; wait "$ref_pid" 2>/dev/null || true
  python3 -c "print(f'| {$r} | {$lg:.1f} | {$cp:.1f} | {$cp/$lg:.3f} | {$cu:.1f} | {$lf:.0f} | {$cf:.0f} | {$cf/$lf:.3f} |')"
done
steal_report
