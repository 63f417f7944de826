//! The local protocol between the commands and `p2pd`: JSON lines on a Unix socket.
//!
//! A client writes one [`Request`] line. A query request either lists its
//! `paths` inline (handy with `socat`) or is followed by one [`ItemRequest`]
//! line per path and a final `{"end":true}`; items may carry an open
//! descriptor (see [`crate::fdpass`]). The items may follow the request at once,
//! in the same message, without waiting for the acceptance. The daemon answers with one result line
//! per item, in the order they finish, each tagged with the client's `id`, then
//! one [`Summary`] line. A request that cannot be served at all gets a single
//! `{"error":{...}}` line and the connection is closed.
//!
//! Every path is bytes ([`PathBytes`]): a name that is not UTF-8 travels as
//! `path_b64` beside a readable `path` (see [`path`]).
//!
//! [`peer`] is the protocol between members, inside their sessions;
//! [`beacon`] the sealed datagram of LAN discovery.

pub mod beacon;
pub mod chunks;
pub mod path;
pub mod peer;
pub mod transfer;

pub use path::PathBytes;

use crate::error::Error;
use crate::ops::count::DirCounts;
use crate::ops::wc::WcCounts;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest request line the daemon accepts.
pub const MAX_LINE: usize = 1 << 20;

/// What a client may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// A file query; see [`Query`].
    Query(Query),
    /// Who is answering: the daemon's name and version.
    Hello,
    /// The member list; with `watch`, a stream of changes instead.
    Peers {
        #[serde(default)]
        watch: bool,
    },
    /// Join the cluster through these addresses.
    Join { addrs: Vec<String> },
    /// Leave the cluster and exit (the daemon's own user or root only).
    Leave,
    /// The daemon's counters, as one object (`p2p-status`; see
    /// [`crate::daemon::counters::Status`]).
    Status,
    /// Install this revocation list of the CA (`p2p-revoke`; the daemon's
    /// own user or root only).
    Revoke { list: String },
    /// Fill the passed descriptor with a member's file (`p2p-get`).
    Get(transfer::LocalGet),
    /// A member's tree, for `p2p-get -r`.
    List(transfer::LocalList),
    /// Fill the passed descriptor with a file several members hold
    /// (`p2p-get --any`).
    GetAny(transfer::LocalGetAny),
}

/// The reply to [`Request::Revoke`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeReply {
    /// Serials the list in force revokes.
    pub revoked: usize,
    pub peer: String,
}

/// The reply to [`Request::Leave`], sent before the daemon goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveReply {
    pub left: bool,
    pub peer: String,
}

/// The answer for one address of a [`Request::Join`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResult {
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Error>,
}

/// Which computation a query runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    Wc,
    Sha256,
    Count,
    Stat,
}

/// A file query and its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    pub kind: QueryKind,
    /// `wc`: count lines (and bytes) only, at memory speed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub lines_only: bool,
    /// `wc -c` alone: bytes only, from the size of a file whose size can be trusted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub bytes_only: bool,
    /// `wc`: also find the longest line's display width (`wc -L`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub max_line_length: bool,
    /// `count`: descend into subdirectories.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recursive: bool,
    /// `stat`: describe what a symlink points to rather than the link.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dereference: bool,
    /// `wc`: POSIXLY_CORRECT was set in the command's environment, so the
    /// no-break spaces are parts of words, as GNU `wc` then counts them.
    /// Absent when false; a daemon of an earlier version ignores it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub posixly_correct: bool,
    /// Directory that relative paths of descriptor-less items are resolved
    /// against: a string, or `{"path", "path_b64"}` when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "path::value")]
    pub cwd: Option<PathBytes>,
    /// Inline paths, each a string or `{"path", "path_b64"}`; when present
    /// no item lines follow.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "path::list")]
    pub paths: Option<Vec<PathBytes>>,
    /// Where the query runs; absent means on this host, with the caller's rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// Which members answer a query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// These members, by name or HOST:PORT; one line per member per path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Every alive member, this one included; one line per member per path.
    #[serde(default, skip_serializing_if = "is_false")]
    pub all: bool,
    /// Each path once, by whichever member is free.
    #[serde(default, skip_serializing_if = "is_false")]
    pub spread: bool,
    /// With `all` or `spread`: only members carrying every one of these tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// How long a member may stay silent before its items are given up (or,
    /// with `spread`, handed to another member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One path of a streamed query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ItemRequestKeys")]
pub struct ItemRequest {
    pub id: u64,
    /// The path as the user wrote it, byte for byte (`path`, and `path_b64`
    /// when it is not UTF-8; see [`path`]); shown back in the result.
    #[serde(flatten)]
    pub path: PathBytes,
    /// True when an open descriptor for this path was passed with the line.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fd: bool,
    /// True when the command opened that descriptor for this item alone: it
    /// is at offset 0 and shared with nobody, so the daemon reads a small
    /// file at explicit offsets from 0 (pread) instead of asking its offset.
    /// A descriptor at another offset is then still read whole, which is
    /// what the cache may keep. Standard input is never `own`: GNU `wc`
    /// reads it from its current offset.
    #[serde(default, skip_serializing_if = "is_false")]
    pub own: bool,
    /// A count of a placement that includes this node, for a caller other
    /// than the daemon's user: the counts the command took itself on that
    /// descriptor, which this node gives as its answer (it walks no
    /// directory for such a caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted: Option<Outcome<DirCounts>>,
}

/// An [`ItemRequest`] as read: its keys one by one, which parses at the
/// speed of a plain struct (a flattened field would buffer every line).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemRequestKeys {
    id: u64,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    path_b64: Option<String>,
    #[serde(default)]
    fd: bool,
    #[serde(default)]
    own: bool,
    #[serde(default)]
    counted: Option<Outcome<DirCounts>>,
}

impl TryFrom<ItemRequestKeys> for ItemRequest {
    type Error = String;

    fn try_from(k: ItemRequestKeys) -> Result<Self, String> {
        Ok(ItemRequest {
            id: k.id,
            path: PathBytes::from_json(k.path, k.path_b64.as_deref())?,
            fd: k.fd,
            own: k.own,
            counted: k.counted,
        })
    }
}

impl ItemRequest {
    /// Reads one item line: what `serde_json::from_slice` gives, faster for
    /// the line the commands write (`{"id":N,"path":"…","fd":true,"own":true}`
    /// with a name that needs no escape), which is read by hand; any other
    /// line goes to the derived reader, errors and all.
    pub fn from_line(line: &[u8]) -> serde_json::Result<ItemRequest> {
        ItemRequest::fast(line).map_or_else(|| serde_json::from_slice(line), Ok)
    }

    fn fast(line: &[u8]) -> Option<ItemRequest> {
        let mut s = Scan(line);
        s.lit(b"{\"id\":")?;
        let id = s.uint()?;
        s.lit(b",\"path\":")?;
        let path = s.plain_str()?.as_bytes().to_vec();
        let fd = s.lit(b",\"fd\":true").is_some();
        let own = s.lit(b",\"own\":true").is_some();
        s.lit(b"}")?;
        s.0.is_empty().then_some(ItemRequest {
            id,
            path: PathBytes(path),
            fd,
            own,
            counted: None,
        })
    }

    /// Appends this item as one line, the very bytes `serde_json` writes
    /// for it, faster for a name that is UTF-8 and nothing counted.
    pub fn write_line(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match (self.path.to_str(), &self.counted) {
            (Some(text), None) => {
                out.extend_from_slice(b"{\"id\":");
                // Writing to a Vec cannot fail.
                let _ = std::io::Write::write_fmt(out, format_args!("{}", self.id));
                out.extend_from_slice(b",\"path\":");
                serde_json::to_writer(&mut *out, text)?;
                if self.fd {
                    out.extend_from_slice(b",\"fd\":true");
                }
                if self.own {
                    out.extend_from_slice(b",\"own\":true");
                }
                out.push(b'}');
            }
            _ => serde_json::to_writer(&mut *out, self)?,
        }
        out.push(b'\n');
        Ok(())
    }
}

/// A cursor over the bytes of one JSON line, for the hand-read lines: each
/// step takes what it expects or gives `None` and leaves the rest alone.
struct Scan<'a>(&'a [u8]);

impl<'a> Scan<'a> {
    /// Takes exactly `want`.
    fn lit(&mut self, want: &[u8]) -> Option<()> {
        let rest = self.0.strip_prefix(want)?;
        self.0 = rest;
        Some(())
    }

    /// Takes an unsigned integer as JSON writes it (no sign, no leading
    /// zero, no fraction or exponent after it), that fits a u64.
    fn uint(&mut self) -> Option<u64> {
        let digits = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && self.0[0] == b'0') {
            return None;
        }
        if matches!(self.0.get(digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut n = 0u64;
        for &d in &self.0[..digits] {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.0 = &self.0[digits..];
        Some(n)
    }

    /// Takes a string with nothing escaped in it (no backslash, no control
    /// character) that is valid UTF-8.
    fn plain_str(&mut self) -> Option<&'a str> {
        let rest = self.0.strip_prefix(b"\"")?;
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] != b'"' || rest[..end].iter().any(|&b| b < 0x20) {
            return None;
        }
        let text = std::str::from_utf8(&rest[..end]).ok()?;
        self.0 = &rest[end + 1..];
        Some(text)
    }
}

/// The line that ends a streamed query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    pub end: bool,
}

/// The first line of every query reply: the request is being served, by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub accepted: bool,
    /// The name results from this daemon carry.
    pub peer: String,
}

/// The last line of every query reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub done: bool,
    pub ok: u64,
    pub failed: u64,
}

/// One line of the member list (`p2p-peers`): the member, and with a CA,
/// the groups and expiry of its certificate once this daemon verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    #[serde(flatten)]
    pub member: crate::membership::MemberInfo,
    /// The certificate's groups (may be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// The certificate's not-after, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_expires: Option<String>,
}

impl Listed {
    /// `member` with what `cert` (if verified) says about it.
    pub fn new(
        member: crate::membership::MemberInfo,
        cert: Option<&crate::crypto::cert::CertBody>,
    ) -> Listed {
        Listed {
            member,
            groups: cert.map(|c| c.groups.clone()),
            cert_expires: cert.map(|c| crate::crypto::cert::show_time(c.not_after)),
        }
    }
}

/// The reply to [`Request::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    pub name: String,
    pub version: String,
}

/// A whole-request failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFailed {
    pub error: Error,
}

/// One result line: which item, who computed it, and its outcome. This is
/// also exactly what the commands print, without `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub peer: String,
    /// `path`, and `path_b64` when the name is not UTF-8 (see [`path`]).
    #[serde(flatten)]
    pub path: PathBytes,
    #[serde(flatten)]
    pub outcome: Outcome<T>,
}

impl<T: serde::de::DeserializeOwned> Item<T> {
    /// Reads one result line: what `serde_json::from_slice` gives, faster.
    /// The derived reader gathers every key of the line into owned values
    /// for its flattened parts and reads `Outcome` from those (twice for a
    /// result); here the line is read twice in place instead, once for the
    /// item's own keys and once as the fields `T`, each skipping the other's.
    /// A line this cannot read is read by the derived reader, so that what
    /// it gives, and its errors, stay exactly those.
    pub fn from_line(line: &[u8]) -> serde_json::Result<Item<T>> {
        Item::fast(line).map_or_else(|| serde_json::from_slice(line), Ok)
    }

    fn fast(line: &[u8]) -> Option<Item<T>> {
        Item::plain(line).or_else(|| Item::keyed(line))
    }

    /// The line as the daemon writes a result whose names need no escape
    /// (`{"id":N,"peer":"…","path":"…",` and the fields): the item's own
    /// keys taken by hand, the fields read as `T` from what follows them.
    fn plain(line: &[u8]) -> Option<Item<T>> {
        let mut s = Scan(line);
        s.lit(b"{\"id\":")?;
        let id = s.uint()?;
        s.lit(b",\"peer\":")?;
        let peer = s.plain_str()?;
        s.lit(b",\"path\":")?;
        let path = s.plain_str()?;
        // What follows is the fields' keys.
        let keys = match s.0 {
            [b',', keys @ ..] if keys.first() == Some(&b'"') => keys,
            _ => return None,
        };
        // A key of the item's own among them (an error, a second name, a
        // path_b64) is for the derived reader to judge; so is a field's
        // value that looks like one.
        // (Each looked for where a quote opens, in one pass over the quotes.)
        let item_key = memchr::memchr_iter(b'"', keys).any(|at| {
            let after = &keys[at + 1..];
            [&b"error\""[..], b"path", b"peer\"", b"id\""]
                .iter()
                .any(|key| after.starts_with(key))
        });
        if item_key {
            return None;
        }
        let mut fields = Vec::with_capacity(keys.len() + 1);
        fields.push(b'{');
        fields.extend_from_slice(keys);
        let fields: T = serde_json::from_slice(&fields).ok()?;
        Some(Item {
            id: Some(id),
            peer: peer.to_string(),
            path: PathBytes(path.as_bytes().to_vec()),
            outcome: Outcome::Ok(fields),
        })
    }

    /// Any other line the derived reader would read alike: its item keys
    /// by one read, its fields by another.
    fn keyed(line: &[u8]) -> Option<Item<T>> {
        use std::borrow::Cow;
        /// The keys of an item that are not its fields.
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(default)]
            id: Option<u64>,
            peer: String,
            #[serde(default, borrow)]
            path: Option<Cow<'a, str>>,
            #[serde(default, borrow)]
            path_b64: Option<Cow<'a, str>>,
            #[serde(default)]
            error: Option<Error>,
        }
        let head: Head = serde_json::from_slice(line).ok()?;
        let path =
            PathBytes::from_json(head.path.map(Cow::into_owned), head.path_b64.as_deref()).ok()?;
        let outcome = match head.error {
            Some(error) => Outcome::Failed { error },
            None => Outcome::Ok(serde_json::from_slice(line).ok()?),
        };
        Some(Item {
            id: head.id,
            peer: head.peer,
            path,
            outcome,
        })
    }
}

/// A result or the reason there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Outcome<T> {
    Failed { error: Error },
    Ok(T),
}

/// `p2p-wc` fields; a field not asked for is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WcFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chars: Option<u64>,
    /// The longest line's display width, with `-L`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_line_length: Option<u64>,
    /// The file kept changing while it was read: the counts are of no one
    /// version of it. Absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub changed: bool,
}

impl WcFields {
    /// All four counts.
    pub fn all(c: &WcCounts) -> Self {
        WcFields {
            lines: Some(c.lines),
            words: Some(c.words),
            bytes: Some(c.bytes),
            chars: Some(c.chars),
            max_line_length: None,
            changed: false,
        }
    }

    /// Lines and bytes, the two that need no decoding.
    pub fn lines_and_bytes(c: &WcCounts) -> Self {
        WcFields {
            lines: Some(c.lines),
            bytes: Some(c.bytes),
            ..Default::default()
        }
    }
}

/// `p2p-sha256` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShaFields {
    pub sha256: String,
    pub bytes: u64,
    /// The file kept changing while it was read: the counts are of no one
    /// version of it. Absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub changed: bool,
}

/// `p2p-count` fields.
pub type CountFields = DirCounts;

/// `p2p-stat` fields: metadata always, content fields for regular files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatFields {
    /// `file`, `directory`, `symlink`, `fifo`, `socket`, `char_device` or `block_device`.
    #[serde(rename = "type")]
    pub file_type: String,
    pub size: u64,
    /// Permission bits in octal, as `stat -c %a` prints them with four digits.
    pub mode: String,
    /// Modification time, RFC 3339 in UTC.
    pub mtime: String,
    /// A symlink's target (readlink), for a link that was not followed;
    /// readable like `path` when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The target's exact bytes in base64 when they are not UTF-8, as `path_b64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_b64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The owner's name on the member that answers; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The group's name on the member that answers; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlink: Option<u64>,
    /// Last access, RFC 3339 in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<String>,
    /// Last status change, RFC 3339 in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime: Option<String>,
    /// Creation time (statx STATX_BTIME), where the filesystem keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chars: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The file kept changing while it was read: the counts are of no one
    /// version of it. Absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub changed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    /// The fast reader of result lines gives what the derived one gives, or
    /// the same failure, whatever the line.
    #[test]
    fn result_lines_read_fast_as_the_derived_reader_reads_them() {
        fn same<T>(line: &str)
        where
            T: serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let fast = Item::<T>::from_line(line.as_bytes());
            let derived = serde_json::from_slice::<Item<T>>(line.as_bytes());
            match (&fast, &derived) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{line}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{line}"),
                _ => panic!("{line}: fast {fast:?}, derived {derived:?}"),
            }
        }
        let wc = [
            r#"{"id":3,"peer":"a:1","path":"/t/x","lines":1,"words":2,"bytes":3,"chars":3}"#,
            r#"{"peer":"a:1","path":"x","bytes":3}"#,
            r#"{"id":1,"peer":"a","path":"caf\u00e9 \"q\"\n","lines":1,"changed":true}"#,
            r#"{"id":1,"peer":"a","path":"\ufffd","path_b64":"/w==","lines":0}"#,
            r#"{"id":1,"peer":"a","path":"x","path_b64":"not base64!","lines":0}"#,
            r#"{"id":2,"peer":"a","path":"x","error":{"code":"not_found","message":"No such file or directory"}}"#,
            r#"{"id":2,"peer":"a","path":"x","error":null,"lines":4}"#,
            r#"{"id":2,"peer":"a","path":"x","error":7,"lines":4}"#,
            r#"{"id":2,"peer":"a","path":"x","lines":4,"lines":5}"#,
            r#"{"id":2,"peer":"a","path":"x","path":"y","lines":4}"#,
            r#"{"id":2,"path":"x","lines":4}"#,
            r#"{"id":2,"peer":"a","lines":4}"#,
            r#"{"id":-1,"peer":"a","path":"x"}"#,
            r#"{"id":2,"peer":"a","path":"x","lines":"4"}"#,
            r#"{"id":2,"peer":"a","path":"x","lines":4} trailing"#,
            r#"{"id":2,"peer":"a","path":"x","lines":4,"peer":"b"}"#,
            r#"{"id":2,"peer":"a","path":"x","lines":4,"id":3}"#,
            r#"{"id":2,"peer":"a","path":"x","lines":4,"path_b64":"/w=="}"#,
            r#"{"id":2,"peer":"a","path":"x","lines":4,"error":{"code":"internal","message":"m"}}"#,
            r#"{"id":2,"peer":"a","path":"x","words":1,"bytes":9,"chars":8,"max_line_length":3}"#,
            r#"{"id":2,"peer":"a","path":"x"}"#,
            r#"{"id":2,"peer":"a","path":"x",}"#,
            r#"{"id":02,"peer":"a","path":"x","lines":4}"#,
            r#"{"summary":true}"#,
            r#"not json"#,
        ];
        for line in wc {
            same::<WcFields>(line);
        }
        same::<ShaFields>(r#"{"id":0,"peer":"a","path":"f","sha256":"00","bytes":1}"#);
        same::<ShaFields>(r#"{"id":0,"peer":"a","path":"f","bytes":1}"#);
        same::<DirCounts>(
            r#"{"id":0,"peer":"a","path":"d","files":1,"dirs":2,"symlinks":0,"other":0,"bytes":9,"recursive":true,"unreadable":1,"unreadable_dirs":[{"path":"d/x","error":"Permission denied"}]}"#,
        );
        same::<StatFields>(
            r#"{"id":0,"peer":"a","path":"l","file_type":"symlink","size":1,"mode":"0777","mtime":"2020-01-01T00:00:00Z","target":"error"}"#,
        );
    }

    #[test]
    fn item_lines_written_and_read_by_hand_are_what_serde_writes_and_reads() {
        let names: [&[u8]; 6] = [
            b"/tmp/a b.txt",
            "café".as_bytes(),
            b"new\nline",
            b"quote\"back\\",
            b"\xff\xfe",
            b"",
        ];
        for name in names {
            for (fd, own) in [(false, false), (true, false), (true, true), (false, true)] {
                let req = ItemRequest {
                    id: 1234567,
                    path: PathBytes(name.to_vec()),
                    fd,
                    own,
                    counted: None,
                };
                let mut line = Vec::new();
                req.write_line(&mut line).unwrap();
                let mut want = serde_json::to_vec(&req).unwrap();
                want.push(b'\n');
                assert_eq!(line, want, "{name:?}");
                line.pop();
                assert_eq!(ItemRequest::from_line(&line).unwrap(), req, "{name:?}");
            }
        }
        // What the hand reader does not take goes to serde, errors and all.
        let others: [&[u8]; 9] = [
            br#"{"id":01,"path":"x"}"#,
            br#"{"id":1.0,"path":"x"}"#,
            br#"{"id":18446744073709551616,"path":"x"}"#,
            br#"{"id":1,"path":"x","fd":true,"evil":1}"#,
            br#"{"id":1,"path":"x"} "#,
            br#"{"id":1,"path":"x","own":true,"fd":true}"#,
            br#"{"id":7,"fd":true,"path":"x"}"#,
            b"{\"id\":1,\"path\":\"a\tb\"}",
            b"{\"id\":1,\"path\":\"\xff\"}",
        ];
        for line in others {
            assert_eq!(
                ItemRequest::from_line(line).map_err(|e| e.to_string()),
                serde_json::from_slice::<ItemRequest>(line).map_err(|e| e.to_string()),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn inline_query_parses() {
        let r: Request =
            serde_json::from_str(r#"{"op":"query","kind":"wc","paths":["/etc/hosts"]}"#).unwrap();
        let Request::Query(q) = r else {
            panic!("not a query")
        };
        assert_eq!(q.kind, QueryKind::Wc);
        assert_eq!(q.paths.unwrap(), vec![PathBytes::from("/etc/hosts")]);
        assert!(!q.lines_only);
    }

    #[test]
    fn item_round_trips_with_error_and_fields() {
        let ok = Item {
            id: Some(3),
            peer: "a".into(),
            path: "p".into(),
            outcome: Outcome::Ok(ShaFields {
                sha256: "ab".into(),
                bytes: 2,
                changed: false,
            }),
        };
        let s = serde_json::to_string(&ok).unwrap();
        assert_eq!(
            s,
            r#"{"id":3,"peer":"a","path":"p","sha256":"ab","bytes":2}"#
        );
        assert_eq!(serde_json::from_str::<Item<ShaFields>>(&s).unwrap(), ok);

        let failed: Item<ShaFields> = Item {
            id: None,
            peer: "a".into(),
            path: "p".into(),
            outcome: Outcome::Failed {
                error: Error::new(ErrorCode::NotFound, "gone"),
            },
        };
        let s = serde_json::to_string(&failed).unwrap();
        assert_eq!(
            s,
            r#"{"peer":"a","path":"p","error":{"code":"not_found","message":"gone"}}"#
        );
        assert_eq!(serde_json::from_str::<Item<ShaFields>>(&s).unwrap(), failed);
    }

    #[test]
    fn unknown_item_fields_are_rejected() {
        assert!(serde_json::from_str::<ItemRequest>(r#"{"id":1,"path":"x","evil":1}"#).is_err());
        assert!(serde_json::from_str::<ItemRequest>(r#"{"id":1}"#).is_err());
    }

    #[test]
    fn a_name_that_is_not_utf8_travels_as_path_and_path_b64() {
        let req = ItemRequest {
            id: 1,
            path: PathBytes(b"/srv/\xff\n".to_vec()),
            fd: true,
            own: false,
            counted: None,
        };
        let s = serde_json::to_string(&req).unwrap();
        assert_eq!(
            s,
            "{\"id\":1,\"path\":\"/srv/\u{fffd}\\n\",\"path_b64\":\"L3Nydi//Cg==\",\"fd\":true}"
        );
        assert_eq!(serde_json::from_str::<ItemRequest>(&s).unwrap(), req);
        let by_hand: ItemRequest =
            serde_json::from_str(r#"{"id":2,"path_b64":"L3Nydi//Cg=="}"#).unwrap();
        assert_eq!(by_hand.path, req.path);
        // What else an item carries survives the key-by-key reading.
        let counted = ItemRequest {
            counted: Some(Outcome::Ok(DirCounts {
                files: 3,
                ..Default::default()
            })),
            ..req.clone()
        };
        let s = serde_json::to_string(&counted).unwrap();
        assert_eq!(serde_json::from_str::<ItemRequest>(&s).unwrap(), counted);

        let item: Item<ShaFields> = Item {
            id: None,
            peer: "a".into(),
            path: PathBytes(b"\xe9t\xe9".to_vec()),
            outcome: Outcome::Ok(ShaFields {
                sha256: "ab".into(),
                bytes: 2,
                changed: false,
            }),
        };
        let s = serde_json::to_string(&item).unwrap();
        assert_eq!(
            s,
            "{\"peer\":\"a\",\"path\":\"\u{fffd}t\u{fffd}\",\"path_b64\":\"6XTp\",\"sha256\":\"ab\",\"bytes\":2}"
        );
        assert_eq!(serde_json::from_str::<Item<ShaFields>>(&s).unwrap(), item);
    }

    #[test]
    fn inline_paths_and_cwd_may_be_bytes() {
        let r: Request = serde_json::from_str(
            r#"{"op":"query","kind":"sha256","cwd":{"path_b64":"L3T/"},"paths":["a",{"path_b64":"/w=="}]}"#,
        )
        .unwrap();
        let Request::Query(q) = r else {
            panic!("not a query")
        };
        assert_eq!(q.cwd, Some(PathBytes(b"/t\xff".to_vec())));
        assert_eq!(q.paths, Some(vec!["a".into(), PathBytes(vec![0xff])]));
        let again: Request =
            serde_json::from_slice(&serde_json::to_vec(&Request::Query(q.clone())).unwrap())
                .unwrap();
        assert_eq!(again, Request::Query(q));
    }
}
