//! The documentation holds together: every relative link in the Markdown a
//! user reads (README.md, docs/*.md and the other top-level pages) names a
//! file that exists, every `#fragment` names a heading of its page (GitHub's
//! slugs), and the README stays short enough to read on one screenful or two.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::skip;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The longest the README may grow: details belong in docs/.
const README_MAX_LINES: usize = 250;

/// The Markdown pages whose links are checked: the top-level ones and docs/.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = Vec::new();
    for dir in [root.to_path_buf(), root.join("docs")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

/// The lines of `text` outside fenced code blocks, with inline code removed
/// (a `[x](y)` inside backticks is an example, not a link).
fn prose(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match fence {
            Some(f) if trimmed.starts_with(f) => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => {
                let mut kept = String::new();
                for (i, part) in line.split('`').enumerate() {
                    if i % 2 == 0 {
                        kept.push_str(part);
                    }
                }
                out.push(kept);
            }
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, everything but letters, digits,
/// spaces, `-` and `_` dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page: each ATX heading's slug, repeats numbered `-1`,
/// `-2`, … as GitHub does. Inline code is kept in headings (its text counts).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..].replace('`', ""));
        let n = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    anchors
}

/// Every `[text](target)` (and image) target on the page's prose lines.
fn links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for line in prose(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            links.push(target.to_owned());
            rest = &rest[end..];
        }
    }
    links
}

/// The broken relative links and anchors of every page under `root`.
fn broken_links(root: &Path, pages: &[PathBuf]) -> Vec<String> {
    let mut broken = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(page).unwrap();
        let shown = page
            .strip_prefix(root)
            .unwrap_or(page)
            .display()
            .to_string();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                page.clone()
            } else if file.starts_with('/') {
                PathBuf::from(file)
            } else {
                page.parent().unwrap().join(file)
            };
            if !path.exists() {
                broken.push(format!("{shown}: ({target}): no {}", path.display()));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if path.extension().is_none_or(|e| e != "md") {
                broken.push(format!(
                    "{shown}: ({target}): an anchor into a non-Markdown file"
                ));
                continue;
            }
            let heads = anchors(&std::fs::read_to_string(&path).unwrap());
            if !heads.contains(fragment) {
                broken.push(format!(
                    "{shown}: ({target}): no heading #{fragment} in {}",
                    path.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn slugs_are_githubs() {
    assert_eq!(
        slug("Per-probe records: --probes FILE"),
        "per-probe-records---probes-file"
    );
    assert_eq!(slug("UDP GRO and GSO"), "udp-gro-and-gso");
    assert_eq!(
        slug("The socket-activated service (port 7)"),
        "the-socket-activated-service-port-7"
    );
    let twice = anchors("# A\n```\n# not a heading\n```\n## A\n## `--tos` marks\n");
    assert_eq!(
        twice.into_iter().collect::<Vec<_>>(),
        ["--tos-marks", "a", "a-1"]
    );
}

#[test]
fn the_checker_finds_a_broken_link_and_anchor() {
    let dir = std::env::temp_dir().join(format!("udp-echo-docs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.md");
    std::fs::write(
        &page,
        "# Top\n[ok](#top) [gone](missing.md) [anchor](#nowhere) `[code](ignored.md)`\n",
    )
    .unwrap();
    let broken = broken_links(&dir, std::slice::from_ref(&page));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(broken.len(), 2, "{broken:#?}");
    assert!(broken[0].contains("(missing.md)"), "{broken:#?}");
    assert!(broken[1].contains("no heading #nowhere"), "{broken:#?}");
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let root = Path::new(ROOT);
    let broken = broken_links(root, &pages(root));
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_at_most_250_lines() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"
    );
}

#[test]
fn the_readme_starts_with_the_two_set_up_commands() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let first_block: Vec<&str> = readme
        .split("```")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        first_block[0].starts_with("cargo run --release --bin udp-echo-server")
            && first_block[1].starts_with("cargo test"),
        "{first_block:#?}"
    );
}

/// The docs as the .deb ships them (scripts/package-docs.py, which
/// scripts/deb.sh runs): every Cargo.toml doc asset is there, and every
/// relative link resolves inside /usr/share/doc/udp-echo, where `copyright`
/// sits beside README.md and no ARCHITECTURE.md, LICENSE or contrib/ exists.
#[test]
fn every_link_in_the_packaged_docs_resolves_in_the_package() {
    let out = std::env::temp_dir().join(format!("udp-echo-package-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let Ok(status) = Command::new("python3")
        .arg("scripts/package-docs.py")
        .arg(&out)
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .status()
    else {
        return skip("python3 is not installed: the packaged docs were not built");
    };
    assert!(status.success(), "scripts/package-docs.py: {status}");
    let cargo = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let mut assets = 0;
    for line in cargo.lines() {
        let Some(rest) = line.split("\"target/assets/doc/").nth(1) else {
            continue;
        };
        let source = rest.split('"').next().unwrap();
        let (dir, name) = source.rsplit_once('/').unwrap_or(("", source));
        let found = match name.strip_prefix('*') {
            Some(ext) => std::fs::read_dir(out.join(dir))
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(ext)),
            None => out.join(source).is_file(),
        };
        assert!(
            found,
            "Cargo.toml asset target/assets/doc/{source} not built"
        );
        assets += 1;
    }
    assert!(
        assets >= 4,
        "no doc assets from target/assets/doc in Cargo.toml"
    );
    // What scripts/deb.sh (or cargo-deb) adds beside them.
    std::fs::write(out.join("copyright"), "").unwrap();
    let broken = broken_links(&out, &pages(&out));
    std::fs::remove_dir_all(&out).unwrap();
    assert!(
        broken.is_empty(),
        "broken links in the package:\n{}",
        broken.join("\n")
    );
}
