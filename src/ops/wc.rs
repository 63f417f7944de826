//! Line, word, byte and character counts with GNU `wc` semantics in a UTF-8 locale.
//!
//! # What is counted
//!
//! The counts are those of `LC_ALL=C.UTF-8 wc -lwmc` from GNU coreutils 9.1
//! with glibc 2.36 (Debian 12), checked against that binary by
//! `tests/oracle_ops.rs`, exhaustively over every code point and every lead
//! byte with every second byte:
//!
//! - `lines` counts `\n` bytes and `bytes` counts bytes, whatever the input.
//! - `chars` counts the characters glibc's UTF-8 decoder accepts. Besides
//!   standard UTF-8 that decoder also takes the old long forms: 4-byte
//!   sequences up to `F7 BF BF BF`, 5-byte (`F8`–`FB`) and 6-byte (`FC`, `FD`)
//!   ones, i.e. values up to 0x7FFFFFFF. It refuses overlong forms, surrogates
//!   (`ED A0`–`ED BF`), `C0`, `C1`, `FE`, `FF` and stray continuation bytes. A
//!   refused byte counts as no character and decoding resumes at the next
//!   byte; a sequence cut short by the end of the input counts as none.
//! - A word is a run of printable characters between white space. White
//!   space is `\t \n \v \f \r` and space, the printable characters glibc calls
//!   spaces (U+1680, U+2000–U+2006, U+2008–U+200A, U+205F, U+3000), and the
//!   no-break spaces U+00A0, U+2007, U+202F and U+2060, which this `wc` 9.1
//!   (Debian's) treats as separators too. Everything that is neither white
//!   space nor printable is *transparent*: ASCII controls and DEL, C1
//!   controls, U+2028/U+2029, unassigned code points, values above U+10FFFF
//!   and invalid bytes neither start nor end a word, so `a\x01b` is one word.
//! - Printable is glibc's `iswprint` in `C.UTF-8`, from the generated table in
//!   [`super::unicode_tables`] (glibc 2.36, Unicode 14). For code points that
//!   later Unicode versions assign, this follows that table, not the newer
//!   standard: a code point unassigned in Unicode 14 is transparent, as it is
//!   for the GNU `wc` the table came from.
//!
//! # How it is fast
//!
//! Input is taken 64 bytes at a time. AVX2 compares (chosen at run time; a
//! table-driven portable classifier otherwise) turn a block into bit masks,
//! bit k for byte k: newline, white space, control, high bit, and for blocks
//! with non-ASCII bytes the UTF-8 lead bytes by length and the "safe" lead
//! bytes (those whose every character is printable and not a space, like
//! `C3` or `E4`–`E9`). There is no AVX-512 version: on the Zen 4 machines
//! this is measured on, one ran the blocks 9% faster in memory but counted a
//! cached file no faster (about half of that time is the copy out of the
//! page cache), and its intrinsics need Rust 1.89, above the crate's
//! `rust-version`. The `Classify` trait is where one would go.
//!
//! Each byte is then a word byte (W), a space (S) or transparent (T).
//! Continuation bytes are T, so a multi-byte character acts through its lead
//! byte alone. A word starts at a W whose last non-T predecessor is S (or the
//! start, when not inside a word). Runs of T after a W are found with one
//! addition: adding the bits that start such runs to the T mask carries
//! through each run. Word starts are then `W & !(inside << 1 | carry)` and
//! one popcount, with the in-word state carried from block to block.
//!
//! UTF-8 is checked with the same masks: in valid text the continuation
//! bytes are exactly those that the lead bytes announce. Then only lead
//! bytes that are not safe are decoded, one by one, to find their class; a
//! character that the block cuts off is left to the next block. A block that
//! fails the check (binary data, mostly) is still counted through its masks:
//! a lead byte can never be inside another character, so each lead is
//! decoded on its own and everything else that is not ASCII is transparent.
//! Only a sequence cut by the end of the buffer goes to a scalar decoder,
//! which keeps it for the next buffer.
//!
//! Large files are split into chunks of a few MiB, each starting on a byte
//! that no accepted sequence crosses, read with `pread` by one thread per
//! core, each taking the next chunk when done with one; the chunks' word
//! states are joined at the seams.

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

/// Printable code points above ASCII that `wc` takes as white space.
const fn is_space(cp: u32) -> bool {
    matches!(
        cp,
        0xa0 | 0x1680 | 0x2000..=0x200a | 0x202f | 0x205f | 0x2060 | 0x3000
    )
}

/// Code points below this are looked up in [`SPECIAL`]; above it (rare in
/// text: planes 3 to 16) by binary search.
const BITMAP_LIMIT: u32 = 0x30000;

/// One bit per code point below [`BITMAP_LIMIT`]: set when the code point is
/// not a plain word character (it is non-printable or a space). 24 KiB,
/// built at compile time from glibc's table.
static SPECIAL: [u64; (BITMAP_LIMIT / 64) as usize] = {
    let mut t = [0u64; (BITMAP_LIMIT / 64) as usize];
    let mut k = 0;
    while k < NON_PRINTABLE.len() {
        let (lo, hi) = NON_PRINTABLE[k];
        let mut cp = lo;
        while cp <= hi && cp < BITMAP_LIMIT {
            t[(cp / 64) as usize] |= 1 << (cp % 64);
            cp += 1;
        }
        k += 1;
    }
    let mut cp = 0x80;
    while cp < 0x3001 {
        if is_space(cp) {
            t[(cp / 64) as usize] |= 1 << (cp % 64);
        }
        cp += 1;
    }
    t
};

fn non_printable_above_bitmap(cp: u32) -> bool {
    cp > 0x10ffff
        || NON_PRINTABLE
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

fn class_of(cp: u32) -> Class {
    if cp < 0x80 {
        return ASCII[cp as usize];
    }
    let special = if cp < BITMAP_LIMIT {
        SPECIAL[(cp / 64) as usize] >> (cp % 64) & 1 != 0
    } else {
        non_printable_above_bitmap(cp)
    };
    if !special {
        Class::Word
    } else if is_space(cp) {
        Class::Space
    } else {
        Class::Transparent
    }
}

/// Lead bytes whose every character is a plain word character and which
/// take any continuation bytes (no overlong or surrogate forms to refuse):
/// bit `b - 0xC0` for lead byte `b`. Derived at compile time from the table;
/// it comes out as `C3`–`CC`, `CF`, `D0`–`D3`, `D8`–`DB`, `E4`–`E9`, `EB`,
/// `EC` and `EE`. Characters with these leads need no decoding at all.
const SAFE_LEADS: u64 = {
    let mut safe = 0u64;
    let mut b: u32 = 0xc2;
    while b <= 0xef {
        // Only leads whose second byte may be any continuation byte.
        if b != 0xe0 && b != 0xed {
            let (lo, hi) = if b < 0xe0 {
                ((b & 0x1f) << 6, ((b & 0x1f) << 6) + 0x3f)
            } else {
                ((b & 0x0f) << 12, ((b & 0x0f) << 12) + 0xfff)
            };
            let mut clean = true;
            let mut cp = lo;
            while cp <= hi {
                if SPECIAL[(cp / 64) as usize] >> (cp % 64) & 1 != 0 {
                    clean = false;
                }
                cp += 1;
            }
            if clean {
                safe |= 1 << (b - 0xc0);
            }
        }
        b += 1;
    }
    safe
};

/// [`SAFE_LEADS`] as two 16-byte tables for a nibble lookup (`pshufb`):
/// `LO[b & 15] & HI[b >> 4]` is non-zero exactly for a safe lead `b`. `HI`
/// gives rows C to F one bit each; `LO` says in which rows each low nibble
/// is safe.
const SAFE_LO: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut k = 0;
    while k < 64 {
        if SAFE_LEADS >> k & 1 != 0 {
            t[k % 16] |= 1 << (k / 16);
        }
        k += 1;
    }
    t
};
const SAFE_HI: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8];

/// One step of UTF-8 decoding at a position.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
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
fn decode(s: &[u8], i: usize) -> Decoded {
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

/// Decodes the character at `s[at]`, a lead byte whose continuation bytes
/// are known to be present (the block masks checked them). `None` for what
/// standard UTF-8 refuses there: overlong forms, surrogates, values past
/// U+10FFFF and the lead bytes of long forms. glibc accepts some of those,
/// so the caller then takes the exact, scalar path.
#[inline(always)]
fn decode_announced(s: &[u8], at: usize) -> Option<u32> {
    let b0 = u32::from(s[at]);
    let c = |k: usize| u32::from(s[at + k] & 0x3f);
    let (cp, min) = if b0 < 0xe0 {
        (((b0 & 0x1f) << 6) | c(1), 0x80)
    } else if b0 < 0xf0 {
        (((b0 & 0x0f) << 12) | (c(1) << 6) | c(2), 0x800)
    } else {
        (
            ((b0 & 0x07) << 18) | (c(1) << 12) | (c(2) << 6) | c(3),
            0x10000,
        )
    };
    let standard = cp >= min && cp <= 0x10ffff && !(0xd800..=0xdfff).contains(&cp) && b0 <= 0xf4;
    standard.then_some(cp)
}

/// Bit masks of a 64-byte block, bit k for byte k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Masks {
    newline: u64,
    /// ASCII white space: `\t \n \v \f \r` and space.
    space: u64,
    /// ASCII controls other than white space, and DEL.
    control: u64,
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
    /// Lead bytes in [`SAFE_LEADS`].
    safe: u64,
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
}

/// The table-driven classifier, for any CPU.
struct Portable;

const F_NEWLINE: u8 = 1;
const F_SPACE: u8 = 2;
const F_CONTROL: u8 = 4;
const F_HIGH: u8 = 8;
const F_GE_C0: u8 = 16;
const F_GE_E0: u8 = 32;
const F_GE_F0: u8 = 64;
const F_SAFE: u8 = 128;

static BYTE_FLAGS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let mut f = 0;
        if b == b'\n' as usize {
            f |= F_NEWLINE;
        }
        match ascii_class(b as u8) {
            Class::Space if b < 0x80 => f |= F_SPACE,
            Class::Transparent if b < 0x80 => f |= F_CONTROL,
            _ => {}
        }
        if b >= 0x80 {
            f |= F_HIGH;
        }
        if b >= 0xc0 {
            f |= F_GE_C0;
            if SAFE_LEADS >> (b - 0xc0) & 1 != 0 {
                f |= F_SAFE;
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
            control: Self::mask(p, F_CONTROL),
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
            safe: Self::mask(p, F_SAFE),
        }
    }
}

/// Incremental counter: feed any split of the input, get the same counts.
#[derive(Debug, Default, Clone)]
pub struct WcCounter {
    counts: WcCounts,
    in_word: bool,
    /// Whether the first character that is not transparent was a word
    /// character; lets the counts of adjacent ranges be joined.
    first_is_word: Option<bool>,
    /// The start of a sequence that the last buffer ended in.
    pending: [u8; 8],
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
        if i < buf.len() {
            self.blocks_with(Backend::detect(), buf, i);
        }
    }

    /// Continues these counts with `next`, the counts of the bytes that
    /// follow, which must start on a [`seam`]: no accepted sequence crosses
    /// it, so only the word that may go on across it needs joining.
    pub fn append(&mut self, next: WcCounter) {
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
        // A sequence of ours cut at a seam never completes: it is no
        // character, and forgetting it says so.
        self.pending = next.pending;
        self.pending_len = next.pending_len;
    }

    pub fn finish(self) -> WcCounts {
        // Bytes of a sequence cut short by the end count as no character.
        self.counts
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
                transparent: m.control,
                chars: n as u32,
            })
        } else {
            // SAFETY: guaranteed by the caller.
            let l = unsafe { C::lead_masks(p) };
            match regular(buf, i, real, &m, &l) {
                Some(c) => Some(c),
                None => irregular(buf, i, n, real, &m, &l),
            }
        };
        let Some(c) = classes else {
            // A sequence cut by the end of `buf`: the scalar path keeps it.
            return self.scalar(buf, i, i + n);
        };
        // Bytes beyond the valid ones change nothing.
        let transparent = c.transparent | !c.valid;
        let space = c.space & c.valid;
        let word = !space & !transparent;
        let carry = u64::from(self.in_word);
        // Transparent runs that follow a word byte (or the block start, when
        // inside a word) are inside that word: adding their first bits to
        // the transparent mask carries through exactly those runs.
        let seed = ((word << 1) | carry) & transparent;
        let filled = (transparent.wrapping_add(seed) ^ transparent) & transparent;
        let inside = word | filled;
        let starts = word & !((inside << 1) | carry);
        self.counts.words += u64::from(starts.count_ones());
        self.counts.lines += u64::from((m.newline & c.valid).count_ones());
        self.counts.chars += u64::from(c.chars);
        if self.first_is_word.is_none() {
            let decided = word | space;
            if decided != 0 {
                self.first_is_word = Some(word & decided & decided.wrapping_neg() != 0);
            }
        }
        self.in_word = inside >> 63 != 0;
        i + c.valid.count_ones() as usize
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
    /// Does not count bytes.
    fn scalar(&mut self, s: &[u8], mut i: usize, stop: usize) -> usize {
        while i < stop {
            let b = s[i];
            if b < 0x80 {
                self.counts.lines += u64::from(b == b'\n');
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
                    self.event(class_of(cp));
                    j += len;
                }
                Decoded::Invalid => j += 1,
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

/// The classes of the bytes of a block, as bit masks; what is in neither
/// `space` nor `transparent` is a word byte.
#[derive(Debug, Clone, Copy)]
struct Classes {
    /// The bytes this block accounts for (a prefix of it).
    valid: u64,
    space: u64,
    transparent: u64,
    /// Characters that start in the valid bytes.
    chars: u32,
}

/// Classes of a block of valid UTF-8 in standard forms, the common case.
/// `None` when the block holds anything else.
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
    let mut space = m.space;
    let mut transparent = m.control | continuation;
    let mut special = l.ge_c0 & !l.safe & valid;
    while special != 0 {
        let pos = special.trailing_zeros() as usize;
        special &= special - 1;
        match class_of(decode_announced(buf, i + pos)?) {
            Class::Word => {}
            Class::Space => space |= 1 << pos,
            Class::Transparent => transparent |= 1 << pos,
        }
    }
    Some(Classes {
        valid,
        space,
        transparent,
        chars: (valid & !continuation).count_ones(),
    })
}

/// Classes of a block with invalid bytes or long forms (binary data, mostly).
/// A lead byte is never inside another character, so each lead decodes on
/// its own: ASCII bytes and the leads that decode start characters, and every
/// other byte is transparent. Leads near the end may read into the next
/// block, whose stray continuation bytes are then transparent there too.
/// `None` for a sequence cut by the end of `buf`.
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
    let (c1, c2) = (continuation >> 1, continuation >> 2);
    // Safe leads (2 or 3 bytes, any continuation bytes) whose continuation
    // bytes are all here: word characters, no decoding needed.
    let safe_whole = leads & l.safe & c1 & (!l.ge_e0 | c2);
    // The others need decoding if a continuation byte follows, or if the
    // byte after them is not in this block.
    let last = 1u64 << (n - 1);
    let mut rest = leads & !safe_whole & (c1 | last);
    let mut space = m.space;
    let mut transparent = m.control | continuation | (leads & !safe_whole);
    let mut chars = (real & !m.high).count_ones() + safe_whole.count_ones();
    while rest != 0 {
        let pos = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        match decode(buf, i + pos) {
            Decoded::Char(cp, _) => {
                chars += 1;
                match class_of(cp) {
                    Class::Word => transparent &= !(1 << pos),
                    Class::Space => {
                        transparent &= !(1 << pos);
                        space |= 1 << pos;
                    }
                    Class::Transparent => {}
                }
            }
            Decoded::Invalid => {}
            Decoded::Incomplete => return None,
        }
    }
    Some(Classes {
        valid: real,
        space,
        transparent,
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
    use super::{Classify, LeadMasks, Masks, SAFE_HI, SAFE_LO};
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
        unsafe fn half(p: *const u8) -> [i32; 4] {
            // SAFETY: the caller guarantees 32 readable bytes and AVX2.
            unsafe {
                let v = _mm256_loadu_si256(p as *const __m256i);
                // Signed compares: bytes >= 0x80 are negative, so below 9
                // and not above 14.
                let tab_to_cr = _mm256_and_si256(
                    _mm256_cmpgt_epi8(v, _mm256_set1_epi8(8)),
                    _mm256_cmpgt_epi8(_mm256_set1_epi8(14), v),
                );
                let below_space = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1f)), v);
                let del = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(0x7f));
                let space = _mm256_or_si256(
                    tab_to_cr,
                    _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b' ' as i8)),
                );
                let control = _mm256_or_si256(_mm256_andnot_si256(tab_to_cr, below_space), del);
                let newline = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\n' as i8));
                [
                    _mm256_movemask_epi8(newline),
                    _mm256_movemask_epi8(space),
                    _mm256_movemask_epi8(control),
                    _mm256_movemask_epi8(v),
                ]
            }
        }

        #[inline(always)]
        unsafe fn lead_half(p: *const u8) -> [i32; 4] {
            // SAFETY: the caller guarantees 32 readable bytes and AVX2.
            unsafe {
                let v = _mm256_loadu_si256(p as *const __m256i);
                let lo_table = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                    SAFE_LO.as_ptr() as *const __m128i
                ));
                let hi_table = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                    SAFE_HI.as_ptr() as *const __m128i
                ));
                let nibble = _mm256_set1_epi8(0x0f);
                let lo = _mm256_shuffle_epi8(lo_table, _mm256_and_si256(v, nibble));
                let hi = _mm256_shuffle_epi8(
                    hi_table,
                    _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble),
                );
                let unsafe_lead =
                    _mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256());
                [
                    _mm256_movemask_epi8(Self::ge(v, 0xc0)),
                    _mm256_movemask_epi8(Self::ge(v, 0xe0)),
                    _mm256_movemask_epi8(Self::ge(v, 0xf0)),
                    !_mm256_movemask_epi8(unsafe_lead),
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
                control: join(a[2], b[2]),
                high: join(a[3], b[3]),
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
                safe: join(a[3], b[3]),
            }
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
    count_into_with(file, c, lines_only, limit, parallel)
}

/// How a count runs in parallel: on `threads` threads from `min` bytes on,
/// in chunks of `chunk` bytes. Tests make the last two small.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parallel {
    pub threads: usize,
    pub min: u64,
    pub chunk: u64,
}

/// [`count_into`] with the parallel count set up as given.
pub(crate) fn count_into_with(
    file: &File,
    c: &mut WcCounter,
    lines_only: bool,
    limit: u64,
    parallel: Parallel,
) -> io::Result<()> {
    let Parallel {
        threads,
        min: parallel_min,
        chunk,
    } = parallel;
    let md = file.metadata()?;
    if md.is_file() && threads > 1 {
        let start = current_offset(file)?;
        let len = md.len().saturating_sub(start).min(limit);
        if len >= parallel_min.max(1) {
            let end = if limit == super::NO_LIMIT {
                // The last range reads on to whatever the end is by then.
                u64::MAX
            } else {
                start + len
            };
            let part = wc_parallel(file, start, len, end, threads, chunk, lines_only)?;
            // Leave the offset after what was read, as reading would.
            seek_to(file, start + part.counts.bytes)?;
            c.append(part);
            return Ok(());
        }
    }
    super::read_all(file, limit, |buf| {
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

fn current_offset(file: &File) -> io::Result<u64> {
    use std::io::Seek;
    let mut f = file;
    f.stream_position()
}

fn seek_to(file: &File, at: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(at)).map(drop)
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
    lines_only: bool,
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
            done.push((
                k,
                count_range(file, from, to.max(from), lines_only, &mut buf)?,
            ));
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
    let mut total = WcCounter::new();
    for (_, part) in parts {
        total.append(part);
    }
    Ok(total)
}

fn count_range(
    file: &File,
    from: u64,
    to: u64,
    lines_only: bool,
    buf: &mut [u8],
) -> io::Result<WcCounter> {
    let mut c = WcCounter::new();
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
    let mut c = WcCounter::new();
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
    fn controls_and_invalid_bytes_are_transparent() {
        // As GNU wc 9.1 in C.UTF-8: neither starts nor ends a word.
        assert_eq!(wc(b"a\x01b"), (0, 1, 3, 3));
        assert_eq!(wc(b"\x01 \x02"), (0, 0, 3, 3));
        assert_eq!(wc(b"a\xffb \xe2\x82"), (0, 1, 3, 6));
        assert_eq!(wc(b"\xe2\x82\xacx\xe2"), (0, 1, 2, 5));
        assert_eq!(wc(b"\xed\xa0\x80 \xc0\xaf \xf0\x80\x80\x80"), (0, 0, 2, 11));
        assert_eq!(wc(b"a\0b\n"), (1, 1, 4, 4));
    }

    #[test]
    fn long_forms_are_transparent_characters() {
        // glibc decodes up to 0x7FFFFFFF; none of it is printable.
        assert_eq!(wc(b"a\xf4\x90\x80\x80b"), (0, 1, 3, 6));
        assert_eq!(
            wc(b"\xf7\xbf\xbf\xbf \xf8\x88\x80\x80\x80 \xfc\x84\x80\x80\x80\x80"),
            (0, 0, 5, 17)
        );
        // Overlong long forms are refused byte by byte.
        assert_eq!(wc(b"\xf8\x87\xbf\xbf\xbf"), (0, 0, 0, 5));
        assert_eq!(wc(b"\xfc\x83\xbf\xbf\xbf\xbf"), (0, 0, 0, 6));
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
        assert_eq!(class_of(0x3134a), Class::Word);
        assert_eq!(class_of(0x3134b), Class::Transparent);
        assert_eq!(class_of(0x110000), Class::Transparent);
    }

    #[test]
    fn no_break_spaces_separate_words() {
        for nb in ['\u{a0}', '\u{2007}', '\u{202f}', '\u{2060}'] {
            assert_eq!(wc(format!("a{nb}b").as_bytes()).1, 2, "U+{:04X}", nb as u32);
        }
    }

    #[test]
    fn safe_leads_hold_only_word_characters() {
        assert_ne!(SAFE_LEADS, 0);
        for b in 0xc0..=0xffu8 {
            let safe = SAFE_LEADS >> (b - 0xc0) & 1 != 0;
            let lookup = SAFE_LO[(b & 15) as usize] & SAFE_HI[(b >> 4) as usize] != 0;
            assert_eq!(lookup, safe, "{b:02X}");
            if !safe {
                continue;
            }
            assert!((0xc2..=0xef).contains(&b) && b != 0xe0 && b != 0xed);
            let range = if b < 0xe0 {
                let lo = u32::from(b & 0x1f) << 6;
                lo..lo + 0x40
            } else {
                let lo = u32::from(b & 0x0f) << 12;
                lo..lo + 0x1000
            };
            for cp in range {
                assert_eq!(class_of(cp), Class::Word, "lead {b:02X}, U+{cp:04X}");
            }
        }
        for b in 0..0xc0u8 {
            assert_eq!(SAFE_LO[(b & 15) as usize] & SAFE_HI[(b >> 4) as usize], 0);
        }
    }

    #[test]
    fn bitmap_matches_table() {
        for cp in 0x80..0x40000 {
            let from_table = non_printable_above_bitmap(cp) || is_space(cp);
            let class = class_of(cp);
            assert_eq!(class != Class::Word, from_table, "U+{cp:04X}");
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
        let unit = "wörd 東京x\u{a0}y \x01z\n".as_bytes();
        let mut data = Vec::new();
        while data.len() < (PARALLEL_MIN as usize) + 12_345 {
            data.extend_from_slice(unit);
            data.extend_from_slice(b"\xfc\x84\x80\x80\x80\x80");
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
            for chunk in [PAR_CHUNK, 1 << 20, 12_345] {
                let got = wc_parallel(&f, 0, data.len() as u64, u64::MAX, threads, chunk, false);
                assert_eq!(
                    got.unwrap().finish(),
                    expected,
                    "{threads} threads, {chunk}"
                );
            }
        }
        // Seams at every offset within a few units.
        let len = data.len() as u64;
        for shift in 0..40u64 {
            let got = wc_parallel(&f, shift, len - shift, u64::MAX, 2, 1 << 20, false).unwrap();
            assert_eq!(
                got.finish(),
                count_slice(&data[shift as usize..]),
                "from {shift}"
            );
        }
    }
}
