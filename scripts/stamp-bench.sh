#!/usr/bin/env bash
# The STAMP reflector's rate against the same server's plain echo rate
# (issue 13: `--stamp` ≥ 0.9× the plain echo rate), REPS times (default 3),
# each pair in the same run, server on CPU 0 and client on CPU 1 as
# compare.sh does:
#
#   echo:  udp-echo-server            ←  udp-echo-client --flood -w W -s SIZE
#   stamp: udp-echo-server --stamp    ←  udp-echo-client --stamp --flood -w W
#
# The C load generator cannot drive a reflector (it checks that each reply is
# its probe, byte for byte), so both sides are driven by our client, with the
# same window, the same packet size (SIZE = the STAMP packet's: 44 bytes
# unauthenticated, 112 with --auth) and the same offloads. The ratio is the
# STAMP run's round trips per second over the echo run's. Loopback only,
# bounded by --duration.
#
#   scripts/stamp-bench.sh [--reps N] [--duration S] [--window W] [--auth] [--server-args '...']
#                          [--tlvs 'CLIENT ARGS']
#
# --tlvs compares the reflector with itself instead (issue 24: ≥ 0.8× with
# TLVs present): STAMP without TLVs against STAMP with the client's ARGS,
# e.g. --tlvs '--stamp-tlv all --stamp-follow-up' --server-args '--stamp-stateful'.
set -euo pipefail
reps=3 duration=3 window=256 auth=0 extra="" tlvs=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --auth) auth=1; shift ;;
    --server-args) extra=$2; shift 2 ;;
    --tlvs) tlvs=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
server=target/release/udp-echo-server
client=target/release/udp-echo-client
[[ -x $server && -x $client ]] || { echo "build first: cargo build --release" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/steal.sh"
steal_mark
size=44 stamp_args=(--stamp)
if ((auth)); then
  size=112
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$tmp/key"
  stamp_args=(--stamp --stamp-key "$tmp/key")
fi

start() {  # server args... -> sets pid, port
  taskset -c 0 "$server" --port 0 -q "$@" > "$tmp/out" 2>/dev/null &
  pid=$!
  for _ in $(seq 50); do grep -q listening "$tmp/out" && break; sleep 0.1; done
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out" | head -1)
  [[ -n $port ]] || { echo "server did not start: $*" >&2; exit 1; }
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
rate() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["rtt_per_s"], d["lost"])'; }

if [[ -n $tlvs ]]; then
  printf '| run | STAMP rt/s (w%s) | lost | STAMP %s rt/s | lost | ratio |\n|---|---:|---:|---:|---:|---:|\n' "$window" "$tlvs"
  for ((r = 1; r <= reps; r++)); do
    # shellcheck disable=SC2086
    start "${stamp_args[@]}" $extra
    read -r e el < <(taskset -c 1 "$client" -q -p "$port" "${stamp_args[@]}" --flood -w "$window" -D "$duration" --json | rate)
    # shellcheck disable=SC2086
    read -r s sl < <(taskset -c 1 "$client" -q -p "$port" "${stamp_args[@]}" $tlvs --flood -w "$window" -D "$duration" --json | rate)
    stop
    python3 -c "print(f'| {$r} | {$e:.0f} | {$el} | {$s:.0f} | {$sl} | {$s/$e:.3f} |')"
  done
  exit 0
fi
printf '| run | echo rt/s (%s B, w%s) | lost | STAMP rt/s | lost | ratio |\n|---|---:|---:|---:|---:|---:|\n' "$size" "$window"
for ((r = 1; r <= reps; r++)); do
  # shellcheck disable=SC2086
  start $extra
  read -r e el < <(taskset -c 1 "$client" -q -p "$port" --flood -w "$window" -s "$size" -D "$duration" --json | rate)
  stop
  # shellcheck disable=SC2086
  start "${stamp_args[@]}" $extra
  read -r s sl < <(taskset -c 1 "$client" -q -p "$port" "${stamp_args[@]}" --flood -w "$window" -D "$duration" --json | rate)
  stop
  python3 -c "print(f'| {$r} | {$e:.0f} | {$el} | {$s:.0f} | {$sl} | {$s/$e:.3f} |')"
done
steal_report
