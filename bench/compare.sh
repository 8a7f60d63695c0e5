#!/usr/bin/env bash
# bench/compare.sh - UDP echo servers side by side under bench/loadgen.
#
#   bench/compare.sh [options] NAME='server command' ...
#   bench/compare.sh 'rust=target/release/udp-echo-server --port {port} -q'
#
# Builds refserver.c and loadgen.c with `cc -O2` into $BENCH_BUILD_DIR
# (default: target/bench of this repository), puts the C reference servers
# first (c-simple, c-mmsg, c-gro: refserver --mode simple|mmsg|gro), then runs
# each server pinned to CPU $SERVER_CPU (0) and the load generator to CPU
# $CLIENT_CPU (1), one after the other, and prints a markdown table:
#
#   | name | round trips/s | ratio to first row | p50 µs | p99 µs | lost |
#
# Options:
#   --duration S   measured seconds per server (3)
#   --warmup S     unmeasured seconds before that (0.5)
#   --size B       datagram bytes, >= 16 (64)
#   --window W     datagrams in flight per flow (32)
#   --flows F      load generator sockets (1)
#   --host ADDR    address of {port} servers (127.0.0.1)
#   --latency      --window 1: ping-pong
#   --spin         the load generator polls instead of sleeping
#   --no-gso       the load generator sends with sendmmsg, not UDP GSO
#   --no-refs      no C reference rows
#   --keep         keep the logs and JSON (their folder is printed)
#
# A command with {port} gets a free port and counts as started once that port
# is bound; one without must print "listening on HOST:PORT" on stdout. Either
# within 5 s. Servers are stopped with SIGTERM to their process group (SIGKILL
# 2 s later). Exit status: 0 all answered, 1 some failed (their row says why),
# 2 usage or build error. Loopback only; each run is bounded by `timeout`.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${BENCH_BUILD_DIR:-$(dirname "$here")/target/bench}
duration=3 warmup=0.5 size=64 window=32 flows=1 host=127.0.0.1
refs=1 keep=0 lg_flags=()
servers=()

die() { echo "compare.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --duration) duration=${2:?}; shift 2 ;;
        --warmup) warmup=${2:?}; shift 2 ;;
        --size) size=${2:?}; shift 2 ;;
        --window) window=${2:?}; shift 2 ;;
        --flows) flows=${2:?}; shift 2 ;;
        --host) host=${2:?}; shift 2 ;;
        --latency) window=1; shift ;;
        --spin|--no-gso) lg_flags+=("$1"); shift ;;
        --no-refs) refs=0; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *=*) servers+=("$1"); shift ;;
        *) die "unknown argument '$1' (a server is NAME='command')" ;;
    esac
done

# Rebuild a tool when its binary is missing, older than its source, or was
# built from another source (BENCH_BUILD_DIR shared with another kit).
mkdir -p "$build" || die "cannot create $build"
for tool in refserver loadgen; do
    src=$here/$tool.c bin=$build/$tool
    if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$(cat "$bin.source" 2>/dev/null)" != "$src" ]; then
        "${CC:-cc}" -O2 -Wall -Wextra -pthread -o "$bin" "$src" || die "building $tool failed"
        echo "$src" >"$bin.source"
    fi
done

if [ "$refs" = 1 ]; then
    servers=("c-simple=$build/refserver --mode simple" "c-mmsg=$build/refserver --mode mmsg"
             "c-gro=$build/refserver --mode gro" ${servers[@]+"${servers[@]}"})
fi
[ ${#servers[@]} -gt 0 ] || die "no servers given (see --help)"

pin_server=() pin_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c "${SERVER_CPU:-0}") pin_client=(taskset -c "${CLIENT_CPU:-1}")
else
    echo "compare.sh: warning: no taskset or fewer than 2 CPUs: running unpinned" >&2
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/udp-echo-compare.XXXXXX") || die "mktemp failed"
pid=""
stop_server() {
    [ -n "$pid" ] || return 0
    kill -TERM -- "-$pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "compare.sh: the server ignored SIGTERM for 2 s: SIGKILL" >&2
        kill -KILL -- "-$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    pid=""
}
finish() {
    stop_server
    if [ "$keep" = 1 ]; then echo "compare.sh: logs in $logs" >&2; else rm -rf "$logs"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM

bound() {      # is UDP port $1 bound (IPv4 or IPv6)?
    awk -v hex="$(printf ':%04X' "$1")" 'substr($2, length($2) - 4) == hex { found = 1 }
        END { exit !found }' /proc/net/udp /proc/net/udp6 2>/dev/null
}
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        bound "$p" || { echo "$p"; return 0; }
    done
    return 1
}
field() { sed -n "s/.*\"$1\": \([-0-9.e+]*\).*/\1/p" "$2"; }

# start NAME CMD LOG: sets pid, target (host) and port, or returns 1 with $why.
start() {
    local cmd=$2 out=$3 line addr
    target=$host port=""
    if [[ $cmd == *"{port}"* ]]; then
        port=$(free_port) || { why="no free port"; return 1; }
        cmd=${cmd//\{port\}/$port}
    fi
    echo "== $1: $cmd" >&2
    setsid "${pin_server[@]}" bash -c "$cmd" >"$out" 2>"$out.err" </dev/null &
    pid=$!
    for _ in $(seq 50); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"; why="exited with status $? before it was ready"; pid=""
            tail -n 5 "$out.err" | sed 's/^/    stderr: /' >&2
            return 1
        fi
        if [ -n "$port" ]; then
            bound "$port" && return 0
        elif line=$(grep -m1 -a '^listening on ' "$out"); then
            addr=${line#listening on } port=${line##*:}
            addr=${addr%:*} addr=${addr#[} addr=${addr%]}
            case $addr in 0.0.0.0) target=127.0.0.1 ;; ::) target=::1 ;; *) target=$addr ;; esac
            return 0
        fi
        sleep 0.1
    done
    why="not ready within 5 s (port bound, or a 'listening on HOST:PORT' line)"
    return 1
}

status=0 rows=() n=0
for spec in "${servers[@]}"; do
    name=${spec%%=*} n=$((n + 1))
    if ! start "$name" "${spec#*=}" "$logs/$n.out"; then
        echo "compare.sh: '$name' failed to start: $why" >&2
        stop_server; rows+=("$name|FAILED: failed to start: $why"); status=1; continue
    fi
    limit=$(awk -v d="$duration" -v w="$warmup" 'BEGIN { printf "%d", d + w + 10 }')
    timeout "$limit" "${pin_client[@]}" "$build/loadgen" --host "$target" --port "$port" \
        --size "$size" --window "$window" --flows "$flows" --duration "$duration" \
        --warmup "$warmup" ${lg_flags[@]+"${lg_flags[@]}"} --json >"$logs/$n.json" 2>"$logs/$n.loadgen"
    rc=$?
    sed 's/^/   /' "$logs/$n.loadgen" >&2
    kill -0 "$pid" 2>/dev/null || echo "compare.sh: warning: '$name' exited during the run" >&2
    stop_server
    case $rc in
        0) rows+=("$name|$(field rtt_per_s "$logs/$n.json")|$(field p50_us "$logs/$n.json")|$(field p99_us "$logs/$n.json")|$(field lost "$logs/$n.json")|$(field corrupt "$logs/$n.json")")
           continue ;;
        2) why="no replies at all" ;;
        124) why="loadgen timed out" ;;
        *) why="loadgen exit status $rc" ;;
    esac
    echo "compare.sh: '$name': $why" >&2
    rows+=("$name|FAILED: $why"); status=1
done

what="throughput, window $window"
[ "$window" = 1 ] && what="latency (ping-pong, window 1)"
extras=""
for f in ${lg_flags[@]+"${lg_flags[@]}"}; do
    case $f in --spin) extras+=", client busy-polls" ;; --no-gso) extras+=", no GSO" ;; esac
done
echo
echo "UDP echo, $what, size $size B, flows $flows, ${duration}s per server$extras; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| name | round trips/s | ratio to first row | p50 µs | p99 µs | lost |"
echo "|---|---:|---:|---:|---:|---:|"
first=""
for row in "${rows[@]}"; do
    IFS='|' read -r name rate p50 p99 lost corrupt <<<"$row"
    if [[ $rate == FAILED:* ]]; then echo "| $name | $rate | | | | |"; continue; fi
    [ -n "$first" ] || first=$rate
    awk -v n="$name" -v r="$rate" -v f="$first" -v a="$p50" -v b="$p99" -v l="$lost" -v c="$corrupt" 'BEGIN {
        if (c + 0 > 0) l = l " (corrupt " c ")"
        printf "| %s | %.0f | %s | %.1f | %.1f | %s |\n", n, r, (f > 0 ? sprintf("%.3f", r / f) : "-"), a, b, l }'
done
exit "$status"
