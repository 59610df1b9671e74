//! 48-bit MAC addresses packed in a `u64`, so a MAC is a cheap hash key and
//! a comparison is one instruction.

use std::fmt;

/// A 48-bit MAC address packed in a `u64`: the six octets in big-endian
/// order in the low 48 bits, the high 16 bits zero.
///
/// `Mac::from_bytes([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]).0 == 0xaabb_ccdd_eeff`.
/// A value built by hand with any of the high 16 bits set names no address;
/// the fabric never learns one (it only builds `Mac`s from frame bytes) and
/// a lookup for one finds nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Mac(pub u64);

impl Mac {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Mac = Mac(0xffff_ffff_ffff);
    /// `00:00:00:00:00:00`, never a valid source.
    pub const ZERO: Mac = Mac(0);

    /// The I/G (individual/group) bit: the least significant bit of the
    /// first octet, which is bit 40 once packed.
    const GROUP_BIT: u64 = 1 << 40;

    /// Packs six octets as they appear on the wire.
    #[inline]
    pub const fn from_bytes(b: [u8; 6]) -> Self {
        Mac(u64::from_be_bytes([
            0, 0, b[0], b[1], b[2], b[3], b[4], b[5],
        ]))
    }

    /// The six octets as they appear on the wire.
    #[inline]
    pub const fn to_bytes(self) -> [u8; 6] {
        let b = self.0.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// True for group addresses (the I/G bit is set); this includes broadcast.
    #[inline]
    pub const fn is_multicast(self) -> bool {
        self.0 & Self::GROUP_BIT != 0
    }

    /// True only for `ff:ff:ff:ff:ff:ff`.
    #[inline]
    pub const fn is_broadcast(self) -> bool {
        self.0 == Self::BROADCAST.0
    }

    /// True for an address a station may send from: individual (not
    /// multicast or broadcast) and not all-zero. A switch neither learns nor
    /// forwards frames from any other source.
    #[inline]
    pub const fn is_valid_source(self) -> bool {
        !self.is_multicast() && self.0 != 0
    }
}

impl fmt::Display for Mac {
    /// Lower-case, colon-separated: `aa:bb:cc:dd:ee:ff`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.to_bytes();
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_big_endian_and_round_trips() {
        let bytes = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        let mac = Mac::from_bytes(bytes);
        assert_eq!(mac, Mac(0xaabb_ccdd_eeff));
        assert_eq!(mac.to_bytes(), bytes);
    }

    #[test]
    fn displays_colon_hex() {
        assert_eq!(
            Mac::from_bytes([0x02, 0x00, 0x5e, 0x10, 0x0a, 0xff]).to_string(),
            "02:00:5e:10:0a:ff"
        );
    }

    #[test]
    fn classifies_group_and_source_addresses() {
        assert!(Mac::BROADCAST.is_broadcast());
        assert!(Mac::BROADCAST.is_multicast());
        // IPv4 multicast 01:00:5e:00:00:01, IPv6 all-nodes 33:33:00:00:00:01.
        for m in [[0x01, 0x00, 0x5e, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1]] {
            let m = Mac::from_bytes(m);
            assert!(m.is_multicast() && !m.is_broadcast() && !m.is_valid_source());
        }
        // A locally administered unicast address (02:...) is a fine source.
        let local = Mac::from_bytes([0x02, 0, 0, 0, 0, 1]);
        assert!(!local.is_multicast() && local.is_valid_source());
        assert!(!Mac::ZERO.is_valid_source());
    }
}
