#!/usr/bin/env bash
# Soak test (not part of `cargo test`): floods udp-echo-server on loopback from
# thousands of source addresses (127.3.x.y) for DURATION seconds (default 60)
# and samples, every second, the server's RSS and the kernel's drop counter for
# its socket. Prints one line per second and a first/last/max RSS summary.
#
#   scripts/soak.sh [server options...]     e.g. scripts/soak.sh --rate-limit 100
#
# Bounded: the flooder stops by itself after DURATION seconds; both processes
# are killed on exit. Needs python3 (for the flooder) and a release build.
set -euo pipefail
duration=${DURATION:-60}
sources=${SOURCES:-4096}
out=$(mktemp)
err=$(mktemp)
target/release/udp-echo-server --port 0 --stop-on-empty never "$@" > "$out" 2> "$err" &
server=$!
flooder=
cleanup() { kill "$server" ${flooder:+"$flooder"} 2>/dev/null || true; rm -f "$out" "$err"; }
trap cleanup EXIT
for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
inode=$(readlink /proc/$server/fd/* 2>/dev/null | sed -n 's/socket:\[\([0-9]*\)\]/\1/p' | head -1)

python3 - "$port" "$duration" "$sources" <<'PY' &
import os, random, socket, sys, time
port, duration, count = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((f"127.3.{i // 256}.{i % 256}", 0))
    s.setblocking(False)
    socks.append(s)
payloads = [os.urandom(n) for n in (0, 1, 64, 512, 1400, 9000, 65507)]
end = time.monotonic() + duration
target = ("127.0.0.1", port)
i = 0
while time.monotonic() < end:
    s = socks[i % count]
    try:
        s.sendto(payloads[i % len(payloads)], target)
        s.recv(65536)
    except OSError:
        pass
    i += 1
PY
flooder=$!

rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
drops() { awk -v ino="$inode" '$10 == ino {print $13}' /proc/net/udp; }
first=$(rss); max=$first; last=$first
echo "second  rss_kB  kernel_drops"
for ((t = 0; t <= duration; t++)); do
  last=$(rss); (( last > max )) && max=$last
  printf '%6d  %6d  %s\n' "$t" "$last" "$(drops)"
  sleep 1
done
wait "$flooder" 2>/dev/null || true
kill -TERM "$server"; wait "$server" || true
echo "RSS first ${first} kB, last ${last} kB, max ${max} kB over ${duration} s from ${sources} sources"
grep -o 'stopped by.*' "$err"
