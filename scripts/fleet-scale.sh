#!/usr/bin/env bash
# The fleet prober at scale (issue 22, SPEC §6 "fleet"): CPU, memory and the
# RTT of one fixed target as the number of targets grows.
#
#   sudo scripts/fleet-scale.sh [--targets "1 1000 10000"] [--duration 30]
#                               [--warmup 5] [--interval 1] [--smokeping]
#
# Everything runs inside one network namespace of its own: the echo server
# bound to 0.0.0.0 answers a whole /16 (`ip route add local 198.18.0.0/16 dev
# lo`: every address in it is this host's, AnyIP), pinned to CPU 0; the fleet
# prober, pinned to CPU 1, probes N targets 198.18.x.y:7007 at one probe per
# --interval each. Target 198.18.0.1:7007 is in every set: the reference.
# After --warmup seconds the script reads the prober's utime + stime
# (/proc/PID/stat) and the reference's RTT sum and count from /metrics,
# waits --duration seconds, reads them again, and prints per N:
#
#   targets  cpu_core  rss_mib  ref_rtt_mean_us  probes_per_s  lost  scrape_ms
#
# cpu_core is the share of one core the prober used; rss_mib its peak RSS
# (VmHWM); ref_rtt_mean_us the mean RTT of the reference target over the
# window (exact: sum/count of its histogram, which a bucketed median is not);
# lost the probes lost over all targets in the window; scrape_ms how long one
# /metrics scrape of all N targets took. --smokeping adds the same run with
# Debian's prometheus-smokeping-prober (ICMP) for comparison, if installed.
#
# Run from the repository root after `cargo build --release`, as root, on an
# otherwise idle machine with 2+ cores. Nothing leaves the namespace.
set -euo pipefail
die() { echo "fleet-scale.sh: $*" >&2; exit 2; }

counts="1 1000 10000" duration=30 warmup=5 interval=1 smokeping=0
while [ $# -gt 0 ]; do
    case "$1" in
        --targets)  counts=${2:?}; shift 2 ;;
        --duration) duration=${2:?}; shift 2 ;;
        --warmup)   warmup=${2:?}; shift 2 ;;
        --interval) interval=${2:?}; shift 2 ;;
        --smokeping) smokeping=1; shift ;;
        *) die "unknown option $1 (see the header of this script)" ;;
    esac
done
[ "$(id -u)" = 0 ] || die "needs root (a network namespace)"
server=target/release/udp-echo-server client=target/release/udp-echo-client
[ -x "$server" ] && [ -x "$client" ] || die "run cargo build --release first"
command -v python3 >/dev/null || die "needs python3 (scrapes /metrics)"

ns=udpecho-scale-$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" route add local 198.18.0.0/16 dev lo
inns() { ip netns exec "$ns" "$@"; }

# The server answers every address of the range from the address asked.
ip netns exec "$ns" taskset -c 0 "$server" --host 0.0.0.0 --port 7007 -q --stop-on-empty never \
    >"$work/server.out" 2>"$work/server.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/server.out" && break; sleep 0.05; done
grep -q "listening on" "$work/server.out" || die "server did not start: $(cat "$work/server.err")"

# file_sd JSON with N targets: the reference in a group of its own, probed
# every 10 ms (2,000 round trips in a 20 s window, so its mean is a figure and
# not noise), then N - 1 others at --interval from 198.18.0.3 onwards.
targets_file() {
    python3 - "$1" <<'EOF'
import json, sys
n = int(sys.argv[1])
others = [f"198.18.{(i + 1) // 254}.{(i + 1) % 254 + 1}:7007" for i in range(1, n)]
groups = [{"targets": ["198.18.0.1:7007"], "labels": {"bench": "ref", "__param_interval": "10ms"}}]
if others:
    groups.append({"targets": others, "labels": {"bench": "scale"}})
print(json.dumps(groups))
EOF
}

# Prints "sum count sent lost seconds" from one scrape of $1 (the reference's
# RTT sum and count, probes sent and lost over all targets, scrape time).
scrape() {
    inns python3 - "$1" <<'EOF'
import re, sys, time, urllib.request
t = time.monotonic()
body = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=30).read().decode()
took = time.monotonic() - t
ref = 'target="198.18.0.1:7007"'
def total(name, only_ref=False):
    s = 0.0
    for line in body.splitlines():
        if line.startswith(name + "{") and (not only_ref or ref in line):
            s += float(line.rsplit(" ", 1)[1])
    return s
print(total("udp_echo_client_rtt_seconds_sum", True), total("udp_echo_client_rtt_seconds_count", True),
      total("udp_echo_client_probes_sent_total"), total("udp_echo_client_probes_lost_total"), took,
      time.time(), total("udp_echo_client_fleet_receive_drops_total"), total("udp_echo_client_replies_late_total"))
EOF
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

printf '%-10s %-8s %8s %8s %15s %12s %8s %9s\n' prober targets cpu_core rss_mib ref_rtt_mean_us probes_per_s lost scrape_ms
port=9300
for n in $counts; do
    port=$((port + 1))
    targets_file "$n" >"$work/targets-$n.json"
    # Not through inns: $! must be the prober itself (ip netns exec and
    # taskset exec it), not a subshell.
    ip netns exec "$ns" taskset -c 1 "$client" --targets "$work/targets-$n.json" --metrics "127.0.0.1:$port" \
        -i "$interval" -t 1 >"$work/prober-$n.out" 2>"$work/prober-$n.err" &
    pid=$!
    pids+=("$pid")
    sleep "$warmup"
    kill -0 "$pid" 2>/dev/null || die "prober exited: $(cat "$work/prober-$n.err")"
    read -r s0 c0 sent0 lost0 _ w0 _ _ < <(scrape "127.0.0.1:$port")
    t0=$(ticks "$pid")
    sleep "$duration"
    t1=$(ticks "$pid")
    read -r s1 c1 sent1 lost1 took w1 drops late < <(scrape "127.0.0.1:$port")
    echo "  (prober receive drops so far: $drops, late replies $late; kernel: $(ip netns exec "$ns" awk '/^Udp:/ {getline; print "RcvbufErrors " $6}' /proc/net/snmp))" >&2
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    python3 - "$n" "$t0" "$t1" "$hz" "$duration" "$rss" "$s0" "$c0" "$s1" "$c1" "$sent0" "$sent1" "$lost0" "$lost1" "$took" "$w0" "$w1" <<'EOF'
import sys
n, t0, t1, hz, d, rss, s0, c0, s1, c1, sent0, sent1, lost0, lost1, took, w0, w1 = sys.argv[1:]
cpu = (float(t1) - float(t0)) / float(hz) / float(d)
dc = float(c1) - float(c0)
mean = (float(s1) - float(s0)) / dc * 1e6 if dc else float("nan")
# All probes (the reference's 100/s too) per second between the two scrapes.
rate = (float(sent1) - float(sent0)) / (float(w1) - float(w0))
print(f"{'udp-echo':<10} {n:<8} {cpu:8.3f} {int(rss) / 1024:8.1f} {mean:15.1f} {rate:12.0f} "
      f"{float(lost1) - float(lost0):8.0f} {float(took) * 1000:9.1f}")
EOF
    kill "$pid"
    wait "$pid" 2>/dev/null || true
done

if [ "$smokeping" = 1 ]; then
    command -v prometheus-smokeping-prober >/dev/null || die "--smokeping: prometheus-smokeping-prober is not installed"
    for n in $counts; do
        port=$((port + 1))
        hosts=$(python3 -c "import json,sys; print(' '.join(t.rsplit(':',1)[0] for g in json.load(open(sys.argv[1])) for t in g['targets']))" "$work/targets-$n.json")
        # shellcheck disable=SC2086 # one argument per host
        ip netns exec "$ns" taskset -c 1 prometheus-smokeping-prober --privileged --web.listen-address="127.0.0.1:$port" \
            --ping.interval="${interval}s" $hosts >"$work/smokeping-$n.out" 2>&1 &
        pid=$!
        pids+=("$pid")
        sleep "$warmup"
        t0=$(ticks "$pid"); sleep "$duration"; t1=$(ticks "$pid")
        rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
        python3 -c "import sys; n,t0,t1,hz,d,rss=sys.argv[1:]; print(f\"{'smokeping':<10} {n:<8} {(float(t1)-float(t0))/float(hz)/float(d):8.3f} {int(rss)/1024:8.1f}\")" \
            "$n" "$t0" "$t1" "$hz" "$duration" "$rss"
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
fi
