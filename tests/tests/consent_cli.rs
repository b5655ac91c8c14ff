//! Removal by consent and devices from the CLI alone: three members, copies
//! exchanged by hand.

#![allow(clippy::unwrap_used)]

use roundtable_tests::{TestHome, join_by_hand, sync_by_hand};

#[test]
fn removal_by_consent_from_the_command_line() {
    let (maya, sam, ada, lee) = (
        TestHome::new(),
        TestHome::new(),
        TestHome::new(),
        TestHome::new(),
    );
    maya.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    join_by_hand(&maya, &sam, "Sam");
    join_by_hand(&maya, &ada, "Ada");
    join_by_hand(&maya, &lee, "Lee");
    sync_by_hand(&[&maya, &sam, &ada, &lee]);

    let r = maya.run(&["remove", "list"]).ok();
    assert!(r.stdout.contains("Nobody owns the table"), "{}", r.stdout);
    maya.run(&["remove", "propose", "Ada", "--reason", "we talked it over"])
        .ok();
    let list = maya.run(&["remove", "list", "--json"]).ok().json();
    let p = &list["proposals"][0];
    assert_eq!(p["state"], "open");
    assert_eq!(p["needed"], 2);
    assert_eq!(p["consents"].as_array().unwrap().len(), 1);
    let id = p["id"].as_str().unwrap()[..6].to_owned();

    // Maya alone cannot carry it.
    let r = maya
        .run(&["remove", "consent", &id])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("already consented"), "{}", r.stderr);
    // Ada sees the proposal about her, and it is not hers to decide.
    sync_by_hand(&[&maya, &sam, &ada]);
    let r = ada.run(&["members"]).ok();
    assert!(r.stdout.contains("proposed removing them"), "{}", r.stdout);
    let r = ada
        .run(&["remove", "consent", &id])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("about you"), "{}", r.stderr);
    // Sam consents: it carries, and the epoch moves on.
    sam.run(&["remove", "consent", &id]).ok();
    let list = sam.run(&["remove", "list", "--json"]).ok().json();
    assert_eq!(list["proposals"][0]["state"], "carried");
    assert_eq!(list["epoch"], 1);
    let members = sam.run(&["members", "--json"]).ok().json();
    let ada_row = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "Ada")
        .unwrap();
    assert_eq!(ada_row["removed"], true);
    // Nothing is deleted from Ada's own copy; she can no longer write to it.
    sync_by_hand(&[&maya, &sam, &ada]);
    assert!(ada.run(&["show"]).ok().stdout.contains("Tuesday Supper"));
    let r = ada
        .run(&["checkin", "--mood", "okay", "still here"])
        .expect_code(2)
        .one_line_error();
    assert!(
        r.stderr
            .contains("You are no longer in Tuesday Supper: Maya and Sam agreed to remove you on ")
            && r.stderr
                .contains("Your copy is kept; you can read it but not write."),
        "{}",
        r.stderr
    );
    let r = ada.run(&["circle", "list"]).ok();
    assert!(r.stdout.contains("You are no longer in"), "{}", r.stdout);
    // A withdrawn proposal stays withdrawn.
    sync_by_hand(&[&maya, &sam, &lee]);
    maya.run(&["remove", "propose", "Sam"]).ok();
    let list = maya.run(&["remove", "list", "--json"]).ok().json();
    let second = list["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["state"] == "open")
        .unwrap()["id"]
        .as_str()
        .unwrap()[..6]
        .to_owned();
    let r = sam
        .run(&["remove", "withdraw", &second])
        .expect_code(2)
        .one_line_error();
    assert!(
        r.stderr.contains("no proposal") || r.stderr.contains("only the member"),
        "{}",
        r.stderr
    );
    maya.run(&["remove", "withdraw", &second]).ok();
    let list = maya.run(&["remove", "list", "--json"]).ok().json();
    assert!(
        list["proposals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["state"] == "withdrawn")
    );
}

#[test]
fn device_list_and_revoke_from_the_command_line() {
    let maya = TestHome::new();
    maya.run(&["circle", "create", "Tuesday Supper", "--as", "Maya"])
        .ok();
    let devices = maya.run(&["device", "list", "--json"]).ok().json();
    let mine = devices.as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["this_device"], true);
    assert_eq!(mine[0]["revoked"], false);
    let id = mine[0]["id"].as_str().unwrap()[..8].to_owned();
    let r = maya
        .run(&["device", "revoke", &id])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("cannot revoke itself"), "{}", r.stderr);
    let r = maya
        .run(&["device", "revoke", "ffffffff"])
        .expect_code(2)
        .one_line_error();
    assert!(r.stderr.contains("device list"), "{}", r.stderr);
    let r = maya.run(&["invite", "list"]).ok();
    assert!(r.stdout.contains("No invites yet"), "{}", r.stdout);
}
