//! Roundtable's network: one iroh endpoint per device, keyed by the device
//! key; one gossip topic per circle; and two protocols of our own, sync and
//! join, each under a versioned ALPN.
//!
//! This crate moves bytes and decides *who may connect*; it knows nothing of
//! what a circle holds. Every incoming connection passes the admission hook
//! right after the TLS handshake — before any protocol sees a byte — and is
//! closed unless the remote device is admitted to a circle this device
//! serves (or it is redeeming an invite on the join ALPN, whose handler
//! checks the invite before it answers anything). Accepted sync and join
//! connections are handed to the node as [`Incoming`]; gossip connections go
//! straight to iroh-gossip.
//!
//! ```no_run
//! # async fn run() -> Result<(), roundtable_net::NetError> {
//! use roundtable_net::{Admitted, Net, NetConfig};
//!
//! let admitted = Admitted::default();
//! let (incoming_tx, mut incoming) = tokio::sync::mpsc::channel(16);
//! let net = Net::bind([7; 32], &NetConfig::loopback(), admitted.clone(), incoming_tx).await?;
//! println!("listening as {} on {:?}", net.id(), net.bound_sockets());
//! while let Some(conn) = incoming.recv().await {
//!     // hand `conn` to the sync or join protocol
//! #   let _ = conn;
//! }
//! net.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod admission;
mod config;
mod farewell;
pub mod framing;
pub mod fuzzing;
mod net;
pub mod ticket;

pub use admission::{
    Admitted, close_naming_version, closed_as_not_admitted, closed_naming_version,
};
pub use config::{NetConfig, RelayChoice};
pub use farewell::FAREWELL_ALPN;
pub use iroh::endpoint::Connection;
pub use iroh::{EndpointAddr, EndpointId, RelayUrl, TransportAddr};
pub use iroh_gossip::TopicId;
pub use iroh_gossip::api::GossipTopic;
pub use iroh_gossip::api::{Event as GossipEvent, GossipReceiver, GossipSender};
pub use net::{Dialer, Incoming, Net, NetError, StewardNet};
pub use ticket::{CircleTicket, RecoveryRequest, StewardTicket, TicketError};

/// The sync protocol: Automerge sync over one bi-directional stream.
pub const SYNC_ALPN: &[u8] = b"roundtable/sync/1";
/// The join protocol: redeeming an invite.
pub const JOIN_ALPN: &[u8] = b"roundtable/join/1";
/// The steward protocol: a device reaching a steward (see `roundtable_core::steward`).
pub const STEWARD_ALPN: &[u8] = b"roundtable/steward/1";
/// iroh-gossip's protocol.
pub const GOSSIP_ALPN: &[u8] = iroh_gossip::ALPN;

/// The gossip message cap, the same on every device (iroh-gossip drops the
/// connection to a peer that sends a larger frame).
pub const GOSSIP_MAX_MESSAGE: usize = 4096;

/// The largest payload this device puts on gossip: the cap less room for
/// gossip's own framing. Sealed envelopes never exceed it (their padding
/// buckets are chosen so); anything larger is announced instead and fetched
/// by sync.
pub const GOSSIP_MAX_PAYLOAD: usize = GOSSIP_MAX_MESSAGE - 256;

/// The gossip topic of a circle in an epoch, derived from the epoch's circle
/// key and the circle's id — never from anything public alone.
pub fn topic_for(circle_key: &[u8; 32], circle_id: &[u8; 16]) -> TopicId {
    TopicId::from_bytes(roundtable_core::keys::gossip_topic(circle_key, circle_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_depend_on_the_secret() {
        let a = topic_for(&[1; 32], &[9; 16]);
        assert_eq!(a, topic_for(&[1; 32], &[9; 16]));
        assert_ne!(a, topic_for(&[2; 32], &[9; 16]));
        assert_ne!(a, topic_for(&[1; 32], &[8; 16]));
    }

    #[test]
    fn the_largest_sealed_envelope_fits_the_gossip_payload() {
        use roundtable_core::keys::{PAD_BUCKETS, seal};
        use roundtable_core::wire::Body;
        use roundtable_core::{CircleId, DeviceKey, EpochKey, Keyring};

        let keys = Keyring::with(EpochKey::new(u64::MAX, [1; 32], [2; 32]));
        let device = DeviceKey::from_seed(&[3; 32]);
        let circle = CircleId::from_bytes([4; 16]);
        let mut rng = rand::rng();
        // As many heads as the largest bucket holds.
        let mut n = 0;
        while let Some(sealed) = seal(
            circle,
            &keys,
            &device,
            &Body::Heads {
                heads: vec![[9; 32]; n + 1],
            },
            &mut rng,
        ) {
            assert!(
                sealed.len() <= GOSSIP_MAX_PAYLOAD,
                "{} > {GOSSIP_MAX_PAYLOAD}",
                sealed.len()
            );
            n += 1;
        }
        assert!(
            n * 32 > PAD_BUCKETS[PAD_BUCKETS.len() - 1] - 64,
            "only {n} heads fit"
        );
    }
}
