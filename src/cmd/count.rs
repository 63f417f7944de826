//! `p2p-count`: entries of directories.

use crate::cli::{CountCli, Format};
use crate::client::{PathSource, run_query};
use crate::input::Stdin;
use crate::output::{Printer, columns, quiet_on_closed_pipe};
use crate::proto::{CountFields, Item, Query, QueryKind};

const NAME: &str = "p2p-count";

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
    let query = Query {
        kind: QueryKind::Count,
        lines_only: false,
        bytes_only: false,
        recursive: cli.recursive,
        cwd: None,
        paths: None,
        target,
    };
    let result = run_query(
        &cli.connection,
        query,
        source,
        &mut printer,
        &mut |printer, item: Item<CountFields>| {
            printer.item(&item, &|c, path| {
                columns(&[c.files, c.dirs, c.symlinks, c.other, c.bytes], path)
            });
        },
    );
    super::finish(NAME, result, &mut printer)
}
