//! Who gets in: only the person at this machine, and only through this run
//! of the node.
//!
//! - The app answers at a secret host name below `.localhost`
//!   (`http://<label>.localhost:7777/`; browsers resolve `*.localhost` to
//!   loopback themselves). No page that does not know the label can make a
//!   browser address the app, and the session cookie is host-only (no
//!   `Domain`), HttpOnly and SameSite=Strict: a browser sends it to that
//!   host alone, never to another port of `127.0.0.1` or `localhost`. The
//!   label is kept in the home (owner-only, like the keys), so the app is
//!   the same origin from one run to the next and what a person typed while
//!   the node was down is still in this browser's storage for it. The label
//!   lets nobody in by itself.
//! - What lets a browser in is held in memory by the running node and dies
//!   with it: the one-time login links ([`Access::login_link`]: good once,
//!   for [`LINK_LIFE`]), the sessions, the key of the forms' tokens, the
//!   run's id. A cookie that leaks while the node restarts (an open tab
//!   reconnecting to whoever took the port) never works against the node
//!   afterwards; none of these is derived from a file in the home.
//! - `/login?token=ONCE` spends the one-time link: a fresh session cookie,
//!   and on to `/` (by a page of the app itself, so the strict cookie is
//!   sent on the way there even when the link came from a file).
//! - Every other request must carry a live session, name this run's host
//!   in `Host` (a DNS-rebinding page or another run names another), and,
//!   when it says where it comes from (`Origin`, `Sec-Fetch-Site`), come
//!   from this app. No CORS headers are ever sent.
//! - Every form also carries [`Access::form_token`], derived from the
//!   session with a key of this run, which no other page can read.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use data_encoding::{BASE32_DNSSEC, BASE64URL_NOPAD};

use crate::Shared;

/// The cookie that carries the session.
pub const COOKIE: &str = "rt_session";

/// The name of the hidden field every form carries.
pub const FORM_FIELD: &str = "_form";

/// How long a login link works, once.
pub const LINK_LIFE: Duration = Duration::from_secs(15 * 60);

/// Login links not yet used that are kept; older ones stop working.
const MAX_LINKS: usize = 32;

/// Browsers signed in at once; the longest signed in is let out first.
const MAX_SESSIONS: usize = 64;

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

fn digest(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

/// The secrets of one run of the web app, in memory only.
pub struct Access {
    host: String,
    run: String,
    key: [u8; 32],
    keys: Mutex<Keys>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

/// Login links not yet used (their digests, with when they stop working)
/// and live sessions (their digests), oldest first.
#[derive(Default)]
struct Keys {
    links: VecDeque<([u8; 32], Instant)>,
    sessions: VecDeque<[u8; 32]>,
}

impl Access {
    /// A fresh secret host label: 32 lower-case letters and digits.
    pub fn fresh_label() -> String {
        BASE32_DNSSEC.encode(&random::<20>())
    }

    /// A new run's secrets, for the app at `label` on `port` of loopback.
    pub fn new(label: &str, port: u16) -> Self {
        Self {
            host: format!("{label}.localhost:{port}"),
            run: BASE64URL_NOPAD.encode(&random::<16>()),
            key: random::<32>(),
            keys: Mutex::new(Keys::default()),
        }
    }

    /// The `Host` this run answers to: `<label>.localhost:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://<label>.localhost:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.host)
    }

    /// This run's id: pages carry it, and the live stream says it first, so
    /// a page can tell it still talks to the node that served it.
    pub fn run(&self) -> &str {
        &self.run
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh link that lets one browser in, once, within [`LINK_LIFE`].
    /// With `sign_out`, every browser signed in so far is let out first,
    /// and every link not yet used stops working.
    pub fn login_link(&self, sign_out: bool) -> String {
        let once = BASE64URL_NOPAD.encode(&random::<32>());
        let mut keys = self.keys();
        if sign_out {
            *keys = Keys::default();
        }
        let now = Instant::now();
        keys.links.retain(|(_, until)| *until > now);
        while keys.links.len() >= MAX_LINKS {
            keys.links.pop_front();
        }
        keys.links.push_back((digest(&once), now + LINK_LIFE));
        drop(keys);
        format!("{}/login?token={once}", self.origin())
    }

    /// Spends a login link: a new session's cookie value if it was live.
    fn redeem(&self, once: &str) -> Option<String> {
        let d = digest(once);
        let now = Instant::now();
        let mut keys = self.keys();
        let at = keys.links.iter().position(|(l, _)| *l == d)?;
        let (_, until) = keys.links.remove(at)?;
        if until <= now {
            return None;
        }
        drop(keys);
        Some(self.new_session())
    }

    /// A new session: its cookie value.
    pub(crate) fn new_session(&self) -> String {
        let session = BASE64URL_NOPAD.encode(&random::<32>());
        let mut keys = self.keys();
        while keys.sessions.len() >= MAX_SESSIONS {
            keys.sessions.pop_front();
        }
        keys.sessions.push_back(digest(&session));
        session
    }

    /// Lets every browser out, and every link not yet used stops working;
    /// returns a new session's cookie value for the browser that asked.
    pub(crate) fn sign_out_others(&self) -> String {
        *self.keys() = Keys::default();
        self.new_session()
    }

    /// Whether `cookie` is a live session of this run.
    pub fn is_session(&self, cookie: &str) -> bool {
        let d = digest(cookie);
        self.keys().sessions.contains(&d)
    }

    /// The value of the hidden field of every form of `session`.
    pub fn form_token(&self, session: &str) -> String {
        blake3::keyed_hash(&self.key, session.as_bytes()).to_hex()[..32].to_owned()
    }
}

impl roundtable_node::WebLinks for Access {
    fn login_link(&self, sign_out: bool) -> String {
        Access::login_link(self, sign_out)
    }
}

/// The `Set-Cookie` value that lets a browser in: host-only (no
/// `Domain`), script-proof, never sent from another site's page.
pub(crate) fn session_cookie(session: &str) -> String {
    format!("{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict")
}

/// Equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

/// The value of the cookie named `name`, if the request carries one: the
/// one place this app reads its `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The session cookie's value, if the request carries one.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE).map(str::to_owned)
}

/// What the guard knows of this run's secrets.
pub trait Secrets {
    /// Whether `cookie` is a live session.
    fn is_session(&self, cookie: &str) -> bool;
    /// Spends a one-time login link: a new session's cookie value.
    fn redeem(&self, once: &str) -> Option<String>;
}

impl Secrets for Access {
    fn is_session(&self, cookie: &str) -> bool {
        Access::is_session(self, cookie)
    }
    fn redeem(&self, once: &str) -> Option<String> {
        Access::redeem(self, once)
    }
}

/// What the guard decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let it through to the pages, in this session.
    Pass(String),
    /// `/login` with a live one-time link: this new session's cookie.
    LogIn(String),
    /// Refused, with the status and the words to show.
    Refuse(u16, &'static str),
}

const ELSEWHERE: &str = "Another site tried to reach your circle; it was refused.";

/// To a tab of an earlier run (the node restarted), a page at an old or
/// wrong address, or a browser without a session: how to get back in.
pub const GET_BACK_IN: &str = "This page can't reach your circle: Roundtable was restarted, or this address is not the one it gave you. To open your circle, run `roundtable web --open` in a terminal, or use the link `roundtable up` printed when it started.";

const LINK_SPENT: &str = "This link was used already or is too old: each link works once, for 15 minutes. Run `roundtable web --open` in a terminal for a fresh one.";

/// Decides about a request from its method, path, query and headers, and
/// this run's `host` and `secrets`: no server needed, so every rule is
/// tested and fuzzed alone. A login link is spent only once every other
/// rule has passed.
pub fn decide(
    host: &str,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    secrets: &dyn Secrets,
) -> Decision {
    let mut hosts = headers.get_all(header::HOST).iter();
    let named = hosts.next().and_then(|h| h.to_str().ok()).unwrap_or("");
    if !named.eq_ignore_ascii_case(host) || hosts.next().is_some() {
        return Decision::Refuse(421, GET_BACK_IN);
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        let ours = origin
            .to_str()
            .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}")));
        if !ours || origins.next().is_some() {
            return Decision::Refuse(403, ELSEWHERE);
        }
    }
    let fetched_from_elsewhere = headers
        .get_all("sec-fetch-site")
        .iter()
        .any(|s| s.as_bytes() == b"cross-site" || s.as_bytes() == b"same-site");
    if fetched_from_elsewhere && path != "/login" {
        return Decision::Refuse(403, ELSEWHERE);
    }
    if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
        return Decision::Refuse(405, "That is not something this app does.");
    }
    if path == "/login" {
        let given = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v);
        return match given {
            Some(once) if *method == Method::GET => match secrets.redeem(once) {
                Some(session) => Decision::LogIn(session),
                None => Decision::Refuse(403, LINK_SPENT),
            },
            _ => Decision::Refuse(403, LINK_SPENT),
        };
    }
    match cookie_value(headers) {
        Some(c) if secrets.is_session(&c) => Decision::Pass(c),
        _ => Decision::Refuse(401, GET_BACK_IN),
    }
}

/// Checks every request before any page sees it.
pub(crate) async fn guard(State(app): State<Shared>, mut req: Request, next: Next) -> Response {
    let decision = decide(
        app.access.host(),
        req.method(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
        req.headers(),
        &*app.access,
    );
    match decision {
        Decision::Pass(session) => {
            req.extensions_mut()
                .insert(crate::forms::FormToken(app.access.form_token(&session)));
            let mut res = next.run(req).await;
            harden(res.headers_mut());
            res
        }
        Decision::LogIn(session) => logged_in(&session),
        Decision::Refuse(status, words) => refuse(
            StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            words,
        ),
    }
}

/// The browser that opened the link: its cookie, and on to `/` by a page
/// of the app itself. (A redirect would keep the link's origin — a file, a
/// terminal — as where the next request comes from, and a strict cookie is
/// not sent then.)
fn logged_in(session: &str) -> Response {
    let body = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="0; url=/";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Roundtable" }
            }
            body {
                main {
                    h1 { "Roundtable" }
                    p { "You are in. " a href="/" { "Open your circle" } }
                }
            }
        }
    };
    let mut res = body.into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(session)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    harden(res.headers_mut());
    res
}

/// What every answer says about itself: no framing, no caching, no
/// outside sources, no referrer.
fn harden(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    // Not "no-referrer": with it, a browser sends `Origin: null` on its own forms.
    set(h, "referrer-policy", "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
}

/// A refusal in plain words, as a small page that needs nothing else.
fn refuse(status: StatusCode, words: &str) -> Response {
    let body = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Roundtable" }
            }
            body {
                main {
                    h1 { "Roundtable" }
                    p { (words) }
                }
            }
        }
    };
    let mut res = (status, body).into_response();
    harden(res.headers_mut());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_once_and_a_sign_out_ends_every_session() {
        let label = Access::fresh_label();
        assert!(label.len() >= 32 && label.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(Access::fresh_label(), label, "each home its own label");
        let a = Access::new(&label, 7777);
        assert_eq!(a.host(), format!("{label}.localhost:7777"));
        let next = Access::new(&label, 7777);
        assert_ne!(next.run(), a.run(), "each run its own id");
        let link = a.login_link(false);
        let once = link.split_once("token=").map(|(_, t)| t).unwrap_or("");
        let session = a.redeem(once).expect("a live link");
        assert!(a.is_session(&session));
        assert_eq!(a.redeem(once), None, "a link works once");
        assert_ne!(a.form_token(&session), a.form_token("other"));
        assert_eq!(a.form_token(&session).len(), 32);
        let unused = a.login_link(false);
        a.login_link(true);
        assert!(!a.is_session(&session), "signed out");
        let unused = unused.split_once("token=").map(|(_, t)| t).unwrap_or("");
        assert_eq!(a.redeem(unused), None, "older links stop working");
        // The next run, at the same host, knows none of this run's sessions
        // and none of its links.
        let session = a.redeem(
            a.login_link(false)
                .split_once("token=")
                .map(|(_, t)| t)
                .unwrap_or(""),
        );
        let session = session.expect("a live link");
        assert!(!next.is_session(&session));
        assert_ne!(next.form_token(&session), a.form_token(&session));
    }

    #[test]
    fn only_the_named_cookie_counts() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; rt_session=abc; x=y"),
        );
        assert_eq!(cookie_value(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("rt_sessionx=abc"));
        assert_eq!(cookie_value(&h), None);
        // Every `Cookie` header is read, and any cookie by its name.
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(
            header::COOKIE,
            HeaderValue::from_static("rt_said=d29yZHM; b=2"),
        );
        assert_eq!(cookie(&h, "rt_said"), Some("d29yZHM"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
