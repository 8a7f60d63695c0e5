//! The fleet prober as a full mesh on one machine (contrib/kubernetes/mesh.yaml
//! in miniature): hosts in network namespaces on one bridge, each running the
//! server and the fleet prober with the same target file.

#![cfg(target_os = "linux")]

use crate::common;
use crate::common::mesh::Mesh;

use common::{run_client_in, skip, start_server_via};

#[test]
fn mesh_harness_hosts_reach_each_other() {
    let mesh = match Mesh::new(4) {
        Ok(mesh) => mesh,
        Err(why) => return skip(&format!("fleet mesh: {why}")),
    };
    let servers: Vec<_> = mesh
        .hosts
        .iter()
        .map(|h| {
            start_server_via(
                &["ip", "netns", "exec", &h.ns],
                &["--host", &h.addr, "--port", "0"],
            )
        })
        .collect();
    for from in &mesh.hosts {
        for s in &servers {
            let port = s.addr.port().to_string();
            let run = run_client_in(
                &from.ns,
                &[
                    "-H",
                    &s.addr.ip().to_string(),
                    "-p",
                    &port,
                    "-t",
                    "2",
                    "-d",
                    "x",
                ],
            );
            assert_eq!(
                run.code(),
                Some(0),
                "{} → {}: {}",
                from.addr,
                s.addr,
                run.stderr
            );
        }
    }
}
