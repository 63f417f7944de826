//! Counts of byte ranges of one file that add up to the whole file's count,
//! so that members can each count a part of a huge file (`p2p-wc --spread`).
//!
//! A range is counted from the first [`seam`](super::wc) at or after its
//! start to the first seam at or after its end: a seam is an offset that no
//! accepted UTF-8 sequence crosses, and both neighbours of a cut find the
//! same one, so the ranges still tile the file and no character is split.
//! What is left to join at a cut is the word that may go on across it:
//! [`RangeCount`] keeps whether its first and last bytes are word bytes,
//! and [`RangeCount::then`] joins two adjacent ranges, an associative
//! operation with [`RangeCount::default`] (no bytes) as its identity.
//! `wc -L` is not split: a line's width would need its text across cuts.

use super::pass::{Unwatched, Watch};
use super::wc::{WcCounter, WcCounts, count_into};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;

/// The count of a byte range, as it travels back from the member.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeCount {
    pub lines: u64,
    pub words: u64,
    pub bytes: u64,
    pub chars: u64,
    /// Whether the range's first byte is a word byte; `None` when empty,
    /// or when only lines and bytes were counted.
    pub first_word: Option<bool>,
    /// Whether its last byte is a word byte.
    pub last_word: bool,
}

impl RangeCount {
    /// The counts of a range whose bytes a counter has taken (and that
    /// ends on a seam).
    pub fn of(counter: WcCounter) -> RangeCount {
        let (counts, first_word, last_word) = counter.finish_with_edges();
        RangeCount {
            lines: counts.lines,
            words: counts.words,
            bytes: counts.bytes,
            chars: counts.chars,
            first_word,
            last_word,
        }
    }

    /// This range followed by `next`, the range right after it: a word
    /// that runs across the cut is one word.
    pub fn then(self, next: RangeCount) -> RangeCount {
        // An empty range changes nothing (a lines-only count knows no
        // word edges, but its bytes tell whether it is empty).
        if next.bytes == 0 {
            return self;
        }
        if self.bytes == 0 {
            return next;
        }
        let joined = u64::from(self.last_word && next.first_word == Some(true));
        RangeCount {
            lines: self.lines + next.lines,
            words: self.words + next.words - joined,
            bytes: self.bytes + next.bytes,
            chars: self.chars + next.chars,
            first_word: self.first_word,
            last_word: next.last_word,
        }
    }

    /// The counts of the whole file, once every range, in order, is joined.
    pub fn counts(&self) -> WcCounts {
        WcCounts {
            lines: self.lines,
            words: self.words,
            bytes: self.bytes,
            chars: self.chars,
        }
    }
}

/// The first offset at or after `at` in `bytes` that no accepted UTF-8
/// sequence crosses (the end at most), as [`count_range`] finds it in a file;
/// the start is always one.
pub fn seam_in(bytes: &[u8], at: usize) -> usize {
    if at == 0 {
        return 0;
    }
    let mut at = at.min(bytes.len());
    for _ in 0..5 {
        match bytes.get(at) {
            Some(b) if b & 0xc0 == 0x80 => at += 1,
            _ => break,
        }
    }
    at
}

/// Most bytes of a range counted between two calls of a [`Watch`]: a
/// range is at most 64 MiB, so a cancelled one stops within a quarter.
pub const RANGE_CHUNK: u64 = 16 << 20;

/// Counts the range `[offset, offset + length)` of `file` as moved to the
/// seams (see the module), by the rules of `counter` (a new counter: the
/// no-break space rule). With `lines_only` only lines and bytes are right.
pub fn count_range(
    file: &File,
    offset: u64,
    length: u64,
    lines_only: bool,
    counter: WcCounter,
) -> io::Result<RangeCount> {
    count_range_watched(file, (offset, length), lines_only, counter, &Unwatched)
}

/// [`count_range`] of `(offset, length)` in chunks of [`RANGE_CHUNK`]
/// bytes (each ending on a seam), `watch` told what each read; a read it
/// stops fails with [`super::pass::cancelled`].
pub fn count_range_watched(
    file: &File,
    range: (u64, u64),
    lines_only: bool,
    counter: WcCounter,
    watch: &dyn Watch,
) -> io::Result<RangeCount> {
    let chunk = (RANGE_CHUNK, super::cores());
    count_range_in(file, range, lines_only, counter, watch, chunk)
}

fn count_range_in(
    file: &File,
    (offset, length): (u64, u64),
    lines_only: bool,
    counter: WcCounter,
    watch: &dyn Watch,
    (chunk, threads): (u64, usize),
) -> io::Result<RangeCount> {
    use std::io::{Seek, SeekFrom};
    let seam = |at: u64| {
        if at == 0 {
            Ok(0)
        } else {
            super::wc::seam(file, at)
        }
    };
    let from = seam(offset)?;
    let to = seam(offset.saturating_add(length))?;
    let mut f = file;
    f.seek(SeekFrom::Start(from))?;
    let mut c = counter;
    let mut at = from;
    while at < to {
        let next = seam(at.saturating_add(chunk.max(1)))?.min(to);
        let before = c.bytes();
        count_into(file, &mut c, lines_only, next - at, threads)?;
        let got = c.bytes() - before;
        if !watch.read(got) {
            return Err(super::pass::cancelled());
        }
        if got < next - at {
            // The file was cut shorter meanwhile.
            break;
        }
        at = next;
    }
    Ok(RangeCount::of(c))
}

/// Cuts `size` bytes into ranges of about `part` bytes (at least one
/// range; the last takes the rest): `(offset, length)` pairs in order.
pub fn cuts(size: u64, part: u64) -> Vec<(u64, u64)> {
    let part = part.max(1);
    let n = size.div_ceil(part).max(1);
    (0..n)
        .map(|k| {
            let at = k * part;
            (at, if k + 1 == n { size - at } else { part })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::wc::count_slice;

    /// Deterministic text with ASCII, multibyte letters and spaces, long
    /// forms, stray and cut sequences.
    fn text(seed: u64, n: usize) -> Vec<u8> {
        let pieces: [&[u8]; 14] = [
            b"a",
            b"word",
            b" ",
            b"\n",
            "\u{e9}".as_bytes(),
            "\u{1f642}".as_bytes(),
            "\u{3000}".as_bytes(),
            "\u{a0}".as_bytes(),
            "\u{2028}".as_bytes(),
            b"\xe2\x82",
            b"\x80",
            b"\xff",
            b"\xfc\x80\x80\x80\x80\x80",
            b"\t\t",
        ];
        let mut s = seed;
        let mut out = Vec::new();
        while out.len() < n {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(pieces[(s >> 33) as usize % pieces.len()]);
        }
        out
    }

    fn counted(bytes: &[u8]) -> RangeCount {
        let mut c = WcCounter::new();
        c.update(bytes);
        RangeCount::of(c)
    }

    #[test]
    fn any_cuts_moved_to_seams_add_up_to_the_whole_count() {
        for seed in 0..300u64 {
            let data = text(seed, 40 + (seed as usize * 7) % 400);
            let whole = count_slice(&data);
            // Cuts at random offsets, each moved to its seam.
            let mut s = seed ^ 0x9e37_79b9;
            let mut cuts = vec![0usize];
            for _ in 0..(seed % 9) {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                cuts.push((s >> 33) as usize % (data.len() + 1));
            }
            cuts.push(data.len());
            cuts.sort_unstable();
            let seams: Vec<usize> = cuts.iter().map(|&c| seam_in(&data, c)).collect();
            let joined = seams
                .windows(2)
                .map(|w| counted(&data[w[0]..w[1]]))
                .fold(RangeCount::default(), RangeCount::then);
            assert_eq!(joined.counts(), whole, "seed {seed}, cuts {cuts:?}");
        }
    }

    #[test]
    fn joining_is_associative_with_the_empty_range_as_identity() {
        let data = text(7, 300);
        let (a, b, c) = (
            counted(&data[..seam_in(&data, 90)]),
            counted(&data[seam_in(&data, 90)..seam_in(&data, 200)]),
            counted(&data[seam_in(&data, 200)..]),
        );
        assert_eq!(a.then(b).then(c), a.then(b.then(c)));
        let e = RangeCount::default();
        assert_eq!(e.then(a), a);
        assert_eq!(a.then(e), a);
    }

    #[test]
    fn a_word_or_a_wide_space_across_a_cut_counts_once() {
        // "ab" cut in the middle: one word. U+3000 cut inside: a space.
        let data = "ab\u{3000}c\u{e9}d".as_bytes();
        for cut in 0..=data.len() {
            let at = seam_in(data, cut);
            let joined = counted(&data[..at]).then(counted(&data[at..]));
            assert_eq!(joined.counts(), count_slice(data), "cut at {cut}");
        }
        assert_eq!(count_slice(data).words, 2);
        assert_eq!(count_slice(data).chars, 6);
    }

    #[test]
    fn file_ranges_tile_whatever_the_cuts() {
        use std::io::Write;
        let data = text(11, 5000);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        for part in [1u64, 2, 3, 7, 100, 4999, 5000, 9000] {
            let joined = cuts(data.len() as u64, part)
                .into_iter()
                .map(|(at, len)| count_range(&f, at, len, false, WcCounter::new()).unwrap())
                .fold(RangeCount::default(), RangeCount::then);
            assert_eq!(joined.counts(), count_slice(&data), "parts of {part}");
        }
    }

    #[test]
    fn lines_only_ranges_add_up_lines_and_bytes() {
        use std::io::Write;
        let data = text(3, 3 << 20);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let whole = count_slice(&data);
        for part in [65536u64, 3 << 20] {
            let joined = cuts(data.len() as u64, part)
                .into_iter()
                .map(|(at, len)| count_range(&f, at, len, true, WcCounter::new()).unwrap())
                .fold(RangeCount::default(), RangeCount::then);
            assert_eq!(
                (joined.lines, joined.bytes),
                (whole.lines, whole.bytes),
                "parts of {part}"
            );
        }
    }

    /// Counts what it is told was read, and stops after `stop_after` chunks.
    struct Counting {
        read: std::cell::Cell<u64>,
        calls: std::cell::Cell<u32>,
        stop_after: u32,
    }

    impl Watch for Counting {
        fn read(&self, bytes: u64) -> bool {
            self.read.set(self.read.get() + bytes);
            self.calls.set(self.calls.get() + 1);
            self.calls.get() < self.stop_after
        }
    }

    fn counting(stop_after: u32) -> Counting {
        Counting {
            read: 0.into(),
            calls: 0.into(),
            stop_after,
        }
    }

    #[test]
    fn a_range_read_in_chunks_counts_the_same_and_tells_every_byte() {
        use std::io::Write;
        let data = text(5, 20_000);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        for chunk in [1u64, 3, 7, 64, 1000, 1 << 20] {
            for lines_only in [false, true] {
                let watch = counting(u32::MAX);
                let joined = cuts(data.len() as u64, 6000)
                    .into_iter()
                    .map(|r| {
                        let c = WcCounter::new();
                        count_range_in(&f, r, lines_only, c, &watch, (chunk, 1)).unwrap()
                    })
                    .fold(RangeCount::default(), RangeCount::then);
                let whole = count_slice(&data);
                assert_eq!((joined.lines, joined.bytes), (whole.lines, whole.bytes));
                if !lines_only {
                    assert_eq!(joined.counts(), whole, "chunks of {chunk}");
                }
                assert_eq!(watch.read.get(), data.len() as u64, "every byte told");
            }
        }
    }

    /// Chunks of 2 MiB and more are counted on several threads
    /// ([`crate::ops::wc::PARALLEL_MIN`]): ranges read so still add up to
    /// the whole count, words and characters included, wherever the cuts
    /// and the chunks fall.
    #[test]
    fn ranges_counted_on_several_threads_add_up_to_the_whole_count() {
        use crate::ops::wc::PARALLEL_MIN;
        use std::io::Write;
        let data = text(13, 5 << 20);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let whole = count_slice(&data);
        let size = data.len() as u64;
        for (part, chunk) in [
            (size, RANGE_CHUNK),
            (size, PARALLEL_MIN + 3),
            (size / 2 + 1, PARALLEL_MIN),
            (PARALLEL_MIN + 7, 3 << 20),
        ] {
            for threads in [2, 3] {
                let watch = counting(u32::MAX);
                let joined = cuts(size, part)
                    .into_iter()
                    .map(|r| {
                        let c = WcCounter::new();
                        count_range_in(&f, r, false, c, &watch, (chunk, threads)).unwrap()
                    })
                    .fold(RangeCount::default(), RangeCount::then);
                assert_eq!(
                    joined.counts(),
                    whole,
                    "parts of {part}, chunks of {chunk}, {threads} threads"
                );
                assert_eq!(watch.read.get(), size, "every byte told");
            }
        }
    }

    #[test]
    fn a_cancelled_range_stops_within_a_chunk() {
        use std::io::Write;
        let data = text(9, 100_000);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let watch = counting(1);
        let e = count_range_in(&f, (0, 100_000), false, WcCounter::new(), &watch, (1000, 1))
            .unwrap_err();
        assert!(crate::ops::pass::is_cancelled(&e), "{e}");
        assert_eq!(watch.calls.get(), 1);
        let read = watch.read.get();
        assert!(
            (1000..1006).contains(&read),
            "one chunk (to its seam) read of 100,000 bytes, not {read}"
        );
    }

    #[test]
    fn cuts_cover_the_size_in_order() {
        assert_eq!(cuts(10, 4), vec![(0, 4), (4, 4), (8, 2)]);
        assert_eq!(cuts(8, 4), vec![(0, 4), (4, 4)]);
        assert_eq!(cuts(0, 4), vec![(0, 0)]);
    }
}
