//! The node's API, typed once: one [`Request`] and one [`Answer`], with
//! the [`ControlError`] a request can meet instead. The handle serves them
//! ([`crate::NodeHandle::call`]), the control socket carries them as JSON
//! lines (their serde forms, behind the version [`VERSION`]: see "The
//! control socket" in `docs/PROTOCOL.md`), and the CLI matches on them.

use roundtable_core::{
    ChangeHash, CircleId, DeviceId, EntityId, InviteKind, MemberId, Op, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::{NodeError, Status};

/// The version of the control socket's lines. A request line names it as
/// `"v"`; the node refuses a line of another version in one line naming
/// both, and changes nothing.
pub const VERSION: u32 = 1;

/// One request to the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "req", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// The circles served: [`Answer::Circles`].
    Circles,
    /// A circle's whole document, saved: [`Answer::Doc`].
    Doc {
        /// Which circle.
        circle: CircleId,
    },
    /// The heads of a circle's change graph: [`Answer::Heads`].
    Heads {
        /// Which circle.
        circle: CircleId,
    },
    /// An edit as this device's member, answered once it is durable:
    /// [`Answer::Performed`].
    Perform {
        /// Which circle.
        circle: CircleId,
        /// The edit.
        op: Op,
        /// When.
        now: Timestamp,
    },
    /// A new circle with this device's member as its first member:
    /// [`Answer::Created`].
    Create {
        /// Its name.
        name: String,
        /// What it is about.
        about: String,
        /// What it calls its founder.
        display_name: String,
        /// When.
        now: Timestamp,
    },
    /// An invite and the ticket that carries it: [`Answer::Invited`].
    Invite {
        /// Which circle.
        circle: CircleId,
        /// For a member or a device.
        kind: InviteKind,
        /// When it stops working.
        expires_at: Timestamp,
        /// How many times it can be used.
        uses: u32,
        /// What its maker calls it ("for Sam"); none by default.
        #[serde(default)]
        label: String,
        /// When.
        now: Timestamp,
    },
    /// Redeems a ticket: [`Answer::Joined`].
    Join {
        /// The ticket line.
        ticket: String,
        /// The name to join as (new members).
        #[serde(default)]
        name: Option<String>,
    },
    /// Peers, circles and how each peer stands: [`Answer::Status`].
    Status,
    /// This device and its member: [`Answer::Identity`].
    Identity,
    /// What happens in the node, one [`Event`](crate::Event) a line until
    /// the client hangs up or the node stops (the control socket's only
    /// request answered by more than one line).
    Events,
    /// A fresh one-time login link for the web app: [`Answer::WebLink`].
    WebLink {
        /// Sign every browser signed in so far out first.
        #[serde(default)]
        sign_out: bool,
    },
    /// This device's person looked at a circle at `now`: [`Answer::Done`].
    Seen {
        /// Which circle.
        circle: CircleId,
        /// When.
        now: Timestamp,
    },
}

/// What the node answers a [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Answer {
    /// The circles served, with their names.
    Circles(Vec<CircleSummary>),
    /// A circle's document, saved (base64 on the wire).
    Doc(#[serde(with = "base64")] Vec<u8>),
    /// A circle's heads.
    Heads(Vec<ChangeHash>),
    /// The edit is durable; the entity it made, if it made one.
    Performed(Option<EntityId>),
    /// The circle made.
    Created(CircleId),
    /// The ticket, as the line a person passes on.
    Invited(String),
    /// The circles served now.
    Joined(Vec<CircleId>),
    /// How the node stands.
    Status(Status),
    /// This device and its member.
    Identity {
        /// This device.
        device: DeviceId,
        /// Its member.
        member: MemberId,
    },
    /// The web app's one-time login link.
    WebLink(String),
    /// Done, with nothing to tell.
    Done,
}

impl Answer {
    /// The name of the answer, for saying which one came when another was
    /// expected.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Circles(_) => "circles",
            Self::Doc(_) => "doc",
            Self::Heads(_) => "heads",
            Self::Performed(_) => "performed",
            Self::Created(_) => "created",
            Self::Invited(_) => "invited",
            Self::Joined(_) => "joined",
            Self::Status(_) => "status",
            Self::Identity { .. } => "identity",
            Self::WebLink(_) => "web_link",
            Self::Done => "done",
        }
    }
}

/// A circle served, in [`Answer::Circles`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircleSummary {
    /// The circle.
    pub id: CircleId,
    /// Its name.
    pub name: String,
}

/// What kind of failure a [`ControlError`] is: what the CLI's exit code
/// and the web app's words are chosen by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request was at fault: an edit the circle's rules refuse, a
    /// name or id that is no one's, a line that does not read.
    BadInput,
    /// This node or the other device said no, with its reason.
    Refused,
    /// This device is not in the circle named.
    UnknownCircle,
    /// The request speaks another version of the control socket.
    Version,
    /// The device to reach could not be reached.
    Unreachable,
    /// The node has stopped, or the client lost contact with it.
    Closed,
    /// Something failed underneath (the files, the network, the node).
    Failed,
}

impl ErrorKind {
    /// Whether the person's input was at fault: the CLI exits with 2 for
    /// these, 1 for the rest.
    pub fn is_bad_input(self) -> bool {
        matches!(self, Self::BadInput | Self::Refused | Self::UnknownCircle)
    }
}

/// A request's failure, as the control socket carries it and its client
/// sees it: words for the person and what kind of failure it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// What went wrong, in words for the person.
    pub message: String,
    /// What kind of failure.
    pub kind: ErrorKind,
}

impl ControlError {
    /// A failure of `kind` with its words.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind,
        }
    }

    /// Whether the person's input was at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        self.kind.is_bad_input()
    }
}

impl From<&NodeError> for ControlError {
    fn from(e: &NodeError) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}

impl From<NodeError> for ControlError {
    fn from(e: NodeError) -> Self {
        Self::from(&e)
    }
}

/// A request line on the control socket: the version, then the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestLine {
    /// The control socket's version the client speaks ([`VERSION`]).
    pub v: u32,
    /// What it asks.
    #[serde(flatten)]
    pub request: Request,
}

impl RequestLine {
    /// `request` at this version.
    pub fn new(request: Request) -> Self {
        Self {
            v: VERSION,
            request,
        }
    }
}

/// An answer line on the control socket: `{"ok": answer}` or
/// `{"error": {"message", "kind"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerLine {
    /// The request was served.
    Ok(Answer),
    /// It was not, and why.
    Error(ControlError),
}

impl From<Result<Answer, ControlError>> for AnswerLine {
    fn from(r: Result<Answer, ControlError>) -> Self {
        match r {
            Ok(a) => Self::Ok(a),
            Err(e) => Self::Error(e),
        }
    }
}

impl From<AnswerLine> for Result<Answer, ControlError> {
    fn from(line: AnswerLine) -> Self {
        match line {
            AnswerLine::Ok(a) => Ok(a),
            AnswerLine::Error(e) => Err(e),
        }
    }
}

/// Bytes as standard base64 text.
mod base64 {
    use data_encoding::BASE64;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64.decode(text.as_bytes()).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use roundtable_core::{ChangeHash, Mood};

    use super::*;

    fn circle() -> CircleId {
        "00112233445566778899aabbccddeeff"
            .parse()
            .expect("a circle id")
    }

    fn at() -> Timestamp {
        Timestamp::from_millis(1_780_000_000_000)
    }

    fn requests() -> Vec<Request> {
        vec![
            Request::Circles,
            Request::Doc { circle: circle() },
            Request::Heads { circle: circle() },
            Request::Perform {
                circle: circle(),
                op: Op::Checkin {
                    mood: Mood::Okay,
                    note: "soup helped".into(),
                },
                now: at(),
            },
            Request::Create {
                name: "Tuesday Supper".into(),
                about: "".into(),
                display_name: "Maya".into(),
                now: at(),
            },
            Request::Invite {
                circle: circle(),
                kind: InviteKind::Member,
                expires_at: at().plus_millis(86_400_000),
                uses: 1,
                label: "for Sam".into(),
                now: at(),
            },
            Request::Join {
                ticket: "roundtable:ticket".into(),
                name: Some("Sam".into()),
            },
            Request::Join {
                ticket: "roundtable:ticket".into(),
                name: None,
            },
            Request::Status,
            Request::Identity,
            Request::Events,
            Request::WebLink { sign_out: true },
            Request::Seen {
                circle: circle(),
                now: at(),
            },
        ]
    }

    fn answers() -> Vec<Answer> {
        let device = DeviceId::from_bytes([7; 32]);
        let member = MemberId::from_bytes([9; 32]);
        vec![
            Answer::Circles(vec![CircleSummary {
                id: circle(),
                name: "Tuesday Supper".into(),
            }]),
            Answer::Circles(Vec::new()),
            Answer::Doc(vec![0, 1, 2, 250, 251, 255]),
            Answer::Heads(vec![ChangeHash([3; 32])]),
            Answer::Performed(Some("0011223344556677".parse().expect("an entity id"))),
            Answer::Performed(None),
            Answer::Created(circle()),
            Answer::Invited("roundtable:ticket".into()),
            Answer::Joined(vec![circle()]),
            Answer::Status(Status {
                device,
                member,
                addrs: vec!["127.0.0.1:4000".into()],
                circles: Vec::new(),
                dropped: BTreeMap::from([("replayed".into(), 2)]),
                refused: BTreeMap::new(),
            }),
            Answer::Identity { device, member },
            Answer::WebLink("http://x.localhost:7777/login/abc".into()),
            Answer::Done,
        ]
    }

    /// Every request, as its line, reads back as itself.
    #[test]
    fn every_request_line_reads_back() {
        for request in requests() {
            let line = serde_json::to_string(&RequestLine::new(request.clone())).unwrap();
            assert!(line.starts_with(r#"{"v":1,"req":""#), "{line}");
            let back: RequestLine = serde_json::from_str(&line).unwrap();
            assert_eq!(back, RequestLine::new(request), "{line}");
        }
    }

    /// Every answer and error, as its line, reads back as itself.
    #[test]
    fn every_answer_line_reads_back() {
        let errors = [
            ErrorKind::BadInput,
            ErrorKind::Refused,
            ErrorKind::UnknownCircle,
            ErrorKind::Version,
            ErrorKind::Unreachable,
            ErrorKind::Closed,
            ErrorKind::Failed,
        ]
        .map(|kind| AnswerLine::Error(ControlError::new(kind, "no")));
        let lines = answers().into_iter().map(AnswerLine::Ok).chain(errors);
        for line in lines {
            let text = serde_json::to_string(&line).unwrap();
            let back: AnswerLine = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), text);
        }
    }

    /// The lines as `docs/PROTOCOL.md` shows them.
    #[test]
    fn lines_read_as_documented() {
        let line = |r| serde_json::to_string(&RequestLine::new(r)).unwrap();
        assert_eq!(line(Request::Circles), r#"{"v":1,"req":"circles"}"#);
        assert_eq!(
            line(Request::Doc { circle: circle() }),
            r#"{"v":1,"req":"doc","circle":"00112233445566778899aabbccddeeff"}"#
        );
        let answer = |a| serde_json::to_string(&AnswerLine::Ok(a)).unwrap();
        assert_eq!(answer(Answer::Done), r#"{"ok":"done"}"#);
        assert_eq!(
            answer(Answer::Doc(vec![1, 2, 3])),
            r#"{"ok":{"doc":"AQID"}}"#
        );
        assert_eq!(
            answer(Answer::Performed(None)),
            r#"{"ok":{"performed":null}}"#
        );
        let error = AnswerLine::Error(ControlError::new(ErrorKind::UnknownCircle, "not here"));
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"error":{"message":"not here","kind":"unknown_circle"}}"#
        );
        // Fields a request may leave out.
        let read: Request = serde_json::from_str(r#"{"v":1,"req":"web_link"}"#).unwrap();
        assert_eq!(read, Request::WebLink { sign_out: false });
        let read: Request = serde_json::from_str(r#"{"v":1,"req":"join","ticket":"t"}"#).unwrap();
        assert_eq!(
            read,
            Request::Join {
                ticket: "t".into(),
                name: None
            }
        );
    }

    /// The kinds the CLI exits with 2 for.
    #[test]
    fn bad_input_is_the_requests_fault() {
        assert!(ErrorKind::BadInput.is_bad_input());
        assert!(ErrorKind::Refused.is_bad_input());
        assert!(ErrorKind::UnknownCircle.is_bad_input());
        assert!(!ErrorKind::Version.is_bad_input());
        assert!(!ErrorKind::Closed.is_bad_input());
        assert!(!ErrorKind::Failed.is_bad_input());
    }

    /// A node's errors sort into kinds in one place.
    #[test]
    fn node_errors_have_their_kinds() {
        use roundtable_core::CoreError;
        let kind = |e: NodeError| ControlError::from(e).kind;
        assert_eq!(
            kind(NodeError::Machine(crate::MachineError::UnknownCircle(
                circle()
            ))),
            ErrorKind::UnknownCircle
        );
        let refused = NodeError::from(crate::MachineError::Refused("no".into()));
        assert!(matches!(&refused, NodeError::Refused(why) if why == "no"));
        assert_eq!(kind(refused), ErrorKind::Refused);
        assert_eq!(kind(NodeError::Refused("no".into())), ErrorKind::Refused);
        assert_eq!(
            kind(NodeError::from(CoreError::Empty("note"))),
            ErrorKind::BadInput
        );
        assert_eq!(kind(NodeError::Closed), ErrorKind::Closed);
        assert_eq!(
            kind(NodeError::Unreachable("off".into())),
            ErrorKind::Unreachable
        );
        assert_eq!(kind(NodeError::Crashed("boom".into())), ErrorKind::Failed);
    }
}
