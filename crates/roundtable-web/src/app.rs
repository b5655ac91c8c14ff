//! What every page shares: the node, the routes, reading a circle, acting,
//! and how a form's outcome is shown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use data_encoding::BASE64URL_NOPAD;
use jiff::tz::TimeZone;
use roundtable_core::{CircleId, DeviceId, EntityId, MemberId, Op, Timestamp};
use roundtable_node::{NodeError, NodeHandle, Reading};
use tokio::sync::watch;

use crate::forms::Typed;
use crate::{Shared, access, live, pages};

/// A ticket this device made, kept in memory (it holds the invite's
/// secret) so it can be shown again while its invite is open.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub(crate) circle: CircleId,
    pub(crate) ticket: String,
    pub(crate) kind: roundtable_core::InviteKind,
    pub(crate) expires_at: Timestamp,
    pub(crate) uses: u32,
    /// It names a steward of the circle, where it also waits.
    pub(crate) waits: bool,
}

/// The app's state.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) node: NodeHandle,
    /// This run's host, links and sessions.
    pub(crate) access: Arc<access::Access>,
    pub(crate) device: DeviceId,
    /// The reader's zone: the app runs on the reader's own machine.
    pub(crate) tz: TimeZone,
    /// Turns true when the app stops: live pages are told to let go.
    pub(crate) stopping: watch::Receiver<bool>,
    /// Tickets made here this run, by invite: shown again while open.
    pub(crate) tickets: Mutex<HashMap<EntityId, Kept>>,
}

impl Inner {
    pub(crate) fn shared(
        node: NodeHandle,
        access: Arc<access::Access>,
        device: DeviceId,
        stopping: watch::Receiver<bool>,
    ) -> Shared {
        Arc::new(Inner {
            node,
            access,
            device,
            tz: TimeZone::system(),
            stopping,
            tickets: Mutex::new(HashMap::new()),
        })
    }
}

impl Inner {
    /// This device's member as it is now (a pairing while the app runs
    /// makes it another member's device, with all that member may do).
    pub(crate) fn member(&self) -> MemberId {
        self.node.me().1
    }

    /// This device's member in a circle, as `membership` knows them: the
    /// member whose id its key is, or whom a recovery gave that key.
    pub(crate) fn me_in(&self, membership: &roundtable_core::Membership) -> MemberId {
        membership.acting_as(self.member())
    }

    pub(crate) fn router(self: &Arc<Self>) -> Router {
        use pages::*;
        // Every address a form posts to shows a page when asked with GET
        // (a bookmark, a refresh, the live script of a page left there):
        // its confirmation page where it has one, else the page its form
        // is on.
        Router::new()
            .route("/", get(welcome::root))
            .route("/welcome", get(welcome::page))
            .route("/create", get(to_page).post(welcome::create))
            .route("/join", get(to_page).post(welcome::join))
            .route("/recover", get(recovery::ask_page).post(recovery::ask))
            .route("/recover/{c}", get(recovery::request_page))
            .route("/status", get(status::page))
            .route("/new-link", get(to_page).post(status::new_link))
            .route("/events", get(live::events))
            .route("/assets/{file}", get(assets::serve))
            .route("/favicon.ico", get(assets::icon))
            .route("/c/{c}", get(home::page))
            .route("/c/{c}/checkin", get(to_page).post(home::checkin))
            .route("/c/{c}/moment", get(to_page).post(home::moment))
            .route("/c/{c}/settle", get(to_page).post(double_ups::settle))
            .route("/c/{c}/seen", get(to_page).post(home::seen))
            .route("/c/{c}/e/{e}", get(entry::page))
            .route("/c/{c}/e/{e}/reply", get(to_page).post(entry::reply))
            .route("/c/{c}/e/{e}/commit", get(to_page).post(entry::commit))
            .route("/c/{c}/e/{e}/done", get(to_page).post(entry::done))
            .route("/c/{c}/e/{e}/edit", get(to_page).post(entry::edit))
            .route(
                "/c/{c}/e/{e}/withdraw",
                get(entry::confirm_withdraw).post(entry::withdraw),
            )
            .route("/c/{c}/help", get(help::page).post(help::share))
            .route(
                "/c/{c}/gatherings",
                get(gatherings::list).post(gatherings::propose),
            )
            .route("/c/{c}/g/{g}", get(gatherings::page))
            .route("/c/{c}/g/{g}/rsvp", get(to_page).post(gatherings::rsvp))
            .route("/c/{c}/g/{g}/edit", get(to_page).post(gatherings::edit))
            .route("/c/{c}/g/{g}/bring", get(to_page).post(gatherings::bring))
            .route("/c/{c}/g/{g}/came", get(to_page).post(gatherings::came))
            .route("/c/{c}/people", get(people::page))
            .route("/c/{c}/profile", get(to_page).post(people::profile))
            .route("/c/{c}/away", get(to_page).post(people::away))
            .route("/c/{c}/back", get(to_page).post(people::back))
            .route(
                "/c/{c}/recovery-key",
                get(people::recovery_key).post(people::show_recovery_key),
            )
            .route(
                "/c/{c}/devices/{d}/revoke",
                get(people::confirm_revoke).post(people::revoke),
            )
            .route(
                "/c/{c}/vouch",
                get(recovery::confirm_vouch).post(recovery::vouch),
            )
            .route(
                "/c/{c}/recovery/{p}/refuse",
                get(recovery::confirm_refuse).post(recovery::refuse),
            )
            .route(
                "/c/{c}/recovery-wait",
                get(to_page).post(recovery::set_wait),
            )
            .route("/c/{c}/invite", get(invite::page).post(invite::make))
            .route("/c/{c}/invite/{i}", get(invite::made))
            .route(
                "/c/{c}/invite/{i}/revoke",
                get(invite::confirm_revoke).post(invite::revoke),
            )
            .route("/c/{c}/pair", get(invite::pair_page).post(invite::pair))
            .route("/c/{c}/pair/{i}", get(invite::paired))
            .route("/c/{c}/stewards", get(stewards::page).post(stewards::add))
            .route(
                "/c/{c}/stewards/{s}/remove",
                get(stewards::confirm_remove).post(stewards::remove),
            )
            .route("/c/{c}/removal", get(removal::page).post(removal::propose))
            .route(
                "/c/{c}/removal/welcome",
                get(to_page).post(removal::welcome),
            )
            .route(
                "/c/{c}/removal/{p}/consent",
                get(removal::confirm_consent).post(removal::consent),
            )
            .route(
                "/c/{c}/removal/{p}/withdraw",
                get(to_page).post(removal::withdraw),
            )
            .route("/c/{c}/export.md", get(status::export_markdown))
            .route("/c/{c}/export.json", get(status::export_json))
            .fallback(not_found)
            .layer(axum::middleware::from_fn(live::parts_only))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                access::guard,
            ))
            .with_state(self.clone())
    }

    /// A circle as the node reads it now (kept by the node until it
    /// changes, so pages read no document of their own).
    pub(crate) async fn read(&self, id: CircleId) -> Result<Reading, Failure> {
        self.node.read(id).await.map_err(Failure::node)
    }

    /// What arrived since this device's person last looked at a circle,
    /// in the core's words. Their first look only sets where they looked.
    pub(crate) async fn since(
        &self,
        circle: CircleId,
        view: &roundtable_core::CircleView,
        me: MemberId,
    ) -> Result<Option<roundtable_core::since::Account>, Failure> {
        let now = Timestamp::now();
        match self.node.seen(circle).await.map_err(Failure::node)? {
            Some(looked) => Ok(roundtable_core::since::account(
                &looked.before,
                view,
                me,
                looked.at,
                now,
                &self.tz,
            )),
            None => {
                self.node
                    .mark_seen(circle, now)
                    .await
                    .map_err(Failure::node)?;
                Ok(None)
            }
        }
    }

    /// The reader has looked at a circle: what arrived so far is not news.
    pub(crate) async fn mark_seen(&self, circle: CircleId) -> Result<(), Failure> {
        self.node
            .mark_seen(circle, Timestamp::now())
            .await
            .map_err(Failure::node)
    }

    /// Performs an edit; returns once the node says it is durable.
    pub(crate) async fn perform(
        &self,
        circle: CircleId,
        op: Op,
    ) -> Result<Option<EntityId>, String> {
        self.node
            .perform(circle, op, Timestamp::now())
            .await
            .map_err(|e| plain(&e))
    }
}

/// A node error in words a person can act on.
pub(crate) fn plain(e: &NodeError) -> String {
    match e {
        NodeError::Closed => "Your node has stopped. Start Roundtable again.".into(),
        other => sentence(&other.to_string()),
    }
}

/// A message of the core's ("could not read ...") as a sentence on a page.
pub(crate) fn sentence(s: &str) -> String {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return "Something went wrong.".into();
    };
    let end = if s.ends_with('.') { "" } else { "." };
    format!("{}{}{end}", first.to_uppercase(), chars.as_str())
}

/// A page that could not be shown.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    words: String,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, words: impl Into<String>) -> Self {
        Self {
            status,
            words: words.into(),
        }
    }

    pub(crate) fn node(e: NodeError) -> Self {
        let status = match e.kind() {
            roundtable_node::ErrorKind::UnknownCircle => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, plain(&e))
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("There is no such {what} in this circle (it may have been taken back)."),
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, pages::layout::bare("Roundtable", &self.words)).into_response()
    }
}

/// The page whose form posts to `path`: where a GET of a form's address
/// goes.
pub(crate) fn page_of(path: &str) -> String {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["create" | "join"] => "/welcome".into(),
        ["new-link"] => "/status".into(),
        ["c", c, "profile" | "away" | "back" | "recovery-wait"] => format!("/c/{c}/people"),
        ["c", c, "removal" | "stewards", _, _] => format!("/c/{}/{}", c, parts[2]),
        ["c", c, "removal", "welcome"] => format!("/c/{c}/removal"),
        ["c", c, "e" | "g", id, _] => format!("/c/{c}/{}/{id}", parts[2]),
        ["c", c, _] => format!("/c/{c}"),
        _ => "/".into(),
    }
}

/// A GET of a form's address: on to the page the form is on.
async fn to_page(uri: axum::http::Uri) -> Redirect {
    Redirect::to(&page_of(uri.path()))
}

async fn not_found() -> Failure {
    Failure::new(StatusCode::NOT_FOUND, "There is no such page here.")
}

/// A form that failed: what went wrong and what was typed, so the page is
/// shown again with both.
#[derive(Debug, Default)]
pub(crate) struct Failed {
    pub(crate) form: &'static str,
    pub(crate) message: String,
    pub(crate) typed: Typed,
}

impl Failed {
    pub(crate) fn new(form: &'static str, message: impl Into<String>, typed: Typed) -> Self {
        Self {
            form,
            message: message.into(),
            typed,
        }
    }

    /// What was typed in `field` of `form`, if that form failed.
    pub(crate) fn value<'a>(failed: Option<&'a Failed>, form: &str, field: &str) -> &'a str {
        failed
            .filter(|f| f.form == form)
            .map(|f| f.typed.get(field))
            .unwrap_or("")
    }
}

/// What the page the person comes back to says, once: a flash cookie.
#[derive(Debug, Default)]
pub(crate) struct Said(pub(crate) Option<String>);

const SAID: &str = "rt_said";

impl<S: Send + Sync> FromRequestParts<S> for Said {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // A page's live read of itself (`app.js`) swaps only its live
        // parts: what is to be said once is left for the page the browser
        // is on its way to, which the read may overtake.
        if parts.headers.contains_key(live::LIVE) {
            return Ok(Said(None));
        }
        let said = access::cookie(&parts.headers, SAID)
            .and_then(|v| BASE64URL_NOPAD.decode(v.as_bytes()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| !s.is_empty());
        Ok(Said(said))
    }
}

/// After a form was saved: back to `to`, which will say `words`.
pub(crate) fn saved(to: &str, words: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    let cookie = format!(
        "{SAID}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=60",
        BASE64URL_NOPAD.encode(words.as_bytes())
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// A page, clearing what it said once.
pub(crate) fn shown(markup: maud::Markup, said: &Said) -> Response {
    let mut res = markup.into_response();
    if said.0.is_some() {
        res.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("rt_said=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        );
    }
    res
}

/// A page shown again because its form failed.
pub(crate) fn again(markup: maud::Markup) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, markup).into_response()
}

/// What a form's post answers, the one way every form does: once its edit
/// is saved (`Ok((to, words))`), a redirect to `to` that says `words`;
/// else the form's page (`page`) again, with the refusal in words and what
/// was typed (`typed`, in the form named `form_name`).
pub(crate) async fn answer(
    outcome: Result<(String, String), String>,
    form_name: &'static str,
    typed: Typed,
    page: impl AsyncFnOnce(&Failed) -> Result<maud::Markup, Failure>,
) -> Result<Response, Failure> {
    Ok(match outcome {
        Ok((to, words)) => saved(&to, &words),
        Err(message) => {
            let f = Failed::new(form_name, message, typed);
            again(page(&f).await?)
        }
    })
}

/// The ids in a page's address, typed: `Ids<CircleId>`,
/// `Ids<(CircleId, EntityId)>`. Each segment is read as the kind of id its
/// name in the route says (`c` a circle, `e` an entry, `g` a gathering, `i`
/// an invite, `p` a proposal, `s` a steward, `d` a device); one that does
/// not read is "there is no such …", in words, before any page runs.
pub(crate) struct Ids<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for Ids<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        let no_page = |_| Failure::new(StatusCode::NOT_FOUND, "There is no such page here.");
        let axum::extract::Path(raw) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(no_page)?;
        for (name, value) in &raw {
            let (what, reads) = match name.as_str() {
                "c" => ("circle", value.parse::<CircleId>().is_ok()),
                "d" => ("device", value.parse::<DeviceId>().is_ok()),
                "e" => ("entry", value.parse::<EntityId>().is_ok()),
                "g" => ("gathering", value.parse::<EntityId>().is_ok()),
                "i" => ("invite", value.parse::<EntityId>().is_ok()),
                "p" => ("proposal", value.parse::<EntityId>().is_ok()),
                "s" => ("steward", value.parse::<EntityId>().is_ok()),
                _ => ("page", true),
            };
            if !reads {
                return Err(Failure::not_found(what));
            }
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(ids)| Ids(ids))
            .map_err(no_page)
    }
}

#[cfg(test)]
mod tests {
    use super::page_of;

    #[test]
    fn a_form_address_leads_to_the_page_of_its_form() {
        for (form, page) in [
            ("/create", "/welcome"),
            ("/join", "/welcome"),
            ("/new-link", "/status"),
            ("/c/ab/checkin", "/c/ab"),
            ("/c/ab/moment", "/c/ab"),
            ("/c/ab/profile", "/c/ab/people"),
            ("/c/ab/away", "/c/ab/people"),
            ("/c/ab/back", "/c/ab/people"),
            ("/c/ab/recovery-wait", "/c/ab/people"),
            ("/c/ab/e/cd/reply", "/c/ab/e/cd"),
            ("/c/ab/e/cd/edit", "/c/ab/e/cd"),
            ("/c/ab/g/cd/rsvp", "/c/ab/g/cd"),
            ("/c/ab/removal/cd/withdraw", "/c/ab/removal"),
            ("/c/ab/removal/welcome", "/c/ab/removal"),
        ] {
            assert_eq!(page_of(form), page, "{form}");
        }
    }
}
