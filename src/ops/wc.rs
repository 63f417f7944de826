//! Line, word, byte and character counts with GNU `wc` semantics in a UTF-8 locale.
//!
//! The rules (those of GNU coreutils' `wc` in `C.UTF-8`):
//!
//! - `lines` counts `\n` bytes and `bytes` counts bytes, whatever the input.
//! - `chars` counts valid UTF-8 sequences; a byte that does not start a valid
//!   sequence counts as no character, and a sequence cut short by the end of
//!   the input counts as none.
//! - A word is a run of printable characters between white space. White space
//!   is `\t \n \v \f \r` and space, plus the printable characters that glibc
//!   calls spaces (U+1680, U+2000–U+2006, U+2008–U+200A, U+205F, U+3000) and the
//!   no-break spaces U+00A0, U+2007, U+202F, U+2060, as coreutils 9.2 and later
//!   count them (9.1, in Debian 12, still counts no-break spaces as word
//!   characters). Control characters, other non-printable characters and
//!   invalid bytes neither start nor end a word. Printability of a code point
//!   is glibc's `iswprint` in `C.UTF-8`, embedded as a table in
//!   [`super::unicode_tables`], so unassigned code points count exactly as GNU
//!   counts them with the glibc the table came from.
//!
//! Speed: each block of 64 bytes is classified with AVX2 compares into bit
//! masks; a word start is a word byte whose predecessor is white space, found
//! for the whole block with one shift and a popcount. A block with multi-byte
//! characters decodes just those characters and marks all their bytes with
//! the character's class, so the same arithmetic applies. Blocks with
//! controls, invalid bytes or non-printable characters (rare in text) go
//! through a scalar UTF-8 decoder. Large files are split into ranges counted on every core,
//! and the ranges' word states are joined exactly at the seams.

use super::unicode_tables::NON_PRINTABLE;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The four counts of `wc -lwmc`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WcCounts {
    pub lines: u64,
    pub words: u64,
    pub bytes: u64,
    pub chars: u64,
}

/// What a character does to the word state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Printable, not space: starts or continues a word.
    Word,
    /// White space: ends a word.
    Space,
    /// Control, non-printable or invalid: changes nothing.
    Transparent,
}

const fn ascii_class(b: u8) -> Class {
    match b {
        b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => Class::Space,
        0x21..=0x7e => Class::Word,
        _ => Class::Transparent,
    }
}

static ASCII: [Class; 128] = {
    let mut t = [Class::Transparent; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = ascii_class(i as u8);
        i += 1;
    }
    t
};

fn class_of(cp: u32) -> Class {
    if cp < 0x80 {
        return ASCII[cp as usize];
    }
    let non_printable = NON_PRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok();
    if non_printable {
        return Class::Transparent;
    }
    match cp {
        0x1680 | 0x2000..=0x2006 | 0x2008..=0x200a | 0x205f | 0x3000 => Class::Space,
        0x00a0 | 0x2007 | 0x202f | 0x2060 => Class::Space,
        _ => Class::Word,
    }
}

/// One step of UTF-8 decoding at a position.
enum Decoded {
    Char(u32, usize),
    Invalid,
    /// A valid prefix that the slice ends in the middle of.
    Incomplete,
}

/// Decodes the sequence at `s[i]` (a byte >= 0x80) strictly: no overlongs,
/// no surrogates, nothing above U+10FFFF.
fn decode(s: &[u8], i: usize) -> Decoded {
    let b0 = s[i];
    let (len, lo, hi, init) = match b0 {
        0xc2..=0xdf => (2, 0x80, 0xbf, (b0 & 0x1f) as u32),
        0xe0 => (3, 0xa0, 0xbf, 0),
        0xe1..=0xec | 0xee..=0xef => (3, 0x80, 0xbf, (b0 & 0x0f) as u32),
        0xed => (3, 0x80, 0x9f, 0x0d),
        0xf0 => (4, 0x90, 0xbf, 0),
        0xf1..=0xf3 => (4, 0x80, 0xbf, (b0 & 0x07) as u32),
        0xf4 => (4, 0x80, 0x8f, 4),
        _ => return Decoded::Invalid,
    };
    let mut cp = init;
    for k in 1..len {
        let Some(&b) = s.get(i + k) else {
            return Decoded::Incomplete;
        };
        let (l, h) = if k == 1 { (lo, hi) } else { (0x80, 0xbf) };
        if b < l || b > h {
            return Decoded::Invalid;
        }
        cp = (cp << 6) | (b & 0x3f) as u32;
    }
    Decoded::Char(cp, len)
}

/// Incremental counter: feed any split of the input, get the same counts.
#[derive(Debug, Default, Clone)]
pub struct WcCounter {
    counts: WcCounts,
    in_word: bool,
    /// Whether the first non-transparent character was a word character;
    /// lets counts of adjacent ranges be joined.
    first_is_word: Option<bool>,
    pending: [u8; 4],
    pending_len: usize,
}

impl WcCounter {
    pub fn new() -> Self {
        WcCounter::default()
    }

    pub fn update(&mut self, buf: &[u8]) {
        self.counts.bytes += buf.len() as u64;
        let mut i = 0;
        if self.pending_len > 0 {
            i = self.resume(buf);
        }
        #[cfg(target_arch = "x86_64")]
        if simd::available() {
            // SAFETY: AVX2 presence was just checked at run time.
            i = unsafe { self.blocks_avx2(buf, i) };
        }
        self.scalar(buf, i, buf.len());
    }

    pub fn finish(self) -> WcCounts {
        // Bytes of a sequence cut short by the end count as no character.
        self.counts
    }

    #[inline]
    fn event(&mut self, class: Class) {
        match class {
            Class::Word => {
                if !self.in_word {
                    self.counts.words += 1;
                    self.in_word = true;
                }
                if self.first_is_word.is_none() {
                    self.first_is_word = Some(true);
                }
            }
            Class::Space => {
                self.in_word = false;
                if self.first_is_word.is_none() {
                    self.first_is_word = Some(false);
                }
            }
            Class::Transparent => {}
        }
    }

    /// Counts the characters that start in `s[i..stop]`, reading past `stop`
    /// to finish the last one; returns where the next character starts.
    fn scalar(&mut self, s: &[u8], mut i: usize, stop: usize) -> usize {
        while i < stop {
            let b = s[i];
            if b < 0x80 {
                if b == b'\n' {
                    self.counts.lines += 1;
                }
                self.counts.chars += 1;
                self.event(ASCII[b as usize]);
                i += 1;
                continue;
            }
            match decode(s, i) {
                Decoded::Char(cp, len) => {
                    self.counts.chars += 1;
                    self.event(class_of(cp));
                    i += len;
                }
                Decoded::Invalid => i += 1,
                Decoded::Incomplete => {
                    let rest = &s[i..];
                    self.pending[..rest.len()].copy_from_slice(rest);
                    self.pending_len = rest.len();
                    return s.len();
                }
            }
        }
        i
    }

    /// Finishes a sequence left over from the previous buffer; returns how
    /// many bytes of `buf` it used.
    fn resume(&mut self, buf: &[u8]) -> usize {
        let plen = self.pending_len;
        self.pending_len = 0;
        let take = buf.len().min(4);
        let mut tmp = [0u8; 8];
        tmp[..plen].copy_from_slice(&self.pending[..plen]);
        tmp[plen..plen + take].copy_from_slice(&buf[..take]);
        let tmp = &tmp[..plen + take];
        let mut j = 0;
        while j < plen {
            if tmp[j] < 0x80 {
                // Only bytes >= 0x80 are ever left pending.
                j += 1;
                continue;
            }
            match decode(tmp, j) {
                Decoded::Char(cp, len) => {
                    self.counts.chars += 1;
                    self.event(class_of(cp));
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

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    unsafe fn blocks_avx2(&mut self, buf: &[u8], mut i: usize) -> usize {
        while i + 64 <= buf.len() {
            // SAFETY: i + 64 <= buf.len(), so 64 bytes are readable at i.
            let m = unsafe { simd::masks(buf.as_ptr().add(i)) };
            let space = if m.control != 0 {
                None
            } else if m.high == 0 {
                Some(m.space)
            } else {
                mixed_block_space(buf, i, &m)
            };
            match space {
                Some(space) => {
                    let word = !space;
                    let starts = word & !((word << 1) | self.in_word as u64);
                    self.counts.words += u64::from(starts.count_ones());
                    if self.first_is_word.is_none() {
                        self.first_is_word = Some(word & 1 != 0);
                    }
                    self.in_word = word >> 63 != 0;
                    self.counts.lines += u64::from(m.newline.count_ones());
                    self.counts.chars += u64::from(64 - m.continuation.count_ones());
                    i += 64;
                }
                None => i = self.scalar(buf, i, i + 64),
            }
            if self.pending_len > 0 {
                break;
            }
        }
        i
    }
}

/// The white-space mask of a block that holds multi-byte characters, with
/// each character's bytes all marked as its class, so the word-start
/// arithmetic of ASCII blocks applies unchanged. `None` (take the scalar path)
/// when the block has an invalid or cut sequence or a non-printable character.
#[cfg(target_arch = "x86_64")]
fn mixed_block_space(buf: &[u8], i: usize, m: &simd::Masks) -> Option<u64> {
    let mut leads = m.high & !m.continuation;
    let mut space = m.space;
    let mut continuation_seen = 0u32;
    while leads != 0 {
        let pos = leads.trailing_zeros() as usize;
        leads &= leads - 1;
        let Decoded::Char(cp, len) = decode(buf, i + pos) else {
            return None;
        };
        if pos + len > 64 {
            return None;
        }
        continuation_seen += len as u32 - 1;
        match class_of(cp) {
            Class::Word => {}
            Class::Space => space |= ((1u64 << len) - 1) << pos,
            Class::Transparent => return None,
        }
    }
    // Continuation bytes not claimed by a lead are invalid.
    (continuation_seen == m.continuation.count_ones()).then_some(space)
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    pub fn available() -> bool {
        static AVX2: OnceLock<bool> = OnceLock::new();
        *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("popcnt"))
    }

    /// Bit masks of one 64-byte block, bit k for byte k.
    pub struct Masks {
        /// Bytes >= 0x80.
        pub high: u64,
        /// UTF-8 continuation bytes, 0x80..=0xBF.
        pub continuation: u64,
        /// ASCII white space: `\t \n \v \f \r` and space.
        pub space: u64,
        /// ASCII controls other than white space, and DEL.
        pub control: u64,
        pub newline: u64,
    }

    /// Classifies 64 bytes.
    ///
    /// # Safety
    /// AVX2 must be available and `p` must point to 64 readable bytes.
    #[target_feature(enable = "avx2")]
    pub unsafe fn masks(p: *const u8) -> Masks {
        // SAFETY: the caller guarantees 64 readable bytes.
        let (lo, hi) = unsafe { (half(p), half(p.add(32))) };
        let join = |a: u32, b: u32| a as u64 | (b as u64) << 32;
        Masks {
            high: join(lo[0], hi[0]),
            continuation: join(lo[1], hi[1]),
            space: join(lo[2], hi[2]),
            control: join(lo[3], hi[3]),
            newline: join(lo[4], hi[4]),
        }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn half(p: *const u8) -> [u32; 5] {
        // SAFETY: the caller guarantees 32 readable bytes; loadu has no alignment need.
        let v = unsafe { _mm256_loadu_si256(p as *const __m256i) };
        // Compares are signed: bytes >= 0x80 are the negative ones.
        let ascii = _mm256_cmpgt_epi8(v, _mm256_set1_epi8(-1));
        let continuation = _mm256_cmpgt_epi8(_mm256_set1_epi8(-64), v);
        let tab_to_cr = _mm256_and_si256(
            _mm256_cmpgt_epi8(v, _mm256_set1_epi8(8)),
            _mm256_cmpgt_epi8(_mm256_set1_epi8(14), v),
        );
        let below_space = _mm256_and_si256(_mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v), ascii);
        let del = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x7f));
        let control = _mm256_or_si256(_mm256_andnot_si256(tab_to_cr, below_space), del);
        let space = _mm256_or_si256(tab_to_cr, _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x20)));
        let newline = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\n' as i8));
        [
            _mm256_movemask_epi8(v) as u32,
            _mm256_movemask_epi8(continuation) as u32,
            _mm256_movemask_epi8(space) as u32,
            _mm256_movemask_epi8(control) as u32,
            _mm256_movemask_epi8(newline) as u32,
        ]
    }

    /// Number of `\n` bytes, 32 at a time.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2")]
    pub unsafe fn count_newlines(s: &[u8]) -> u64 {
        let nl = _mm256_set1_epi8(b'\n' as i8);
        let zero = _mm256_setzero_si256();
        let mut total = 0u64;
        let mut i = 0;
        while i + 32 <= s.len() {
            // Byte counters overflow after 255 steps: add them up before.
            let steps = ((s.len() - i) / 32).min(255);
            let mut acc = zero;
            for k in 0..steps {
                // SAFETY: i + 32 * (k + 1) <= s.len() by the choice of steps.
                let v = unsafe { _mm256_loadu_si256(s.as_ptr().add(i + 32 * k) as *const __m256i) };
                acc = _mm256_sub_epi8(acc, _mm256_cmpeq_epi8(v, nl));
            }
            let sums = _mm256_sad_epu8(acc, zero);
            total += (_mm256_extract_epi64(sums, 0)
                + _mm256_extract_epi64(sums, 1)
                + _mm256_extract_epi64(sums, 2)
                + _mm256_extract_epi64(sums, 3)) as u64;
            i += 32 * steps;
        }
        total + s[i..].iter().filter(|&&b| b == b'\n').count() as u64
    }
}

/// Number of `\n` bytes in `s`.
pub fn count_newlines(s: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: AVX2 presence was just checked at run time.
        return unsafe { simd::count_newlines(s) };
    }
    memchr::memchr_iter(b'\n', s).count() as u64
}

/// Counts a whole buffer.
pub fn count_slice(buf: &[u8]) -> WcCounts {
    let mut c = WcCounter::new();
    c.update(buf);
    c.finish()
}

/// Read size: large enough to amortize the system call, small enough for L2.
const CHUNK: usize = 1 << 20;

/// Below this a file is counted on one core; above, on all of them.
const PARALLEL_MIN: u64 = 32 << 20;

/// Counts an open file from its current offset to its end, as fast as the
/// machine allows. With `lines_only`, only `lines` and `bytes` are computed.
pub fn wc_file(file: &File, lines_only: bool) -> io::Result<WcCounts> {
    let md = file.metadata()?;
    let threads = super::cores();
    if md.is_file() && threads > 1 {
        let start = current_offset(file)?;
        let len = md.len().saturating_sub(start);
        if len >= PARALLEL_MIN {
            return wc_parallel(file, start, len, threads, lines_only);
        }
    }
    let mut c = WcCounter::new();
    super::read_all(file, |buf| {
        if lines_only {
            c.counts.lines += count_newlines(buf);
            c.counts.bytes += buf.len() as u64;
        } else {
            c.update(buf);
        }
    })?;
    Ok(c.finish())
}

fn current_offset(file: &File) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: lseek on a valid descriptor has no memory effects.
    let off = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_CUR) };
    if off < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(off as u64)
}

/// Counts `[start, start + len)` and whatever the file grew by, in ranges on
/// `threads` threads. Each range starts on a byte that begins a character,
/// so no sequence is split; word states are joined at the seams.
fn wc_parallel(
    file: &File,
    start: u64,
    len: u64,
    threads: usize,
    lines_only: bool,
) -> io::Result<WcCounts> {
    let mut bounds = vec![start];
    for k in 1..threads as u64 {
        let mut at = start + len * k / threads as u64;
        let mut probe = [0u8; 4];
        let n = file.read_at(&mut probe, at)?;
        // Move past continuation bytes: they belong to the previous range.
        for &b in &probe[..n] {
            if b & 0xc0 != 0x80 {
                break;
            }
            at += 1;
        }
        bounds.push(at.max(*bounds.last().unwrap_or(&start)));
    }
    bounds.push(u64::MAX);
    let parts: Vec<io::Result<WcCounter>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (from, to) = (w[0], w[1]);
                scope.spawn(move || count_range(file, from, to, lines_only))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("counting thread failed")))
            })
            .collect()
    });
    let mut total = WcCounts::default();
    let mut in_word: Option<bool> = None;
    for part in parts {
        let part = part?;
        if in_word == Some(true) && part.first_is_word == Some(true) {
            // The word that ended the previous range goes on in this one.
            total.words -= 1;
        }
        if part.first_is_word.is_some() {
            in_word = Some(part.in_word);
        }
        let c = part.counts;
        total.lines += c.lines;
        total.words += c.words;
        total.bytes += c.bytes;
        total.chars += c.chars;
    }
    Ok(total)
}

fn count_range(file: &File, from: u64, to: u64, lines_only: bool) -> io::Result<WcCounter> {
    let mut buf = vec![0u8; CHUNK];
    let mut c = WcCounter::new();
    let mut at = from;
    while at < to {
        let want = (to - at).min(CHUNK as u64) as usize;
        let n = match file.read_at(&mut buf[..want], at) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if lines_only {
            c.counts.lines += count_newlines(&buf[..n]);
            c.counts.bytes += n as u64;
        } else {
            c.update(&buf[..n]);
        }
        at += n as u64;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wc(s: &[u8]) -> (u64, u64, u64, u64) {
        let c = count_slice(s);
        (c.lines, c.words, c.chars, c.bytes)
    }

    #[test]
    fn basic_counts() {
        assert_eq!(wc(b""), (0, 0, 0, 0));
        assert_eq!(wc(b"hello world\n"), (1, 2, 12, 12));
        assert_eq!(wc(b"  a  b\tc\r\nd"), (1, 4, 11, 11));
        assert_eq!(wc("héllo wörld\n".as_bytes()), (1, 2, 12, 14));
    }

    #[test]
    fn controls_and_invalid_bytes_are_transparent() {
        // As GNU wc 9.1 in C.UTF-8: neither starts nor ends a word.
        assert_eq!(wc(b"a\x01b"), (0, 1, 3, 3));
        assert_eq!(wc(b"\x01 \x02"), (0, 0, 3, 3));
        assert_eq!(wc(b"a\xffb \xe2\x82"), (0, 1, 3, 6));
        assert_eq!(wc(b"\xe2\x82\xacx\xe2"), (0, 1, 2, 5));
        assert_eq!(wc(b"\xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80"), (0, 0, 2, 11));
        assert_eq!(wc(b"a\0b\n"), (1, 1, 4, 4));
    }

    #[test]
    fn unicode_spaces_and_non_printables() {
        // U+2003 EM SPACE separates; U+0085 and U+2028 are not printable.
        assert_eq!(wc("a\u{2003}b".as_bytes()).1, 2);
        assert_eq!(wc("a\u{85}b x \u{85} y".as_bytes()).1, 3);
        assert_eq!(wc("a\u{2028}b".as_bytes()).1, 1);
        // Unassigned U+0378 is not printable either.
        assert_eq!(wc("\u{378}".as_bytes()).1, 0);
        // Private use is printable.
        assert_eq!(wc("\u{e000}".as_bytes()).1, 1);
    }

    #[test]
    fn no_break_spaces_separate_words() {
        for nb in ['\u{a0}', '\u{2007}', '\u{202f}', '\u{2060}'] {
            assert_eq!(wc(format!("a{nb}b").as_bytes()).1, 2, "U+{:04X}", nb as u32);
        }
    }

    fn corpus() -> Vec<u8> {
        let mut v = Vec::new();
        let mut x: u32 = 12345;
        let pieces: [&[u8]; 12] = [
            b"word ",
            b"\n",
            b"\t",
            "é".as_bytes(),
            "東京".as_bytes(),
            "🙂".as_bytes(),
            b"\xff",
            b"\x01",
            b"  ",
            "\u{3000}".as_bytes(),
            b"\xe2\x82",
            b"abcdefghij",
        ];
        for _ in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.extend_from_slice(pieces[(x >> 16) as usize % pieces.len()]);
        }
        v
    }

    #[test]
    fn any_split_gives_the_same_counts() {
        let data = corpus();
        let whole = count_slice(&data);
        for step in [1, 2, 3, 5, 63, 64, 65, 127, 1000] {
            let mut c = WcCounter::new();
            for chunk in data.chunks(step) {
                c.update(chunk);
            }
            assert_eq!(c.finish(), whole, "chunks of {step}");
        }
        for cut in 0..200 {
            let mut c = WcCounter::new();
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            assert_eq!(c.finish(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn simd_and_scalar_agree() {
        let data = corpus();
        let mut scalar = WcCounter::new();
        scalar.counts.bytes = data.len() as u64;
        scalar.scalar(&data, 0, data.len());
        assert_eq!(scalar.finish(), count_slice(&data));
        let text = b"The quick brown fox jumps over the lazy dog.\n".repeat(100);
        let mut scalar = WcCounter::new();
        scalar.counts.bytes = text.len() as u64;
        scalar.scalar(&text, 0, text.len());
        assert_eq!(scalar.finish(), count_slice(&text));
        assert_eq!(count_newlines(&text), 100);
    }

    #[test]
    fn files_parallel_and_sequential_agree() {
        // Above PARALLEL_MIN, with a multi-byte character and a word across
        // every possible seam region.
        let mut f = tempfile::tempfile().unwrap();
        let unit = "wörd 東京x\u{a0}y \x01z\n".as_bytes();
        let mut data = Vec::new();
        while data.len() < (PARALLEL_MIN as usize) + 12_345 {
            data.extend_from_slice(unit);
        }
        f.write_all(&data).unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let expected = count_slice(&data);
        assert_eq!(wc_file(&f, false).unwrap(), expected);
        f.rewind().unwrap();
        let l = wc_file(&f, true).unwrap();
        assert_eq!((l.lines, l.bytes), (expected.lines, expected.bytes));
        for threads in 2..6 {
            let got = wc_parallel(&f, 0, data.len() as u64, threads, false).unwrap();
            assert_eq!(got, expected, "{threads} threads");
        }
    }
}
