#!/usr/bin/env bash
# Server CPU time per echoed datagram: the honest efficiency measure when the
# load generator, not the server, is the bottleneck (issue 12).
#
#   scripts/cpu-per-echo.sh [options] NAME='server command' ...
#   scripts/cpu-per-echo.sh --refs 'rust=target/release/udp-echo-server --port {port} -q'
#
# For each server: start it pinned to CPU $SERVER_CPU (default 0) with a free
# port substituted for {port}, wait until the port is bound, read the server's
# utime + stime from /proc/PID/stat, run the kit's C load generator
# (pinned to CPU $CLIENT_CPU, default 1, no warm-up so every datagram is
# counted) for --duration seconds, read utime + stime again, stop the server
# (SIGTERM to its process group) and print the CPU time divided by the
# datagrams echoed (the replies the generator received and verified).
#
# Options: --duration S (3), --size B (64), --window W (32), --flows F (1),
# --host ADDR (127.0.0.1), --no-gso (loadgen sends without GSO), --refs
# (prepend the C references c-mmsg and c-gro). BENCH_KIT names the kit's
# folder (default bench/ of this repository, see scripts/kit.sh). The command
# must contain {port}; it is run with `exec`, so its PID is the server's.
#
# /proc/PID/stat counts in clock ticks (usually 10 ms): over 3 s of load the
# figure is good to a few percent. Run from the repository root after
# `cargo build --release`. Needs Linux, cc, taskset and 2+ cores.
set -euo pipefail
die() { echo "cpu-per-echo.sh: $*" >&2; exit 2; }

. "$(dirname "${BASH_SOURCE[0]}")/kit.sh"
duration=3 size=64 window=32 flows=1 host=127.0.0.1 nogso="" refs=0
servers=()

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=${2:?}; shift 2 ;;
        --size)     size=${2:?}; shift 2 ;;
        --window)   window=${2:?}; shift 2 ;;
        --flows)    flows=${2:?}; shift 2 ;;
        --host)     host=${2:?}; shift 2 ;;
        --no-gso)   nogso=--no-gso; shift ;;
        --refs)     refs=1; shift ;;
        -h|--help)  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *=*)        servers+=("$1"); shift ;;
        *)          die "unknown argument '$1' (servers are given as NAME='command')" ;;
    esac
done

build_kit
if [ "$refs" = 1 ]; then
    servers=("c-mmsg=$build/refserver --mode mmsg --port {port}"
             "c-gro=$build/refserver --mode gro --port {port}" ${servers[@]+"${servers[@]}"})
fi
[ ${#servers[@]} -gt 0 ] || die "no servers given (see --help)"

pin_server=() pin_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c "${SERVER_CPU:-0}")
    pin_client=(taskset -c "${CLIENT_CPU:-1}")
fi
ticks=$(getconf CLK_TCK)

udp_port_bound() {
    cat /proc/net/udp /proc/net/udp6 2>/dev/null |
        awk -v h="$(printf '%04X' "$1")" '{ split($2, a, ":"); if (a[2] == h) f = 1 } END { exit !f }'
}
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        udp_port_bound "$p" || { echo "$p"; return 0; }
    done
    return 1
}
# utime + stime of the whole process, in clock ticks (fields 14 and 15; the
# command name in field 2 may hold spaces, so count from its closing paren).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
json_num() { sed -n "s/.*\"$1\": \([-0-9.e+]*\).*/\1/p" <<<"$2"; }

server_pid=""
stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM -- "-$server_pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

echo "server CPU per echo, size $size B, window $window, flows $flows, ${duration}s${nogso:+, no GSO}; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| name | round trips/s | server CPU % | µs CPU per echo | lost |"
echo "|---|---:|---:|---:|---:|"
status=0
for spec in "${servers[@]}"; do
    name=${spec%%=*} cmd=${spec#*=}
    [[ "$cmd" == *"{port}"* ]] || die "'$name': the command needs {port}"
    port=$(free_port) || die "no free port"
    cmd=${cmd//\{port\}/$port}
    setsid "${pin_server[@]}" bash -c "exec $cmd" >/dev/null 2>&1 </dev/null &
    server_pid=$!
    for _ in $(seq 50); do
        udp_port_bound "$port" && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! udp_port_bound "$port"; then
        echo "| $name | FAILED: port $port not bound | | | |"
        stop_server; status=1; continue
    fi
    before=$(cpu_ticks "$server_pid")
    result=$("${pin_client[@]}" "$build/loadgen" --host "$host" --port "$port" --size "$size" \
        --window "$window" --flows "$flows" --duration "$duration" --warmup 0 $nogso --json 2>/dev/null) || true
    after=$(cpu_ticks "$server_pid")
    stop_server
    echoed=$(json_num received "$result")
    if [ -z "$echoed" ] || [ "$echoed" = 0 ]; then
        echo "| $name | FAILED: no replies | | | |"
        status=1; continue
    fi
    awk -v n="$name" -v r="$(json_num rtt_per_s "$result")" -v d="$duration" -v t=$((after - before)) \
        -v hz="$ticks" -v e="$echoed" -v l="$(json_num lost "$result")" 'BEGIN {
        cpu = t / hz
        printf "| %s | %.0f | %.0f | %.2f | %s |\n", n, r, 100 * cpu / d, 1e6 * cpu / e, l }'
done
exit "$status"
