//! The checks behind the `web_request` and `live_have` fuzz targets in
//! `fuzz/`. `web_request`: arbitrary
//! bytes read as a request head (a first line `METHOD /path?query`, then
//! `Name: value` lines) go through the guard's decision, which must never
//! panic and never let a request through that breaks a rule of
//! [`crate::access`]. `live_have`: arbitrary bytes as the parts a live read
//! says it holds. `tests/fuzz_regressions.rs` replays the inputs kept in
//! `fuzz/regressions/`. Not part of the crate's API.

#![doc(hidden)]

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::access::{Decision, Secrets, cookie_value, decide};

/// The secret host the requests are checked against.
pub const HOST: &str = "q0v5l2kq3d9s1m8e7t6b4n0c2a1f3g5h.localhost:7777";

/// The live session.
pub const SESSION: &str = "kJ2m1t0Qw8cS5u3yZ4vB7nL6pD9fH0gA1sE2rT3yU4i";

/// The one-time login link's secret.
pub const ONCE: &str = "x9Fh2LkP0qRz4TnV6bWc8YdM1sJ3gE5uA7oI0pK2lH4";

/// The secrets of a run with one session and one link.
pub struct Known;

impl Secrets for Known {
    fn is_session(&self, cookie: &str) -> bool {
        cookie == SESSION
    }
    fn redeem(&self, once: &str) -> Option<String> {
        (once == ONCE).then(|| "new-session".to_owned())
    }
}

/// Reads `data` as a request head and checks the guard's decision.
pub fn web_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let target = target.split(' ').next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    let decision = decide(HOST, &method, path, query, &headers, &Known);
    let hosts: Vec<&HeaderValue> = headers.get_all(header::HOST).iter().collect();
    let host_ok = hosts.len() == 1
        && hosts[0]
            .to_str()
            .is_ok_and(|h| h.eq_ignore_ascii_case(HOST));
    let origins: Vec<&HeaderValue> = headers.get_all(header::ORIGIN).iter().collect();
    let origin_ok = origins.is_empty()
        || (origins.len() == 1
            && origins[0]
                .to_str()
                .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("http://{HOST}"))));
    match decision {
        Decision::Pass(session) => {
            assert!(host_ok, "let through for another host");
            assert!(origin_ok, "let through from another origin");
            assert_ne!(path, "/login");
            assert!(matches!(method, Method::GET | Method::HEAD | Method::POST));
            assert_eq!(session, SESSION);
            assert_eq!(
                cookie_value(&headers).as_deref(),
                Some(SESSION),
                "let through without the session cookie"
            );
            assert!(
                !headers
                    .get_all("sec-fetch-site")
                    .iter()
                    .any(|s| s.as_bytes() == b"cross-site"),
                "let through a cross-site fetch"
            );
        }
        Decision::LogIn(_) => {
            assert!(host_ok && origin_ok);
            assert_eq!(path, "/login");
            assert!(
                query.split('&').any(|kv| kv == format!("token={ONCE}")),
                "logged in without the link"
            );
        }
        Decision::Refuse(status, words) => {
            assert!((400..600).contains(&status));
            assert!(!words.is_empty());
        }
    }
}

/// Reads `data` as a live read's `X-Live-Have` (the parts a page says it
/// holds) against a page of a feed with three items: at most
/// [`crate::live::MOST_PARTS`] pairs are taken, only the page's own parts
/// are sent, each once, and what is sent reads back as the page would
/// hold it.
pub fn live_have(data: &[u8]) {
    use crate::live;
    let text = String::from_utf8_lossy(data);
    let have = live::holding(&text);
    assert!(have.len() <= live::MOST_PARTS);
    let page = live::rendered(|| live::sample_feed(&["soup", "bread", "a <b> & \"c\""]));
    let ids: Vec<String> = page.iter().map(|(p, _)| p.id.clone()).collect();
    let sent = live::changed_parts(page, &have);
    let mut seen = std::collections::HashSet::new();
    for p in &sent {
        assert!(ids.contains(&p.id), "{} is not a part of the page", p.id);
        assert!(seen.insert(p.id.clone()), "{} sent twice", p.id);
        assert!(
            live::parts_held(&p.id, &p.html).is_some(),
            "{} does not read back",
            p.id
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(extra: &str) -> String {
        format!(
            "POST /c/abc/checkin\nHost: {HOST}\nOrigin: http://{HOST}\nCookie: x=1; rt_session={SESSION}\n{extra}"
        )
    }

    /// The check's strict side is reached: a request of this app's own
    /// passes, and each of its rules turns it away when broken.
    #[test]
    fn the_checks_both_sides_are_reached() {
        let decided = |text: &str| {
            let mut lines = text.split('\n');
            let first = lines.next().unwrap_or("");
            let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let mut headers = HeaderMap::new();
            for l in lines {
                if let Some((k, v)) = l.split_once(':') {
                    headers.append(
                        HeaderName::from_bytes(k.trim().as_bytes()).expect("a name"),
                        HeaderValue::from_str(v.trim()).expect("a value"),
                    );
                }
            }
            let method = Method::from_bytes(method.as_bytes()).expect("a method");
            decide(HOST, &method, path, query, &headers, &Known)
        };
        assert_eq!(decided(&head("")), Decision::Pass(SESSION.to_owned()));
        web_request(head("").as_bytes());
        assert!(matches!(
            decided(&head("Origin: http://evil.example")),
            Decision::Refuse(403, _)
        ));
        assert!(matches!(
            decided(&head("Sec-Fetch-Site: cross-site")),
            Decision::Refuse(403, _)
        ));
        let rebound = head("").replace(&format!("Host: {HOST}"), "Host: evil.example:7777");
        assert!(matches!(decided(&rebound), Decision::Refuse(421, _)));
        // Another port of loopback, or another run's host: not this app.
        for other in ["127.0.0.1:7777", "localhost:7777", "other.localhost:7777"] {
            let moved = head("").replace(&format!("Host: {HOST}"), &format!("Host: {other}"));
            assert!(
                matches!(decided(&moved), Decision::Refuse(421, _)),
                "{other}"
            );
        }
        let stale = head("").replace(SESSION, "old");
        assert!(matches!(decided(&stale), Decision::Refuse(401, _)));
        let login = format!("GET /login?token={ONCE}\nHost: {HOST}\nSec-Fetch-Site: cross-site");
        assert!(matches!(decided(&login), Decision::LogIn(_)));
        let wrong = login.replace(ONCE, "nope");
        assert!(matches!(decided(&wrong), Decision::Refuse(403, _)));
    }
}
