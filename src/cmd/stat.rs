//! `p2p-stat`: metadata plus wc counts and SHA-256, from one read.

use crate::cli::{Format, StatCli};
use crate::client::{PathSource, run_query};
use crate::input::Stdin;
use crate::output::{Printer, quiet_on_closed_pipe};
use crate::proto::{Item, Outcome, Query, QueryKind, StatFields};
use std::fmt::Write;

const NAME: &str = "p2p-stat";

/// Runs `p2p-stat`; returns the exit status.
pub fn run(cli: StatCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let source =
        match PathSource::from_input(&cli.input, Stdin::STAT, cli.placement.target().is_some()) {
            Ok(s) => s,
            Err(f) => return super::finish(NAME, Err(f), &mut printer),
        };
    let target = match super::target(&cli.placement, &mut printer, false) {
        Ok(t) => t,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let query = Query {
        kind: QueryKind::Stat,
        lines_only: false,
        bytes_only: false,
        recursive: false,
        cwd: None,
        paths: None,
        target,
    };
    let result = run_query(
        &cli.connection,
        query,
        source,
        &mut printer,
        &mut |printer, item: Item<StatFields>| {
            if let Outcome::Ok(f) = &item.outcome
                && f.changed
            {
                printer.changed(&item.peer, &item.path);
            }
            printer.item(&item, &text)
        },
    );
    super::finish(NAME, result, &mut printer)
}

/// A block per file, in the manner of stat(1).
fn text(s: &StatFields, path: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  File: {path}");
    let _ = writeln!(
        out,
        "  Type: {}  Size: {}  Mode: {}",
        s.file_type, s.size, s.mode
    );
    let _ = writeln!(out, " Mtime: {}", s.mtime);
    if let (Some(l), Some(w), Some(c), Some(b)) = (s.lines, s.words, s.chars, s.bytes) {
        let _ = writeln!(out, " Lines: {l}  Words: {w}  Chars: {c}  Bytes: {b}");
    }
    if let Some(h) = &s.sha256 {
        let _ = writeln!(out, "SHA256: {h}");
    }
    out
}
