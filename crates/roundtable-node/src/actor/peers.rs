//! What is known of peers: how each stands (status), and the address
//! book of where each was last reached.

use super::*;

impl Actor {
    pub(super) fn status(&self) -> Status {
        let net = self.net();
        let circles = self
            .circles
            .iter()
            .map(|(id, s)| {
                let circle = s.store.circle();
                let neighbours: BTreeSet<EndpointId> = self.schedule.neighbours(*id).collect();
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
                        let device = device_of(*peer);
                        let (member, name, device_name) = owner(&device)?;
                        Some(DeviceStatus {
                            device,
                            member,
                            name,
                            device_name,
                            connected: neighbours.contains(peer),
                            has_all_our_changes: circle.peer_has_everything(&p.sync),
                            last_synced: p.last_synced,
                        })
                    })
                    .collect();
                CircleStatus {
                    id: *id,
                    name: circle.name(),
                    epoch: s.keys.epoch(),
                    connected: neighbours.iter().map(|p| device_of(*p)).collect(),
                    devices,
                }
            })
            .collect();
        Status {
            device: self.me.device.id(),
            member: self.me.member.id(),
            // Where others can reach us (every interface), else the bound sockets.
            addrs: {
                let reachable: Vec<String> = net.addr().ip_addrs().map(|a| a.to_string()).collect();
                if reachable.is_empty() {
                    net.bound_sockets().iter().map(|a| a.to_string()).collect()
                } else {
                    reachable
                }
            },
            circles,
            dropped: self.dropped.clone(),
            refused: self.refused.clone(),
        }
    }

    // --- the address book: where devices were last reached ---

    pub(super) fn load_addresses(&mut self) {
        let Ok(Some(bytes)) = self.home.read_record(NodeRecord::AddressBook) else {
            return;
        };
        let Ok(addrs) = serde_json::from_slice::<Vec<EndpointAddr>>(&bytes) else {
            warn!("the address book does not read; starting without it");
            return;
        };
        for a in addrs {
            self.dialer.add_addr(a);
        }
    }

    pub(super) fn save_address(&self, addr: EndpointAddr) {
        let mut book: Vec<EndpointAddr> = self
            .home
            .read_record(NodeRecord::AddressBook)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        book.retain(|a| a.id != addr.id);
        book.push(addr);
        if let Ok(bytes) = serde_json::to_vec_pretty(&book)
            && let Err(e) = self
                .home
                .write_record(self.lock(), NodeRecord::AddressBook, &bytes)
        {
            debug!("could not save the address book: {e}");
        }
    }

    /// Asks the endpoint where `peer` was reached, and keeps it in the
    /// address book so the next run can dial it before anyone else speaks.
    pub(super) fn remember_addr(&mut self, peer: EndpointId) {
        let dialer = self.dialer.clone();
        let tx = self.sessions_tx.clone();
        self.tasks.spawn(
            async move {
                if let Some(addr) = dialer.known_addr(peer).await {
                    let _ = tx.send(SessionRequest::Remember(addr)).await;
                }
            }
            .instrument(self.span.clone()),
        );
    }
}
