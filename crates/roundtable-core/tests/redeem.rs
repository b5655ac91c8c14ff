//! Letting oneself in: a joining device redeems its invite on its own copy
//! of the circle (a welcome, fetched while every member's device may be
//! off), and every device takes the change in, or refuses it, alike.
#![allow(clippy::unwrap_used)]

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use ed25519_dalek::Signer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use roundtable_core::invite::redeem_message;
use roundtable_core::view::Invite;
use roundtable_core::{
    Applied, Circle, CoreError, DeviceCert, DeviceId, DeviceKey, EntityId, HeadBook, InviteKind,
    InviteSecret, MemberKey, Membership, Mood, Profile, Redemption, Rejection, SignedHead,
    Timestamp,
};

fn now() -> Timestamp {
    Timestamp::from_millis(1_795_464_000_000)
}

const DAY: i64 = 24 * 60 * 60 * 1000;

/// One device, its copy of the circle, and the signed heads it keeps.
#[derive(Clone)]
struct Dev {
    key: DeviceKey,
    member: MemberKey,
    circle: Circle,
    book: HeadBook,
}

impl Dev {
    fn new(key: DeviceKey, member: MemberKey, circle: Circle) -> Self {
        let book = HeadBook::for_circle(&circle);
        Self {
            key,
            member,
            circle,
            book,
        }
    }

    fn id(&self) -> DeviceId {
        self.key.id()
    }

    /// This device's signed heads.
    fn heads(&self) -> Vec<SignedHead> {
        SignedHead::sign_all(&self.circle, &self.key)
    }

    /// What this device hands a peer: its own heads and those it keeps.
    fn proofs(&self) -> Vec<SignedHead> {
        let mut all = self.heads();
        all.extend(self.book.all());
        all
    }

    /// Takes in, as a node would, every change of `from` this copy lacks,
    /// with the signed heads of `signers`.
    fn receive(&mut self, from: &Circle, signers: &[&Dev]) -> Applied {
        let heads: Vec<SignedHead> = signers.iter().flat_map(|d| d.proofs()).collect();
        self.take(from, &heads)
    }

    /// Takes in every change of `from` this copy lacks, with `heads`.
    fn take(&mut self, from: &Circle, heads: &[SignedHead]) -> Applied {
        self.book.learn(self.circle.id(), heads);
        self.circle
            .apply_verified(&from.save(), &mut self.book)
            .unwrap()
    }

    /// Takes in what `from` holds, as `from` hands it on.
    fn hear(&mut self, from: &Dev, signers: &[&Dev]) -> Applied {
        let mut all: Vec<&Dev> = signers.to_vec();
        all.push(from);
        self.receive(&from.circle, &all)
    }

    /// Whether this copy admits `device`.
    fn admits(&self, device: DeviceId) -> bool {
        self.circle.membership().admitted.contains(&device)
    }
}

fn keys(rng: &mut ChaCha8Rng) -> (MemberKey, DeviceKey) {
    (
        MemberKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    )
}

/// Maya founds a circle with Sam and Ana; each holds a copy.
fn circle(rng: &mut ChaCha8Rng) -> (Dev, Dev, Dev) {
    let [(maya, mp), (sam, sp), (ana, ap)] = [keys(rng), keys(rng), keys(rng)];
    let mut c = Circle::create(
        "Supper",
        "",
        &maya.certify(mp.id()),
        &Profile::named("Maya"),
        now(),
        rng,
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
    let dev = |key: DeviceKey, member: MemberKey| {
        let mut copy = c.clone();
        copy.set_device(key.id());
        Dev::new(key, member, copy)
    };
    (dev(mp, maya), dev(sp, sam), dev(ap, ana))
}

/// Maya makes an invite; Sam and Ana hear of it.
fn make_invite(
    maya: &mut Dev,
    others: [&mut Dev; 2],
    kind: InviteKind,
    uses: u32,
    rng: &mut ChaCha8Rng,
) -> (EntityId, InviteSecret) {
    let made = maya
        .circle
        .create_invite(
            maya.member.id(),
            kind,
            now().plus_millis(DAY),
            uses,
            now(),
            rng,
        )
        .unwrap();
    for o in others {
        assert!(o.hear(maya, &[]).rejected.is_empty());
    }
    made
}

/// The copy of the circle a joiner takes with its ticket: `from`'s, written
/// from then on by the joining device, in a writing session of its own.
fn welcome(from: &Dev, member: MemberKey, key: DeviceKey) -> Dev {
    let mut circle = Circle::load(&from.circle.save()).unwrap();
    circle.set_writer(key.id(), 1);
    let mut j = Dev::new(key, member, circle);
    let id = j.circle.id();
    j.book.learn(id, &from.proofs());
    j
}

/// The joiner lets itself in, as a new member named `name` (or, without a
/// name, as a device of its member).
fn redeem_self(
    j: &mut Dev,
    invite: EntityId,
    secret: &InviteSecret,
    name: Option<&str>,
) -> Result<Invite, CoreError> {
    let cert = j.member.certify(j.id());
    let profile = name.map(Profile::named);
    j.circle.redeem_self(
        &Redemption {
            invite,
            secret,
            cert: &cert,
            profile: profile.as_ref(),
        },
        now(),
    )
}

/// Whether every copy holds the same circle and membership.
fn all_agree(copies: &[&Dev]) -> Membership {
    let first = copies[0];
    for c in &copies[1..] {
        assert_eq!(c.circle.canonical_json(), first.circle.canonical_json());
        assert_eq!(c.circle.membership(), first.circle.membership());
    }
    first.circle.membership()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The map at `path` in `c`.
fn at(c: &Circle, path: &[&str]) -> ObjId {
    let mut obj = ROOT;
    for key in path {
        obj = match c.doc().get(&obj, *key).unwrap() {
            Some((Value::Object(_), id)) => id,
            other => panic!("nothing at {key}: {other:?}"),
        };
    }
    obj
}

/// A self-redemption written by hand, field by field as
/// [`Circle::redeem_self`] writes it, so that a test can change one thing.
struct ByHand {
    invite: EntityId,
    kind: InviteKind,
    /// The device the records name.
    device: DeviceId,
    /// The certificate in the device's record (its member is the one named).
    cert: DeviceCert,
    /// The proof, hex.
    proof: String,
    /// More device records, in the same devices map.
    more: Vec<DeviceCert>,
    /// For a device invite: the member whose devices map gets the record.
    owner: roundtable_core::MemberId,
    /// Leaves the device's record out.
    no_device: bool,
    /// The device the redemption is keyed by, if not `device`.
    redeemed_as: Option<DeviceId>,
    /// The member the redemption names, if not the certificate's.
    names: Option<roundtable_core::MemberId>,
    /// The kind the redemption says, if not the invite's.
    says: Option<&'static str>,
}

impl ByHand {
    /// The honest one: `j`'s own device, certified by its member key, and
    /// a proof signed with the invite's redeem key.
    fn honest(j: &Dev, invite: EntityId, kind: InviteKind, secret: &InviteSecret) -> Self {
        let cert = j.member.certify(j.id());
        let proof = proof(j, secret, invite, j.id(), j.member.id(), kind);
        Self {
            invite,
            kind,
            device: j.id(),
            cert,
            proof,
            more: Vec::new(),
            owner: j.member.id(),
            no_device: false,
            redeemed_as: None,
            names: None,
            says: None,
        }
    }

    /// Writes it in one change of `j`'s copy, with whatever `also` writes.
    fn write(&self, j: &mut Dev, also: impl FnOnce(&mut Transaction<'_>, &Circle)) {
        let redeemed = at(
            &j.circle,
            &["invites", &self.invite.to_string(), "redeemed"],
        );
        let members = at(&j.circle, &["members"]);
        let theirs = (self.kind == InviteKind::Device)
            .then(|| at(&j.circle, &["members", &self.owner.to_string(), "devices"]));
        let snapshot = j.circle.clone();
        j.circle
            .transact(now(), "redeem invite", |tx| {
                let key = self.redeemed_as.unwrap_or(self.device);
                let rec = tx.put_object(&redeemed, key.to_string(), ObjType::Map)?;
                let names = self.names.unwrap_or(self.cert.member);
                tx.put(&rec, "member", names.to_string())?;
                tx.put(&rec, "at", now().as_millis())?;
                tx.put(&rec, "kind", self.says.unwrap_or(self.kind.as_str()))?;
                tx.put(&rec, "proof", self.proof.as_str())?;
                let devices = match &theirs {
                    Some(devices) => devices.clone(),
                    None => {
                        let m =
                            tx.put_object(&members, self.cert.member.to_string(), ObjType::Map)?;
                        tx.put(&m, "name", "Bea")?;
                        tx.put(&m, "pronouns", "")?;
                        tx.put(&m, "remember", "")?;
                        tx.put(&m, "story", "")?;
                        tx.put(&m, "joined_at", now().as_millis())?;
                        tx.put(&m, "invited_by", ScalarValue::Null)?;
                        tx.put_object(&m, "devices", ObjType::Map)?
                    }
                };
                if !self.no_device {
                    let d = tx.put_object(&devices, self.device.to_string(), ObjType::Map)?;
                    tx.put(&d, "cert", self.cert.signature_hex())?;
                    tx.put(&d, "added_at", now().as_millis())?;
                }
                for more in &self.more {
                    let d = tx.put_object(&devices, more.device.to_string(), ObjType::Map)?;
                    tx.put(&d, "cert", more.signature_hex())?;
                }
                also(tx, &snapshot);
                Ok(())
            })
            .unwrap();
    }
}

/// A proof signed with `secret`'s redeem key.
fn proof(
    j: &Dev,
    secret: &InviteSecret,
    invite: EntityId,
    device: DeviceId,
    member: roundtable_core::MemberId,
    kind: InviteKind,
) -> String {
    let message = redeem_message(j.circle.id(), invite, device, member, kind);
    hex(&secret.redeem_key().sign(&message).to_bytes())
}

/// Every copy in `others` refuses `j`'s newest change and stays as it was.
fn refused_everywhere(j: &Dev, others: [&mut Dev; 3]) {
    for o in others {
        let (json, membership) = (o.circle.canonical_json(), o.circle.membership());
        let out = o.hear(j, &[]);
        assert_eq!(out.applied, 0, "{:?}", out.rejected);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].1, Rejection::NotAdmitted);
        assert_eq!(o.circle.canonical_json(), json);
        assert_eq!(o.circle.membership(), membership);
        assert!(!o.admits(j.id()));
    }
}

#[test]
fn a_joiner_lets_itself_in_and_every_device_agrees() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    let (invite, secret) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Member,
        1,
        &mut rng,
    );
    let stored = &maya.circle.view().invites[&invite];
    assert_eq!(
        stored.redeem_key,
        Some(secret.redeem_key().verifying_key().to_bytes())
    );
    // Bea takes the welcome and lets herself in while nobody is on.
    let (bea, phone) = keys(&mut rng);
    let mut j = welcome(&maya, bea.clone(), phone.clone());
    let before = j.circle.heads();
    let inv = redeem_self(&mut j, invite, &secret, Some("Bea")).unwrap();
    assert_eq!(inv.redeemed[&phone.id()].member, bea.id());
    assert_eq!(j.circle.doc().get_changes(&before).len(), 1, "one change");
    assert!(j.admits(phone.id()));
    // Again on the same copy: nothing more.
    let heads = j.circle.heads();
    redeem_self(&mut j, invite, &secret, Some("Bea")).unwrap();
    assert_eq!(j.circle.heads(), heads);
    // Maya and Sam hear of it from Bea; Ana from Sam, who relays it.
    for o in [&mut maya, &mut sam] {
        let out = o.hear(&j, &[]);
        assert_eq!((out.applied, out.rejected.len()), (1, 0));
    }
    let out = ana.hear(&sam, &[&j]);
    assert_eq!((out.applied, out.rejected.len()), (1, 0));
    let m = all_agree(&[&maya, &sam, &ana, &j]);
    assert!(m.is_member(bea.id()));
    assert!(m.admitted.contains(&phone.id()));
    let view = maya.circle.view();
    assert_eq!(view.members[&bea.id()].name, "Bea");
    assert_eq!(view.members[&bea.id()].invited_by, Some(maya.member.id()));
    // Her next change is an ordinary member's.
    j.circle
        .checkin(bea.id(), Mood::Okay, "hello, all", now(), &mut rng)
        .unwrap();
    for o in [&mut maya, &mut sam, &mut ana] {
        let out = o.hear(&j, &[]);
        assert_eq!((out.applied, out.rejected.len()), (1, 0));
    }
    all_agree(&[&maya, &sam, &ana, &j]);
    // Used up: nobody else gets in with it.
    let (cal, cal_dev) = keys(&mut rng);
    let mut late = welcome(&maya, cal, cal_dev);
    let err = redeem_self(&mut late, invite, &secret, Some("Cal")).unwrap_err();
    assert!(err.to_string().contains("used up"), "{err}");
}

#[test]
fn a_new_device_pairs_itself_with_the_member_key_from_the_welcome() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    let (invite, secret) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Device,
        1,
        &mut rng,
    );
    // Maya's laptop holds her member key (it came sealed in the welcome).
    let laptop = DeviceKey::from_seed(&rng.random());
    let mut j = welcome(&maya, maya.member.clone(), laptop.clone());
    redeem_self(&mut j, invite, &secret, None).unwrap();
    let out = maya.hear(&j, &[]);
    assert_eq!((out.applied, out.rejected.len()), (1, 0));
    assert!(maya.admits(laptop.id()));
    assert!(
        maya.circle.view().members[&maya.member.id()]
            .devices
            .contains_key(&laptop.id())
    );
    // The laptop writes on; Sam and Ana hear both changes at once.
    j.circle
        .checkin(
            maya.member.id(),
            Mood::Okay,
            "from the laptop",
            now(),
            &mut rng,
        )
        .unwrap();
    j.circle
        .checkin(maya.member.id(), Mood::Okay, "and again", now(), &mut rng)
        .unwrap();
    for o in [&mut sam, &mut ana] {
        let out = o.hear(&j, &[]);
        assert_eq!((out.applied, out.rejected.len()), (3, 0));
    }
    maya.hear(&j, &[]);
    let m = all_agree(&[&maya, &sam, &ana, &j]);
    assert!(m.admitted.contains(&laptop.id()));
    assert_eq!(m.members.len(), 3, "nobody new, a device more");
    // A device invite pairs only a device of its maker.
    let (invite, secret) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Device,
        1,
        &mut rng,
    );
    let (stranger, sd) = keys(&mut rng);
    let mut s = welcome(&maya, stranger, sd);
    let err = redeem_self(&mut s, invite, &secret, None).unwrap_err();
    assert!(err.to_string().contains("member who made it"), "{err}");
    // Written anyway, into Maya's devices, with the stranger's certificate.
    let mut forged = ByHand::honest(&s, invite, InviteKind::Device, &secret);
    forged.owner = maya.member.id();
    forged.write(&mut s, |_, _| {});
    refused_everywhere(&s, [&mut maya, &mut sam, &mut ana]);
    // ... or naming Maya, with a certificate her key did not sign.
    let mut s = welcome(
        &maya,
        MemberKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    let mut forged = ByHand::honest(&s, invite, InviteKind::Device, &secret);
    forged.owner = maya.member.id();
    forged.cert = DeviceCert {
        member: maya.member.id(),
        device: s.id(),
        signature: s.member.certify(s.id()).signature,
    };
    forged.proof = proof(
        &s,
        &secret,
        invite,
        s.id(),
        maya.member.id(),
        InviteKind::Device,
    );
    forged.write(&mut s, |_, _| {});
    refused_everywhere(&s, [&mut maya, &mut sam, &mut ana]);
    // The same, with the real certificate, gets in (the invite was still open).
    let mut s = welcome(
        &maya,
        maya.member.clone(),
        DeviceKey::from_seed(&rng.random()),
    );
    ByHand::honest(&s, invite, InviteKind::Device, &secret).write(&mut s, |_, _| {});
    let out = ana.hear(&s, &[]);
    assert_eq!((out.applied, out.rejected.len()), (1, 0));
}

/// Two joiners, `x` and `y`, each redeemed the same single-use invite on a
/// copy of their own: Maya hears x first, Sam y first, Ana both at once.
/// Exactly one is in, the same everywhere; the other cannot go on.
fn one_of_two_is_in(mut maya: Dev, mut sam: Dev, mut ana: Dev, mut x: Dev, mut y: Dev) {
    let heads: Vec<SignedHead> = [&maya, &x, &y].iter().flat_map(|d| d.proofs()).collect();
    let ok = |out: Applied| assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    ok(maya.take(&x.circle, &heads));
    ok(maya.take(&y.circle, &heads));
    ok(sam.take(&y.circle, &heads));
    ok(sam.take(&x.circle, &heads));
    let mut both = Circle::load(&x.circle.save()).unwrap();
    both.merge(&mut y.circle.clone()).unwrap();
    ok(ana.take(&both, &heads));
    ok(x.take(&maya.circle, &heads));
    ok(y.take(&sam.circle, &heads));
    let m = all_agree(&[&maya, &sam, &ana, &x, &y]);
    assert!(m.admitted.contains(&x.id()) ^ m.admitted.contains(&y.id()));
    let (mut winner, mut loser) = if m.admitted.contains(&x.id()) {
        (x, y)
    } else {
        (y, x)
    };
    assert!(m.departed.contains(&loser.id()));
    assert!(m.is_member(winner.member.id()));
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for j in [&mut winner, &mut loser] {
        let member = j.member.id();
        j.circle
            .checkin(member, Mood::Okay, "after", now(), &mut rng)
            .unwrap();
    }
    let out = maya.hear(&winner, &[]);
    assert_eq!((out.applied, out.rejected.len()), (1, 0));
    let out = maya.hear(&loser, &[]);
    assert_eq!(out.applied, 0);
    assert_eq!(out.rejected[0].1, Rejection::NotAdmitted);
}

#[test]
fn two_joiners_at_once_on_a_single_use_invite_one_is_in_everywhere() {
    for seed in 0..4 {
        let mut rng = ChaCha8Rng::seed_from_u64(10 + seed);
        let (mut maya, mut sam, mut ana) = circle(&mut rng);
        let (invite, secret) = make_invite(
            &mut maya,
            [&mut sam, &mut ana],
            InviteKind::Member,
            1,
            &mut rng,
        );
        let (xm, xd) = keys(&mut rng);
        let (ym, yd) = keys(&mut rng);
        let mut x = welcome(&maya, xm, xd);
        let mut y = welcome(&sam, ym, yd);
        redeem_self(&mut x, invite, &secret, Some("Xan")).unwrap();
        redeem_self(&mut y, invite, &secret, Some("Yol")).unwrap();
        one_of_two_is_in(maya, sam, ana, x, y);
    }
}

#[test]
fn a_self_redemption_and_one_served_by_the_inviter_meet_alike() {
    for seed in 0..4 {
        let mut rng = ChaCha8Rng::seed_from_u64(20 + seed);
        let (mut maya, mut sam, mut ana) = circle(&mut rng);
        let (invite, secret) = make_invite(
            &mut maya,
            [&mut sam, &mut ana],
            InviteKind::Member,
            1,
            &mut rng,
        );
        let (ym, yd) = keys(&mut rng);
        let mut y = welcome(&maya, ym, yd);
        redeem_self(&mut y, invite, &secret, Some("Yol")).unwrap();
        // Meanwhile Maya's device lets Xan in the old way.
        let (xm, xd) = keys(&mut rng);
        let cert = xm.certify(xd.id());
        maya.circle
            .redeem_invite(
                &Redemption {
                    invite,
                    secret: &secret,
                    cert: &cert,
                    profile: Some(&Profile::named("Xan")),
                },
                now(),
            )
            .unwrap();
        // Xan's copy is what Maya's node hands him.
        let x = welcome(&maya, xm, xd);
        one_of_two_is_in(maya, sam, ana, x, y);
    }
}

#[test]
fn a_redemption_written_by_hand_as_the_rule_wants_is_taken_in() {
    // The control for the refusals below: the same writing, honest.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    for kind in [InviteKind::Member, InviteKind::Device] {
        let (invite, secret) = make_invite(&mut maya, [&mut sam, &mut ana], kind, 1, &mut rng);
        let (m, d) = keys(&mut rng);
        let member = if kind == InviteKind::Device {
            maya.member.clone()
        } else {
            m
        };
        let mut j = welcome(&maya, member, d);
        ByHand::honest(&j, invite, kind, &secret).write(&mut j, |_, _| {});
        for o in [&mut maya, &mut sam, &mut ana] {
            let out = o.hear(&j, &[]);
            assert_eq!((out.applied, out.rejected.len()), (1, 0), "{kind:?}");
            assert!(o.admits(j.id()));
        }
    }
}

#[test]
fn a_redemption_without_the_secret_or_with_someone_elses_proof_is_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    let (invite, secret) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Member,
        2,
        &mut rng,
    );
    // An outsider with a copy, who knows the circle and its own key only.
    let (o, od) = keys(&mut rng);
    let mut outsider = welcome(&maya, o, od);
    // Its own member record and nothing more: no redemption.
    let cert = outsider.member.certify(outsider.id());
    let members = at(&outsider.circle, &["members"]);
    outsider
        .circle
        .transact(now(), "add member", |tx| {
            let m = tx.put_object(&members, cert.member.to_string(), ObjType::Map)?;
            tx.put(&m, "name", "Oz")?;
            let ds = tx.put_object(&m, "devices", ObjType::Map)?;
            let d = tx.put_object(&ds, cert.device.to_string(), ObjType::Map)?;
            tx.put(&d, "cert", cert.signature_hex())?;
            Ok(())
        })
        .unwrap();
    refused_everywhere(&outsider, [&mut maya, &mut sam, &mut ana]);
    // A redemption with a proof signed by some other key.
    let mut outsider = welcome(
        &maya,
        MemberKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    let mut forged = ByHand::honest(&outsider, invite, InviteKind::Member, &secret);
    let guess = InviteSecret::random(&mut rng);
    forged.proof = proof(
        &outsider,
        &guess,
        invite,
        outsider.id(),
        outsider.member.id(),
        InviteKind::Member,
    );
    forged.write(&mut outsider, |_, _| {});
    refused_everywhere(&outsider, [&mut maya, &mut sam, &mut ana]);
    // ... or none that parses.
    let mut outsider = welcome(
        &maya,
        MemberKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    let mut forged = ByHand::honest(&outsider, invite, InviteKind::Member, &secret);
    forged.proof = "00".repeat(63);
    forged.write(&mut outsider, |_, _| {});
    refused_everywhere(&outsider, [&mut maya, &mut sam, &mut ana]);

    // Bea lets herself in honestly; her proof is in the circle for all to see.
    let (bea, bd) = keys(&mut rng);
    let mut b = welcome(&maya, bea.clone(), bd.clone());
    redeem_self(&mut b, invite, &secret, Some("Bea")).unwrap();
    let rec = at(
        &b.circle,
        &[
            "invites",
            &invite.to_string(),
            "redeemed",
            &bd.id().to_string(),
        ],
    );
    let Some((Value::Scalar(s), _)) = b.circle.doc().get(&rec, "proof").unwrap() else {
        panic!("no proof")
    };
    let ScalarValue::Str(bea_proof) = s.as_ref() else {
        panic!("proof is not text")
    };
    let bea_proof = bea_proof.to_string();
    // A redemption keyed by another device than the one it lets in, or
    // naming another member than the record it comes with.
    let mut r = welcome(
        &maya,
        MemberKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    let mut odd = ByHand::honest(&r, invite, InviteKind::Member, &secret);
    odd.redeemed_as = Some(DeviceKey::from_seed(&rng.random()).id());
    odd.write(&mut r, |_, _| {});
    refused_everywhere(&r, [&mut maya, &mut sam, &mut ana]);
    let mut r = welcome(
        &maya,
        MemberKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    let mut odd = ByHand::honest(&r, invite, InviteKind::Member, &secret);
    odd.names = Some(bea.id());
    odd.write(&mut r, |_, _| {});
    refused_everywhere(&r, [&mut maya, &mut sam, &mut ana]);
    let mut r = welcome(
        &maya,
        MemberKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    let mut odd = ByHand::honest(&r, invite, InviteKind::Member, &secret);
    odd.says = Some("device");
    odd.write(&mut r, |_, _| {});
    refused_everywhere(&r, [&mut maya, &mut sam, &mut ana]);
    // Someone replays it for another device, of their own or of Bea.
    for member in [MemberKey::from_seed(&rng.random()), bea.clone()] {
        let mut r = welcome(&maya, member, DeviceKey::from_seed(&rng.random()));
        let mut replay = ByHand::honest(&r, invite, InviteKind::Member, &secret);
        replay.proof = bea_proof.clone();
        replay.write(&mut r, |_, _| {});
        refused_everywhere(&r, [&mut maya, &mut sam, &mut ana]);
    }
    // ... or for Bea's device, in a record naming another member.
    let mut r = welcome(&maya, MemberKey::from_seed(&rng.random()), bd.clone());
    let mut replay = ByHand::honest(&r, invite, InviteKind::Member, &secret);
    replay.proof = bea_proof;
    replay.write(&mut r, |_, _| {});
    refused_everywhere(&r, [&mut maya, &mut sam, &mut ana]);
    // A member forging a change in a joiner's name cannot prove it: it
    // needs the joiner's device key to sign its head.
    let mut forger = welcome(
        &sam,
        MemberKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    forger.circle.set_writer(bd.id(), 3);
    let mut forged = ByHand::honest(&forger, invite, InviteKind::Member, &secret);
    forged.device = bd.id();
    forged.cert = forger.member.certify(bd.id());
    forged.proof = proof(
        &forger,
        &secret,
        invite,
        bd.id(),
        forger.member.id(),
        InviteKind::Member,
    );
    forged.write(&mut forger, |_, _| {});
    let out = maya.receive(&forger.circle, &[&forger]);
    assert_eq!(out.applied, 0);
    assert_eq!(out.rejected[0].1, Rejection::Unproven);
    // Nothing of all that counted: Bea's honest redemption still does.
    for o in [&mut maya, &mut sam, &mut ana] {
        let out = o.hear(&b, &[]);
        assert_eq!((out.applied, out.rejected.len()), (1, 0));
    }
    assert!(all_agree(&[&maya, &sam, &ana]).admitted.contains(&bd.id()));
}

#[test]
fn a_redemption_that_writes_anything_else_is_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    let (invite, secret) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Member,
        3,
        &mut rng,
    );
    type Also = Box<dyn Fn(&mut Transaction<'_>, &Circle)>;
    let maya_id = maya.member.id();
    let attempts: Vec<(&str, Also)> = vec![
        (
            "a check-in",
            Box::new(|tx, c| {
                let checkins = at(c, &["checkins"]);
                let e = tx
                    .put_object(&checkins, "0011223344556677", ObjType::Map)
                    .unwrap();
                tx.put(&e, "author", "x").unwrap();
            }),
        ),
        (
            "another member's record",
            Box::new(move |tx, c| {
                let m = at(c, &["members", &maya_id.to_string()]);
                tx.put(&m, "name", "Not Maya").unwrap();
            }),
        ),
        (
            "a second member",
            Box::new(|tx, c| {
                let members = at(c, &["members"]);
                let other = MemberKey::generate();
                let m = tx
                    .put_object(&members, other.id().to_string(), ObjType::Map)
                    .unwrap();
                tx.put(&m, "name", "Tag-along").unwrap();
            }),
        ),
        (
            "a change to the invite",
            Box::new(move |tx, c| {
                let inv = at(c, &["invites", &invite.to_string()]);
                tx.put(&inv, "uses", 1000_i64).unwrap();
            }),
        ),
    ];
    for (_what, also) in attempts {
        let (m, d) = keys(&mut rng);
        let mut j = welcome(&maya, m, d);
        let honest = ByHand::honest(&j, invite, InviteKind::Member, &secret);
        honest.write(&mut j, |tx, c| also(tx, c));
        refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);
    }
    // A record without its device, or a map made anywhere else, even empty.
    let (m, d) = keys(&mut rng);
    let mut j = welcome(&maya, m, d);
    let mut bare = ByHand::honest(&j, invite, InviteKind::Member, &secret);
    bare.no_device = true;
    bare.write(&mut j, |_, _| {});
    refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);
    let (m, d) = keys(&mut rng);
    let mut j = welcome(&maya, m, d);
    ByHand::honest(&j, invite, InviteKind::Member, &secret).write(&mut j, |tx, c| {
        let moments = at(c, &["moments"]);
        tx.put_object(&moments, "0011223344556677", ObjType::Map)
            .unwrap();
    });
    refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);
    // A record certifying a second device, or a field the redemption does
    // not have.
    let (m, d) = keys(&mut rng);
    let mut j = welcome(&maya, m, d);
    let mut two = ByHand::honest(&j, invite, InviteKind::Member, &secret);
    two.more
        .push(j.member.certify(DeviceKey::from_seed(&rng.random()).id()));
    two.write(&mut j, |_, _| {});
    refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);
    let (m, d) = keys(&mut rng);
    let mut j = welcome(&maya, m, d);
    let device = j.id();
    ByHand::honest(&j, invite, InviteKind::Member, &secret).write(&mut j, |tx, c| {
        let rec = tx
            .get(
                at(c, &["invites", &invite.to_string(), "redeemed"]),
                device.to_string(),
            )
            .unwrap()
            .unwrap()
            .1;
        tx.put(&rec, "note", "and more").unwrap();
    });
    refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);
    // Still open: an honest one now gets in.
    let (m, d) = keys(&mut rng);
    let mut j = welcome(&maya, m, d);
    redeem_self(&mut j, invite, &secret, Some("Bea")).unwrap();
    let out = maya.hear(&j, &[]);
    assert_eq!((out.applied, out.rejected.len()), (1, 0));
}

#[test]
fn a_revoked_or_used_up_invite_in_its_history_lets_nobody_in() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    let (invite, secret) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Member,
        1,
        &mut rng,
    );
    // A welcome taken before the revocation: concurrent with it.
    let (early_m, early_d) = keys(&mut rng);
    let mut early = welcome(&maya, early_m, early_d);
    maya.circle
        .revoke_invite(maya.member.id(), invite, now())
        .unwrap();
    for o in [&mut sam, &mut ana] {
        o.hear(&maya, &[]);
    }
    // Taken after it, the welcome says so, and a redemption written anyway
    // (the proof is right) is refused.
    let (m, d) = keys(&mut rng);
    let mut j = welcome(&maya, m, d);
    let err = redeem_self(&mut j, invite, &secret, Some("Bea")).unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    ByHand::honest(&j, invite, InviteKind::Member, &secret).write(&mut j, |_, _| {});
    refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);
    // Devices share no clock, so the rule reads the redemption's own
    // history: one made on a copy that did not hold the revocation counts.
    redeem_self(&mut early, invite, &secret, Some("Eli")).unwrap();
    for o in [&mut maya, &mut sam, &mut ana] {
        let out = o.hear(&early, &[]);
        assert_eq!((out.applied, out.rejected.len()), (1, 0));
    }
    assert!(
        all_agree(&[&maya, &sam, &ana])
            .admitted
            .contains(&early.id())
    );
    // Now used up in the history of any later copy: refused likewise.
    let (invite2, secret2) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Member,
        1,
        &mut rng,
    );
    let (m, d) = keys(&mut rng);
    let mut first = welcome(&maya, m, d);
    redeem_self(&mut first, invite2, &secret2, Some("Fay")).unwrap();
    let (m, d) = keys(&mut rng);
    let mut second = welcome(&first, m, d);
    let err = redeem_self(&mut second, invite2, &secret2, Some("Gus")).unwrap_err();
    assert!(err.to_string().contains("used up"), "{err}");
    ByHand::honest(&second, invite2, InviteKind::Member, &secret2).write(&mut second, |_, _| {});
    for o in [&mut maya, &mut sam, &mut ana] {
        let out = o.hear(&first, &[]);
        assert_eq!((out.applied, out.rejected.len()), (1, 0));
    }
    refused_everywhere(&second, [&mut maya, &mut sam, &mut ana]);
}

#[test]
fn an_invite_without_a_redeem_key_is_redeemed_only_the_old_way() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    // An invite as the first versions wrote it: no redeem key.
    let invite = EntityId::random(&mut rng);
    let secret = InviteSecret::random(&mut rng);
    let invites = at(&maya.circle, &["invites"]);
    let by = maya.member.id();
    maya.circle
        .transact(now(), "invite", |tx| {
            let obj = tx.put_object(&invites, invite.to_string(), ObjType::Map)?;
            tx.put(&obj, "by", by.to_string())?;
            tx.put(&obj, "kind", "member")?;
            tx.put(&obj, "secret_hash", secret.hash_hex())?;
            tx.put(&obj, "expires_at", now().plus_millis(DAY).as_millis())?;
            tx.put(&obj, "uses", 2_i64)?;
            tx.put(&obj, "at", now().as_millis())?;
            tx.put_object(&obj, "redeemed", ObjType::Map)?;
            Ok(())
        })
        .unwrap();
    for o in [&mut sam, &mut ana] {
        assert!(o.hear(&maya, &[]).rejected.is_empty());
    }
    assert_eq!(maya.circle.view().invites[&invite].redeem_key, None);
    let (m, d) = keys(&mut rng);
    let mut j = welcome(&maya, m, d);
    let err = redeem_self(&mut j, invite, &secret, Some("Bea")).unwrap_err();
    assert!(err.to_string().contains("member's device"), "{err}");
    // Written anyway, with a proof by the key the secret would give: no
    // key in the invite to check it against.
    ByHand::honest(&j, invite, InviteKind::Member, &secret).write(&mut j, |_, _| {});
    refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);
    // Maya's device still lets someone in with it.
    let (cal, cal_dev) = keys(&mut rng);
    let cert = cal.certify(cal_dev.id());
    maya.circle
        .redeem_invite(
            &Redemption {
                invite,
                secret: &secret,
                cert: &cert,
                profile: Some(&Profile::named("Cal")),
            },
            now(),
        )
        .unwrap();
    for o in [&mut sam, &mut ana] {
        let out = o.hear(&maya, &[]);
        assert_eq!((out.applied, out.rejected.len()), (1, 0));
    }
    assert!(
        all_agree(&[&maya, &sam, &ana])
            .admitted
            .contains(&cal_dev.id())
    );
}

#[test]
fn nobody_removed_or_gone_lets_themselves_back_in_and_no_certificate_is_forged() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    // Sam makes an invite, then leaves; Maya and Ana hear of both.
    let (sams, sams_secret) = sam
        .circle
        .create_invite(
            sam.member.id(),
            InviteKind::Member,
            now().plus_millis(DAY),
            5,
            now(),
            &mut rng,
        )
        .unwrap();
    sam.circle.leave(sam.member.id(), now()).unwrap();
    for o in [&mut maya, &mut ana] {
        o.hear(&sam, &[]);
    }
    // His invite lets nobody in any more.
    let mut j = welcome(
        &maya,
        MemberKey::from_seed(&rng.random()),
        DeviceKey::from_seed(&rng.random()),
    );
    let err = redeem_self(&mut j, sams, &sams_secret, Some("Lee")).unwrap_err();
    assert!(err.to_string().contains("has left the circle"), "{err}");
    ByHand::honest(&j, sams, InviteKind::Member, &sams_secret).write(&mut j, |_, _| {});
    refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);
    let (invite, secret) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Member,
        5,
        &mut rng,
    );
    let mut back = welcome(
        &maya,
        sam.member.clone(),
        DeviceKey::from_seed(&rng.random()),
    );
    // Coming back after leaving is recorded by a member's device, never by
    // the one coming back.
    let err = redeem_self(&mut back, invite, &secret, Some("Sam again")).unwrap_err();
    assert!(err.to_string().contains("left"), "{err}");
    ByHand::honest(&back, invite, InviteKind::Member, &secret).write(&mut back, |_, _| {});
    refused_everywhere(&back, [&mut maya, &mut sam, &mut ana]);
    // Nor by Sam's own device, and it cannot come in as someone new.
    let mut same = welcome(&maya, sam.member.clone(), sam.key.clone());
    let err = redeem_self(&mut same, invite, &secret, Some("Sam again")).unwrap_err();
    assert!(err.to_string().contains("left"), "{err}");
    let mut same = welcome(&maya, MemberKey::from_seed(&rng.random()), sam.key.clone());
    let err = redeem_self(&mut same, invite, &secret, Some("Not Sam")).unwrap_err();
    assert!(err.to_string().contains("left"), "{err}");
    ByHand::honest(&same, invite, InviteKind::Member, &secret).write(&mut same, |_, _| {});
    refused_everywhere(&same, [&mut maya, &mut sam, &mut ana]);

    // A certificate that does not verify: signed by another member key.
    let (bea, bd) = keys(&mut rng);
    let mut j = welcome(&maya, bea.clone(), bd);
    let mut forged = ByHand::honest(&j, invite, InviteKind::Member, &secret);
    let other = MemberKey::from_seed(&rng.random());
    forged.cert = DeviceCert {
        member: bea.id(),
        device: j.id(),
        signature: other.certify(j.id()).signature,
    };
    forged.write(&mut j, |_, _| {});
    refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);
    // ... or one of another device.
    let (bea, bd) = keys(&mut rng);
    let mut j = welcome(&maya, bea.clone(), bd);
    let mut forged = ByHand::honest(&j, invite, InviteKind::Member, &secret);
    forged.cert = DeviceCert {
        member: bea.id(),
        device: j.id(),
        signature: bea
            .certify(DeviceKey::from_seed(&rng.random()).id())
            .signature,
    };
    forged.write(&mut j, |_, _| {});
    refused_everywhere(&j, [&mut maya, &mut sam, &mut ana]);

    // Removed by consent: Maya proposes, Ana consents.
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    let p = maya
        .circle
        .propose_removal(maya.member.id(), sam.member.id(), "", now(), &mut rng)
        .unwrap();
    ana.hear(&maya, &[]);
    ana.circle
        .consent_removal(ana.member.id(), p, now())
        .unwrap();
    maya.hear(&ana, &[]);
    sam.hear(&maya, &[&ana]);
    assert!(maya.circle.membership().removed.contains(&sam.member.id()));
    let (invite, secret) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Member,
        5,
        &mut rng,
    );
    let mut back = welcome(
        &maya,
        sam.member.clone(),
        DeviceKey::from_seed(&rng.random()),
    );
    let err = redeem_self(&mut back, invite, &secret, Some("Sam again")).unwrap_err();
    assert!(err.to_string().contains("removed"), "{err}");
    ByHand::honest(&back, invite, InviteKind::Member, &secret).write(&mut back, |_, _| {});
    refused_everywhere(&back, [&mut maya, &mut sam, &mut ana]);
}

#[test]
fn a_copy_must_write_as_the_device_it_lets_in() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut maya, mut sam, mut ana) = circle(&mut rng);
    let (invite, secret) = make_invite(
        &mut maya,
        [&mut sam, &mut ana],
        InviteKind::Member,
        1,
        &mut rng,
    );
    let (m, d) = keys(&mut rng);
    let mut j = welcome(&maya, m, d);
    j.circle
        .set_writer(DeviceKey::from_seed(&rng.random()).id(), 1);
    let err = redeem_self(&mut j, invite, &secret, Some("Bea")).unwrap_err();
    assert!(matches!(err, CoreError::Invalid(_)), "{err}");
    // An invite the circle does not know.
    j.circle.set_writer(j.id(), 1);
    let err = redeem_self(&mut j, EntityId::random(&mut rng), &secret, Some("Bea")).unwrap_err();
    assert_eq!(err.to_string(), roundtable_core::UNKNOWN_INVITE);
}

/// Joiners, some letting themselves in on copies of their own and some let
/// in by a member's device, redeem one invite at once; the changes travel
/// between every copy in a random order. Every copy ends up with the same
/// circle, and exactly as many of them in as the invite has uses.
#[test]
fn redemptions_of_one_invite_meeting_in_any_order_agree() {
    for seed in 0..24u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + seed);
        let (mut maya, mut sam, mut ana) = circle(&mut rng);
        let uses = rng.random_range(1..=3u32);
        let (invite, secret) = make_invite(
            &mut maya,
            [&mut sam, &mut ana],
            InviteKind::Member,
            uses,
            &mut rng,
        );
        let mut joiners: Vec<Dev> = Vec::new();
        let mut redeemed = 0u32;
        for n in 0..rng.random_range(1..=4) {
            let (m, d) = keys(&mut rng);
            let name = format!("Joiner {n}");
            if rng.random_bool(0.6) {
                let from = if rng.random_bool(0.5) { &maya } else { &sam };
                let mut j = welcome(from, m, d);
                if redeem_self(&mut j, invite, &secret, Some(&name)).is_ok() {
                    redeemed += 1;
                    // Straight away, before hearing from anyone.
                    let me = j.member.id();
                    j.circle
                        .checkin(me, Mood::Okay, "in", now(), &mut rng)
                        .unwrap();
                }
                joiners.push(j);
            } else {
                let host = if rng.random_bool(0.5) {
                    &mut maya
                } else {
                    &mut sam
                };
                let cert = m.certify(d.id());
                let served = host.circle.redeem_invite(
                    &Redemption {
                        invite,
                        secret: &secret,
                        cert: &cert,
                        profile: Some(&Profile::named(&name)),
                    },
                    now(),
                );
                if served.is_ok() {
                    redeemed += 1;
                }
                joiners.push(welcome(host, m, d));
            }
            // Now and then, some news travels on the way.
            if rng.random_bool(0.3) {
                let from = rng.random_range(0..2);
                let (a, b) = if from == 0 {
                    (&mut sam, &maya)
                } else {
                    (&mut maya, &sam)
                };
                a.hear(b, &[]);
            }
        }
        // Gossip in a random order until everyone has heard everyone.
        let mut devs: Vec<Dev> = vec![maya, sam, ana];
        devs.extend(joiners);
        let n = devs.len();
        for _ in 0..3 * n {
            let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
            if a != b {
                let from = devs[b].clone();
                let out = devs[a].hear(&from, &[]);
                assert!(out.rejected.is_empty(), "seed {seed}: {:?}", out.rejected);
            }
        }
        for _ in 0..2 {
            for a in 0..n {
                for b in (0..n).filter(|b| *b != a) {
                    let from = devs[b].clone();
                    let out = devs[a].hear(&from, &[]);
                    assert!(out.rejected.is_empty(), "seed {seed}: {:?}", out.rejected);
                }
            }
        }
        let all: Vec<&Dev> = devs.iter().collect();
        let m = all_agree(&all);
        let inside = devs[3..]
            .iter()
            .filter(|j| m.admitted.contains(&j.id()))
            .count();
        assert_eq!(inside as u32, uses.min(redeemed), "seed {seed}");
        assert_eq!(m.members.len(), 3 + inside, "seed {seed}");
    }
}
