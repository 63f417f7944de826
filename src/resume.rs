//! `--resume FILE`: the paths an earlier run of the same command already
//! answered, read from its JSON-lines output, so that a crashed job is
//! finished by appending what is missing to that very file.
//!
//! A path is done when some line about it is a good result (no `error`) of
//! this command; failed lines are redone. The file is read to its end before
//! the query starts (line by line, keeping only digests of the paths), so it
//! may be the one the new results are appended to. A crash can leave a torn
//! line (the command was killed in the middle of a write): a line that
//! starts as an object but does not parse is skipped,
//! and when the file ends inside one, the new output starts on a line of
//! its own. Lines of another command (a manifest of `p2p-sha256` given to
//! `p2p-wc`), or that are not JSON at all (`--format text`), refuse the file.

use crate::proto::{PathBytes, QueryKind};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The paths already answered by an earlier run.
#[derive(Debug, Default)]
pub struct Done {
    /// Each path's name as a 128-bit digest: a million paths take 16 MiB,
    /// whatever their length, and two names never meet by chance.
    paths: HashSet<[u8; 16]>,
    /// Torn lines skipped (a crash in the middle of a write).
    pub torn: u64,
    /// The file does not end with a newline: new lines appended to it
    /// must start with one.
    pub ends_mid_line: bool,
}

/// The fields of a result line that tell whose it is and about what; the
/// others are skipped unread.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    path: Option<Cow<'a, str>>,
    #[serde(borrow)]
    path_b64: Option<Cow<'a, str>>,
    peer: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
    total: Option<bool>,
    files: Option<IgnoredAny>,
    dirs: Option<IgnoredAny>,
    size: Option<IgnoredAny>,
    mode: Option<IgnoredAny>,
    sha256: Option<IgnoredAny>,
    lines: Option<IgnoredAny>,
    words: Option<IgnoredAny>,
    bytes: Option<IgnoredAny>,
    chars: Option<IgnoredAny>,
    max_line_length: Option<IgnoredAny>,
}

impl Done {
    /// Reads `file`, the output of an earlier run of `kind`'s command.
    pub fn read(file: &Path, kind: QueryKind) -> Result<Done, String> {
        let why = |e: std::io::Error| {
            format!(
                "--resume {}: {}",
                file.display(),
                crate::error::Error::from_io(&e).message
            )
        };
        let f = std::fs::File::open(file).map_err(why)?;
        Done::parse(BufReader::with_capacity(256 * 1024, f), kind).map_err(|e| match e {
            Bad::Io(e) => why(e),
            Bad::Line(msg) => format!("--resume {}: {msg}", file.display()),
        })
    }

    /// The paths answered in `data`, JSON lines of `kind`'s command.
    pub fn parse(mut data: impl BufRead, kind: QueryKind) -> Result<Done, Bad> {
        let mut done = Done::default();
        let mut buf = Vec::new();
        for n in 1.. {
            buf.clear();
            if data.read_until(b'\n', &mut buf).map_err(Bad::Io)? == 0 {
                break;
            }
            done.ends_mid_line = buf.last() != Some(&b'\n');
            done.line(&buf, n, kind).map_err(Bad::Line)?;
        }
        Ok(done)
    }

    /// Takes line `n` of the file.
    fn line(&mut self, line: &[u8], n: usize, kind: QueryKind) -> Result<(), String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let fields = match serde_json::from_slice::<Line>(line) {
            Ok(f) => f,
            Err(_) if line.first() == Some(&b'{') => {
                self.torn += 1;
                return Ok(());
            }
            Err(_) => {
                return Err(format!(
                    "line {n} is not JSON: give the JSON lines of an earlier run (not --format text)"
                ));
            }
        };
        if fields.error.is_some() || fields.total == Some(true) {
            // A failed path is redone; a total is about no path.
            return Ok(());
        }
        match kind_of(&fields) {
            Some(k) if k == kind => {}
            Some(k) => {
                return Err(format!(
                    "line {n} is a result of {}, not of {}: give the output of an earlier run of this command",
                    command(k),
                    command(kind)
                ));
            }
            None => return Err(format!("line {n} is no result line of {}", command(kind))),
        }
        if fields.path.is_none() || fields.peer.is_none() {
            return Err(format!("line {n} has no peer or path"));
        }
        let path = fields.path.map(Cow::into_owned);
        let exact = PathBytes::from_json(path, fields.path_b64.as_deref())
            .map_err(|e| format!("line {n}: {e}"))?;
        self.paths.insert(key(exact.as_bytes()));
        Ok(())
    }

    /// True when `path` already has a good line.
    pub fn has(&self, path: &[u8]) -> bool {
        self.paths.contains(&key(path))
    }

    /// How many paths are done.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when no path is done.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// Why a file cannot be resumed from.
#[derive(Debug)]
pub enum Bad {
    Io(std::io::Error),
    Line(String),
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Io(e) => write!(f, "{e}"),
            Bad::Line(m) => f.write_str(m),
        }
    }
}

fn key(path: &[u8]) -> [u8; 16] {
    let d = Sha256::digest(path);
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// Which command a good result line comes from, by the fields only it has.
fn kind_of(l: &Line) -> Option<QueryKind> {
    if l.files.is_some() && l.dirs.is_some() {
        Some(QueryKind::Count)
    } else if l.size.is_some() && l.mode.is_some() {
        Some(QueryKind::Stat)
    } else if l.sha256.is_some() {
        Some(QueryKind::Sha256)
    } else if l.lines.is_some()
        || l.words.is_some()
        || l.bytes.is_some()
        || l.chars.is_some()
        || l.max_line_length.is_some()
    {
        Some(QueryKind::Wc)
    } else {
        None
    }
}

fn command(kind: QueryKind) -> &'static str {
    match kind {
        QueryKind::Wc => "p2p-wc",
        QueryKind::Sha256 => "p2p-sha256",
        QueryKind::Count => "p2p-count",
        QueryKind::Stat => "p2p-stat",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn sha_line(path: &str) -> String {
        format!("{{\"peer\":\"n1\",\"path\":\"{path}\",\"sha256\":\"{SHA}\",\"bytes\":0}}\n")
    }

    #[test]
    fn good_lines_are_done_failed_ones_are_not() {
        let data = [
            sha_line("/a"),
            "{\"peer\":\"n2\",\"path\":\"/b\",\"error\":{\"code\":\"not_found\",\"message\":\"x\"}}\n".into(),
            sha_line("/c"),
            // /c failed once and was redone: still done.
            "{\"peer\":\"n2\",\"path\":\"/c\",\"error\":{\"code\":\"timeout\",\"message\":\"x\"}}\n".into(),
        ]
        .concat();
        let done = Done::parse(data.as_bytes(), QueryKind::Sha256).unwrap();
        assert!(done.has(b"/a") && done.has(b"/c"));
        assert!(!done.has(b"/b"), "a failed line is redone");
        assert_eq!((done.len(), done.torn, done.ends_mid_line), (2, 0, false));
    }

    #[test]
    fn a_torn_line_is_skipped_and_new_output_starts_a_line() {
        let mut data = sha_line("/a");
        data.push_str(&sha_line("/b")[..30]);
        let done = Done::parse(data.as_bytes(), QueryKind::Sha256).unwrap();
        assert!(done.has(b"/a") && !done.has(b"/b"));
        assert_eq!((done.torn, done.ends_mid_line), (1, true));
        // After a resume appended a newline, the torn line sits in the middle.
        data.push('\n');
        data.push_str(&sha_line("/b"));
        let done = Done::parse(data.as_bytes(), QueryKind::Sha256).unwrap();
        assert!(done.has(b"/b"));
        assert_eq!((done.torn, done.ends_mid_line), (1, false));
        // A whole last line without its newline still counts.
        let whole = sha_line("/z");
        let done = Done::parse(whole.trim_end().as_bytes(), QueryKind::Sha256).unwrap();
        assert!(done.has(b"/z") && done.ends_mid_line);
    }

    #[test]
    fn exact_bytes_come_from_path_b64() {
        let data = format!(
            "{{\"peer\":\"n\",\"path\":\"\u{fffd}x\",\"path_b64\":\"/3g=\",\"sha256\":\"{SHA}\",\"bytes\":0}}\n"
        );
        let done = Done::parse(data.as_bytes(), QueryKind::Sha256).unwrap();
        assert!(done.has(b"\xffx"));
        assert!(!done.has("\u{fffd}x".as_bytes()));
    }

    #[test]
    fn another_commands_output_is_refused() {
        let sha = sha_line("/a");
        let err = Done::parse(sha.as_bytes(), QueryKind::Wc)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p2p-sha256") && err.contains("p2p-wc"),
            "{err}"
        );
        let wc =
            "{\"peer\":\"n\",\"path\":\"/a\",\"lines\":1,\"words\":2,\"bytes\":3,\"chars\":3}\n";
        assert!(Done::parse(wc.as_bytes(), QueryKind::Sha256).is_err());
        assert!(
            Done::parse(wc.as_bytes(), QueryKind::Wc)
                .unwrap()
                .has(b"/a")
        );
        let stat = "{\"peer\":\"n\",\"path\":\"/a\",\"type\":\"file\",\"size\":3,\"mode\":\"0644\",\"mtime\":\"x\",\"sha256\":\"ab\",\"lines\":1}\n";
        assert!(Done::parse(stat.as_bytes(), QueryKind::Sha256).is_err());
        assert!(
            Done::parse(stat.as_bytes(), QueryKind::Stat)
                .unwrap()
                .has(b"/a")
        );
        let count = "{\"peer\":\"n\",\"path\":\"/d\",\"files\":1,\"dirs\":0,\"symlinks\":0,\"other\":0,\"bytes\":3,\"recursive\":false}\n";
        assert!(Done::parse(count.as_bytes(), QueryKind::Wc).is_err());
        assert!(
            Done::parse(count.as_bytes(), QueryKind::Count)
                .unwrap()
                .has(b"/d")
        );
        // Text output is no JSON at all.
        let text = "e3b0  /a\n";
        let err = Done::parse(text.as_bytes(), QueryKind::Sha256)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not JSON"), "{err}");
    }

    #[test]
    fn totals_and_blank_lines_are_about_no_path() {
        let data = "\n{\"lines\":3,\"words\":1,\"bytes\":9,\"chars\":9,\"total\":true}\n\n";
        let done = Done::parse(data.as_bytes(), QueryKind::Wc).unwrap();
        assert!(done.is_empty());
    }
}
