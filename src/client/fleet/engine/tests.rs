use super::*;
use crate::client::fleet::spec::Settings;

fn resolved(target: &str, site: &str, interval_ms: u64) -> Resolved {
    Resolved {
        spec: Arc::new(TargetSpec {
            target: target.into(),
            labels: vec![("site".into(), site.into())].into(),
            settings: Settings {
                stamp: false,
                interval: Duration::from_millis(interval_ms),
                size: 64,
                tos: None,
                timeout: Duration::from_secs(1),
                rounds: None,
            },
        }),
        addr: target.parse().unwrap(),
    }
}

fn engine() -> Engine {
    let clock = Clock::new();
    Engine::new(
        clock,
        0,
        StampBase {
            key: None,
            format: TimeFormat::Ntp,
            ssid: 1,
        },
        SocketConfig::default(),
        Arc::new(FleetMetrics::new(clock, &[])),
    )
}

/// The metrics of `target`, by its string.
fn metrics_of(e: &Engine, target: &str) -> Option<Arc<TargetMetrics>> {
    let i = *e.by_target.get(target)?;
    e.slots[i as usize].as_ref().map(|s| Arc::clone(&s.metrics))
}

#[test]
fn a_reload_keeps_unchanged_targets_and_replaces_the_rest() {
    let mut e = engine();
    e.apply(vec![
        resolved("127.0.0.1:7", "a", 1000),
        resolved("127.0.0.1:8", "b", 1000),
        resolved("127.0.0.1:9", "c", 1000),
    ]);
    let kept = metrics_of(&e, "127.0.0.1:7").unwrap();
    let relabelled = metrics_of(&e, "127.0.0.1:8").unwrap();
    // Books move on: the kept target's must survive the reload.
    let i = e.by_target["127.0.0.1:7"] as usize;
    e.slots[i].as_mut().unwrap().books.sent(3, 10);
    e.apply(vec![
        resolved("127.0.0.1:7", "a", 1000),
        resolved("127.0.0.1:8", "B", 1000),
        resolved("127.0.0.1:10", "d", 1000),
    ]);
    assert!(Arc::ptr_eq(&kept, &metrics_of(&e, "127.0.0.1:7").unwrap()));
    let i = e.by_target["127.0.0.1:7"] as usize;
    assert_eq!(e.slots[i].as_ref().unwrap().books.counts().sent, 3);
    // Another label: another series, new books.
    assert!(!Arc::ptr_eq(
        &relabelled,
        &metrics_of(&e, "127.0.0.1:8").unwrap()
    ));
    assert!(metrics_of(&e, "127.0.0.1:9").is_none());
    assert!(metrics_of(&e, "127.0.0.1:10").is_some());
    assert_eq!(e.by_target.len(), 3);
    assert_eq!(e.slots.iter().flatten().count(), 3);
    // Replies are matched by address: the removed one's is foreign now.
    assert!(!e.by_addr.contains_key(&"127.0.0.1:9".parse().unwrap()));
    let text = e.metrics.render();
    assert!(!text.contains("127.0.0.1:9\""), "{text}");
    assert!(text.contains("udp_echo_client_fleet_targets 3"), "{text}");
}

#[test]
fn a_removed_targets_timers_are_dropped_and_its_slot_reused() {
    let mut e = engine();
    e.apply(vec![resolved("127.0.0.1:7", "a", 1000)]);
    e.apply(vec![resolved("127.0.0.1:8", "b", 1000)]);
    e.apply(vec![
        resolved("127.0.0.1:8", "b", 1000),
        resolved("127.0.0.1:9", "c", 1000),
    ]);
    // The first target's slot, freed, holds the third under a new generation.
    assert_eq!(e.slots.len(), 2);
    assert_eq!(e.generations[0], 1);
    assert_eq!(e.by_target["127.0.0.1:9"], 0);
    // Three send timers, one stale: only the two live targets' fire.
    let mut live = 0;
    while let Some(t) = e.schedule.pop_due(u64::MAX) {
        let slot = e.slots[t.slot as usize].as_ref().unwrap();
        live += u32::from(slot.generation == t.generation);
    }
    assert_eq!(live, 2);
}

#[test]
fn two_targets_at_one_address_probe_only_the_first() {
    let mut e = engine();
    let mut other = resolved("127.0.0.1:7", "a", 1000);
    other.spec = Arc::new(TargetSpec {
        target: "localhost:7".into(),
        ..(*other.spec).clone()
    });
    e.apply(vec![resolved("127.0.0.1:7", "a", 1000), other]);
    assert_eq!(e.by_target.len(), 1);
    assert!(e.by_target.contains_key("127.0.0.1:7"));
}
