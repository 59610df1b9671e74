//! `[[hub]] bridge`: a virtual hub attached to a host network (a local
//! bridge), in its short form (`bridge = "br-lan"`: a TAP device enslaved
//! to that Linux bridge) or as a table:
//!
//! ```toml
//! [hub.bridge]
//! interface = "br-lan"   # the Linux bridge the hub's TAP device joins
//! mode = "tap"           # or "packet": an AF_PACKET socket on `interface` itself
//! tap = "vh-lab"         # the TAP device's name; default vh-<hub>
//! max_macs = 4096        # MACs learned behind the bridge port
//! ```
//!
//! The types, their serde reader (a string or a table) and the checks of
//! one bridge; the validator (`validate.rs`) runs the checks and those
//! across hubs (two hubs on one bridge, one TAP name twice).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;

/// The MAC cap of a bridge port when `max_macs` is not written: a LAN
/// has more stations than one session.
pub const DEFAULT_BRIDGE_MAX_MACS: usize = 4096;
/// Linux interface names: at most 15 bytes (`IFNAMSIZ` less the NUL).
pub const MAX_IFNAME: usize = 15;

/// How the hub reaches the host network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BridgeMode {
    /// A TAP device the hub creates and enslaves to an existing Linux
    /// bridge (`SIOCBRADDIF`).
    #[default]
    Tap,
    /// An `AF_PACKET` socket on an existing interface (promiscuous,
    /// `PACKET_VNET_HDR`): no TAP device, no Linux bridge needed.
    Packet,
}

impl BridgeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BridgeMode::Tap => "tap",
            BridgeMode::Packet => "packet",
        }
    }
}

/// One hub's bridge.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// The host interface: the Linux bridge the TAP device joins.
    pub interface: String,
    #[serde(default)]
    pub mode: BridgeMode,
    /// The TAP device's name; `None` means `vh-<hub>` (cut to 15 bytes),
    /// see [`BridgeConfig::tap_name`].
    #[serde(default)]
    pub tap: Option<String>,
    /// MAC entries learned behind the bridge port.
    #[serde(default = "default_bridge_max_macs")]
    pub max_macs: usize,
}

fn default_bridge_max_macs() -> usize {
    DEFAULT_BRIDGE_MAX_MACS
}

impl BridgeConfig {
    /// The short form `bridge = "IFACE"`: TAP mode, defaults for the rest.
    pub fn on(interface: &str) -> Self {
        BridgeConfig {
            interface: interface.to_owned(),
            mode: BridgeMode::Tap,
            tap: None,
            max_macs: DEFAULT_BRIDGE_MAX_MACS,
        }
    }

    /// The TAP device's name for hub `hub`: `tap` as written, else
    /// `vh-<hub>` cut to [`MAX_IFNAME`] bytes.
    pub fn tap_name(&self, hub: &str) -> String {
        match &self.tap {
            Some(t) => t.clone(),
            None => {
                let mut name = format!("vh-{hub}");
                name.truncate(MAX_IFNAME); // hub names are ASCII
                name
            }
        }
    }
}

/// Whether `name` can name a Linux network interface; the error says why
/// not.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_IFNAME {
        return Err(format!(
            "{name:?} is not an interface name: 1 to {MAX_IFNAME} bytes"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not an interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{name:?} is not an interface name: it has the character {c:?}"
        ));
    }
    Ok(())
}

/// serde's `deserialize_with` of `HubConfig::bridge`: a string (the short
/// form) or a table.
pub(super) fn de_bridge<'de, D: de::Deserializer<'de>>(
    d: D,
) -> Result<Option<BridgeConfig>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<BridgeConfig>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "a Linux bridge's name (bridge = \"br-lan\") or a table with interface, mode, tap, max_macs",
            )
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Some(BridgeConfig::on(s)))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            BridgeConfig::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn the_short_form_is_a_tap_on_that_bridge() {
        let c = Config::from_toml("[[hub]]\nname = \"lab\"\nbridge = \"br-lan\"\n").unwrap();
        let b = c.hub[0].bridge.as_ref().unwrap();
        assert_eq!(b, &BridgeConfig::on("br-lan"));
        assert_eq!(b.tap_name("lab"), "vh-lab");
        assert_eq!(b.max_macs, DEFAULT_BRIDGE_MAX_MACS);
        // A long hub name is cut to a valid interface name.
        assert_eq!(b.tap_name("a-very-long-hub-name"), "vh-a-very-long-");
        assert!(Config::from_toml("[[hub]]\nname = \"x\"\n").unwrap().hub[0]
            .bridge
            .is_none());
    }

    #[test]
    fn the_table_form_sets_every_detail() {
        let c = Config::from_toml(
            "[[hub]]\nname = \"lab\"\n[hub.bridge]\ninterface = \"br0\"\nmode = \"tap\"\ntap = \"vh-x\"\nmax_macs = 100\n",
        )
        .unwrap();
        let b = c.hub[0].bridge.as_ref().unwrap();
        assert_eq!(
            (b.interface.as_str(), b.mode, b.tap_name("lab"), b.max_macs),
            ("br0", BridgeMode::Tap, "vh-x".to_owned(), 100)
        );
    }

    #[test]
    fn bad_bridges_are_reported_at_their_keys() {
        let text = r#"[[hub]]
name = "a"
bridge = "br-lan"
[[hub]]
name = "b"
[hub.bridge]
interface = "br-lan"
mode = "packet"
tap = "vh-b"
max_macs = 0
[[hub]]
name = "c"
bridge = "this-name-is-far-too-long"
[[hub]]
name = "d"
[hub.bridge]
interface = "br9"
tap = "vh-a"
max_macs = 70000
"#;
        let e = Config::from_toml(text).unwrap_err().to_string();
        for want in [
            "<config>:7:1: hub[1].bridge.interface: hub[0] is bridged to \"br-lan\" already",
            "<config>:9:1: hub[1].bridge.tap: mode \"packet\" makes no TAP device",
            "<config>:10:1: hub[1].bridge.max_macs: must be greater than 0",
            "<config>:13:1: hub[2].bridge.interface: \"this-name-is-far-too-long\" is not an interface name",
            "<config>:18:1: hub[3].bridge.tap: hub[0] uses the TAP name \"vh-a\" already",
            "<config>:19:1: hub[3].bridge.max_macs: 70000 is more than the hub's own cap of 65536 MACs",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        assert_eq!(e.lines().count(), 6, "{e}");
        let c = Config::from_toml(
            "[[hub]]\nname = \"a\"\n[hub.bridge]\ninterface = \"eth1\"\nmode = \"packet\"\n",
        )
        .unwrap();
        assert_eq!(c.hub[0].bridge.as_ref().unwrap().mode, BridgeMode::Packet);
        let e = Config::from_toml(
            "[[hub]]\nname = \"a\"\n[hub.bridge]\ninterface = \"br0\"\ncolour = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = Config::from_toml("[[hub]]\nname = \"a\"\nbridge = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a Linux bridge's name"), "{e}");
    }
}
