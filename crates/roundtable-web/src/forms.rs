//! What a form sends, typed: each form's fields are a struct of its page
//! (`Posted<CheckIn>`), read by one extractor that first checks the form
//! token, and kept as typed too, so a refused form is shown again with
//! what was in it.
//!
//! A field is a [`Line`] (trimmed) or a [`Text`] (line breaks kept,
//! trimmed at the ends); a tick box is a `bool` read by [`ticked`]. Every
//! form struct takes `#[serde(default)]`: a field left out reads as empty,
//! as a browser leaves out an unticked box, and the page or the core
//! refuses an empty value in words, with the form shown again.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::value::MapDeserializer;
use serde::de::{DeserializeOwned, Deserializer};

use crate::access;
use crate::app::Failure;

/// The form token of this request's session, put there by the guard.
#[derive(Debug, Clone)]
pub(crate) struct FormToken(pub(crate) String);

/// A form that came from one of this app's pages (it carries the form
/// token, see [`access::Access::form_token`]): its fields read as `T`, and
/// what was typed.
pub(crate) struct Posted<T> {
    pub(crate) form: T,
    pub(crate) typed: Typed,
}

/// What was typed in a form, field by field, as it arrived (untrimmed):
/// what the form shows again when it is refused.
#[derive(Debug, Default)]
pub(crate) struct Typed(HashMap<String, String>);

impl Typed {
    /// What was typed in `field`; empty when it was not sent.
    pub(crate) fn get(&self, field: &str) -> &str {
        self.0.get(field).map(String::as_str).unwrap_or("")
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Posted<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let token = req
            .extensions()
            .get::<FormToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let not_whole = || {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "That form did not arrive whole. Try again.",
            )
        };
        // A field sent twice counts once, its last value, as a map keeps it.
        let Form(fields) = Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(|_| not_whole())?;
        let given = fields
            .get(access::FORM_FIELD)
            .map(String::as_str)
            .unwrap_or("");
        if token.is_empty() || !access::same_secret(given, &token) {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                "This form is out of date or came from elsewhere. Reload the page and try again.",
            ));
        }
        let form = read(&fields).map_err(|_| not_whole())?;
        Ok(Posted {
            form,
            typed: Typed(fields),
        })
    }
}

/// A form's fields as `T`: fields `T` does not name (the form token among
/// them) are left aside.
fn read<T: DeserializeOwned>(
    fields: &HashMap<String, String>,
) -> Result<T, serde::de::value::Error> {
    let pairs = fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    T::deserialize(MapDeserializer::new(pairs))
}

/// A form of one button: nothing in it but its token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Button {}

/// A one-line field, trimmed at both ends.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Line(pub(crate) String);

impl<'de> Deserialize<'de> for Line {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Line(s.trim().to_owned()))
    }
}

impl std::ops::Deref for Line {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Line {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A text field: its inner line breaks kept (as `\n`, however the browser
/// sent them), trimmed at both ends.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub(crate) String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Text(s.replace("\r\n", "\n").trim().to_owned()))
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A tick box (`value="yes"`): ticked when it was sent as `yes`; a box
/// left unticked is not sent at all.
pub(crate) fn ticked<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Line::deserialize(d).map(|l| l == "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Sample {
        #[serde(rename = "as")]
        who: Line,
        note: Text,
        #[serde(deserialize_with = "ticked")]
        past: bool,
    }

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fields_are_trimmed_and_line_breaks_kept_as_newlines() {
        let s: Sample = read(&fields(&[
            ("as", "  Maya \t"),
            ("note", " one\r\ntwo\r\n "),
            ("past", " yes"),
            ("_form", "token"),
            ("other", "left aside"),
        ]))
        .expect("reads");
        assert_eq!(s.who, "Maya");
        assert_eq!(s.note.0, "one\ntwo");
        assert!(s.past);
    }

    #[test]
    fn a_field_left_out_is_empty_and_a_box_left_out_unticked() {
        let s: Sample = read(&fields(&[])).expect("reads");
        assert_eq!(s.who, "");
        assert_eq!(s.note.0, "");
        assert!(!s.past);
        let s: Sample = read(&fields(&[("past", "no")])).expect("reads");
        assert!(!s.past);
        let _: Button = read(&fields(&[("_form", "token")])).expect("reads");
    }

    #[test]
    fn what_was_typed_is_kept_as_it_came() {
        let typed = Typed(fields(&[("note", " as typed\r\n")]));
        assert_eq!(typed.get("note"), " as typed\r\n");
        assert_eq!(typed.get("absent"), "");
    }
}
