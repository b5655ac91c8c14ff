//! Gossip: following each circle's topic, asking devices in as
//! neighbours, broadcasting envelopes, and handing the machine what gossip
//! brings.

use n0_future::StreamExt;
use roundtable_core::CircleId;
use roundtable_net::TopicId;
use tracing::{Instrument, debug, warn};

use super::*;

impl Actor {
    /// Follows a circle's topic (leaving the one it followed before).
    pub(super) async fn follow(&mut self, circle: CircleId, topic: [u8; 32], peers: Vec<DeviceId>) {
        self.topics.remove(&circle);
        let peers = peers.into_iter().filter_map(endpoint_of).collect();
        let net = self
            .net
            .as_ref()
            .expect("the network runs while the node runs");
        match net
            .gossip()
            .subscribe(TopicId::from_bytes(topic), peers)
            .await
        {
            Ok(t) => {
                let (sender, mut receiver) = t.split();
                let tx = self.gossip_tx.clone();
                let reader = tokio::spawn(
                    async move {
                        while let Some(Ok(ev)) = receiver.next().await {
                            if tx.send((circle, ev)).await.is_err() {
                                break;
                            }
                        }
                    }
                    .instrument(self.span.clone()),
                );
                let topic = Topic {
                    sender,
                    _reader: AbortOnDropHandle::new(reader),
                };
                self.topics.insert(circle, topic);
            }
            Err(e) => warn!(%circle, "could not follow the circle's live changes: {e}"),
        }
    }

    pub(super) async fn broadcast(&mut self, circle: CircleId, bytes: Vec<u8>) {
        if let Some(topic) = self.topics.get(&circle)
            && let Err(e) = topic.sender.broadcast(bytes.into()).await
        {
            debug!(%circle, "gossip broadcast failed: {e}");
        }
    }

    pub(super) fn join_peers(&mut self, circle: CircleId, peers: Vec<DeviceId>) {
        let Some(sender) = self.topics.get(&circle).map(|t| t.sender.clone()) else {
            return;
        };
        let peers = peers.into_iter().filter_map(endpoint_of).collect();
        self.tasks.spawn(
            async move {
                let _ = sender.join_peers(peers).await;
            }
            .instrument(self.span.clone()),
        );
    }

    /// Connects to devices of `candidates`, in order, until `missing` are
    /// reached, hands gossip the connections and asks those in. Gossip
    /// would not dial again a device it once failed to reach.
    pub(super) fn meet(&mut self, circle: CircleId, candidates: Vec<DeviceId>, missing: usize) {
        let Some(sender) = self.topics.get(&circle).map(|t| t.sender.clone()) else {
            return;
        };
        let dialer = self.dialer.clone();
        self.tasks.spawn(
            async move {
                let mut met = Vec::new();
                for peer in candidates.into_iter().filter_map(endpoint_of) {
                    if met.len() == missing {
                        break;
                    }
                    if dialer.known_addr(peer).await.is_some()
                        && dialer.connect_gossip(peer).await.is_ok()
                    {
                        met.push(peer);
                    }
                }
                if !met.is_empty() {
                    let _ = sender.join_peers(met).await;
                }
            }
            .instrument(self.span.clone()),
        );
    }

    pub(super) async fn on_gossip(&mut self, circle: CircleId, ev: GossipEvent) {
        let at = now();
        self.keeper
            .submit(move |k| {
                let machine = &mut k.machine;
                match ev {
                    GossipEvent::NeighborUp(peer) => {
                        machine.neighbour_up(circle, device_of(peer), at, &mut rng())
                    }
                    GossipEvent::NeighborDown(peer) => {
                        machine.neighbour_down(circle, device_of(peer), at)
                    }
                    GossipEvent::Received(msg) => machine.gossip(
                        circle,
                        &msg.content,
                        device_of(msg.delivered_from),
                        at,
                        &mut rng(),
                    ),
                    GossipEvent::Lagged => machine.lagged(circle, at, &mut rng()),
                }
            })
            .await;
    }
}
