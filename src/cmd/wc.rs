//! `p2p-wc`: lines, words, bytes and characters, like `wc`.

use crate::cli::{Format, WcCli};
use crate::client::{PathSource, run_query};
use crate::input::Stdin;
use crate::output::{Printer, columns, quiet_on_closed_pipe};
use crate::proto::{Item, Outcome, Query, QueryKind, WcFields};

const NAME: &str = "p2p-wc";

/// Runs `p2p-wc`; returns the exit status.
pub fn run(cli: WcCli) -> i32 {
    quiet_on_closed_pipe();
    let none = !(cli.lines || cli.words || cli.bytes || cli.chars);
    let want = Want {
        lines: none || cli.lines,
        words: none || cli.words,
        chars: none || cli.chars,
        bytes: none || cli.bytes,
    };
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let source =
        match PathSource::from_input(&cli.input, Stdin::WC, cli.placement.target().is_some()) {
            Ok(s) => s,
            Err(f) => return super::finish(NAME, Err(f), &mut printer),
        };
    let target = match super::target(&cli.placement, &mut printer, false) {
        Ok(t) => t,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let query = Query {
        kind: QueryKind::Wc,
        lines_only: !want.words && !want.chars,
        // GNU wc -c: from the size of a file whose size can be trusted.
        bytes_only: want.bytes && !want.lines && !want.words && !want.chars,
        recursive: false,
        dereference: false,
        cwd: None,
        paths: None,
        target,
    };
    let mut total = WcFields::default();
    let mut ok = 0u64;
    let result = run_query(
        &cli.connection,
        query,
        source,
        &mut printer,
        &mut |printer, item: Item<WcFields>| {
            let item = Item {
                outcome: match item.outcome {
                    Outcome::Ok(f) => {
                        ok += 1;
                        add(&mut total, &f);
                        Outcome::Ok(want.select(&f))
                    }
                    failed => failed,
                },
                ..item
            };
            if let Outcome::Ok(f) = &item.outcome
                && f.changed
            {
                printer.changed(&item.peer, &item.path);
            }
            printer.item(&item, &|f, path| want.text(f, path));
        },
    );
    // A total adds up one answer per path; with --all or several --peer,
    // each path is answered by several members.
    let once_per_path = !cli.placement.all && cli.placement.peers.len() < 2;
    if cli.format == Format::Text && ok > 1 && once_per_path {
        printer.raw(&want.text(&want.select(&total), "total"));
    }
    super::finish(NAME, result, &mut printer)
}

/// Which counts the user asked for.
struct Want {
    lines: bool,
    words: bool,
    chars: bool,
    bytes: bool,
}

impl Want {
    fn select(&self, f: &WcFields) -> WcFields {
        WcFields {
            lines: f.lines.filter(|_| self.lines),
            words: f.words.filter(|_| self.words),
            bytes: f.bytes.filter(|_| self.bytes),
            chars: f.chars.filter(|_| self.chars),
            changed: f.changed,
        }
    }

    /// `wc`'s column order: lines, words, characters, bytes.
    fn text(&self, f: &WcFields, path: &str) -> String {
        let values: Vec<u64> = [f.lines, f.words, f.chars, f.bytes]
            .into_iter()
            .flatten()
            .collect();
        columns(&values, path)
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
}
