//! The one printer: JSON lines or text on stdout, a one-line message per
//! failed item on stderr, and the exit status that sums it up.

use crate::proto::{Item, Outcome};
use serde::Serialize;
use std::io::{self, BufWriter, Stdout, Write};

/// Every item succeeded.
pub const EXIT_OK: i32 = 0;
/// Some items failed.
pub const EXIT_FAILED: i32 = 1;
/// Usage or configuration error.
pub const EXIT_USAGE: i32 = 2;
/// The local daemon cannot be reached.
pub const EXIT_UNREACHABLE: i32 = 3;

/// Restores the default SIGPIPE action, so `| head -1` ends a command quietly
/// the way it ends `cat`. Socket writes use MSG_NOSIGNAL and are unaffected.
pub fn quiet_on_closed_pipe() {
    // SAFETY: setting a signal's disposition to its default has no
    // preconditions; it runs first thing in main, before other threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// JSON lines, or text produced by the command's own formatter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Json,
    Text,
}

/// Prints items as they arrive and counts failures.
pub struct Printer {
    out: BufWriter<Stdout>,
    cmd: &'static str,
    style: Style,
    /// In text style, start each result line with its member's name, as
    /// `pdsh` does, because several members answer.
    peer_prefix: bool,
    /// Several members answer: messages on stderr name the member.
    multi: bool,
    pub ok: u64,
    pub failed: u64,
    /// Results of files that kept changing as they were read: exit 1, as tar.
    pub changed: u64,
}

impl Printer {
    pub fn new(cmd: &'static str, style: Style) -> Printer {
        Printer {
            out: BufWriter::with_capacity(64 * 1024, io::stdout()),
            cmd,
            style,
            peer_prefix: false,
            multi: false,
            ok: 0,
            failed: 0,
            changed: 0,
        }
    }

    /// Several members answer: name the member in messages, and at the
    /// start of text lines unless `plain` (a format other tools read).
    pub fn several_members(&mut self, multi: bool, plain: bool) {
        self.multi = multi;
        self.peer_prefix = multi && !plain;
    }

    /// Prints one item; `text` renders a success in the text style.
    pub fn item<T: Serialize>(&mut self, item: &Item<T>, text: &dyn Fn(&T, &str) -> String) {
        match &item.outcome {
            Outcome::Ok(fields) => {
                self.ok += 1;
                match self.style {
                    Style::Json => self.json(item),
                    Style::Text => {
                        let line = text(fields, &item.path);
                        if self.peer_prefix {
                            for l in line.split_inclusive('\n') {
                                self.raw(&format!("{}: {l}", item.peer));
                            }
                        } else {
                            self.raw(&line);
                        }
                    }
                }
            }
            Outcome::Failed { error } => {
                self.failed += 1;
                if self.style == Style::Json {
                    self.json(item);
                }
                self.flush();
                if item.path.is_empty() {
                    // No name to show (an empty one, standard input): the
                    // message says what it is about.
                    eprintln!("{}: {}", self.cmd, error.message);
                } else if self.multi && !item.peer.is_empty() {
                    eprintln!(
                        "{}: {}: {}: {}",
                        self.cmd, item.peer, item.path, error.message
                    );
                } else {
                    eprintln!("{}: {}: {}", self.cmd, item.path, error.message);
                }
            }
        }
    }

    /// Warns that a file kept changing while it was read (as tar does); its
    /// result line carries `"changed": true`.
    pub fn changed(&mut self, peer: &str, path: &str) {
        self.changed += 1;
        self.flush();
        if self.multi && !peer.is_empty() {
            eprintln!("{}: {peer}: {path}: file changed as we read it", self.cmd);
        } else {
            eprintln!("{}: {path}: file changed as we read it", self.cmd);
        }
    }

    /// Prints any serializable value as one JSON line.
    pub fn json<T: Serialize>(&mut self, value: &T) {
        let r = serde_json::to_writer(&mut self.out, value)
            .map_err(io::Error::other)
            .and_then(|_| self.out.write_all(b"\n"));
        self.check(r);
    }

    /// Prints text as is; the caller supplies the newline.
    pub fn raw(&mut self, text: &str) {
        let r = self.out.write_all(text.as_bytes());
        self.check(r);
    }

    pub fn flush(&mut self) {
        let r = self.out.flush();
        self.check(r);
    }

    /// The exit status for what was printed.
    pub fn status(&self) -> i32 {
        if self.failed > 0 || self.changed > 0 {
            EXIT_FAILED
        } else {
            EXIT_OK
        }
    }

    fn check(&self, r: io::Result<()>) {
        if let Err(e) = r {
            eprintln!("{}: writing standard output: {e}", self.cmd);
            std::process::exit(EXIT_FAILED);
        }
    }
}

/// A path as `sha256sum` writes it: a line whose name holds a backslash or a
/// newline starts with a backslash and escapes them.
pub fn sha256sum_line(hex: &str, path: &str) -> String {
    if path.contains(['\\', '\n', '\r']) {
        let escaped = path
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r");
        format!("\\{hex}  {escaped}\n")
    } else {
        format!("{hex}  {path}\n")
    }
}

/// Parses one line of a `sha256sum` file into digest and path, undoing the
/// escapes; `None` when the line is not in that format.
pub fn parse_sha256sum_line(line: &str) -> Option<(String, String)> {
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (hex, rest) = line.split_at_checked(64)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // "  name" for text mode, " *name" for binary mode.
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))?;
    if name.is_empty() {
        return None;
    }
    let name = if escaped {
        let mut out = String::with_capacity(name.len());
        let mut chars = name.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next()? {
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    _ => return None,
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        name.to_string()
    };
    Some((hex.to_ascii_lowercase(), name))
}

/// Right-aligned numeric columns, as `wc` prints them, then the name.
pub fn columns(values: &[u64], name: &str) -> String {
    let mut s = String::new();
    for v in values {
        s.push_str(&format!("{v:>7} "));
    }
    s.push_str(name);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256sum_lines_round_trip() {
        for name in [
            "plain.txt",
            "with space",
            "back\\slash",
            "new\nline",
            "both\\\n",
        ] {
            let line = sha256sum_line(H, name);
            let line = line.strip_suffix('\n').unwrap();
            assert_eq!(
                parse_sha256sum_line(line),
                Some((H.to_string(), name.to_string()))
            );
        }
        assert!(sha256sum_line(H, "new\nline").starts_with('\\'));
    }

    #[test]
    fn binary_mode_and_junk() {
        assert_eq!(
            parse_sha256sum_line(&format!("{H} *bin")),
            Some((H.to_string(), "bin".to_string()))
        );
        assert_eq!(parse_sha256sum_line("not a digest line"), None);
        assert_eq!(parse_sha256sum_line(&format!("{H}  ")), None);
    }

    #[test]
    fn wc_like_columns() {
        assert_eq!(columns(&[1, 22], "f"), "      1      22 f\n");
    }
}
