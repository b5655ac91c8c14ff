//! Who gets in: only the person at this machine.
//!
//! - The secret lives in the home (`web-token`, owner-only) and survives
//!   restarts; [`new_token`] replaces it, letting every browser out.
//! - `/login?token=SECRET` (the link `roundtable up` prints) sets the
//!   `rt_session` cookie, a value derived from the secret ([`session_value`]):
//!   HttpOnly, SameSite=Strict; and sends the browser on to `/` so the secret
//!   leaves the address bar.
//! - Every other request must carry the cookie, name this app's own host
//!   in `Host` (a DNS-rebinding page names its own), and, when it says where
//!   it comes from (`Origin`, `Sec-Fetch-Site`), come from this app. No
//!   CORS headers are ever sent.
//! - Every form also carries [`form_token`], derived from the secret, which
//!   no other page can read.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use data_encoding::BASE64URL_NOPAD;
use roundtable_store::{Home, StoreError};

use crate::Shared;

/// The cookie that carries the secret.
pub const COOKIE: &str = "rt_session";

/// The name of the hidden field every form carries.
pub const FORM_FIELD: &str = "_form";

/// The secret, made on first use.
pub fn ensure_token(home: &Home) -> Result<String, StoreError> {
    match home.web_token()? {
        Some(t) => Ok(t),
        None => new_token(home),
    }
}

/// A new secret: links and cookies holding the old one stop working.
pub fn new_token(home: &Home) -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    let token = BASE64URL_NOPAD.encode(&bytes);
    home.set_web_token(&token)?;
    Ok(token)
}

/// The link that lets a browser in.
pub fn login_url(addr: SocketAddr, token: &str) -> String {
    format!("http://{}/login?token={token}", host_of(addr))
}

/// The cookie's value: derived from the secret, so a cookie read off a
/// disk or a screen is not the link.
pub fn session_value(token: &str) -> String {
    let key = blake3::derive_key("roundtable web session 2026", token.as_bytes());
    data_encoding::HEXLOWER.encode(&key)
}

/// The `Set-Cookie` value that lets a browser in.
pub(crate) fn session_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        session_value(token)
    )
}

/// The value of the hidden field of every form.
pub fn form_token(token: &str) -> String {
    let key = blake3::derive_key("roundtable web form 2026", token.as_bytes());
    blake3::hash(&key).to_hex()[..32].to_owned()
}

/// `127.0.0.1:7777`, `[::1]:7777`.
pub(crate) fn host_of(addr: SocketAddr) -> String {
    addr.to_string()
}

/// The `Host` values this app answers to.
pub fn hosts(addr: SocketAddr) -> Vec<String> {
    vec![host_of(addr), format!("localhost:{}", addr.port())]
}

/// Equal, in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

/// The session cookie's value, if the request carries one.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The secret as the home holds it now (a rotation elsewhere counts at once).
pub(crate) fn current_token(app: &Shared) -> Option<String> {
    match app.home.web_token() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("could not read the web app's secret: {e}");
            None
        }
    }
}

/// What the guard decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let it through to the pages.
    Pass,
    /// `/login` with the right secret: set the cookie, go to `/`.
    LogIn,
    /// Refused, with the status and the words to show.
    Refuse(u16, &'static str),
}

const ELSEWHERE: &str = "Another site tried to reach your circle; it was refused.";
const NOT_HERE: &str = "This app answers only at its own address on this computer.";

/// Decides about a request from its method, path, query and headers alone:
/// pure, so every rule is tested and fuzzed without a server. `hosts` are
/// the `Host` values this app answers to; `token` the secret as the home
/// holds it now.
pub fn decide(
    hosts: &[String],
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Decision {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Decision::Refuse(421, NOT_HERE);
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        let ours = origin.to_str().is_ok_and(|o| {
            hosts
                .iter()
                .any(|h| o.eq_ignore_ascii_case(&format!("http://{h}")))
        });
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
    let Some(token) = token else {
        return Decision::Refuse(503, "This app has no secret yet: restart `roundtable up`.");
    };
    if path == "/login" {
        let given = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v);
        return match given {
            Some(g) if *method == Method::GET && same_secret(g, token) => Decision::LogIn,
            _ => Decision::Refuse(
                403,
                "This link is out of date. Run `roundtable web` to see the current one.",
            ),
        };
    }
    match cookie_value(headers) {
        Some(c) if same_secret(&c, &session_value(token)) => Decision::Pass,
        _ => Decision::Refuse(
            401,
            "To open your circle here, use the link `roundtable up` printed, or run `roundtable web` to see it again.",
        ),
    }
}

/// Checks every request before any page sees it.
pub(crate) async fn guard(State(app): State<Shared>, mut req: Request, next: Next) -> Response {
    let token = current_token(&app);
    let decision = decide(
        &app.hosts,
        req.method(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
        req.headers(),
        token.as_deref(),
    );
    match (decision, token) {
        (Decision::Pass, Some(token)) => {
            req.extensions_mut()
                .insert(crate::app::FormToken(form_token(&token)));
            let mut res = next.run(req).await;
            harden(res.headers_mut());
            res
        }
        (Decision::LogIn, Some(token)) => logged_in(&token),
        (Decision::Refuse(status, words), _) => refuse(
            StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            words,
        ),
        (_, None) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "This app has no secret yet.",
        ),
    }
}

/// The browser that opened the link: its cookie, and on to `/`.
fn logged_in(token: &str) -> Response {
    let mut res = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(token)) {
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
    fn form_tokens_follow_the_secret() {
        assert_eq!(form_token("a"), form_token("a"));
        assert_ne!(form_token("a"), form_token("b"));
        assert_eq!(form_token("a").len(), 32);
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
    }
}
