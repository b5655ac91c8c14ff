//! How someone is doing, in one of four words.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// The mood of a check-in. A fixed set, so the circle can notice "struggling"
/// and meet it with words; never a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mood {
    /// Things are good.
    Thriving,
    /// Getting by.
    Okay,
    /// Carrying something.
    Heavy,
    /// Please notice me.
    Struggling,
}

impl Mood {
    /// Every mood, from lightest to hardest.
    pub const ALL: [Mood; 4] = [Mood::Thriving, Mood::Okay, Mood::Heavy, Mood::Struggling];

    /// The word stored in the document and printed in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mood::Thriving => "thriving",
            Mood::Okay => "okay",
            Mood::Heavy => "heavy",
            Mood::Struggling => "struggling",
        }
    }
}

impl Mood {
    /// How someone is, after their name: "Lee is struggling", "Maya is
    /// doing okay".
    pub const fn in_words(self) -> &'static str {
        match self {
            Mood::Thriving => "is thriving",
            Mood::Okay => "is doing okay",
            Mood::Heavy => "is feeling heavy",
            Mood::Struggling => "is struggling",
        }
    }
}

impl fmt::Display for Mood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mood {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Mood::ALL
            .into_iter()
            .find(|m| m.as_str() == lower)
            .ok_or_else(|| CoreError::UnknownMood(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mood_reads_as_english_after_a_name() {
        let said: Vec<String> = Mood::ALL
            .iter()
            .map(|m| format!("Lee {}", m.in_words()))
            .collect();
        assert_eq!(
            said,
            [
                "Lee is thriving",
                "Lee is doing okay",
                "Lee is feeling heavy",
                "Lee is struggling"
            ]
        );
    }

    #[test]
    fn parses_every_mood_and_refuses_others() {
        for m in Mood::ALL {
            assert_eq!(m.as_str().parse::<Mood>().unwrap(), m);
        }
        assert_eq!("Heavy".parse::<Mood>().unwrap(), Mood::Heavy);
        let err = "ecstatic".parse::<Mood>().unwrap_err();
        assert!(
            err.to_string()
                .contains("thriving, okay, heavy, struggling")
        );
    }
}
