//! The one way out to the terminal.
//!
//! Every line this binary prints for a person goes through [`line`] (by the
//! `say!` macro), whatever view made it, so a view cannot
//! forget what text from the circle needs: every control in it — escape
//! sequences, `\r`, backspace, bidi overrides — shows as a picture of
//! itself ([`roundtable_core::plain`]) and does nothing to the terminal.
//! A line break inside one line can only come from someone's words (views
//! never put one there): the text goes on on the next line behind a `│ `
//! at the line's own indent, which no line of ours starts with, so the
//! words after it cannot pass for another entry or another member's reply.
//!
//! `println!` and friends are disallowed in this crate (its `clippy.toml`);
//! `--json` output goes through [`raw`]: JSON escapes what it carries.

use std::io::Write;

use roundtable_core::plain;

/// What [`line`] prints for `text`, with its line break.
pub(crate) fn shown_line(text: &str) -> String {
    let indent = text.len() - text.trim_start_matches(' ').len();
    let shown = plain::visible(text);
    let mut out = String::with_capacity(shown.len() + 1);
    for (i, l) in shown.split('\n').enumerate() {
        if i > 0 {
            out.push_str(&text[..indent]);
            out.push_str("│ ");
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Prints one line for a person. A terminal that went away (the node
/// outlives the shell that started it) must not stop anything, so a failed
/// write is let go.
pub(crate) fn line(text: &str) {
    write_out(&shown_line(text));
}

/// Prints text that we made and that holds several lines of its own (a QR
/// code, the Markdown archive): its controls shown as pictures, its line
/// breaks kept.
pub(crate) fn block(text: &str) {
    write_out(&plain::visible(text));
}

/// Prints data for scripts (JSON) as it is.
pub(crate) fn raw(text: &str) {
    write_out(text);
}

/// The standard output, for writers that print there themselves (shell
/// completions, the manual page): text of ours, never of the circle.
#[expect(
    clippy::disallowed_methods,
    reason = "the one place that hands out stdout"
)]
pub(crate) fn stdout() -> std::io::Stdout {
    std::io::stdout()
}

fn write_out(text: &str) {
    let mut out = stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Prints an error for a person on stderr, on one line, its controls shown
/// as pictures: error messages name circles and people.
pub(crate) fn error(text: &str) {
    #[expect(clippy::disallowed_macros, reason = "the one place that writes errors")]
    {
        eprintln!("{}", plain::one_line(text));
    }
}

/// Prints an error for a program (JSON) on stderr, as it is.
pub(crate) fn error_raw(text: &str) {
    #[expect(clippy::disallowed_macros, reason = "the one place that writes errors")]
    {
        eprintln!("{text}");
    }
}

/// Prints a note for a person on stderr (next to output meant for a
/// program), its controls shown as pictures.
pub(crate) fn note(text: &str) {
    #[expect(clippy::disallowed_macros, reason = "the one place that writes notes")]
    {
        eprintln!("{}", plain::visible(text));
    }
}

#[cfg(test)]
mod tests {
    use super::shown_line;

    #[test]
    fn words_cannot_act_nor_pass_for_another_line() {
        assert_eq!(shown_line("plain"), "plain\n");
        assert_eq!(
            shown_line("Ana: hi\r\u{1b}[2KSam: bye"),
            "Ana: hi␍␛[2KSam: bye\n"
        );
        assert_eq!(
            shown_line("  \"rough week\n    Sam: fake reply\""),
            "  \"rough week\n  │     Sam: fake reply\"\n"
        );
        assert_eq!(shown_line("title\u{1b}]0;x\u{7}"), "title␛]0;x␇\n");
    }
}
