//! N test hosts on one Ethernet segment: a network namespace per host, each
//! with one veth link to a bridge in a hub namespace of its own, addresses
//! from 192.0.2.0/24 (TEST-NET-1, never routed). Everything is removed on
//! drop, also when the test panics.
//!
//! Needs root and ip(8), as [`TestNet`](super::netns::TestNet) does; `Err`
//! says why not, so the caller can skip visibly.

use std::sync::atomic::{AtomicU32, Ordering};

use super::netns::run;

/// One host of the mesh.
pub(crate) struct Host {
    /// Its namespace.
    pub ns: String,
    /// Its address on the segment.
    pub addr: String,
    /// Its link's MAC address (static neighbours: no ARP on the path).
    mac: String,
}

/// Hosts on a bridge; deleted on drop.
pub(crate) struct Mesh {
    pub hosts: Vec<Host>,
    made: Vec<String>,
}

fn must(args: &[&str]) {
    run("ip", args, None).unwrap_or_else(|why| panic!("{why}"));
}

impl Mesh {
    /// Builds `n` hosts (at most 200) on one bridge.
    pub(crate) fn new(n: usize) -> Result<Mesh, String> {
        assert!((1..=200).contains(&n), "1 to 200 hosts");
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("network namespaces need root".into());
        }
        run("ip", &["-V"], None).map_err(|e| format!("no ip(8) (iproute2): {e}"))?;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let (pid, k) = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let hub = format!("udpecho-mesh-{pid}-{k}-hub");
        let mut mesh = Mesh {
            hosts: Vec::new(),
            made: Vec::new(),
        };
        let _ = run("ip", &["netns", "del", &hub], None);
        run("ip", &["netns", "add", &hub], None)
            .map_err(|why| format!("cannot create a namespace: {why}"))?;
        mesh.made.push(hub.clone());
        must(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &hub, "link", "set", "br0", "up"]);
        for i in 0..n {
            let ns = format!("udpecho-mesh-{pid}-{k}-{i}");
            let _ = run("ip", &["netns", "del", &ns], None);
            must(&["netns", "add", &ns]);
            mesh.made.push(ns.clone());
            must(&["-n", &ns, "link", "set", "lo", "up"]);
            let mac = format!("02:ec:00:00:00:{:02x}", i + 1);
            let port = format!("p{i}");
            must(&[
                "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns, "address", &mac,
            ]);
            must(&["-n", &hub, "link", "set", &port, "master", "br0", "up"]);
            let addr = format!("192.0.2.{}", i + 1);
            must(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            // One datagram per packet on the segment, so nft rules on the
            // receiving host see and count each (see netns.rs).
            must(&["-n", &ns, "link", "set", "eth0", "gso_max_segs", "1", "up"]);
            mesh.hosts.push(Host { ns, addr, mac });
        }
        for host in &mesh.hosts {
            for peer in mesh.hosts.iter().filter(|p| p.ns != host.ns) {
                must(&[
                    "-n",
                    &host.ns,
                    "neigh",
                    "replace",
                    &peer.addr,
                    "lladdr",
                    &peer.mac,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ]);
            }
        }
        Ok(mesh)
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends; the bridge goes with the hub.
        for ns in self.made.iter().rev() {
            if let Err(why) = run("ip", &["netns", "del", ns], None) {
                eprintln!("cleanup: {why}");
            }
        }
    }
}
