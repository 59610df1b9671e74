//! What the fabric answers: where a port lives, what form its frames take,
//! and the [`Route`] of one frame.

use crate::offload::Form;

/// Most shards a [`ShardSet`] can name (and so the most shards a hub may
/// run).
pub const MAX_SHARDS: usize = 256;

/// Where a port lives: the shard that owns it and its slot there. The
/// fabric never dereferences it; it hands it back in a [`Route`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortLoc {
    pub shard: u16,
    pub slot: u32,
}

/// What sits behind a port. The fabric switches every kind alike; the
/// kind is kept for the admin API and for the shell that delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortKind {
    /// A `vhub/1` session (a `vnic`, or anything speaking the protocol).
    Vhub,
    /// A host network the hub is attached to (a local bridge): a whole
    /// LAN behind one port, so it has a MAC cap of its own
    /// ([`PortInfo::max_macs`]).
    Bridge,
    /// A SoftEther VPN client's session: plain frames of at most 1600
    /// bytes, no offload.
    SoftEther,
}

impl PortKind {
    /// A short name for logs and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            PortKind::Vhub => "vhub",
            PortKind::Bridge => "bridge",
            PortKind::SoftEther => "softether",
        }
    }
}

/// A port as the fabric knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub loc: PortLoc,
    /// The form of the frames this port sends and takes.
    pub form: Form,
    pub kind: PortKind,
    /// MAC entries this port may own; 0 = the fabric's
    /// [`FabricConfig::max_macs_per_port`](super::FabricConfig::max_macs_per_port).
    /// A session takes the default; a bridge (a LAN with many stations)
    /// has its own.
    pub max_macs: u32,
}

impl PortInfo {
    /// A `vhub/1` session's port.
    pub fn vhub(shard: u16, slot: u32, form: Form) -> Self {
        PortInfo {
            loc: PortLoc { shard, slot },
            form,
            kind: PortKind::Vhub,
            max_macs: 0,
        }
    }

    /// A SoftEther session's port: plain frames, the fabric's per-port MAC cap.
    pub fn softether(shard: u16, slot: u32) -> Self {
        PortInfo {
            loc: PortLoc { shard, slot },
            form: Form::Plain,
            kind: PortKind::SoftEther,
            max_macs: 0,
        }
    }

    /// A local bridge's port: frames in `form` (plain from a TAP device,
    /// behind a `virtio_net_hdr` from a packet socket), at most `max_macs`
    /// MACs learned behind it (0 = the fabric's per-port default).
    pub fn bridge(shard: u16, slot: u32, form: Form, max_macs: u32) -> Self {
        PortInfo {
            loc: PortLoc { shard, slot },
            form,
            kind: PortKind::Bridge,
            max_macs,
        }
    }
}

/// A set of shard numbers below [`MAX_SHARDS`]: the other shards a flood
/// must reach. 32 bytes, `Copy`, no allocation.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ShardSet([u64; MAX_SHARDS / 64]);

impl ShardSet {
    pub const EMPTY: ShardSet = ShardSet([0; MAX_SHARDS / 64]);

    /// Adds `shard` (ignored if not below [`MAX_SHARDS`]).
    #[inline]
    pub fn insert(&mut self, shard: u16) {
        let s = usize::from(shard);
        if s < MAX_SHARDS {
            self.0[s / 64] |= 1 << (s % 64);
        }
    }

    /// Takes `shard` out (a no-op if absent).
    #[inline]
    pub fn remove(&mut self, shard: u16) {
        let s = usize::from(shard);
        if s < MAX_SHARDS {
            self.0[s / 64] &= !(1 << (s % 64));
        }
    }

    #[inline]
    pub fn contains(&self, shard: u16) -> bool {
        let s = usize::from(shard);
        s < MAX_SHARDS && self.0[s / 64] & (1 << (s % 64)) != 0
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The shards in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
            let mut w = word;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros();
                w &= w - 1;
                Some((i * 64 + bit as usize) as u16)
            })
        })
    }
}

impl std::fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<u16> for ShardSet {
    fn from_iter<I: IntoIterator<Item = u16>>(iter: I) -> Self {
        let mut s = ShardSet::EMPTY;
        for x in iter {
            s.insert(x);
        }
        s
    }
}

/// Where one frame goes, as seen from the shard that asked
/// ([`Fabric::forward`](super::Fabric::forward)'s `here`). The caller
/// moves the bytes; the fabric has counted the route already.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[must_use]
pub enum Route {
    /// To one port on the asking shard, in the receiver's `form`.
    Local { slot: u32, form: Form },
    /// To one port on another shard. `port` travels with the frame so that
    /// shard can tell the slot was not reused meanwhile.
    Remote {
        shard: u16,
        slot: u32,
        port: super::PortId,
    },
    /// To every other port of the domain: the asking shard's own ports
    /// (except the ingress) when `local`, and every port of each shard in
    /// `remote` (a frame crosses to a shard once, not once per port).
    Flood { local: bool, remote: ShardSet },
    /// Nowhere.
    Drop(DropReason),
}

/// Why [`Fabric::forward`](super::Fabric::forward) dropped a frame. Each
/// reason has a counter in [`FabricStats`](super::FabricStats).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DropReason {
    /// Shorter than the 14-byte Ethernet header (after the offload header
    /// of a port that carries one): the peer sent garbage.
    Runt,
    /// The ingress handle is stale or was never issued: a caller bug or a
    /// frame that raced the removal of its session.
    UnknownPort,
    /// The destination was learned on the ingress port itself; a real
    /// switch filters such frames (the station's own segment has it).
    SameSegment,
    /// The source MAC is multicast, broadcast or all-zero; a real switch
    /// neither learns nor forwards such frames.
    InvalidSource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_set_holds_what_was_put_in() {
        let s: ShardSet = [0u16, 3, 63, 64, 255].into_iter().collect();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 3, 63, 64, 255]);
        assert!(s.contains(64) && !s.contains(65) && !s.contains(300));
        assert!(!s.is_empty() && ShardSet::EMPTY.is_empty());
        let mut t = ShardSet::EMPTY;
        t.insert(1000); // out of range: ignored, never a panic
        assert!(t.is_empty());
    }
}
