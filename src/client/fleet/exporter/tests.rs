use super::*;

#[test]
fn a_query_gives_target_mode_and_burst() {
    let q = ProbeQuery::parse(
        "target=%5B%3A%3A1%5D%3A7&mode=stamp&count=10&interval=0.05&timeout=0.5&module=udp",
        None,
    )
    .unwrap();
    assert_eq!((q.host.as_str(), q.port), ("::1", 7));
    assert_eq!(q.mode, ProbeMode::Stamp);
    assert_eq!(q.count, 10);
    assert_eq!(q.interval, Duration::from_millis(50));
    assert_eq!(q.timeout, Duration::from_millis(500));
    let q = ProbeQuery::parse("target=[::1]:7", None).unwrap();
    assert_eq!((q.host.as_str(), q.port, q.count), ("::1", 7, 5));
    let q = ProbeQuery::parse("target=echo.example.net:9999&size=1400", None).unwrap();
    assert_eq!((q.host.as_str(), q.size), ("echo.example.net", Some(1400)));
}

#[test]
fn bad_queries_are_refused_with_a_reason() {
    let refused = |query: &str| ProbeQuery::parse(query, None).unwrap_err();
    assert!(refused("").contains("missing parameter target"));
    assert!(refused("count=3").contains("missing parameter target"));
    assert!(refused("target=127.0.0.1:7&count=100000").contains("count"));
    assert!(refused("target=127.0.0.1:7&count=0").contains("count"));
    assert!(refused("target=127.0.0.1:7&count=x").contains("count"));
    assert!(refused("target=127.0.0.1:7&interval=2").contains("interval"));
    assert!(refused("target=127.0.0.1:7&interval=NaN").contains("interval"));
    assert!(refused("target=127.0.0.1:7&interval=-1").contains("interval"));
    assert!(refused("target=127.0.0.1:7&mode=icmp").contains("mode"));
    assert!(refused("target=127.0.0.1:7&cuont=3").contains("unknown parameter"));
    assert!(refused("target=127.0.0.1:7&size=8").contains("size"));
    assert!(refused("target=127.0.0.1:7&size=65507").contains("size"));
    assert!(refused("target=127.0.0.1").contains("HOST:PORT"));
    assert!(refused("target=::1:7").contains("HOST:PORT"));
    assert!(refused("target=127.0.0.1:0").contains("HOST:PORT"));
    assert!(refused("target=:7").contains("HOST:PORT"));
    assert!(refused("target=127.0.0.1:7%zz").contains("percent"));
    assert!(refused("target=%FF:7").contains("UTF-8"));
    // 100 x 0.1 s + 1 s = 11 s: over the 10 s a burst may take.
    assert!(refused("target=127.0.0.1:7&count=100&interval=0.1").contains("over the 10 s"));
    // Interval 0: each probe waits for its reply or timeout, 11 x 1 s.
    assert!(refused("target=127.0.0.1:7&count=11&interval=0").contains("over the 10 s"));
    let q = ProbeQuery::parse("target=127.0.0.1:7&count=10&interval=0", None).unwrap();
    assert_eq!(q.burst(), Duration::from_secs(10));
    assert!(
        refused("target=127.0.0.1:7&mode=stamp&size=45").contains("size"),
        "a STAMP size that does not fit"
    );
}

#[test]
fn the_burst_must_fit_the_scrape_timeout() {
    let query = "target=127.0.0.1:7&count=10&interval=0.2";
    // 10 x 0.2 + 1 = 3 s.
    assert!(ProbeQuery::parse(query, Some("4")).is_ok());
    let e = ProbeQuery::parse(query, Some("3")).unwrap_err();
    assert!(e.contains("scrape timeout of 3 s"), "{e}");
    assert!(ProbeQuery::parse(query, Some("soon")).is_err());
}

#[test]
fn percent_decoding() {
    assert_eq!(decode("a%20b+c").unwrap(), "a b c");
    assert_eq!(decode("%5b%3A%3a1%5D").unwrap(), "[::1]");
    assert!(decode("%").is_err());
    assert!(decode("%4").is_err());
    assert!(decode("%+1").is_err());
    assert_eq!(decode("%C3%A9").unwrap(), "é");
}

#[test]
fn beyond_the_limit_a_probe_is_refused_at_once() {
    let handler = ProbeHandler::new();
    let mut jobs = Vec::new();
    for _ in 0..MAX_CONCURRENT {
        match handler.probe("target=127.0.0.1:7", None) {
            Reply::Later(job) => jobs.push(job),
            Reply::Now(r) => panic!("refused: {r:?}"),
        }
    }
    match handler.probe("target=127.0.0.1:7", None) {
        Reply::Now(r) => assert_eq!(r.status, 503),
        Reply::Later(_) => panic!("one more than the limit ran"),
    }
    // A job dropped unrun frees its slot.
    jobs.pop();
    assert!(matches!(
        handler.probe("target=127.0.0.1:7", None),
        Reply::Later(_)
    ));
    let text = handler.stats().render();
    assert!(text.contains("udp_echo_exporter_probes_refused_total{reason=\"busy\"} 1"));
}

#[test]
fn success_needs_an_intact_reply_and_no_corrupt_one() {
    let mut result = ProbeResult {
        peer: None,
        counts: Counts::default(),
        latency: Latency::new(),
        duration: Duration::ZERO,
    };
    assert!(!result.success());
    assert!(render(&result).contains("probe_success 0\n"));
    assert!(render(&result).contains("probe_udp_echo_loss_ratio 1\n"));
    result.counts.sent = 5;
    result.counts.received = 4;
    result.counts.lost = 1;
    assert!(result.success());
    let text = render(&result);
    assert!(text.contains("probe_success 1\n"));
    assert!(text.contains("probe_udp_echo_loss_ratio 0.2\n"));
    result.counts.corrupt = 1;
    assert!(!result.success());
}
