//! # switch-core: the sans-IO heart of vhub
//!
//! This crate holds everything about *where a frame goes* and *what bytes mean*,
//! and nothing about how bytes reach a wire. It has **no networking code, no
//! threads, and never reads a clock**: time is a parameter of every call that
//! needs it (`clippy.toml` forbids `Instant::now` here), so every behaviour can
//! be replayed in a test with a virtual clock.
//!
//! ```text
//!   plaintext from TLS ──► Session::handle_input ──► frames ──► Fabric::forward
//!                                  │                                  │
//!                       events (poll_event)     Route::{Local, Remote, Flood, Drop}
//!                                  │                                  │
//!   plaintext to TLS ◄── Session::poll_transmit ◄── Session::send_frame ◄┘
//! ```
//!
//! - [`wire`]: the `vhub/1` codec — the HTTP/1.1 upgrade and the binary
//!   messages (frame batches, acks, ping/pong, close). Decoding borrows from
//!   the caller's buffer; encoding appends to a buffer the caller owns.
//! - [`session`]: one end of a session — sequence numbers, cumulative acks,
//!   the bounded retransmit buffer, resume after a lost link, keep-alive.
//! - [`fabric`]: the MAC switching fabric — learning, aging, flooding, caps —
//!   one per virtual hub; answers each frame's [`fabric::Route`].
//! - [`admission`]: who gets a session — new, resume, or a typed
//!   [`admission::Refuse`] that the hub emits and the client parses.
//! - [`offload`]: frames behind a `virtio_net_hdr`, and the one conversion
//!   between forms ([`offload::convert`]).
//! - [`sim`]: a client and a hub session on an in-memory link with a
//!   virtual clock, admitted by [`admission::decide`].
//! - [`pump`]: the one pump between a session and a secure channel (TLS
//!   behind the [`pump::Channel`] trait), used by the hub, the client and
//!   the load generator.
//! - [`softether`]: the SoftEther VPN dialect — PACK, the watermark, the
//!   server and client handshakes, the data-phase framing — so that real
//!   SoftEther clients can join a hub and vnic can join a SoftEther server.
//!
//! What it does not do: TLS, sockets, TAP devices, authentication decisions
//! (the hub checks credentials; this crate only carries them), randomness
//! (session tokens are made by the caller).

pub mod admission;
pub mod fabric;
pub mod offload;
pub mod pump;
pub mod session;
pub mod sim;
pub mod softether;
pub mod wire;
