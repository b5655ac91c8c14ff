//! How this device and its peers stand, for `roundtable status`: what
//! status reports, and how the machine finds it.

use super::*;

/// What `roundtable status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// This device.
    pub device: DeviceId,
    /// Its member.
    pub member: MemberId,
    /// Where it listens.
    pub addrs: Vec<String>,
    /// Each circle served.
    pub circles: Vec<CircleStatus>,
    /// Gossip messages dropped since start, by reason (replayed, bad
    /// signature, does not decrypt, ...).
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
    /// Received changes refused since start, by reason (unproven author,
    /// device not admitted, ...).
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
}

/// One circle in [`Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CircleStatus {
    /// The circle.
    pub id: CircleId,
    /// Its name.
    pub name: String,
    /// Its epoch: one more for every removal and device revocation.
    #[serde(default)]
    pub epoch: u64,
    /// Devices connected in its gossip neighbourhood now.
    pub connected: Vec<DeviceId>,
    /// Every other device of the circle, and how it stands.
    pub devices: Vec<DeviceStatus>,
    /// Devices that signed two different changes under one number: a
    /// tampered, copied-while-running or stolen device. The circle kept
    /// one of the two; its member should revoke it (their own other
    /// devices do so as soon as they see it).
    #[serde(default)]
    pub forked: Vec<ForkedDevice>,
    /// The stewards that keep it, and how each stands.
    #[serde(default)]
    pub stewards: Vec<StewardStatus>,
    /// Its devices whose last session failed because the two sides speak
    /// different wire versions: one of them needs an update.
    #[serde(default)]
    pub other_versions: Vec<OtherVersion>,
    /// Set when the circle removed this device's member: what they are
    /// told ([`Membership::removal_notice`]). The device no longer syncs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<String>,
}

/// A device in [`CircleStatus::other_versions`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtherVersion {
    /// The device.
    pub device: DeviceId,
    /// Whose it is.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// What the device calls itself, if it said.
    #[serde(default)]
    pub device_name: String,
    /// The wire version it speaks.
    pub speaks: u8,
}

impl OtherVersion {
    /// Whether the other device is the older one (else this one is).
    pub fn needs_update(&self) -> bool {
        self.speaks < roundtable_core::wire::WIRE_VERSION
    }
}

/// A device in [`CircleStatus::forked`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForkedDevice {
    /// The device.
    pub device: DeviceId,
    /// Whose it is.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// What the device calls itself, if it said.
    #[serde(default)]
    pub device_name: String,
}

/// One peer device in [`CircleStatus`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The device.
    pub device: DeviceId,
    /// Whose it is.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// What the device calls itself ("Ana's phone"), if it said.
    #[serde(default)]
    pub device_name: String,
    /// Connected now.
    pub connected: bool,
    /// Whether, at the last sync, it had every change we have now.
    pub has_all_our_changes: bool,
    /// When we last finished a sync with it.
    pub last_synced: Option<Timestamp>,
    /// Its gossiped edits this device held back, since start, for coming
    /// faster than the others take them in (see [`rate`]).
    #[serde(default)]
    pub delayed: Delayed,
}

impl Machine {
    /// How every circle and peer stands. Where this device listens is the
    /// network's to say: `addrs` is left empty. Names come from each
    /// circle's people, kept with who is in (read again only when they
    /// changed), so asking (every page does) costs no read of the circle,
    /// and a node nobody looks at holds no reading of it.
    pub fn status(&self) -> Status {
        let circles = self
            .circles
            .iter()
            .map(|(id, s)| {
                let circle = s.store.circle();
                let neighbours: BTreeSet<DeviceId> = self.schedule.neighbours(*id).collect();
                let people = circle.people();
                let view = &*people;
                let owner = |d: &DeviceId| {
                    view.members
                        .iter()
                        .find_map(|(mid, m)| Some((*mid, m.devices.get(d)?.name.clone())))
                        .map(|(mid, device_name)| (mid, view.name_of(&mid), device_name))
                };
                let devices = s
                    .peers
                    .iter()
                    .filter_map(|(peer, p)| {
                        let device = *peer;
                        let (member, name, device_name) = owner(&device)?;
                        Some(DeviceStatus {
                            device,
                            member,
                            name,
                            device_name,
                            connected: neighbours.contains(peer),
                            has_all_our_changes: circle.peer_has_everything(&p.sync),
                            last_synced: p.last_synced,
                            delayed: self.delayed(*id, device),
                        })
                    })
                    .collect();
                let forked = s
                    .forked
                    .keys()
                    .filter_map(|device| {
                        let (member, name, device_name) = owner(device)?;
                        Some(ForkedDevice {
                            device: *device,
                            member,
                            name,
                            device_name,
                        })
                    })
                    .collect();
                let other_versions = self
                    .other_versions
                    .iter()
                    .filter_map(|(device, speaks)| {
                        let (member, name, device_name) = owner(device)?;
                        Some(OtherVersion {
                            device: *device,
                            member,
                            name,
                            device_name,
                            speaks: *speaks,
                        })
                    })
                    .collect();
                CircleStatus {
                    id: *id,
                    name: circle.name(),
                    epoch: s.keys.epoch(),
                    connected: neighbours.iter().copied().collect(),
                    devices,
                    forked,
                    stewards: self.steward_status(*id, view),
                    removed: s.membership.removal_notice(view, self.mine(&s.membership)),
                    other_versions,
                }
            })
            .collect();
        Status {
            device: self.me.device.id(),
            member: self.me.member.id(),
            addrs: Vec::new(),
            circles,
            dropped: self.dropped.clone(),
            refused: self.refused.clone(),
        }
    }

    /// A peer device as a person knows it: "Sam's phone" or "Sam (3fa2…)".
    /// From the circle's people, kept with who is in.
    pub(crate) fn who(&self, circle: CircleId, peer: DeviceId) -> String {
        self.circles
            .get(&circle)
            .and_then(|s| {
                let view = s.store.circle().people();
                view.members.iter().find_map(|(m, mm)| {
                    let d = mm.devices.get(&peer)?;
                    Some(if d.name.is_empty() {
                        format!("{} ({})", view.name_of(m), peer.fmt_short())
                    } else {
                        format!("{} ({})", view.name_of(m), d.name)
                    })
                })
            })
            .unwrap_or_else(|| peer.fmt_short())
    }
}
