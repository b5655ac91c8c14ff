//! The pages, one module per part of a circle's life. Each renders what the
//! core says and sends edits to the node; none holds a rule of its own.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use maud::{Markup, html};
use roundtable_core::{CircleView, MemberId, Timestamp, dates};

use crate::Shared;
use crate::app::{Failed, Said};
use crate::forms::FormToken;

pub(crate) mod assets;
pub(crate) mod double_ups;
pub(crate) mod entry;
pub(crate) mod gatherings;
pub(crate) mod help;
pub(crate) mod home;
pub(crate) mod invite;
pub(crate) mod layout;
pub(crate) mod people;
pub(crate) mod recovery;
pub(crate) mod removal;
pub(crate) mod status;
pub(crate) mod stewards;
pub(crate) mod welcome;

/// What a page needs from the request: the form token, and what to say
/// once.
pub(crate) struct Ctx {
    pub(crate) form: String,
    pub(crate) said: Said,
}

impl FromRequestParts<Shared> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let form = parts
            .extensions
            .get::<FormToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let said = Said::from_request_parts(parts, state).await?;
        Ok(Self { form, said })
    }
}

impl Ctx {
    /// The hidden field every form carries.
    pub(crate) fn token(&self) -> Markup {
        html! { input type="hidden" name=(crate::access::FORM_FIELD) value=(self.form); }
    }
}

/// The message of a failed form, where that form is.
pub(crate) fn problem(failed: Option<&Failed>, form: &str) -> Markup {
    html! {
        @if let Some(f) = failed.filter(|f| f.form == form) {
            p.problem role="alert" { (f.message) }
        }
    }
}

/// "3 h ago", in the reader's words.
pub(crate) fn ago(app: &Shared, t: Timestamp) -> Markup {
    let now = Timestamp::now();
    let full = dates::words(t, now, &app.tz);
    html! { time datetime=(t.to_jiff().to_string()) title=(full) { (dates::ago(t, now, &app.tz)) } }
}

/// A person's name as the circle tells them apart.
pub(crate) fn name(view: &CircleView, m: &MemberId) -> String {
    view.name_of(m)
}

/// A person as feeds and lists show them: their mark (a colour and an
/// initial that stay with them across renames) and their name.
pub(crate) fn who(view: &CircleView, m: &MemberId) -> Markup {
    let (initial, hue) = view.mark_of(m);
    // One of twelve colours (the pages allow no inline style).
    let colour = format!("mark h{}", hue / 30);
    html! {
        span class=(colour) aria-hidden="true" { (initial) }
        strong { (name(view, m)) }
    }
}

/// Text with its line breaks kept.
pub(crate) fn words(text: &str) -> Markup {
    html! {
        @for (i, line) in text.lines().enumerate() {
            @if i > 0 { br; }
            (line)
        }
    }
}
