//! Who writes: the Automerge actor of a device's writing session.

use automerge::ActorId;

use crate::ids::DeviceId;

/// The Automerge actor id of a device's session 0: the device id itself
/// (every change made before writing sessions existed has it).
pub fn actor(device: DeviceId) -> ActorId {
    ActorId::from(device.as_bytes().as_slice())
}

/// The Automerge actor id of one writing session of a device: the device id
/// followed by the session number (8 bytes, big-endian). Session 0 is the
/// device id alone ([`actor`]).
///
/// Automerge numbers each actor's changes 1, 2, 3, ...; a home restored
/// from an older copy (or copied to a second machine) that went on under
/// the same actor would number a new change like one it made before the
/// copy, and every device holding the older one would refuse it. A fresh
/// session at every start of a writer cannot collide that way.
pub fn session_actor(device: DeviceId, session: u64) -> ActorId {
    if session == 0 {
        return actor(device);
    }
    let mut bytes = Vec::with_capacity(40);
    bytes.extend_from_slice(device.as_bytes());
    bytes.extend_from_slice(&session.to_be_bytes());
    ActorId::from(bytes)
}

/// The device an Automerge actor belongs to, and its session; `None` for
/// an actor that is no device's.
pub fn device_of(actor: &ActorId) -> Option<(DeviceId, u64)> {
    let bytes = actor.to_bytes();
    let device = <[u8; 32]>::try_from(bytes.get(..32)?).ok()?;
    let session = match bytes.len() {
        32 => 0,
        40 => u64::from_be_bytes(bytes[32..].try_into().ok()?),
        _ => return None,
    };
    if bytes.len() == 40 && session == 0 {
        // Session 0 is spelled one way only.
        return None;
    }
    Some((DeviceId::from_bytes(device), session))
}

/// The session after `session`, for a writer that must not go on where it
/// was (its memory was reread from disk, or changes of its were dropped):
/// derived, so no randomness is needed, and never 0.
pub fn next_session(session: u64) -> u64 {
    let h = blake3::derive_key(
        "roundtable next writing session 2026",
        &session.to_le_bytes(),
    );
    u64::from_le_bytes(h[..8].try_into().unwrap_or([1; 8])).max(1)
}
