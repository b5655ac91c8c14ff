//! Dates as people type and read them: "tuesday 7pm", "2026-12-08 7pm",
//! "next week", "in 3 days"; "Tue 8 Dec, 19:00". Pure functions of the
//! text, the moment it is read at and a time zone, so the CLI and the web
//! app read a date the same way.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{ToSpan, ZonedDateTime as Zoned};

use crate::error::CoreError;
use crate::time::Timestamp;

/// A day someone typed, and the time of day if they gave one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typed {
    /// The day.
    pub date: Date,
    /// The time of day, if said.
    pub time: Option<Time>,
}

impl Typed {
    /// The moment in `tz`: the time given, or `default` when none was.
    pub fn at(&self, tz: &TimeZone, default: Time) -> Result<Zoned, CoreError> {
        self.date
            .to_datetime(self.time.unwrap_or(default))
            .to_zoned_datetime(tz.clone())
            .map_err(|e| CoreError::Invalid(format!("that time does not exist here ({e})")))
    }
}

fn bad(text: &str) -> CoreError {
    CoreError::Invalid(format!(
        "could not read \"{text}\" as a date; write it like \"tuesday 7pm\", \"2026-12-08 19:00\", \"8 Dec\", \"next week\" or \"in 3 days\""
    ))
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("monday", Weekday::Monday),
    ("tuesday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday),
    ("friday", Weekday::Friday),
    ("saturday", Weekday::Saturday),
    ("sunday", Weekday::Sunday),
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// "tue", "tues", "tuesday": at least three letters of a day's name.
fn weekday(word: &str) -> Option<Weekday> {
    let w = word.trim_end_matches(',');
    WEEKDAYS
        .iter()
        .find(|(name, _)| w.chars().count() >= 3 && name.starts_with(w))
        .map(|(_, d)| *d)
}

fn month(word: &str) -> Option<i8> {
    let w = word.trim_end_matches([',', '.']);
    (w.len() >= 3)
        .then(|| MONTHS.iter().position(|m| w.starts_with(m)))
        .flatten()
        .map(|i| i as i8 + 1)
}

/// "7pm", "7:30pm", "19:00", "noon", "midnight".
fn time_of_day(word: &str) -> Option<Time> {
    match word {
        "noon" | "midday" => return Time::new(12, 0, 0, 0).ok(),
        "midnight" => return Time::new(0, 0, 0, 0).ok(),
        _ => {}
    }
    let (digits, pm) = if let Some(d) = word.strip_suffix("pm") {
        (d, Some(true))
    } else if let Some(d) = word.strip_suffix("am") {
        (d, Some(false))
    } else {
        (word, None)
    };
    let (h, m) = match digits.split_once([':', '.']) {
        Some((h, m)) => (h.parse::<i8>().ok()?, m.parse::<i8>().ok()?),
        None if pm.is_some() => (digits.parse::<i8>().ok()?, 0),
        None => return None,
    };
    let h = match pm {
        Some(true) if (1..=11).contains(&h) => h + 12,
        Some(true) if h == 12 => 12,
        Some(false) if h == 12 => 0,
        Some(_) if !(1..=12).contains(&h) => return None,
        _ => h,
    };
    Time::new(h, m, 0, 0).ok()
}

/// Reads a date someone typed, as of `now` (in their time zone).
/// Relative days ("tuesday") mean the next such day, today included.
pub fn parse(text: &str, now: &Zoned) -> Result<Typed, CoreError> {
    let lower = text.trim().to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let today = now.date();
    // The time of day, if the last word (or last two: "7 pm") says one.
    let (rest, time) = match words.as_slice() {
        [rest @ .., h, ampm @ ("am" | "pm")] => (
            rest,
            Some(time_of_day(&format!("{h}{ampm}")).ok_or_else(|| bad(text))?),
        ),
        [rest @ .., last] if time_of_day(last).is_some() => (rest, time_of_day(last)),
        all => (all, None),
    };
    let rest: Vec<&str> = rest
        .iter()
        .copied()
        .filter(|w| *w != "at" && *w != "on")
        .collect();
    let date = match rest.as_slice() {
        [] if time.is_some() => today,
        ["today" | "tonight"] => today,
        ["tomorrow"] => today.tomorrow().map_err(|_| bad(text))?,
        ["next", "week"] => today.checked_add(7.days()).map_err(|_| bad(text))?,
        ["in", n, unit] => {
            let n: i64 = n.parse().map_err(|_| bad(text))?;
            let days = match unit.trim_end_matches('s') {
                "day" => Some(n),
                "week" => n.checked_mul(7),
                _ => None,
            }
            .ok_or_else(|| bad(text))?;
            let span = jiff::Span::new().try_days(days).map_err(|_| bad(text))?;
            today.checked_add(span).map_err(|_| bad(text))?
        }
        [w] | ["next", w] | ["this", w] if weekday(w).is_some() => {
            let want = weekday(w).ok_or_else(|| bad(text))?;
            let ahead = i64::from(today.weekday().until(want));
            // "tuesday" on a Tuesday means today if the time is still ahead.
            let ahead = match (ahead, time) {
                (0, Some(t)) if t > now.time() => 0,
                (0, _) => 7,
                (a, _) => a,
            };
            today.checked_add(ahead.days()).map_err(|_| bad(text))?
        }
        [iso] => match iso.parse::<Date>() {
            Ok(d) => d,
            Err(_) => return Err(bad(text)),
        },
        // "8 dec", "dec 8", "8 december 2026"
        [a, b] | [a, b, _] => {
            let (day, mon) = match (a.parse::<i8>(), month(b), month(a), b.parse::<i8>()) {
                (Ok(d), Some(m), _, _) => (d, m),
                (_, _, Some(m), Ok(d)) => (d, m),
                _ => return Err(bad(text)),
            };
            let year = match rest.get(2) {
                Some(y) => y.parse::<i16>().map_err(|_| bad(text))?,
                None => {
                    // The next such day: this year, or next if it has passed.
                    let this = Date::new(today.year(), mon, day).map_err(|_| bad(text))?;
                    if this < today {
                        today.year() + 1
                    } else {
                        today.year()
                    }
                }
            };
            Date::new(year, mon, day).map_err(|_| bad(text))?
        }
        _ => return Err(bad(text)),
    };
    Ok(Typed { date, time })
}

/// A moment as a person reads it, in `tz`: "Tue 8 Dec, 19:00"; with the
/// year when it is not the year of `now`.
pub fn words(t: Timestamp, now: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_jiff().to_zoned_datetime(tz.clone());
    let this_year = now.to_jiff().to_zoned_datetime(tz.clone()).year();
    if z.year() == this_year {
        z.strftime("%a %-d %b, %H:%M").to_string()
    } else {
        z.strftime("%a %-d %b %Y, %H:%M").to_string()
    }
}

/// A day as a person reads it, in `tz`: "Tue 8 Dec" (with the year when
/// it is not this year's).
pub fn day_words(t: Timestamp, now: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_jiff().to_zoned_datetime(tz.clone());
    let this_year = now.to_jiff().to_zoned_datetime(tz.clone()).year();
    if z.year() == this_year {
        z.strftime("%a %-d %b").to_string()
    } else {
        z.strftime("%a %-d %b %Y").to_string()
    }
}

/// When a gathering starts, as typed ("tuesday 7pm", "2026-12-01 19:00",
/// read in `tz`), or a full zoned time like
/// "2026-12-01T19:00-05:00[America/New_York]". A day without a time is
/// refused: a gathering needs one. Whether it lies before `now` is for the
/// caller to weigh (a gathering that already happened may be recorded).
pub fn gathering_start(text: &str, tz: &TimeZone, now: Timestamp) -> Result<Zoned, CoreError> {
    if let Ok(z) = text.trim().parse::<Zoned>() {
        return Ok(z);
    }
    let typed = parse(text, &now.to_jiff().to_zoned_datetime(tz.clone()))?;
    if typed.time.is_none() {
        return Err(CoreError::Invalid(format!(
            "say what time it starts, like \"{} 7pm\"",
            text.trim()
        )));
    }
    typed.at(tz, Time::midnight())
}

/// A day as typed ("2026-12-24", "next week", "in 3 days", "friday"), as
/// the start of that day in `tz` (or the time given).
pub fn day_start(text: &str, tz: &TimeZone, now: Timestamp) -> Result<Timestamp, CoreError> {
    let typed = parse(text, &now.to_jiff().to_zoned_datetime(tz.clone()))?;
    let z = typed.at(tz, Time::midnight())?;
    Ok(Timestamp::from_millis(z.timestamp().as_millisecond()))
}

/// How long ago, as a person says it: "just now", "5 min ago", "3 h ago",
/// "yesterday", "4 days ago", or the day.
pub fn ago(t: Timestamp, now: Timestamp, tz: &TimeZone) -> String {
    let secs = (now.as_millis() - t.as_millis()) / 1000;
    match secs {
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s if s < 2 * 86_400 => "yesterday".into(),
        s if s < 14 * 86_400 => format!("{} days ago", s / 86_400),
        _ => day_words(t, now, tz),
    }
}

/// When a gathering starts, in the reader's zone `tz`; with the time at
/// the gathering's place when that zone differs ("Thu 10 Dec, 19:00
/// (20:00 in Europe/Berlin)"). The stored text when it does not parse.
pub fn starts_words(g: &crate::view::Gathering, now: Timestamp, tz: &TimeZone) -> String {
    let Some(z) = g.starts_zoned() else {
        return g.starts.clone();
    };
    let t = Timestamp::from_millis(z.timestamp().as_millisecond());
    let local = words(t, now, tz);
    let there = z.time_zone().iana_name().unwrap_or("its zone");
    if z.time_zone().iana_name() == tz.iana_name()
        || z.offset() == t.to_jiff().to_zoned_datetime(tz.clone()).offset()
    {
        local
    } else {
        format!("{local} ({} in {there})", z.strftime("%H:%M"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sunday 29 November 2026, 10:00 in Berlin.
    fn now() -> Zoned {
        "2026-11-29T10:00[Europe/Berlin]".parse().unwrap()
    }

    fn read(text: &str) -> (String, Option<String>) {
        let t = parse(text, &now()).unwrap_or_else(|e| panic!("{text}: {e}"));
        (
            t.date.to_string(),
            t.time.map(|t| t.strftime("%H:%M").to_string()),
        )
    }

    #[test]
    fn what_people_type() {
        let d = |s: &str| Some(s.to_owned());
        assert_eq!(read("tuesday 7pm"), ("2026-12-01".into(), d("19:00")));
        assert_eq!(read("Tue 7:30pm"), ("2026-12-01".into(), d("19:30")));
        assert_eq!(read("2026-12-08 7pm"), ("2026-12-08".into(), d("19:00")));
        assert_eq!(read("2026-12-08 19:00"), ("2026-12-08".into(), d("19:00")));
        assert_eq!(read("2026-12-08"), ("2026-12-08".into(), None));
        assert_eq!(read("next week"), ("2026-12-06".into(), None));
        assert_eq!(read("in 3 days"), ("2026-12-02".into(), None));
        assert_eq!(read("in 2 weeks"), ("2026-12-13".into(), None));
        assert_eq!(read("tomorrow noon"), ("2026-11-30".into(), d("12:00")));
        assert_eq!(read("tonight 8 pm"), ("2026-11-29".into(), d("20:00")));
        assert_eq!(read("8 Dec"), ("2026-12-08".into(), None));
        assert_eq!(read("dec 8 at 6pm"), ("2026-12-08".into(), d("18:00")));
        // A day that has passed this year is next year's.
        assert_eq!(read("3 Jan"), ("2027-01-03".into(), None));
        // "sunday" on a Sunday: today while the time is ahead, else next week.
        assert_eq!(read("sunday 7pm"), ("2026-11-29".into(), d("19:00")));
        assert_eq!(read("sunday 9am"), ("2026-12-06".into(), d("09:00")));
        assert_eq!(read("sunday"), ("2026-12-06".into(), None));
        for nonsense in [
            "",
            "soon",
            "tuesday 25pm",
            "in three days",
            "31 feb",
            "blursday",
            "in 99999999999 weeks",
        ] {
            assert!(parse(nonsense, &now()).is_err(), "{nonsense:?}");
        }
    }

    #[test]
    fn dates_in_words() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let at = |s: &str| {
            Timestamp::from_millis(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
        };
        let now = at("2026-11-29T09:00:00Z");
        assert_eq!(
            words(at("2026-12-08T18:00:00Z"), now, &tz),
            "Tue 8 Dec, 19:00"
        );
        assert_eq!(
            words(at("2027-01-05T18:00:00Z"), now, &tz),
            "Tue 5 Jan 2027, 19:00"
        );
        assert_eq!(day_words(at("2026-12-08T18:00:00Z"), now, &tz), "Tue 8 Dec");
    }
}
