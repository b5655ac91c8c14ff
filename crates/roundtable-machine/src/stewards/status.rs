//! How each steward of a circle stands, as this device sees it: for
//! `status`, `steward list` and the web app, which all word it from here.

use super::*;

/// A steward in [`CircleStatus`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StewardStatus {
    /// Its record in the circle.
    pub id: EntityId,
    /// Its id.
    pub steward: DeviceId,
    /// Its ticket.
    pub ticket: String,
    /// What people call it: the name it was given ("Maya's Pi"), else
    /// after who added it ("Maya's steward").
    #[serde(default)]
    pub name: String,
    /// It was given its name.
    #[serde(default)]
    pub named: bool,
    /// Who added it.
    pub added_by: String,
    /// Who stopped the circle using it, if anyone did (it is then listed
    /// for everyone to see, and no longer used).
    #[serde(default)]
    pub removed_by: Option<String>,
    /// When this device last reached it.
    pub last_reached: Option<Timestamp>,
    /// Connected now, and told of what others put.
    pub connected: bool,
    /// Why the last try failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
    /// Set when it answered with less than it had kept.
    #[serde(default)]
    pub stale: Option<String>,
    /// Invites of this device not yet left there.
    #[serde(default)]
    pub invites_waiting: usize,
    /// It holds everything this device holds (as far as this device put
    /// or took there).
    #[serde(default)]
    pub up_to_date: bool,
}

impl StewardStatus {
    /// Who keeps the circle, in words: "Maya's Pi (added by Maya)", or
    /// "Maya's steward" where it was given no name.
    pub fn who(&self) -> String {
        let name = if self.name.is_empty() {
            format!("steward {}", self.steward.fmt_short())
        } else {
            self.name.clone()
        };
        if self.named && !self.added_by.is_empty() {
            format!("{name} (added by {})", self.added_by)
        } else {
            name
        }
    }
}

impl Machine {
    /// The stewards of a circle, for its status, named as `view` (the
    /// circle's kept reading) names them.
    pub(crate) fn steward_status(&self, circle: CircleId, view: &CircleView) -> Vec<StewardStatus> {
        let Some(served) = self.circles.get(&circle) else {
            return Vec::new();
        };
        served
            .store
            .circle()
            .stewards()
            .into_iter()
            .map(|r| {
                // A steward no longer used has no link that counts.
                let link = served
                    .stewards
                    .links
                    .get(&r.id)
                    .filter(|_| r.removed_by.is_none());
                StewardStatus {
                    id: r.id,
                    steward: r.steward,
                    ticket: r.ticket.clone(),
                    name: r.called(|m| view.name_of(m)),
                    named: r.name.is_some(),
                    added_by: r.added_by.map(|m| view.name_of(&m)).unwrap_or_default(),
                    removed_by: r.removed_by.map(|m| view.name_of(&m)),
                    last_reached: served
                        .stewards
                        .kept
                        .reached
                        .get(&r.id)
                        .map(|ms| Timestamp::from_millis(*ms)),
                    connected: link
                        .and_then(|l| l.open.as_ref())
                        .is_some_and(|o| o.watching),
                    error: link.and_then(|l| l.error.clone()),
                    stale: link.and_then(|l| l.stale.clone()),
                    up_to_date: {
                        let shelf = ShelfKey::of(circle, served.keys.active()).shelf();
                        let mut heads: Vec<[u8; 32]> =
                            served.store.circle().heads().iter().map(|h| h.0).collect();
                        heads.sort();
                        served
                            .stewards
                            .kept
                            .marks
                            .get(&r.id)
                            .and_then(|m| m.get(&shelf))
                            .is_some_and(|m| sorted(&m.frontier) == heads)
                    },
                    invites_waiting: served
                        .stewards
                        .kept
                        .welcomes
                        .iter()
                        .filter(|p| !p.revoked && !p.left.contains(&r.id))
                        .count(),
                }
            })
            .collect()
    }
}
