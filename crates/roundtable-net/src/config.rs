//! How a device reaches others.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use iroh::RelayUrl;

/// Which relay, if any, helps devices that cannot reach each other directly.
/// Relays only ever see encrypted traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayChoice {
    /// No relay: direct addresses (and mDNS on a LAN) only.
    Disabled,
    /// iroh's public relays (unreachable offline; the node works without them).
    Default,
    /// A relay of the circle's own (`iroh-relay`).
    Custom(RelayUrl),
}

/// Network settings of a device.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Where to listen (UDP). Port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    /// Which relay to use.
    pub relay: RelayChoice,
    /// Find devices on the local network by mDNS.
    pub mdns: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))],
            relay: RelayChoice::Default,
            mdns: true,
        }
    }
}

impl NetConfig {
    /// Loopback only, no relay, no mDNS: for tests and examples on one machine.
    pub fn loopback() -> Self {
        Self {
            listen: vec![SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))],
            relay: RelayChoice::Disabled,
            mdns: false,
        }
    }
}
