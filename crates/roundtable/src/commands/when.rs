//! The clock commands act at, and dates and times as people type them.

use super::*;

/// The time to act at: `--now`/`ROUNDTABLE_NOW`, or the clock.
pub(super) fn now(global: &Global) -> Result<Timestamp> {
    match &global.now {
        None => Ok(Timestamp::now()),
        Some(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| Timestamp::from_millis(t.as_millisecond()))
            .map_err(|e| {
                bad_input(format!(
                    "ROUNDTABLE_NOW must be an RFC 3339 time like 2026-11-23T20:00:00Z ({e})"
                ))
            }),
    }
}

pub(super) fn zone(tz: Option<&str>) -> Result<TimeZone> {
    match tz {
        Some(name) => TimeZone::get(name).map_err(|_| {
            bad_input(format!(
                "unknown time zone \"{name}\"; use a name like Europe/Berlin or America/New_York"
            ))
        }),
        None => Ok(TimeZone::system()),
    }
}

/// When a gathering starts, as typed ("tuesday 7pm", "2026-12-01 19:00",
/// in `tz`, default this computer's zone), or a full zoned time like
/// "2026-12-01T19:00-05:00[America/New_York]". A time in the past needs
/// `past`.
pub(super) fn parse_when(
    at: &str,
    tz: Option<&str>,
    now: Timestamp,
    past: bool,
) -> Result<jiff::ZonedDateTime> {
    let zone = zone(tz)?;
    let z = dates::gathering_start(at, &zone, now)?;
    if z.timestamp().as_millisecond() < now.as_millis() && !past {
        return Err(bad_input(format!(
            "{} is in the past; to record a gathering that already happened, add --past",
            dates::words(
                Timestamp::from_millis(z.timestamp().as_millisecond()),
                now,
                &zone
            )
        )));
    }
    Ok(z)
}

/// A day as typed ("2026-12-24", "next week", "in 3 days", "friday"), as
/// the start of that day here (or the time given).
pub(super) fn parse_date(s: &str, now: Timestamp) -> Result<Timestamp> {
    Ok(dates::day_start(s, &TimeZone::system(), now)?)
}
