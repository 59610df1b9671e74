//! `vhub-bench`: load against a running hub. The library part holds the
//! protocol client that the harness and the hub's tests share.

pub mod client;
