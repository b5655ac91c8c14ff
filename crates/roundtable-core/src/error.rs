//! Errors of the core.

use crate::ids::EntityId;

/// A string could not be read as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {what}: {reason}")]
pub struct ParseIdError {
    pub(crate) what: &'static str,
    pub(crate) reason: String,
}

/// What went wrong in the core. Messages are written for the person at the
/// keyboard: they say what failed and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A mood outside the fixed set.
    #[error("unknown mood {0:?}: choose one of thriving, okay, heavy, struggling")]
    UnknownMood(String),
    /// The acting member is not in this circle.
    #[error("{0} is not a member of this circle")]
    NotAMember(String),
    /// The acting member was removed from this circle by consent; the
    /// sentence they are told ([`crate::Membership::removal_notice`]).
    #[error("{0}")]
    Removed(String),
    /// An entity that should exist does not.
    #[error("there is no {kind} {id} in this circle")]
    NoSuchEntity {
        /// What kind of entity was looked for.
        kind: &'static str,
        /// Its id.
        id: EntityId,
    },
    /// The circle's rules do not let this member do this.
    #[error("{0}")]
    NotAllowed(String),
    /// A value that should have a fixed form does not.
    #[error("{0}")]
    Invalid(String),
    /// A required piece of text was empty.
    #[error("the {0} cannot be empty")]
    Empty(&'static str),
    /// A piece of text is longer than the circle accepts.
    #[error("the {field} is too long ({len} characters; at most {max})")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not a circle this version understands.
    #[error("this is not a Roundtable circle: {0}")]
    NotACircle(String),
    /// The document was written by a newer version of Roundtable.
    #[error(
        "this circle uses schema version {found}, newer than this Roundtable understands ({supported}); update Roundtable to edit it"
    )]
    SchemaTooNew {
        /// The version found in the document.
        found: u64,
        /// The newest version this build understands.
        supported: u64,
    },
    /// Bytes that should have been a document or change could not be read.
    #[error("the circle data could not be read: {0}")]
    BadDocument(String),
    /// A key or certificate did not verify or could not be parsed.
    #[error("{0}")]
    BadKey(String),
    /// Automerge refused an operation.
    #[error("the circle document refused the edit: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

impl CoreError {
    /// Whether the person's input was at fault (a refused edit, an unknown
    /// name or id), as opposed to something failing underneath; the CLI
    /// exits with 2 for the first and 1 for the second.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            CoreError::UnknownMood(_)
                | CoreError::Empty(_)
                | CoreError::TooLong { .. }
                | CoreError::NotAMember(_)
                | CoreError::Removed(_)
                | CoreError::NoSuchEntity { .. }
                | CoreError::NotAllowed(_)
                | CoreError::Invalid(_)
        )
    }
}
