//! Who may connect: the admitted devices of every circle this device serves.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use iroh::EndpointId;
use iroh::endpoint::{
    AfterHandshakeOutcome, Connection, EndpointHooks, Side, WeakConnectionHandle,
};
use tracing::debug;

use crate::{FAREWELL_ALPN, JOIN_ALPN, STEWARD_ALPN};

/// The set of devices admitted to at least one circle we serve, and the
/// connections open with them. Cheap to clone; the node updates it whenever
/// membership changes, and connections of devices no longer admitted are
/// closed then and there.
#[derive(Debug, Clone, Default)]
pub struct Admitted(Arc<RwLock<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    set: HashSet<EndpointId>,
    /// Devices of removed members, let in on the farewell protocol only.
    farewell: HashSet<EndpointId>,
    open: Vec<(EndpointId, WeakConnectionHandle)>,
}

impl Admitted {
    /// Replaces the whole set, closing connections of devices left out.
    pub fn set(&self, devices: impl IntoIterator<Item = EndpointId>) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        guard.set = devices.into_iter().collect();
        let Inner { set, open, .. } = &mut *guard;
        open.retain(|(id, weak)| {
            let Some(conn) = weak.upgrade() else {
                return false;
            };
            if set.contains(id) {
                return true;
            }
            debug!(peer = %id.fmt_short(), "closing the connection of a device no longer admitted");
            conn.close(NOT_ADMITTED.into(), b"no longer admitted");
            false
        });
    }

    /// Replaces the devices that may ask for their farewell (and nothing else).
    pub fn set_farewell(&self, devices: impl IntoIterator<Item = EndpointId>) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        guard.farewell = devices.into_iter().collect();
    }

    fn may_ask_farewell(&self, id: &EndpointId) -> bool {
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        guard.farewell.contains(id)
    }

    /// Whether `id` is admitted.
    pub fn contains(&self, id: &EndpointId) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .contains(id)
    }

    /// Every admitted device.
    pub fn all(&self) -> Vec<EndpointId> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .iter()
            .copied()
            .collect()
    }

    /// Remembers an open connection (without keeping it open), so it can be
    /// closed if its device stops being admitted.
    fn track(&self, conn: &Connection) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        guard.open.retain(|(_, w)| w.upgrade().is_some());
        guard.open.push((conn.remote_id(), conn.weak_handle()));
    }
}

/// Application close code for a refused device.
pub(crate) const NOT_ADMITTED: u32 = 403;

/// Whether the other device closed `conn` because it does not (or no
/// longer) admit this one: proof that it knows this device departed.
pub fn closed_as_not_admitted(conn: &Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(iroh::endpoint::ConnectionError::ApplicationClosed(close))
            if close.error_code == NOT_ADMITTED.into()
    )
}

/// The wire version the peer named when it closed `conn` because it does
/// not speak ours (`roundtable_core::wire::VERSION_CLOSE`), if it did.
pub fn closed_naming_version(conn: &Connection) -> Option<u8> {
    match conn.close_reason() {
        Some(iroh::endpoint::ConnectionError::ApplicationClosed(close))
            if close.error_code == roundtable_core::wire::VERSION_CLOSE.into() =>
        {
            roundtable_core::wire::parse_version_reason(&close.reason)
        }
        _ => None,
    }
}

/// Closes `conn` telling the peer that it sent a wire version this device
/// does not speak, and which one this device speaks.
pub fn close_naming_version(conn: &Connection) {
    conn.close(
        roundtable_core::wire::VERSION_CLOSE.into(),
        roundtable_core::wire::version_reason().as_bytes(),
    );
}

/// Checks every connection, incoming or outgoing, once its TLS handshake
/// proved the remote's id and before any protocol handler — gossip, sync,
/// any other — sees a byte. Only the join protocol is open to devices that
/// are not admitted.
#[derive(Debug)]
pub(crate) struct AdmissionHook {
    pub(crate) admitted: Admitted,
}

impl EndpointHooks for AdmissionHook {
    async fn after_handshake(&self, conn: &Connection) -> AfterHandshakeOutcome {
        if conn.alpn() == JOIN_ALPN {
            return AfterHandshakeOutcome::Accept;
        }
        // A steward is no device of a circle: this device dials it, and
        // never serves its protocol.
        if conn.alpn() == STEWARD_ALPN && conn.side() == Side::Client {
            return AfterHandshakeOutcome::Accept;
        }
        let remote = conn.remote_id();
        // Only a removed member's device asks for its farewell (this device
        // asks one only when it was refused itself).
        if conn.alpn() == FAREWELL_ALPN {
            if conn.side() == Side::Client || self.admitted.may_ask_farewell(&remote) {
                return AfterHandshakeOutcome::Accept;
            }
            debug!(peer = %remote.fmt_short(), "refused a farewell to a device that was not removed");
            return AfterHandshakeOutcome::Reject {
                error_code: NOT_ADMITTED.into(),
                reason: b"not admitted".to_vec(),
            };
        }
        if self.admitted.contains(&remote) {
            self.admitted.track(conn);
            return AfterHandshakeOutcome::Accept;
        }
        let side = if conn.side() == Side::Client {
            "to"
        } else {
            "from"
        };
        debug!(peer = %remote.fmt_short(), "refused a connection {side} a device that is not admitted");
        AfterHandshakeOutcome::Reject {
            error_code: NOT_ADMITTED.into(),
            reason: b"not admitted".to_vec(),
        }
    }
}
