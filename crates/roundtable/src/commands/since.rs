//! `feed --since-last`: what arrived since this device's person last
//! looked, in the core's words, what concerns them first.

use roundtable_core::since::{Seen, account};
use roundtable_store::NodeRecord;
use serde_json::json;

use super::*;

pub(super) fn since_last(backend: &Backend, global: &Global, now: Timestamp) -> Result<()> {
    let Some(me) = backend.home().identity()?.map(|i| i.member.id()) else {
        return Err(no_circle_yet());
    };
    let circle = {
        let _shared = backend.read_lock()?;
        let id = select(backend, global)?;
        backend.read_circle(id)?
    };
    let id = circle.id();
    let tz = TimeZone::system();
    let seen = backend
        .home()
        .read_record(NodeRecord::Seen(id))?
        .as_deref()
        .and_then(Seen::from_bytes);
    let before = seen
        .as_ref()
        .and_then(|s| Some((circle.view_at(&s.heads).ok()?, s.at)));
    let after = circle.view();
    let told = before
        .as_ref()
        .and_then(|(before, at)| account(before, &after, me, *at, now, &tz));
    if global.json {
        render::json(&json!({
            "since": seen.as_ref().map(|s| s.at),
            "account": told,
        }))?;
    } else {
        match (&told, &before) {
            (Some(a), _) => {
                say!("{}:", a.heading());
                for line in &a.lines {
                    say!("  {}", line.text);
                }
                if a.more {
                    say!("  ... and more: `roundtable feed` has it all.");
                }
            }
            (None, Some((_, at))) => say!(
                "Nothing new from the others since you last looked ({}).",
                dates::day_words(*at, now, &tz)
            ),
            (None, None) => say!(
                "From now on, `roundtable feed --since-last` tells you what arrived since you last looked."
            ),
        }
    }
    backend.mark_seen(id, &Seen::now(&circle, now))
}
