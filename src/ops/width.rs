//! The longest line's display width, as `wc -L` measures it in a UTF-8
//! locale (GNU coreutils' rule):
//!
//! - `\n`, `\r` and `\f` end a line: its width counts, the next starts at 0.
//! - A tab moves to the next multiple of 8 (at least one column).
//! - A space and each printable ASCII character add 1; other ASCII
//!   controls, DEL and `\v` add nothing.
//! - Any other character adds its `wcwidth` in glibc's C.UTF-8 when that is
//!   positive (2 for wide East Asian characters, 0 for combining marks and
//!   unprintable ones), from the table in [`super::unicode_tables`].
//! - Bytes that are no character (invalid, or cut short) add nothing.
//!
//! The width must be joinable across the seams of a parallel count, where
//! the column a range starts at is not known yet. A range's first line (up
//! to its first line end) is therefore kept as a function of that column:
//! without a tab it adds a constant; with one, everything after the first
//! tab depends on the start column only through the tab stop it reaches,
//! so the line's end is `next_tab(start + before_tab) + after` for two
//! constants. Both are found by counting as if the range began at column 0.

use super::unicode_tables::{DOUBLE_WIDTH, ZERO_WIDTH};
use super::wc::{Decoded, decode};

/// The width state of counted bytes; join adjacent ranges with [`Width::append`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Width {
    /// The column reached, counting from column 0 at the start of these
    /// bytes or at their last line end.
    col: u64,
    /// The widest line that started and ended in these bytes.
    max: u64,
    /// The end column of the first line (counted from column 0), once a
    /// line end was seen.
    first_end: Option<u64>,
    /// The column (from 0) where the first line's first tab was, if it had one.
    first_tab: Option<u64>,
    /// The start of a sequence that the last buffer ended in.
    pending: [u8; 8],
    pending_len: usize,
}

/// The column a tab at `col` moves to.
fn next_tab(col: u64) -> u64 {
    col + 8 - col % 8
}

/// How many bytes at the start of `s` are printable ASCII (0x20 to 0x7E),
/// 8 at a time while no byte of a word is below 0x20 or above 0x7E.
fn printable_ascii_run(s: &[u8]) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    let mut i = 0;
    while let Some(word) = s.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let x = u64::from_le_bytes(w);
        // A byte below 0x20, or one above 0x7E (adding 1 sets its high bit).
        let below = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let above = (x.wrapping_add(ONES) | x) & HIGH;
        if below | above != 0 {
            break;
        }
        i += 8;
    }
    i + s[i..]
        .iter()
        .position(|&b| !(0x20..0x7f).contains(&b))
        .unwrap_or(s.len() - i)
}

/// Whether `cp` is in one of the sorted, inclusive range tables of
/// [`super::unicode_tables`].
pub(crate) fn within(table: &[(u32, u32)], cp: u32) -> bool {
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The display width glibc's `wcwidth` gives a non-ASCII code point, 0 when
/// it gives 0 or -1.
pub fn char_width(cp: u32) -> u64 {
    if cp > 0x10ffff || within(ZERO_WIDTH, cp) {
        0
    } else if within(DOUBLE_WIDTH, cp) {
        2
    } else {
        1
    }
}

impl Width {
    /// Counts the next bytes.
    pub fn update(&mut self, buf: &[u8]) {
        let mut i = 0;
        if self.pending_len > 0 {
            i = self.resume(buf);
        }
        while i < buf.len() {
            let b = buf[i];
            if b < 0x80 {
                // Runs of printable ASCII, the bulk of most text.
                let run = printable_ascii_run(&buf[i..]);
                if run > 0 {
                    self.col += run as u64;
                    i += run;
                    continue;
                }
                self.ascii(b);
                i += 1;
                continue;
            }
            match decode(buf, i) {
                Decoded::Char(cp, len) => {
                    self.col += char_width(cp);
                    i += len;
                }
                Decoded::Invalid => i += 1,
                Decoded::Incomplete => {
                    let rest = &buf[i..];
                    self.pending[..rest.len()].copy_from_slice(rest);
                    self.pending_len = rest.len();
                    return;
                }
            }
        }
    }

    /// An ASCII byte other than a printable character.
    fn ascii(&mut self, b: u8) {
        match b {
            b'\n' | b'\r' | 0x0c => {
                match self.first_end {
                    None => self.first_end = Some(self.col),
                    Some(_) => self.max = self.max.max(self.col),
                }
                self.col = 0;
            }
            b'\t' => {
                if self.first_end.is_none() && self.first_tab.is_none() {
                    self.first_tab = Some(self.col);
                }
                self.col = next_tab(self.col);
            }
            0x20..=0x7e => self.col += 1,
            _ => {}
        }
    }

    /// Finishes a sequence the last buffer ended in; returns the bytes of
    /// `buf` used.
    fn resume(&mut self, buf: &[u8]) -> usize {
        let plen = self.pending_len;
        self.pending_len = 0;
        let take = buf.len().min(6);
        let mut tmp = [0u8; 16];
        tmp[..plen].copy_from_slice(&self.pending[..plen]);
        tmp[plen..plen + take].copy_from_slice(&buf[..take]);
        let tmp = &tmp[..plen + take];
        let mut j = 0;
        while j < plen {
            match decode(tmp, j) {
                Decoded::Char(cp, len) => {
                    self.col += char_width(cp);
                    j += len;
                }
                Decoded::Invalid => j += 1,
                Decoded::Incomplete => {
                    let rest = &tmp[j..];
                    self.pending[..rest.len()].copy_from_slice(rest);
                    self.pending_len = rest.len();
                    return buf.len();
                }
            }
        }
        j - plen
    }

    /// Where the first line of these bytes ends (or, with no line end, where
    /// they end) when they start at column `start`.
    fn first_line_from(&self, start: u64) -> u64 {
        let end0 = self.first_end.unwrap_or(self.col);
        match self.first_tab {
            None => start + end0,
            Some(t) => next_tab(start + t) + (end0 - next_tab(t)),
        }
    }

    /// Continues with `next`, the widths of the bytes that follow, which
    /// start on a seam (no character crosses it).
    pub fn append(&mut self, next: Width) {
        // A sequence of ours cut at the seam is no character: no width.
        let start = self.col;
        let reached = next.first_line_from(start);
        if self.first_end.is_none() && self.first_tab.is_none() {
            self.first_tab = next.first_tab.map(|t| start + t);
        }
        match next.first_end {
            None => self.col = reached,
            Some(_) => {
                match self.first_end {
                    None => self.first_end = Some(reached),
                    Some(_) => self.max = self.max.max(reached),
                }
                self.max = self.max.max(next.max);
                self.col = next.col;
            }
        }
        self.pending = next.pending;
        self.pending_len = next.pending_len;
    }

    /// The widest line, the last one included even without a line end.
    pub fn finish(self) -> u64 {
        self.max.max(self.first_end.unwrap_or(0)).max(self.col)
    }
}

/// The maximum line width of a whole buffer.
pub fn max_line_length(buf: &[u8]) -> u64 {
    let mut w = Width::default();
    w.update(buf);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_tabs_and_line_ends() {
        assert_eq!(max_line_length(b""), 0);
        assert_eq!(max_line_length(b"abc\nde\n"), 3);
        assert_eq!(max_line_length(b"abc\nlonger"), 6);
        assert_eq!(max_line_length(b"\t"), 8);
        assert_eq!(max_line_length(b"a\tb"), 9);
        assert_eq!(max_line_length(b"1234567\tx"), 9);
        assert_eq!(max_line_length(b"12345678\tx"), 17);
        // \r and \f end a line; \v and controls add nothing.
        assert_eq!(max_line_length(b"abcdef\rxy"), 6);
        assert_eq!(max_line_length(b"ab\x0ccd\x0bef"), 4);
        assert_eq!(max_line_length(b"a\x01\x7fb\0"), 2);
        assert_eq!(max_line_length(b"  x "), 4);
    }

    #[test]
    fn printable_runs_stop_at_the_first_other_byte() {
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut v = vec![b'x'; 20];
                v[at] = b;
                let expect = if (0x20..0x7f).contains(&b) { 20 } else { at };
                assert_eq!(printable_ascii_run(&v), expect, "{b:02x} at {at}");
            }
        }
    }

    #[test]
    fn wide_combining_and_invalid() {
        // Wide CJK, a combining accent, an unprintable C1 control, invalid bytes.
        assert_eq!(max_line_length("東京".as_bytes()), 4);
        assert_eq!(max_line_length("e\u{301}".as_bytes()), 1);
        assert_eq!(max_line_length("a\u{85}b".as_bytes()), 2);
        assert_eq!(max_line_length(b"a\xffb\xe2\x82"), 2);
        assert_eq!(max_line_length("🙂x".as_bytes()), 3);
        assert_eq!(char_width(0x110000), 0);
        assert_eq!(char_width(0xad), 1);
        assert_eq!(char_width(0x200b), 0);
    }

    fn sample(seed: u64, n: usize) -> Vec<u8> {
        const PIECES: [&[u8]; 12] = [
            b"ab",
            b"\t",
            b"\n",
            b"\r",
            b" ",
            "東".as_bytes(),
            "e\u{301}".as_bytes(),
            b"\xff",
            b"\x0b",
            b"1234567",
            "\u{3000}".as_bytes(),
            b"\xe2\x82",
        ];
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut v = Vec::new();
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(PIECES[(x >> 32) as usize % PIECES.len()]);
        }
        v
    }

    #[test]
    fn any_split_and_any_seam_join_to_one_count() {
        for seed in 1..20 {
            let data = sample(seed, 60);
            let whole = max_line_length(&data);
            for cut in 0..=data.len() {
                // Fed in two buffers.
                let mut w = Width::default();
                w.update(&data[..cut]);
                w.update(&data[cut..]);
                assert_eq!(w.finish(), whole, "seed {seed}, split at {cut}");
                // Counted as two ranges and joined, where no character is cut.
                if data.get(cut).is_some_and(|&b| b & 0xc0 == 0x80) {
                    continue;
                }
                let (mut a, mut b) = (Width::default(), Width::default());
                a.update(&data[..cut]);
                b.update(&data[cut..]);
                a.append(b);
                assert_eq!(a.finish(), whole, "seed {seed}, seam at {cut}");
            }
        }
    }

    #[test]
    fn three_ranges_join_in_order() {
        for seed in 1..10 {
            let data = sample(seed, 40);
            let whole = max_line_length(&data);
            let n = data.len();
            for (x, y) in [(n / 3, 2 * n / 3), (1, n - 1), (n / 2, n / 2 + 1)] {
                let ok = |k: usize| data.get(k).is_none_or(|&b| b & 0xc0 != 0x80);
                if !ok(x) || !ok(y) {
                    continue;
                }
                let mut parts = [Width::default(); 3];
                parts[0].update(&data[..x]);
                parts[1].update(&data[x..y]);
                parts[2].update(&data[y..]);
                let [mut a, b, c] = parts;
                a.append(b);
                a.append(c);
                assert_eq!(a.finish(), whole, "seed {seed}, seams {x} {y}");
            }
        }
    }
}
