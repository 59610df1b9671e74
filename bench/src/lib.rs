//! `vhub-bench`: load against a running hub. The library holds the
//! blocking protocol client the hub's tests use, the async session driver of
//! the harness, the bare-TLS-pipe baseline, and the placement of pairs by
//! the shard each session landed on.

pub mod client;
pub mod driver;
pub mod pipe;
pub mod placement;
