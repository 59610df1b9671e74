//! `vhub-bench`: load against a running hub. The library holds the
//! blocking protocol client the hub's tests use, the async session driver of
//! the harness, and the bare-TLS-pipe baseline.

pub mod client;
pub mod driver;
pub mod pipe;
