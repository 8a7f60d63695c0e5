#!/usr/bin/env bash
# Builds the Debian package of udp-echo into target/debian/:
#   1. the release binaries (cargo build --release --locked);
#   2. the man pages and completions, from the binaries' own --generate, into
#      target/assets/ (man pages gzipped -9n, as Debian ships them), and the
#      docs with their links fixed for the package (scripts/package-docs.py);
#   3. the .deb: `cargo deb --no-build` where cargo-deb is installed, else the
#      same file list (Cargo.toml's [package.metadata.deb] assets, read with
#      python3's tomllib) staged and packed by dpkg-deb --build --root-owner-group.
# CI takes the dpkg-deb path: installing cargo-deb from source costs ~3 CPU
# minutes, more than the whole package step (see docs/install.md).
# Prints the path of the .deb as its last line. UDP_ECHO_DEB_TOOL=dpkg-deb
# forces the staged path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --locked
bin=target/release
assets=target/assets
rm -rf "$assets" && mkdir -p "$assets"
for program in udp-echo-server udp-echo-client; do
    "$bin/$program" --generate man | gzip -9n >"$assets/$program.1.gz"
    "$bin/$program" --generate complete-bash >"$assets/$program.bash"
    "$bin/$program" --generate complete-zsh >"$assets/_$program"
    "$bin/$program" --generate complete-fish >"$assets/$program.fish"
done
# The docs, with links to files the package does not ship rewritten.
python3 scripts/package-docs.py "$assets/doc"

tool=${UDP_ECHO_DEB_TOOL:-}
if [ -z "$tool" ]; then
    if cargo deb --version >/dev/null 2>&1; then tool=cargo-deb; else tool=dpkg-deb; fi
fi
if [ "$tool" = cargo-deb ]; then
    cargo deb --no-build --locked 2>&1 | tail -n 1
    exit 0
fi

# The staged path: one package directory with DEBIAN/control, the assets at
# their destinations, the copyright file cargo-deb would write.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
root=target/debian/stage
rm -rf "$root" && mkdir -p "$root/DEBIAN"
python3 - "$root" <<'PY'
import glob, os, shutil, stat, sys, tomllib
root = sys.argv[1]
with open("Cargo.toml", "rb") as f:
    deb = tomllib.load(f)["package"]["metadata"]["deb"]
for source, dest, mode in deb["assets"]:
    files = sorted(glob.glob(source))
    if not files:
        sys.exit(f"deb.sh: asset {source} does not exist")
    for path in files:
        # A destination ending in / is a directory (cargo-deb's rule).
        target = os.path.join(root, dest + os.path.basename(path) if dest.endswith("/") else dest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(path, target)
        os.chmod(target, int(mode, 8))
with open(os.path.join(root, "DEBIAN", "description"), "w") as f:
    f.write(deb["extended-description"])
PY
doc="$root/usr/share/doc/udp-echo"
mkdir -p "$doc"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: udp-echo"
    echo
    echo "Files: *"
    echo "Copyright: udp-echo developers"
    echo "License: MIT"
    sed 's/^$/./; s/^/ /' LICENSE
} >"$doc/copyright"
chmod 644 "$doc/copyright"
strip --strip-unneeded "$root/usr/bin/"udp-echo-*

# Depends: the newest glibc symbol version the binaries use, and libgcc_s.
glibc=$(objdump -T "$root/usr/bin/"udp-echo-* | sed -n 's/.*GLIBC_\([0-9.]*\).*/\1/p' | sort -uV | tail -n 1)
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
summary=$(sed -n 's/^description = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
{
    echo "Package: udp-echo"
    echo "Version: $version-1"
    echo "Architecture: $arch"
    echo "Maintainer: udp-echo developers"
    echo "Installed-Size: $size"
    echo "Depends: libc6 (>= $glibc), libgcc-s1"
    echo "Section: net"
    echo "Priority: optional"
    echo "Description: $summary"
    fold -s -w 78 "$root/DEBIAN/description" | sed 's/ *$//; s/^/ /'
    echo
} >"$root/DEBIAN/control"
rm "$root/DEBIAN/description"
deb="target/debian/udp-echo_${version}-1_${arch}.deb"
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
echo "$deb"
