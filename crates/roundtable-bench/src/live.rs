//! A live page's update: what the web app sends a page open on a circle
//! after one change (the live parts that changed), against what the page
//! fetched before (the whole page again). Spoken over real HTTP to the
//! real app, on loopback; the bytes are the whole answer, head and body.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use roundtable_core::{CircleId, Mood, Op, Timestamp};
use roundtable_node::NodeHandle;
use roundtable_web::{WebApp, access};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::setup::median;

/// One answer of the app.
struct Answer {
    /// Its bytes on the wire, head and body.
    bytes: u64,
    head: String,
    body: String,
}

/// One HTTP/1.1 request, answered in full (the app closes after it).
async fn request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Answer> {
    let mut s = TcpStream::connect(addr).await?;
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8(out).context("the app answers in UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("an answer without a head"))?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{path}: {}", head.lines().next().unwrap_or(""));
    }
    Ok(Answer {
        bytes: text.len() as u64,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// What a live update of a circle's home page costs, after each of
/// `repeats` check-ins.
pub(crate) struct Update {
    /// The live read's answer, median bytes.
    pub(crate) parts: u64,
    /// The whole page's, median bytes.
    pub(crate) page: u64,
    /// The live read's time, median.
    pub(crate) parts_took: Duration,
    /// The whole page's time, median.
    pub(crate) page_took: Duration,
    /// How many of the page's live parts came back, of how many.
    pub(crate) changed: (usize, usize),
}

/// Opens the web app on `node`, signs a browser in, opens the home page of
/// `circle`, and after each check-in reads it live as `app.js` does (the
/// parts it holds, by digest) and whole as it did before.
pub(crate) async fn update(node: &NodeHandle, circle: CircleId, repeats: usize) -> Result<Update> {
    let app = WebApp::start(node.clone(), SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let out = measure(&app, node, circle, repeats).await;
    app.stop().await;
    out
}

async fn measure(
    app: &WebApp,
    node: &NodeHandle,
    circle: CircleId,
    repeats: usize,
) -> Result<Update> {
    let host = app.host().to_owned();
    let link = app.login_link(false);
    let login = link
        .split_once(host.as_str())
        .map(|(_, p)| p.to_owned())
        .ok_or_else(|| anyhow!("a login link without the app's host"))?;
    let signed = request(app.addr(), &login, &[("Host", &host)]).await?;
    let session = signed
        .head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.trim().split(';').next())
        .find(|c| c.starts_with(&format!("{}=", access::COOKIE)))
        .ok_or_else(|| anyhow!("no session cookie"))?
        .to_owned();
    let path = format!("/c/{circle}");
    let page_headers = [("Host", host.as_str()), ("Cookie", session.as_str())];
    // What the open page holds: every part, by the digest it came with.
    let mut holding = BTreeMap::new();
    let first = live_read(app.addr(), &path, &page_headers, &holding).await?;
    let all = first.1.len();
    absorb(&mut holding, first.1)?;
    let (mut parts, mut page, mut parts_took, mut page_took) = (vec![], vec![], vec![], vec![]);
    let mut changed = 0;
    for i in 0..repeats {
        let op = Op::Checkin {
            mood: Mood::Okay,
            note: format!("a live update {i}"),
        };
        node.perform(circle, op, Timestamp::now()).await?;
        let t = Instant::now();
        let (answer, came) = live_read(app.addr(), &path, &page_headers, &holding).await?;
        parts_took.push(t.elapsed());
        parts.push(answer.bytes);
        changed = changed.max(came.len());
        absorb(&mut holding, came)?;
        let t = Instant::now();
        let whole = request(app.addr(), &path, &page_headers).await?;
        page_took.push(t.elapsed());
        page.push(whole.bytes);
    }
    parts.sort_unstable();
    page.sort_unstable();
    Ok(Update {
        parts: parts.get(parts.len() / 2).copied().unwrap_or(0),
        page: page.get(page.len() / 2).copied().unwrap_or(0),
        parts_took: median(&parts_took),
        page_took: median(&page_took),
        changed: (changed, all),
    })
}

/// A live read of `path` holding `holding`: the answer and the parts that
/// came back (id, html).
async fn live_read(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    holding: &BTreeMap<String, String>,
) -> Result<(Answer, Vec<(String, String)>)> {
    let have = holding
        .iter()
        .map(|(id, v)| format!("{id}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut all = headers.to_vec();
    all.push(("X-Live", "1"));
    all.push(("X-Live-Have", &have));
    let answer = request(addr, path, &all).await?;
    let json: serde_json::Value =
        serde_json::from_str(&answer.body).context("a live read answers in JSON")?;
    let parts = json["parts"]
        .as_array()
        .ok_or_else(|| anyhow!("a live read without parts"))?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?.to_owned(), p["html"].as_str()?.to_owned())))
        .collect();
    Ok((answer, parts))
}

/// The page now holds `parts`, and the parts inside them.
fn absorb(holding: &mut BTreeMap<String, String>, parts: Vec<(String, String)>) -> Result<()> {
    for (id, html) in parts {
        let held = roundtable_web::parts_held(&id, &html)
            .ok_or_else(|| anyhow!("part {id} without its digests"))?;
        holding.extend(held);
    }
    Ok(())
}
