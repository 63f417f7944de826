//! `--resume FILE`: the paths an earlier run of the same command already
//! answered, read from its JSON-lines output, so that a crashed job is
//! finished by appending what is missing to that very file.
//!
//! A path is done when some line about it is a good result (no `error`) of
//! this command; failed lines are redone. The file is read whole before the
//! query starts, so it may be the one the new results are appended to. A
//! crash can leave a torn line (the command was killed in the middle of a
//! write): a line that starts as an object but does not parse is skipped,
//! and when the file ends inside one, the new output starts on a line of
//! its own. Lines of another command (a manifest of `p2p-sha256` given to
//! `p2p-wc`), or that are not JSON at all (`--format text`), refuse the file.

use crate::proto::{PathBytes, QueryKind};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::Path;

/// The paths already answered by an earlier run.
#[derive(Debug, Default)]
pub struct Done {
    paths: HashSet<Vec<u8>>,
    /// Torn lines skipped (a crash in the middle of a write).
    pub torn: u64,
    /// The file does not end with a newline: new lines appended to it
    /// must start with one.
    pub ends_mid_line: bool,
}

impl Done {
    /// Reads `file`, the output of an earlier run of `kind`'s command.
    pub fn read(file: &Path, kind: QueryKind) -> Result<Done, String> {
        let data = std::fs::read(file).map_err(|e| {
            format!(
                "--resume {}: {}",
                file.display(),
                crate::error::Error::from_io(&e).message
            )
        })?;
        Done::parse(&data, kind).map_err(|why| format!("--resume {}: {why}", file.display()))
    }

    /// The paths answered in `data`, JSON lines of `kind`'s command.
    pub fn parse(data: &[u8], kind: QueryKind) -> Result<Done, String> {
        let mut done = Done {
            ends_mid_line: data.last().is_some_and(|&b| b != b'\n'),
            ..Done::default()
        };
        for (n, line) in data.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let obj = match serde_json::from_slice::<Value>(line) {
                Ok(Value::Object(obj)) => obj,
                Ok(_) => return Err(format!("line {} is not a JSON object", n + 1)),
                Err(_) if line.first() == Some(&b'{') => {
                    done.torn += 1;
                    continue;
                }
                Err(_) => {
                    return Err(format!(
                        "line {} is not JSON: give the JSON lines of an earlier run (not --format text)",
                        n + 1
                    ));
                }
            };
            if obj.contains_key("error") || obj.get("total") == Some(&Value::Bool(true)) {
                // A failed path is redone; a total is about no path.
                continue;
            }
            match kind_of(&obj) {
                Some(k) if k == kind => {}
                Some(k) => {
                    return Err(format!(
                        "line {} is a result of {}, not of {}: give the output of an earlier run of this command",
                        n + 1,
                        command(k),
                        command(kind)
                    ));
                }
                None => {
                    return Err(format!(
                        "line {} is no result line of {}",
                        n + 1,
                        command(kind)
                    ));
                }
            }
            let path = obj.get("path").and_then(Value::as_str).map(str::to_string);
            let b64 = obj.get("path_b64").and_then(Value::as_str);
            if path.is_none() || obj.get("peer").and_then(Value::as_str).is_none() {
                return Err(format!("line {} has no peer or path", n + 1));
            }
            let exact =
                PathBytes::from_json(path, b64).map_err(|e| format!("line {}: {e}", n + 1))?;
            done.paths.insert(exact.0);
        }
        Ok(done)
    }

    /// True when `path` already has a good line.
    pub fn has(&self, path: &[u8]) -> bool {
        self.paths.contains(path)
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

/// Which command a good result line comes from, by the fields only it has.
fn kind_of(obj: &Map<String, Value>) -> Option<QueryKind> {
    let has = |k: &str| obj.contains_key(k);
    if has("files") && has("dirs") {
        Some(QueryKind::Count)
    } else if has("size") && has("mode") {
        Some(QueryKind::Stat)
    } else if has("sha256") {
        Some(QueryKind::Sha256)
    } else if ["lines", "words", "bytes", "chars", "max_line_length"]
        .iter()
        .any(|k| has(k))
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
        let err = Done::parse(sha.as_bytes(), QueryKind::Wc).unwrap_err();
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
        let err = Done::parse(text.as_bytes(), QueryKind::Sha256).unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
    }

    #[test]
    fn totals_and_blank_lines_are_about_no_path() {
        let data = "\n{\"lines\":3,\"words\":1,\"bytes\":9,\"chars\":9,\"total\":true}\n\n";
        let done = Done::parse(data.as_bytes(), QueryKind::Wc).unwrap();
        assert!(done.is_empty());
    }
}
