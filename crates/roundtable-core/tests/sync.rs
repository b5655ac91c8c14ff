//! Automerge sync between two copies with kept per-peer state: sessions
//! converge, and a returning peer does not resend its whole history.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Cast, T0};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use roundtable_core::{Circle, Mood, PeerSync, Timestamp};

/// Runs lockstep rounds until a round where neither side says anything;
/// returns the bytes each side sent.
fn session(a: &mut Circle, sa: &mut PeerSync, b: &mut Circle, sb: &mut PeerSync) -> (usize, usize) {
    sa.new_session();
    sb.new_session();
    let (mut sent_a, mut sent_b) = (0, 0);
    for _ in 0..100 {
        let ma = a.sync_generate(sa);
        if let Some(m) = &ma {
            sent_a += m.len();
            b.sync_receive(sb, m).unwrap();
        }
        let mb = b.sync_generate(sb);
        if let Some(m) = &mb {
            sent_b += m.len();
            a.sync_receive(sa, m).unwrap();
        }
        if ma.is_none() && mb.is_none() {
            return (sent_a, sent_b);
        }
    }
    panic!("sync did not converge");
}

#[test]
fn a_returning_peer_resumes_from_what_was_shared() {
    let cast = Cast::new(12);
    let base = cast.circle();
    let mut a = cast.fork(&base, 0);
    let mut b = cast.fork(&base, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let sam = cast.members[1].id();
    for i in 0..500 {
        a.checkin(
            sam,
            Mood::Okay,
            &format!("day {i}"),
            Timestamp::from_millis(T0 + i),
            &mut rng,
        )
        .unwrap();
    }
    let (mut sa, mut sb) = (PeerSync::fresh(), PeerSync::fresh());
    let (first, _) = session(&mut a, &mut sa, &mut b, &mut sb);
    assert_eq!(a.canonical_json(), b.canonical_json());
    assert!(b.peer_has_everything(&sb) && a.peer_has_everything(&sa));

    // Both keep their state across a restart; one more edit happens.
    let (kept_a, kept_b) = (sa.persist(), sb.persist());
    let (mut sa, mut sb) = (PeerSync::restore(&kept_a), PeerSync::restore(&kept_b));
    a.checkin(
        sam,
        Mood::Heavy,
        "one more",
        Timestamp::from_millis(T0 + 1000),
        &mut rng,
    )
    .unwrap();
    let (second, _) = session(&mut a, &mut sa, &mut b, &mut sb);
    assert_eq!(a.canonical_json(), b.canonical_json());
    assert!(
        second * 10 < first,
        "the second session sent {second} bytes, the first {first}: history was resent"
    );

    // A fresh state (nothing kept) works too, it just costs more.
    let (mut fa, mut fb) = (PeerSync::fresh(), PeerSync::fresh());
    session(&mut a, &mut fa, &mut b, &mut fb);
    // Damaged kept state is treated as fresh, not as an error.
    let _ = PeerSync::restore(b"\xff\x00garbage");
}

#[test]
fn bad_sync_messages_are_errors_and_change_nothing() {
    let cast = Cast::new(13);
    let mut a = cast.fork(&cast.circle(), 0);
    let before = a.canonical_json();
    let mut s = PeerSync::fresh();
    for bad in [&b""[..], b"\x42", b"\x42\x00\x01\x02", &[0xff; 64]] {
        assert!(a.sync_receive(&mut s, bad).is_err());
    }
    assert_eq!(a.canonical_json(), before);
}
