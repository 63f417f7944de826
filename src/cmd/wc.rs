//! `p2p-wc`: lines, words, bytes and characters, like `wc`.
//!
//! `--format text` prints what GNU `wc` prints for the same operands: the
//! chosen counts in wc's order, each right-aligned to one width computed as
//! wc computes it (from the sizes of the operands, before anything is read),
//! then the name (quoted only if it holds a newline); a total line by the
//! `--total` rules; messages on stderr in wc's words, names quoted as wc
//! quotes them. A directory gets a line of zeros besides its error, as wc
//! prints one.

use crate::cli::{Format, Total, WcCli};
use crate::client::{PathSource, run_query};
use crate::error::ErrorCode;
use crate::input::Stdin;
use crate::output::{Printer, quiet_on_closed_pipe};
use crate::proto::{Item, Outcome, Query, QueryKind, WcFields};
use crate::quote::quote;
use std::path::PathBuf;

const NAME: &str = "p2p-wc";

/// Runs `p2p-wc`; returns the exit status.
pub fn run(cli: WcCli) -> i32 {
    quiet_on_closed_pipe();
    let none = !(cli.lines || cli.words || cli.bytes || cli.chars || cli.max_line_length);
    let text = cli.format == Format::Text;
    // With no count chosen, JSON has all four; text wc's three.
    let want = Want {
        lines: none || cli.lines,
        words: none || cli.words,
        chars: cli.chars || (none && !text),
        bytes: none || cli.bytes,
        max_line_length: cli.max_line_length,
    };
    let mut printer = Printer::new(NAME, super::style(text));
    let source =
        match PathSource::from_input(&cli.input, Stdin::WC, cli.placement.target().is_some()) {
            Ok(s) => s,
            Err(f) => return super::finish(NAME, Err(f), &mut printer),
        };
    let target = match super::target(&cli.placement, &mut printer, false) {
        Ok(t) => t,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let (watch, mut progress) = match super::job(
        NAME,
        &cli.job,
        &cli.connection,
        &cli.placement,
        !text,
        QueryKind::Wc,
        &mut printer,
    ) {
        Ok(j) => j,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let source = source.watched(watch);
    let local = target.is_none();
    let lines_only = !want.words && !want.chars && !want.max_line_length;
    let query = Query {
        kind: QueryKind::Wc,
        lines_only,
        // GNU wc -c: from the size of a file whose size can be trusted.
        bytes_only: want.bytes && want.count() == 1,
        max_line_length: want.max_line_length,
        recursive: false,
        dereference: false,
        // GNU wc reads it from its environment; ours is the command's.
        posixly_correct: std::env::var_os("POSIXLY_CORRECT").is_some(),
        cwd: None,
        paths: None,
        target,
    };
    // A total adds up one answer per path; with --all or several --peer,
    // each path is answered by several members, so only an explicit
    // --total=always or only prints one.
    let once_per_path = !cli.placement.all && cli.placement.peers.len() < 2;
    // With no operand wc reads standard input and prints no name.
    let no_operand = cli.input.paths.is_empty()
        && cli.input.files_from.is_none()
        && cli.input.files0_from.is_none();
    let width = if cli.total == Total::Only || !local {
        1
    } else if let Some(list) = &cli.input.files0_from {
        // wc reads a list that is a regular file of at most 10 MiB first, and
        // sizes the columns from its names; a list from a pipe streams.
        match names_of_regular_list(list) {
            Some(names) if !names.is_empty() => number_width(&names, want.count()),
            _ => 1,
        }
    } else if cli.input.files_from.is_some() {
        1
    } else {
        number_width(&cli.input.paths, want.count())
    };
    // Where wc says which line counter it uses: the first time it counts
    // lines without decoding characters.
    let mut debug = cli.debug && want.lines && lines_only;
    let mut total = WcFields::default();
    let mut seen = 0u64;
    let mut fold = super::Fold::new(&cli.placement, text);
    let grouping = fold.grouping();
    let result = run_query(
        &cli.connection,
        query,
        source,
        &mut printer,
        &mut |printer, item: Item<WcFields>| {
            if let Some(p) = progress.as_mut() {
                p.item(&item, |f| f.bytes);
            }
            // Only the counts asked for: what is printed, and what groups compare.
            let item = Item {
                outcome: match item.outcome {
                    Outcome::Ok(f) => Outcome::Ok(want.select(&f)),
                    failed => failed,
                },
                ..item
            };
            let Some(item) = fold.take(item) else { return };
            seen += 1;
            if debug && matches!(item.outcome, Outcome::Ok(_)) {
                debug = false;
                printer.flush();
                eprintln!("{NAME}: {}", acceleration());
            }
            let name = (!no_operand).then_some(item.path.as_bytes());
            match &item.outcome {
                Outcome::Ok(f) => {
                    add(&mut total, f);
                    if f.changed {
                        printer.changed(&item.peer, &item.path);
                    }
                }
                Outcome::Failed { .. } if text => {}
                Outcome::Failed { .. } => return printer.item(&item, &|_, _| Vec::new()),
            }
            if !text {
                if cli.total != Total::Only {
                    printer.item(&item, &|_, _| Vec::new());
                }
                return;
            }
            match &item.outcome {
                Outcome::Ok(f) => {
                    printer.ok += 1;
                    if cli.total != Total::Only {
                        printer.text_bytes(&item.peer, &want.line(f, name, width));
                    }
                }
                Outcome::Failed { error } => {
                    printer.failed += 1;
                    if error.code == ErrorCode::IsDirectory && cli.total != Total::Only {
                        // wc opens a directory, prints its (empty) counts,
                        // and then fails to read it.
                        let zero = WcFields::all(&Default::default());
                        let zero = WcFields {
                            max_line_length: Some(0),
                            ..zero
                        };
                        printer.text_bytes(&item.peer, &want.line(&zero, name, width));
                    }
                    printer.flush();
                    let mut msg = format!("{NAME}: ").into_bytes();
                    if printer.is_multi() && !item.peer.is_empty() {
                        msg.extend_from_slice(item.peer.as_bytes());
                        msg.extend_from_slice(b": ");
                    }
                    msg.extend_from_slice(&quote(item.path.as_bytes()));
                    msg.extend_from_slice(b": ");
                    msg.extend_from_slice(error.message.as_bytes());
                    msg.push(b'\n');
                    use std::io::Write;
                    let _ = std::io::stderr().write_all(&msg);
                }
            }
        },
    );
    if let Some(p) = progress {
        p.finish();
    }
    // JSON lines have no total unless asked for one; groups have none.
    let print_total = !grouping
        && match cli.total {
            Total::Never => false,
            Total::Always | Total::Only => true,
            Total::Auto => text && once_per_path && seen > 1,
        };
    if print_total && result.is_ok() {
        let total = want.select(&total);
        if text {
            let name = (cli.total != Total::Only).then_some(&b"total"[..]);
            printer.text_bytes("", &want.line(&total, name, width));
        } else {
            printer.json(&JsonTotal {
                total: true,
                fields: total,
            });
        }
    }
    let bad = fold.finish(NAME, &mut printer, &|f, path| {
        want.line(f, (!no_operand).then_some(path), width)
    });
    super::with_groups(super::finish(NAME, result, &mut printer), bad)
}

/// The total as a JSON line: the chosen counts and `"total": true`.
#[derive(serde::Serialize)]
struct JsonTotal {
    total: bool,
    #[serde(flatten)]
    fields: WcFields,
}

/// What `--debug` says: the line counter the daemon on this host uses.
fn acceleration() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") {
            "using avx2 hardware support"
        } else {
            "avx2 support not detected"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "no hardware acceleration for line counts"
    }
}

/// The width of every number column, as GNU wc computes it before reading:
/// 1 for a single number of a single operand; otherwise the digits of the
/// operands' total size if they are regular files, at least 7 if one is not
/// (a pipe or device, whose size is unknown), and 1 whenever the first
/// operand cannot be looked at.
fn number_width(paths: &[PathBuf], columns: usize) -> usize {
    let stdin_only = [PathBuf::from("-")];
    let operands = if paths.is_empty() {
        &stdin_only[..]
    } else {
        paths
    };
    if operands.len() == 1 && columns == 1 {
        return 1;
    }
    let stat = |p: &PathBuf| {
        if p.as_os_str() == "-" {
            // fstat of descriptor 0 itself.
            use std::os::fd::AsFd;
            let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
            std::fs::File::from(fd).metadata().ok()
        } else {
            std::fs::metadata(p).ok()
        }
    };
    let stats: Vec<_> = operands.iter().map(stat).collect();
    if stats.first().is_none_or(|s| s.is_none()) {
        return 1;
    }
    let mut minimum = 1;
    let mut regular_total: u64 = 0;
    for md in stats.iter().flatten() {
        if !md.file_type().is_file() {
            minimum = 7;
        } else {
            regular_total = regular_total.saturating_add(md.len());
        }
    }
    let digits = regular_total.checked_ilog10().map_or(1, |d| d as usize + 1);
    digits.max(minimum)
}

/// The names of a `--files0-from` list that is a regular file of at most
/// 10 MiB, as wc reads such a list before counting; `None` otherwise.
fn names_of_regular_list(list: &std::path::Path) -> Option<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    if list.as_os_str() == "-" {
        return None;
    }
    let md = std::fs::metadata(list).ok()?;
    if !md.is_file() || md.len() > 10 << 20 {
        return None;
    }
    let data = std::fs::read(list).ok()?;
    let names = data
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| PathBuf::from(std::ffi::OsStr::from_bytes(n)))
        .collect();
    Some(names)
}

/// Which counts the user asked for.
struct Want {
    lines: bool,
    words: bool,
    chars: bool,
    bytes: bool,
    max_line_length: bool,
}

impl Want {
    fn select(&self, f: &WcFields) -> WcFields {
        WcFields {
            lines: f.lines.filter(|_| self.lines),
            words: f.words.filter(|_| self.words),
            bytes: f.bytes.filter(|_| self.bytes),
            chars: f.chars.filter(|_| self.chars),
            max_line_length: f.max_line_length.filter(|_| self.max_line_length),
            changed: f.changed,
        }
    }

    /// How many numbers a line has.
    fn count(&self) -> usize {
        [
            self.lines,
            self.words,
            self.chars,
            self.bytes,
            self.max_line_length,
        ]
        .into_iter()
        .filter(|&b| b)
        .count()
    }

    /// A line as wc writes it: the chosen numbers in wc's order (lines,
    /// words, characters, bytes, maximum line length), right-aligned to
    /// `width` and separated by one space, then the name if there is one.
    fn line(&self, f: &WcFields, name: Option<&[u8]>, width: usize) -> Vec<u8> {
        let chosen = [
            (self.lines, f.lines),
            (self.words, f.words),
            (self.chars, f.chars),
            (self.bytes, f.bytes),
            (self.max_line_length, f.max_line_length),
        ];
        let mut out = Vec::new();
        for (k, v) in chosen
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, v)| v.unwrap_or(0))
            .enumerate()
        {
            if k > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(format!("{v:>width$}").as_bytes());
        }
        if let Some(name) = name {
            out.push(b' ');
            if name.contains(&b'\n') {
                out.extend_from_slice(&quote(name));
            } else {
                out.extend_from_slice(name);
            }
        }
        out.push(b'\n');
        out
    }
}

fn add(total: &mut WcFields, f: &WcFields) {
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    total.lines = sum(total.lines, f.lines);
    total.words = sum(total.words, f.words);
    total.bytes = sum(total.bytes, f.bytes);
    total.chars = sum(total.chars, f.chars);
    // The total's line length is the longest of all.
    total.max_line_length = match (total.max_line_length, f.max_line_length) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(spec: &str) -> Want {
        let none = spec.is_empty();
        Want {
            lines: none || spec.contains('l'),
            words: none || spec.contains('w'),
            chars: spec.contains('m'),
            bytes: none || spec.contains('c'),
            max_line_length: spec.contains('L'),
        }
    }

    fn fields() -> WcFields {
        WcFields {
            lines: Some(3),
            words: Some(12),
            bytes: Some(345),
            chars: Some(300),
            max_line_length: Some(80),
            changed: false,
        }
    }

    #[test]
    fn lines_are_wc_lines() {
        let line = |w: &Want, name: Option<&[u8]>, width| {
            String::from_utf8(w.line(&fields(), name, width)).unwrap()
        };
        assert_eq!(line(&want(""), Some(b"f"), 3), "  3  12 345 f\n");
        assert_eq!(line(&want("l"), Some(b"f"), 1), "3 f\n");
        assert_eq!(line(&want("lmcwL"), None, 1), "3 12 300 345 80\n");
        assert_eq!(line(&want("c"), Some(b"a\nb"), 7), "    345 'a'$'\\n''b'\n");
        assert_eq!(line(&want("w"), Some(b"a b"), 2), "12 a b\n");
    }

    #[test]
    fn totals_sum_counts_and_take_the_longest_line() {
        let mut t = WcFields::default();
        add(&mut t, &fields());
        add(
            &mut t,
            &WcFields {
                max_line_length: Some(7),
                ..fields()
            },
        );
        assert_eq!(
            (t.lines, t.bytes, t.max_line_length),
            (Some(6), Some(690), Some(80))
        );
    }

    #[test]
    fn widths_come_from_the_operands_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, vec![b'x'; 995]).unwrap();
        std::fs::write(&b, vec![b'x'; 10]).unwrap();
        assert_eq!(number_width(std::slice::from_ref(&a), 1), 1);
        assert_eq!(number_width(std::slice::from_ref(&a), 3), 3);
        assert_eq!(number_width(&[a.clone(), b.clone()], 1), 4);
        // A missing first operand makes every column one wide; a later one
        // is left out of the sum.
        let missing = dir.path().join("missing");
        assert_eq!(number_width(&[missing.clone(), a.clone()], 3), 1);
        assert_eq!(number_width(&[a.clone(), missing], 3), 3);
        // Something that is not a regular file: at least 7.
        assert_eq!(number_width(&[a, dir.path().to_path_buf()], 3), 7);
    }
}
