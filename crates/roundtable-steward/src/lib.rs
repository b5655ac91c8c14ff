//! The Roundtable steward: an always-on peer that keeps a circle's sealed
//! changes and carries them between devices that are never awake at the
//! same time, without being able to read them.

pub mod blobs;
pub mod fuzzing;
pub mod keeper;

pub use keeper::{Keeper, KeeperStatus, Limits, Session};
pub mod server;

pub use server::{Steward, StewardError, StewardOptions};
