//! The control socket: the node's one API as JSON lines, versioned. A
//! request of another version, or a line that is no request, is answered
//! with one error line and changes nothing; the node goes on serving.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use roundtable_core::{Circle, Mood, Op, Timestamp};
use roundtable_node::api::{Answer, AnswerLine, ErrorKind, VERSION};
use roundtable_node::control::{ControlClient, MAX_REQUEST, socket_path};
use roundtable_node::{Event, Node, NodeConfig};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

async fn start(home: &Path) -> Node {
    timeout(LIMIT, Node::spawn(NodeConfig::loopback(home)))
        .await
        .expect("starts in time")
        .expect("starts")
}

/// Runs blocking client code off the runtime, within the limit.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    timeout(LIMIT, tokio::task::spawn_blocking(f))
        .await
        .expect("in time")
        .expect("no panic")
}

/// Writes `bytes` as they are and reads everything the node answers.
async fn raw(socket: PathBuf, bytes: Vec<u8>) -> String {
    blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connects");
        s.set_read_timeout(Some(LIMIT)).expect("a timeout");
        // The node stops reading after its limit; it may close mid-write.
        let _ = s.write_all(&bytes);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
}

/// The one line of an answer, read as one.
fn one_line(answer: &str) -> AnswerLine {
    assert!(answer.ends_with('\n'), "{answer:?}");
    assert_eq!(answer.lines().count(), 1, "{answer:?}");
    serde_json::from_str(answer).expect("an answer line")
}

fn error_of(answer: &str) -> (ErrorKind, String) {
    match one_line(answer) {
        AnswerLine::Error(e) => (e.kind, e.message),
        AnswerLine::Ok(a) => panic!("served: {a:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_another_version_is_refused_in_one_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let socket = socket_path(dir.path());
    let create = |v: &str| {
        format!(
            r#"{{{v}"req":"create","name":"Supper","about":"","display_name":"Maya","now":{}}}"#,
            serde_json::to_string(&Timestamp::now()).unwrap()
        )
        .into_bytes()
    };
    let mut line = create(r#""v":2,"#);
    line.push(b'\n');
    let (kind, message) = error_of(&raw(socket.clone(), line).await);
    assert_eq!(kind, ErrorKind::Version);
    assert!(
        message.contains("version 2") && message.contains(&format!("version {VERSION}")),
        "{message}"
    );
    let mut line = create("");
    line.push(b'\n');
    let (kind, message) = error_of(&raw(socket.clone(), line).await);
    assert_eq!(kind, ErrorKind::Version);
    assert!(message.contains(&format!("version {VERSION}")), "{message}");
    // Neither made a circle; the same request at this version does.
    assert!(node.handle().circles().await.unwrap().is_empty());
    let mut line = create(r#""v":1,"#);
    line.push(b'\n');
    match one_line(&raw(socket, line).await) {
        AnswerLine::Ok(Answer::Created(id)) => {
            let circles = node.handle().circles().await.unwrap();
            assert_eq!(circles, vec![(id, "Supper".to_owned())]);
        }
        other => panic!("{other:?}"),
    }
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_that_are_no_request_are_answered_and_the_node_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let socket = socket_path(dir.path());
    let garbage: Vec<Vec<u8>> = vec![
        b"not json\n".to_vec(),
        b"[1, 2, 3]\n".to_vec(),
        b"{\"v\":1,\"req\":\"launch\"}\n".to_vec(),
        b"{\"v\":1,\"req\":\"doc\"}\n".to_vec(),
        b"{\"v\":\"one\",\"req\":\"circles\"}\n".to_vec(),
        b"{\"v\":1,\"req\":\"doc\",\"circle\":\"nothex\"}\n".to_vec(),
        vec![0xff, 0xfe, b'\n'],
        vec![b' '; MAX_REQUEST + 10],
    ];
    for line in garbage {
        let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
        let (kind, message) = error_of(&raw(socket.clone(), line).await);
        assert_eq!(kind, ErrorKind::BadInput, "{shown}: {message}");
        // The node still answers, over the socket and in process.
        let client = ControlClient::connect(dir.path()).expect("the socket answers");
        blocking(move || client.status()).await.expect("status");
    }
    node.handle().status().await.unwrap();
    node.shutdown().await.unwrap();
}

/// A check-in from the client to the disk, in types all the way: the
/// answers are the API's, and errors carry their kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_typed_answers() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let client = ControlClient::connect(dir.path()).expect("the socket answers");
    let (doc, id, circles, errors) = blocking(move || {
        let circle = client
            .create("Supper", "", "Maya", Timestamp::now())
            .unwrap();
        let op = Op::Checkin {
            mood: Mood::Okay,
            note: "soup helped".into(),
        };
        let id = client.perform(circle, op, Timestamp::now()).unwrap();
        let doc = client.doc(circle).unwrap();
        let circles = client.circles().unwrap();
        let unknown = client
            .doc("00112233445566778899aabbccddeeff".parse().unwrap())
            .unwrap_err();
        let empty = Op::Moment { text: " ".into() };
        let refused = client.perform(circle, empty, Timestamp::now()).unwrap_err();
        let none = client.web_link(false).unwrap_err();
        (doc, id, circles, [unknown, refused, none])
    })
    .await;
    let [unknown, refused, none] = errors;
    let circle = Circle::load(&doc).unwrap();
    assert_eq!(circles.len(), 1);
    assert_eq!(circles[0].id, circle.id());
    assert_eq!(circles[0].name, "Supper");
    let id = id.expect("a check-in makes an entity");
    assert!(
        circle.view().checkins.contains_key(&id),
        "the check-in is in the circle as read from the socket"
    );
    // The circle's rules refused the empty moment: the person's input.
    assert_eq!(refused.kind, ErrorKind::BadInput, "{}", refused.message);
    assert_eq!(unknown.kind, ErrorKind::UnknownCircle);
    assert!(unknown.is_bad_input());
    // No web app is served next to this node.
    assert_eq!(none.kind, ErrorKind::Refused);
    assert!(none.message.contains("no web app"), "{}", none.message);
    node.shutdown().await.unwrap();
}

/// Following the node over the socket yields typed events: an edit is heard
/// as its circle changing, and the stream ends when the node stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_hears_typed_events() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let handle = node.handle();
    let circle = handle
        .create_circle("Supper", "", "Maya", Timestamp::now())
        .await
        .unwrap();
    let client = ControlClient::connect(dir.path()).expect("the socket answers");
    let (heard, hearing) = std::sync::mpsc::channel();
    let follower = tokio::task::spawn_blocking(move || {
        client.follow(|event| heard.send(event.clone()).is_ok())
    });
    // Edit until the follower hears about it, so it surely follows.
    let event = timeout(LIMIT, async {
        loop {
            let op = Op::Checkin {
                mood: Mood::Okay,
                note: String::new(),
            };
            handle.perform(circle, op, Timestamp::now()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(event) = hearing.try_recv() {
                break event;
            }
        }
    })
    .await
    .expect("the follower hears an event");
    assert_eq!(event, Event::Changed { circle });
    timeout(LIMIT, node.shutdown()).await.unwrap().unwrap();
    timeout(LIMIT, follower)
        .await
        .expect("the stream ends with the node")
        .unwrap()
        .expect("it ended cleanly");
}
