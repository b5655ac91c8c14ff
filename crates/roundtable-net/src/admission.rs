//! Who may connect: the admitted devices of every circle this device serves.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use iroh::EndpointId;
use iroh::endpoint::{AfterHandshakeOutcome, Connection, EndpointHooks, Side};
use tracing::debug;

use crate::JOIN_ALPN;

/// The set of devices admitted to at least one circle we serve. Cheap to
/// clone; the node updates it whenever membership changes.
#[derive(Debug, Clone, Default)]
pub struct Admitted(Arc<RwLock<HashSet<EndpointId>>>);

impl Admitted {
    /// Replaces the whole set.
    pub fn set(&self, devices: impl IntoIterator<Item = EndpointId>) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        *guard = devices.into_iter().collect();
    }

    /// Whether `id` is admitted.
    pub fn contains(&self, id: &EndpointId) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Every admitted device.
    pub fn all(&self) -> Vec<EndpointId> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }
}

/// Application close code for a refused device.
pub(crate) const NOT_ADMITTED: u32 = 403;

/// Checks every incoming connection once its TLS handshake proved the
/// remote's id, before any protocol handler runs.
#[derive(Debug)]
pub(crate) struct AdmissionHook {
    pub(crate) admitted: Admitted,
}

impl EndpointHooks for AdmissionHook {
    async fn after_handshake(&self, conn: &Connection) -> AfterHandshakeOutcome {
        if conn.side() == Side::Client || conn.alpn() == JOIN_ALPN {
            return AfterHandshakeOutcome::Accept;
        }
        let remote = conn.remote_id();
        if self.admitted.contains(&remote) {
            return AfterHandshakeOutcome::Accept;
        }
        debug!(peer = %remote.fmt_short(), "refused a device that is not admitted");
        AfterHandshakeOutcome::Reject {
            error_code: NOT_ADMITTED.into(),
            reason: b"not admitted".to_vec(),
        }
    }
}
