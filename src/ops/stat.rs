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
    if file.metadata()?.len() < super::PIPE_MIN {
        let (mut c, mut h) = (WcCounter::new(), Hasher::default());
        super::read_all(file, |chunk| {
            c.update(chunk);
            h.update(chunk);
        })?;
        return Ok((c.finish(), h.finish()));
    }
    let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(2);
    std::thread::scope(|scope| {
        let counter = scope.spawn(move || {
            let mut c = WcCounter::new();
            for chunk in rx {
                c.update(&chunk);
            }
            c.finish()
        });
        let mut h = Hasher::default();
        let read = super::pipelined(file, |chunk| {
            // If the counter died, its join below reports it.
            let _ = tx.send(Arc::clone(chunk));
            h.update(chunk);
        });
        drop(tx);
        let counts = counter
            .join()
            .map_err(|_| io::Error::other("counting thread failed"))?;
        read?;
        Ok((counts, h.finish()))
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
