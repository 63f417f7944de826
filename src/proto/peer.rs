//! The peer protocol: what daemons say to each other inside the encrypted
//! TCP session (see [`crate::crypto::session`]), one JSON object per frame.
//!
//! A connection starts with one request. [`PeerRequest::Join`] gets one
//! [`JoinReply`] and the connection ends. [`PeerRequest::Query`] opens a
//! query stream: the member answers [`PeerReply::Accepted`], then the asking
//! daemon sends [`PeerRequest::Items`] batches and finally
//! [`PeerRequest::End`], while the member streams [`PeerReply::Results`] as
//! items finish, [`PeerReply::Working`] when it has been busy for a while with
//! nothing new to say, and [`PeerReply::Done`] once every item is answered.
//! Paths are absolute, as the member should open them, and exact bytes: a
//! name that is not UTF-8 adds `path_b64` (see [`crate::proto::path`]). Ids
//! are the asking daemon's, so it can tell which result is which.

use crate::error::Error;
use crate::membership::{Node, Record};
use crate::proto::{PathBytes, QueryKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// Most items in one [`PeerRequest::Items`] frame.
pub const MAX_ITEMS: usize = 256;

/// What the asking side sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerRequest {
    /// A node joins through us and wants the member list.
    Join { node: Node },
    /// A periodic full exchange of what each side knows (push/pull).
    Sync {
        node: Node,
        members: Vec<Record>,
        /// The CA's revocation list in force, as news (see
        /// [`crate::revocation`]), base64; absent without one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revoked: Option<String>,
    },
    /// Opens a query stream.
    Query {
        kind: QueryKind,
        #[serde(default)]
        lines_only: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        max_line_length: bool,
        #[serde(default)]
        recursive: bool,
        /// `stat`: follow a final symlink (absent when false, so that a
        /// member of an earlier version still takes a plain stat).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dereference: bool,
        /// `wc` under POSIXLY_CORRECT (see [`crate::proto::Query`]). Absent
        /// when false; a member of an earlier version refuses the query
        /// rather than count by the other rule.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        posixly_correct: bool,
        /// `wc`: items may carry a [`ByteRange`] (a huge file counted by
        /// many members). Absent when false; a member of an earlier version
        /// refuses the query, and the others take its share.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ranges: bool,
    },
    /// More paths for the open query.
    Items { items: Vec<PeerItem> },
    /// No more paths will come.
    End {},
    /// Send one file (see [`crate::proto::transfer`]).
    Get(crate::proto::transfer::Get),
    /// List a tree (see [`crate::proto::transfer`]).
    List(crate::proto::transfer::List),
    /// A file's manifest, for `p2p-get --any` (see [`crate::proto::transfer`]).
    Manifest(crate::proto::transfer::AskManifest),
    /// Bytes of a file, for `p2p-get --any` (see [`crate::proto::transfer`]).
    Range(crate::proto::transfer::Range),
}

impl PeerRequest {
    /// The request's `op`, to name it in a log line without its content.
    pub fn op(&self) -> &'static str {
        match self {
            PeerRequest::Join { .. } => "join",
            PeerRequest::Sync { .. } => "sync",
            PeerRequest::Query { .. } => "query",
            PeerRequest::Items { .. } => "items",
            PeerRequest::End {} => "end",
            PeerRequest::Get(_) => "get",
            PeerRequest::List(_) => "list",
            PeerRequest::Manifest(_) => "manifest",
            PeerRequest::Range(_) => "range",
        }
    }
}

/// One path to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PeerItemKeys")]
pub struct PeerItem {
    pub id: u64,
    #[serde(flatten)]
    pub path: PathBytes,
    /// Only these bytes of the file are counted (a query opened with
    /// `ranges`); the answer is then a [`crate::ops::ranges::RangeCount`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<ByteRange>,
}

/// Bytes of a file: `length` bytes from `offset`, each end moved to the
/// next offset that no UTF-8 character crosses (see [`crate::ops::ranges`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByteRange {
    pub offset: u64,
    pub length: u64,
}

/// A [`PeerItem`] as read, key by key (faster than a flattened field).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerItemKeys {
    id: u64,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    path_b64: Option<String>,
    #[serde(default)]
    range: Option<ByteRange>,
}

impl TryFrom<PeerItemKeys> for PeerItem {
    type Error = String;

    fn try_from(k: PeerItemKeys) -> Result<Self, String> {
        Ok(PeerItem {
            id: k.id,
            path: PathBytes::from_json(k.path, k.path_b64.as_deref())?,
            range: k.range,
        })
    }
}

/// The answer to [`PeerRequest::Join`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinReply {
    #[serde(default)]
    pub members: Vec<Node>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The revocation list in force, as news, base64 (as in a sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// With `error`: not a refusal for good; try again later (the name is
    /// held by a member that no longer answers, not yet found down).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry: bool,
}

impl JoinReply {
    /// A join turned down with `error`: for good, or, with `retry`, for now.
    pub fn refusal(error: String, retry: bool) -> JoinReply {
        JoinReply {
            members: Vec::new(),
            error: Some(error),
            revoked: None,
            retry,
        }
    }
}

/// The answer to [`PeerRequest::Sync`]: what the other side knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReply {
    pub members: Vec<Record>,
    /// The revocation list in force, as news, base64 (as in the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// What the answering member sends during a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PeerReply {
    /// The query is being served, under this member name, by this many
    /// workers (absent from a member of an earlier version: one is
    /// assumed), so that `--spread` gives it as many large files at once.
    Accepted {
        peer: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        workers: usize,
    },
    /// Finished items, in the order they finished.
    Results { results: Vec<PeerResult> },
    /// Still computing; nothing finished since the last frame.
    Working,
    /// Every item sent before `End` is answered.
    Done,
    /// The query cannot be served at all.
    Failed { error: Error },
}

/// One finished item: its id and either the result fields of the query kind
/// or `error`, exactly as they will be printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerResult {
    pub id: u64,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Encodes a frame.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain types cannot fail: no maps with non-string
    // keys, no custom serializers that error.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let reqs = [
            PeerRequest::Query {
                kind: QueryKind::Sha256,
                lines_only: false,
                max_line_length: true,
                recursive: true,
                dereference: false,
                posixly_correct: true,
                ranges: true,
            },
            PeerRequest::Items {
                items: vec![
                    PeerItem {
                        id: 7,
                        path: "/srv/a".into(),
                        range: Some(ByteRange {
                            offset: 1 << 40,
                            length: 7,
                        }),
                    },
                    PeerItem {
                        id: 8,
                        path: PathBytes(b"/srv/\xff\\".to_vec()),
                        range: None,
                    },
                ],
            },
            PeerRequest::End {},
        ];
        for r in reqs {
            let bytes = encode(&r);
            assert_eq!(serde_json::from_slice::<PeerRequest>(&bytes).unwrap(), r);
        }
        assert_eq!(
            String::from_utf8(encode(&PeerRequest::End {})).unwrap(),
            r#"{"op":"end"}"#
        );
        let item = PeerItem {
            id: 8,
            path: PathBytes(b"/srv/\xff".to_vec()),
            range: None,
        };
        assert_eq!(
            String::from_utf8(encode(&item)).unwrap(),
            "{\"id\":8,\"path\":\"/srv/\u{fffd}\",\"path_b64\":\"L3Nydi//\"}"
        );
    }

    #[test]
    fn unknown_ops_and_fields_are_refused() {
        for bad in [
            r#"{"op":"shell","cmd":"rm -rf /"}"#,
            r#"{"op":"end","extra":1}"#,
            r#"{"op":"items","items":[{"id":1,"path":"/a","fd":3}]}"#,
            r#"{"op":"items","items":[{"id":1}]}"#,
            r#"{"op":"items","items":[{"id":1,"path_b64":"%%"}]}"#,
            r#"{"op":"items","items":[{"id":1,"path":"/a","range":{"offset":1}}]}"#,
            r#"{"op":"items","items":[{"id":1,"path":"/a","range":{"offset":1,"length":2,"x":3}}]}"#,
            r#"{"op":"items"}"#,
            r#"[1,2,3]"#,
        ] {
            assert!(serde_json::from_str::<PeerRequest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn results_carry_fields_or_error() {
        let text = r#"{"op":"results","results":[{"id":1,"lines":3,"bytes":9},{"id":2,"error":{"code":"not_found","message":"gone"}}]}"#;
        let PeerReply::Results { results } = serde_json::from_str(text).unwrap() else {
            panic!("not results")
        };
        assert_eq!(results[0].id, 1);
        assert_eq!(results[0].fields["lines"], 3);
        assert_eq!(results[1].fields["error"]["code"], "not_found");
    }
}
