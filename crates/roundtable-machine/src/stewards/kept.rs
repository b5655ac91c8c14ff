//! What this device keeps between runs about a circle's stewards: where
//! it stands with each shelf, and how it checks a steward that may lie.

use super::*;

/// Where this device stands with one shelf at one steward.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Mark {
    /// Everything up to this number was fetched (or was this device's).
    pub(super) after: u64,
    /// The shelf holds every change these reach.
    pub(super) frontier: Vec<[u8; 32]>,
    /// The newest number seen on the shelf.
    pub(super) highest: u64,
    /// The size of the last snapshot this device put there.
    pub(super) snapshot: u64,
}

/// How this device checks one shelf of a steward that may lie.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(super) struct Check {
    /// When the shelf was last read whole, from its start (ms since 1970).
    pub(super) read_whole: i64,
    /// An item that did not open, and on how many visits it did not.
    pub(super) doubt: Option<(u64, u8)>,
}

/// What is kept between runs, per circle.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Kept {
    /// By steward record, then shelf.
    pub(super) marks: BTreeMap<EntityId, BTreeMap<[u8; 32], Mark>>,
    /// When each steward was last reached (ms since 1970).
    pub(super) reached: BTreeMap<EntityId, i64>,
    /// The key this device used last.
    pub(super) active: Option<KeptKey>,
    /// Keys held before, whose shelves are still to visit, and at which
    /// stewards they were visited.
    pub(super) visits: Vec<(KeptKey, BTreeSet<EntityId>)>,
    /// Welcomes of this device's invites, until they expire.
    pub(super) welcomes: Vec<PendingWelcome>,
    /// By steward record, then shelf.
    pub(super) checks: BTreeMap<EntityId, BTreeMap<[u8; 32], Check>>,
}

/// [`Kept`] as releases before shelf checks wrote it (postcard has no
/// field names: a field added is a layout of its own).
#[derive(Default, Serialize, Deserialize)]
pub(super) struct KeptBefore {
    pub(super) marks: BTreeMap<EntityId, BTreeMap<[u8; 32], Mark>>,
    pub(super) reached: BTreeMap<EntityId, i64>,
    pub(super) active: Option<KeptKey>,
    pub(super) visits: Vec<(KeptKey, BTreeSet<EntityId>)>,
    pub(super) welcomes: Vec<PendingWelcome>,
}

impl From<KeptBefore> for Kept {
    fn from(k: KeptBefore) -> Self {
        Self {
            marks: k.marks,
            reached: k.reached,
            active: k.active,
            visits: k.visits,
            welcomes: k.welcomes,
            checks: BTreeMap::new(),
        }
    }
}

impl Kept {
    /// What was kept, as this release or an earlier one wrote it; nothing
    /// when it does not read.
    pub(super) fn read(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes::<Kept>(bytes).ok().or_else(|| {
            postcard::from_bytes::<KeptBefore>(bytes)
                .ok()
                .map(Kept::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_earlier_release_kept_is_read() {
        let steward = EntityId::random(&mut rand::rng());
        let mark = Mark {
            after: 7,
            frontier: vec![[1; 32]],
            highest: 9,
            snapshot: 0,
        };
        let before = KeptBefore {
            marks: BTreeMap::from([(steward, BTreeMap::from([([2; 32], mark)]))]),
            reached: BTreeMap::from([(steward, 1_780_000_000_000)]),
            ..KeptBefore::default()
        };
        let bytes = postcard::to_stdvec(&before).expect("encodes");
        let kept = Stewards::restore(Some(bytes)).kept;
        assert_eq!(kept.marks[&steward][&[2; 32]].after, 7);
        assert_eq!(kept.reached[&steward], 1_780_000_000_000);
        assert!(kept.checks.is_empty());
        // And what this release keeps reads back as it was.
        let mut now = kept;
        now.checks.entry(steward).or_default().insert(
            [2; 32],
            Check {
                read_whole: 5,
                doubt: Some((8, 1)),
            },
        );
        let bytes = postcard::to_stdvec(&now).expect("encodes");
        let again = Stewards::restore(Some(bytes)).kept;
        assert_eq!(again.checks[&steward][&[2; 32]].doubt, Some((8, 1)));
        assert_eq!(again.marks[&steward][&[2; 32]].highest, 9);
    }
}
