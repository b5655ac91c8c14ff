//! Two different changes under one number (a device that equivocates), and
//! a home restored from an older copy: the circle never splits, and nothing
//! an honest device wrote is lost. See `roundtable_core::equivocation`.
#![allow(clippy::unwrap_used)]

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use roundtable_core::{
    Applied, ChangeHash, Circle, DeviceKey, HeadBook, MemberKey, Mood, PeerSync, Profile,
    Rejection, SignedHead, Timestamp,
};

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000)
}

/// One device's copy, with the head book a node keeps beside it.
struct Dev {
    key: DeviceKey,
    member: MemberKey,
    circle: Circle,
    book: HeadBook,
}

impl Dev {
    fn checkin(&mut self, note: &str) {
        // Entity ids from the note, so a seed replays exactly.
        let seed = note
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.circle
            .checkin(self.member.id(), Mood::Okay, note, now(), &mut rng)
            .unwrap();
    }

    /// What a node hands a peer at the start of a session: every head it
    /// knows and its own.
    fn heads(&self) -> Vec<SignedHead> {
        let mut all = self.book.all();
        all.extend(SignedHead::sign_all(&self.circle, &self.key));
        all
    }

    /// Gossip: `from`'s changes since `before`, with `from`'s heads.
    fn hear(&mut self, from: &Dev, before: &[ChangeHash]) -> Applied {
        self.book.learn(self.circle.id(), &from.heads());
        self.circle
            .apply_verified(&from.circle.changes_since(before), &mut self.book)
            .unwrap()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .circle
            .view()
            .checkins
            .values()
            .map(|c| c.note.clone())
            .collect();
        notes.sort();
        notes
    }
}

/// A sync session between two devices, as nodes run it: each round
/// carries the heads the other has not seen yet (every one known at
/// first, and each side's own newest when it wrote since), and a sync
/// message, until neither has anything to say. Returns what each applied.
fn sync(a: &mut Dev, b: &mut Dev) -> (Vec<Applied>, Vec<Applied>) {
    let id = a.circle.id();
    let (mut sa, mut sb) = (PeerSync::fresh(), PeerSync::fresh());
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let (ha, hb) = (a.heads(), b.heads());
        a.book.learn(id, &hb);
        b.book.learn(id, &ha);
        let ma = a.circle.sync_generate(&mut sa);
        let mb = b.circle.sync_generate(&mut sb);
        if ma.is_none() && mb.is_none() {
            return (got_a, got_b);
        }
        if let Some(m) = ma {
            got_b.push(
                b.circle
                    .sync_receive_verified(&mut sb, &m, &mut b.book)
                    .unwrap(),
            );
        }
        if let Some(m) = mb {
            got_a.push(
                a.circle
                    .sync_receive_verified(&mut sa, &m, &mut a.book)
                    .unwrap(),
            );
        }
    }
    panic!(
        "sync did not settle in 50 rounds: {:?} / {:?}; heads {:?} / {:?}; missing {:?} / {:?}",
        got_a.last(),
        got_b.last(),
        a.circle.heads(),
        b.circle.heads(),
        a.circle.missing_deps(),
        b.circle.missing_deps()
    );
}

/// Maya founds a circle with Sam and Ana; each device writes in a session
/// of its own. Keys and ids come from `seed`.
fn circle(seed: u64) -> (Dev, Dev, Dev) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut key = || {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        bytes
    };
    let mk = |_| (MemberKey::from_seed(&key()), DeviceKey::from_seed(&key()));
    let [(maya, mp), (sam, sp), (ana, ap)] = [0, 1, 2].map(mk);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = Circle::create(
        "Supper",
        "",
        &maya.certify(mp.id()),
        &Profile::named("Maya"),
        now(),
        &mut rng,
    )
    .unwrap();
    for (m, d, name) in [(&sam, &sp, "Sam"), (&ana, &ap, "Ana")] {
        c.add_member(
            &m.certify(d.id()),
            &Profile::named(name),
            Some(maya.id()),
            now(),
        )
        .unwrap();
    }
    let mut session = 0;
    let mut dev = |key: DeviceKey, member: MemberKey| {
        session += 1;
        let mut copy = c.clone();
        copy.set_writer(key.id(), session);
        let book = HeadBook::for_circle(&copy);
        Dev {
            key,
            member,
            circle: copy,
            book,
        }
    };
    (dev(mp, maya), dev(sp, sam), dev(ap, ana))
}

/// A second copy of `dev`, as a tampered device (or one copied mid-run)
/// holds it: the same key and the same session.
fn twin(dev: &Dev) -> Dev {
    Dev {
        key: DeviceKey::from_seed(&dev.key.to_seed()),
        member: MemberKey::from_seed(&dev.member.to_seed()),
        circle: dev.circle.clone(),
        book: dev.book.clone(),
    }
}

/// Sam's device signs two different check-ins under one number and sends
/// one to Maya and the other to Ana, who each write on top of theirs. When
/// Maya and Ana meet, both keep the same one of Sam's two, drop the other,
/// and hold every word Maya and Ana wrote, including what was written on
/// top of the one that went. Without the rule, their sync fails on
/// "duplicate seq" and never gets anywhere again.
#[test]
fn an_equivocating_device_cannot_split_the_circle() {
    for round in 0..64 {
        let (mut maya, mut sam, mut ana) = circle(round);
        // Everyone starts level.
        sync(&mut maya, &mut sam);
        sync(&mut maya, &mut ana);
        assert_eq!(maya.circle.heads(), ana.circle.heads());

        let mut sam_b = twin(&sam);
        let before = sam.circle.heads();
        sam.checkin(&format!("to Maya {round}"));
        sam_b.checkin(&format!("to Ana {round}"));
        let x = sam.circle.heads()[0];
        let y = sam_b.circle.heads()[0];
        assert_ne!(x, y);
        maya.hear(&sam, &before);
        ana.hear(&sam_b, &before);

        // Each writes on top of the one it holds.
        maya.checkin("Maya, on top");
        ana.checkin("Ana, on top");

        let (to_maya, to_ana) = sync(&mut maya, &mut ana);
        // Whatever crossed, both now agree.
        assert_eq!(maya.circle.heads(), ana.circle.heads(), "round {round}");
        assert_eq!(
            maya.circle.canonical_json(),
            ana.circle.canonical_json(),
            "round {round}"
        );
        let kept = x.min(y);
        let dropped = x.max(y);
        for dev in [&maya, &ana] {
            assert!(dev.circle.has_change(&kept));
            assert!(!dev.circle.has_change(&dropped));
            let notes = dev.notes();
            assert!(notes.contains(&"Maya, on top".to_owned()), "{notes:?}");
            assert!(notes.contains(&"Ana, on top".to_owned()), "{notes:?}");
            let sams: Vec<&String> = notes.iter().filter(|n| n.starts_with("to ")).collect();
            assert_eq!(sams.len(), 1, "{notes:?}");
        }
        // Both were told who equivocated, and which change stays.
        let told: Vec<_> = to_maya
            .iter()
            .chain(&to_ana)
            .flat_map(|a| a.equivocated.clone())
            .collect();
        assert!(!told.is_empty());
        for e in &told {
            assert_eq!(e.device, sam.key.id());
            assert_eq!(e.kept, kept);
            assert_eq!(e.dropped, dropped);
        }

        // Sam's two copies are not heard again; a third device that meets
        // either side converges too, and so does the loser's copy, which
        // drops the change it made when it hears the other.
        let mut loser = if kept == x { sam_b } else { sam };
        sync(&mut loser, &mut maya);
        assert_eq!(loser.circle.heads(), maya.circle.heads());
        assert_eq!(loser.notes(), maya.notes());
    }
}

/// A change that claims another device's number but that no head of it
/// covers is refused as unproven: it cannot knock out what is held, and
/// everything else in the same batch still applies.
#[test]
fn a_made_up_change_under_anothers_number_changes_nothing_held() {
    let (mut maya, mut sam, mut ana) = circle(1);
    sync(&mut maya, &mut sam);
    sync(&mut maya, &mut ana);
    let before = sam.circle.heads();
    let mut forged = twin(&sam);
    sam.checkin("real");
    maya.hear(&sam, &before);
    // Ana makes a change under Sam's actor and number, with no head of
    // Sam's for it, beside one of her own.
    forged.checkin("forged");
    let mut ana_copy = forged.circle.clone();
    ana_copy.set_writer(ana.key.id(), 99);
    ana_copy
        .checkin(
            ana.member.id(),
            Mood::Okay,
            "Ana's",
            now(),
            &mut rand::rng(),
        )
        .unwrap();
    let bytes = ana_copy.changes_since(&before);
    maya.book.learn(maya.circle.id(), &ana.heads());
    let out = maya.circle.apply_verified(&bytes, &mut maya.book).unwrap();
    assert!(out.equivocated.is_empty());
    assert!(
        out.rejected
            .iter()
            .any(|(_, r)| matches!(r, Rejection::Unproven))
    );
    assert!(maya.notes().contains(&"real".to_owned()));
    assert!(!maya.notes().contains(&"forged".to_owned()));
}

/// Sam's home is restored from a copy older than some of his check-ins,
/// and he writes before his device hears from anyone. His new session
/// numbers its changes apart from the old ones, so nothing clashes: when
/// he meets Maya, both hold every word, the old and the new, proven by
/// heads of both sessions.
#[test]
fn a_restored_home_writes_before_and_after_syncing_and_loses_nothing() {
    let (mut maya, mut sam, _ana) = circle(2);
    sync(&mut maya, &mut sam);
    let backup = sam.circle.clone();
    for i in 0..3 {
        sam.checkin(&format!("before the backup was restored {i}"));
    }
    sync(&mut maya, &mut sam);
    // The laptop is restored from the backup; the node starts again (a
    // new session) and Sam writes before it reaches anyone.
    let mut restored = Dev {
        key: DeviceKey::from_seed(&sam.key.to_seed()),
        member: MemberKey::from_seed(&sam.member.to_seed()),
        circle: backup,
        book: HeadBook::for_circle(&sam.circle),
    };
    restored.circle.set_writer(sam.key.id(), 4242);
    restored.checkin("after the restore, offline");
    let (to_maya, to_sam) = sync(&mut maya, &mut restored);
    for a in to_maya.iter().chain(&to_sam) {
        assert!(a.rejected.is_empty(), "{:?}", a.rejected);
        assert!(a.equivocated.is_empty());
    }
    assert_eq!(maya.circle.heads(), restored.circle.heads());
    assert_eq!(restored.notes(), maya.notes());
    assert_eq!(restored.notes().len(), 4);
    // ... and after syncing, it writes again; a device that never met Sam
    // takes the whole circle on the heads Maya hands over, both sessions'
    // changes proven.
    restored.checkin("after syncing");
    sync(&mut maya, &mut restored);
    assert_eq!(maya.notes().len(), 5);
    let probe = Circle::load(&maya.circle.save()).unwrap();
    let mut book = HeadBook::for_circle(&probe);
    book.learn(probe.id(), &maya.heads());
    let (_, applied) = Circle::load_verified(&maya.circle.save(), &mut book).unwrap();
    assert!(applied.rejected.is_empty(), "{:?}", applied.rejected);
}
