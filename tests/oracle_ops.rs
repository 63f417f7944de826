//! The file computations of `p2p::ops` against the real tools: GNU `wc -lwmc`
//! in `C.UTF-8` and `sha256sum`.
//!
//! Our words follow coreutils 9.5 and later, where everything that is not
//! white space is part of a word; the installed `wc` may be older (Debian
//! 12's 9.1), where controls, unprintable characters and invalid bytes
//! neither start nor end a word and U+2028/U+2029 are not white space. Lines,
//! bytes and characters are the same under both rules and are compared with
//! `wc` as they are. Words are compared where the two rules agree: `wc` counts
//! the words of a copy of the input in which each unit that the old rule
//! skips (decoded as glibc decodes, printability from glibc's own table) is
//! replaced by a letter, and U+2028/U+2029 by a space. Under the old rule
//! that copy has exactly the words the new rule finds in the original. The
//! cases that differ are pinned by value in `rules_that_changed_in_9_5`.
//!
//! Besides a generated corpus of a few hundred varied files, two exhaustive
//! checks pin the Unicode rules to the installed `wc`: every code point's class
//! and the UTF-8 decoder on every lead byte with every second byte. Each check
//! concatenates many small items, compares the totals with `wc` in one run,
//! and on a mismatch bisects down to the items that differ, so a failure
//! names the exact bytes.
//!
//! Without GNU `wc` and `sha256sum` on the PATH these tests pass vacuously
//! (with a note on stderr).

mod common;

use common::agreeing;
use p2p::ops::{sha, stat, wc};
use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn have_gnu_tools() -> bool {
    let ok = Command::new("wc")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU coreutils"))
        && Command::new("sha256sum").arg("--version").output().is_ok();
    if !ok {
        eprintln!("GNU wc or sha256sum not found: oracle checks skipped");
    }
    ok
}

fn parse_wc_line(line: &str) -> (wc::WcCounts, String) {
    let f: Vec<&str> = line.split_whitespace().collect();
    let n: Vec<u64> = f[..4].iter().map(|x| x.parse().unwrap()).collect();
    let counts = wc::WcCounts {
        lines: n[0],
        words: n[1],
        chars: n[2],
        bytes: n[3],
    };
    (counts, f.get(4).unwrap_or(&"").to_string())
}

/// The current rule's counts of `data`, from the installed `wc`: lines,
/// characters and bytes of `data` itself, words of its [`agreeing`] copy.
fn gnu_wc(data: &[u8]) -> wc::WcCounts {
    let mut c = installed_wc(data);
    let copy = agreeing(data);
    if copy != data {
        c.words = installed_wc(&copy).words;
    }
    c
}

/// The installed `wc -lwmc` of some bytes.
fn installed_wc(data: &[u8]) -> wc::WcCounts {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    f.flush().unwrap();
    let out = Command::new("wc")
        .arg("-lwmc")
        .stdin(File::open(f.path()).unwrap())
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(out.status.success());
    parse_wc_line(&String::from_utf8_lossy(&out.stdout)).0
}

/// Compares the counts of the concatenated `items` with GNU's; on a
/// mismatch, bisects to the single items that differ and fails naming them.
/// Items must be independent: each ends in a separator that resets the state.
fn check_items(what: &str, items: &[Vec<u8>]) {
    let mut bad = Vec::new();
    bisect(items, &mut bad);
    if !bad.is_empty() {
        let shown: Vec<String> = bad
            .iter()
            .take(40)
            .map(|(item, ours, gnu)| format!("{item:02x?}: ours (l,w,m,c) {ours:?}, GNU {gnu:?}"))
            .collect();
        panic!(
            "{what}: {} items differ from GNU wc, e.g.\n{}",
            bad.len(),
            shown.join("\n")
        );
    }
}

type Tuple = (u64, u64, u64, u64);

fn tuple(c: wc::WcCounts) -> Tuple {
    (c.lines, c.words, c.chars, c.bytes)
}

fn bisect(items: &[Vec<u8>], bad: &mut Vec<(Vec<u8>, Tuple, Tuple)>) {
    if items.is_empty() || bad.len() >= 40 {
        return;
    }
    let data = items.concat();
    let ours = tuple(wc::count_slice(&data));
    let gnu = tuple(gnu_wc(&data));
    if ours == gnu {
        return;
    }
    if items.len() == 1 {
        bad.push((items[0].clone(), ours, gnu));
        return;
    }
    let (a, b) = items.split_at(items.len() / 2);
    bisect(a, bad);
    bisect(b, bad);
}

/// Each code point in three contexts that together reveal its class: between
/// two letters (a space splits them), alone between spaces (only a word
/// character makes a word), and after a letter before a space.
#[test]
fn every_code_point_is_classified_as_gnu_does() {
    if !have_gnu_tools() {
        return;
    }
    let mut items = Vec::new();
    for cp in 0x80..=0x10ffffu32 {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let mut e = [0u8; 4];
        let e = c.encode_utf8(&mut e).as_bytes();
        let mut item = b"a".to_vec();
        item.extend_from_slice(e);
        item.extend_from_slice(b"b ");
        item.extend_from_slice(e);
        item.extend_from_slice(b" x");
        item.extend_from_slice(e);
        item.push(b'\n');
        items.push(item);
    }
    check_items("code point classes", &items);
}

/// Every lead byte with every second byte, then a few third and fourth bytes
/// chosen at the edges of the valid ranges, each between letters so that
/// transparency shows in the word count.
#[test]
fn utf8_decoding_is_as_gnu_does() {
    if !have_gnu_tools() {
        return;
    }
    const EDGES: [u8; 12] = [
        0x00, 0x20, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff,
    ];
    let wrap = |seq: &[u8]| {
        let mut item = b"a".to_vec();
        item.extend_from_slice(seq);
        item.extend_from_slice(b"b ");
        item.extend_from_slice(seq);
        item.push(b'\n');
        item
    };
    let mut items = Vec::new();
    for lead in 0x80..=0xffu8 {
        for second in 0..=0xffu8 {
            items.push(wrap(&[lead, second]));
            if lead >= 0xe0 {
                for third in EDGES {
                    items.push(wrap(&[lead, second, third]));
                    if lead >= 0xf0 {
                        for fourth in [0x41, 0x80, 0xbf, 0xc0] {
                            items.push(wrap(&[lead, second, third, fourth]));
                            if lead >= 0xf8 {
                                items.push(wrap(&[lead, second, third, fourth, 0x80]));
                                items.push(wrap(&[lead, second, third, fourth, 0x80, 0x80]));
                            }
                        }
                    }
                }
            }
        }
    }
    check_items("UTF-8 decoding", &items);
}

/// What coreutils 9.5 changed, pinned by value (words), with the other
/// counts from the installed `wc`: controls, unprintable characters,
/// invalid bytes and cut sequences are parts of words, alone too, and
/// U+2028/U+2029 are white space. (9.1 counts the words in brackets.)
#[test]
fn rules_that_changed_in_9_5() {
    let cases: [(&[u8], u64, u64); 14] = [
        (b"a\x01b", 1, 1),
        (b"\x01", 1, 0),
        (b"\x01 \x02", 2, 0),
        (b"\0\n\x7f", 2, 0),
        (b"\xff", 1, 0),
        (b"a \xff b", 3, 2),
        ("\u{85}".as_bytes(), 1, 0),
        ("a\u{2028}b\u{2029}c".as_bytes(), 3, 1),
        ("\u{378} \u{e0080}".as_bytes(), 2, 0),
        (b"\xf8\x88\x80\x80\x80", 1, 0),
        (b"x \xe2\x82", 2, 1),
        (b"\xed\xa0\x80", 1, 0),
        // Unchanged: no-break spaces separate, as in 9.1.
        ("a\u{a0}b\u{2007}c\u{202f}d\u{2060}e".as_bytes(), 5, 5),
        ("a\u{3000}b\u{1680}c".as_bytes(), 3, 3),
    ];
    for (data, words, _old) in cases {
        let c = wc::count_slice(data);
        assert_eq!(c.words, words, "{data:02x?}");
        if have_gnu_tools() {
            let g = installed_wc(data);
            assert_eq!((c.lines, c.chars, c.bytes), (g.lines, g.chars, g.bytes));
            assert_eq!(gnu_wc(data).words, words, "agreeing copy of {data:02x?}");
        }
    }
}

/// Sequences cut by the end of the input, with and without a word before.
#[test]
fn sequences_cut_at_the_end() {
    if !have_gnu_tools() {
        return;
    }
    let seqs: [&[u8]; 9] = [
        b"\xc3",
        b"\xe2",
        b"\xe2\x82",
        b"\xf0",
        b"\xf0\x9f",
        b"\xf0\x9f\x99",
        b"\xf8\x88\x80\x80",
        b"\xfc\x84\x80\x80\x80",
        b"\xed\xa0",
    ];
    for s in seqs {
        for prefix in [&b""[..], b"a", b"a ", b"\xe2\x82\xac", b"\x01"] {
            let data = [prefix, s].concat();
            assert_eq!(
                tuple(wc::count_slice(&data)),
                tuple(gnu_wc(&data)),
                "{data:02x?}"
            );
        }
    }
}

fn piece(rng: &mut Rng, out: &mut Vec<u8>) {
    const TEXT: &[&str] = &[
        "word",
        "the",
        "Zeile",
        "naïve",
        "東京",
        "данные",
        "🙂",
        "e\u{301}",
        "\u{3000}",
        "\u{2003}",
        "\u{a0}",
        "\u{2007}",
        "\u{202f}",
        "\u{2060}",
        "\u{85}",
        "\u{2028}",
        "\u{378}",
        "\u{e000}",
        "\u{200b}",
        "\u{feff}",
        "\u{1f600}",
        "“quoted”—dash…",
        "한국어",
    ];
    match rng.below(14) {
        0..=3 => out.extend_from_slice(TEXT[rng.below(TEXT.len() as u64) as usize].as_bytes()),
        4 => out.push(b' '),
        5 => out.push(b'\n'),
        6 => out.extend_from_slice(b"\r\n"),
        7 => out.push(b"\t\x0b\x0c"[rng.below(3) as usize]),
        8 => out.push(rng.below(32) as u8), // controls, NUL included
        9 => out.push(0x80 + rng.below(128) as u8), // stray high bytes
        10 => out.extend((0..rng.below(200)).map(|_| b'a' + rng.below(26) as u8)),
        11 => out.extend((0..rng.below(100)).map(|_| rng.next() as u8)),
        12 => {
            // Prose: long runs that keep the SIMD path busy.
            for _ in 0..rng.below(50) {
                let w = ["lorem", "ipsum", "dolor", "sit", "amet", "über", "日本"];
                out.extend_from_slice(w[rng.below(w.len() as u64) as usize].as_bytes());
                out.push(if rng.below(10) == 0 { b'\n' } else { b' ' });
            }
        }
        _ => {
            let cp = rng.below(0x110000) as u32;
            let c = char::from_u32(cp).unwrap_or('x');
            out.extend_from_slice(c.to_string().as_bytes());
        }
    }
}

/// Content of file number `i` of the corpus.
fn content(i: usize, rng: &mut Rng) -> Vec<u8> {
    let target = match i % 10 {
        0 => 0,
        1 => rng.below(10) as usize,
        2..=6 => rng.below(4000) as usize,
        7 => rng.below(300_000) as usize,
        8 => (1 << 20) + rng.below(5000) as usize - 2500,
        _ => 66_000 + rng.below(1000) as usize,
    };
    let mut v = Vec::new();
    match i % 13 {
        // Plain ASCII prose with CRLF and no trailing newline.
        0 => {
            while v.len() < target {
                v.extend_from_slice(b"The quick brown fox\r\njumps over  the lazy dog.");
            }
        }
        // One long line.
        1 => v.extend((0..target).map(|k| if k % 9 == 8 { b' ' } else { b'x' })),
        // NUL bytes only.
        2 => v.resize(target, 0),
        // Random bytes.
        3 => v.extend((0..target).map(|_| rng.next() as u8)),
        _ => {
            while v.len() < target {
                piece(rng, &mut v);
            }
        }
    }
    if i % 7 == 0 {
        // Cut anywhere, even inside a UTF-8 sequence.
        v.truncate(target);
    }
    v
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// `wc_file`, `sha256_file` and `wc_and_sha256` over a corpus of 400 files,
/// against one run of GNU `wc` and one of `sha256sum`.
#[test]
fn files_match_gnu_wc_and_sha256sum() {
    if !have_gnu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let paths: Vec<PathBuf> = (0..400)
        .map(|i| write(dir.path(), &format!("f{i:03}"), &content(i, &mut rng)))
        .collect();

    let gnu = Command::new("wc")
        .arg("-lwmc")
        .args(&paths)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&gnu.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let sums = Command::new("sha256sum").args(&paths).output().unwrap();
    let sums: Vec<String> = String::from_utf8_lossy(&sums.stdout)
        .lines()
        .map(|l| l[..64].to_string())
        .collect();
    assert_eq!(sums.len(), paths.len());

    for (k, p) in paths.iter().enumerate() {
        let (mut expected, name) = parse_wc_line(&lines[k]);
        assert_eq!(Path::new(&name), p);
        let data = std::fs::read(p).unwrap();
        let copy = agreeing(&data);
        if copy != data {
            expected.words = installed_wc(&copy).words;
        }
        let f = File::open(p).unwrap();
        assert_eq!(wc::wc_file(&f, false).unwrap(), expected, "{name}");
        let mut f = File::open(p).unwrap();
        let l = wc::wc_file(&f, true).unwrap();
        assert_eq!(
            (l.lines, l.bytes),
            (expected.lines, expected.bytes),
            "{name} -l"
        );
        f.rewind().unwrap();
        let d = sha::sha256_file(&f).unwrap();
        assert_eq!(
            (d.hex(), d.bytes),
            (sums[k].clone(), expected.bytes),
            "{name}"
        );
        f.rewind().unwrap();
        let (c, d2) = stat::wc_and_sha256(&f).unwrap();
        assert_eq!((c, d2), (expected, d), "{name} stat");
    }
}

/// Any split of the input, even inside a character, gives the same counts,
/// and those are GNU's.
#[test]
fn incremental_splits_at_every_offset() {
    if !have_gnu_tools() {
        return;
    }
    let mut rng = Rng(42);
    for round in 0..40 {
        let mut data = Vec::new();
        let target = 20 + rng.below(300) as usize;
        while data.len() < target {
            piece(&mut rng, &mut data);
        }
        let expected = gnu_wc(&data);
        assert_eq!(
            wc::count_slice(&data),
            expected,
            "round {round}: {data:02x?}"
        );
        for cut in 0..=data.len() {
            let mut c = wc::WcCounter::new();
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            assert_eq!(c.finish(), expected, "round {round}, cut at {cut}");
        }
        for step in 1..8 {
            let mut c = wc::WcCounter::new();
            for chunk in data.chunks(step) {
                c.update(chunk);
            }
            assert_eq!(c.finish(), expected, "round {round}, chunks of {step}");
        }
    }
}

/// Files large enough to be counted on several threads and read through the
/// pipelined paths, with text that puts words and characters across any seam.
#[test]
fn large_files_match_gnu() {
    if !have_gnu_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    for (k, size) in [(0, 40 << 20), (1, (33 << 20) + 3), (2, (64 << 20) + 1)] {
        let mut data = Vec::with_capacity(size + 1000);
        while data.len() < size {
            match k {
                0 => data.extend_from_slice("wörd 東京x\u{a0}y \x01z🙂\n".as_bytes()),
                1 => piece(&mut rng, &mut data),
                _ => data.extend_from_slice(b"a long line of ascii text "),
            }
        }
        data.truncate(size);
        let p = write(dir.path(), &format!("big{k}"), &data);
        let expected = gnu_wc(&data);
        let mut f = File::open(&p).unwrap();
        assert_eq!(wc::wc_file(&f, false).unwrap(), expected, "big{k}");
        f.rewind().unwrap();
        let l = wc::wc_file(&f, true).unwrap();
        assert_eq!((l.lines, l.bytes), (expected.lines, expected.bytes));
        f.rewind().unwrap();
        let d = sha::sha256_file(&f).unwrap();
        let gnu = Command::new("sha256sum").arg(&p).output().unwrap();
        assert_eq!(d.hex(), String::from_utf8_lossy(&gnu.stdout[..64]));
        f.rewind().unwrap();
        assert_eq!(stat::wc_and_sha256(&f).unwrap(), (expected, d));
        // From an offset, as the spec of `wc_file` says.
        f.seek(std::io::SeekFrom::Start(12_345)).unwrap();
        assert_eq!(
            wc::wc_file(&f, false).unwrap(),
            wc::count_slice(&data[12_345..])
        );
    }
}
