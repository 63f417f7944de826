//! The one printer: JSON lines or text on stdout, a one-line message per
//! failed item on stderr, and the exit status that sums it up.

use crate::proto::path::readable;
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

/// Runs a command from a C `main` (a binary with `#![no_main]`) and exits
/// with the status `run` returns.
///
/// Rust's own start-up is skipped that way: above all the stack guard of
/// the main thread, which glibc finds by reading and parsing
/// /proc/self/maps, a fifth of the instructions of a one-file `p2p-wc` and
/// four system calls. Only what matters here is kept: standard input,
/// output and error are opened on /dev/null if they are closed, as Rust
/// does, so that no socket or file we open takes their numbers. The
/// arguments are still there: glibc hands them to Rust before `main`.
/// Without the guard, a stack overflow ends the command by SIGSEGV with no
/// message.
pub fn c_main(run: impl FnOnce() -> i32) -> std::ffi::c_int {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll reads and writes the three entries of `fds`, which live
    // across the call; a timeout of 0 never blocks.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    for p in &fds {
        // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
        let closed = if polled < 0 {
            (unsafe { libc::fcntl(p.fd, libc::F_GETFD) }) < 0
        } else {
            p.revents & libc::POLLNVAL != 0
        };
        // SAFETY: open of a constant NUL-terminated path; it takes the
        // lowest free number, the closed one (lower ones are open).
        if closed && unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } < 0 {
            std::process::abort();
        }
    }
    std::process::exit(run())
}

/// JSON lines, or text produced by the command's own formatter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Json,
    Text,
}

/// Runs a write to a terminal that a progress line shares, with the line
/// cleared before and drawn again after ([`crate::progress`]).
pub type Aside = Box<dyn Fn(&mut dyn FnMut())>;

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
    /// Names in messages are quoted as GNU quotes them ([`crate::quote`]).
    quote_names: bool,
    pub ok: u64,
    pub failed: u64,
    /// Results of files that kept changing as they were read: exit 1, as tar.
    pub changed: u64,
    /// Where an item's fields are serialized before they are spliced in.
    scratch: Vec<u8>,
    /// A progress line on the terminal: messages go around it, and so
    /// does our output when stdout is that terminal too (the flag).
    aside: Option<(Aside, bool)>,
}

impl Printer {
    pub fn new(cmd: &'static str, style: Style) -> Printer {
        Printer {
            out: BufWriter::with_capacity(64 * 1024, io::stdout()),
            cmd,
            style,
            peer_prefix: false,
            multi: false,
            quote_names: false,
            ok: 0,
            failed: 0,
            changed: 0,
            scratch: Vec::new(),
            aside: None,
        }
    }

    /// Shares the terminal with a progress line: messages on stderr, and
    /// what we print when stdout is a terminal too, go through `aside`.
    pub fn share_terminal(&mut self, aside: Aside) {
        use std::io::IsTerminal;
        self.aside = Some((aside, io::stdout().is_terminal()));
    }

    /// Writes one message line on stderr, around a progress line if any.
    fn to_stderr(&self, line: &str) {
        match &self.aside {
            Some((aside, _)) => aside(&mut || eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Several members answer: name the member in messages, and at the
    /// start of text lines unless `plain` (a format other tools read).
    pub fn several_members(&mut self, multi: bool, plain: bool) {
        self.multi = multi;
        self.peer_prefix = multi && !plain;
    }

    /// Quote names in messages as GNU tools do, so that a name with a
    /// newline or a space stays one unambiguous word of one line.
    pub fn quote_names(&mut self, on: bool) {
        self.quote_names = on;
    }

    /// The style the printer was made with.
    pub fn style(&self) -> Style {
        self.style
    }

    /// True when text lines start with the member's name.
    pub fn peer_prefix(&self) -> bool {
        self.peer_prefix
    }

    /// The path as messages show it.
    pub fn shown<'p>(&self, path: &'p [u8]) -> std::borrow::Cow<'p, str> {
        if self.quote_names {
            crate::quote::quote_str(path).into()
        } else {
            readable(path)
        }
    }

    /// Prints a message about `path` on stderr, after what stdout holds,
    /// naming the member when several answer.
    pub fn message(&mut self, peer: &str, path: &[u8], text: &str) {
        let shown = self.shown(path).into_owned();
        self.say(peer, &shown, text);
    }

    /// [`Printer::message`] for a name already quoted as it is to be shown.
    pub fn say(&mut self, peer: &str, shown: &str, text: &str) {
        self.flush();
        if self.multi && !peer.is_empty() {
            self.to_stderr(&format!("{}: {peer}: {shown}: {text}", self.cmd));
        } else {
            self.to_stderr(&format!("{}: {shown}: {text}", self.cmd));
        }
    }

    /// Prints one item; `text` renders a success in the text style, given
    /// the raw bytes of the name, and returns the bytes to write.
    pub fn item<T: Serialize>(&mut self, item: &Item<T>, text: &dyn Fn(&T, &[u8]) -> Vec<u8>) {
        match &item.outcome {
            Outcome::Ok(fields) => {
                self.ok += 1;
                match self.style {
                    Style::Json => self.item_json(item),
                    Style::Text => {
                        let line = text(fields, item.path.as_bytes());
                        self.text_bytes(&item.peer, &line);
                    }
                }
            }
            Outcome::Failed { error } => {
                self.failed += 1;
                if self.style == Style::Json {
                    self.item_json(item);
                }
                if item.path.is_empty() {
                    // No name to show (an empty one, standard input): the
                    // message says what it is about.
                    self.flush();
                    self.to_stderr(&format!("{}: {}", self.cmd, error.message));
                } else {
                    self.message(&item.peer, &item.path, &error.message);
                }
            }
        }
    }

    /// Warns that a file kept changing while it was read (as tar does); its
    /// result line carries `"changed": true`.
    pub fn changed(&mut self, peer: &str, path: &[u8]) {
        self.changed += 1;
        self.message(peer, path, "file changed as we read it");
    }

    /// Whether several members answer (messages then name the member).
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    /// Prints text lines given as bytes (names need not be UTF-8), each
    /// after `peer: ` when several members answer; an empty `peer` (a
    /// total) gets no prefix.
    pub fn text_bytes(&mut self, peer: &str, text: &[u8]) {
        let mut r = Ok(());
        for line in text.split_inclusive(|&b| b == b'\n') {
            if r.is_ok() && self.peer_prefix && !peer.is_empty() {
                r = write!(self.out, "{peer}: ");
            }
            if r.is_ok() {
                r = self.out.write_all(line);
            }
        }
        self.check(r);
    }

    /// Prints an item as one JSON line, the very bytes [`Printer::json`]
    /// prints for it, faster: serde writes flattened fields through a map
    /// of its own, and checks and copies the name more than once; here the
    /// item's own keys are written in place and the fields' object is
    /// spliced in after them.
    fn item_json<T: Serialize>(&mut self, item: &Item<T>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        match write_item(&mut self.out, &mut scratch, item) {
            Ok(true) => {}
            Ok(false) => self.json(item),
            Err(e) => self.check(Err(e)),
        }
        self.scratch = scratch;
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
        self.bytes(text.as_bytes());
    }

    /// Prints bytes as they are (names that are not UTF-8, NUL-ended lines).
    pub fn bytes(&mut self, bytes: &[u8]) {
        let r = self.out.write_all(bytes);
        self.check(r);
    }

    pub fn flush(&mut self) {
        let r = match &self.aside {
            Some((aside, true)) if !self.out.buffer().is_empty() => {
                let mut r = Ok(());
                aside(&mut || r = self.out.flush());
                r
            }
            _ => self.out.flush(),
        };
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

/// Writes `item` as one JSON line, as `serde_json` writes its derived form
/// (see [`Printer::item_json`]); `scratch` is for the fields. Returns false,
/// having written nothing, when the fields are not a JSON object (which
/// flattening needs; the derived form then says what is wrong).
pub(crate) fn write_item<T: Serialize>(
    out: &mut impl Write,
    scratch: &mut Vec<u8>,
    item: &Item<T>,
) -> io::Result<bool> {
    scratch.clear();
    if let Outcome::Ok(fields) = &item.outcome {
        serde_json::to_writer(&mut *scratch, fields)?;
        if scratch.first() != Some(&b'{') || scratch.last() != Some(&b'}') {
            return Ok(false);
        }
    }
    out.write_all(b"{")?;
    if let Some(id) = item.id {
        write!(out, "\"id\":{id},")?;
    }
    out.write_all(b"\"peer\":")?;
    serde_json::to_writer(&mut *out, &item.peer)?;
    out.write_all(b",\"path\":")?;
    match item.path.to_str() {
        Some(text) => serde_json::to_writer(&mut *out, text)?,
        None => {
            serde_json::to_writer(&mut *out, &item.path.lossy())?;
            out.write_all(b",\"path_b64\":")?;
            serde_json::to_writer(&mut *out, &item.path.b64())?;
        }
    }
    match &item.outcome {
        Outcome::Failed { error } => {
            out.write_all(b",\"error\":")?;
            serde_json::to_writer(&mut *out, error)?;
        }
        Outcome::Ok(_) if scratch.len() > 2 => {
            out.write_all(b",")?;
            out.write_all(&scratch[1..scratch.len() - 1])?;
        }
        Outcome::Ok(_) => {}
    }
    out.write_all(b"}\n")?;
    Ok(true)
}

/// Right-aligned numeric columns, as `wc` prints them, then the raw name.
pub fn columns(values: &[u64], name: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(values.len() * 8 + name.len() + 1);
    for v in values {
        s.extend_from_slice(format!("{v:>7} ").as_bytes());
    }
    s.extend_from_slice(name);
    s.push(b'\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_print_as_serde_prints_them() {
        use crate::error::{Error, ErrorCode};
        use crate::proto::{PathBytes, ShaFields, WcFields};
        fn same<T: Serialize>(item: Item<T>) {
            let mut derived = serde_json::to_vec(&item).unwrap();
            derived.push(b'\n');
            let (mut out, mut scratch) = (Vec::new(), Vec::new());
            assert!(write_item(&mut out, &mut scratch, &item).unwrap());
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&derived)
            );
        }
        let paths: [&[u8]; 5] = [
            b"/a/b.txt",
            b"",
            b"tab\there \"q\" \\",
            b"\xff\xfe name",
            "東京\n".as_bytes(),
        ];
        fn mk<T>(n: usize, p: &[u8], outcome: Outcome<T>) -> Item<T> {
            Item {
                id: (n % 2 == 0).then_some(n as u64),
                peer: if n == 3 {
                    "n\"1".into()
                } else {
                    "vm:45001".into()
                },
                path: PathBytes::from(p),
                outcome,
            }
        }
        for (n, p) in paths.into_iter().enumerate() {
            let wc = WcFields {
                lines: Some(3),
                words: Some(u64::MAX),
                changed: n == 1,
                ..WcFields::default()
            };
            same(mk(n, p, Outcome::Ok(wc)));
            same(mk(n, p, Outcome::Ok(WcFields::default())));
            let error = Error::new(ErrorCode::NotFound, "No such file or directory");
            same(mk::<WcFields>(n, p, Outcome::Failed { error }));
            let sha = ShaFields {
                sha256: "ab".repeat(32),
                bytes: 7,
                changed: false,
            };
            same(mk(n, p, Outcome::Ok(sha)));
        }
        // Fields that are not an object are left to serde.
        let item = Item {
            id: None,
            peer: "p".into(),
            path: PathBytes::from(&b"f"[..]),
            outcome: Outcome::Ok(5u64),
        };
        assert!(!write_item(&mut Vec::new(), &mut Vec::new(), &item).unwrap());
    }

    #[test]
    fn wc_like_columns() {
        assert_eq!(columns(&[1, 22], b"f"), b"      1      22 f\n");
        assert_eq!(columns(&[3], b"\xff"), b"      3 \xff\n");
    }
}
