//! The integration tests, one binary: one module per area, each starting the
//! real binaries (`udp-echo-server`, `udp-echo-client`) on loopback or in
//! network namespaces it creates. One binary links once per change instead of
//! once per file; a test's name is `FILE::NAME` (`cargo test --test it
//! stamp::`, or `cargo test --test it -- --exact hermetic::ci_fails_on_any_skip`),
//! or `FILE::PART::NAME` for a long file split into a folder of its name
//! (`measure/offload.rs`). A new file here needs its `mod` line below, a file
//! in a folder its line in the parent: `hermetic` checks that none is left out.

mod common;

mod accuracy;
mod activation;
mod amplification;
mod batch_threads;
mod beyond;
mod client;
mod client_dscp;
mod docs;
mod dscp;
mod dscp_remark;
mod fleet;
mod fleet_mesh;
mod fleet_probe;
mod gro;
mod guard;
mod hermetic;
mod interface;
mod loop_matrix;
mod loops;
mod measure;
mod metrics;
mod numbers;
mod packaging;
mod probes;
mod reply_source;
mod server;
mod signals;
mod stamp;
mod stamp_access;
mod stamp_clock;
mod stamp_direct;
mod stamp_ecn;
mod stamp_follow_up;
mod stamp_keys;
mod stamp_location;
mod stamp_reflector;
mod stamp_return_path;
mod stamp_tlvs;
mod threads;
mod txstamp;
mod usage;
