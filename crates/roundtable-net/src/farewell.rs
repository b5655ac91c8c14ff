//! The farewell protocol: a device its circle removed, refused everywhere
//! else, asks a peer for the records of its removal (see
//! `roundtable_core::farewell`). The admission hook lets a connection on it
//! through only from a device the node named for it ([`crate::Admitted::set_farewell`]).

use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use tokio::sync::mpsc;
use tracing::debug;

use crate::Incoming;

/// The farewell protocol: one request, one answer.
pub const FAREWELL_ALPN: &[u8] = b"roundtable/farewell/1";

/// Hands farewell connections to the node.
#[derive(Debug, Clone)]
pub(crate) struct ForwardFarewell(pub(crate) mpsc::Sender<Incoming>);

impl ProtocolHandler for ForwardFarewell {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        if self.0.send(Incoming::Farewell(conn)).await.is_err() {
            debug!("node is shutting down; dropping a farewell connection");
        }
        Ok(())
    }
}
