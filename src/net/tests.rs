//! Unit tests of `net`.

use super::*;

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn names_prefer_ipv4_unless_told() {
    let both = addrs(&["[::1]:9", "127.0.0.1:9"]);
    assert_eq!(choose(&both, Family::Any), Some(both[1]));
    assert_eq!(choose(&both, Family::V6), Some(both[0]));
    assert_eq!(choose(&both, Family::V4), Some(both[1]));
    let v6_only = addrs(&["[::1]:9"]);
    assert_eq!(choose(&v6_only, Family::Any), Some(v6_only[0]));
    assert_eq!(choose(&v6_only, Family::V4), None);
    assert_eq!(choose(&[], Family::Any), None);
}

#[test]
fn literals_resolve_without_dns() {
    assert_eq!(
        resolve("127.0.0.1", 9, Family::Any).unwrap(),
        "127.0.0.1:9".parse().unwrap()
    );
    assert_eq!(
        resolve("::1", 9, Family::Any).unwrap(),
        "[::1]:9".parse().unwrap()
    );
    assert_eq!(
        resolve("[::1]", 9, Family::V6).unwrap(),
        "[::1]:9".parse().unwrap()
    );
    let scoped = resolve("fe80::1%1", 9, Family::Any).unwrap();
    assert!(
        matches!(scoped, SocketAddr::V6(a) if a.scope_id() == 1),
        "{scoped}"
    );
    let bare = resolve("fe80::1", 9, Family::Any).unwrap_err();
    assert!(bare.to_string().contains("fe80::1%eth0"), "{bare}");
    let err = resolve("127.0.0.1", 9, Family::V6).unwrap_err();
    assert_eq!(
        err.to_string(),
        "host '127.0.0.1' has no IPv6 address; drop -4/-6 or give an address of that family"
    );
}

#[test]
fn localhost_resolves_to_ipv4_loopback_by_default_and_ipv6_with_dash_6() {
    assert_eq!(
        resolve("localhost", 9999, Family::Any).unwrap(),
        "127.0.0.1:9999".parse().unwrap()
    );
    assert_eq!(
        resolve("localhost", 9999, Family::V6).unwrap(),
        "[::1]:9999".parse().unwrap()
    );
}

#[test]
fn unknown_hosts_fail_with_the_name_in_the_message() {
    let err = resolve("no-such-host.invalid", 9, Family::Any).unwrap_err();
    assert!(matches!(err, Error::Resolve { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot resolve host 'no-such-host.invalid'"),
        "{err}"
    );
}

#[test]
fn bind_addresses_with_and_without_port() {
    assert_eq!(
        parse_bind_addr("127.0.0.2"),
        Ok("127.0.0.2:0".parse().unwrap())
    );
    assert_eq!(
        parse_bind_addr("127.0.0.2:4000"),
        Ok("127.0.0.2:4000".parse().unwrap())
    );
    assert_eq!(parse_bind_addr("::1"), Ok("[::1]:0".parse().unwrap()));
    assert_eq!(parse_bind_addr("[::1]:5"), Ok("[::1]:5".parse().unwrap()));
    assert!(parse_bind_addr("localhost").is_err());
}

#[test]
fn clamping_is_judged_against_the_limit_not_the_doubled_size() {
    let size = |requested, effective, max| BufferSize {
        kind: BufferKind::Recv,
        requested,
        effective,
        max,
    };
    assert!(!size(None, 212992, Some(4194304)).clamped());
    assert!(!size(Some(1 << 20), 2 << 20, Some(4194304)).clamped());
    // Linux grants 2 × rmem_max = the request: it looks granted but was capped.
    let capped = size(Some(8 << 20), 8 << 20, Some(4194304));
    assert!(capped.clamped());
    let warning = capped.clamp_warning().unwrap();
    assert!(
        warning.contains("net.core.rmem_max = 4194304 caps it"),
        "{warning}"
    );
    assert!(
        warning.contains("sysctl -w net.core.rmem_max=8388608"),
        "{warning}"
    );
    assert!(size(Some(1000), 500, None).clamped());
    assert_eq!(
        size(Some(1000), 4608, Some(4194304)).to_string(),
        "recv buffer: 4608 bytes (max 4194304, requested 1000)"
    );
}

#[test]
fn a_busy_address_is_refused_even_though_the_holder_shares() {
    let limits = Limits::read();
    let sharing = SocketOptions {
        reuse_address: true,
        ..SocketOptions::default()
    };
    let first = bind("127.0.0.1:0".parse().unwrap(), &sharing, &limits).unwrap();
    let err = bind(first.local, &sharing, &limits).unwrap_err();
    assert!(
        matches!(&err, Error::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse),
        "{err:?}"
    );
}
