//! The person removed from a circle is told: three real nodes, two remove
//! the third while its node is off; when it comes back, it learns of its
//! removal from the records (and nothing written after), its writes are
//! refused in one kind sentence, and its status and circle list say so.
//! Nobody else gets anything on the farewell protocol.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use roundtable_core::DeviceId;
use roundtable_core::wire::{self, FarewellReply, FarewellRequest};
use roundtable_net::framing::{read_frame, write_frame};
use roundtable_net::{
    Admitted, EndpointAddr, EndpointId, FAREWELL_ALPN, Net, NetConfig, TransportAddr,
    closed_as_not_admitted,
};
use roundtable_tests::{TestHome, Up, notes};

/// Polls `check` every 200 ms for at most a minute.
fn within_a_minute(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within a minute");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn has_note(home: &TestHome, note: &str) -> bool {
    notes(&home.run(&["show", "--json"]).ok().json()).contains(&note.to_owned())
}

const TOLD: &str = "You are no longer in Tuesday Supper: Maya and Sam agreed to remove you on ";
const KEPT: &str = "Your copy is kept; you can read it but not write.";

#[test]
fn the_removed_member_is_told_when_their_node_comes_back() {
    let (maya, sam, lee) = (TestHome::new(), TestHome::new(), TestHome::new());
    maya.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    let maya_up = Up::start(&maya);
    let sam_up = Up::start(&sam);
    let lee_up = Up::start(&lee);
    for (home, name) in [(&sam, "Sam"), (&lee, "Lee")] {
        let ticket = maya.run(&["invite"]).ok().stdout.trim().to_owned();
        home.run(&["join", &ticket, "--as", name]).ok();
    }
    lee.run(&["checkin", "--mood", "okay", "hello all"]).ok();
    within_a_minute("everyone has Lee's check-in", || {
        [&maya, &sam].iter().all(|h| has_note(h, "hello all"))
    });

    // Lee's node is off while the others remove him.
    lee_up.stop();
    maya.run(&["checkin", "--mood", "heavy", "before the removal"])
        .ok();
    maya.run(&["remove", "propose", "Lee", "--reason", "we talked it over"])
        .ok();
    let list = maya.run(&["remove", "list", "--json"]).ok().json();
    let id = list["proposals"][0]["id"].as_str().unwrap()[..6].to_owned();
    within_a_minute("Sam sees the proposal", || {
        sam.run(&["remove", "list", "--json"]).json()["proposals"][0]["state"] == "open"
    });
    sam.run(&["remove", "consent", &id]).ok();
    within_a_minute("Maya sees it carried", || {
        maya.run(&["status", "--json"]).json()["circles"][0]["epoch"] == 1
    });
    maya.run(&["checkin", "--mood", "okay", "after the removal"])
        .ok();
    within_a_minute("Sam has what Maya wrote after", || {
        has_note(&sam, "after the removal")
    });
    // Before his node runs, Lee's copy knows nothing of it.
    lee.run(&["checkin", "--mood", "okay", "written offline"])
        .ok();

    // Lee's node comes back: refused by the others, it is told.
    let lee_up = Up::start(&lee);
    within_a_minute("Lee's status says he was removed", || {
        let status = lee.run(&["status", "--json"]).ok().json();
        status["circles"][0]["removed"].is_string()
    });
    let status = lee.run(&["status", "--json"]).ok().json();
    let notice = status["circles"][0]["removed"].as_str().unwrap().to_owned();
    assert!(notice.starts_with(TOLD), "{notice}");
    assert!(notice.ends_with(KEPT), "{notice}");
    let said = lee.run(&["status"]).ok().stdout;
    assert!(said.contains(&notice), "{said}");
    // Any write: one kind line, a non-zero exit.
    let r = lee
        .run(&["checkin", "--mood", "okay", "still here?"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains(&notice), "{}", r.stderr);
    let r = lee.run(&["moment", "a good day"]).expect_code(2);
    assert!(r.stderr.contains(&notice), "{}", r.stderr);
    let r = lee.run(&["circle", "list"]).ok();
    assert!(r.stdout.contains(&notice), "{}", r.stdout);
    let list = lee.run(&["circle", "list", "--json"]).ok().json();
    assert_eq!(list[0]["removed"], notice.as_str());
    // His copy is kept: what was written up to the removal, his own too,
    // and nothing after it.
    assert!(has_note(&lee, "before the removal"));
    assert!(has_note(&lee, "written offline"));
    assert!(!has_note(&lee, "after the removal"));
    // The others still have only what they had.
    assert!(!has_note(&maya, "written offline"));

    // On the farewell protocol, nobody else gets anything: not a member
    // still in (Sam's device key), not a stranger.
    let maya_status = maya.run(&["status", "--json"]).ok().json();
    let sam_seed = *sam.store().identity().unwrap().unwrap().device.to_seed();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (who, seed) in [("a member still in", sam_seed), ("a stranger", [77; 32])] {
        let refused = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(30), ask_farewell_as(seed, &maya_status))
                .await
                .expect("the farewell attempt ends")
        });
        assert!(refused, "{who} was answered on the farewell protocol");
    }
    lee_up.stop();
    maya_up.stop();
    sam_up.stop();
}

/// Dials the node whose `status --json` is `status` on the farewell
/// protocol with the device key `seed`, and asks; whether it was shut out
/// (refused at the handshake, or answered with a refusal).
async fn ask_farewell_as(seed: [u8; 32], status: &serde_json::Value) -> bool {
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    let net = Net::bind(seed, &NetConfig::loopback(), Admitted::default(), tx)
        .await
        .unwrap();
    let device: DeviceId = status["device"].as_str().unwrap().parse().unwrap();
    let addrs = status["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str()?.parse().ok())
        .map(TransportAddr::Ip);
    let id = EndpointId::from_bytes(device.as_bytes()).unwrap();
    let addr = EndpointAddr::from_parts(id, addrs);
    let circle: roundtable_core::CircleId = status["circles"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let shut_out = match net.dialer().connect(addr, FAREWELL_ALPN).await {
        Err(_) => true,
        Ok(conn) => {
            let asked = async {
                let (mut send, mut recv) = conn.open_bi().await.ok()?;
                let request = FarewellRequest {
                    circle: *circle.as_bytes(),
                    heads: Vec::new(),
                };
                write_frame(&mut send, &wire::encode(&request)).await.ok()?;
                let _ = send.finish();
                let bytes = read_frame(&mut recv, wire::MAX_MESSAGE).await.ok()??;
                wire::decode::<FarewellReply>(&bytes).ok()
            }
            .await;
            match asked {
                Some(FarewellReply::Changes { .. }) => false,
                Some(FarewellReply::Refused { .. }) => true,
                None => closed_as_not_admitted(&conn) || conn.close_reason().is_some(),
            }
        }
    };
    net.shutdown().await;
    shut_out
}
