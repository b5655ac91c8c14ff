//! The checks behind the fuzz targets in `fuzz/`, one function per target.
//!
//! Each function feeds arbitrary bytes to the parsers of outside input and
//! panics if an invariant breaks. The fuzz targets call them on generated
//! inputs; `tests/fuzz_regressions.rs` calls them on the inputs kept in
//! `fuzz/regressions/`, so a crash once found stays fixed without a nightly
//! toolchain. Not part of the crate's API.

#![doc(hidden)]

use std::fmt::Debug;
use std::sync::OnceLock;

use automerge::Automerge;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::circle::Circle;
use crate::identity::{DeviceKey, KeyKind, MemberKey, key_file_text, parse_key_file};
use crate::keys::{self, EpochKey, Keyring, Sealed};
use crate::view::CircleView;
use crate::wire::{self, Body, JoinReply, JoinRequest, SyncFrame};
use crate::{HeadBook, Mood, PeerSync, Profile, SignedHead, Timestamp};

/// When [`base_circle`] was created; its later edits follow within milliseconds.
pub const BASE_TIME: Timestamp = Timestamp::from_millis(1_795_464_000_000);

/// The founder's member key in [`base_circle`].
pub fn base_member() -> MemberKey {
    MemberKey::from_seed(&[1; 32])
}

/// The founder's device key in [`base_circle`].
pub fn base_device() -> DeviceKey {
    DeviceKey::from_seed(&[2; 32])
}

/// The valid circle that `apply` and sync messages are fuzzed against: a
/// founder, a second member, a check-in with a reply and a moment. Always
/// the same bytes, so kept inputs that extend it stay meaningful.
pub fn base_circle() -> Circle {
    static BASE: OnceLock<Circle> = OnceLock::new();
    BASE.get_or_init(|| {
        // Only fixed, valid arguments go in here, so every step succeeds.
        let build = || -> Result<Circle, crate::CoreError> {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let (maya, phone) = (base_member(), base_device());
            let mut c = Circle::create(
                "Tuesday Supper",
                "soup and company",
                &maya.certify(phone.id()),
                &Profile::named("Maya"),
                BASE_TIME,
                &mut rng,
            )?;
            let sam = MemberKey::from_seed(&[3; 32]);
            let sam_phone = DeviceKey::from_seed(&[4; 32]);
            c.add_member(
                &sam.certify(sam_phone.id()),
                &Profile::named("Sam"),
                Some(maya.id()),
                BASE_TIME.plus_millis(1),
            )?;
            let at = BASE_TIME.plus_millis(2);
            let checkin = c.checkin(maya.id(), Mood::Heavy, "long week", at, &mut rng)?;
            c.reply(checkin, maya.id(), "thank you all", at, &mut rng)?;
            c.moment(maya.id(), "first snow", at, &mut rng)?;
            Ok(c)
        };
        match build() {
            Ok(c) => c,
            Err(e) => panic!("the base circle could not be built: {e}"),
        }
    })
    .clone()
}

/// `parse_key_file` for every kind: never panics, accepts an input as at
/// most one kind, and a seed it returns reads back the same from the text
/// this build writes for it.
pub fn key_file(data: &[u8]) {
    let kinds = [KeyKind::Device, KeyKind::Member, KeyKind::Circle];
    let mut accepted = Vec::new();
    for kind in kinds {
        match parse_key_file(kind, data) {
            Ok(seed) => {
                let text = key_file_text(kind, &seed);
                let again = parse_key_file(kind, text.as_bytes())
                    .unwrap_or_else(|e| panic!("{kind:?} key text we wrote does not parse: {e}"));
                assert_eq!(*again, *seed, "{kind:?} key does not round-trip");
                accepted.push(kind);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    assert!(
        accepted.len() <= 1,
        "one key file was accepted as several kinds: {accepted:?}"
    );
}

/// Outside Automerge bytes, each way they arrive: a saved document
/// (`Circle::load`), changes applied to a valid circle (`Circle::apply`), a
/// sync message for it (`Circle::sync_receive`) and a persisted sync state
/// (`PeerSync::restore`), and the changes in it as the rule on two
/// changes under one number reads them. None may panic; whatever comes out must have a
/// view, and a document saved and loaded again must read the same.
pub fn circle_bytes(data: &[u8]) {
    if let Ok(circle) = Circle::load(data) {
        survives_save_and_load(&circle, "a loaded circle");
    }

    let base = base_circle();
    let mut circle = base.clone();
    let _ = circle.apply(data);
    if circle.heads() == base.heads() {
        unchanged(&circle, "the base circle after apply");
    } else {
        survives_save_and_load(&circle, "the base circle after apply");
    }

    // Verified: with only the founder's head at the base known, no new
    // change can be proven, so nothing gets in, whatever the bytes.
    let mut circle = base.clone();
    let mut book = HeadBook::new();
    book.learn(base.id(), &SignedHead::sign(&base, &base_device()));
    let _ = circle.apply_verified(data, &mut book);
    assert_eq!(circle.heads(), base.heads(), "an unproven change got in");
    let _ = circle.sync_receive_verified(&mut PeerSync::fresh(), data, &mut book);
    assert_eq!(
        circle.heads(),
        base.heads(),
        "an unproven change got in by sync"
    );

    // The parser of incoming changes that the rule on two changes under
    // one number reads, and that rule itself: nothing unproven gets in.
    if let Ok(changes) = crate::equivocation::changes_in(data) {
        let mut circle = base.clone();
        let _ = circle.apply_clashing(changes, &mut book);
        assert_eq!(
            circle.heads(),
            base.heads(),
            "an unproven change got in past the rule on forks"
        );
    }

    let mut circle = base.clone();
    let mut peer = PeerSync::restore(data);
    let _ = circle.sync_generate(&mut peer);
    let _ = circle.sync_receive(&mut PeerSync::fresh(), data);
    let _ = circle.sync_generate(&mut peer);
    if circle.heads() == base.heads() {
        unchanged(&circle, "the base circle after a sync message");
    } else {
        survives_save_and_load(&circle, "the base circle after a sync message");
    }
}

/// Bytes that added no change to the base circle left it reading as it
/// did. Most such bytes were refused and the circle saves to the same bytes
/// as before, which is quick to check; changes held back for missing
/// history are saved too, so then the circle is read in full.
fn unchanged(circle: &Circle, what: &str) {
    static BASE: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    let (base_save, base_json) = BASE.get_or_init(|| {
        let base = base_circle();
        (base.save(), base.canonical_json())
    });
    if circle.save() != *base_save {
        assert_eq!(
            circle.canonical_json(),
            *base_json,
            "{what} added no change but the circle reads differently"
        );
        survives_save_and_load(circle, what);
    }
}

fn survives_save_and_load(circle: &Circle, what: &str) {
    let _ = (circle.id(), circle.name(), circle.schema_version());
    let _ = circle.missing_deps();
    let json = circle.canonical_json();
    let saved = circle.save();

    // The document itself survives saving, whatever it holds.
    let doc = Automerge::load(&saved)
        .unwrap_or_else(|e| panic!("{what}, saved, is not a document any more: {e}"));
    assert_eq!(
        CircleView::read(&doc).to_canonical_json(),
        json,
        "{what} reads differently after save and load"
    );

    // And it is still a circle exactly when it was one before saving. (A
    // peer's change can overwrite the circle record; then both refuse.)
    match (
        Circle::from_doc(circle.doc().clone()),
        Circle::from_doc(doc),
    ) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        (Ok(_), Err(e)) => panic!("{what}, saved, does not load as a circle again: {e}"),
        (Err(e), Ok(_)) => panic!("{what} is not a circle ({e}) but loads as one once saved"),
    }
}

/// `wire::decode` for every message a peer sends: never panics, and a
/// message that decodes encodes to no more bytes than it came in and
/// decodes back to itself.
pub fn wire(data: &[u8]) {
    round_trip::<JoinRequest>(data);
    round_trip::<JoinReply>(data);
    round_trip::<SyncFrame>(data);
    round_trip::<Sealed>(data);
    round_trip::<Body>(data);
    round_trip::<wire::StewardRequest>(data);
    round_trip::<wire::StewardReply>(data);
    // What a node does with a frame's heads and keys: a bounded book, and
    // no key taken that its maker did not sign.
    let circle = crate::ids::CircleId::from_bytes([3; 16]);
    match wire::decode::<SyncFrame>(data) {
        Ok(SyncFrame::Round { heads, .. }) => {
            let mut book = HeadBook::new();
            book.learn(circle, &heads);
            assert!(book.len() <= HeadBook::STRANGERS, "the head book grew");
        }
        Ok(SyncFrame::Keys(Some(offer))) => {
            let mut ring = Keyring::with(EpochKey::new(offer.epoch, [0xff; 32], [0; 32]));
            if ring.accept(circle, &offer) {
                assert!(offer.verify(circle), "an unsigned key was taken");
            }
        }
        _ => {}
    }
}

/// What a device does with bytes a steward hands it: an item of a shelf
/// (of each kind), a welcome, and the changes an item claims to cover.
/// Any bytes give an item or a reason, never a panic; nothing opens
/// that was not sealed under the key it opened with.
pub fn steward(data: &[u8]) {
    use crate::steward::{LockerId, ShelfKey, ShelfKind, WelcomeSlot, covered_by};
    let circle = crate::ids::CircleId::from_bytes([3; 16]);
    let key = ShelfKey::of(circle, &EpochKey::new(0, [1; 32], [2; 32]));
    let locker = LockerId([4; 16]);
    for kind in [ShelfKind::Changes, ShelfKind::Snapshot, ShelfKind::Keys] {
        if let Ok(item) = key.open(&locker, kind, data) {
            assert_eq!(item.kind(), kind, "an item opened as another kind");
        }
    }
    let secret = crate::invite::InviteSecret::from_bytes([5; 32]);
    let _ = WelcomeSlot::of(circle, &secret).open(data);
    // The plaintexts themselves, as a steward could not make them but a
    // member could seal them.
    let _ = postcard::from_bytes::<crate::steward::ShelfItem>(data);
    let _ = postcard::from_bytes::<crate::steward::WaitingWelcome>(data);
    let _ = covered_by(data);
}

/// Opening a gossip envelope: any bytes give a body or a reason, never a
/// panic; and whatever opens was sealed by the key it opened with.
pub fn envelope(data: &[u8]) {
    let keys = Keyring::with(EpochKey::new(0, [1; 32], [2; 32]));
    let circle = crate::ids::CircleId::from_bytes([3; 16]);
    match keys::open(data, circle, &keys, |_| true) {
        Ok((_, body)) => {
            let _ = format!("{body:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // The same bytes as a keyring file.
    if let Ok(k) = Keyring::from_file_text(data) {
        let back = Keyring::from_file_text(k.to_file_text().as_bytes());
        assert_eq!(
            back.ok().as_ref(),
            Some(&k),
            "a keyring file does not round-trip"
        );
    }
}

/// `dates::parse` on any text, at a fixed moment: never panics, and a date
/// it reads is a real day whose time, when given, exists there or says why
/// not.
pub fn dates(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now: jiff::ZonedDateTime = match "2026-11-29T10:00[Europe/Berlin]".parse() {
        Ok(z) => z,
        Err(e) => panic!("the fixed moment does not parse: {e}"),
    };
    if let Ok(typed) = crate::dates::parse(text, &now) {
        let _ = typed.at(now.time_zone(), jiff::civil::Time::midnight());
        let _ = crate::dates::words(
            crate::time::Timestamp::from_millis(now.timestamp().as_millisecond()),
            crate::time::Timestamp::from_millis(now.timestamp().as_millisecond()),
            now.time_zone(),
        );
    }
}

/// A recovery key as a person types it back (`MemberKey::from_words`): no
/// panic; a refusal is one line that never holds a word of the input that
/// is in the list (so an error never shows the key); a key that reads
/// spells itself back as 24 words that read as the same key.
pub fn recovery_words(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match crate::identity::MemberKey::from_words(&text) {
        Ok(key) => {
            let words = key.to_words();
            assert_eq!(words.split(' ').count(), crate::identity::RECOVERY_WORDS);
            let again = crate::identity::MemberKey::from_words(&words).map(|k| k.id());
            assert_eq!(again.ok(), Some(key.id()), "the words do not read back");
        }
        Err(e) => {
            let said = e.to_string();
            assert!(!said.contains('\n'), "a refusal of more than one line");
            // Only a word not in the list is ever named.
            for w in text.split(|c: char| c.is_whitespace() || c == ',') {
                let w = w.to_lowercase();
                if bip39::Language::English.find_word(&w).is_some() {
                    assert!(
                        !said.contains(&format!("\"{w}\"")),
                        "a refusal names a word of the list: {said}"
                    );
                }
            }
        }
    }
}

/// Where a person last looked (`since::Seen`), as read from its file: no
/// panic; a mark that reads writes back to bytes that read as itself; and
/// the circle read at its heads is either refused (heads [`base_circle`]
/// does not hold) or read, with an account from it told without panic.
pub fn seen(data: &[u8]) {
    let Some(seen) = crate::since::Seen::from_bytes(data) else {
        return;
    };
    assert_eq!(
        crate::since::Seen::from_bytes(&seen.to_bytes()).as_ref(),
        Some(&seen),
        "a mark does not read back as itself"
    );
    let base = base_circle();
    if let Ok(before) = base.view_at(&seen.heads) {
        let _ = crate::since::account(
            &before,
            &base.view(),
            base_member().id(),
            seen.at,
            seen.at,
            &jiff::tz::TimeZone::UTC,
        );
    }
}

/// The farewell protocol: what a removed device asks, and what it is
/// answered (see [`crate::farewell`]). No panic; a message that decodes
/// re-encodes to no more bytes and decodes to itself; a request answered
/// against [`base_circle`] gives changes of that circle only, which change
/// nothing in a copy that holds it; a reply's heads keep the head book
/// within its bound, and with no proof the verified path lets nothing in.
pub fn farewell(data: &[u8]) {
    round_trip::<wire::FarewellRequest>(data);
    round_trip::<wire::FarewellReply>(data);
    let base = base_circle();
    match wire::decode::<wire::FarewellRequest>(data) {
        Ok(req) => {
            let kept = crate::farewell::Farewell {
                member: base_member().id(),
                heads: base.heads().iter().map(|h| h.0).collect(),
                proofs: Vec::new(),
            };
            let asked = &req.heads[..req.heads.len().min(crate::farewell::MAX_ASKED_HEADS)];
            let (changes, _) = kept
                .answer(&base, asked)
                .expect("a farewell of a sound copy");
            let mut copy = base.clone();
            let before = copy.canonical_json();
            copy.apply(&changes).expect("its own changes apply");
            assert_eq!(
                copy.canonical_json(),
                before,
                "a farewell changed a full copy"
            );
        }
        Err(_) => {
            if let Ok(wire::FarewellReply::Changes { changes, heads }) =
                wire::decode::<wire::FarewellReply>(data)
            {
                let mut book = HeadBook::new();
                book.learn(base.id(), &heads);
                assert!(book.len() <= HeadBook::STRANGERS, "the head book grew");
                let mut copy = base.clone();
                let before = copy.heads();
                let mut empty = HeadBook::new();
                let _ = copy.apply_verified(&changes, &mut empty);
                assert_eq!(copy.heads(), before, "an unproven farewell let changes in");
            }
        }
    }
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8]) {
    let name = std::any::type_name::<T>();
    let msg = match wire::decode::<T>(data) {
        Ok(msg) => msg,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let bytes = wire::encode(&msg);
    assert!(
        bytes.len() <= data.len(),
        "{name} re-encodes to {} bytes from {}",
        bytes.len(),
        data.len()
    );
    match wire::decode::<T>(&bytes) {
        Ok(back) => assert_eq!(back, msg, "{name} does not round-trip"),
        Err(e) => panic!("{name} we encoded does not decode: {e}"),
    }
}
