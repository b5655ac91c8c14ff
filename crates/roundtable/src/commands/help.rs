//! Asking for and offering help: an ask or an offer, taking one on, and
//! closing the loop with thanks.

use super::*;

pub(super) fn request(
    kind: RequestKind,
    text: Vec<String>,
    when: String,
    hands: u32,
) -> (Op, String) {
    let message = match kind {
        RequestKind::Ask => "Your ask is with the circle. Asking is wisdom.",
        RequestKind::Offer => "Your offer is with the circle.",
    };
    (
        Op::Request {
            kind,
            text: text.join(" "),
            when,
            hands,
        },
        message.into(),
    )
}

pub(super) fn commit(view: &CircleView, to: &str, text: Vec<String>) -> Result<(Op, String)> {
    let to = resolve_in(view.requests.keys(), to, "ask or offer")?;
    let text = text.join(" ");
    let message = format!(
        "Thank you. You took on {}; the circle knows you'll do it.",
        what_it_is(view, to)
    );
    Ok((Op::Commit { to, text }, message))
}

pub(super) fn done(view: &CircleView, id: &str, thanks: Vec<String>) -> Result<(Op, String)> {
    let request = resolve_in(view.requests.keys(), id, "ask or offer")?;
    let thanks = thanks.join(" ");
    let message = format!(
        "Marked {} done. Thank you for closing the loop.",
        what_it_is(view, request)
    );
    Ok((Op::Close { request, thanks }, message))
}
