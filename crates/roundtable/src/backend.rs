//! Where commands read and write: the home's files directly when no node
//! runs, or the running node through its control socket (the node is then
//! the home's only writer).

use anyhow::Result;
use roundtable_core::{Circle, CircleId, EntityId, Op, Timestamp};
use roundtable_node::ControlError;
use roundtable_node::control::ControlClient;
use roundtable_store::{Home, WriteLock};

use crate::bad_input;

pub(crate) enum Backend {
    Offline(Home),
    Node { home: Home, client: ControlClient },
}

impl Backend {
    /// The running node of `home`, if one answers; else the files.
    pub(crate) fn new(home: Home) -> Self {
        match ControlClient::connect(home.root()) {
            Some(client) => Backend::Node { home, client },
            None => Backend::Offline(home),
        }
    }

    pub(crate) fn home(&self) -> &Home {
        match self {
            Backend::Offline(home) | Backend::Node { home, .. } => home,
        }
    }

    pub(crate) fn node(&self) -> Option<&ControlClient> {
        match self {
            Backend::Node { client, .. } => Some(client),
            Backend::Offline(_) => None,
        }
    }

    /// A request the node did not serve, as the CLI's error: where the
    /// input was at fault it keeps exit code 2.
    pub(crate) fn failed(e: ControlError) -> anyhow::Error {
        if e.is_bad_input() {
            bad_input(e.message)
        } else {
            anyhow::anyhow!(e.message)
        }
    }

    pub(crate) fn circle_ids(&self) -> Result<Vec<CircleId>> {
        match self {
            Backend::Offline(home) => Ok(home.circle_ids()?),
            Backend::Node { client, .. } => {
                let circles = client.circles().map_err(Self::failed)?;
                Ok(circles.into_iter().map(|c| c.id).collect())
            }
        }
    }

    pub(crate) fn read_circle(&self, id: CircleId) -> Result<Circle> {
        match self {
            Backend::Offline(home) => Ok(home.read_circle(id)?),
            Backend::Node { client, .. } => {
                let doc = client.doc(id).map_err(Self::failed)?;
                Ok(Circle::load(&doc)?)
            }
        }
    }

    /// A reader's lock on the files; the running node needs none.
    pub(crate) fn read_lock(&self) -> Result<Option<roundtable_store::HomeLock>> {
        match self {
            Backend::Offline(home) => Ok(home.lock_shared()?),
            Backend::Node { .. } => Ok(None),
        }
    }

    /// Notes that this device's person looked at `circle` now (a record of
    /// this device's own, never synced): through the node when it runs, as
    /// it is the home's writer then.
    pub(crate) fn mark_seen(
        &self,
        circle: CircleId,
        seen: &roundtable_core::since::Seen,
    ) -> Result<()> {
        match self {
            Backend::Offline(home) => {
                let lock = home.lock("roundtable feed --since-last")?;
                home.write_record(
                    &lock,
                    roundtable_store::NodeRecord::Seen(circle),
                    &seen.to_bytes(),
                )?;
                Ok(())
            }
            Backend::Node { client, .. } => client.seen(circle, seen.at).map_err(Self::failed),
        }
    }

    /// Performs an edit; returns once it is durable.
    pub(crate) fn perform(
        &self,
        circle: CircleId,
        op: &Op,
        now: Timestamp,
        offline: impl FnOnce(&Home, &WriteLock) -> Result<Option<EntityId>>,
    ) -> Result<Option<EntityId>> {
        match self {
            Backend::Offline(home) => {
                let lock = home.lock(&format!("roundtable {}", op.name()))?;
                offline(home, &lock)
            }
            Backend::Node { client, .. } => client
                .perform(circle, op.clone(), now)
                .map_err(Self::failed),
        }
    }
}
