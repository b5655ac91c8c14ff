//! The heart of Roundtable, with no I/O: the circle document over Automerge,
//! identities and keys, the wire formats and the rules every device applies.
//!
//! A *circle* is a small group of people who look after each other. Each
//! member's device holds the circle as an Automerge document; edits merge
//! without a server. This crate knows what a circle holds and which edits are
//! allowed; it never touches a disk, a clock or a network. Time and
//! randomness are passed in, so everything here runs the same in a test.
//!
//! ```
//! use roundtable_core::{Circle, DeviceKey, MemberKey, Mood, Profile, Timestamp};
//!
//! let (maya, phone) = (MemberKey::generate(), DeviceKey::generate());
//! let cert = maya.certify(phone.id());
//! let now = Timestamp::from_millis(1_795_464_000_000);
//! let mut rng = rand::rng();
//! let mut circle =
//!     Circle::create("Tuesday Supper", "", &cert, &Profile::named("Maya"), now, &mut rng)?;
//! circle.checkin(maya.id(), Mood::Heavy, "long week", now, &mut rng)?;
//!
//! // A second device gets a copy, and both edit while apart.
//! let mut copy = Circle::load(&circle.save())?;
//! let laptop = DeviceKey::generate();
//! copy.set_device(laptop.id());
//! copy.add_device(&maya.certify(laptop.id()), now)?;
//! circle.checkin(maya.id(), Mood::Okay, "soup helped", now, &mut rng)?;
//!
//! // Merged in either order, both print the same canonical JSON.
//! circle.merge(&mut copy)?;
//! copy.merge(&mut circle)?;
//! assert_eq!(circle.canonical_json(), copy.canonical_json());
//! assert_eq!(circle.view().checkins.len(), 2);
//! # Ok::<(), roundtable_core::CoreError>(())
//! ```

mod actors;
pub mod authorship;
pub mod care;
pub mod circle;
pub mod dates;
mod doc;
pub mod double_ups;
pub mod entries;
pub mod equivocation;
pub mod error;
pub mod export;
pub mod farewell;
pub mod feed;
pub mod fuzzing;
pub mod identity;
pub mod ids;
pub mod invite;
pub mod keys;
pub mod membership;
pub mod mood;
pub mod op;
pub mod people;
pub mod plain;
pub mod quiet;
pub mod schema;
mod shape;
pub mod since;
mod standing;
pub mod steward;
pub mod sync;
mod text;
pub mod time;
pub mod view;
pub mod wire;

pub use authorship::{Applied, HeadBook, Rejection, SignedHead};
pub use automerge::ChangeHash;
pub use care::{GatheringEdit, NewGathering};
pub use circle::{Circle, Profile, ProfileEdit, Repliable};
pub use double_ups::DoubleUp;
pub use error::{CoreError, ParseIdError};
pub use identity::{
    DeviceCert, DeviceKey, KeyKind, MemberKey, key_file_text, parse_key_file,
    verify_device_signature,
};
pub use ids::{CircleId, DeviceId, EntityId, MIN_PREFIX, MemberId, Resolved, resolve_prefix};
pub use invite::{InviteKind, InviteSecret, Redemption, UNKNOWN_INVITE};
pub use keys::{EnvelopeError, EpochKey, KeyOffer, Keyring, ReplayFilter};
pub use membership::{Membership, Proposal, ProposalKind, ProposalState, Return};
pub use mood::Mood;
pub use op::Op;
pub use schema::SCHEMA_VERSION;
pub use sync::PeerSync;
pub use time::Timestamp;
pub use view::{Answer, CircleView, RequestKind};
