//! The check behind the `web_request` fuzz target in `fuzz/`: arbitrary
//! bytes read as a request head (a first line `METHOD /path?query`, then
//! `Name: value` lines) go through the guard's decision, which must never
//! panic and never let a request through that breaks a rule of
//! [`crate::access`]. `tests/fuzz_regressions.rs` replays the inputs kept in
//! `fuzz/regressions/web_request`. Not part of the crate's API.

#![doc(hidden)]

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::access::{Decision, cookie_value, decide, session_value};

/// The secret of the home the requests are checked against.
pub const TOKEN: &str = "kJ2m1t0Qw8cS5u3yZ4vB7nL6pD9fH0gA1sE2rT3yU4i";

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
    let hosts = vec!["127.0.0.1:7777".to_owned(), "localhost:7777".to_owned()];
    let decision = decide(&hosts, &method, path, query, &headers, Some(TOKEN));
    let host_ok = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| hosts.iter().any(|o| o.eq_ignore_ascii_case(h)));
    let origins: Vec<&HeaderValue> = headers.get_all(header::ORIGIN).iter().collect();
    let origin_ok = origins.is_empty()
        || (origins.len() == 1
            && origins[0].to_str().is_ok_and(|o| {
                hosts
                    .iter()
                    .any(|h| o.eq_ignore_ascii_case(&format!("http://{h}")))
            }));
    match decision {
        Decision::Pass => {
            assert!(host_ok, "let through for another host");
            assert!(origin_ok, "let through from another origin");
            assert_ne!(path, "/login");
            assert!(matches!(method, Method::GET | Method::HEAD | Method::POST));
            assert_eq!(
                cookie_value(&headers).as_deref(),
                Some(session_value(TOKEN).as_str()),
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
        Decision::LogIn => {
            assert!(host_ok && origin_ok);
            assert_eq!(path, "/login");
            assert!(
                query.split('&').any(|kv| kv == format!("token={TOKEN}")),
                "logged in without the secret"
            );
        }
        Decision::Refuse(status, words) => {
            assert!((400..600).contains(&status));
            assert!(!words.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(extra: &str) -> String {
        format!(
            "POST /c/abc/checkin\nHost: 127.0.0.1:7777\nOrigin: http://127.0.0.1:7777\nCookie: x=1; rt_session={}\n{extra}",
            session_value(TOKEN)
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
            let mut headers = HeaderMap::new();
            for l in lines {
                if let Some((k, v)) = l.split_once(':') {
                    headers.append(
                        HeaderName::from_bytes(k.trim().as_bytes()).expect("a name"),
                        HeaderValue::from_str(v.trim()).expect("a value"),
                    );
                }
            }
            let hosts = vec!["127.0.0.1:7777".to_owned(), "localhost:7777".to_owned()];
            let method = Method::from_bytes(method.as_bytes()).expect("a method");
            decide(&hosts, &method, target, "", &headers, Some(TOKEN))
        };
        assert_eq!(decided(&head("")), Decision::Pass);
        web_request(head("").as_bytes());
        assert!(matches!(
            decided(&head("Origin: http://evil.example")),
            Decision::Refuse(403, _)
        ));
        assert!(matches!(
            decided(&head("Sec-Fetch-Site: cross-site")),
            Decision::Refuse(403, _)
        ));
        let rebound = head("").replace("Host: 127.0.0.1:7777", "Host: evil.example:7777");
        assert!(matches!(decided(&rebound), Decision::Refuse(421, _)));
        let stale = head("").replace(&session_value(TOKEN), &session_value("old"));
        assert!(matches!(decided(&stale), Decision::Refuse(401, _)));
    }
}
