//! The oracle: `p2p-wc` and `p2p-sha256` against GNU `wc` (in C.UTF-8) and
//! `sha256sum` over a generated corpus of a few hundred varied files.
//!
//! The corpus leaves out the four no-break spaces: p2p counts them as word
//! separators as coreutils 9.2+ does, while the `wc` 9.1 of Debian 12 does not
//! (that rule has its own unit test in `ops::wc`). Words are those of
//! coreutils 9.5+ (see `common::gnu_wc`).

mod common;

use common::{Daemon, run, write};
use std::collections::HashMap;
use std::path::PathBuf;
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

fn piece(rng: &mut Rng) -> Vec<u8> {
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
        "\u{85}",
        "\u{2028}",
        "\u{378}",
        "\u{e000}",
        "\u{200b}",
        "\u{feff}",
        "\u{1f600}",
    ];
    match rng.below(12) {
        0..=3 => TEXT[rng.below(TEXT.len() as u64) as usize]
            .as_bytes()
            .to_vec(),
        4 => b" ".to_vec(),
        5 => b"\n".to_vec(),
        6 => b"\r\n".to_vec(),
        7 => vec![b"\t\x0b\x0c"[rng.below(3) as usize]],
        8 => vec![rng.below(32) as u8], // controls, NUL included
        9 => vec![0x80 + rng.below(128) as u8], // stray high bytes
        10 => (0..rng.below(200))
            .map(|_| b'a' + rng.below(26) as u8)
            .collect(), // long ASCII runs
        _ => {
            let cp = rng.below(0x110000) as u32;
            match char::from_u32(cp) {
                Some(c) if !matches!(cp, 0xa0 | 0x2007 | 0x202f | 0x2060) => {
                    c.to_string().into_bytes()
                }
                _ => b"x".to_vec(),
            }
        }
    }
}

fn corpus(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut paths = Vec::new();
    for i in 0..400 {
        let target = match i % 10 {
            0 => 0,
            1 => rng.below(10) as usize,
            2..=7 => rng.below(4000) as usize,
            8 => rng.below(200_000) as usize,
            _ => 66_000 + rng.below(1000) as usize,
        };
        let mut content = Vec::new();
        while content.len() < target {
            content.extend(piece(&mut rng));
        }
        if i % 7 == 0 {
            // Cut anywhere, even inside a UTF-8 sequence.
            content.truncate(target);
        }
        paths.push(write(dir, &format!("c{i:03}"), &content));
    }
    paths
}

#[test]
fn wc_and_sha256_match_gnu_on_a_varied_corpus() {
    let d = Daemon::start(&[]);
    let dir = d.dir.path().join("corpus");
    let paths = corpus(&dir);
    let mut list = Vec::new();
    for p in &paths {
        list.extend_from_slice(p.to_str().unwrap().as_bytes());
        list.push(0);
    }
    let list0 = write(d.dir.path(), "list0", &list);

    let gnu = Command::new("wc")
        .arg("-lwmc")
        .arg(format!("--files0-from={}", list0.display()))
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let mut expected: HashMap<String, [u64; 4]> = HashMap::new();
    for line in String::from_utf8_lossy(&gnu.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 5 && f[4] != "total" {
            let n: Vec<u64> = f[..4].iter().map(|x| x.parse().unwrap()).collect();
            expected.insert(f[4].to_string(), [n[0], n[1], n[2], n[3]]);
        }
    }
    assert_eq!(expected.len(), paths.len());
    // Words as coreutils 9.5+ counts them, where the installed wc is older.
    for p in &paths {
        let data = std::fs::read(p).unwrap();
        if common::agreeing(&data) != data {
            let now = common::gnu_wc(p);
            if let Some(e) = expected.get_mut(p.to_str().unwrap()) {
                e[1] = now.1;
            }
        }
    }

    let r = run(d.cmd("p2p-wc").arg("-0").arg("--files-from").arg(&list0));
    assert_eq!(r.status, 0, "{}", r.stderr);
    let out = r.json();
    assert_eq!(out.len(), paths.len());
    for v in &out {
        let path = v["path"].as_str().unwrap();
        let got = [&v["lines"], &v["words"], &v["chars"], &v["bytes"]].map(|x| x.as_u64().unwrap());
        assert_eq!(
            got, expected[path],
            "{path}: p2p (lines, words, chars, bytes) vs GNU wc"
        );
    }

    let gnu = Command::new("sha256sum").args(&paths).output().unwrap();
    let sums: HashMap<String, String> = String::from_utf8_lossy(&gnu.stdout)
        .lines()
        .map(|l| {
            let (h, p) = l.split_once("  ").unwrap();
            (p.to_string(), h.to_string())
        })
        .collect();
    let r = run(d
        .cmd("p2p-sha256")
        .arg("-0")
        .arg("--files-from")
        .arg(&list0));
    assert_eq!(r.status, 0, "{}", r.stderr);
    for v in r.json() {
        let path = v["path"].as_str().unwrap();
        assert_eq!(v["sha256"].as_str().unwrap(), sums[path], "{path}");
    }

    // Round trip: our sha256sum format, verified by GNU.
    let r = run(d
        .cmd("p2p-sha256")
        .args(["--format", "sha256sum", "-0", "--files-from"])
        .arg(&list0));
    let sums_file = write(d.dir.path(), "SUMS", r.stdout.as_bytes());
    let check = run(Command::new("sha256sum")
        .arg("--check")
        .arg("--quiet")
        .arg(&sums_file));
    assert_eq!(check.status, 0, "{}{}", check.stdout, check.stderr);
}
