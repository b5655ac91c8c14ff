//! Proposals: removing someone, or welcoming someone removed back, by
//! consent, and what a proposal says in words. How they count is
//! [`super::Membership`]'s to say.

/// The rule for removing someone, in words, as every view states it.
pub const REMOVAL_RULE: &str = "Nobody owns the table: removing someone takes a majority of the others, and never fewer than two people.";

/// The rule for welcoming back someone removed, in words, as every view
/// states it before anyone agrees.
pub const WELCOME_RULE: &str = "Welcoming back someone who was removed takes what removing them took: a majority of the others, and never fewer than two people. They come back as themselves, and the circle moves to a new key.";

/// How many consents a proposal with this electorate needs.
pub fn needed(electorate: usize) -> usize {
    (electorate / 2 + 1).max(2)
}

/// Why a proposal to remove someone could never pass with `electorate`
/// members other than the one concerned, if it could not: then it is not
/// made at all.
pub fn cannot_pass(electorate: usize) -> Option<String> {
    let needed = needed(electorate);
    (electorate < needed).then(|| {
        let others = match electorate {
            0 => "nobody else".to_owned(),
            1 => "only you".to_owned(),
            n => format!("only {n} members"),
        };
        format!(
            "removing someone takes the consent of at least {needed} members other than them, and besides them the circle has {others}, so it could never pass; if you need to part ways, you can leave the circle yourself"
        )
    })
}
