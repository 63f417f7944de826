//! SHA-256 of a file, with the CPU's SHA extensions where present.
//!
//! The `sha2` crate picks its SHA-NI implementation at run time (through
//! `cpufeatures`); reading happens on a second thread so that hashing, the
//! bottleneck, never waits for the copy out of the page cache.

use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io;

/// A SHA-256 digest and the number of bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    pub sha256: [u8; 32],
    pub bytes: u64,
}

impl Digest {
    /// Lower-case hex, as `sha256sum` prints it.
    pub fn hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// Lower-case hex of any bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// An incremental SHA-256 that also counts bytes.
#[derive(Default, Clone)]
pub struct Hasher {
    inner: Sha256,
    bytes: u64,
}

impl Hasher {
    pub fn update(&mut self, buf: &[u8]) {
        self.inner.update(buf);
        self.bytes += buf.len() as u64;
    }

    /// The bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn finish(self) -> Digest {
        Digest {
            sha256: self.inner.finalize().into(),
            bytes: self.bytes,
        }
    }
}

/// Hashes an open file from its current offset to its end.
pub fn sha256_file(file: &File) -> io::Result<Digest> {
    let mut h = Hasher::default();
    hash_into(file, &mut h, super::NO_LIMIT, super::Place::of(file)?)?;
    Ok(h.finish())
}

/// Adds at most `limit` bytes of `file`, from its offset (at `place`, for
/// a regular file), to `h`.
pub(crate) fn hash_into(
    file: &File,
    h: &mut Hasher,
    limit: u64,
    place: Option<super::Place>,
) -> io::Result<()> {
    if super::span(place, limit) < super::PIPE_MIN {
        super::read_all(file, limit, super::Place::read_at(place), |chunk| {
            h.update(chunk)
        })
    } else {
        super::pipelined(file, limit, |chunk| h.update(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    #[test]
    fn known_digests() {
        let mut f = tempfile::tempfile().unwrap();
        let d = sha256_file(&f).unwrap();
        assert_eq!(
            d.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.bytes, 0);
        f.write_all(b"abc").unwrap();
        f.rewind().unwrap();
        let d = sha256_file(&f).unwrap();
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.bytes, 3);
    }

    #[test]
    fn multi_chunk_file_matches_one_shot() {
        let data: Vec<u8> = (0..3_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        f.rewind().unwrap();
        let d = sha256_file(&f).unwrap();
        let expected: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(d.sha256, expected);
        assert_eq!(d.bytes, data.len() as u64);
    }
}
