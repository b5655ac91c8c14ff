//! How this device and its peers stand, for `roundtable status`.

use super::*;

impl Machine {
    /// How every circle and peer stands. Where this device listens is the
    /// network's to say: `addrs` is left empty.
    pub fn status(&self) -> Status {
        let circles = self
            .circles
            .iter()
            .map(|(id, s)| {
                let circle = s.store.circle();
                let neighbours: BTreeSet<DeviceId> = self.schedule.neighbours(*id).collect();
                let view = circle.view();
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
                    stewards: self.steward_status(*id),
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
    /// From the circle's kept reading, which a page reads next anyway.
    pub(crate) fn who(&mut self, circle: CircleId, peer: DeviceId) -> String {
        self.circles
            .get_mut(&circle)
            .and_then(|s| {
                let view = s.read().view;
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
