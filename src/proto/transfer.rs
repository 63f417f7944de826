//! File transfer (`p2p-get`): the frames of one file, or of one tree's
//! listing, inside the encrypted peer session, and the local requests that
//! ask the daemon for them. Sans-IO: encoding and decoding only.
//!
//! On the peer session the asking daemon sends [`PeerRequest::Get`]
//! (a [`Get`]): the member answers [`Reply::Sending`] (the file's size), then
//! data frames of at most [`CHUNK`] bytes, then [`Reply::End`] with the
//! SHA-256 of the whole file, which it hashed as it read, or
//! [`Reply::Failed`] (the file changed while it was sent, a read failed).
//! A file that cannot be sent at all gets [`Reply::Failed`] at once. A data
//! frame is the byte [`DATA`] and the file's bytes; every other frame is a
//! JSON object, which starts with `{`, so one byte tells them apart.
//! [`PeerRequest::List`] (a [`List`]) gets [`Reply::Entries`] frames and
//! [`Reply::Listed`]. Either way the session may carry another request
//! after the last frame.
//!
//! `p2p-get --any` asks each candidate member [`PeerRequest::Manifest`]
//! (a [`AskManifest`]): the member reads the file once and answers
//! [`Reply::Manifest`] (its size, its SHA-256, and the SHA-256 of each
//! fixed-size chunk; see [`chunk_size`]), or [`Reply::Failed`]. Then the
//! asking daemon sends [`PeerRequest::Range`] (a [`Range`]) for one chunk at
//! a time: [`Reply::Sending`], data frames, and [`Reply::Sent`] with the
//! byte count, or [`Reply::Failed`] (the file is no longer the version the
//! manifest describes). The asker checks each chunk against the manifest.
//!
//! On the local socket the command sends a [`LocalGet`] line
//! (`{"op":"get",...}`) with the descriptor of the file to fill, which it
//! opened itself, and reads [`Reply`] lines back: `sending`, then `end` or
//! `failed`. A [`LocalList`] gets `entries` lines and `listed`.
//!
//! A [`LocalGetAny`] gets `sources`, `progress` lines, then `fetched` or
//! `failed`.
//!
//! [`PeerRequest::Get`]: crate::proto::peer::PeerRequest::Get
//! [`PeerRequest::Manifest`]: crate::proto::peer::PeerRequest::Manifest
//! [`PeerRequest::Range`]: crate::proto::peer::PeerRequest::Range
//! [`PeerRequest::List`]: crate::proto::peer::PeerRequest::List

use crate::error::Error;
use crate::proto::{PathBytes, path};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// File bytes in one data frame at most.
pub const CHUNK: usize = 256 << 10;

/// The first byte of a data frame (a JSON frame starts with `{`).
pub const DATA: u8 = 0;

/// Entries of a listing at most: a tree larger than this is refused.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Bytes of JSON in one [`Reply::Entries`] frame, roughly (a frame may
/// exceed it by one entry, which is at most about 6 KiB).
pub const ENTRIES_BYTES: usize = 256 << 10;

/// Asks a member for one file below its exports, from byte `offset` (a
/// transfer picked up again): the member still hashes the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Get {
    #[serde(with = "path::one")]
    pub path: PathBytes,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
}

/// Asks a member for the tree below a directory of its exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct List {
    #[serde(with = "path::one")]
    pub path: PathBytes,
}

/// The smallest chunk of a manifest.
pub const ANY_CHUNK: u64 = 4 << 20;

/// The largest chunk of a manifest: a file that would need larger ones is
/// refused by `--any` (about 750 GiB).
pub const MAX_ANY_CHUNK: u64 = 64 << 20;

/// Chunks in one manifest at most, so that it fits in one frame.
pub const MAX_CHUNKS: u64 = 12_000;

/// The chunk size of a manifest of a file of `size` bytes: [`ANY_CHUNK`],
/// doubled until [`MAX_CHUNKS`] cover the file. Every member computes the
/// same, so manifests of the same content are equal. `None` beyond
/// [`MAX_ANY_CHUNK`].
pub fn chunk_size(size: u64) -> Option<u64> {
    let mut c = ANY_CHUNK;
    while size.div_ceil(c) > MAX_CHUNKS {
        c *= 2;
        if c > MAX_ANY_CHUNK {
            return None;
        }
    }
    Some(c)
}

/// Asks a member for the manifest of one file below its exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskManifest {
    #[serde(with = "path::one")]
    pub path: PathBytes,
}

/// What a member holds at a path: enough to fetch it from several members
/// and check every piece.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub peer: String,
    pub size: u64,
    /// The whole file's SHA-256 (hex).
    pub sha256: String,
    /// Bytes of each chunk but the last.
    pub chunk: u64,
    /// Each chunk's SHA-256 (hex), in order.
    pub chunks: Vec<String>,
}

impl Manifest {
    /// Whether two members hold the same content, as far as their manifests say.
    pub fn same_content(&self, other: &Manifest) -> bool {
        self.size == other.size
            && self.sha256 == other.sha256
            && self.chunk == other.chunk
            && self.chunks == other.chunks
    }

    /// Whether the manifest is whole: as many chunks as its size needs, of
    /// the size every member picks.
    pub fn is_consistent(&self) -> bool {
        chunk_size(self.size) == Some(self.chunk)
            && self.size.div_ceil(self.chunk) == self.chunks.len() as u64
    }

    /// Where chunk `i` starts and how long it is.
    pub fn span(&self, i: usize) -> (u64, u64) {
        let start = i as u64 * self.chunk;
        (start, self.chunk.min(self.size.saturating_sub(start)))
    }
}

/// Asks a member for `length` bytes of a file from `offset`; `size` is the
/// file's size in the manifest, refused as `changed` if it is no longer so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(with = "path::one")]
    pub path: PathBytes,
    pub offset: u64,
    pub length: u64,
    pub size: u64,
}

/// A member whose chunks were written, and how many bytes of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub peer: String,
    pub bytes: u64,
}

/// A member that held the file but was not used, or was dropped mid-way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unused {
    pub peer: String,
    pub error: Error,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a member (or the local daemon, to the command) says about a
/// transfer or a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    /// The file is being sent: `size` bytes as it was opened, from `offset`.
    Sending {
        peer: String,
        size: u64,
        offset: u64,
    },
    /// Every byte is sent: the whole file's length and SHA-256 (hex).
    End { bytes: u64, sha256: String },
    /// Some entries of the tree, in the order of a depth-first walk (a
    /// directory before what it holds).
    Entries { entries: Vec<Entry> },
    /// The listing is complete.
    Listed { peer: String },
    /// Nothing (more) comes: why.
    Failed { error: Error },
    /// A member's manifest of a file.
    Manifest(Manifest),
    /// The last frame of a range: the bytes sent.
    Sent { bytes: u64 },
    /// `--any`: the members the chunks come from, the file's size, and
    /// the members that hold other content (not used).
    Sources {
        sources: Vec<String>,
        size: u64,
        unused: Vec<Unused>,
    },
    /// `--any`: bytes written so far, checked.
    Progress { bytes: u64 },
    /// `--any`: every chunk is written and checked, and the whole file
    /// hashes to `sha256`.
    Fetched {
        bytes: u64,
        sha256: String,
        sources: Vec<Served>,
        unused: Vec<Unused>,
    },
}

/// One entry of a tree: its path below the listed directory and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "path::one")]
    pub path: PathBytes,
    pub kind: Kind,
    /// Bytes of a regular file; 0 for the others.
    #[serde(default)]
    pub size: u64,
}

/// What an entry of a tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// FIFOs, sockets, devices: never sent.
    Other,
}

/// A received frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Bytes of the file, in order.
    Data(&'a [u8]),
    Reply(Reply),
}

/// Reads a frame of a transfer.
pub fn decode(frame: &[u8]) -> Result<Frame<'_>, String> {
    match frame.split_first() {
        Some((&DATA, bytes)) => {
            if bytes.len() > CHUNK {
                return Err(format!("a data frame of {} bytes", bytes.len()));
            }
            Ok(Frame::Data(bytes))
        }
        Some(_) => serde_json::from_slice(frame)
            .map(Frame::Reply)
            .map_err(|e| format!("malformed transfer frame: {e}")),
        None => Err("an empty transfer frame".into()),
    }
}

/// The local request for one file: `peer` sends `path`; the descriptor
/// passed with the line is the file to fill, which the command opened (read
/// and write). With `resume`, what the file holds already is kept, read
/// back and hashed again (never trusted), and only the rest is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalGet {
    pub peer: String,
    #[serde(with = "path::one")]
    pub path: PathBytes,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume: bool,
    /// How long the member may stay silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// The local request for one file that several members hold: the
/// candidates are `peers` (names), or with none every alive member but
/// this one with all of `tags`. The descriptor is passed as with
/// [`LocalGet`]; with `resume`, the chunks the file holds already are
/// checked against the manifest and those that agree are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalGetAny {
    #[serde(with = "path::one")]
    pub path: PathBytes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// The local request for a tree's listing on `peer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalList {
    pub peer: String,
    #[serde(with = "path::one")]
    pub path: PathBytes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// The frame of a data chunk: `buf` holds [`DATA`] at 0 and the bytes after.
pub fn data_frame(buf: &mut [u8]) -> &[u8] {
    if let Some(first) = buf.first_mut() {
        *first = DATA;
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn data_and_replies_are_told_apart_by_their_first_byte() {
        let mut buf = vec![9u8; 5];
        assert_eq!(decode(data_frame(&mut buf)), Ok(Frame::Data(&[9; 4][..])));
        let end = Reply::End {
            bytes: 4,
            sha256: "ab".into(),
        };
        let json = serde_json::to_vec(&end).unwrap();
        assert_eq!(decode(&json), Ok(Frame::Reply(end)));
        assert!(decode(&[]).is_err());
        assert!(decode(b"{\"op\":\"shell\"}").is_err());
        let mut big = vec![0u8; CHUNK + 2];
        assert!(decode(data_frame(&mut big)).is_err());
    }

    #[test]
    fn requests_carry_exact_bytes_and_refuse_unknown_fields() {
        let get = Get {
            path: PathBytes(b"/srv/\xff".to_vec()),
            offset: 7,
        };
        let s = serde_json::to_string(&get).unwrap();
        assert_eq!(
            s,
            r#"{"path":{"path":"/srv/�","path_b64":"L3Nydi//"},"offset":7}"#
        );
        assert_eq!(serde_json::from_str::<Get>(&s).unwrap(), get);
        assert!(serde_json::from_str::<Get>(r#"{"path":"/a","fd":3}"#).is_err());
        assert!(serde_json::from_str::<LocalGet>(r#"{"peer":"a","path":"/a","x":1}"#).is_err());
        let failed = Reply::Failed {
            error: Error::new(ErrorCode::NotFound, "gone"),
        };
        let s = serde_json::to_string(&failed).unwrap();
        assert_eq!(serde_json::from_str::<Reply>(&s).unwrap(), failed);
    }

    #[test]
    fn chunks_grow_so_that_a_manifest_fits_in_a_frame() {
        assert_eq!(chunk_size(0), Some(ANY_CHUNK));
        assert_eq!(chunk_size(1 << 30), Some(ANY_CHUNK));
        assert_eq!(chunk_size(ANY_CHUNK * MAX_CHUNKS), Some(ANY_CHUNK));
        assert_eq!(chunk_size(ANY_CHUNK * MAX_CHUNKS + 1), Some(2 * ANY_CHUNK));
        assert_eq!(chunk_size(MAX_ANY_CHUNK * MAX_CHUNKS), Some(MAX_ANY_CHUNK));
        assert_eq!(chunk_size(MAX_ANY_CHUNK * MAX_CHUNKS + 1), None);
        // The largest manifest is one frame.
        let m = Reply::Manifest(Manifest {
            peer: "x".repeat(255),
            size: u64::MAX,
            sha256: "0".repeat(64),
            chunk: MAX_ANY_CHUNK,
            chunks: vec!["0".repeat(64); MAX_CHUNKS as usize],
        });
        assert!(serde_json::to_vec(&m).unwrap().len() < crate::proto::peer::MAX_FRAME);
    }

    #[test]
    fn a_manifest_spans_its_chunks_and_is_checked_whole() {
        let m = Manifest {
            peer: "a".into(),
            size: ANY_CHUNK * 2 + 5,
            sha256: String::new(),
            chunk: ANY_CHUNK,
            chunks: vec![String::new(); 3],
        };
        assert!(m.is_consistent());
        assert_eq!(m.span(0), (0, ANY_CHUNK));
        assert_eq!(m.span(2), (2 * ANY_CHUNK, 5));
        let short = Manifest {
            chunks: vec![String::new(); 2],
            ..m.clone()
        };
        assert!(!short.is_consistent());
        let odd = Manifest {
            chunk: 1000,
            ..m.clone()
        };
        assert!(!odd.is_consistent());
        assert!(m.same_content(&Manifest {
            peer: "b".into(),
            ..m.clone()
        }));
        assert!(!m.same_content(&Manifest {
            sha256: "x".into(),
            ..m.clone()
        }));
        let json = serde_json::to_string(&Reply::Manifest(m.clone())).unwrap();
        assert!(json.starts_with(r#"{"op":"manifest""#), "{json}");
        assert_eq!(
            serde_json::from_str::<Reply>(&json).unwrap(),
            Reply::Manifest(m)
        );
    }
}
