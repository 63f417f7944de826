//! Line, word, byte and character counts with GNU `wc` semantics in a UTF-8 locale.
//!
//! # What is counted
//!
//! The counts are those of `LC_ALL=C.UTF-8 wc -lwmc` from GNU coreutils 9.5
//! and later (the rules of 9.11) with glibc's UTF-8 decoder. Debian 12's
//! `wc` 9.1 agrees except on words around controls, unprintable characters
//! and invalid bytes; `tests/oracle_ops.rs` compares with it exhaustively
//! wherever the two rules agree and pins the rest by value.
//!
//! - `lines` counts `\n` bytes and `bytes` counts bytes, whatever the input.
//! - `chars` counts the characters glibc's UTF-8 decoder accepts. Besides
//!   standard UTF-8 that decoder also takes the old long forms: 4-byte
//!   sequences up to `F7 BF BF BF`, 5-byte (`F8`–`FB`) and 6-byte (`FC`, `FD`)
//!   ones, i.e. values up to 0x7FFFFFFF. It refuses overlong forms, surrogates
//!   (`ED A0`–`ED BF`), `C0`, `C1`, `FE`, `FF` and stray continuation bytes. A
//!   refused byte counts as no character and decoding resumes at the next
//!   byte; a sequence cut short by the end of the input counts as none.
//! - A word is a maximal run of anything that is not white space. White
//!   space is what glibc's `iswspace` says in C.UTF-8 — `\t \n \v \f \r`,
//!   space, U+1680, U+2000–U+2006, U+2008–U+200A, U+2028, U+2029, U+205F
//!   and U+3000 — and the no-break spaces U+00A0, U+2007, U+202F and U+2060,
//!   which current `wc` separates words with too. Everything else is part
//!   of a word: letters, ASCII and C1 controls, NUL, DEL, unassigned code
//!   points, long forms, and every byte that is no character (an invalid
//!   byte, or one of a sequence cut short by the end of the input). So
//!   `a\x01b` is one word, and so are `\x01` and `\xff` alone.
//! - With POSIXLY_CORRECT set in the command's environment (the counter
//!   made with [`WcCounter::posixly_correct`]), the no-break spaces U+00A0,
//!   U+2007, U+202F and U+2060 are parts of words, as GNU `wc` then takes
//!   them: only what `iswspace` says separates words.
//!
//! With [`WcCounter::with_width`] the counter also finds the longest line's
//! display width, as `wc -L` does; see [`super::width`].
//!
//! # How it is fast
//!
//! Input is taken 64 bytes at a time. AVX2 compares (chosen at run time; a
//! table-driven portable classifier otherwise) turn a block into bit masks,
//! bit k for byte k: newline, ASCII white space, high bit, and for blocks
//! with non-ASCII bytes the UTF-8 lead bytes by length, the lead bytes
//! whose every sequence is accepted (all but `C0`, `C1`, `E0`, `ED`, `F0`
//! and `F8` on), and the bytes of the multi-byte white-space characters.
//! There is no AVX-512 version: on the Zen 4 machines this is measured on,
//! one ran the blocks 9% faster in memory but counted a cached file no
//! faster (about half of that time is the copy out of the page cache), and
//! its intrinsics need Rust 1.89, above the crate's `rust-version`. The
//! `Classify` trait is where one would go.
//!
//! Each byte is then a space byte or a word byte, and a word starts at each
//! word byte whose predecessor is a space byte (or the start, when not
//! inside a word): `word & !(word << 1 | carry)` and one popcount, with the
//! in-word state carried from block to block. The bytes of a multi-byte
//! space (`C2 A0`, `E1 9A 80`, `E2 80 80`–`E2 81 A0`, `E3 80 80`) are found
//! by comparing each byte with the few values they use and shifting the
//! masks: no decoding. That is exact because a lead byte is never inside
//! another character, so a whole space sequence is always that character.
//!
//! UTF-8 is checked with the same masks, for `chars`: in valid text the
//! continuation bytes are exactly those that the lead bytes announce. Then
//! only the rare lead bytes with restricted second bytes are looked at. A
//! block that fails the check (binary data, mostly) still takes its words
//! from the masks, and its characters by decoding each lead on its own. A
//! character that the block cuts off is left to the next block; only a
//! sequence cut by the end of the buffer goes to a scalar decoder, which
//! keeps it for the next buffer.
//!
//! Large files are split into chunks of a few MiB, each starting on a byte
//! that no accepted sequence crosses, read with `pread` by one thread per
//! core, each taking the next chunk when done with one; the chunks' word
//! states (and line widths) are joined at the seams.

use super::width::Width;
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

/// What a character (or a byte that is none) does to the word state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Not white space: starts or continues a word.
    Word,
    /// White space: ends a word.
    Space,
}

const fn ascii_class(b: u8) -> Class {
    match b {
        b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => Class::Space,
        _ => Class::Word,
    }
}

/// Code points above ASCII that `wc` takes as white space: glibc's
/// `iswspace` in C.UTF-8, and the no-break spaces.
const fn is_wide_space(cp: u32) -> bool {
    matches!(
        cp,
        0xa0 | 0x1680 | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x2060 | 0x3000
    )
}

/// The no-break spaces, which `wc` takes as white space unless
/// POSIXLY_CORRECT is set.
const fn is_no_break_space(cp: u32) -> bool {
    matches!(cp, 0xa0 | 0x2007 | 0x202f | 0x2060)
}

/// The class of a character; with `posix`, a no-break space is a word's.
fn class_of(cp: u32, posix: bool) -> Class {
    if cp < 0x80 {
        ascii_class(cp as u8)
    } else if is_wide_space(cp) && !(posix && is_no_break_space(cp)) {
        Class::Space
    } else {
        Class::Word
    }
}

/// Lead bytes of 2 to 4 bytes whose every sequence of continuation bytes is
/// accepted (no overlong or surrogate forms to refuse): bit `b - 0xC0` for
/// lead byte `b`. `C2`–`DF`, `E1`–`EC`, `EE`, `EF` and `F1`–`F7` (glibc takes
/// `F4 90` to `F7 BF` as long forms). Characters with these leads need no
/// decoding to be counted.
const OPEN_LEADS: u64 = {
    let mut open = 0u64;
    let mut b: u32 = 0xc2;
    while b <= 0xf7 {
        if b != 0xe0 && b != 0xed && b != 0xf0 {
            open |= 1 << (b - 0xc0);
        }
        b += 1;
    }
    open
};

/// [`OPEN_LEADS`] as two 16-byte tables for a nibble lookup (`pshufb`):
/// `LO[b & 15] & HI[b >> 4]` is non-zero exactly for an open lead `b`. `HI`
/// gives rows C to F one bit each; `LO` says in which rows each low nibble
/// is open.
const OPEN_LO: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut k = 0;
    while k < 64 {
        if OPEN_LEADS >> k & 1 != 0 {
            t[k % 16] |= 1 << (k / 16);
        }
        k += 1;
    }
    t
};
const OPEN_HI: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8];

/// One step of UTF-8 decoding at a position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A character and its length in bytes.
    Char(u32, usize),
    /// The byte at the position starts no accepted sequence.
    Invalid,
    /// An accepted prefix that the slice ends in the middle of.
    Incomplete,
}

/// Decodes the sequence at `s[i]` (a byte >= 0x80) as glibc's UTF-8 decoder
/// does: standard UTF-8 plus the long forms up to 6 bytes, never overlong
/// forms or surrogates.
pub(crate) fn decode(s: &[u8], i: usize) -> Decoded {
    let b0 = s[i];
    // Length, and the range of the second byte that excludes overlong forms,
    // surrogates (after ED) and nothing else.
    let (len, lo, hi) = match b0 {
        0xc2..=0xdf => (2, 0x80, 0xbf),
        0xe0 => (3, 0xa0, 0xbf),
        0xed => (3, 0x80, 0x9f),
        0xe1..=0xef => (3, 0x80, 0xbf),
        0xf0 => (4, 0x90, 0xbf),
        0xf1..=0xf7 => (4, 0x80, 0xbf),
        0xf8 => (5, 0x88, 0xbf),
        0xf9..=0xfb => (5, 0x80, 0xbf),
        0xfc => (6, 0x84, 0xbf),
        0xfd => (6, 0x80, 0xbf),
        _ => return Decoded::Invalid,
    };
    // The lead carries 5, 4, 3, 2 or 1 payload bits for 2 to 6 bytes.
    let mut cp = (b0 & (0x7f >> len)) as u32;
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

/// Whether a lead byte that is not open, of 2 to 4 bytes, whose
/// continuation bytes are known to be present, starts an accepted sequence:
/// only its second byte can refuse it. `C0`, `C1` and the leads of 5 and 6
/// bytes (which the block masks take for 4-byte leads) get `false`: the
/// caller then takes the path that decodes each lead.
#[inline(always)]
fn restricted_lead_accepted(b0: u8, b1: u8) -> bool {
    match b0 {
        0xe0 => b1 >= 0xa0,
        0xed => b1 <= 0x9f,
        0xf0 => b1 >= 0x90,
        _ => false,
    }
}

/// Bit masks of a 64-byte block, bit k for byte k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Masks {
    newline: u64,
    /// ASCII white space: `\t \n \v \f \r` and space.
    space: u64,
    /// Bytes >= 0x80.
    high: u64,
}

/// Masks of the UTF-8 lead bytes of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeadMasks {
    /// Bytes >= 0xC0: every lead byte (the others >= 0x80 are continuations).
    ge_c0: u64,
    /// Bytes >= 0xE0: leads of 3 bytes or more.
    ge_e0: u64,
    /// Bytes >= 0xF0: leads of 4 bytes or more.
    ge_f0: u64,
    /// Lead bytes in [`OPEN_LEADS`].
    open: u64,
    /// `C2`, `E1`, `E2` and `E3`: the leads of the multi-byte spaces.
    space_leads: u64,
}

/// The bytes of the multi-byte white-space characters that lie wholly in a
/// block, from per-byte masks of the values they are made of. `b80` is the
/// mask of bytes equal to 0x80, and so on; `t2000` of the third bytes of
/// `E2 80 xx` spaces (`80`–`8A`, `A8`, `A9`, `AF`), `t205f` of those of
/// `E2 81 xx` ones (`9F`, `A0`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn wide_space_bytes(
    c2: u64,
    e1: u64,
    e2: u64,
    e3: u64,
    b80: u64,
    b81: u64,
    b9a: u64,
    ba0: u64,
    t2000: u64,
    t205f: u64,
) -> u64 {
    let two = c2 & (ba0 >> 1);
    let three = (e1 & (b9a >> 1) & (b80 >> 2))
        | (e3 & (b80 >> 1) & (b80 >> 2))
        | (e2 & (((b80 >> 1) & (t2000 >> 2)) | ((b81 >> 1) & (t205f >> 2))));
    two | (two << 1) | three | (three << 1) | (three << 2)
}

/// The bytes of the no-break spaces (`C2 A0`, `E2 80 87`, `E2 80 AF`,
/// `E2 81 A0`) wholly in the 64 bytes at `p`: what POSIXLY_CORRECT takes
/// out of the white space. Only blocks with a space lead byte come here,
/// and only then, so a plain byte loop does.
///
/// # Safety
/// `p` must point to 64 readable bytes.
unsafe fn no_break_space_bytes(p: *const u8) -> u64 {
    // SAFETY: guaranteed by the caller.
    let p = &unsafe { Portable::block(p) };
    let eq = |x: u8| Portable::mask_of(p, |b| b == x);
    let (c2, e2, b80, b81, ba0) = (eq(0xc2), eq(0xe2), eq(0x80), eq(0x81), eq(0xa0));
    let t2000 = Portable::mask_of(p, |b| b == 0x87 || b == 0xaf);
    let two = c2 & (ba0 >> 1);
    let three = e2 & (((b80 >> 1) & (t2000 >> 2)) | ((b81 >> 1) & (ba0 >> 2)));
    two | (two << 1) | three | (three << 1) | (three << 2)
}

/// A way to compute the masks of 64 bytes.
trait Classify {
    /// # Safety
    /// `p` must point to 64 readable bytes and the CPU must have the
    /// instructions the implementation uses.
    unsafe fn masks(p: *const u8) -> Masks;
    /// # Safety
    /// As for [`Classify::masks`].
    unsafe fn lead_masks(p: *const u8) -> LeadMasks;
    /// The bytes of the multi-byte spaces wholly in the block.
    ///
    /// # Safety
    /// As for [`Classify::masks`].
    unsafe fn wide_spaces(p: *const u8) -> u64;
}

/// The table-driven classifier, for any CPU.
struct Portable;

const F_NEWLINE: u8 = 1;
const F_SPACE: u8 = 2;
const F_SPACE_LEAD: u8 = 4;
const F_HIGH: u8 = 8;
const F_GE_C0: u8 = 16;
const F_GE_E0: u8 = 32;
const F_GE_F0: u8 = 64;
const F_OPEN: u8 = 128;

static BYTE_FLAGS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let mut f = 0;
        if b == b'\n' as usize {
            f |= F_NEWLINE;
        }
        if b < 0x80 && matches!(ascii_class(b as u8), Class::Space) {
            f |= F_SPACE;
        }
        if matches!(b, 0xc2 | 0xe1 | 0xe2 | 0xe3) {
            f |= F_SPACE_LEAD;
        }
        if b >= 0x80 {
            f |= F_HIGH;
        }
        if b >= 0xc0 {
            f |= F_GE_C0;
            if OPEN_LEADS >> (b - 0xc0) & 1 != 0 {
                f |= F_OPEN;
            }
        }
        if b >= 0xe0 {
            f |= F_GE_E0;
        }
        if b >= 0xf0 {
            f |= F_GE_F0;
        }
        t[b] = f;
        b += 1;
    }
    t
};

impl Portable {
    /// The mask of the bytes whose flags include `flag`.
    fn mask(p: &[u8; 64], flag: u8) -> u64 {
        let mut m = 0u64;
        for (k, &b) in p.iter().enumerate() {
            m |= u64::from(BYTE_FLAGS[b as usize] & flag != 0) << k;
        }
        m
    }

    /// The mask of the bytes for which `pred` holds.
    fn mask_of(p: &[u8; 64], pred: impl Fn(u8) -> bool) -> u64 {
        let mut m = 0u64;
        for (k, &b) in p.iter().enumerate() {
            m |= u64::from(pred(b)) << k;
        }
        m
    }

    /// # Safety
    /// `p` must point to 64 readable bytes.
    unsafe fn block(p: *const u8) -> [u8; 64] {
        // SAFETY: guaranteed by the caller.
        unsafe { p.cast::<[u8; 64]>().read_unaligned() }
    }
}

impl Classify for Portable {
    unsafe fn masks(p: *const u8) -> Masks {
        // SAFETY: the caller guarantees 64 readable bytes.
        let p = &unsafe { Self::block(p) };
        Masks {
            newline: Self::mask(p, F_NEWLINE),
            space: Self::mask(p, F_SPACE),
            high: Self::mask(p, F_HIGH),
        }
    }

    unsafe fn lead_masks(p: *const u8) -> LeadMasks {
        // SAFETY: the caller guarantees 64 readable bytes.
        let p = &unsafe { Self::block(p) };
        LeadMasks {
            ge_c0: Self::mask(p, F_GE_C0),
            ge_e0: Self::mask(p, F_GE_E0),
            ge_f0: Self::mask(p, F_GE_F0),
            open: Self::mask(p, F_OPEN),
            space_leads: Self::mask(p, F_SPACE_LEAD),
        }
    }

    unsafe fn wide_spaces(p: *const u8) -> u64 {
        // SAFETY: the caller guarantees 64 readable bytes.
        let p = &unsafe { Self::block(p) };
        let eq = |x: u8| Self::mask_of(p, |b| b == x);
        wide_space_bytes(
            eq(0xc2),
            eq(0xe1),
            eq(0xe2),
            eq(0xe3),
            eq(0x80),
            eq(0x81),
            eq(0x9a),
            eq(0xa0),
            Self::mask_of(p, |b| matches!(b, 0x80..=0x8a | 0xa8 | 0xa9 | 0xaf)),
            Self::mask_of(p, |b| matches!(b, 0x9f | 0xa0)),
        )
    }
}

/// Incremental counter: feed any split of the input, get the same counts.
#[derive(Debug, Default, Clone)]
pub struct WcCounter {
    counts: WcCounts,
    in_word: bool,
    /// Whether the first byte was a word byte (`None` before any); lets the
    /// counts of adjacent ranges be joined.
    first_is_word: Option<bool>,
    /// The start of a sequence that the last buffer ended in.
    pending: [u8; 8],
    pending_len: usize,
    /// The display widths of the lines, when asked for (`wc -L`).
    width: Option<Width>,
    /// POSIXLY_CORRECT: the no-break spaces are parts of words.
    posix: bool,
}

impl WcCounter {
    pub fn new() -> Self {
        WcCounter::default()
    }

    /// A counter that also finds the longest line's display width.
    pub fn with_width() -> Self {
        WcCounter {
            width: Some(Width::default()),
            ..WcCounter::default()
        }
    }

    /// This counter, counting words as GNU `wc` does when POSIXLY_CORRECT
    /// is set (`on`): the no-break spaces do not separate words.
    pub fn posixly_correct(mut self, on: bool) -> Self {
        self.posix = on;
        self
    }

    /// A new counter for bytes that will be appended to these: it measures
    /// widths if this one does, and takes words by the same rules.
    pub(crate) fn fresh_like(&self) -> Self {
        let fresh = if self.width.is_some() {
            WcCounter::with_width()
        } else {
            WcCounter::new()
        };
        fresh.posixly_correct(self.posix)
    }

    /// The bytes counted so far.
    pub fn bytes(&self) -> u64 {
        self.counts.bytes
    }

    pub fn update(&mut self, buf: &[u8]) {
        self.counts.bytes += buf.len() as u64;
        if let Some(w) = self.width.as_mut() {
            w.update(buf);
        }
        let mut i = 0;
        if self.pending_len > 0 {
            i = self.resume(buf);
        }
        if i < buf.len() {
            self.blocks_with(Backend::detect(), buf, i);
        }
    }

    /// Continues these counts with `next`, the counts of the bytes that
    /// follow, which must start on a [`seam`]: no accepted sequence crosses
    /// it, so only the word that may go on across it needs joining.
    pub fn append(&mut self, next: WcCounter) {
        // A sequence of ours cut at a seam never completes: its bytes are
        // no character, and part of a word.
        self.flush_pending();
        self.counts.lines += next.counts.lines;
        self.counts.words += next.counts.words;
        self.counts.bytes += next.counts.bytes;
        self.counts.chars += next.counts.chars;
        if self.in_word && next.first_is_word == Some(true) {
            // The word that ended our bytes goes on in the next ones.
            self.counts.words -= 1;
        }
        if next.first_is_word.is_some() {
            self.in_word = next.in_word;
        }
        self.first_is_word = self.first_is_word.or(next.first_is_word);
        self.pending = next.pending;
        self.pending_len = next.pending_len;
        if let (Some(w), Some(n)) = (self.width.as_mut(), next.width) {
            w.append(n);
        }
    }

    pub fn finish(self) -> WcCounts {
        self.finish_with_width().0
    }

    /// The counts, and the longest line's display width if it was measured.
    pub fn finish_with_width(mut self) -> (WcCounts, Option<u64>) {
        self.flush_pending();
        (self.counts, self.width.map(Width::finish))
    }

    /// The counts, whether the first byte is a word byte (`None` for no
    /// bytes), and whether the last one is: what joins these counts to
    /// those of the bytes around them (see [`super::ranges`]).
    pub fn finish_with_edges(mut self) -> (WcCounts, Option<bool>, bool) {
        self.flush_pending();
        (self.counts, self.first_is_word, self.in_word)
    }

    /// The bytes of a sequence cut short, the input having ended (or a seam
    /// come) there: no character, but not white space either.
    fn flush_pending(&mut self) {
        if self.pending_len > 0 {
            self.pending_len = 0;
            self.event(Class::Word);
        }
    }

    fn blocks_with(&mut self, backend: Backend, buf: &[u8], i: usize) {
        match backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` chose this backend because the CPU has AVX2.
            Backend::Avx2 => unsafe { self.blocks_avx2(buf, i) },
            // SAFETY: the portable classifier needs no CPU feature.
            Backend::Portable => unsafe { self.blocks::<Portable>(buf, i) },
            Backend::Scalar => {
                self.scalar(buf, i, buf.len());
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    unsafe fn blocks_avx2(&mut self, buf: &[u8], i: usize) {
        // SAFETY: the caller checked for AVX2.
        unsafe { self.blocks::<simd::Avx2>(buf, i) }
    }

    /// Counts `buf[i..]` block by block; the last, partial block is copied
    /// into a zero-padded block of its own.
    ///
    /// # Safety
    /// The CPU must support the instructions `C` uses.
    #[inline(always)]
    unsafe fn blocks<C: Classify>(&mut self, buf: &[u8], mut i: usize) {
        while i + 64 <= buf.len() {
            // SAFETY: 64 bytes are readable at i; the caller vouches for C.
            i = unsafe { self.block::<C>(buf, i, buf.as_ptr().add(i), 64) };
        }
        // Only a block ending at the end of `buf` can leave a sequence pending.
        while i < buf.len() && self.pending_len == 0 {
            let n = buf.len() - i;
            let mut padded = [0u8; 64];
            padded[..n].copy_from_slice(&buf[i..]);
            // SAFETY: `padded` is 64 readable bytes; the caller vouches for C.
            i = unsafe { self.block::<C>(buf, i, padded.as_ptr(), n) };
        }
    }

    /// Counts the block of `n` bytes (`n <= 64`) at `buf[i..]`, whose bytes
    /// (zero-padded to 64) are at `p`. Returns where the next block starts:
    /// earlier than `i + n` when the block ends in the middle of a
    /// character, later when the scalar path finished such a character.
    ///
    /// # Safety
    /// `p` must point to 64 readable bytes, the first `n` equal to
    /// `buf[i..i + n]`, and the CPU must support the instructions `C` uses.
    #[inline(always)]
    unsafe fn block<C: Classify>(&mut self, buf: &[u8], i: usize, p: *const u8, n: usize) -> usize {
        // SAFETY: guaranteed by the caller.
        let m = unsafe { C::masks(p) };
        let real = if n == 64 { !0 } else { (1u64 << n) - 1 };
        let classes = if m.high == 0 {
            Some(Classes {
                valid: real,
                space: m.space,
                chars: n as u32,
            })
        } else {
            // SAFETY: guaranteed by the caller.
            let l = unsafe { C::lead_masks(p) };
            let c = match regular(buf, i, real, &m, &l) {
                Some(c) => Some(c),
                None => irregular(buf, i, n, real, &m, &l),
            };
            c.map(|mut c| {
                if l.space_leads != 0 {
                    // SAFETY: guaranteed by the caller.
                    c.space |= unsafe { C::wide_spaces(p) };
                    if self.posix {
                        // SAFETY: guaranteed by the caller.
                        c.space &= !unsafe { no_break_space_bytes(p) };
                    }
                }
                c
            })
        };
        let Some(c) = classes else {
            // A sequence cut by the end of `buf`: the scalar path keeps it.
            return self.scalar(buf, i, i + n);
        };
        let taken = c.valid.count_ones();
        if taken == 0 {
            return self.scalar(buf, i, i + n);
        }
        let space = c.space & c.valid;
        let word = c.valid & !space;
        let carry = u64::from(self.in_word);
        let starts = word & !((word << 1) | carry);
        self.counts.words += u64::from(starts.count_ones());
        self.counts.lines += u64::from((m.newline & c.valid).count_ones());
        self.counts.chars += u64::from(c.chars);
        if self.first_is_word.is_none() {
            self.first_is_word = Some(word & 1 != 0);
        }
        self.in_word = word >> (taken - 1) & 1 != 0;
        i + taken as usize
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
        }
    }

    /// Counts the characters that start in `s[i..stop]`, reading past `stop`
    /// to finish the last one; returns where the next character starts.
    /// Does not count bytes.
    fn scalar(&mut self, s: &[u8], mut i: usize, stop: usize) -> usize {
        while i < stop {
            let b = s[i];
            if b < 0x80 {
                self.counts.lines += u64::from(b == b'\n');
                self.counts.chars += 1;
                self.event(ascii_class(b));
                i += 1;
                continue;
            }
            match decode(s, i) {
                Decoded::Char(cp, len) => {
                    self.counts.chars += 1;
                    self.event(class_of(cp, self.posix));
                    i += len;
                }
                Decoded::Invalid => {
                    self.event(Class::Word);
                    i += 1;
                }
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

    /// Finishes what the previous buffer left pending; returns how many
    /// bytes of `buf` that used.
    fn resume(&mut self, buf: &[u8]) -> usize {
        let plen = self.pending_len;
        self.pending_len = 0;
        // A pending sequence is at most 5 bytes, a whole one at most 6.
        let take = buf.len().min(6);
        let mut tmp = [0u8; 16];
        tmp[..plen].copy_from_slice(&self.pending[..plen]);
        tmp[plen..plen + take].copy_from_slice(&buf[..take]);
        let tmp = &tmp[..plen + take];
        // Characters that start in the pending bytes (all >= 0x80).
        let mut j = 0;
        while j < plen {
            match decode(tmp, j) {
                Decoded::Char(cp, len) => {
                    self.counts.chars += 1;
                    self.event(class_of(cp, self.posix));
                    j += len;
                }
                Decoded::Invalid => {
                    self.event(Class::Word);
                    j += 1;
                }
                Decoded::Incomplete => {
                    // `buf` was too short to finish it: keep waiting.
                    let rest = &tmp[j..];
                    self.pending[..rest.len()].copy_from_slice(rest);
                    self.pending_len = rest.len();
                    return buf.len();
                }
            }
        }
        j - plen
    }
}

/// The classes of the bytes of a block, as bit masks; what is not in
/// `space` is a word byte.
#[derive(Debug, Clone, Copy)]
struct Classes {
    /// The bytes this block accounts for (a prefix of it).
    valid: u64,
    space: u64,
    /// Characters that start in the valid bytes.
    chars: u32,
}

/// Classes of a block of valid UTF-8 in standard forms (and 4-byte long
/// forms), the common case. `None` when the block holds anything else. The
/// multi-byte spaces are the caller's to add.
#[inline(always)]
fn regular(buf: &[u8], i: usize, real: u64, m: &Masks, l: &LeadMasks) -> Option<Classes> {
    let continuation = m.high & !l.ge_c0;
    // Every lead announces its continuation bytes; in valid UTF-8 they are
    // exactly the continuation bytes present. (Zero padding makes a sequence
    // cut by the end of `buf` fail this.)
    let announced = (l.ge_c0 << 1) | (l.ge_e0 << 2) | (l.ge_f0 << 3);
    if announced != continuation {
        return None;
    }
    // A sequence that runs past the block can only be the last lead's (any
    // later lead would sit where it announced a continuation byte). Leave it
    // to the next block. Branch-free: in some scripts this is a coin toss.
    let spill = (l.ge_c0 >> 63) | (l.ge_e0 >> 62) | (l.ge_f0 >> 61);
    let last_lead = 63 - (l.ge_c0 | 1).leading_zeros();
    let valid = real & !(spill.wrapping_neg() & !((1u64 << last_lead) - 1));
    let mut restricted = l.ge_c0 & !l.open & valid;
    while restricted != 0 {
        let pos = restricted.trailing_zeros() as usize;
        restricted &= restricted - 1;
        if !restricted_lead_accepted(buf[i + pos], buf[i + pos + 1]) {
            return None;
        }
    }
    Some(Classes {
        valid,
        space: m.space,
        chars: (valid & !continuation).count_ones(),
    })
}

/// Classes of a block with invalid bytes or long forms (binary data, mostly).
/// Every byte that is not white space is a word byte, valid or not; only
/// the characters need finding. A lead byte is never inside another
/// character, so each lead decodes on its own. The last lead's character
/// may run past the block: the block then ends before it. `None` for a
/// sequence cut by the end of `buf`. The multi-byte spaces are the caller's
/// to add.
///
/// Not inlined: it would crowd the loop that text goes through.
#[inline(never)]
fn irregular(
    buf: &[u8],
    i: usize,
    n: usize,
    real: u64,
    m: &Masks,
    l: &LeadMasks,
) -> Option<Classes> {
    let continuation = m.high & !l.ge_c0;
    let leads = l.ge_c0 & real;
    let (c1, c2, c3) = (continuation >> 1, continuation >> 2, continuation >> 3);
    // Open leads whose continuation bytes are all here: characters, no
    // decoding needed.
    let whole = leads & l.open & c1 & (!l.ge_e0 | c2) & (!l.ge_f0 | c3);
    // The others need decoding if a continuation byte follows, or if the
    // byte after them is not in this block.
    let last = 1u64 << (n - 1);
    let mut rest = leads & !whole & (c1 | last);
    let mut chars = (real & !m.high).count_ones() + whole.count_ones();
    let mut valid = real;
    while rest != 0 {
        let pos = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        match decode(buf, i + pos) {
            Decoded::Char(_, len) if pos + len > n => {
                // Only the last lead can run past: leave it to the next block.
                valid = (1u64 << pos) - 1;
            }
            Decoded::Char(..) => chars += 1,
            Decoded::Invalid => {}
            Decoded::Incomplete => return None,
        }
    }
    Some(Classes {
        valid,
        space: m.space,
        chars,
    })
}

/// Which classifier [`WcCounter`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
    /// No blocks at all: the byte-at-a-time decoder (the reference in tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Scalar,
}

impl Backend {
    fn detect() -> Backend {
        use std::sync::OnceLock;
        static BEST: OnceLock<Backend> = OnceLock::new();
        *BEST.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("popcnt") {
                    return Backend::Avx2;
                }
            }
            Backend::Portable
        })
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Classify, LeadMasks, Masks, OPEN_HI, OPEN_LO, wide_space_bytes};
    use std::arch::x86_64::*;

    /// Two 32-byte AVX2 halves, joined through `movemask`.
    pub struct Avx2;

    #[inline(always)]
    fn join(lo: i32, hi: i32) -> u64 {
        let mut m = lo as u32 as u64 | (hi as u32 as u64) << 32;
        // LLVM sees `movemask` results as vectors of booleans; joined, they
        // become a 64-lane boolean vector, which it then moves lane by lane
        // (`pextrb`/`pinsrb`, ten times slower). An empty `asm!` makes the
        // joined mask an opaque integer in a register.
        // SAFETY: the assembly is empty: it reads and writes only `m`.
        unsafe {
            std::arch::asm!("/* {m} */", m = inout(reg) m, options(pure, nomem, nostack, preserves_flags))
        };
        m
    }

    impl Avx2 {
        /// Unsigned `v >= x` per byte.
        #[inline(always)]
        unsafe fn ge(v: __m256i, x: u8) -> __m256i {
            // SAFETY: the caller runs with AVX2.
            unsafe { _mm256_cmpeq_epi8(_mm256_max_epu8(v, _mm256_set1_epi8(x as i8)), v) }
        }

        #[inline(always)]
        unsafe fn eq(v: __m256i, x: u8) -> i32 {
            // SAFETY: the caller runs with AVX2.
            unsafe { _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(x as i8))) }
        }

        #[inline(always)]
        unsafe fn half(p: *const u8) -> [i32; 3] {
            // SAFETY: the caller guarantees 32 readable bytes and AVX2.
            unsafe {
                let v = _mm256_loadu_si256(p as *const __m256i);
                // Signed compares: bytes >= 0x80 are negative, so below 9
                // and not above 14.
                let tab_to_cr = _mm256_and_si256(
                    _mm256_cmpgt_epi8(v, _mm256_set1_epi8(8)),
                    _mm256_cmpgt_epi8(_mm256_set1_epi8(14), v),
                );
                let space = _mm256_or_si256(
                    tab_to_cr,
                    _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b' ' as i8)),
                );
                let newline = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\n' as i8));
                [
                    _mm256_movemask_epi8(newline),
                    _mm256_movemask_epi8(space),
                    _mm256_movemask_epi8(v),
                ]
            }
        }

        #[inline(always)]
        unsafe fn lead_half(p: *const u8) -> [i32; 5] {
            // SAFETY: the caller guarantees 32 readable bytes and AVX2.
            unsafe {
                let v = _mm256_loadu_si256(p as *const __m256i);
                let lo_table = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                    OPEN_LO.as_ptr() as *const __m128i
                ));
                let hi_table = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                    OPEN_HI.as_ptr() as *const __m128i
                ));
                let nibble = _mm256_set1_epi8(0x0f);
                let lo = _mm256_shuffle_epi8(lo_table, _mm256_and_si256(v, nibble));
                let hi = _mm256_shuffle_epi8(
                    hi_table,
                    _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble),
                );
                let closed = _mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256());
                // E1, E2, E3: E0 to E3 but not E0; and C2.
                let e0_e3 = _mm256_cmpeq_epi8(
                    _mm256_and_si256(v, _mm256_set1_epi8(0xfc_u8 as i8)),
                    _mm256_set1_epi8(0xe0_u8 as i8),
                );
                let e0 = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0xe0_u8 as i8));
                let c2 = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0xc2_u8 as i8));
                let space_leads = _mm256_or_si256(_mm256_andnot_si256(e0, e0_e3), c2);
                [
                    _mm256_movemask_epi8(Self::ge(v, 0xc0)),
                    _mm256_movemask_epi8(Self::ge(v, 0xe0)),
                    _mm256_movemask_epi8(Self::ge(v, 0xf0)),
                    !_mm256_movemask_epi8(closed),
                    _mm256_movemask_epi8(space_leads),
                ]
            }
        }

        /// The per-byte masks [`wide_space_bytes`] takes, for 32 bytes.
        #[inline(always)]
        unsafe fn wide_half(p: *const u8) -> [i32; 10] {
            // SAFETY: the caller guarantees 32 readable bytes and AVX2.
            unsafe {
                let v = _mm256_loadu_si256(p as *const __m256i);
                let t2000 = _mm256_or_si256(
                    // 80 to 8A: at most 8A once 80 is subtracted (unsigned).
                    {
                        let d = _mm256_sub_epi8(v, _mm256_set1_epi8(0x80_u8 as i8));
                        _mm256_cmpeq_epi8(_mm256_min_epu8(d, _mm256_set1_epi8(0x0a)), d)
                    },
                    _mm256_or_si256(
                        // A8, A9: A8 with the low bit cleared.
                        _mm256_cmpeq_epi8(
                            _mm256_and_si256(v, _mm256_set1_epi8(0xfe_u8 as i8)),
                            _mm256_set1_epi8(0xa8_u8 as i8),
                        ),
                        _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0xaf_u8 as i8)),
                    ),
                );
                let b9f = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x9f_u8 as i8));
                let ba0 = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0xa0_u8 as i8));
                [
                    Self::eq(v, 0xc2),
                    Self::eq(v, 0xe1),
                    Self::eq(v, 0xe2),
                    Self::eq(v, 0xe3),
                    Self::eq(v, 0x80),
                    Self::eq(v, 0x81),
                    Self::eq(v, 0x9a),
                    _mm256_movemask_epi8(ba0),
                    _mm256_movemask_epi8(t2000),
                    _mm256_movemask_epi8(_mm256_or_si256(b9f, ba0)),
                ]
            }
        }
    }

    impl Classify for Avx2 {
        #[inline(always)]
        unsafe fn masks(p: *const u8) -> Masks {
            // SAFETY: the caller guarantees 64 readable bytes and AVX2.
            let (a, b) = unsafe { (Self::half(p), Self::half(p.add(32))) };
            Masks {
                newline: join(a[0], b[0]),
                space: join(a[1], b[1]),
                high: join(a[2], b[2]),
            }
        }

        #[inline(always)]
        unsafe fn lead_masks(p: *const u8) -> LeadMasks {
            // SAFETY: the caller guarantees 64 readable bytes and AVX2.
            let (a, b) = unsafe { (Self::lead_half(p), Self::lead_half(p.add(32))) };
            LeadMasks {
                ge_c0: join(a[0], b[0]),
                ge_e0: join(a[1], b[1]),
                ge_f0: join(a[2], b[2]),
                open: join(a[3], b[3]),
                space_leads: join(a[4], b[4]),
            }
        }

        #[inline(always)]
        unsafe fn wide_spaces(p: *const u8) -> u64 {
            // SAFETY: the caller guarantees 64 readable bytes and AVX2.
            let (a, b) = unsafe { (Self::wide_half(p), Self::wide_half(p.add(32))) };
            let j = |k: usize| join(a[k], b[k]);
            wide_space_bytes(j(0), j(1), j(2), j(3), j(4), j(5), j(6), j(7), j(8), j(9))
        }
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
    if Backend::detect() == Backend::Avx2 {
        // SAFETY: that backend is chosen only when the CPU has AVX2.
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

/// Below this a file is counted on one core; above, on all of them (at
/// 3 MiB two cores already gain more than the threads cost).
pub const PARALLEL_MIN: u64 = 2 << 20;

/// Counts an open file from its current offset to its end, as fast as the
/// machine allows. With `lines_only`, only `lines` and `bytes` are computed.
///
/// A regular file of [`PARALLEL_MIN`] bytes or more is counted in one range
/// per core, each read with `pread` on its own thread; anything else is read
/// on this thread. Either way the offset is left at the end.
pub fn wc_file(file: &File, lines_only: bool) -> io::Result<WcCounts> {
    let mut c = WcCounter::new();
    count_into(file, &mut c, lines_only, super::NO_LIMIT, super::cores())?;
    Ok(c.finish())
}

/// Adds at most `limit` bytes of `file`, from its offset, to `c`, on
/// `threads` threads when there are [`PARALLEL_MIN`] bytes or more; leaves
/// the offset after them. The offset must be a [`seam`] unless `c` is new.
pub(crate) fn count_into(
    file: &File,
    c: &mut WcCounter,
    lines_only: bool,
    limit: u64,
    threads: usize,
) -> io::Result<()> {
    let parallel = Parallel {
        threads,
        min: PARALLEL_MIN,
        chunk: PAR_CHUNK,
    };
    count_into_with(
        file,
        c,
        lines_only,
        limit,
        parallel,
        super::Place::of(file)?,
    )
}

/// How a count runs in parallel: on `threads` threads from `min` bytes on,
/// in chunks of `chunk` bytes. Tests make the last two small.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parallel {
    pub threads: usize,
    pub min: u64,
    pub chunk: u64,
}

/// [`count_into`] with the parallel count set up as given, from `place`
/// (a regular file's offset and size; only such a file is counted in
/// parallel).
pub(crate) fn count_into_with(
    file: &File,
    c: &mut WcCounter,
    lines_only: bool,
    limit: u64,
    parallel: Parallel,
    place: Option<super::Place>,
) -> io::Result<()> {
    let Parallel {
        threads,
        min: parallel_min,
        chunk,
    } = parallel;
    if let Some(place) = place.filter(|_| threads > 1) {
        let start = place.at;
        let len = place.left().min(limit);
        if len >= parallel_min.max(1) {
            let end = if limit == super::NO_LIMIT {
                // The last range reads on to whatever the end is by then.
                u64::MAX
            } else {
                start + len
            };
            let measure = if lines_only {
                Measure::Lines
            } else {
                Measure::Counter(c.fresh_like())
            };
            let part = wc_parallel(file, start, len, end, threads, chunk, &measure)?;
            // Leave the offset after what was read, as reading would.
            seek_to(file, start + part.counts.bytes)?;
            c.append(part);
            return Ok(());
        }
    }
    super::read_all(file, limit, super::Place::read_at(place), |buf| {
        if lines_only {
            c.counts.lines += count_newlines(buf);
            c.counts.bytes += buf.len() as u64;
        } else {
            c.update(buf);
        }
    })
}

/// The first offset at or after `at` that no accepted UTF-8 sequence of
/// `file` crosses: a sequence has at most 5 continuation bytes, so stepping
/// over up to 5 finds one (if a sixth follows, nothing crosses before it).
pub(crate) fn seam(file: &File, mut at: u64) -> io::Result<u64> {
    let mut probe = [0u8; 5];
    let n = loop {
        match file.read_at(&mut probe, at) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    for &b in &probe[..n] {
        if b & 0xc0 != 0x80 {
            break;
        }
        at += 1;
    }
    Ok(at)
}

fn seek_to(file: &File, at: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(at)).map(drop)
}

/// What the chunks of a parallel count compute: lines and bytes only, or
/// what a counter like this (new) one does.
enum Measure {
    Lines,
    Counter(WcCounter),
}

/// Bytes the threads of a parallel count take at a time.
pub(crate) const PAR_CHUNK: u64 = 4 << 20;

/// Counts `[start, start + len)`, and on to `end` if the file grew (`end`
/// is `u64::MAX` to read to the end), on `threads` threads. The threads take
/// chunks of about `chunk` bytes in turn, so one that the scheduler
/// holds back delays the end by one chunk at most. Each chunk starts on a
/// [`seam`], so characters are never split; word states are joined at the
/// seams.
fn wc_parallel(
    file: &File,
    start: u64,
    len: u64,
    end: u64,
    threads: usize,
    chunk: u64,
    measure: &Measure,
) -> io::Result<WcCounter> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let chunk = chunk.max(1);
    let chunks = len.div_ceil(chunk).max(1) as usize;
    // Where chunk k starts; chunk `chunks` is the end. Every thread that
    // needs a bound finds the same one.
    let bound = |k: usize| -> io::Result<u64> {
        if k == 0 {
            Ok(start)
        } else if k >= chunks {
            Ok(end)
        } else {
            Ok(seam(file, start + k as u64 * chunk)?.min(end))
        }
    };
    let next = AtomicUsize::new(0);
    let take = || -> io::Result<Vec<(usize, WcCounter)>> {
        let mut buf = vec![0u8; CHUNK];
        let mut done = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= chunks {
                return Ok(done);
            }
            let (from, to) = (bound(k)?, bound(k + 1)?);
            done.push((k, count_range(file, from, to.max(from), measure, &mut buf)?));
        }
    };
    let results: Vec<io::Result<Vec<(usize, WcCounter)>>> = std::thread::scope(|scope| {
        // One share runs here; the others each on a thread of their own.
        let handles: Vec<_> = (1..threads.min(chunks))
            .map(|_| scope.spawn(take))
            .collect();
        let here = take();
        std::iter::once(here)
            .chain(handles.into_iter().map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("counting thread failed")))
            }))
            .collect()
    });
    let mut parts = Vec::with_capacity(chunks);
    for r in results {
        parts.extend(r?);
    }
    parts.sort_unstable_by_key(|&(k, _)| k);
    let mut total = match measure {
        Measure::Lines => WcCounter::new(),
        Measure::Counter(c) => c.fresh_like(),
    };
    for (_, part) in parts {
        total.append(part);
    }
    Ok(total)
}

fn count_range(
    file: &File,
    from: u64,
    to: u64,
    measure: &Measure,
    buf: &mut [u8],
) -> io::Result<WcCounter> {
    let (mut c, lines_only) = match measure {
        Measure::Lines => (WcCounter::new(), true),
        Measure::Counter(c) => (c.fresh_like(), false),
    };
    let mut at = from;
    while at < to {
        let want = (to - at).min(buf.len() as u64) as usize;
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

/// Counts `buf`, fed in pieces of `step` bytes, once with each classifier
/// this CPU can run, the byte-at-a-time reference first: all must agree.
/// For the fuzz targets and `tests/decoders.rs`, which cannot pick one.
#[doc(hidden)]
pub fn count_with_each_backend(buf: &[u8], step: usize) -> Vec<WcCounts> {
    backends()
        .into_iter()
        .map(|backend| count_with(backend, buf, step))
        .collect()
}

/// Every classifier this CPU can run.
fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Scalar, Backend::Portable];
    #[cfg(target_arch = "x86_64")]
    if Backend::detect() == Backend::Avx2 {
        v.push(Backend::Avx2);
    }
    v
}

/// Counts `data` with one classifier, fed in pieces of `step` bytes.
fn count_with(backend: Backend, data: &[u8], step: usize) -> WcCounts {
    count_by_rules(backend, data, step, false)
}

/// [`count_with`], with the POSIXLY_CORRECT word rule if `posix`.
fn count_by_rules(backend: Backend, data: &[u8], step: usize, posix: bool) -> WcCounts {
    let mut c = WcCounter::new().posixly_correct(posix);
    for chunk in data.chunks(step.max(1)) {
        c.counts.bytes += chunk.len() as u64;
        let mut i = 0;
        if c.pending_len > 0 {
            i = c.resume(chunk);
        }
        if i < chunk.len() {
            c.blocks_with(backend, chunk, i);
        }
    }
    c.finish()
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
    fn controls_and_invalid_bytes_are_word_bytes() {
        // As GNU wc 9.5 and later in C.UTF-8: not white space, so part of words.
        assert_eq!(wc(b"a\x01b"), (0, 1, 3, 3));
        assert_eq!(wc(b"\x01 \x02"), (0, 2, 3, 3));
        assert_eq!(wc(b"\x01"), (0, 1, 1, 1));
        assert_eq!(wc(b"\x7f \0"), (0, 2, 3, 3));
        assert_eq!(wc(b"a\xffb \xe2\x82"), (0, 2, 3, 6));
        assert_eq!(wc(b"\xe2\x82\xacx\xe2"), (0, 1, 2, 5));
        assert_eq!(wc(b"\xed\xa0\x80 \xc0\xaf \xf0\x80\x80\x80"), (0, 3, 2, 11));
        assert_eq!(wc(b"a\0b\n"), (1, 1, 4, 4));
        assert_eq!(wc(b"\xff"), (0, 1, 0, 1));
        assert_eq!(wc(b" \x80 \x80\x80 "), (0, 2, 3, 6));
    }

    #[test]
    fn a_sequence_cut_by_the_end_is_part_of_a_word() {
        assert_eq!(wc(b"a \xe3\x80"), (0, 2, 2, 4));
        assert_eq!(wc(b"\xe3\x80"), (0, 1, 0, 2));
        // Completed, the same bytes are U+3000, white space.
        assert_eq!(wc(b"a \xe3\x80\x80"), (0, 1, 3, 5));
        let mut c = WcCounter::new();
        c.update(b"a \xe3\x80");
        c.update(b"\x80b");
        assert_eq!(c.finish().words, 2);
        let mut c = WcCounter::new();
        c.update(b"a \xe3\x80");
        assert_eq!(c.finish().words, 2);
    }

    #[test]
    fn long_forms_are_word_characters() {
        // glibc decodes up to 0x7FFFFFFF; none of it is white space.
        assert_eq!(wc(b"a\xf4\x90\x80\x80b"), (0, 1, 3, 6));
        assert_eq!(
            wc(b"\xf7\xbf\xbf\xbf \xf8\x88\x80\x80\x80 \xfc\x84\x80\x80\x80\x80"),
            (0, 3, 5, 17)
        );
        // Overlong long forms are refused byte by byte, and still words.
        assert_eq!(wc(b"\xf8\x87\xbf\xbf\xbf"), (0, 1, 0, 5));
        assert_eq!(wc(b"\xfc\x83\xbf\xbf\xbf\xbf"), (0, 1, 0, 6));
    }

    #[test]
    fn unicode_spaces_and_unprintables() {
        // U+2003 EM SPACE and the line and paragraph separators separate.
        assert_eq!(wc("a\u{2003}b".as_bytes()).1, 2);
        assert_eq!(wc("a\u{2028}b\u{2029}c".as_bytes()).1, 3);
        // U+0085 is a control, not white space: part of a word.
        assert_eq!(wc("a\u{85}b x \u{85} y".as_bytes()).1, 4);
        // Unassigned, private use and zero-width characters are words too.
        assert_eq!(wc("\u{378}".as_bytes()).1, 1);
        assert_eq!(wc("\u{e000}".as_bytes()).1, 1);
        assert_eq!(wc("a\u{200b}b".as_bytes()).1, 1);
        assert_eq!(class_of(0x3134b, false), Class::Word);
        assert_eq!(class_of(0x110000, false), Class::Word);
        assert_eq!(class_of(0x180e, false), Class::Word);
    }

    #[test]
    fn no_break_spaces_separate_words() {
        for nb in ['\u{a0}', '\u{2007}', '\u{202f}', '\u{2060}'] {
            assert_eq!(wc(format!("a{nb}b").as_bytes()).1, 2, "U+{:04X}", nb as u32);
        }
    }

    #[test]
    fn posixly_correct_no_break_spaces_are_parts_of_words() {
        // coreutils' wc.c: `maybe_c32isnbspace` is false once
        // POSIXLY_CORRECT is set; the other wide spaces still separate.
        for cp in (0x80..0x110000).filter(|&cp| is_wide_space(cp)) {
            let Some(ch) = char::from_u32(cp) else {
                continue;
            };
            let words = if is_no_break_space(cp) { 1 } else { 2 };
            let mut enc = [0u8; 4];
            let enc = ch.encode_utf8(&mut enc).as_bytes();
            // In a block, at its end, across two blocks, and fed byte by
            // byte (the scalar decoder, resuming a pending sequence).
            for pad in [0, 60, 62, 63] {
                let mut data = vec![b'x'; pad];
                data.push(b' ');
                data.push(b'a');
                data.extend_from_slice(enc);
                data.push(b'b');
                let want = if pad == 0 { words } else { words + 1 };
                for backend in backends() {
                    for step in [data.len(), 1, 61] {
                        let got = count_by_rules(backend, &data, step, true);
                        assert_eq!(
                            got.words, want,
                            "{backend:?}: U+{cp:04X} after {pad}, by {step}"
                        );
                        let gnu = count_by_rules(backend, &data, step, false);
                        assert_eq!(gnu.words, if pad == 0 { 2 } else { 3 });
                    }
                }
            }
        }
        // The rule travels to the counters of a parallel count's ranges.
        let c = WcCounter::with_width().posixly_correct(true);
        assert!(c.fresh_like().posix);
    }

    #[test]
    fn every_code_point_classified_alike_by_every_backend() {
        // The block masks find the spaces by their bytes, the scalar path by
        // decoding: both must agree with the list, at both ends of a block.
        let spaces: Vec<u32> = (0x80..0x110000).filter(|&cp| is_wide_space(cp)).collect();
        assert_eq!(spaces.len(), 19);
        // Every code point of the leads C2, E1, E2 and E3 (those the
        // spaces use), and a sample of the others.
        let near = (0x80..0xc0).chain(0x1000..0x4000);
        let others = (0xc0..0x110000u32).step_by(97);
        for cp in near.chain(others) {
            let Some(ch) = char::from_u32(cp) else {
                continue;
            };
            let expect = if is_wide_space(cp) { 2 } else { 1 };
            let mut enc = [0u8; 4];
            let enc = ch.encode_utf8(&mut enc).as_bytes();
            for pad in [0, 60] {
                let mut data = vec![b'x'; pad];
                data.push(b'a');
                data.extend_from_slice(enc);
                data.push(b'b');
                let want = (0, expect, pad as u64 + 3);
                for backend in backends() {
                    let got = count_with(backend, &data, data.len());
                    assert_eq!(
                        (got.lines, got.words, got.chars),
                        want,
                        "{backend:?}: U+{cp:04X} after {pad}"
                    );
                }
            }
        }
    }

    #[test]
    fn open_leads_take_any_continuation_bytes() {
        assert_ne!(OPEN_LEADS, 0);
        for b in 0xc0..=0xffu8 {
            let open = OPEN_LEADS >> (b - 0xc0) & 1 != 0;
            let lookup = OPEN_LO[(b & 15) as usize] & OPEN_HI[(b >> 4) as usize] != 0;
            assert_eq!(lookup, open, "{b:02X}");
            if !open {
                continue;
            }
            let len = if b < 0xe0 {
                2
            } else if b < 0xf0 {
                3
            } else {
                4
            };
            for second in 0x80..=0xbfu8 {
                let mut s = vec![b, second];
                s.resize(len, 0x80);
                assert!(
                    matches!(decode(&s, 0), Decoded::Char(_, l) if l == len),
                    "{s:02X?}"
                );
            }
        }
        for b in 0..0xc0u8 {
            assert_eq!(OPEN_LO[(b & 15) as usize] & OPEN_HI[(b >> 4) as usize], 0);
        }
    }

    fn corpus(seed: u32, n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        let mut x: u32 = seed;
        let pieces: [&[u8]; 20] = [
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
            "“q”—".as_bytes(),
            "\u{a0}".as_bytes(),
            "\u{85}".as_bytes(),
            b"\xf8\x88\x80\x80\x80",
            b"\xf4\x90\x80\x80",
            b"\xed\xa0\x80",
            "한".as_bytes(),
            b"The quick brown fox jumps over the lazy dog, again and again. ",
        ];
        for _ in 0..n {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.extend_from_slice(pieces[(x >> 16) as usize % pieces.len()]);
        }
        v
    }

    #[test]
    fn all_backends_agree_on_any_split() {
        for seed in 1..6 {
            let data = corpus(seed, 3000);
            let reference = count_with(Backend::Scalar, &data, data.len());
            for backend in backends() {
                for step in [1, 2, 3, 5, 7, 63, 64, 65, 127, 1000, data.len()] {
                    assert_eq!(
                        count_with(backend, &data, step),
                        reference,
                        "{backend:?}, chunks of {step}, seed {seed}"
                    );
                }
            }
        }
    }

    #[test]
    fn all_backends_agree_on_random_bytes() {
        // Bytes drawn mostly from the interesting ones: continuation and lead
        // bytes of every length, spaces, controls, letters.
        const POOL: &[u8] = b"\x80\x8f\x90\x9f\xa0\xbf\xc0\xc2\xc3\xdf\xe0\xe2\xe3\xe4\xed\xef\
            \xf0\xf4\xf5\xf8\xfc\xfd\xfe\xff a\n\x01\x7f";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..300 {
            let len = 1 + (round * 7) % 700;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x % 4 == 0 {
                        (x >> 8) as u8
                    } else {
                        POOL[(x >> 8) as usize % POOL.len()]
                    }
                })
                .collect();
            let reference = count_with(Backend::Scalar, &data, data.len());
            for backend in backends() {
                for step in [1, 3, 64, 100, data.len()] {
                    assert_eq!(
                        count_with(backend, &data, step),
                        reference,
                        "{backend:?}, chunks of {step}: {data:02x?}"
                    );
                }
            }
        }
    }

    #[test]
    fn all_backends_agree_at_every_block_offset() {
        // Every piece at every position relative to the 64-byte blocks.
        let pieces: [&[u8]; 10] = [
            "é".as_bytes(),
            "東".as_bytes(),
            "🙂".as_bytes(),
            "\u{3000}".as_bytes(),
            "\u{85}".as_bytes(),
            b"\xf8\x88\x80\x80\x80",
            b"\xe2\x82",
            b"\x01",
            b" ",
            b"\xfc\x84\x80\x80\x80\x80",
        ];
        for p in pieces {
            for q in pieces {
                for offset in 0..130 {
                    let mut data = vec![b'x'; offset];
                    data.extend_from_slice(p);
                    data.extend_from_slice(b"y");
                    data.extend_from_slice(q);
                    data.extend_from_slice(&[b'z'; 70]);
                    let reference = count_with(Backend::Scalar, &data, data.len());
                    for backend in backends() {
                        assert_eq!(
                            count_with(backend, &data, data.len()),
                            reference,
                            "{backend:?}: {data:02x?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn any_split_gives_the_same_counts() {
        let data = corpus(12345, 5000);
        let whole = count_slice(&data);
        for cut in 0..300 {
            let mut c = WcCounter::new();
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            assert_eq!(c.finish(), whole, "cut at {cut}");
        }
    }

    #[test]
    fn newlines() {
        let text = b"The quick brown fox jumps over the lazy dog.\n".repeat(100);
        assert_eq!(count_newlines(&text), 100);
        assert_eq!(count_newlines(&text[1..4000]), 88);
    }

    #[test]
    fn files_parallel_and_sequential_agree() {
        // Above PARALLEL_MIN, with multi-byte characters, long forms and
        // words in every seam position.
        let mut f = tempfile::tempfile().unwrap();
        let unit = "wörd\t東京x\u{a0}y \x01z\n".as_bytes();
        let mut data = Vec::new();
        while data.len() < (PARALLEL_MIN as usize) + 12_345 {
            data.extend_from_slice(unit);
            data.extend_from_slice(b"\xfc\x84\x80\x80\x80\x80");
        }
        f.write_all(&data).unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let expected = count_slice(&data);
        let width = super::super::width::max_line_length(&data);
        assert_eq!(wc_file(&f, false).unwrap(), expected);
        f.rewind().unwrap();
        let l = wc_file(&f, true).unwrap();
        assert_eq!((l.lines, l.bytes), (expected.lines, expected.bytes));
        for threads in 2..6 {
            for chunk in [PAR_CHUNK, 1 << 20, 12_345] {
                let counts = Measure::Counter(WcCounter::new());
                let got = wc_parallel(&f, 0, data.len() as u64, u64::MAX, threads, chunk, &counts);
                assert_eq!(
                    got.unwrap().finish(),
                    expected,
                    "{threads} threads, {chunk}"
                );
                // With widths: the longest line's width joins across seams.
                let widths = Measure::Counter(WcCounter::with_width());
                let got = wc_parallel(&f, 0, data.len() as u64, u64::MAX, threads, chunk, &widths);
                assert_eq!(
                    got.unwrap().finish_with_width(),
                    (expected, Some(width)),
                    "{threads} threads, {chunk}, widths"
                );
            }
        }
        // Seams at every offset within a few units.
        let len = data.len() as u64;
        for shift in 0..40u64 {
            let counts = Measure::Counter(WcCounter::new());
            let got = wc_parallel(&f, shift, len - shift, u64::MAX, 2, 1 << 20, &counts).unwrap();
            assert_eq!(
                got.finish(),
                count_slice(&data[shift as usize..]),
                "from {shift}"
            );
        }
    }
}
