//! Counts and digest of a file in one read.
//!
//! The file is read once, on its own thread; each chunk goes to a counting
//! thread and is hashed here, so the whole runs at about the speed of the
//! slower of the two rather than their sum.

use super::sha::{Digest, Hasher};
use super::wc::{WcCounter, WcCounts};
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::mpsc::sync_channel;

/// Reads the file once and returns both its `wc` counts and its SHA-256.
pub fn wc_and_sha256(file: &File) -> io::Result<(WcCounts, Digest)> {
    let (mut c, mut h) = (WcCounter::new(), Hasher::default());
    both_into(file, &mut c, &mut h, super::NO_LIMIT)?;
    Ok((c.finish(), h.finish()))
}

/// Adds at most `limit` bytes of `file`, from its offset, to the counter and
/// to the hash.
pub(crate) fn both_into(
    file: &File,
    c: &mut WcCounter,
    h: &mut Hasher,
    limit: u64,
) -> io::Result<()> {
    if super::span(file, limit)? < super::PIPE_MIN {
        return super::read_all(file, limit, |chunk| {
            c.update(chunk);
            h.update(chunk);
        });
    }
    let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(2);
    std::thread::scope(|scope| {
        let counter = scope.spawn(move || {
            for chunk in rx {
                c.update(&chunk);
            }
        });
        let read = super::pipelined(file, limit, |chunk| {
            // If the counter died, its join below reports it.
            let _ = tx.send(Arc::clone(chunk));
            h.update(chunk);
        });
        drop(tx);
        counter
            .join()
            .map_err(|_| io::Error::other("counting thread failed"))?;
        read
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    #[test]
    fn same_as_separate_passes() {
        let data = "line one\nzwei wörter\n\u{3000}三\n".repeat(100_000);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data.as_bytes()).unwrap();
        f.rewind().unwrap();
        let (c, d) = wc_and_sha256(&f).unwrap();
        assert_eq!(c, super::super::wc::count_slice(data.as_bytes()));
        f.rewind().unwrap();
        assert_eq!(d, super::super::sha::sha256_file(&f).unwrap());
    }
}
