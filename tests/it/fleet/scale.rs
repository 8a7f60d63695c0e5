//! The fleet at scale: 10,000 targets within SPEC §6's memory, and scrapes
//! that see each of 100 busy targets whole.

use super::*;

/// SPEC §6: 10,000 targets in at most 64 MiB, scrapes included (each scrape
/// builds ~24 MB of text). The targets are loopback addresses nobody answers
/// on (127.1.x.y:9), probed every 5 s: only their memory is measured here.
#[test]
fn ten_thousand_targets_fit_in_64_mib_scrapes_included() {
    let targets: Vec<String> = (0..10_000)
        .map(|i| format!("\"127.1.{}.{}:9\"", i / 250, i % 250 + 1))
        .collect();
    let dir = Dir::new("10k");
    let file = dir.write(
        "targets.json",
        &format!(
            "[{{\"targets\": [{}], \"labels\": {{\"site\": \"x\"}}}}]",
            targets.join(",")
        ),
    );
    let fleet = Fleet::start(&file, &["-i", "5", "-q"]);
    for _ in 0..3 {
        let body = fleet.scrape();
        assert_eq!(
            sample(&body, "udp_echo_client_fleet_targets"),
            Some(10_000.0)
        );
        let series = body
            .lines()
            .filter(|l| l.starts_with("udp_echo_client_probes_sent_total{"))
            .count();
        assert_eq!(series, 10_000);
    }
    let rss = rss_kib(fleet.child.id());
    assert!(rss <= 64 * 1024, "{rss} KiB with 10,000 targets");
}

/// Every scrape sees each target whole: never more received than sent, nor
/// more round trips than replies, nor more settled than sent — whatever the
/// moment (counters read at different moments give the "negative loss" of
/// cloudprober#1035). 100 loopback reflectors at 100 probes/s each, scraped
/// 50 times.
#[test]
fn every_scrape_is_consistent_per_target() {
    use std::os::fd::AsRawFd;
    let sockets: Vec<std::net::UdpSocket> = (0..100)
        .map(|_| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let addrs: Vec<String> = sockets
        .iter()
        .map(|s| s.local_addr().unwrap().to_string())
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let reflector = thread::spawn(move || {
        let mut fds: Vec<libc::pollfd> = sockets
            .iter()
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let mut buf = [0u8; 2048];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: `fds` is a live, writable array of pollfd of this length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
            if n <= 0 {
                continue;
            }
            for (fd, s) in fds.iter().zip(&sockets) {
                if fd.revents != 0 {
                    while let Ok((len, from)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(&buf[..len], from);
                    }
                }
            }
        }
    });
    let dir = Dir::new("consistent");
    let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    let file = dir.write(
        "targets.json",
        &format!("[{{\"targets\": [{}]}}]", list.join(",")),
    );
    let fleet = Fleet::start(&file, &["-i", "0.01"]);
    let mut checked = 0;
    for _ in 0..50 {
        let body = fleet.scrape();
        for a in &addrs {
            let v = |name: &str| value(&body, name, a, "").unwrap_or(0.0);
            let (sent, received, lost) = (
                v("probes_sent_total"),
                v("probes_received_total"),
                v("probes_lost_total"),
            );
            assert!(
                received + lost <= sent,
                "{a}: sent {sent}, received {received}, lost {lost}"
            );
            assert!(
                v("rtt_seconds_count") <= received,
                "{a}: more round trips than replies"
            );
            checked += u32::from(sent > 0.0);
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reflector.join().unwrap();
    assert!(checked > 1000, "only {checked} target samples had probes");
}
