#!/usr/bin/env python3
"""Copies the docs the Debian package ships into OUT, links fixed for it.

Usage: package-docs.py OUT   (run from the repository root; scripts/deb.sh
does, into target/assets/doc, which Cargo.toml's deb assets install under
/usr/share/doc/udp-echo/).

The Markdown links of the source tree point at files the package does not
ship (ARCHITECTURE.md, src/, contrib/, LICENSE). In the copies, a link to a
shipped file stays; LICENSE becomes the package's `copyright` file; a systemd
unit of contrib/ becomes its installed path, /lib/systemd/system/NAME; any
other target becomes plain text naming the file in the source tree. Links in
code blocks and code spans are examples and stay as they are.
"""

import glob
import os
import posixpath
import re
import shutil
import sys

# Shipped pages and pictures, as repository paths; the layout is kept, so a
# link between two of them needs no change.
SHIPPED = ["README.md", "CHANGELOG.md", "BENCHMARKS.md"] + sorted(
    glob.glob("docs/*.md") + glob.glob("docs/*.svg")
)
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)([^)]*)\)")


def code_spans(line):
    """The [start, end) ranges of the line's `code spans`."""
    ticks = [i for i, c in enumerate(line) if c == "`"]
    return [(ticks[i], ticks[i + 1]) for i in range(0, len(ticks) - 1, 2)]


def rewrite(page, line):
    spans = code_spans(line)

    def fix(m):
        bang, text, target, title = m.groups()
        if "://" in target or target.startswith(("#", "mailto:")):
            return m.group(0)
        file, hash_, fragment = target.partition("#")
        path = posixpath.normpath(posixpath.join(posixpath.dirname(page), file))
        if path in SHIPPED:
            return m.group(0)
        up = "../" * page.count("/")
        if path == "LICENSE":
            text = "copyright" if text == "LICENSE" else text
            return f"{bang}[{text}]({up}copyright{title})"
        if path.startswith("contrib/") and path.endswith((".service", ".socket")):
            return f"`/lib/systemd/system/{posixpath.basename(path)}`"
        plain = text.strip("`")
        if plain.rstrip("/") in (path, posixpath.basename(path)):
            return f"`{path}` (in the source tree)"
        return f"{text} (`{path}` in the source tree)"

    out = []
    last = 0
    for m in LINK.finditer(line):
        # A link that starts inside a code span is an example.
        if any(a < m.start() < b for a, b in spans):
            continue
        out.append(line[last : m.start()])
        out.append(fix(m))
        last = m.end()
    out.append(line[last:])
    return "".join(out)


def main():
    out = sys.argv[1]
    for page in SHIPPED:
        dest = os.path.join(out, page)
        os.makedirs(os.path.dirname(dest) or out, exist_ok=True)
        if not page.endswith(".md"):
            shutil.copyfile(page, dest)
            continue
        lines = []
        fence = None
        with open(page, encoding="utf-8") as f:
            for line in f:
                stripped = line.lstrip()
                if fence:
                    if stripped.startswith(fence):
                        fence = None
                elif stripped.startswith(("```", "~~~")):
                    fence = stripped[:3]
                else:
                    line = rewrite(page, line)
                lines.append(line)
        with open(dest, "w", encoding="utf-8") as f:
            f.writelines(lines)


if __name__ == "__main__":
    main()
