//! What bad traffic gets: the checks a datagram passes before it is echoed.
//!
//! Pure decisions, no I/O, the clock injected: given a source address (and the
//! server's own), [`Rules::check`] and [`RateLimiter::allow`] say [`Decision::Echo`] or
//! [`Decision::Drop`] with a reason. The server's threads share one rate limiter
//! through [`SharedRateLimiter`], the one place that reads the clock and locks.
//! The rules, cheapest first:
//!
//! 1. `bad-source`: unspecified, broadcast or multicast sources (spoofed: no real
//!    host sends from them), and the server's own address and port (a datagram
//!    from itself would loop forever).
//! 2. `service-port`: source port 0, below 1024, or a well-known reflector port
//!    (SSDP 1900, mDNS 5353, memcached 11211). Another service's reply is never a
//!    probe, and echoing to it starts the echo/chargen loops of CVE-1999-0103
//!    and the 2024 "Loop DoS" (CVE-2024-2169). Off with `--allow-service-ports`;
//!    a STAMP reflector answers port 862, its senders' port.
//! 3. `not-allowed`: the source is outside every `--allow` network.
//! 4. `rate-limited`: the token bucket (`--rate-limit`) of the source's
//!    network (its IPv4 address or IPv6 /64 by default, `--rate-limit-prefix`)
//!    is empty.
//! 5. `loop`: the source keeps sending back what the server just sent it — an
//!    echo loop ([`loop_detect`], judged last, in the server's
//!    loop). Off with `--no-loop-detect`.
//!
//! IPv4-mapped IPv6 sources (`::ffff:a.b.c.d`, seen on dual-stack sockets) are
//! judged as the IPv4 address they are.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

pub mod loop_detect;
mod rate;

pub use crate::net::cidr::{Cidr, parse_cidr, unmap};
pub use rate::{RATE_LIMIT_SOURCES, RateLimiter, RatePrefix, SharedRateLimiter, parse_rate_prefix};

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Source port 0, < 1024, or a reflector port (loop guard).
    ServicePort,
    /// Unspecified, broadcast, multicast, or the server's own address and port.
    BadSource,
    /// Outside every `--allow` network.
    NotAllowed,
    /// Over the source's `--rate-limit` budget.
    RateLimited,
    /// In an echo loop with the server, or cooling down after one.
    Loop,
    /// Not a packet the server's mode answers: a STAMP packet with a wrong
    /// HMAC (`--stamp`).
    Malformed,
    /// A STAMP request shorter than its reply would be (`--stamp`): answering
    /// it would send a spoofed source more bytes than it sent.
    Short,
    /// A STAMP request that asked for no reply (`--stamp`: a Return Path
    /// TLV's Control Code of 0, RFC 9503), after passing every check.
    NoReply,
}

impl DropReason {
    /// Every reason, in the order the summary lists them.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::ServicePort,
        DropReason::BadSource,
        DropReason::NotAllowed,
        DropReason::RateLimited,
        DropReason::Loop,
        DropReason::Malformed,
        DropReason::Short,
        DropReason::NoReply,
    ];

    /// How many reasons there are: the length of per-reason counter arrays.
    pub const COUNT: usize = 8;

    /// Index into per-reason counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The reason's name in logs and summaries.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::ServicePort => "service-port",
            DropReason::BadSource => "bad-source",
            DropReason::NotAllowed => "not-allowed",
            DropReason::RateLimited => "rate-limited",
            DropReason::Loop => "loop",
            DropReason::Malformed => "malformed",
            DropReason::Short => "short",
            DropReason::NoReply => "no-reply",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The verdict on one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it back.
    Echo,
    /// Drop it silently, counting the reason.
    Drop(DropReason),
}

/// Source ports that are other services' reply ports: echoing to them can start
/// a loop or amplify a reflection attack.
pub const REFLECTOR_PORTS: [u16; 3] = [1900, 5353, 11211];

fn is_bad_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

/// What the guard enforces, free of command-line types. `Default` is the
/// command line's default: port rule on, every source, no rate limit, loop
/// detection on.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Echo to service and reflector ports too (`--allow-service-ports`).
    pub allow_service_ports: bool,
    /// Only these networks are answered; empty means all.
    pub allow: Vec<Cidr>,
    /// Datagrams per second per source network; `None` is unlimited.
    pub rate_limit: Option<u32>,
    /// What a source network is for `rate_limit` (`--rate-limit-prefix`).
    pub rate_limit_prefix: RatePrefix,
    /// Drop peers in an echo loop with the server ([`crate::server::guard::loop_detect`]);
    /// off with `--no-loop-detect`. The own-socket check stays on regardless.
    pub loop_detect: bool,
    /// Near-copy ping-pong allowed per peer before a cool-down
    /// (`--near-copy-budget`; 0: none); see [`crate::server::guard::loop_detect`].
    pub near_copy_budget: u32,
    /// Answer source port 862 despite the port rule (`--stamp`): routers'
    /// STAMP session-senders send from it, and a reflector cannot start a
    /// loop with another one, since it never answers a reflected packet.
    pub answer_stamp_port: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            allow_service_ports: false,
            allow: Vec::new(),
            rate_limit: None,
            rate_limit_prefix: RatePrefix::default(),
            loop_detect: true,
            near_copy_budget: crate::server::guard::loop_detect::NEAR_COPY_BUDGET,
            answer_stamp_port: false,
        }
    }
}

/// The stateless rules (everything but the rate limit): shared by all threads.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Every socket the server serves, addresses unmapped (one per distinct
    /// address and port: threads sharing one with `SO_REUSEPORT` count once).
    own: Vec<SocketAddr>,
    allow_service_ports: bool,
    answer_stamp_port: bool,
    allow: Vec<Cidr>,
}

impl Rules {
    /// Rules for a server bound to `local`.
    pub fn new(config: &GuardConfig, local: SocketAddr) -> Rules {
        Rules::serving(config, &[local])
    }

    /// Rules for a server serving every socket in `sockets` (several with
    /// socket activation): a datagram from any of them, arriving at any of
    /// them, is from the server itself.
    pub fn serving(config: &GuardConfig, sockets: &[SocketAddr]) -> Rules {
        let mut own: Vec<SocketAddr> = sockets
            .iter()
            .map(|s| SocketAddr::new(unmap(s.ip()), s.port()))
            .collect();
        own.sort_unstable();
        own.dedup();
        Rules {
            own,
            allow_service_ports: config.allow_service_ports,
            answer_stamp_port: config.answer_stamp_port,
            allow: config.allow.clone(),
        }
    }

    /// Rules 1–3 of the module docs.
    pub fn check(&self, source: SocketAddr) -> Decision {
        let ip = unmap(source.ip());
        let port = source.port();
        if is_bad_ip(ip) || self.is_self(ip, port) {
            return Decision::Drop(DropReason::BadSource);
        }
        let stamp_sender = self.answer_stamp_port && port == crate::stamp::STAMP_PORT;
        if !self.allow_service_ports
            && !stamp_sender
            && (port < 1024 || REFLECTOR_PORTS.contains(&port))
        {
            return Decision::Drop(DropReason::ServicePort);
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(ip)) {
            return Decision::Drop(DropReason::NotAllowed);
        }
        Decision::Echo
    }

    /// One of the server's own sockets: its exact address, or — bound to a
    /// wildcard — its port on a loopback address (the only own address known
    /// without asking the kernel; the echo loop asks it about every other
    /// address, with [`LocalAddrs`](crate::net::local_addrs::LocalAddrs)).
    fn is_self(&self, ip: IpAddr, port: u16) -> bool {
        self.own.iter().any(|own| {
            port == own.port()
                && (ip == own.ip() || (own.ip().is_unspecified() && ip.is_loopback()))
        })
    }

    /// The ports of the server's sockets bound to a wildcard address: a
    /// datagram from one of them on any local address is from the server.
    pub fn wildcard_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.own
            .iter()
            .filter(|own| own.ip().is_unspecified())
            .map(SocketAddr::port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn rules(config: GuardConfig, local: &str) -> Rules {
        Rules::new(&config, addr(local))
    }

    #[test]
    fn ordinary_clients_are_echoed_v4_and_v6() {
        let r = rules(GuardConfig::default(), "0.0.0.0:9999");
        assert_eq!(r.check(addr("192.0.2.7:40000")), Decision::Echo);
        assert_eq!(r.check(addr("127.0.0.1:1024")), Decision::Echo);
        assert_eq!(r.check(addr("[2001:db8::7]:40000")), Decision::Echo);
        assert_eq!(r.check(addr("[::1]:65535")), Decision::Echo);
    }

    #[test]
    fn service_and_reflector_ports_are_dropped_unless_allowed() {
        let r = rules(GuardConfig::default(), "0.0.0.0:9999");
        for source in [
            "192.0.2.7:0",
            "192.0.2.7:7",
            "192.0.2.7:19",
            "192.0.2.7:53",
            "192.0.2.7:123",
            "192.0.2.7:1023",
            "192.0.2.7:1900",
            "192.0.2.7:5353",
            "192.0.2.7:11211",
            "[2001:db8::1]:53",
            "[::ffff:192.0.2.7]:19",
        ] {
            assert_eq!(
                r.check(addr(source)),
                Decision::Drop(DropReason::ServicePort),
                "{source}"
            );
        }
        let open = rules(
            GuardConfig {
                allow_service_ports: true,
                ..GuardConfig::default()
            },
            "0.0.0.0:9999",
        );
        assert_eq!(open.check(addr("192.0.2.7:53")), Decision::Echo);
        assert_eq!(open.check(addr("192.0.2.7:1900")), Decision::Echo);
    }

    #[test]
    fn a_stamp_reflector_answers_port_862_and_no_other_service_port() {
        let stamp = rules(
            GuardConfig {
                answer_stamp_port: true,
                ..GuardConfig::default()
            },
            "0.0.0.0:862",
        );
        assert_eq!(stamp.check(addr("192.0.2.7:862")), Decision::Echo);
        for port in [0, 7, 19, 861, 863, 1900] {
            let source = addr(&format!("192.0.2.7:{port}"));
            assert_eq!(
                stamp.check(source),
                Decision::Drop(DropReason::ServicePort),
                "{source}"
            );
        }
        let echo = rules(GuardConfig::default(), "0.0.0.0:9999");
        assert_eq!(
            echo.check(addr("192.0.2.7:862")),
            Decision::Drop(DropReason::ServicePort)
        );
    }

    #[test]
    fn spoofed_and_self_sources_are_bad_whatever_the_port_rule() {
        let config = GuardConfig {
            allow_service_ports: true,
            ..GuardConfig::default()
        };
        let r = rules(config.clone(), "127.0.0.1:9999");
        for source in [
            "0.0.0.0:4000",
            "255.255.255.255:4000",
            "224.0.0.1:4000",
            "239.1.2.3:4000",
            "[::]:4000",
            "[ff02::1]:4000",
            "[::ffff:224.0.0.1]:4000",
            "127.0.0.1:9999",
            "[::ffff:127.0.0.1]:9999",
        ] {
            assert_eq!(
                r.check(addr(source)),
                Decision::Drop(DropReason::BadSource),
                "{source}"
            );
        }
        assert_eq!(
            r.check(addr("127.0.0.2:9999")),
            Decision::Echo,
            "another host's port 9999 is not us"
        );
        let wildcard = rules(config.clone(), "0.0.0.0:9999");
        assert_eq!(
            wildcard.check(addr("127.0.0.1:9999")),
            Decision::Drop(DropReason::BadSource)
        );
        assert_eq!(wildcard.check(addr("192.0.2.7:9999")), Decision::Echo);
        let v6 = rules(config, "[::1]:9999");
        assert_eq!(
            v6.check(addr("[::1]:9999")),
            Decision::Drop(DropReason::BadSource)
        );
    }

    #[test]
    fn every_served_socket_is_the_servers_own() {
        // Socket activation with two sockets: a datagram from either, at
        // either, is from the server itself.
        let sockets = [
            addr("127.0.0.1:7001"),
            addr("127.0.0.2:7002"),
            addr("[::]:7003"),
        ];
        let r = Rules::serving(&GuardConfig::default(), &sockets);
        for own in [
            "127.0.0.1:7001",
            "127.0.0.2:7002",
            "[::ffff:127.0.0.2]:7002",
            "127.0.0.9:7003",
            "[::1]:7003",
        ] {
            assert_eq!(
                r.check(addr(own)),
                Decision::Drop(DropReason::BadSource),
                "{own}"
            );
        }
        for other in ["127.0.0.2:7001", "127.0.0.1:7002", "192.0.2.1:7003"] {
            assert_eq!(r.check(addr(other)), Decision::Echo, "{other}");
        }
        assert_eq!(r.wildcard_ports().collect::<Vec<_>>(), vec![7003]);
        let one = rules(GuardConfig::default(), "127.0.0.1:9999");
        assert_eq!(one.wildcard_ports().count(), 0);
    }

    #[test]
    fn the_allowlist_matches_v4_v6_and_mapped_sources() {
        let config = GuardConfig {
            allow: vec![
                "127.0.0.2/32".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            ..GuardConfig::default()
        };
        let r = rules(config, "0.0.0.0:9999");
        for ok in [
            "127.0.0.2:5000",
            "10.200.3.4:5000",
            "[::ffff:10.1.1.1]:5000",
            "[2001:db8:ffff::1]:5000",
        ] {
            assert_eq!(r.check(addr(ok)), Decision::Echo, "{ok}");
        }
        for no in [
            "127.0.0.1:5000",
            "11.0.0.1:5000",
            "[2001:db9::1]:5000",
            "[::1]:5000",
        ] {
            assert_eq!(
                r.check(addr(no)),
                Decision::Drop(DropReason::NotAllowed),
                "{no}"
            );
        }
    }
}
