//! Where commands read and write: the home's files directly when no node
//! runs, or the running node through its control socket (the node is then
//! the home's only writer).

use anyhow::Result;
use data_encoding::BASE64;
use roundtable_core::{Circle, CircleId, EntityId, Op, Timestamp};
use roundtable_node::control::{ControlClient, ControlError, ControlRequest};
use roundtable_store::{Home, WriteLock};
use serde_json::Value;

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

    /// Asks the node; its refusals of bad input keep exit code 2.
    pub(crate) fn call(client: &ControlClient, req: &ControlRequest) -> Result<Value> {
        client.call(req).map_err(
            |ControlError {
                 message,
                 bad_input: bad,
             }| {
                if bad {
                    bad_input(message)
                } else {
                    anyhow::anyhow!(message)
                }
            },
        )
    }

    pub(crate) fn circle_ids(&self) -> Result<Vec<CircleId>> {
        match self {
            Backend::Offline(home) => Ok(home.circle_ids()?),
            Backend::Node { client, .. } => {
                let v = Self::call(client, &ControlRequest::Circles)?;
                Ok(v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c["id"].as_str()?.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default())
            }
        }
    }

    pub(crate) fn read_circle(&self, id: CircleId) -> Result<Circle> {
        match self {
            Backend::Offline(home) => Ok(home.read_circle(id)?),
            Backend::Node { client, .. } => {
                let v = Self::call(client, &ControlRequest::Doc { circle: id })?;
                let doc = v["doc"]
                    .as_str()
                    .and_then(|s| BASE64.decode(s.as_bytes()).ok())
                    .ok_or_else(|| anyhow::anyhow!("the node sent a circle that does not read"))?;
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
            Backend::Node { client, .. } => {
                Self::call(
                    client,
                    &ControlRequest::Seen {
                        circle,
                        now: seen.at,
                    },
                )?;
                Ok(())
            }
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
            Backend::Node { client, .. } => {
                let req = ControlRequest::Perform {
                    circle,
                    op: op.clone(),
                    now,
                };
                let v = Self::call(client, &req)?;
                Ok(v["id"].as_str().and_then(|s| s.parse().ok()))
            }
        }
    }
}
