//! Unit tests of `client::fleet::metrics`.

use super::*;
use crate::client::fleet::spec::Settings;
use std::time::Duration;

fn spec(target: &str, stamp: bool) -> TargetSpec {
    TargetSpec {
        target: target.into(),
        labels: vec![("site".into(), "a \"b\"".into())].into(),
        settings: Settings {
            stamp,
            interval: Duration::from_secs(1),
            size: 64,
            tos: None,
            timeout: Duration::from_secs(1),
            rounds: None,
        },
    }
}

#[test]
fn every_target_has_its_series_with_its_labels() {
    let m = FleetMetrics::new(Clock::new(), &[]);
    let a = Arc::new(TargetMetrics::new(&spec("127.0.0.1:7", false), 0));
    let b = Arc::new(TargetMetrics::new(&spec("[::1]:862", true), 0));
    let counts = Counts {
        sent: 3,
        received: 2,
        lost: 1,
        ..Counts::default()
    };
    let reply = Reply {
        now_ns: 5,
        rtt_ns: Some(120_000),
        dscp_changed: true,
    };
    a.update(&counts, Some(reply), None);
    let figures = StampFigures {
        forward: (1, 0.5),
        reverse: (1, -0.25),
        invalid: 0,
        lost_split: Some((1, 0, 0)),
    };
    b.update(&Counts::default(), None, Some(figures));
    m.publish(vec![a, b]);
    let text = m.render();
    for line in [
        "udp_echo_client_probes_sent_total{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\"} 3",
        "udp_echo_client_probes_lost_total{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\"} 1",
        "udp_echo_client_rtt_seconds_bucket{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\",le=\"0.00025\"} 1",
        "udp_echo_client_rtt_seconds_count{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\"} 1",
        "udp_echo_client_replies_dscp_changed_total{target=\"127.0.0.1:7\",site=\"a \\\"b\\\"\"} 1",
        "udp_echo_client_stamp_owd_reverse_delay_sum_seconds{target=\"[::1]:862\",site=\"a \\\"b\\\"\"} -0.25",
        "udp_echo_client_stamp_lost_forward{target=\"[::1]:862\",site=\"a \\\"b\\\"\"} 1",
        "udp_echo_client_fleet_targets 2",
        "# TYPE udp_echo_client_last_reply_age_seconds gauge",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(!text.contains("owd_forward_delay_sum_seconds{target=\"127.0.0.1:7\""));
    // A removed target's series leave.
    m.publish(Vec::new());
    assert!(!m.render().contains("127.0.0.1:7"));
}
