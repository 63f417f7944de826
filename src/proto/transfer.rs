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
//! On the local socket the command sends a [`LocalGet`] line
//! (`{"op":"get",...}`) with the descriptor of the file to fill, which it
//! opened itself, and reads [`Reply`] lines back: `sending`, then `end` or
//! `failed`. A [`LocalList`] gets `entries` lines and `listed`.
//!
//! [`PeerRequest::Get`]: crate::proto::peer::PeerRequest::Get
//! [`PeerRequest::List`]: crate::proto::peer::PeerRequest::List

use crate::error::Error;
use crate::proto::{PathBytes, path};
use serde::{Deserialize, Serialize};

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
}
