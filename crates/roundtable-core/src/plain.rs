//! Words, not control codes: what a member typed, made safe to show.
//!
//! Everything in a circle was typed by someone, and a hostile member writes
//! raw bytes. Shown as it is in a terminal, text can clear the screen
//! (`ESC [2J`), retitle the window (OSC 0), hide a link behind other words
//! (OSC 8), go back over a line with `\r` or backspace to fake another
//! member's words, or turn itself around with a bidi override. So every
//! text from the circle is shown through [`visible`] (or [`one_line`]):
//! each such character becomes a visible picture of itself — `␛[2J`,
//! `␍`, `‹U+202E›` — and nothing of it acts.
//!
//! ```
//! use roundtable_core::plain::{one_line, visible};
//!
//! assert_eq!(visible("hi\u{1b}[2J\r\nthere"), "hi␛[2J\nthere");
//! assert_eq!(one_line("two\nlines\u{202e}"), "two␤lines‹U+202E›");
//! ```

use std::borrow::Cow;

/// Whether `c` acts rather than shows: the C0 and C1 controls and DEL
/// (escape sequences begin with ESC or the C1 CSI and OSC), the line and
/// paragraph separators, and the bidi embeddings, overrides and isolates
/// (U+202A–U+202E, U+2066–U+2069), which turn the text after them around.
pub fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Writes the picture of a control: the Unicode control pictures for C0
/// and DEL (`␛`, `␍`, `␈`), `‹U+XXXX›` for the rest (no character of
/// which means anything to HTML or Markdown).
fn picture(c: char, out: &mut String) {
    match c {
        '\0'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
        '\u{7f}' => out.push('\u{2421}'),
        _ => out.push_str(&format!("‹U+{:04X}›", c as u32)),
    }
}

fn shown(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| is_control(c) && !(keep_newlines && c == '\n'))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A line break typed on another system is one line break.
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' if keep_newlines => out.push('\n'),
            '\n' => out.push('\u{2424}'),
            // A tab only moves on; shown as the space it stands for.
            '\t' => out.push(' '),
            c if is_control(c) => picture(c, &mut out),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` with every control (see [`is_control`]) shown as a picture of
/// itself; line breaks stay (`\r\n` becomes `\n`), tabs become spaces.
pub fn visible(text: &str) -> Cow<'_, str> {
    shown(text, true)
}

/// `text` as [`visible`] shows it, on one line: a line break shows as `␤`.
pub fn one_line(text: &str) -> Cow<'_, str> {
    shown(text, false)
}

/// Someone's words quoted in a sentence: on one line, runs of spaces as
/// one, at most `max` characters (cut with "…").
pub fn quoted(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        text
    } else {
        format!(
            "{}…",
            text.chars().take(max.saturating_sub(1)).collect::<String>()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quoted_in_a_sentence_stay_on_one_short_line() {
        assert_eq!(
            quoted("  a lift\n to  the clinic ", 60),
            "a lift to the clinic"
        );
        assert_eq!(quoted("abcdef", 4), "abc…");
        assert_eq!(quoted("abcd", 4), "abcd");
    }

    #[test]
    fn nothing_that_acts_on_a_terminal_passes() {
        let hostile = [
            "\u{1b}[2J",
            "\u{1b}]0;title\u{7}",
            "\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\",
            "real\r\u{1b}[2Kfake",
            "a\u{8}\u{8}b",
            "\u{9b}31m",
            "\u{9d}0;t\u{9c}",
            "\u{202e}olleh\u{2066}x\u{2069}",
            "a\u{2028}b\u{7f}",
        ];
        for h in hostile {
            for s in [visible(h), one_line(h)] {
                assert!(!s.chars().any(is_control), "{s:?}");
                assert!(!s.contains('\u{1b}'), "{s:?}");
            }
        }
        assert_eq!(visible("real\r\u{1b}[2Kfake"), "real␍␛[2Kfake");
        assert_eq!(visible("\u{9b}31m"), "‹U+009B›31m");
    }

    #[test]
    fn ordinary_words_are_left_alone() {
        for w in ["Ana", "soup on Tuesday", "שלום", "👩‍👩‍👧 Zoë", "a\nb"] {
            assert!(matches!(visible(w), Cow::Borrowed(_)), "{w}");
        }
        assert_eq!(visible("a\r\nb\tc"), "a\nb c");
        assert_eq!(one_line("a\r\nb"), "a␤b");
    }
}
