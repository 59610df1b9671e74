//! The SoftEther VPN dialect ("SE-VPN" over TCP/TLS), sans-IO: so that real
//! SoftEther VPN clients can join a vhub hub, and vnic can join a SoftEther
//! server. Written from `shared/softether/PROTOCOL-NOTES.md` (the protocol
//! as measured against the Debian 5.01 binaries); `docs/PROTOCOL.md`,
//! "SoftEther dialect (as implemented)", says what is implemented.
//!
//! ```text
//!  client (ClientHandshake)                          server (ServerHandshake)
//!    GET / (X-VPN: 1), optional ──────────────────►  index page with the marker   probe.rs
//!    POST /vpnsvc/connect.cgi  watermark + filler ─►  watermark.rs
//!                          ◄─ 200 PACK hello {random(20)}                        message.rs
//!    POST /vpnsvc/vpn.cgi  PACK login ────────────►  poll_event: Login ─► hub decides
//!      {secure_password = SHA0(SHA0(pw‖USER)‖random)}                            password.rs, sha0.rs
//!                          ◄─ 200 PACK welcome | {error: N}                      error.rs
//!    ════ data phase on the same TLS stream: [N][L frame]… | [FFFFFFFF][L filler] data.rs, liveness.rs
//! ```
//!
//! Like the rest of switch-core this module has no sockets, reads no clock
//! and draws no randomness: the shell feeds TLS plaintext in, sends what
//! `poll_transmit` gives, passes `now`, and supplies the hello random, the
//! session keys and a seed for filler bytes ([`padding`]). HTTP heads are
//! parsed with `httparse`; PACK bodies with [`pack`], which bounds every
//! count and length by the bytes actually received.
//!
//! What it does not do: TLS; decide who may log in (the hub answers
//! [`ServerEvent::Login`]; [`Login::check_password`] does the arithmetic);
//! certificate or ticket authentication (answered with error 7); sessions
//! of several TCP connections (parsing and answering `additional_connect`
//! is here; running several connections per session is the hub's), half
//! duplex, compression, UDP acceleration, R-UDP/NAT-T, cluster redirects.
//!
//! | file | what it holds |
//! |---|---|
//! | `pack.rs` | the PACK codec: [`Pack`], [`Values`], [`PackError`] |
//! | `sha0.rs` | SHA-0 |
//! | `password.rs` | [`HashedPassword`], `secure_password`, its check |
//! | `watermark.rs`, `watermark.bin`, `WATERMARK.md` | the watermark constant and its provenance |
//! | `probe.rs` | the HTTPS probe's marker and the HTML pages |
//! | `http.rs` | request/response heads and the messages both roles send |
//! | `error.rs` | [`ErrorCode`], SoftEther's numbered errors |
//! | `message.rs` | hello, login, welcome, additional_connect, NOOP, error PACKs |
//! | `server.rs` | [`ServerHandshake`] |
//! | `client.rs` | [`ClientHandshake`] |
//! | `data.rs` | the data-phase [`Decoder`] and [`BatchWriter`] |
//! | `liveness.rs` | keep-alive schedule and idle timeout ([`Liveness`]) |
//! | `padding.rs` | the seeded filler generator |
//!
//! Attribution: the watermark bytes are SoftEther VPN's (Apache-2.0,
//! SoftEther Project); see `WATERMARK.md`. No other SoftEther code is
//! reproduced.

pub mod client;
pub mod data;
pub mod error;
pub mod http;
pub mod liveness;
pub mod message;
pub mod pack;
pub mod padding;
pub mod password;
pub mod probe;
pub mod server;
pub mod sha0;
pub mod watermark;

/// Moves the bytes a handshake queued (`queued`) to the caller's `out`
/// (swapping buffers when `out` is empty); returns how many. The
/// `poll_transmit` of both handshake roles.
fn drain_into(queued: &mut Vec<u8>, out: &mut Vec<u8>) -> usize {
    let n = queued.len();
    if out.is_empty() {
        std::mem::swap(out, queued);
    } else {
        out.extend_from_slice(queued);
        queued.clear();
    }
    n
}

#[cfg(test)]
mod tests;

pub use client::{
    ClientAuth, ClientConfig, ClientError, ClientEvent, ClientHandshake, ClientState,
};
pub use data::{BatchWriter, DataError, Decoder, Item, Limits, Skip};
pub use error::ErrorCode;
pub use liveness::{IdleTimeout, Liveness};
pub use message::{
    AdditionalConnect, Direction, Hello, Login, LoginAuth, ProductInfo, SessionOptions, Welcome,
};
pub use pack::{Pack, PackError, Values};
pub use padding::Padding;
pub use password::HashedPassword;
pub use server::{ServerConfig, ServerError, ServerEvent, ServerHandshake, ServerState};
pub use watermark::WATERMARK;
