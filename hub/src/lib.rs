//! `vhub`, the hub server: TLS termination, the HTTP front, shards on
//! io_uring (or epoll), cross-shard queues, metrics. The protocol and the
//! switching decisions live in `switch-core`; this crate moves bytes.

pub mod admin;
pub mod auth;
pub mod bridge;
pub mod capture;
pub mod config;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod reload;
pub mod server;
pub mod shard;
pub mod switchboard;
pub mod throttle;
pub mod users;
