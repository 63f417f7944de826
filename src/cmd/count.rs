//! `p2p-count`: entries of directories.
//!
//! On this host the command counts in its own process, with the same walker
//! the daemon uses for other members: every directory is opened by the
//! caller's own process, so the kernel decides by everything that decides
//! for the caller (mode bits, ACLs, security modules) and the daemon never
//! reads a directory for them. Elsewhere the members count below their
//! exports. Each directory that could not be read is reported on stderr as
//! find reports it, and makes the exit status 1.

use crate::cli::{CountCli, Format};
use crate::client::{Here, PathSource, run_query_here};
use crate::error::Error;
use crate::input::Stdin;
use crate::ops::count::count_dir;
use crate::ops::open_for_query;
use crate::output::{EXIT_FAILED, EXIT_OK, Printer, columns, quiet_on_closed_pipe};
use crate::proto::{CountFields, Item, Query, QueryKind};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

const NAME: &str = "p2p-count";

/// Unreadable directories a count of this host names (the rest are counted).
const LISTED_HERE: usize = 10_000;

/// Runs `p2p-count`; returns the exit status.
pub fn run(cli: CountCli) -> i32 {
    quiet_on_closed_pipe();
    let mut printer = Printer::new(NAME, super::style(cli.format == Format::Text));
    let source =
        match PathSource::from_input(&cli.input, Stdin::COUNT, cli.placement.target().is_some()) {
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
        cli.format != Format::Text,
        QueryKind::Count,
        &mut printer,
    ) {
        Ok(j) => j,
        Err(f) => return super::finish(NAME, Err(f), &mut printer),
    };
    let source = source.watched(watch);
    let several = target.is_some();
    let recursive = cli.recursive;
    let here: Option<Here<CountFields>> = (!several).then(|| {
        let walk: Here<CountFields> =
            Arc::new(move |path: &Path| Some(count_here(path, recursive)));
        walk
    });
    let query = Query {
        kind: QueryKind::Count,
        lines_only: false,
        bytes_only: false,
        recursive,
        dereference: false,
        posixly_correct: false,
        max_line_length: false,
        cwd: None,
        paths: None,
        target,
    };
    let mut unreadable = false;
    let mut fold = super::Fold::new(&cli.placement, cli.format == Format::Text);
    let result = run_query_here(
        &cli.connection,
        query,
        source,
        &mut printer,
        &mut |printer, item: Item<CountFields>| {
            if let Some(p) = progress.as_mut() {
                p.item(&item, |f| Some(f.bytes));
            }
            if let crate::proto::Outcome::Ok(c) = &item.outcome {
                unreadable |= c.unreadable > 0;
            }
            let Some(mut item) = fold.take(item) else {
                return;
            };
            let mut refused = Vec::new();
            let mut unlisted = 0;
            if let crate::proto::Outcome::Ok(c) = &mut item.outcome {
                refused = std::mem::take(&mut c.unreadable_dirs);
                unlisted = c.unreadable.saturating_sub(refused.len() as u64);
            }
            printer.item(&item, &count_line);
            if refused.is_empty() && unlisted == 0 {
                return;
            }
            printer.flush();
            let who = if several && !item.peer.is_empty() {
                format!("{}: ", item.peer)
            } else {
                String::new()
            };
            let operand = item.path.as_bytes();
            for dir in &refused {
                let shown = below(operand, dir.path.as_bytes());
                eprintln!(
                    "{NAME}: {who}'{}': {}",
                    String::from_utf8_lossy(&shown),
                    dir.error
                );
            }
            if unlisted > 0 {
                eprintln!(
                    "{NAME}: {who}'{}': {unlisted} more directories could not be read",
                    item.path
                );
            }
        },
        here,
    );
    if let Some(p) = progress {
        p.finish();
    }
    let bad = fold.finish(NAME, &mut printer, &count_line);
    let status = super::with_groups(super::finish(NAME, result, &mut printer), bad);
    if status == EXIT_OK && unreadable {
        EXIT_FAILED
    } else {
        status
    }
}

/// A count as a text line: files, dirs, symlinks, other, bytes, the name.
fn count_line(c: &CountFields, path: &[u8]) -> Vec<u8> {
    columns(&[c.files, c.dirs, c.symlinks, c.other, c.bytes], path)
}

/// Counts the directory `path` in this process, with the caller's own rights.
fn count_here(path: &Path, recursive: bool) -> Result<CountFields, Error> {
    let dir = open_for_query(path).map_err(|e| Error::from_io(&e))?;
    count_dir(OwnedFd::from(dir), recursive, LISTED_HERE)
}

/// The name find gives a directory `rel` below the operand `operand`.
fn below(operand: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut out = operand.to_vec();
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(rel);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_joined_as_find_joins_them() {
        assert_eq!(below(b"/x", b"sub/deeper"), b"/x/sub/deeper");
        assert_eq!(below(b"/x/", b"sub"), b"/x/sub");
        assert_eq!(below(b".", b"a"), b"./a");
    }
}
