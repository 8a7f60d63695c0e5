# Sourced by the benchmark scripts: how much CPU time the hypervisor gave to
# other guests while they ran ("steal" in /proc/stat), so that figures taken
# on a busy host say so. On a shared VM this moves ratios by tens of percent
# (2026-12-04: 19% loss at 1 M/s with 40% steal, under 0.1% with none).
#   steal_mark      before the runs
#   steal_report    after them: one line on stdout, a warning above 2%
steal_ticks() { awk '/^cpu /{print $9; exit}' /proc/stat 2>/dev/null || echo 0; }
steal_mark() {
  steal_t0=$(steal_ticks)
  steal_s0=$(date +%s.%N)
}
steal_report() {
  python3 - "$steal_t0" "$(steal_ticks)" "$steal_s0" "$(date +%s.%N)" "$(nproc)" "$(getconf CLK_TCK)" <<'PY'
import sys
t0, t1, s0, s1, cpus, hz = (float(a) for a in sys.argv[1:])
pct = 100 * (t1 - t0) / hz / max((s1 - s0) * cpus, 1e-9)
note = " — WARNING: the host was busy; these figures are not comparable" if pct > 2 else ""
print(f"host steal: {pct:.1f}% of this VM's CPU time during these runs{note}")
PY
}
