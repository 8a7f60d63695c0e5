use super::*;

fn json(text: &str) -> Result<Vec<TargetGroup>, String> {
    parse(text, false)
}

fn yaml(text: &str) -> Result<Vec<TargetGroup>, String> {
    parse(text, true)
}

#[test]
fn a_json_file_gives_its_groups() {
    let groups = json(
        r#"[
  {"targets": ["10.0.0.1:7", "[::1]:7"], "labels": {"site": "a", "__param_mode": "stamp"}},
  {"targets": ["echo.example.org:9999"]}
]"#,
    )
    .unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].targets, ["10.0.0.1:7", "[::1]:7"]);
    assert_eq!(groups[0].labels["site"], "a");
    assert_eq!(groups[0].labels["__param_mode"], "stamp");
    assert!(groups[1].labels.is_empty());
    assert_eq!(json("[]").unwrap(), vec![]);
}

#[test]
fn a_yaml_file_gives_the_same_groups() {
    let groups = yaml(
        "- targets:\n    - 10.0.0.1:7\n    - '[::1]:7'\n  labels:\n    site: a\n    __param_mode: stamp\n- targets: [echo.example.org:9999]\n",
    )
    .unwrap();
    let same = json(
        r#"[{"targets": ["10.0.0.1:7", "[::1]:7"], "labels": {"site": "a", "__param_mode": "stamp"}},
            {"targets": ["echo.example.org:9999"]}]"#,
    )
    .unwrap();
    assert_eq!(groups, same);
}

/// Every error is one line that starts with where the parse stopped.
fn error_at(result: Result<Vec<TargetGroup>, String>, line: usize, words: &str) {
    let e = result.expect_err(words);
    assert!(!e.contains('\n'), "{e}");
    assert!(e.starts_with(&format!("line {line}, column ")), "{e}");
    assert!(e.contains(words), "{words} not in {e}");
}

#[test]
fn json_errors_name_line_and_column() {
    error_at(json("[\n {\"targets\": [\"a:7\",]}\n]"), 2, "");
    error_at(json("[\n {\"targets\": [\"a:0\"]}\n]"), 2, "\"a:0\"");
    error_at(json("[\n {\"targets\": [\"::1:7\"]}\n]"), 2, "brackets");
    error_at(
        json("[\n {\"target\": [\"a:7\"]}\n]"),
        2,
        "unknown field `target`",
    );
    error_at(
        json("[\n {\"labels\": {}}\n]"),
        2,
        "missing field `targets`",
    );
    error_at(
        json("[\n {\"targets\": [\"a:7\"],\n  \"labels\": {\"a-b\": \"x\"}}]"),
        3,
        "\"a-b\"",
    );
    error_at(
        json("[{\"targets\": [\"a:7\"],\n \"labels\": {\"__param_mode\": \"icmp\"}}]"),
        2,
        "__param_mode",
    );
    error_at(
        json("[{\"targets\": [\"a:7\"], \"labels\": {\"x\": 1}}]"),
        1,
        "",
    );
    error_at(
        json("{\"targets\": [\"a:7\"]}"),
        1,
        "a list of target groups",
    );
    error_at(json("[] []"), 1, "trailing");
}

#[test]
fn yaml_errors_name_line_and_column() {
    error_at(yaml("- targets:\n    - a:0\n"), 2, "\"a:0\"");
    error_at(
        yaml("- targets: [a:7]\n  labels:\n    1x: y\n"),
        3,
        "\"1x\"",
    );
    // An unknown field: where its group starts (the YAML parser's mark).
    error_at(
        yaml("- targets: [a:7]\n  lables: {}\n"),
        1,
        "unknown field `lables`",
    );
    error_at(yaml("- targets: [a:7\n"), 2, "");
}

#[test]
fn too_many_targets_are_refused_while_parsing() {
    let mut text = String::from("[{\"targets\": [");
    for i in 0..=MAX_TARGETS {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!("\"h{i}:7\""));
    }
    text.push_str("]}]");
    let e = json(&text).unwrap_err();
    assert!(
        e.contains(&format!("more than {MAX_TARGETS} targets")),
        "{e}"
    );
    // Exactly the bound is fine.
    let ok = text.replace(&format!(",\"h{MAX_TARGETS}:7\""), "");
    assert_eq!(json(&ok).unwrap()[0].targets.len(), MAX_TARGETS);
}

#[test]
fn too_many_groups_are_refused() {
    let mut text = String::from("[");
    for i in 0..=MAX_GROUPS {
        if i > 0 {
            text.push(',');
        }
        text.push_str("{\"targets\":[]}");
    }
    text.push(']');
    let e = json(&text).unwrap_err();
    assert!(e.contains("more than 100000 groups"), "{e}");
}

#[test]
fn a_file_past_the_size_bound_is_refused_unread() {
    let dir = std::env::temp_dir().join(format!("udp-echo-file-sd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.json");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_FILE_BYTES + 1).unwrap();
    let e = read(&path).unwrap_err();
    assert!(e.contains("larger than 64 MiB"), "{e}");
    let missing = read(&dir.join("missing.json")).unwrap_err();
    assert!(missing.contains("no such file"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn yaml_goes_by_the_extension() {
    assert!(is_yaml(Path::new("t.yml")));
    assert!(is_yaml(Path::new("t.YAML")));
    assert!(!is_yaml(Path::new("t.json")));
    assert!(!is_yaml(Path::new("targets")));
}

#[test]
fn yaml_aliases_are_counted_like_what_they_repeat() {
    // One group repeated by alias past the bound of targets: refused as
    // parsed, in bounded time, like the same groups written out.
    let mut text = String::from("- &g {targets: [a:7], labels: {x: y}}\n");
    for _ in 0..=MAX_TARGETS {
        text.push_str("- *g\n");
    }
    let started = std::time::Instant::now();
    let e = yaml(&text).unwrap_err();
    assert!(
        e.contains("more than") || e.contains("repetition limit"),
        "{e}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Nesting a list where a target goes is a type error at once (placed
    // at the anchor the alias repeats).
    let e = yaml("- targets: &t [a:7]\n- targets: [*t]\n").unwrap_err();
    assert!(e.contains("expected a string"), "{e}");
}
