//! One read of a file's content, done in slices: the `wc` counts, the line
//! count, the SHA-256 or counts and digest together, with the running state
//! carried from slice to slice, so that a large file can give up its worker
//! between slices and still get exactly the result of one pass.
//!
//! A slice ends on a [`wc::seam`], a byte that no UTF-8 sequence crosses;
//! the counter joins the word that may go on across it (as the ranges of one
//! parallel count are joined), and the hasher takes bytes in any pieces.
//!
//! Within a slice, the read goes in chunks of [`CHUNK`] bytes, and between
//! two of them a [`Watch`] is told what was read and may stop the read: a
//! query whose asker went away stops within one chunk (tens of
//! milliseconds of work), not at the end of the slice.

use super::sha::{self, Digest, Hasher};
use super::wc::{self, WcCounter, WcCounts};
use super::{NO_LIMIT, Place, stat};
use std::fs::File;
use std::io::{self, Seek};

/// Most bytes read between two calls of [`Watch::read`]: about 40 ms of
/// SHA-256 with the SHA extensions, less of `wc` on two cores. Each chunk of
/// a large file restarts the reading threads, a fraction of a percent of
/// the chunk's time.
pub const CHUNK: u64 = 64 << 20;

/// Told, between chunks of a read, how many bytes the chunk read; returns
/// false to stop the read, which then fails with [`cancelled`].
pub trait Watch {
    fn read(&self, bytes: u64) -> bool;
}

/// Watches nothing and never stops a read.
pub struct Unwatched;

impl Watch for Unwatched {
    fn read(&self, _bytes: u64) -> bool {
        true
    }
}

/// The error of a read a [`Watch`] stopped.
pub fn cancelled() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, Cancelled)
}

/// True for the error of a read a [`Watch`] stopped.
pub fn is_cancelled(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
}

/// The cause inside [`cancelled`]'s error.
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the read was cancelled: nobody waits for its answer")
    }
}

impl std::error::Error for Cancelled {}

/// Where `file`'s offset is and how large it says it is, trusted no further.
fn place_of(file: &File) -> io::Result<Place> {
    Ok(Place {
        at: (&*file).stream_position()?,
        size: file.metadata()?.len(),
        exact: false,
        positional: false,
    })
}

/// What a pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Lines and bytes only (`wc -l`).
    Lines,
    /// Bytes only (`wc -c` of a stream).
    Bytes,
    /// All four `wc` counts.
    Wc,
    /// The four counts and the longest line's display width (`wc -L`).
    WcWidth,
    Sha256,
    /// The four counts and the digest, in one read.
    WcSha256,
}

/// What a finished pass found; the fields its [`Want`] asked for are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Found {
    pub lines: Option<u64>,
    /// The bytes read, for [`Want::Lines`] and [`Want::Bytes`].
    pub bytes: Option<u64>,
    pub wc: Option<WcCounts>,
    pub sha256: Option<Digest>,
    pub max_line_length: Option<u64>,
}

/// A pass under way: reads on from the file's offset, one slice per [`Pass::step`].
#[derive(Clone)]
pub struct Pass {
    want: Want,
    counter: WcCounter,
    hasher: Hasher,
    /// Lines and bytes of a stream read for [`Want::Lines`] or [`Want::Bytes`].
    lines: u64,
    bytes: u64,
}

impl Pass {
    pub fn new(want: Want) -> Pass {
        Pass {
            want,
            counter: if want == Want::WcWidth {
                WcCounter::with_width()
            } else {
                WcCounter::new()
            },
            hasher: Hasher::default(),
            lines: 0,
            bytes: 0,
        }
    }

    /// This pass, counting words by the POSIXLY_CORRECT rule if `on` (see
    /// [`WcCounter::posixly_correct`]).
    pub fn posixly_correct(mut self, on: bool) -> Pass {
        self.counter = self.counter.posixly_correct(on);
        self
    }

    /// The bytes this pass has read so far.
    fn consumed(&self) -> u64 {
        match self.want {
            Want::Lines => self.counter.bytes() + self.bytes,
            Want::Bytes => self.bytes,
            Want::Wc | Want::WcWidth => self.counter.bytes(),
            Want::Sha256 | Want::WcSha256 => self.hasher.bytes(),
        }
    }

    /// Reads the next slice of a stream (see [`super::source`]), at most
    /// `budget` bytes, sequentially: no size, seek or range is trusted.
    /// Returns whether the end was reached; false may also mean that no data
    /// came for a while, and the pass should be resumed later.
    pub fn step_stream(&mut self, file: &File, budget: u64) -> io::Result<bool> {
        self.step_stream_watched(file, budget, &Unwatched)
    }

    /// [`Pass::step_stream`] in chunks, `watch` told of each.
    pub fn step_stream_watched(
        &mut self,
        file: &File,
        budget: u64,
        watch: &dyn Watch,
    ) -> io::Result<bool> {
        self.in_chunks(budget, CHUNK, watch, |pass, chunk| {
            pass.stream_chunk(file, chunk)
        })
    }

    /// Reads up to `budget` bytes in chunks of at most `chunk_size`, each by
    /// `one` (given the pass and the chunk's budget; true at the end), and
    /// tells `watch` what each read. Returns whether the end was reached; a
    /// chunk that read less than its budget (nothing came for a while, or
    /// the file was cut shorter) ends the step early, without the end.
    fn in_chunks(
        &mut self,
        budget: u64,
        chunk_size: u64,
        watch: &dyn Watch,
        mut one: impl FnMut(&mut Pass, u64) -> io::Result<bool>,
    ) -> io::Result<bool> {
        let mut left = budget;
        loop {
            let chunk = left.min(chunk_size.max(1));
            let before = self.consumed();
            let end = one(self, chunk)?;
            let got = self.consumed() - before;
            let go_on = watch.read(got);
            if end {
                return Ok(true);
            }
            if !go_on {
                return Err(cancelled());
            }
            left = left.saturating_sub(got);
            if got < chunk || left == 0 {
                return Ok(false);
            }
        }
    }

    fn stream_chunk(&mut self, file: &File, budget: u64) -> io::Result<bool> {
        let Pass {
            want,
            counter,
            hasher,
            lines,
            bytes,
        } = self;
        super::source::read_stream(file, budget, &mut |buf| match want {
            Want::Lines => {
                *lines += wc::count_newlines(buf);
                *bytes += buf.len() as u64;
            }
            Want::Bytes => *bytes += buf.len() as u64,
            Want::Wc | Want::WcWidth => counter.update(buf),
            Want::Sha256 => hasher.update(buf),
            Want::WcSha256 => {
                counter.update(buf);
                hasher.update(buf);
            }
        })
    }

    /// Reads the next slice, about `budget` bytes from the file's offset, or
    /// on to the end when the end is no more than `budget` bytes away (and
    /// whatever the file grew by meanwhile, as one pass would, unless its
    /// size is exact: then the size's bytes, and the caller, who checks the
    /// file for changes after each slice, finds it grew). Returns whether
    /// the end was reached; the offset is left after what was read.
    /// `place` is the offset and size when the caller knows them.
    pub fn step(&mut self, file: &File, budget: u64, place: Option<Place>) -> io::Result<bool> {
        self.step_watched(file, budget, place, &Unwatched)
    }

    /// [`Pass::step`] in chunks of at most [`CHUNK`] bytes (each ending on a
    /// seam), `watch` told of each; a read it stops fails with [`cancelled`].
    /// A file read whole in one chunk (any small file) costs nothing more.
    pub fn step_watched(
        &mut self,
        file: &File,
        budget: u64,
        place: Option<Place>,
        watch: &dyn Watch,
    ) -> io::Result<bool> {
        let parallel = wc::Parallel {
            threads: super::cores(),
            min: wc::PARALLEL_MIN,
            chunk: wc::PAR_CHUNK,
        };
        self.chunked(file, budget, parallel, place, watch, CHUNK)
    }

    /// [`Pass::step_watched`] with the parallel count and the chunk size as given.
    fn chunked(
        &mut self,
        file: &File,
        budget: u64,
        parallel: wc::Parallel,
        place: Option<Place>,
        watch: &dyn Watch,
        chunk_size: u64,
    ) -> io::Result<bool> {
        let mut place = match place {
            Some(p) => p,
            None => place_of(file)?,
        };
        // A chunk cut shorter meanwhile ends the step: the caller's change
        // check finds it.
        self.in_chunks(budget, chunk_size, watch, |pass, chunk| {
            let before = pass.consumed();
            let last = pass.step_with(file, chunk, parallel, Some(place))?;
            place.at += pass.consumed() - before;
            Ok(last)
        })
    }

    /// [`Pass::step`] with the parallel count set up as given, so tests can
    /// put seams anywhere in small files.
    fn step_with(
        &mut self,
        file: &File,
        budget: u64,
        parallel: wc::Parallel,
        place: Option<Place>,
    ) -> io::Result<bool> {
        let place = match place {
            Some(p) => p,
            None => place_of(file)?,
        };
        let at = place.at;
        let left = place.left();
        let (limit, last) = if left <= budget {
            (if place.exact { left } else { NO_LIMIT }, true)
        } else {
            (wc::seam(file, at + budget.max(1))? - at, false)
        };
        let place = Some(place);
        match self.want {
            Want::Lines | Want::Wc | Want::WcWidth => wc::count_into_with(
                file,
                &mut self.counter,
                self.want == Want::Lines,
                limit,
                parallel,
                place,
            )?,
            Want::Bytes => super::read_all(file, limit, Place::read_at(place), |buf| {
                self.bytes += buf.len() as u64
            })?,
            Want::Sha256 => sha::hash_into(file, &mut self.hasher, limit, place)?,
            Want::WcSha256 => {
                stat::both_into(file, &mut self.counter, &mut self.hasher, limit, place)?
            }
        }
        // A file cut shorter meanwhile is found at its end by the next step.
        Ok(last)
    }

    /// The result of a pass whose last [`Pass::step`] returned true.
    pub fn finish(self) -> Found {
        let (counts, width) = self.counter.finish_with_width();
        match self.want {
            Want::Lines => Found {
                lines: Some(counts.lines + self.lines),
                bytes: Some(counts.bytes + self.bytes),
                ..Found::default()
            },
            Want::Bytes => Found {
                bytes: Some(self.bytes),
                ..Found::default()
            },
            Want::Wc => Found {
                lines: Some(counts.lines),
                bytes: Some(counts.bytes),
                wc: Some(counts),
                ..Found::default()
            },
            Want::WcWidth => Found {
                lines: Some(counts.lines),
                wc: Some(counts),
                max_line_length: width,
                ..Found::default()
            },
            Want::Sha256 => {
                let d = self.hasher.finish();
                Found {
                    bytes: Some(d.bytes),
                    sha256: Some(d),
                    ..Found::default()
                }
            }
            Want::WcSha256 => Found {
                lines: Some(counts.lines),
                bytes: Some(counts.bytes),
                wc: Some(counts),
                sha256: Some(self.hasher.finish()),
                max_line_length: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::wc::count_slice;
    use sha2::{Digest as _, Sha256};
    use std::io::{SeekFrom, Write};

    /// Random text: ASCII words and white space, characters of 2, 3 and 4
    /// bytes, Unicode spaces, controls, long forms, invalid bytes and
    /// sequences cut short.
    fn text(seed: u64, pieces: usize) -> Vec<u8> {
        const PIECES: [&[u8]; 16] = [
            b"word",
            b" ",
            b"\n",
            b"\t",
            "é".as_bytes(),
            "東京".as_bytes(),
            "🙂".as_bytes(),
            "\u{3000}".as_bytes(),
            "\u{a0}".as_bytes(),
            "\u{85}".as_bytes(),
            b"\x01",
            b"\xff",
            b"\xe2\x82",
            b"\xf8\x88\x80\x80\x80",
            b"\xfc\x84\x80\x80\x80\x80",
            b"\x80\x80\x80\x80\x80\x80\x80",
        ];
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut v = Vec::new();
        for _ in 0..pieces {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(PIECES[(x >> 32) as usize % PIECES.len()]);
        }
        v
    }

    fn file_of(data: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        f
    }

    /// Runs a pass over `f` from `from` in slices of `budget` bytes.
    fn sliced(f: &File, from: u64, want: Want, budget: u64, threads: usize, pmin: u64) -> Found {
        // Chunks of the parallel count as small as slices, or larger.
        let parallel = wc::Parallel {
            threads,
            min: pmin,
            chunk: if pmin == wc::PARALLEL_MIN {
                wc::PAR_CHUNK
            } else {
                1 + budget / 3
            },
        };
        (&*f).seek(SeekFrom::Start(from)).unwrap();
        let mut pass = Pass::new(want);
        let mut steps = 0;
        while !pass.step_with(f, budget, parallel, None).unwrap() {
            steps += 1;
            assert!(steps < 100_000, "the pass does not end");
        }
        assert_eq!(
            (&*f).stream_position().unwrap(),
            f.metadata().unwrap().len()
        );
        pass.finish()
    }

    #[test]
    fn slices_count_as_one_pass_with_seams_at_every_offset() {
        for seed in 1..5 {
            let data = text(seed, 150);
            let f = file_of(&data);
            let whole = count_slice(&data);
            // Slices of every size up to a few characters put slice ends at
            // every offset; counted on 1 to 3 threads, every range seam too.
            for budget in 1..=90 {
                for (threads, pmin) in [(1, u64::MAX), (2, 0), (3, 0)] {
                    let got = sliced(&f, 0, Want::Wc, budget, threads, pmin);
                    assert_eq!(
                        got.wc,
                        Some(whole),
                        "seed {seed}, slices of {budget}, {threads} threads"
                    );
                    let got = sliced(&f, 0, Want::Lines, budget, threads, pmin);
                    assert_eq!(got.lines, Some(whole.lines));
                }
            }
        }
    }

    #[test]
    fn sliced_widths_are_those_of_one_pass() {
        for seed in 1..4 {
            let mut data = text(seed, 150);
            // Tabs and line ends among the pieces, at every slice offset.
            for (k, b) in data.iter_mut().enumerate() {
                if k % 17 == 0 && *b == b' ' {
                    *b = b'\t';
                }
            }
            let f = file_of(&data);
            let whole = count_slice(&data);
            let width = crate::ops::width::max_line_length(&data);
            for budget in 1..=70 {
                for (threads, pmin) in [(1, u64::MAX), (2, 0), (3, 0)] {
                    let got = sliced(&f, 0, Want::WcWidth, budget, threads, pmin);
                    assert_eq!(
                        (got.wc, got.max_line_length),
                        (Some(whole), Some(width)),
                        "seed {seed}, slices of {budget}, {threads} threads"
                    );
                }
            }
        }
    }

    #[test]
    fn slices_from_an_offset_count_what_follows_it() {
        let data = text(7, 120);
        let f = file_of(&data);
        for from in 0..40 {
            let rest = count_slice(&data[from..]);
            for budget in [1, 5, 13, 64] {
                let got = sliced(&f, from as u64, Want::Wc, budget, 2, 0);
                assert_eq!(got.wc, Some(rest), "from {from}, slices of {budget}");
            }
        }
    }

    #[test]
    fn sliced_digests_and_counts_with_digests_are_those_of_one_pass() {
        for seed in 1..4 {
            let data = text(seed, 200);
            let f = file_of(&data);
            let digest: [u8; 32] = Sha256::digest(&data).into();
            let whole = count_slice(&data);
            for budget in 1..=70 {
                let got = sliced(&f, 0, Want::Sha256, budget, 2, 0);
                let d = got.sha256.unwrap();
                assert_eq!((d.sha256, d.bytes), (digest, data.len() as u64));
                let got = sliced(&f, 0, Want::WcSha256, budget, 2, 0);
                assert_eq!(got.wc, Some(whole), "slices of {budget}");
                assert_eq!(got.sha256.unwrap().sha256, digest);
            }
        }
    }

    #[test]
    fn a_known_place_is_read_from_without_asking_and_an_exact_size_is_the_end() {
        let data = text(3, 200);
        let f = file_of(&data);
        let size = data.len() as u64;
        // The offset is where the caller says the file is; an exact size
        // ends the read there, though more was written since (the engine's
        // change check after each slice finds that). A size that is not
        // exact reads on to the end.
        for (exact, upto) in [(true, size - 5), (false, size)] {
            (&f).seek(SeekFrom::Start(10)).unwrap();
            let place = Place {
                at: 10,
                size: size - 5,
                exact,
                positional: false,
            };
            let mut pass = Pass::new(Want::Wc);
            assert!(pass.step(&f, u64::MAX, Some(place)).unwrap());
            let want = count_slice(&data[10..upto as usize]);
            assert_eq!(pass.finish().wc, Some(want), "exact {exact}");
            assert_eq!((&f).stream_position().unwrap(), upto);
        }
    }

    #[test]
    fn large_slices_take_the_fast_paths_and_agree() {
        // Above the sizes where reads are pipelined and counts parallel.
        let mut data = Vec::new();
        let mut seed = 1;
        while data.len() < (super::super::PIPE_MIN as usize) * 3 + 4321 {
            data.extend_from_slice(&text(seed, 500));
            seed += 1;
        }
        let f = file_of(&data);
        let whole = count_slice(&data);
        let digest: [u8; 32] = Sha256::digest(&data).into();
        for budget in [(5 << 20) + 3, (4 << 20) - 1, 1 << 20, u64::MAX] {
            let got = sliced(&f, 0, Want::Wc, budget, 3, wc::PARALLEL_MIN);
            assert_eq!(got.wc, Some(whole), "slices of {budget}");
            let got = sliced(&f, 0, Want::WcSha256, budget, 3, wc::PARALLEL_MIN);
            assert_eq!((got.wc, got.sha256.unwrap().sha256), (Some(whole), digest));
            let got = sliced(&f, 0, Want::Sha256, budget, 3, wc::PARALLEL_MIN);
            assert_eq!(got.sha256.unwrap().sha256, digest);
        }
    }

    /// A watch that counts what it is told and stops after `calls` calls.
    struct Stopping {
        told: std::cell::Cell<u64>,
        calls: std::cell::Cell<u32>,
        stop_after: u32,
    }

    impl Watch for Stopping {
        fn read(&self, bytes: u64) -> bool {
            self.told.set(self.told.get() + bytes);
            self.calls.set(self.calls.get() + 1);
            self.calls.get() < self.stop_after
        }
    }

    fn stopping(stop_after: u32) -> Stopping {
        Stopping {
            told: std::cell::Cell::new(0),
            calls: std::cell::Cell::new(0),
            stop_after,
        }
    }

    #[test]
    fn chunks_of_a_slice_count_as_one_pass_and_are_all_told() {
        let data = text(11, 300);
        let f = file_of(&data);
        let whole = count_slice(&data);
        let digest: [u8; 32] = Sha256::digest(&data).into();
        let parallel = wc::Parallel {
            threads: 2,
            min: 0,
            chunk: 7,
        };
        for chunk in 1..=40 {
            for want in [Want::Wc, Want::Sha256, Want::WcSha256, Want::Lines] {
                (&f).seek(SeekFrom::Start(0)).unwrap();
                let watch = stopping(u32::MAX);
                let mut pass = Pass::new(want);
                let mut slices = 0;
                // Slices of 50 bytes, read in chunks of `chunk`.
                while !pass.chunked(&f, 50, parallel, None, &watch, chunk).unwrap() {
                    slices += 1;
                    assert!(slices < 10_000);
                }
                assert_eq!(watch.told.get(), data.len() as u64, "chunk {chunk}");
                assert!(u64::from(watch.calls.get()) >= data.len() as u64 / 50);
                let found = pass.finish();
                match want {
                    Want::Sha256 => assert_eq!(found.sha256.unwrap().sha256, digest),
                    Want::Lines => assert_eq!(found.lines, Some(whole.lines)),
                    Want::WcSha256 => {
                        assert_eq!(found.wc, Some(whole));
                        assert_eq!(found.sha256.unwrap().sha256, digest);
                    }
                    _ => assert_eq!(found.wc, Some(whole), "chunk {chunk}"),
                }
            }
        }
    }

    #[test]
    fn a_watch_stops_a_read_between_two_chunks() {
        let data = vec![b'a'; 10_000];
        let f = file_of(&data);
        for want in [Want::Wc, Want::Sha256, Want::WcSha256] {
            (&f).seek(SeekFrom::Start(0)).unwrap();
            let watch = stopping(3);
            let mut pass = Pass::new(want);
            let parallel = wc::Parallel {
                threads: 1,
                min: u64::MAX,
                chunk: wc::PAR_CHUNK,
            };
            let err = pass
                .chunked(&f, u64::MAX, parallel, None, &watch, 100)
                .unwrap_err();
            assert!(is_cancelled(&err), "{err}");
            assert_eq!(watch.calls.get(), 3);
            // Three chunks of 100 bytes (each to a seam: here, exactly).
            assert_eq!(watch.told.get(), 300);
            assert_eq!((&f).stream_position().unwrap(), 300);
        }
        // Streams too.
        let watch = stopping(2);
        let mut pass = Pass::new(Want::Sha256);
        let zero = File::open("/dev/zero").unwrap();
        let err = pass
            .step_stream_watched(&zero, u64::MAX, &watch)
            .unwrap_err();
        assert!(is_cancelled(&err));
        assert_eq!(watch.told.get(), 2 * CHUNK);
    }
}
