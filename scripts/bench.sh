#!/usr/bin/env bash
# Runs bench/compare.sh REPS times (default 3) with the same arguments and
# prints each run's table, then the median of every row: round trips/s, ratio
# to the first row (median of the per-run ratios), p50, p99.
#
#   scripts/bench.sh [--reps N] [compare.sh options and NAME='command' rows]
#
# BENCH_KIT=DIR runs DIR/compare.sh instead (another kit with the same
# interface, see scripts/kit.sh). Run from the repository root after
# `cargo build --release`; needs a C compiler (cc), taskset and python3.
set -euo pipefail
reps=3
if [[ "${1:-}" == "--reps" ]]; then reps=$2; shift 2; fi
. "$(dirname "${BASH_SOURCE[0]}")/kit.sh"
. "$(dirname "${BASH_SOURCE[0]}")/steal.sh"
steal_mark
[[ -x "$kit/compare.sh" ]] || { echo "bench.sh: no compare.sh in $kit" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((i = 1; i <= reps; i++)); do
  "$kit/compare.sh" "$@" > "$out/run$i.txt" 2>&1 || true
  echo "### run $i"
  grep '^|' "$out/run$i.txt" || { cat "$out/run$i.txt"; exit 1; }
  echo
done
echo "### median of $reps runs ($(date -u '+%Y-%m-%d %H:%M UTC'), compare.sh $*)"
python3 - "$out" "$reps" <<'PY'
import statistics, sys, pathlib
out, reps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
rows = {}
order = []
for i in range(1, reps + 1):
    for line in (out / f"run{i}.txt").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) < 6 or cells[0] in ("name",) or set(cells[0]) <= set("-:"):
            continue
        try:
            rt, ratio, p50, p99 = (float(cells[j]) for j in range(1, 5))
        except ValueError:
            continue
        if cells[0] not in rows:
            order.append(cells[0])
        rows.setdefault(cells[0], []).append((rt, ratio, p50, p99, cells[5]))
print("| name | round trips/s | ratio to first row | p50 µs | p99 µs | lost (per run) |")
print("|---|---:|---:|---:|---:|---|")
for name in order:
    r = rows[name]
    med = lambda k: statistics.median(x[k] for x in r)
    print(f"| {name} | {med(0):.0f} | {med(1):.3f} | {med(2):.1f} | {med(3):.1f} | {', '.join(x[4] for x in r)} |")
PY
steal_report
