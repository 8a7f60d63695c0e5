# Sourced by the benchmark scripts: which benchmark kit they use, and its build.
#
# BENCH_KIT names the kit's folder: this repository's bench/ by default, or
# any kit with the same files and flags (refserver.c, loadgen.c, compare.sh),
# e.g. an independent one to check this kit's figures against. The C tools are
# built into BENCH_BUILD_DIR: by default target/bench for bench/ (where
# bench/compare.sh builds them) and ${TMPDIR:-/tmp}/udp-echo-bench-build for
# another kit, so two kits never share binaries.
kit_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kit=${BENCH_KIT:-$kit_root/bench}
if [ ! -f "$kit/refserver.c" ] || [ ! -f "$kit/loadgen.c" ]; then
    echo "$(basename "$0"): no benchmark kit (refserver.c, loadgen.c) in $kit: check BENCH_KIT" >&2
    exit 2
fi
kit=$(cd "$kit" && pwd)
if [ "$kit" = "$kit_root/bench" ]; then
    build=${BENCH_BUILD_DIR:-$kit_root/target/bench}
else
    build=${BENCH_BUILD_DIR:-${TMPDIR:-/tmp}/udp-echo-bench-build}
fi

# Compile refserver and loadgen into $build unless the binary is newer than
# its source and was built from it.
build_kit() {
    local tool src bin
    mkdir -p "$build"
    for tool in refserver loadgen; do
        src=$kit/$tool.c bin=$build/$tool
        if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$(cat "$bin.source" 2>/dev/null)" != "$src" ]; then
            "${CC:-cc}" -O2 -Wall -Wextra -pthread -o "$bin" "$src" || { echo "building $src failed" >&2; exit 2; }
            echo "$src" >"$bin.source"
        fi
    done
}
